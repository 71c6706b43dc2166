// Splitting a query's tokens into statements at the semicolons the server splits at.

// MARK: - Splitting

/// The span of one statement: its text between separators and its tokens.
struct SQLSegment: Sendable, Equatable {
    /// Byte offset where the statement's text starts (just after the previous separator).
    var textStart: Int
    /// Byte offset where the text ends (the separating semicolon or the end of input).
    var textEnd: Int
    /// Indices of the statement's tokens.
    var tokens: Range<Int>
}

/// Cuts a token stream into statements.
enum SQLSplitter {
    /// Non-empty segments of the query, split at semicolons outside parentheses.
    ///
    /// When parentheses are left open at the end of input (a syntax error the server would reject),
    /// the final segment is instead split at every semicolon, so nothing can hide behind a stray `(`.
    static func segments(of tokens: [SQLToken], byteCount: Int, unbalancedAtEnd: Bool) -> [SQLSegment] {
        var result: [SQLSegment] = []
        var textStart = 0
        var firstToken = 0
        for index in tokens.indices where isSemicolon(tokens[index]) && tokens[index].depth == 0 {
            appendIfNotEmpty(SQLSegment(textStart: textStart, textEnd: tokens[index].start, tokens: firstToken..<index), to: &result)
            textStart = tokens[index].end
            firstToken = index + 1
        }
        let tail = SQLSegment(textStart: textStart, textEnd: byteCount, tokens: firstToken..<tokens.count)
        if unbalancedAtEnd {
            result.append(contentsOf: splitAtEverySemicolon(tail, tokens: tokens))
        } else {
            appendIfNotEmpty(tail, to: &result)
        }
        return result
    }

    /// `segment` split at each of its semicolons regardless of depth.
    private static func splitAtEverySemicolon(_ segment: SQLSegment, tokens: [SQLToken]) -> [SQLSegment] {
        var result: [SQLSegment] = []
        var textStart = segment.textStart
        var firstToken = segment.tokens.lowerBound
        for index in segment.tokens where isSemicolon(tokens[index]) {
            appendIfNotEmpty(SQLSegment(textStart: textStart, textEnd: tokens[index].start, tokens: firstToken..<index), to: &result)
            textStart = tokens[index].end
            firstToken = index + 1
        }
        appendIfNotEmpty(SQLSegment(textStart: textStart, textEnd: segment.textEnd, tokens: firstToken..<segment.tokens.upperBound), to: &result)
        return result
    }

    private static func isSemicolon(_ token: SQLToken) -> Bool {
        token.kind == .punctuation && token.lead == SQLByte.semicolon
    }

    /// Keeps only segments with at least one token (not just whitespace and comments).
    private static func appendIfNotEmpty(_ segment: SQLSegment, to result: inout [SQLSegment]) {
        if !segment.tokens.isEmpty { result.append(segment) }
    }
}
