import Foundation
import Testing
@testable import MaskEngine

@Suite struct ValidatorTests {
    @Test func entropyIsBitForBitTheSumOverAllByteCounts() {
        // The plain definition: all 256 counts, summed in byte order.
        func reference(_ bytes: [UInt8]) -> Double {
            var counts = [Int](repeating: 0, count: 256)
            for byte in bytes { counts[Int(byte)] += 1 }
            var bits = 0.0
            for count in counts where count > 0 {
                let p = Double(count) / Double(bytes.count)
                bits -= p * log2(p)
            }
            return bits
        }
        var generator = SeededGenerator(state: 256)
        let alphabets: [[UInt8]] = [Array("ab".utf8), Array("abcd".utf8), Array("0123456789".utf8),
                                    Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=".utf8), Array(0...255)]
        for round in 0..<20_000 {
            let alphabet = alphabets[round % alphabets.count]
            let bytes = (0..<Int.random(in: 1...300, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
            let fast = bytes.withUnsafeBytes { Validators.shannonEntropy($0) }
            #expect(fast.bitPattern == reference(bytes).bitPattern, "\(bytes)")
            if fast.bitPattern != reference(bytes).bitPattern { return }
        }
    }

    func check(_ name: String, _ value: String, before: (UInt8?, UInt8?) = (nil, nil), after: (UInt8?, UInt8?) = (nil, nil),
               parameters: [String: Double] = [:]) -> Bool {
        Array(value.utf8).withUnsafeBytes { raw in
            Validators.validate(ValidatorSpec(name: name, parameters: parameters), CandidateView(bytes: raw, before: before, after: after))
        }
    }

    @Test(arguments: ["4111111111111111", "4111-1111-1111-1111", "4111 1111 1111 1111", "378282246310005", "3782-822463-10005", "6011000990139424", "5555555555554444", "2223003122003222"])
    func luhnAcceptsValidCardNumbers(_ number: String) { #expect(check("luhn", number)) }

    @Test(arguments: ["4111111111111112", "4111-1111 1111-1111", "0000000000000000", "1234"])
    func luhnRejectsInvalidCardNumbers(_ number: String) { #expect(!check("luhn", number)) }

    /// Validates `value` as it appears after `preceding` and before `following`.
    func check(_ name: String, _ value: String, in preceding: String, _ following: String = "") -> Bool {
        let left = Array(preceding.utf8.suffix(CandidateView.precedingLimit).reversed())
        let right = Array(following.utf8)
        return Array(value.utf8).withUnsafeBytes { raw in
            var view = CandidateView(bytes: raw, before: (left.first, left.dropFirst().first), after: (right.first, right.dropFirst().first))
            for (index, byte) in left.enumerated().dropFirst(2) {
                view.preceding |= UInt64(byte) << UInt64(8 * index)
                view.precedingCount = index + 1
            }
            return Validators.validate(ValidatorSpec(name: name), view)
        }
    }

    @Test func luhnRejectsAGroupOfALongerDigitRun() {
        #expect(!check("luhn", "5204 1029 3084 5760", in: "iban GB82 1234 "))
        #expect(!check("luhn", "4111 1111 1111 1111", in: "\"DE89 "))
        #expect(!check("luhn", "4111-1111-1111-1111", in: "9090-", "-1234"))
    }

    @Test(arguments: ["DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "FR1420041010050500013M02606", "NL91ABNA0417164300", "BE68539007547034"])
    func ibanAcceptsValidAccounts(_ iban: String) { #expect(check("iban", iban)) }

    @Test(arguments: ["DE89370400440532013001", "GB82 WEST 1234 5698 7654 33", "DE8937040044053201300", "XX89370400440532013000", "NL91ABNA041716430"])
    func ibanRejectsBadChecksumsAndLengths(_ iban: String) { #expect(!check("iban", iban)) }

    @Test(arguments: ["268-45-8731", "015-43-4410", "899-99-9999"])
    func ssnAcceptsIssuableNumbers(_ ssn: String) { #expect(check("ssn", ssn)) }

    @Test(arguments: ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", "078-05-1120"])
    func ssnRejectsAreaGroupAndSerialRules(_ ssn: String) { #expect(!check("ssn", ssn)) }

    @Test func jwtNeedsAHeaderWithAlg() {
        #expect(check("jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0"))
        #expect(!check("jwt", "eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxIn0"))
        #expect(!check("jwt", "eyJub3QganNvbg.abc"))
    }

    @Test func githubClassicTokensCarryTheirCRC32() {
        #expect(check("github_checksum", "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"))
        #expect(!check("github_checksum", "ghp_7gb05FPo07IFedgaZnQP86mg1FuKGQ0HqTWH"))
        #expect(!check("github_checksum", "ghp_short"))
    }

    @Test func ipv4NeedsFourOctetsUpTo255NotInALongerDottedNumber() {
        #expect(check("ipv4", "192.168.1.1"))
        #expect(!check("ipv4", "256.1.1.1"))
        #expect(!check("ipv4", "01.2.3.4"))
        #expect(!check("ipv4", "1.2.3.4", after: (UInt8(ascii: "."), UInt8(ascii: "5"))))
    }

    @Test func ipv6AcceptsFullAndCompressedFormsOnly() {
        #expect(check("ipv6", "2001:db8::1"))
        #expect(check("ipv6", "fe80::61"))
        #expect(check("ipv6", "2a00:1450:b1e4:0000:0000:0000:0000:011a"))
        #expect(!check("ipv6", "12:30:45"))
        #expect(!check("ipv6", "dead::beef"))
        #expect(!check("ipv6", "1::2::3"))
    }

    @Test func phoneNeedsEnoughDigitsAndNoGluedNeighbours() {
        #expect(check("phone", "+1 303 344 4977"))
        #expect(check("phone", "(305) 457-9071"))
        #expect(check("phone", "030 86012874"))
        #expect(!check("phone", "555-555-5555"))
        #expect(!check("phone", "+1 303 344 4977", before: (UInt8(ascii: "x"), nil)))
    }

    @Test func entropyRejectsLowEntropyAndPlaceholders() {
        #expect(check("entropy", "Zx9!kL2#pQ", parameters: ["min_entropy": 2.5, "min_length": 6]))
        #expect(!check("entropy", "aaaaaaaaaa", parameters: ["min_entropy": 2.5, "min_length": 6]))
        #expect(!check("entropy", "${TOKEN}", parameters: ["min_entropy": 1, "min_length": 6]))
    }

    @Test func base64NeedsPaddingAndAlphabet() {
        #expect(check("base64", "YWRtaW4="))
        #expect(!check("base64", "YWRtaW4"))
        #expect(!check("base64", "ab!c"))
    }

    @Test func dateAcceptsPlausibleBirthDates() {
        #expect(check("date", "1987-04-12"))
        #expect(check("date", "12/04/1987"))
        #expect(!check("date", "1987-13-45"))
        #expect(!check("date", "1850-01-01"))
    }

    static let space = UInt8(ascii: " ")
    static func byte(_ c: Character) -> UInt8 { c.asciiValue! }

    @Test func luhnAcceptsACardNextToOtherNumbers() {
        #expect(check("luhn", "4111111111111111", in: "2024-01-05 "))
        #expect(check("luhn", "4111111111111111", in: "card ", " 12/27 123"))
        #expect(check("luhn", "4111 1111 1111 1111", in: "2024-01-05 "))
        #expect(check("luhn", "4111 1111 1111 1111", in: "at 12:00:00 ", " 12/27 123"))
        #expect(check("luhn", "4111 1111 1111 1111", in: "ssn 078-05-1121 "))
        #expect(check("luhn", "4111 1111 1111 1111", in: "Card "))
        #expect(check("luhn", "4111-1111-1111-1111", in: "2024-01-05 ", "-12/27"))
    }

    @Test func ipv4RejectsVersionsAfterAProductToken() {
        #expect(!check("ipv4", "1.9.1.20", before: (Self.byte(":"), Self.byte("v"))))
        #expect(!check("ipv4", "1.0.2.3", before: (Self.byte("/"), Self.byte("x"))))
        #expect(!check("ipv4", "11.0.2.9", before: (Self.byte("-"), Self.byte("k"))))
        #expect(check("ipv4", "10.0.0.1", before: (Self.byte(":"), Self.byte("p"))))
        #expect(check("ipv4", "10.0.0.1", before: (Self.byte("/"), Self.byte("/"))))
    }

    @Test func ipv6AcceptsAnAddressAfterALabelButNotInsideALongerAddress() {
        #expect(check("ipv6", "fe80::a00:27ff:fe4e:66a1", before: (Self.byte(":"), Self.byte("r"))))
        #expect(check("ipv6", "2001:db8::1", before: (Self.byte("["), Self.byte(" "))))
        #expect(!check("ipv6", "2001:db8::1", before: (Self.byte(":"), Self.byte("f"))))
        #expect(!check("ipv6", "2001:db8::1", before: (Self.byte(":"), Self.byte(":"))))
    }

    @Test func phoneAcceptsNationalNumbersWithATrunkZero() {
        #expect(check("phone", "020 3705 5931"))
        #expect(check("phone", "0152 1675 4327"))
        #expect(check("phone", "(020) 3705 5931"))
        // A group of an IBAN or an account number is not a phone number.
        #expect(!check("phone", "0512 3456 7890", before: (Self.space, Self.byte("3"))))
        #expect(!check("phone", "0512 3456 7890", after: (Self.space, Self.byte("1"))))
    }

    @Test func entropyTreatsReferencesAndVariablesAsPlaceholders() {
        let parameters: [String: Double] = ["min_entropy": 1, "min_length": 4, "min_classes": 1]
        for value in ["var.db_password", "local.creds.pw", "process.env.DB_PASSWORD", "os.environ[\"PW\"]", "$DB_PASSWORD", "[REDACTED]"] {
            #expect(!check("entropy", value, parameters: parameters), "\(value)")
        }
        for value in ["variable.Xy12!", "$ecretPa55", "[Ab1]x"] {
            #expect(check("entropy", value, parameters: parameters), "\(value)")
        }
    }

    @Test func base64CanRequireShortValuesToDecodeToText() {
        #expect(check("base64", "6379"))
        #expect(!check("base64", "6379", parameters: ["text_below": 24]))
        #expect(!check("base64", "postgres", parameters: ["text_below": 24]))
        #expect(check("base64", "YWRtaW4=", parameters: ["text_below": 24]))
        #expect(check("base64", "c2VjcmV0LXdpdGgtbG9uZ2VyLXRleHQ=", parameters: ["text_below": 24]))
    }

    @Test func base64AgreesWithFoundationOnEveryInput() {
        // The validator decodes on the stack; Foundation's decoder (what it used before) is the
        // oracle, on random strings over the alphabet, padding, near-misses and random bytes.
        var generator = SeededGenerator(state: 64)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        let noise = Array("=-_ .\n\u{0}\u{ff}".utf8)
        for round in 0..<40_000 {
            var bytes = (0..<Int.random(in: 0...40, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
            switch round % 4 {
            case 0: if !bytes.isEmpty { bytes[bytes.count - 1] = UInt8(ascii: "=") }
            case 1: if bytes.count >= 2 { bytes[bytes.count - 1] = UInt8(ascii: "="); bytes[bytes.count - 2] = UInt8(ascii: "=") }
            case 2: if !bytes.isEmpty { bytes[Int.random(in: 0..<bytes.count, using: &generator)] = noise.randomElement(using: &generator)! }
            default: if bytes.count >= 3 { bytes[bytes.count - 3] = UInt8(ascii: "=") }
            }
            // The validator takes only lengths that are a multiple of 4 (Foundation also accepts
            // some others, such as 20 characters and `==`).
            if bytes.count % 4 != 0 { bytes.append(contentsOf: [UInt8](repeating: UInt8(ascii: "A"), count: 4 - bytes.count % 4)) }
            let decoded: [UInt8]? = bytes.withUnsafeBytes { raw in
                var out = [UInt8](repeating: 0, count: raw.count)
                let count = out.withUnsafeMutableBufferPointer { Validators.base64Decode(raw, into: $0) }
                return count.map { Array(out[0..<$0]) }
            }
            // Foundation also takes an `=` followed by more characters (`A5=A`); the validator is
            // strict there, as its documentation says: padding only at the end.
            let trailing = bytes.reversed().prefix { $0 == UInt8(ascii: "=") }.count
            if bytes.dropLast(trailing).contains(UInt8(ascii: "=")) || trailing > 2 {
                #expect(decoded == nil, "\(bytes)")
                continue
            }
            let foundation = Data(base64Encoded: Data(bytes))
            #expect(decoded == foundation.map { [UInt8]($0) }, "\(bytes)")
            if decoded != foundation.map({ [UInt8]($0) }) { return }
            // The text test: valid UTF-8 without control characters, as `String(data:encoding:)` said.
            if let foundation, !bytes.isEmpty {
                let text = String(data: foundation, encoding: .utf8) != nil
                    && foundation.allSatisfy({ $0 >= 32 && $0 != 127 || $0 == 9 || $0 == 10 || $0 == 13 })
                let accepted = bytes.withUnsafeBytes {
                    Validators.base64($0, Base64Parameters(["min_length": 0, "text_below": 1000]))
                }
                #expect(accepted == text, "\(bytes)")
            }
        }
    }

    @Test func base64TextTestRejectsInvalidUTF8() {
        // Decoded bytes C3 28 (a truncated sequence) and ED A0 80 (a surrogate).
        for value in ["wyg=", "7aCA"] {
            #expect(!check("base64", value, parameters: ["text_below": 24]), "\(value)")
        }
        #expect(check("base64", "w6k=", parameters: ["text_below": 24]))  // é
    }

    @Test func ibanAndDateAgreeWithTheirPlainForms() {
        // Plain forms of the two validators as first written (arrays and string slices).
        func plainIBAN(_ value: [UInt8]) -> Bool {
            let chars = value.filter { $0 != 32 }.map { $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 }
            guard chars.count >= 15, chars.count <= 34, chars.allSatisfy(Validators.isAlnum),
                  Validators.isAlpha(chars[0]), Validators.isAlpha(chars[1]), Validators.isDigit(chars[2]), Validators.isDigit(chars[3]),
                  Validators.ibanLengths[String(decoding: chars[0..<2], as: UTF8.self)] == chars.count else { return false }
            var remainder = 0
            for byte in chars[4...] + chars[0..<4] {
                remainder = Validators.isDigit(byte) ? (remainder * 10 + Int(byte - 48)) % 97 : (remainder * 100 + Int(byte - 65) + 10) % 97
            }
            return remainder == 1
        }
        func plainDate(_ value: [UInt8]) -> Bool {
            let numbers = String(decoding: value, as: UTF8.self).split(whereSeparator: { !$0.isASCII || !$0.isNumber }).map { Int($0)! }
            guard numbers.count == 3 else { return false }
            let (year, a, b) = numbers[0] > 31 ? (numbers[0], numbers[1], numbers[2]) : (numbers[2], numbers[0], numbers[1])
            return (1900...2099).contains(year) && ((1...12).contains(a) && (1...31).contains(b) || (1...31).contains(a) && (1...12).contains(b))
        }
        var generator = SeededGenerator(state: 97)
        let ibans = ["DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "FR1420041010050500013M02606", "NL91ABNA0417164300"]
        let characters = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ abc".utf8)
        for round in 0..<20_000 {
            var iban = Array(ibans[round % ibans.count].utf8)
            for _ in 0..<Int.random(in: 0...2, using: &generator) {
                iban[Int.random(in: 0..<iban.count, using: &generator)] = characters.randomElement(using: &generator)!
            }
            if round % 7 == 0 { iban.append(characters.randomElement(using: &generator)!) }
            let fast = iban.withUnsafeBytes { Validators.iban($0) }
            #expect(fast == plainIBAN(iban), "\(String(decoding: iban, as: UTF8.self))")
            let date = Array("\(Int.random(in: 0...2200, using: &generator))\([UInt8(ascii: "-"), UInt8(ascii: "/"), UInt8(ascii: ".")].randomElement(using: &generator)!)\(Int.random(in: 0...40, using: &generator))-\(Int.random(in: 0...40, using: &generator))".utf8)
            let parts = round % 2 == 0 ? date : Array(date.reversed())
            #expect(parts.withUnsafeBytes { Validators.date($0) } == plainDate(parts), "\(String(decoding: parts, as: UTF8.self))")
        }
    }

    @Test func inPlaceSortOrdersLikeTheStandardLibrary() {
        var generator = SeededGenerator(state: 11)
        for round in 0..<3_000 {
            let count = [0, 1, 2, 5, 20, 32, 33, 100, 700][round % 9]
            var values = (0..<count).map { _ in (start: Int.random(in: 0..<50, using: &generator), end: Int.random(in: 0..<50, using: &generator)) }
            if round % 3 == 0 { values.sort { $0.end < $1.end || ($0.end == $1.end && $0.start < $1.start) } }
            if round % 5 == 0 { values.reverse() }
            let expected = values.sorted { $0.end < $1.end || ($0.end == $1.end && $0.start < $1.start) }
            InPlaceSort.sort(&values) { $0.end < $1.end || ($0.end == $1.end && $0.start < $1.start) }
            #expect(values.map(\.start) == expected.map(\.start) && values.map(\.end) == expected.map(\.end))
        }
    }

    @Test func githubChecksumAgreesWithThePlainEncoding() {
        let base62 = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        var generator = SeededGenerator(state: 40)
        for round in 0..<5_000 {
            let body = (0..<30).map { _ in base62.randomElement(using: &generator)! }
            var value = UInt64(body.withUnsafeBytes { CRC32.checksum($0) })
            var encoded = [UInt8](repeating: base62[0], count: 6)
            for index in stride(from: 5, through: 0, by: -1) {
                encoded[index] = base62[Int(value % 62)]
                value /= 62
            }
            var token = Array("ghp_".utf8) + body + encoded
            if round % 2 == 1 { token[34 + Int.random(in: 0..<6, using: &generator)] = base62.randomElement(using: &generator)! }
            let valid = Array(token[34...]) == encoded
            #expect(token.withUnsafeBytes { Validators.githubChecksum($0) } == valid)
        }
    }

    @Test func crc32MatchesTheIEEEReferenceValue() {
        let value = Array("123456789".utf8).withUnsafeBytes { CRC32.checksum($0) }
        #expect(value == 0xCBF4_3926)
    }
}
