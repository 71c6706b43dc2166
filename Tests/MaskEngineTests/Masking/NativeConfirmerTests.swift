import CHyperscan
import CMaskKernel
import Foundation
import Testing
@testable import MaskEngine

/// The software confirmers of built-in detectors against Hyperscan itself: for every built-in
/// pattern, the same (end, leftmost start) pairs on random windows; and the whole engine with
/// them against the engine without them (every candidate confirmed by Hyperscan), byte for byte.
@Suite struct NativeConfirmerTests {
    /// Every (end, leftmost start) of `pattern` in `window`, from a Hyperscan block scan with SOM.
    static func hyperscanSpans(_ database: HyperscanDatabase, scratch: ScratchPool, _ window: [UInt8]) throws -> [[Int]] {
        let collector = EventCollector(limit: 1 << 16)
        _ = try scratch.withScratch { raw in
            window.withUnsafeBytes { bytes in
                hs_scan(database.raw, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(bytes.count), 0, raw,
                        EventCollector.onSpan, Unmanaged.passUnretained(collector).toOpaque())
            }
        }
        var best: [Int: Int] = [:]
        for span in collector.spans { best[span.end] = min(best[span.end] ?? Int.max, span.start) }
        return best.keys.sorted().map { [$0, best[$0]!] }
    }

    static func nativeSpans(pattern id: Int, _ window: [UInt8]) -> [[Int]]? {
        var slots = [UInt8](repeating: 0xFF, count: NativeConfirmers.patternCount)
        slots[id] = 0
        let collector = EventCollector(limit: 1 << 16)
        let ok = window.withUnsafeBytes { NativeConfirmers.confirm($0, slots: slots, slotCount: 1, withSlots: false, into: collector) }
        guard ok else { return nil }
        return collector.spans.map { [$0.end, $0.start] }
    }

    /// Windows that look like the runs the finder reports, with the bytes that make the patterns
    /// differ: separators, parentheses, plus signs, word bytes at the edges.
    static func randomWindow(_ generator: inout SeededGenerator) -> [UInt8] {
        let digitsHeavy = Array("0123456789012345678901234567890123456789".utf8)
        let others = Array(" .-/()+ -  _aZ\n".utf8)
        let count = Int.random(in: 1...64, using: &generator)
        var window: [UInt8] = []
        for _ in 0..<count {
            if Int.random(in: 0..<10, using: &generator) < 7 {
                window.append(digitsHeavy[Int.random(in: 0..<digitsHeavy.count, using: &generator)])
            } else {
                window.append(others[Int.random(in: 0..<others.count, using: &generator)])
            }
        }
        return window
    }

