import MaskEngine
import Testing
@testable import Adapters

/// Masking of terminal output whose values are interrupted by escape sequences.
@Suite struct TerminalMaskerTests {
    static func mask(_ parts: [[UInt8]]) throws -> String {
        let masker = try TerminalMasker(engine: testEngine)
        var out: [UInt8] = []
        for part in parts { out += try masker.write(part) }
        try masker.finish { out += $0 }
        return String(decoding: out, as: UTF8.self)
    }

    static func mask(_ text: String) throws -> String { try mask([Array(text.utf8)]) }

    @Test func aColourInsideACardNumberIsMaskedAndTheColourKept() throws {
        let out = try Self.mask("card 4111\u{1b}[31m1111\u{1b}[0m11111111 ok\n")
        #expect(!out.contains("4111") && !out.contains("11111111"), "\(out.debugDescription)")
        #expect(out.contains("\u{1b}[31m") && out.contains("\u{1b}[0m"))
        #expect(out.hasPrefix("card ") && out.hasSuffix(" ok\n"))
    }

    @Test func aColourInsideAnEmailIsMasked() throws {
        let out = try Self.mask("mail jane.\u{1b}[1mdoe\u{1b}[0m@exam\u{1b}]0;title\u{07}ple.com done")
        #expect(out.contains("[EMAIL]") && !out.contains("jane") && !out.contains("doe@"), "\(out.debugDescription)")
        #expect(out.contains("\u{1b}[1m") && out.contains("\u{1b}]0;title\u{07}"))
    }

    @Test func escapesOutsideValuesStayExactlyWhereTheyWere() throws {
        let text = "\u{1b}[1;31mDANGER\u{1b}[0m deploy by \u{1b}[4mjane.doe@example.com\u{1b}[24m at \u{1b}[2K10:00\n"
        #expect(try Self.mask(text) == "\u{1b}[1;31mDANGER\u{1b}[0m deploy by \u{1b}[4m[EMAIL]\u{1b}[24m at \u{1b}[2K10:00\n")
        #expect(try Self.mask("plain \u{1b}(B text \u{1b}7\u{1b}8") == "plain \u{1b}(B text \u{1b}7\u{1b}8")
    }

    @Test func valuesInsideEscapeSequencesAreMaskedToo() throws {
        let out = try Self.mask("\u{1b}]0;jane.doe@example.com\u{07}x \u{1b}[4111111111111111;1m")
        #expect(!out.contains("jane.doe") && !out.contains("4111111111111111"), "\(out.debugDescription)")
    }

    @Test func theOutputDoesNotDependOnHowTheInputIsSplit() throws {
        let sample = Array("a 4111\u{1b}[31m1111\u{1b}[0m11111111 b jane.\u{1b}[1mdoe@example.com\u{1b}]2;t\u{1b}\\ z\n".utf8)
        let whole = try Self.mask([sample])
        for split in 0...sample.count {
            #expect(try Self.mask([Array(sample[..<split]), Array(sample[split...])]) == whole, "split \(split)")
        }
        for first in stride(from: 0, to: sample.count, by: 7) {
            for second in first...sample.count {
                let parts = [Array(sample[..<first]), Array(sample[first..<second]), Array(sample[second...])]
                #expect(try Self.mask(parts) == whole, "splits \(first), \(second)")
            }
        }
        #expect(try Self.mask(sample.map { [$0] }) == whole)
    }

    @Test func longTextAndManyEscapesStayBounded() throws {
        let masker = try TerminalMasker(engine: testEngine)
        var sent = 0
        let line = Array("\u{1b}[32mok\u{1b}[0m row jane.doe@example.com\n".utf8)
        for _ in 0..<3000 {
            sent += try masker.write(line).count
            #expect(masker.heldBack < 2 * TerminalMasker.maximumQueuedEscapes)
        }
        try masker.finish { sent += $0.count }
        #expect(sent > 0)
        #expect(masker.counts["email"] == 3000)
        let unterminated = try Self.mask("\u{1b}]0;" + String(repeating: "x", count: 10_000))
        #expect(unterminated.utf8.count == 10_004)
    }
}
