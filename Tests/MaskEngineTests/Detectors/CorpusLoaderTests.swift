import Testing
@testable import MaskEngine

@Suite struct CorpusLoaderTests {
    let examples = """
        examples:
          match: [a, b, c]
          no_match: [d, e, f]
    """

    @Test func loadsEveryCheckedInCorpus() throws {
        let detectors = try CorpusLoader.load(directories: [Fixtures.corpora])
        let ids = Set(detectors.map(\.id))
        for required in ["email", "credit_card", "iban", "us_ssn", "phone", "ipv4", "ipv6", "date_of_birth",
                         "aws_access_key_id", "aws_secret_access_key", "github_token", "slack_token", "stripe_key",
                         "jwt", "pem_private_key", "url_credentials", "connection_string_password",
                         "secret_assignment", "k8s_secret_data"] {
            #expect(ids.contains(required), "missing detector \(required)")
        }
        for detector in detectors {
            #expect(detector.shouldMatch.count >= 3 && detector.shouldNotMatch.count >= 3)
        }
    }

    /// Corpora parse with Yams' basic resolver; the loader reads YAML 1.1 booleans itself.
    @Test(arguments: [("true", true), ("True", true), ("yes", true), ("on", true),
                      ("false", false), ("FALSE", false), ("no", false), ("off", false)])
    func caselessTakesPlainYAMLBooleans(_ text: String, _ value: Bool) throws {
        let yaml = "detectors:\n  - id: x\n    category: pii\n    pattern: 'a'\n    caseless: \(text)\n    max_width: 7\n\(examples)\n"
        let detectors = try CorpusLoader.parse(yaml: yaml, file: "bool.yaml")
        #expect(detectors.first?.caseless == value)
        #expect(detectors.first?.maxWidth == 7)
    }

    @Test(arguments: ["'true'", "\"yes\"", "tRue", "1", "maybe"])
    func caselessRefusesWhatIsNotAPlainBoolean(_ text: String) {
        let yaml = "detectors:\n  - id: x\n    category: pii\n    pattern: 'a'\n    caseless: \(text)\n\(examples)\n"
        #expect {
            try CorpusLoader.parse(yaml: yaml, file: "bool.yaml")
        } throws: { error in
            (error as? CorpusError)?.reason.contains("'caseless' must be true or false") == true
        }
    }

    @Test func aSyntaxErrorNamesFileAndLine() {
        let yaml = "detectors:\n  - id: x\n    pattern: [unclosed\n"
        #expect {
            try CorpusLoader.parse(yaml: yaml, file: "bad.yaml")
        } throws: { error in
            guard let error = error as? CorpusError else { return false }
            return error.file == "bad.yaml" && error.line >= 3 && error.reason.contains("YAML")
        }
    }

    @Test func anUnknownKeyIsAnErrorAtItsLine() {
        let yaml = "detectors:\n  - id: x\n    category: pii\n    patern: 'a'\n\(examples)\n"
        #expect {
            try CorpusLoader.parse(yaml: yaml, file: "typo.yaml")
        } throws: { error in
            guard let error = error as? CorpusError else { return false }
            return error.line == 4 && error.reason.contains("unknown key 'patern'")
        }
    }

    @Test func tooFewExamplesAreRefused() {
        let yaml = "detectors:\n  - id: x\n    category: pii\n    pattern: 'abc'\n    examples:\n      match: [abc]\n      no_match: [x]\n"
        #expect {
            try CorpusLoader.parse(yaml: yaml, file: "few.yaml")
        } throws: { error in
            (error as? CorpusError)?.reason.contains("at least 3") == true
        }
    }

    @Test func anUnknownValidatorOrStyleIsRefused() {
        let validator = "detectors:\n  - id: x\n    category: pii\n    pattern: 'abc'\n    validator: nope\n\(examples)\n"
        #expect(throws: CorpusError.self) { try CorpusLoader.parse(yaml: validator, file: "v.yaml") }
        let style = "detectors:\n  - id: x\n    category: pii\n    pattern: 'abc'\n    style: blur\n\(examples)\n"
        #expect(throws: CorpusError.self) { try CorpusLoader.parse(yaml: style, file: "s.yaml") }
    }

    @Test func aBadPatternNamesTheDetectorAndHyperscansReason() throws {
        let detector = Detector(id: "broken", category: "pii", patterns: ["a(b"])
        #expect {
            try MaskingEngine(detectors: [detector])
        } throws: { error in
            guard let error = error as? HyperscanError else { return false }
            return error.detector == "broken" && error.code == .compileFailed && !error.reason.isEmpty
        }
    }

    @Test func anUnboundedPatternWithoutMaxWidthIsRefused() {
        let detector = Detector(id: "greedy", category: "pii", patterns: ["a+b"])
        #expect(throws: HyperscanError.self) { try MaskingEngine(detectors: [detector]) }
    }
}
