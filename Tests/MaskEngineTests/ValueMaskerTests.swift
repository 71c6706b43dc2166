import Testing
@testable import MaskEngine

@Suite struct ValueMaskerTests {
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
