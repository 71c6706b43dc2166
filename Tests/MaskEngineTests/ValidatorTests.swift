import Testing
@testable import MaskEngine

@Suite struct ValidatorTests {
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

    @Test func luhnRejectsAGroupOfALongerDigitRun() {
        #expect(!check("luhn", "5204 1029 3084 5760", before: (UInt8(ascii: " "), UInt8(ascii: "0"))))
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

    @Test func crc32MatchesTheIEEEReferenceValue() {
        let value = Array("123456789".utf8).withUnsafeBytes { CRC32.checksum($0) }
        #expect(value == 0xCBF4_3926)
    }
}
