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

    @Test func crc32MatchesTheIEEEReferenceValue() {
        let value = Array("123456789".utf8).withUnsafeBytes { CRC32.checksum($0) }
        #expect(value == 0xCBF4_3926)
    }
}