    /// Windows built from the shapes the patterns describe, joined by random separators, so that
    /// long matches (cards, E.164 numbers with six groups) occur often.
    static func shapedWindow(_ generator: inout SeededGenerator) -> [UInt8] {
        let shapes = ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111", "4111111111111111111", "3782 822463 10005",
                      "378282246310005", "6011000990139424", "5512345678901234", "268-45-8731", "268458731", "268 45 8731",
                      "+1 303 344 4977", "+493062339240", "+44 (20) 7946 0958", "+33 1 21 94 95 58", "(305) 457-9071", "1-602-863-8264",
                      "602.863.8264", "06 58 02 85 94", "06.58.02.85.94", "030/1234567", "030 86012874", "0152 1675 4327",
                      "020-1234567", "07700 900123", "(020) 3705 5931", "(0114)4960999", "2024-01-05", "12/27", "123"]
        let joins = [" ", "-", ".", "", "/", "(", ")", "+", "a", " 1 ", "_"]
        var window: [UInt8] = []
        let parts = Int.random(in: 1...4, using: &generator)
        for index in 0..<parts {
            if index > 0 || Bool.random(using: &generator) { window += Array(joins.randomElement(using: &generator)!.utf8) }
            window += Array(shapes.randomElement(using: &generator)!.utf8)
        }
        if Bool.random(using: &generator) { window += Array(joins.randomElement(using: &generator)!.utf8) }
        return Array(window.prefix(NativeConfirmers.maxWindow))
    }

    /// One to five shapes, some cut short at either end, with random joins between them.
    static func joined(_ shapes: [String], _ joins: [String], _ generator: inout SeededGenerator) -> [UInt8] {
        var window: [UInt8] = []
        for index in 0..<Int.random(in: 1...5, using: &generator) {
            if index > 0 || Bool.random(using: &generator) { window += Array(joins.randomElement(using: &generator)!.utf8) }
            var shape = Array(shapes.randomElement(using: &generator)!.utf8)
            if Int.random(in: 0..<4, using: &generator) == 0, shape.count > 2 {
                let cut = Int.random(in: 1..<shape.count, using: &generator)
                shape = Bool.random(using: &generator) ? Array(shape[..<cut]) : Array(shape[cut...])
            }
            window += shape
        }
        return Array(window.prefix(NativeConfirmers.maxWindow))
    }

    /// Windows for the e-mail, IPv4, IBAN and JWT confirmers: their shapes cut and joined with
    /// the bytes that end or extend them.
    static func textWindow(_ generator: inout SeededGenerator) -> [UInt8] {
        let shapes = ["jane.doe@example.com", "a@b.co", "x@y", "user%40mail.example.org", "ana%2540example.com", "jane&#64;example.com",
                      "jane&#x40;ex-ample.co.uk", "@", "%40", "&#64;", ".com", "..", "10.0.0.1", "192.168.1.255", "1.2.3.4.5", "010.1.2.3",
                      "256.1.1.1", "DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "FR14 2004 1010 0505 0001 3M02 606",
                      "NL91ABNA0417164300", "AB12", " ABCD", " 12", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "eyJabcde.xy", "eyJ", "-_",
                      "1.2", "x", "Q", "9", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "rRnHyd8tCXK7gkgeet+GtZg2FrUXY0oA4C+9srmH",
                      "AKIAHPMNWESCPY4DPGUY", "ASIAY34FZKBOKMUTVV7A", "ACCA", "sk_live_4eC39HqLyjWDarjtT1zdp7dcXYZ12", "rk_live_",
                      "sk_live_abc", "ghp_R2a9f0bF5cXkL3mN8pQ1sT6uV4wY7zA0bC2d", "gho_", "github_pat_11ABCDEFG0123456789abc_"
                      + String(String(repeating: "a1B2c3", count: 10).prefix(59)), "xoxb-462063584055-2945431044616-YFPSjYofeB4tHtWtCaapBW9Q",
                      "xoxp-12345-", "xapp-1-A0123456-1234567-" + String(repeating: "0a9f", count: 12),
                      "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/abcdefghijklmnopqrstuvwxyz012", "https://hooks.slack.com/services/T",
                      "password=", "DB_PASSWORD: ", "postgresPassword: \"", "client_secret=", "Secret_Key = '", "api_key:", "x_token=",
                      "AuthToken=\\\"", "passphrase: \"a b, c\"", "pwd='x y;z'", "password = 'my pass, word'", "Secret:'a;b'", "Summer2026#", "kQ9!xL2vR7zP", "${env.X}",
                      String(repeating: "aB3dE5gH7j", count: 7), "\r\n", "\t", ";", ",",
                      "2a00:1450:4864:20::42f", "fe80::a00:27ff:fe4e:66a1", "::ffff:10.42.7.19", "IPv6:2001:db8::1", "1:2:3:4:5:6:7:8",
                      "1:2:3:4:5:6:1.2.3.4", "00:1a:2b:3c:4d:5e", "std::vector", "12:19:20", "::1", "[", "]", "ipv6:", "dead::beef:12",
                      "IPv6:1:2:3:4:5:6:7:8", "ipv6:2a01:c93d:1121:ae4d:566f:7d7c:eed0:c6e6", "IPV6:1:2:3:4:5:6:1.2.3.4",
                      "token=" + String(repeating: "aB3dE5gH7j", count: 7), "api_key: " + String(repeating: "Zx9/", count: 17)]
        let joins = [" ", ".", "", "-", "_", "@", "%", "\n", "\"", "a", "Z", "0", ":", "/", "+", "&#"]
        return joined(shapes, joins, &generator)
    }

    /// Windows for the confirmers of structured secrets and dates (URL and connection-string
    /// credentials, PEM headers, dates of birth, Kubernetes Secret lines): their shapes, cut and
    /// joined like the text windows.
    static func structureWindow(_ generator: inout SeededGenerator) -> [UInt8] {
        let shapes = [
            "postgres://app:s3cr3t@db", "https://user:pa:ss@host", "mongodb+srv://u:p/q@", "x://a:b@", "ftp://anon@host",
            "jdbc:mysql://ro:Pw@", "a.b-c+d.e-f.g-h.i-j.k-l://u:v@", "://", "?password=abc&x", ";Pwd=x y", "PASSWORD=Hunter2",
            "&passwd=", "_pwd=1", "-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN PRIVATE KEY BLOCK-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----", "-----BEGIN A B C PRIVATE KEY-----", "-----BEGIN PRIVATE PRIVATE KEY-----",
            "------BEGIN ", "-----BEGIN ABCDEFGHIJKLM PRIVATE KEY-----", "PRIVATE KEY-----",
            "1987-04-12", "2024-1-05", "12/04/1987", "3.7.1990", "12-12-2012", "1/2/19", "March 3, 1975", "Sept. 30, 2001",
            "jan 1, 2000", "Mayday 1, 1990", "Novemberrr 1, 1990", "30 Oct 2023", "1 DECEMBER 1999", "123 Feb 2001", "7 May. 2020",
            "\n  password: cGFzc3dvcmQ=", "\n  tls.key: LS0tLS1CRUdJTi", "\n    x: YWJj\r", "\n  k: YWJjZA==  \r\n", "\n   a.b-c_d: YWJjZGVm",
            "\n  key: " + String(repeating: "QUJD", count: 33), "\n             deep: YWJjZA==", "\n  k: YWJjZGU=", "\n k: YWJj",
            "\ndb.example.com:5432:app:alice:S3cr3t!", "\n*:*:*:postgres:pw:with:colons", "\nlocalhost:123456:a:b:c", "\nhost:5432:db:user:",
            "\nh:1:d:u:p w", "\nh:*:d:u:p\r\n", "machine api.example.com login alice password hunter2", "login bob\npassword s3cr3t",
            "account x  password\ty", "machine h\tlogin u password", "machinex y password z", "machine db.internal password s3cr3t", "machine h\n  password\tp",
            "alice,pw,AKIAHPMNWESCPY4DPGUY", "bob,x y,ASIAY34FZKBOKMUTVV7A", "login\u{0B}u password p",
            "alice,AKIAHPMNWESCPY4DPGUY", ",Secret1,AKIAHPMNWESCPY4DPGUYX", "bob,pass,https://123456789012.signin.aws.amazon.com", ",,AKIA",
            "mysql -u root -pS3cret", "mysqldump -h db -p'hunter22' app", "mysqlsh --uri x -p\"pw12\"", "mysqlx -pabcd", "mysql -p123",
            "mysqladmin\t-pabcdefg", " --password=hunter22", "\n-pass S3cretValue", " --requirepass 'foobared1'", "'--db-password=\"abcdef\"",
            "x--password=abcdefgh", " --masterauth  secret123", " --admin-password=ab<cdefg",
            "<password>hunter2</password>", "<wsse:Password Type=\"x\">S3cr3t</wsse:Password>", "<db_passwd>p</db_passwd>",
            "<ns.a-b:apikey attr='1'>k</", "<passwordx>y</", "<pass>\n</pass>", "<secret>" + String(repeating: "x", count: 257) + "</",
            "<input type=\"password\" value=\"hunter2\">", "<INPUT name=p TYPE=password VALUE=s3cr3t>",
            "<input value=\"abc\" class=x type='password'>", "<inputx type=password value=x>", "<input type=passwordx value=y>",
            "<add key=\"DbPassword\" value=\"S3cret!\"/>", "<entry name='api-key'>abc123</entry>", "<add key=\"x\" value=\"y\"/>",
            "key=\"password\"\tvalue='p w'", "name=\"secret\" >text</", "monkey=\"pwd\" value=\"v\""]
        let joins = [" ", ".", "", "-", "_", "@", "\n", "\"", "a", "Z", "0", ":", "/", "=", "&", ";", "\r\n", "  ", ",", "\t"]
        return joined(shapes, joins, &generator)
    }

    @Test(arguments: NativeConfirmers.patterns.sorted { $0.value < $1.value })
    func softwareConfirmerReportsWhatHyperscanReports(_ entry: (key: String, value: Int)) throws {
        let database = try HyperscanDatabase(
            expressions: [HyperscanExpression(pattern: entry.key, flags: HS.multiline | HS.somLeftmost
                                                  | (NativeConfirmers.caselessOnly.contains(entry.value) ? HS.caseless : 0),
                                              id: 0, owner: "test")],
            mode: HS.modeBlock, cache: nil)
        let scratch = try ScratchPool(databases: [database])
        var generator = SeededGenerator(state: 0x5EED_0000 + UInt64(entry.value))
        var matched = 0
        for round in 0..<40_000 {
            let window = switch round % 4 {
            case 0: Self.randomWindow(&generator)
            case 1: Self.shapedWindow(&generator)
            case 2: Self.textWindow(&generator)
            default: Self.structureWindow(&generator)
            }
            let expected = try Self.hyperscanSpans(database, scratch: scratch, window)
            let actual = Self.nativeSpans(pattern: entry.value, window)
            #expect(actual == expected, "pattern \(entry.value) on \(String(decoding: window, as: UTF8.self).debugDescription)")
            if actual != expected { return }
            matched += expected.isEmpty ? 0 : 1
        }
        // The generator must exercise the pattern, or the comparison proves little.
        #expect(matched > 100, "only \(matched) windows matched pattern \(entry.value)")
    }

    /// Every end a Hyperscan stream scan of the three e-mail patterns reports, in order.
    static func hyperscanEmailEnds(_ database: HyperscanDatabase, scratch: ScratchPool, _ input: [UInt8]) throws -> [Int] {
        let collector = EventCollector(limit: 1 << 20)
        var stream: OpaquePointer?
        #expect(hs_open_stream(database.raw, 0, &stream) == HS.success)
        try scratch.withScratch { raw in
            input.withUnsafeBytes { bytes in
                _ = hs_scan_stream(stream, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(bytes.count), 0, raw,
                                   EventCollector.onEvent, Unmanaged.passUnretained(collector).toOpaque())
            }
            _ = hs_close_stream(stream, raw, EventCollector.onEvent, Unmanaged.passUnretained(collector).toOpaque())
        }
        return Array(Set(collector.events.map { Int($0 & 0xFF_FFFF_FFFF) })).sorted()
    }

    @Test func emailEndFinderReportsWhatTheHyperscanStreamReports() throws {
        let expressions = NativeConfirmers.emailPatterns.sorted().map {
            HyperscanExpression(pattern: $0, flags: HS.multiline, id: 0, owner: "email")
        }
        let database = try HyperscanDatabase(expressions: expressions, mode: HS.modeStream, cache: nil)
        let scratch = try ScratchPool(databases: [database])
        var generator = SeededGenerator(state: 0xE3A1)
        var reported = 0
        for _ in 0..<4000 {
            var input: [UInt8] = []
            for _ in 0..<Int.random(in: 1...12, using: &generator) { input += Self.textWindow(&generator) }
            let expected = try Self.hyperscanEmailEnds(database, scratch: scratch, input)
            // The finder in random pieces: its state carries across calls.
            let collector = EventCollector(limit: 1 << 20)
            var state = mk_email_state()
            mk_email_reset(&state)
            var offset = 0
            while offset < input.count {
                let count = min(input.count - offset, Int.random(in: 1...40, using: &generator))
                input[offset..<(offset + count)].withUnsafeBytes { piece in
                    mk_email_ends(&state, piece.baseAddress!.assumingMemoryBound(to: UInt8.self), piece.count,
                                  EventCollector.onNativeEnd, Unmanaged.passUnretained(collector).toOpaque())
                }
                offset += count
            }
            let actual = collector.events.map { Int($0 & 0xFF_FFFF_FFFF) }
            #expect(actual == expected, "\(String(decoding: input, as: UTF8.self).debugDescription)")
            if actual != expected { return }
            reported += expected.count
        }
        #expect(reported > 2000)
    }

    @Test func simdRunFinderReportsTheWindowsOfTheByteLoop() {
        // The deep check is Tests/KernelFuzz (billions of windows); this one runs with every build.
        var generator = SeededGenerator(state: 0x5157)
        let alphabet = Array("0123456789 .-/()+0123456789..a\n".utf8)
        for round in 0..<3000 {
            let count = Int.random(in: 1...1500, using: &generator)
            let input: [UInt8] = round % 2 == 0
                ? (0..<count).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] }
                : Array((0..<count / 8 + 1).flatMap { _ in Self.shapedWindow(&generator) + Array(" x ".utf8) }.prefix(count))
            let dotted: Int? = Bool.random(using: &generator) ? 4 : nil
            var native = RunFinder(minDigits: 7, maxRun: 256, overlap: 27, dottedMinDigits: dotted, native: true)
            var reference = RunFinder(minDigits: 7, maxRun: 256, overlap: 27, dottedMinDigits: dotted, native: false)
            var fromNative: RunFinder.Windows = []
            var fromReference: RunFinder.Windows = []
            var offset = 0
            while offset < input.count {
                let size = min(input.count - offset, Int.random(in: 1...300, using: &generator))
                input[offset..<(offset + size)].withUnsafeBytes { piece in
                    native.scan(piece, offset: offset, into: &fromNative)
                    reference.scan(piece, offset: offset, into: &fromReference)
                }
                offset += size
                if Int.random(in: 0..<8, using: &generator) == 0 {
                    native.peek(at: offset, into: &fromNative)
                    reference.peek(at: offset, into: &fromReference)
                }
            }
            native.finish(at: input.count, into: &fromNative)
            reference.finish(at: input.count, into: &fromReference)
            #expect(fromNative.map { [$0.start, $0.end, $0.acceptFrom] } == fromReference.map { [$0.start, $0.end, $0.acceptFrom] })
        }
    }

    @Test func builtInCorporaTakeTheSoftwareRoute() throws {
        #expect(Fixtures.engine.emailEndDetector != nil)
        // IPv4 addresses are searched in digit runs with three dots, outside the prefilter.
        let ipv4 = try #require(Fixtures.engine.detectors.first { $0.definition.id == "ipv4" })
        #expect(Fixtures.engine.digitRunDetectors.contains(ipv4.index))
        #expect(Fixtures.engine.digitRunDottedMinDigits == 4)
        // IPv6 addresses and IBANs come from class runs, outside the prefilter.
        let classRuns = Set(Fixtures.engine.classRunFamilies.map { Fixtures.engine.detectors[$0.detector].definition.id })
        #expect(classRuns == ["ipv6", "iban"])
        #expect(Fixtures.engine.nativeDigitSlots != nil)
        let native = Set(Fixtures.engine.detectors.filter { $0.nativeSlots != nil }.map(\.definition.id))
        #expect(native.isSuperset(of: ["email", "ipv4", "iban", "jwt", "credit_card", "phone", "us_ssn", "us_ssn_named",
                                       "aws_secret_access_key", "aws_secret_near_key_id", "stripe_key", "github_token", "slack_token",
                                       "aws_access_key_id", "secret_assignment", "secret_assignment_long", "ipv6", "url_credentials",
                                       "connection_string_password", "pem_private_key", "date_of_birth", "k8s_secret_data", "pgpass_password",
                                       "netrc_password", "aws_csv_password", "mysql_password_flag", "password_flag",
                                       "xml_password", "html_password_input", "html_password_input_value_first",
                                       "keyed_password_value", "keyed_password_element"]))
        // No built-in detector takes the generic route (a Hyperscan scan with start of match).
        let generic = Fixtures.engine.detectors.filter { $0.nativeSlots == nil }.map(\.definition.id)
        #expect(generic.isEmpty, "on the generic route: \(generic)")
        let reference = try MaskingEngine(detectors: Fixtures.detectors, hashKey: Array("test-key".utf8), softwareConfirmers: false)
        #expect(reference.nativeDigitSlots == nil)
    }

    @Test func aChangedPatternTakesTheHyperscanRoute() throws {
        var detectors = Fixtures.detectors
        let index = try #require(detectors.firstIndex { $0.id == "us_ssn" })
        detectors[index].patterns = [#"\b\d{3}[-.]\d{2}[-.]\d{4}\b"#]
        let engine = try MaskingEngine(detectors: detectors, hashKey: Array("test-key".utf8))
        #expect(engine.nativeDigitSlots == nil)
        let masked = try maskOneShot(Array("ssn 268.45.8731 and 268-45-8731".utf8), engine: engine)
        #expect(text(masked) == "ssn [SSN] and [SSN]")
    }

    /// The oracle: the same corpora with every candidate confirmed by Hyperscan.
    static let reference: MaskingEngine = {
        do {
            return try MaskingEngine(detectors: Fixtures.detectors, hashKey: Array("test-key".utf8), softwareConfirmers: false)
        } catch { fatalError("reference engine: \(error)") }
    }()

    @Test func sampleCorpusMasksByteForByteAsTheReferenceEngine() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Fixtures.samples).filter { $0.hasSuffix(".txt") }.sorted()
        #expect(files.count >= 10)
        var generator = SeededGenerator(state: 77)
        for file in files {
            let input = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.samples + "/" + file)))
            let expected = try maskOneShot(input, engine: Self.reference)
            #expect(try maskOneShot(input, engine: Fixtures.engine) == expected, "\(file), one write")
            let sizes = (0..<64).map { _ in Int.random(in: 1...700, using: &generator) }
            #expect(try maskChunked(input, sizes: sizes, engine: Fixtures.engine) == expected, "\(file), random writes")
            #expect(try maskChunked(Array(input.prefix(6000)), sizes: [1], engine: Fixtures.engine)
                    == (try maskOneShot(Array(input.prefix(6000)), engine: Self.reference)), "\(file), 1-byte writes")
        }
    }

    @Test func kubernetesAndKeyedSecretsMaskByteForByteAsTheReferenceEngine() throws {
        // Triggers skipped for want of a context word must not change a byte: Secret manifests
        // with and without `data:`, breakers, and ': ' everywhere.
        let pieces = ["apiVersion: v1\ndata:\n  password: MWYyZDFlMmU2N2Rm\n  username: YWRtaW4=\nkind: Secret\n",
                      "metadata:\n  name: db\ntype: Opaque\n", "data:\n  port: 6379\n", "  token: ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRwWkNJNklpSjk=\n",
                      "\n\n", "\n$ kubectl get secret db -o yaml\n", "log: level: info msg: started\n", "aws_secret_access_key: ",
                      "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n", "secretKey = \"", "dob: 1987-04-12\n", "born March 3, 1975\n",
                      "  DB_PASSWORD: U3VtbWVyMjAyNiM=\n", "items:\n- apiVersion: v1\n  data:\n    tls.key: LS0tLS1CRUdJTiBQUklWQVRF\n"]
        var generator = SeededGenerator(state: 2026)
        for _ in 0..<200 {
            var input: [UInt8] = []
            while input.count < 3000 { input += Array(pieces.randomElement(using: &generator)!.utf8) }
            let expected = try maskOneShot(input, engine: Self.reference)
            let sizes = (0..<16).map { _ in Int.random(in: 1...400, using: &generator) }
            #expect(try maskChunked(input, sizes: sizes, engine: Fixtures.engine) == expected)
        }
    }

    @Test func kubernetesSecretDataIsFoundWithoutThePrefilterTrigger() throws {
        // The `': '` trigger is searched in software, only within reach of a `data:` line: long
        // streams where Secrets sit far apart, with `': '` everywhere, cut at random sizes.
        let k8s = try #require(Fixtures.engine.detectors.first { $0.definition.id == "k8s_secret_data" })
        #expect(k8s.gatedTrigger == Array(": ".utf8))
        #expect(NativeConfirmerTests.reference.detectors[k8s.index].gatedTrigger == nil)
        let filler = ["{\"level\": \"info\", \"msg\": \"started\", \"port\": 6379}\n", "time: 12:19:20 user: ana\n",
                      "  key: dmFsdWU=\n", "    nested: YWRtaW4=\n", "\n", "kind: ConfigMap\n", "  other: c2VjcmV0\n"]
        let secrets = ["apiVersion: v1\ndata:\n  password: MWYyZDFlMmU2N2Rm\n  username: YWRtaW4=\nkind: Secret\n",
                       "data:\r\n  tls.key: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t\r\n", "data:\n", "stringData:\n  a: b\n",
                       "items:\n- data:\n    token: ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRwWkNJNklpSjk=\n"]
        var generator = SeededGenerator(state: 8080)
        for round in 0..<40 {
            var input: [UInt8] = []
            while input.count < 40_000 {
                switch Int.random(in: 0..<100, using: &generator) {
                case 0:
                    // A long Secret: data lines up to ~16 KB after `data:` (the context's reach).
                    input += Array("data:\n".utf8)
                    for _ in 0..<Int.random(in: 1...900, using: &generator) { input += Array("  key: dmFsdWU=\n".utf8) }
                case 1...3:
                    input += Array(secrets.randomElement(using: &generator)!.utf8)
                default:
                    input += Array(filler.randomElement(using: &generator)!.utf8)
                }
            }
            let expected = try maskOneShot(input, engine: Self.reference)
            #expect(try maskOneShot(input) == expected, "round \(round), one write")
            let sizes = (0..<16).map { _ in Int.random(in: 1...(round % 2 == 0 ? 64 : 5000), using: &generator) }
            #expect(try maskChunked(input, sizes: sizes) == expected, "round \(round), chunked")
            let masker = Fixtures.engine.makeValueMasker()
            let oracle = Self.reference.makeValueMasker()
            let value = Array(input.prefix(3000))
            #expect(try masker.mask(value) == (try oracle.mask(value)), "round \(round), value")
        }
    }

    @Test func generatedNumericTextMasksByteForByteAsTheReferenceEngine() throws {
        var generator = SeededGenerator(state: 4242)
        for _ in 0..<300 {
            var input: [UInt8] = []
            while input.count < 2000 {
                let piece: [UInt8] = switch Int.random(in: 0..<3, using: &generator) {
                case 0: Self.shapedWindow(&generator)
                case 1: Self.randomWindow(&generator)
                default: Self.textWindow(&generator)
                }
                input += piece
                input += Array([" ssn=", "\n", " card ", "; tel ", "<SSN>", " | ", "\t"].randomElement(using: &generator)!.utf8)
            }
            let expected = try maskOneShot(input, engine: Self.reference)
            let sizes = (0..<16).map { _ in Int.random(in: 1...300, using: &generator) }
            #expect(try maskChunked(input, sizes: sizes, engine: Fixtures.engine) == expected)
        }
    }

    @Test func valueMaskerMatchesTheReferenceEngine() throws {
        var generator = SeededGenerator(state: 99)
        let masker = Fixtures.engine.makeValueMasker()
        let oracle = Self.reference.makeValueMasker()
        for _ in 0..<5000 {
            let value = switch Int.random(in: 0..<3, using: &generator) {
            case 0: Self.shapedWindow(&generator)
            case 1: Self.randomWindow(&generator)
            default: Self.textWindow(&generator)
            }
            let (a, b) = try value.withUnsafeBytes { (try masker.mask($0), try oracle.mask($0)) }
            #expect(a == b, "\(String(decoding: value, as: UTF8.self).debugDescription)")
        }
    }
}
