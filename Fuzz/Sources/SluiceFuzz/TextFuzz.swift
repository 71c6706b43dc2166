import Foundation
@testable import Adapters
@testable import Gateway

/// Parsers of text the gateway decides on: SQL, shell command lines, the configuration.
enum TextFuzz {
    /// The SQL lexer, splitter and classifier, on bytes as sent (any encoding) and as text.
    static func sql(_ input: [UInt8]) {
        var rest = input[...]
        var choices = Choices(&rest)
        let standard = choices.below(2) == 0
        let bytes = Array(rest)
        let (tokens, _) = SQLLexer.tokenize(bytes, standardConformingStrings: standard)
        for token in tokens where token.start < 0 || token.end > bytes.count || token.start > token.end {
            fatalError("a token spans \(token.start)..<\(token.end) in a \(bytes.count)-byte input")
        }
        let statements = SQLStatements.split(String(decoding: bytes, as: UTF8.self), standardConformingStrings: standard)
        for statement in statements where statement.keywords.count > 4 {
            fatalError("\(statement.keywords.count) keywords kept")
        }
    }

    static func shell(_ input: [UInt8]) {
        let line = ShellCommandLine.parse(String(decoding: input, as: UTF8.self))
        _ = line.commands.map(\.name)
    }

    /// The configuration loader: anything may be refused, nothing may crash.
    static func config(_ input: [UInt8]) {
        _ = try? GatewayConfiguration.parse(text: String(decoding: input, as: UTF8.self))
    }
}
