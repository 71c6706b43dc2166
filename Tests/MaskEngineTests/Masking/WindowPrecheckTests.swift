import CHyperscan
import Foundation
import Testing
@testable import MaskEngine

/// The window prechecks of triggered detectors (`WindowPrecheck`): a window that holds a match
/// always passes, and the engine with them masks byte for byte as the reference engine (which
/// scans every window).
@Suite struct WindowPrecheckTests {
    /// The built-in detector holding `pattern`.
    static func detector(with pattern: String) -> Detector? {
        Fixtures.detectors.first { $0.patterns.contains(pattern) }
    }

    /// Text in the shapes of the password family: each detector's own examples, cut and joined
    /// with the literals the prechecks look for and the bytes that end or break the patterns.
    static func passwordText(_ generator: inout SeededGenerator, maxCount: Int) -> [UInt8] {
        let examples = Fixtures.detectors.filter { !$0.triggers.isEmpty }.flatMap { $0.shouldMatch + $0.shouldNotMatch }.map(\.text)
        let fragments = ["<input ", "type=", "value=\"", "value='", "key=\"", "name='", "</", "<", ">", "-pass", "--password ",
                         "-requirepass", "-masterauth", " -p", "\t-p", "mysql", "login ", "account ", "machine ", "password ",
                         "Password", ",AKIA", ",ASIA", ",https://", "AKIAHPMNWESCPY4DPGUY", "123456789012.signin.aws.amazon.com",
                         "Summer2026#", "W@Tkp+8xQ2", "\n", " ", "\t", "\"", "'", ",", "=", ":", "secret", "pwd", "apikey"]
        var text: [UInt8] = []
        while text.count < maxCount {
            var piece = Array((Bool.random(using: &generator) ? examples.randomElement(using: &generator)!
                                : fragments.randomElement(using: &generator)!).utf8)
            if Int.random(in: 0..<4, using: &generator) == 0, piece.count > 2 {
                let cut = Int.random(in: 1..<piece.count, using: &generator)
                piece = Bool.random(using: &generator) ? Array(piece[..<cut]) : Array(piece[cut...])
            }
            text += piece
        }
        return Array(text.prefix(maxCount))
    }

    @Test(arguments: WindowPrecheck.needles.keys.sorted())
    func aWindowWithAMatchAlwaysPassesThePrecheck(_ pattern: String) throws {
        let owner = try #require(Self.detector(with: pattern), "no built-in detector has \(pattern)")
        let needles = try #require(WindowPrecheck.needles(for: Detector(id: "t", category: "secret", patterns: [pattern],
                                                                          caseless: owner.caseless)))
        let database = try HyperscanDatabase(
            expressions: [HyperscanExpression(pattern: pattern, flags: HS.multiline | HS.somLeftmost | (owner.caseless ? HS.caseless : 0),
                                              id: 0, owner: "test")],
            mode: HS.modeBlock, cache: nil)
        let scratch = try ScratchPool(databases: [database])
        var generator = SeededGenerator(state: UInt64(truncatingIfNeeded: pattern.utf8.count) &* 7919)
        var matched = 0
        var skipped = 0
        for _ in 0..<20_000 {
            let window = Self.passwordText(&generator, maxCount: Int.random(in: 8...600, using: &generator))
            let hasMatch = try !NativeConfirmerTests.hyperscanSpans(database, scratch: scratch, window).isEmpty
            let passes = window.withUnsafeBytes { WindowPrecheck.mayMatch($0, needles: needles) }
            if hasMatch {
                matched += 1
                #expect(passes, "a window with a match of \(owner.id) failed its precheck: \(text(window).debugDescription)")
                if !passes { return }
            } else if !passes {
                skipped += 1
            }
        }
        // Both sides must be exercised: windows with matches, and windows the precheck saves.
        #expect(matched > 50, "only \(matched) windows matched \(owner.id)")
        #expect(skipped > 50, "the precheck of \(owner.id) skipped only \(skipped) windows")
    }

    @Test func builtInPasswordDetectorsHaveWindowPrechecks() throws {
        let checked = Set(Fixtures.engine.detectors.filter { $0.windowNeedles != nil }.map(\.definition.id))
        #expect(checked == ["netrc_password", "xml_password", "html_password_input", "html_password_input_value_first",
                            "aws_csv_password", "keyed_password_value", "keyed_password_element", "mysql_password_flag",
                            "password_flag"])
        // The reference engine scans every window.
        #expect(NativeConfirmerTests.reference.detectors.allSatisfy { $0.windowNeedles == nil })
        // A changed pattern loses its precheck.
        var detector = try #require(Fixtures.detectors.first { $0.id == "xml_password" })
        detector.patterns[0] += "x"
        #expect(WindowPrecheck.needles(for: detector) == nil)
    }

    @Test func literalsAreFoundWithoutCaseAnywhereInTheWindow() {
        func contains(_ haystack: String, _ needle: String) -> Bool {
            Array(haystack.utf8).withUnsafeBytes { WindowPrecheck.mayMatch($0, needles: [[[Array(needle.utf8)]]]) }
        }
        #expect(contains("<INPUT type=password", "<input"))
        #expect(contains("x</", "</"))
        #expect(contains("</", "</"))
        #expect(!contains("<", "</"))
        #expect(contains("Machine", "machine"))
        #expect(contains("a MACHINE", "machine"))
        #expect(!contains("machin", "machine"))
        #expect(contains("ab-PASS", "-pass"))
        #expect(!contains("ab-pas", "-pass"))
        #expect(!contains("", "-pass"))
    }

    @Test func passwordFamilyMasksByteForByteAsTheReferenceEngine() throws {
        var generator = SeededGenerator(state: 5150)
        for _ in 0..<300 {
            let input = Self.passwordText(&generator, maxCount: 3000)
            let expected = try maskOneShot(input, engine: NativeConfirmerTests.reference)
            let sizes = (0..<16).map { _ in Int.random(in: 1...400, using: &generator) }
            #expect(try maskChunked(input, sizes: sizes, engine: Fixtures.engine) == expected, "\(text(input).debugDescription)")
        }
    }

    @Test func aTriggeredTokenLongerThanMaxWidthIsMaskedToItsEnd() throws {
        // Stripe and Slack tokens are found from their literal prefix; a token past max_width is
        // masked through its extension class, in any chunking, like the reference engine does.
        var generator = SeededGenerator(state: 31)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
        for length in [20, 120, 254, 255, 256, 400, 1500] {
            let tail = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            let stripe = Array("key sk_live_".utf8) + tail + Array(" next\n".utf8)
            let slack = Array("tok xoxb-462063584055-".utf8) + tail + Array(";next\n".utf8)
            for (input, expected) in [(stripe, "key [STRIPE_KEY] next\n"), (slack, length >= 10 ? "tok [SLACK_TOKEN];next\n" : "")] {
                let oneShot = try maskOneShot(input)
                #expect(text(oneShot) == expected, "length \(length)")
                #expect(oneShot == (try maskOneShot(input, engine: NativeConfirmerTests.reference)))
                let sizes = (0..<8).map { _ in Int.random(in: 1...97, using: &generator) }
                #expect(try maskChunked(input, sizes: sizes) == oneShot, "length \(length), chunked")
            }
        }
    }
}
