import Foundation
import Testing
@testable import MaskEngine

@Suite struct StreamMaskerTests {
    static let planted: [String] = [
        "mail jane.doe@example.com now",
        "card 4111 1111 1111 1111 exp",
        "iban GB82 WEST 1234 5698 7654 32 ok",
        "ssn=268-45-8731;",
        "ip 10.2.255.195 and 2001:db8::1 port",
        "tok eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl end",
        "url postgres://app:S3cr3t!pw@db:5432/x",
        "key 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.",
        "\"private_key\": \"-----BEGIN RSA PRIVATE KEY-----\\nMIIEogIBAAKCAQEA9ZG5\\nabc\\n-----END RSA PRIVATE KEY-----\", \"x\": 1",
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        "{\"name\": \"Ann\", \"date of birth\": \"12.04.1987\", \"id\": 7}",
    ]

    @Test(arguments: planted)
    func everySplitPointGivesTheOneShotOutput(_ sample: String) throws {
        let input = Array(sample.utf8)
        let expected = try maskOneShot(input)
        #expect(expected != input, "nothing was masked in \(sample)")
        for split in 0...input.count {
            let masker = try Fixtures.engine.makeStreamMasker()
            let out = try masker.write(Array(input[..<split])) + masker.write(Array(input[split...])) + masker.finish()
            #expect(out == expected, "split at \(split)")
        }
    }

    @Test(arguments: planted)
    func oneByteAtATimeGivesTheOneShotOutput(_ sample: String) throws {
        let input = Array(sample.utf8)
        #expect(try maskChunked(input, sizes: [1]) == maskOneShot(input))
    }

