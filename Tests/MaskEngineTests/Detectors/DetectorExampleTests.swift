import Testing
@testable import MaskEngine

@Suite struct DetectorExampleTests {
    @Test(arguments: Fixtures.detectors.map(\.id))
    func everyExampleOfTheDetectorHolds(_ id: String) throws {
        let detector = try #require(Fixtures.detectors.first { $0.id == id })
        let result = try #require(try DetectorSelfTest.run([detector]).first)
        #expect(result.failures.isEmpty, "\(result.failures)")
    }

    @Test func positiveExamplesAreMaskedByTheFullProfileToo() throws {
        let masker = Fixtures.engine.makeValueMasker()
        for detector in Fixtures.detectors {
            for example in detector.shouldMatch {
                #expect(try masker.mask(example.text) != .unchanged, "\(detector.id) line \(example.line)")
            }
        }
    }
}
