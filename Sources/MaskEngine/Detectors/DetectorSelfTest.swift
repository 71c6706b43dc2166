/// The outcome of running one detector's corpus examples.
public struct DetectorTestResult: Sendable {
    public var id: String
    public var category: String
    public var matchPassed: Int
    public var matchTotal: Int
    public var noMatchPassed: Int
    public var noMatchTotal: Int
    /// The examples that failed, as `line: text` (example text is test data from the corpus).
    public var failures: [String]

    public var passed: Bool { failures.isEmpty }
}

/// Runs every `match` / `no_match` example of each detector with that detector alone.
public enum DetectorSelfTest {
    public static func run(_ detectors: [Detector]) throws -> [DetectorTestResult] {
        try detectors.map { detector in
            let engine = try MaskingEngine(detectors: [detector], profile: MaskingProfile(name: "self-test", style: .redact))
            let masker = engine.makeValueMasker()
            var result = DetectorTestResult(id: detector.id, category: detector.category, matchPassed: 0,
                                            matchTotal: detector.shouldMatch.count, noMatchPassed: 0,
                                            noMatchTotal: detector.shouldNotMatch.count, failures: [])
            for example in detector.shouldMatch {
                if try masker.mask(example.text) != .unchanged {
                    result.matchPassed += 1
                } else {
                    result.failures.append("line \(example.line): expected a match in \(example.text.debugDescription)")
                }
            }
            for example in detector.shouldNotMatch {
                if try masker.mask(example.text) == .unchanged {
                    result.noMatchPassed += 1
                } else {
                    result.failures.append("line \(example.line): expected no match in \(example.text.debugDescription)")
                }
            }
            return result
        }
    }
}