    @Test func randomSplitsOfTheSampleCorpusGiveTheOneShotOutput() throws {
        var generator = SeededGenerator(state: 42)
        for name in ["api_json.txt", "app_log.txt", "psql.txt", "shell.txt", "csv.txt", "html.txt", "xml.txt", "config.txt", "email.txt", "traceback.txt"] {
            let input = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.samples + "/" + name)))
            let expected = try maskOneShot(input)
            for _ in 0..<4 {
                let sizes = (0..<64).map { _ in Int.random(in: 1...700, using: &generator) }
                #expect(try maskChunked(input, sizes: sizes) == expected, "\(name)")
            }
        }
    }

    @Test func aTriggeredDetectorFindsMatchesAroundItsTriggersAtEverySplit() throws {
        // The trigger ends inside the match (default) or up to trigger_before bytes before it.
        let inside = Detector(id: "order", category: "pii", patterns: ["\\bORD-[0-9]{6}\\b"], triggers: ["ORD-"])
        let before = Detector(id: "pin", category: "secret", patterns: ["\\b[0-9]{4}\\b"], triggers: ["\\bpin\\b"], triggerBefore: 8)
        let engine = try MaskingEngine(detectors: [inside, before])
        let input = Array("x ORD-123456 y pin: 4821 z 1234 ORD-12345 pin 99 9999".utf8)
        let expected = try maskOneShot(input, engine: engine)
        #expect(text(expected) == "x [ORDER] y pin: [PIN] z 1234 ORD-12345 pin 99 [PIN]")
        for split in 0...input.count {
            let masker = try engine.makeStreamMasker()
            let out = try masker.write(Array(input[..<split])) + masker.write(Array(input[split...])) + masker.finish()
            #expect(out == expected, "split at \(split)")
        }
        #expect(try maskChunked(input, sizes: [1], engine: engine) == expected)
    }

    @Test func cardsInsideALongDigitRunAreFoundAcrossItsWindows() throws {
        // A run of digits and spaces longer than the finder's window is searched in overlapping
        // windows; every card in it is masked whatever the chunking.
        var line = ""
        for index in 0..<100 { line += index % 5 == 0 ? "4111-1111-1111-1111 / " : "\(1000 + index) / " }
        let input = Array(("x " + line + "y").utf8)
        #expect(input.count > 2 * MaskingEngine.digitRunMaxWindow)
        let expected = try maskOneShot(input)
        #expect(!text(expected).contains("4111-1111"))
        #expect(text(expected).components(separatedBy: "****-****-****-1111").count == 21)
        #expect(text(expected).contains("1001 / 1002"))
        var generator = SeededGenerator(state: 3)
        for _ in 0..<50 {
            let sizes = (0..<16).map { _ in Int.random(in: 1...97, using: &generator) }
            #expect(try maskChunked(input, sizes: sizes) == expected)
        }
        #expect(try Fixtures.engine.makeValueMasker().mask(input) == .masked(expected))
    }

    @Test func plantedValuesAreMaskedAndNeighboursKept() throws {
        let out = text(try maskOneShot(Array("a jane.doe@example.com b 4111111111111111 c".utf8)))
        #expect(out == "a [EMAIL] b ****-****-****-1111 c" || out == "a [EMAIL] b ************1111 c")
    }

    @Test func aPEMBlockIsMaskedFromBeginThroughEnd() throws {
        let input = "x -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIHIy\nAwEHoUQDQgAEPkNh\n-----END EC PRIVATE KEY----- y"
        #expect(text(try maskOneShot(Array(input.utf8))) == "x [PRIVATE_KEY] y")
    }

    @Test func aJWTIsMaskedToItsLastByte() throws {
        let input = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl-_x, next"
        #expect(text(try maskOneShot(Array(input.utf8))) == "Bearer [JWT], next")
    }

    @Test func onlyThePasswordOfAURLIsMasked() throws {
        let input = "dsn=postgres://app:S3cr3t!pw@db:5432/x"
        #expect(text(try maskOneShot(Array(input.utf8))) == "dsn=postgres://app:[PASSWORD]@db:5432/x")
    }

    @Test func decoysAreKept() throws {
        let decoys = "4111111111111112 666-12-3456 DE89370400440532013001 f1fa6599-871d-4fc7-9d02-a075c3f4c3d7 "
            + "90f7d7c2713e735e2a95b8ce967352cba72871be v2.13.36 2024-03-17T01:41:17.551Z PO1664782207 YOmhFXXBuCywsS2X7Ke5Hpcd+3Yz"
        #expect(text(try maskOneShot(Array(decoys.utf8))) == decoys)
    }

    @Test func binaryAndInvalidUTF8PassThroughUntouched() throws {
        var generator = SeededGenerator(state: 7)
        let input = (0..<20_000).map { _ in UInt8.random(in: 0...255, using: &generator) }.map { $0 == 0x40 ? 0x41 : $0 }
        #expect(try maskOneShot(input) == input)
        let invalid: [UInt8] = [0xFF, 0xFE, 0xC3, 0x28] + Array(" jane@example.com ".utf8) + [0xE2, 0x82]
        #expect(try maskOneShot(invalid) == [0xFF, 0xFE, 0xC3, 0x28] + Array(" [EMAIL] ".utf8) + [0xE2, 0x82])
    }

    @Test func heldBackBytesStayWithinTheHoldbackForALongLine() throws {
        let masker = try Fixtures.engine.makeStreamMasker()
        let line = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 16)
        var released = 0
        for _ in 0..<64 {
            try line.withUnsafeBytes { raw in try masker.write(raw) { released += $0.count } }
            #expect(masker.heldBack <= Fixtures.engine.holdback)
            #expect(masker.memoryFootprint < 64 * 1024)
        }
        try masker.finish { released += $0.count }
        #expect(released == 64 << 16)
    }

    @Test func flushReleasesHeldBytesAndMasksWhatContinuesAfterIt() throws {
        let masker = try Fixtures.engine.makeStreamMasker()
        var out: [UInt8] = []
        try Array("login jane.doe@exam".utf8).withUnsafeBytes { raw in try masker.write(raw) { out += $0 } }
        try masker.flush { out += $0 }
        #expect(masker.heldBack == 0)
        try Array("ple.com ok\n".utf8).withUnsafeBytes { raw in try masker.write(raw) { out += $0 } }
        try masker.finish { out += $0 }
        // The address was cut by the flush: its start left, the rest is masked.
        #expect(!text(out).contains("ple.com"))
        #expect(text(out).hasSuffix(" ok\n"))
    }

    @Test func finishTwiceAndWriteAfterFinishAreErrors() throws {
        let masker = try Fixtures.engine.makeStreamMasker()
        _ = try masker.finish()
        #expect(throws: MaskingError.self) { _ = try masker.finish() }
        #expect(throws: MaskingError.self) { _ = try masker.write([1, 2, 3]) }
        try masker.reset()
        #expect(text(try masker.write(Array("a@example.com ".utf8)) + masker.finish()) == "[EMAIL] ")
    }

    @Test func countsAreKeptPerDetectorWithoutValues() throws {
        let masker = try Fixtures.engine.makeStreamMasker()
        _ = try masker.write(Array("a@example.com b@example.com 268-45-8731 ".utf8))
        _ = try masker.finish()
        #expect(masker.counts == ["email": 2, "us_ssn": 1])
    }
}
