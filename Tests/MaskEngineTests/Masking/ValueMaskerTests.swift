import Testing
@testable import MaskEngine

@Suite struct ValueMaskerTests {
    @Test func theCheapCheckKnowsTheShortestMatchOfTheSelectedPatterns() throws {
        // An SSN-shaped pattern matches 11 bytes at least, an e-mail-ish one 5: the engine's bound
        // is the smaller, and values shorter than it skip the scan.
        let engine = try MaskingEngine(detectors: [
            Detector(id: "t-ssn", category: "pii", patterns: [#"\b\d{3}-\d{2}-\d{4}\b"#]),
            Detector(id: "t-mail", category: "pii", patterns: [#"[a-z]{1,20}@[a-z]{1,20}\.[a-z]{2,6}"#]),
        ], cache: nil)
        #expect(engine.shortestMatch == 6)
        #expect(engine.cannotMatch(byteCount: 5))
        #expect(!engine.cannotMatch(byteCount: 6))
        let masker = engine.makeValueMasker()
        #expect(try masker.mask("a@b.c") == .unchanged)
        #expect(try masker.mask("a@b.io") != .unchanged)
        // The checked-in corpora: short database values (ids, counts) are below the bound.
        // (`+12` is the shortest phone number the corpora's pattern takes.)
        #expect(Fixtures.engine.shortestMatch == 3)
        #expect(try Fixtures.engine.makeValueMasker().mask("12") == .unchanged)
    }

    @Test func aValueWithoutMatchesIsUnchanged() throws {
        #expect(try Fixtures.engine.makeValueMasker().mask("order PO1664782207") == .unchanged)
    }

    @Test func aValueIsMaskedLikeAOneShotStream() throws {
        let masker = Fixtures.engine.makeValueMasker()
        for sample in StreamMaskerTests.planted {
            let expected = try maskOneShot(Array(sample.utf8))
            #expect(try masker.mask(sample) == .masked(expected), "\(sample)")
        }
    }

    @Test func anchorCountsMatchAPlainCountAtEveryLength() {
        // The C counter works in rounds of 255 bytes (8-bit counters); lengths around the round
        // size and long values must count like a plain loop.
        var generator = SeededGenerator(state: 7)
        let alphabet = Array("0123456789:@%&abcXYZ -.\n".utf8) + [0, 255]
        for length in [0, 1, 2, 63, 64, 254, 255, 256, 510, 511, 4000] {
            let bytes = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            let anchors = bytes.withUnsafeBytes { Anchors($0) }
            #expect(anchors.digits == bytes.filter { $0 >= 48 && $0 <= 57 }.count, "length \(length)")
            #expect(anchors.colons == bytes.filter { $0 == UInt8(ascii: ":") }.count, "length \(length)")
            #expect(anchors.emailSigns == bytes.contains { $0 == UInt8(ascii: "@") || $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "&") })
        }
        let digits = [UInt8](repeating: UInt8(ascii: "7"), count: 1000)
        #expect(digits.withUnsafeBytes { Anchors($0) }.digits == 1000)
    }

    @Test func valuesAtTheAnchorThresholdsAreMaskedLikeAOneShotStream() throws {
        // The value masker skips a software finder when the value lacks the bytes its candidates
        // need (digits, colons, `@ % &`); the stream masker always runs them. Short values built
        // around those thresholds must come out the same.
        let pieces = ["1", "12", "123", "1.2.3.4", "10.0.0.1", "::1", "fe80::1", "a:b", "1:2", "@", "a@b.co", "x%40y.io", "&#64;",
                      "DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "GB82", " ", "-", "(", ")", "+1 303 344 4977",
                      "4111 1111 1111 1111", "268-45-8731", "IPv6:", "ana", "Q", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"]
        var generator = SeededGenerator(state: 64)
        let masker = Fixtures.engine.makeValueMasker()
        var changed = 0
        for _ in 0..<4000 {
            var value = ""
            for _ in 0..<Int.random(in: 1...4, using: &generator) { value += pieces.randomElement(using: &generator)! }
            let expected = try maskOneShot(Array(value.utf8))
            let result = try masker.mask(value)
            if expected == Array(value.utf8) {
                #expect(result == .unchanged, "\(value.debugDescription)")
            } else {
                changed += 1
                #expect(result == .masked(expected), "\(value.debugDescription)")
            }
        }
        #expect(changed > 500)
    }

    @Test func noStateCarriesBetweenValues() throws {
        let masker = Fixtures.engine.makeValueMasker()
        #expect(try masker.mask("jane.doe@exam") == .unchanged)
        #expect(try masker.mask("ple.com") == .unchanged)
    }

    @Test func hashTokensAreStablePerKeyAndDifferAcrossValues() throws {
        let engine = try Fixtures.engine(style: .hash)
        let masker = engine.makeValueMasker()
        let a1 = try masker.mask("jane@example.com")
        let a2 = try masker.mask("jane@example.com")
        let b = try masker.mask("john@example.com")
        #expect(a1 == a2)
        #expect(a1 != b)
        guard case .masked(let bytes) = a1 else { Issue.record("not masked"); return }
        #expect(text(bytes).hasPrefix("tok_") && text(bytes).count == 20)
        let otherKey = try MaskingEngine(detectors: Fixtures.detectors, profile: MaskingProfile(name: "h", style: .hash), hashKey: Array("other".utf8))
        #expect(try otherKey.makeValueMasker().mask("jane@example.com") != a1)
    }

    @Test func partialKeepsTheLastFourOfCardsAndIBANsButNeverOfSecrets() throws {
        let masker = try Fixtures.engine(style: .partial).makeValueMasker()
        #expect(try masker.mask("4111-1111-1111-1111") == .masked(Array("****-****-****-1111".utf8)))
        #expect(try masker.mask("GB82 WEST 1234 5698 7654 32") == .masked(Array("**** **** **** **** **54 32".utf8)))
        #expect(try masker.mask("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") == .masked(Array("[GITHUB_TOKEN]".utf8)))
    }

    @Test func theNullStyleNullsTheWholeValue() throws {
        let masker = try Fixtures.engine(style: .null).makeValueMasker()
        #expect(try masker.mask("ssn 268-45-8731") == .null)
        #expect(try masker.mask("nothing here") == .unchanged)
    }

    @Test func aProfileRunsOnlyTheDetectorsItSelects() throws {
        let engine = try MaskingEngine(detectors: Fixtures.detectors, profile: MaskingProfile(name: "secrets", detectors: ["category:secret"]))
        let masker = engine.makeValueMasker()
        #expect(try masker.mask("jane@example.com") == .unchanged)
        #expect(try masker.mask("AKIAIOSFODNN7EXAMPLE") == .masked(Array("[AWS_ACCESS_KEY_ID]".utf8)))
    }
}
