// Splitting and classification of PostgreSQL query text for the guardrails.
//
// The lexer follows PostgreSQL's own lexical rules (scan.l) closely enough that text the server
// reads as a string, quoted identifier or comment is never mistaken for a keyword, and a semicolon
// the server would split at is never hidden inside something we think is a string. Where the
// server's reading depends on `standard_conforming_strings`, the caller says which reading to
// use (the Postgres adapter follows the server's ParameterStatus and decides the other reading
// too when the two differ); the client encoding is assumed to be UTF-8.
//
// Everything works on the query's UTF-8 bytes, every loop is bounded by the input length, and
// recursion (CTE bodies, EXPLAIN, COPY queries) is bounded by `SQLClassifier.maximumNesting`.

/// One SQL statement of a query string, with what the guardrails need.
public struct SQLStatement: Sendable, Equatable {
    /// The statement's text as written, without the trailing semicolon, trimmed of surrounding whitespace (comments inside kept).
    public var text: String
    /// Lower-cased first keywords after comments, e.g. ["delete", "from"]; at most 4 words.
    ///
    /// These are the leading unquoted words of the statement (after any opening parentheses), so
    /// an identifier that directly follows the keywords is included: `delete from t` gives
    /// `["delete", "from", "t"]`.
    public var keywords: [String]
    /// Classes the guardrails match on (see ``SQLStatements``), deduplicated, in a stable order.
    public var classes: [String]
    /// The statement as code, which guardrail regexes see: comments removed, every string
    /// constant (quoted or dollar-quoted) replaced by `'?'`, whitespace between tokens collapsed
    /// to one space. So `/* drop table x */ select 1` and `select 'drop table x'` never match a
    /// rule about dropping tables.
    public var code: String = ""
    /// Statements inside this one that run as part of it, flattened: CTE bodies and the main
    /// statement after `WITH`, the body of `PREPARE … AS`, the query of `COPY (…)`, `DECLARE …
    /// CURSOR FOR` and `EXPLAIN ANALYZE`. Each carries its own text, code and classes, so a rule
    /// written for `DELETE` also sees a `DELETE` inside `WITH x AS (DELETE …) SELECT …`.
    public var nested: [SQLStatement] = []
    /// For `PREPARE name AS …`: the statement's name as the server stores it (unquoted names
    /// folded to lower case). For `EXECUTE name`: the name executed. For `DEALLOCATE`: the name
    /// released (`*` for ALL).
    public var preparedName: String?
    public var preparedRole: PreparedRole?

    /// What a statement does to the session's named prepared statements.
    public enum PreparedRole: Sendable, Equatable {
        case prepare, execute, deallocate
    }

    /// Creates a statement from its parts.
    public init(text: String, keywords: [String], classes: [String]) {
        self.text = text
        self.keywords = keywords
        self.classes = classes
    }
}

/// Splits PostgreSQL query text into statements and classifies each one.
///
/// Classes (in the order they are reported): `read`, `write`, `ddl`, `create`, `alter`, `drop`,
/// `truncate`, `dcl`, `grant`, `revoke`, `delete_without_where`, `update_without_where`,
/// `copy_in`, `copy_out`, `copy_program`, `copy_file`, `procedural`, `set`, `set_role`,
/// `transaction`, `utility`, `unknown`, `alter_system`, `file_access`, `admin_function`.
///
/// `procedural` is any statement that runs or installs code the gateway cannot read: `DO`,
/// `CALL`, `CREATE [OR REPLACE] FUNCTION | PROCEDURE | TRIGGER | EVENT TRIGGER | RULE | LANGUAGE
/// | TRANSFORM`. `file_access` and `admin_function` are calls anywhere in the statement of the
/// server functions that read or write the server's files (`pg_read_file`, `pg_ls_dir`,
/// `lo_import`, …) or act on the server or other sessions (`pg_terminate_backend`,
/// `pg_reload_conf`, `dblink`, …); `set_config('role', …)` is `set_role`.
public enum SQLStatements {
    /// The most statements one query is split into; anything beyond is folded into the last one,
    /// whose classes are then the union of the classes of everything folded into it.
    static let maximumStatements = 10_000

    /// Splits a query string into statements at top-level semicolons (not inside quotes, dollar quotes, comments or parentheses),
    /// dropping empty statements (only whitespace/comments).
    ///
    /// - Parameter standardConformingStrings: the server's setting; when off, a backslash escapes
    ///   the next byte inside `'…'` strings (as in `E'…'`).
    public static func split(_ query: String, standardConformingStrings: Bool = true) -> [SQLStatement] {
        let bytes = Array(query.utf8)
        let lexed = SQLLexer.tokenize(bytes, standardConformingStrings: standardConformingStrings)
        let segments = SQLSplitter.segments(
            of: lexed.tokens, byteCount: bytes.count, unbalancedAtEnd: lexed.openParentheses > 0)
        let classifier = SQLClassifier(bytes: bytes, tokens: lexed.tokens)
        return assemble(segments, classifier: classifier)
    }

    /// Turns segments into statements, folding any beyond ``maximumStatements`` into the last one.
    private static func assemble(_ segments: [SQLSegment], classifier: SQLClassifier) -> [SQLStatement] {
        guard segments.count > maximumStatements else {
            return segments.map { statement(for: $0, classifier: classifier) }
        }
        var statements = segments[..<(maximumStatements - 1)].map { statement(for: $0, classifier: classifier) }
        let rest = segments[(maximumStatements - 1)...]
        guard let first = rest.first, let last = rest.last else { return statements }
        var classes = SQLClassSet()
        var ignored: [Range<Int>] = []
        for segment in rest {
            classes.formUnion(classifier.classify(segment.tokens, nested: &ignored))
            classes.formUnion(classifier.functionClasses(segment.tokens))
        }
        let merged = SQLSegment(textStart: first.textStart, textEnd: last.textEnd, tokens: first.tokens)
        var folded = SQLStatement(
            text: classifier.trimmedText(of: merged),
            keywords: classifier.leadingWords(of: merged),
            classes: classes.names)
        folded.code = code(of: classifier.tokens[first.tokens.lowerBound..<last.tokens.upperBound], bytes: classifier.bytes)
        statements.append(folded)
        return statements
    }

    /// The statement for one non-empty segment.
    private static func statement(for segment: SQLSegment, classifier: SQLClassifier) -> SQLStatement {
        var nestedRanges: [Range<Int>] = []
        var classes = classifier.classify(segment.tokens, nested: &nestedRanges)
        classes.formUnion(classifier.functionClasses(segment.tokens))
        var statement = SQLStatement(
            text: classifier.trimmedText(of: segment),
            keywords: classifier.leadingWords(of: segment),
            classes: classes.names)
        statement.code = code(of: classifier.tokens[segment.tokens], bytes: classifier.bytes)
        statement.nested = nestedRanges.prefix(maximumNested).map { range in
            var ignored: [Range<Int>] = []
            var inner = classifier.classify(range, nested: &ignored)
            inner.formUnion(classifier.functionClasses(range))
            var nested = SQLStatement(text: classifier.text(of: range), keywords: [], classes: inner.names)
            nested.code = code(of: classifier.tokens[range], bytes: classifier.bytes)
            return nested
        }
        if let (role, name) = classifier.preparedStatementName(segment.tokens) {
            statement.preparedRole = role
            statement.preparedName = name
        }
        return statement
    }

    /// The most nested statements reported for one statement (the classes of all of them are
    /// in the outer statement's classes anyway).
    static let maximumNested = 64

    /// Tokens with strings neutralised and gaps (whitespace, comments) collapsed to one space.
    static func code(of tokens: ArraySlice<SQLToken>, bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var previousEnd: Int?
        for token in tokens {
            if token.kind == .punctuation && bytes[token.start] == SQLByte.semicolon { continue }
            if let previousEnd, token.start > previousEnd { out.append(SQLByte.space) }
            if token.kind == .string {
                out.append(contentsOf: [SQLByte.singleQuote, 0x3F, SQLByte.singleQuote])
            } else {
                out.append(contentsOf: bytes[token.start..<min(token.end, bytes.count)])
            }
            previousEnd = token.end
        }
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: - Bytes

/// The byte values the lexer and classifier look at.
private enum SQLByte {
    static let tab: UInt8 = 0x09
    static let newline: UInt8 = 0x0A
    static let verticalTab: UInt8 = 0x0B
    static let formFeed: UInt8 = 0x0C
    static let carriageReturn: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let doubleQuote: UInt8 = 0x22
    static let dollar: UInt8 = 0x24
    static let ampersand: UInt8 = 0x26
    static let singleQuote: UInt8 = 0x27
    static let openParenthesis: UInt8 = 0x28
    static let closeParenthesis: UInt8 = 0x29
    static let star: UInt8 = 0x2A
    static let plus: UInt8 = 0x2B
    static let comma: UInt8 = 0x2C
    static let minus: UInt8 = 0x2D
    static let dot: UInt8 = 0x2E
    static let slash: UInt8 = 0x2F
    static let semicolon: UInt8 = 0x3B
    static let backslash: UInt8 = 0x5C
    static let underscore: UInt8 = 0x5F

    /// PostgreSQL whitespace: space, tab, newline, carriage return, form feed, vertical tab.
    static func isSpace(_ byte: UInt8) -> Bool {
        byte == space || byte == tab || byte == newline || byte == carriageReturn
            || byte == formFeed || byte == verticalTab
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    static func isLetter(_ byte: UInt8) -> Bool {
        (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
    }

    /// `ident_start`: letters, underscore and any non-ASCII byte.
    static func isIdentifierStart(_ byte: UInt8) -> Bool {
        isLetter(byte) || byte == underscore || byte >= 0x80
    }

    /// `ident_cont`: `ident_start`, digits and `$`.
    static func isIdentifierContinue(_ byte: UInt8) -> Bool {
        isIdentifierStart(byte) || isDigit(byte) || byte == dollar
    }

    /// `dolq_cont`: like `ident_cont` but without `$`.
    static func isDollarTagContinue(_ byte: UInt8) -> Bool {
        isIdentifierStart(byte) || isDigit(byte)
    }

    /// ASCII lower-casing; other bytes are unchanged.
    static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }
}

// MARK: - Tokens

/// What kind of lexeme a token is. Comments and whitespace are not tokens.
enum SQLTokenKind: Sendable, Equatable {
    /// An unquoted identifier or keyword.
    case word
    /// A double-quoted (or `U&"…"`) identifier.
    case quotedIdentifier
    /// A string constant of any kind, including dollar-quoted ones.
    case string
    /// A numeric constant.
    case number
    /// A positional parameter such as `$1`.
    case parameter
    /// One byte of operator or punctuation.
    case punctuation
}

/// One token of query text.
struct SQLToken: Sendable, Equatable {
    var kind: SQLTokenKind
    /// Byte offset of the token's first byte.
    var start: Int
    /// Byte offset just past the token.
    var end: Int
    /// Parenthesis depth around the token (for `(` and `)` themselves: the depth outside them).
    var depth: Int
    /// The token's first byte.
    var lead: UInt8
    /// The lower-cased text of a `.word` token; empty for every other kind.
    var word: String
}

/// A tokenizer for PostgreSQL query text.
struct SQLLexer {
    private let bytes: [UInt8]
    /// When false, `'…'` and `N'…'` strings take backslash escapes (the server's
    /// `standard_conforming_strings = off`).
    private let standardConformingStrings: Bool
    private var tokens: [SQLToken] = []
    private var depth = 0

    private init(bytes: [UInt8], standardConformingStrings: Bool) {
        self.bytes = bytes
        self.standardConformingStrings = standardConformingStrings
    }

    /// The tokens of `bytes` and how many parentheses were left open at the end.
    static func tokenize(_ bytes: [UInt8], standardConformingStrings: Bool = true) -> (tokens: [SQLToken], openParentheses: Int) {
        var lexer = SQLLexer(bytes: bytes, standardConformingStrings: standardConformingStrings)
        lexer.run()
        return (lexer.tokens, lexer.depth)
    }

    /// Scans the whole input; every step advances by at least one byte.
    private mutating func run() {
        var index = 0
        while index < bytes.count {
            index = max(scan(at: index), index + 1)
        }
    }

    /// The byte at `index`, or 0 past the end (0 is never compared against).
    private func byte(_ index: Int) -> UInt8 {
        index >= 0 && index < bytes.count ? bytes[index] : 0
    }

    /// Scans the lexeme starting at `index`, records its token if it is one, and returns where the next lexeme starts.
    private mutating func scan(at index: Int) -> Int {
        let lead = bytes[index]
        if SQLByte.isSpace(lead) { return index + 1 }
        if lead == SQLByte.minus && byte(index + 1) == SQLByte.minus { return lineCommentEnd(from: index) }
        if lead == SQLByte.slash && byte(index + 1) == SQLByte.star { return blockCommentEnd(from: index) }
        if let end = prefixedLiteral(at: index) { return end }
        switch lead {
        case SQLByte.singleQuote:
            return emit(.string, from: index, to: quotedEnd(openingAt: index, backslashEscapes: !standardConformingStrings))
        case SQLByte.doubleQuote:
            return emit(.quotedIdentifier, from: index, to: quotedEnd(openingAt: index, backslashEscapes: false))
        case SQLByte.dollar:
            return dollar(at: index)
        default:
            break
        }
        if SQLByte.isDigit(lead) || (lead == SQLByte.dot && SQLByte.isDigit(byte(index + 1))) {
            return emit(.number, from: index, to: numberEnd(from: index))
        }
        if SQLByte.isIdentifierStart(lead) {
            return emitWord(from: index, to: identifierEnd(from: index))
        }
        return emitPunctuation(at: index)
    }

    /// Records a token of `kind` covering `start..<end` and returns `end`.
    private mutating func emit(_ kind: SQLTokenKind, from start: Int, to end: Int) -> Int {
        tokens.append(SQLToken(kind: kind, start: start, end: end, depth: depth, lead: bytes[start], word: ""))
        return end
    }

    /// Records an unquoted identifier or keyword, lower-cased, and returns `end`.
    private mutating func emitWord(from start: Int, to end: Int) -> Int {
        let word = String(decoding: bytes[start..<end].map(SQLByte.lowercased), as: UTF8.self)
        tokens.append(SQLToken(kind: .word, start: start, end: end, depth: depth, lead: bytes[start], word: word))
        return end
    }

    /// Records one byte of punctuation, tracking parenthesis depth, and returns the next index.
    private mutating func emitPunctuation(at index: Int) -> Int {
        let lead = bytes[index]
        if lead == SQLByte.closeParenthesis { depth = max(0, depth - 1) }
        tokens.append(SQLToken(kind: .punctuation, start: index, end: index + 1, depth: depth, lead: lead, word: ""))
        if lead == SQLByte.openParenthesis { depth += 1 }
        return index + 1
    }

    /// The end of a `--` comment: just past the next newline or carriage return, or the end of input.
    private func lineCommentEnd(from start: Int) -> Int {
        min(commentBodyEnd(from: start) + 1, bytes.count)
    }

    /// The end of a `/* */` comment, which nests; an unterminated comment runs to the end of input.
    private func blockCommentEnd(from start: Int) -> Int {
        var nesting = 1
        var index = start + 2
        while index < bytes.count {
            if bytes[index] == SQLByte.slash && byte(index + 1) == SQLByte.star {
                nesting += 1
                index += 2
            } else if bytes[index] == SQLByte.star && byte(index + 1) == SQLByte.slash {
                nesting -= 1
                index += 2
                if nesting == 0 { return index }
            } else {
                index += 1
            }
        }
        return bytes.count
    }

    /// Literals introduced by a letter: `E'…'` (backslash escapes), `B'…'`, `X'…'`, `N'…'`,
    /// `U&'…'` and `U&"…"`. Returns the index after the literal, or nil when `index` starts none.
    private mutating func prefixedLiteral(at index: Int) -> Int? {
        let next = byte(index + 1)
        switch SQLByte.lowercased(bytes[index]) {
        case UInt8(ascii: "e") where next == SQLByte.singleQuote:
            return emit(.string, from: index, to: escapeStringEnd(openingAt: index + 1))
        case UInt8(ascii: "b"), UInt8(ascii: "x"):
            guard next == SQLByte.singleQuote else { return nil }
            return emit(.string, from: index, to: quotedEnd(openingAt: index + 1, backslashEscapes: false))
        case UInt8(ascii: "n"):
            // N'…' is lexed like a plain string (scan.l's xnstart enters the xq state).
            guard next == SQLByte.singleQuote else { return nil }
            return emit(.string, from: index, to: quotedEnd(openingAt: index + 1, backslashEscapes: !standardConformingStrings))
        case UInt8(ascii: "u") where next == SQLByte.ampersand:
            let quote = byte(index + 2)
            if quote == SQLByte.singleQuote {
                return emit(.string, from: index, to: quotedEnd(openingAt: index + 2, backslashEscapes: false))
            }
            if quote == SQLByte.doubleQuote {
                return emit(.quotedIdentifier, from: index, to: quotedEnd(openingAt: index + 2, backslashEscapes: false))
            }
            return nil
        default:
            return nil
        }
    }

    /// The end of a quoted lexeme whose opening quote is at `open`: a doubled quote is an escaped
    /// quote and, when `backslashEscapes`, a backslash escapes the next byte. Unterminated runs to the end.
    private func quotedEnd(openingAt open: Int, backslashEscapes: Bool) -> Int {
        let quote = bytes[open]
        var index = open + 1
        while index < bytes.count {
            let current = bytes[index]
            if backslashEscapes && current == SQLByte.backslash {
                index += 2
            } else if current == quote {
                if byte(index + 1) != quote { return index + 1 }
                index += 2
            } else {
                index += 1
            }
        }
        return bytes.count
    }

    /// The end of an `E'…'` string whose opening quote is at `open`, including any continuation
    /// segments: PostgreSQL reads `E'a'` + newline + `'b\'c'` as one string lexed with backslash
    /// escapes throughout, so the continuation must not be read as a standard string.
    private func escapeStringEnd(openingAt open: Int) -> Int {
        var end = quotedEnd(openingAt: open, backslashEscapes: true)
        while let next = quoteContinuation(from: end) {
            end = quotedEnd(openingAt: next, backslashEscapes: true)
        }
        return end
    }

    /// The index of the quote that continues a string ending at `start`, if any: PostgreSQL's
    /// `quotecontinue`, i.e. spaces, tabs, form feeds and `--` comments, a newline, then any
    /// whitespace or newline-terminated `--` comments, then `'`.
    private func quoteContinuation(from start: Int) -> Int? {
        guard start > 0, start < bytes.count, bytes[start - 1] == SQLByte.singleQuote else { return nil }
        var index = start
        while index < bytes.count {
            let current = bytes[index]
            if current == SQLByte.space || current == SQLByte.tab || current == SQLByte.formFeed {
                index += 1
            } else if current == SQLByte.minus && byte(index + 1) == SQLByte.minus {
                index = commentBodyEnd(from: index)
            } else {
                break
            }
        }
        guard byte(index) == SQLByte.newline || byte(index) == SQLByte.carriageReturn else { return nil }
        index += 1
        while index < bytes.count {
            let current = bytes[index]
            if SQLByte.isSpace(current) {
                index += 1
            } else if current == SQLByte.minus && byte(index + 1) == SQLByte.minus {
                index = commentBodyEnd(from: index)
                guard byte(index) == SQLByte.newline || byte(index) == SQLByte.carriageReturn else { return nil }
                index += 1
            } else {
                break
            }
        }
        return byte(index) == SQLByte.singleQuote ? index : nil
    }

    /// The index of the newline (or end of input) that ends the `--` comment at `start`.
    private func commentBodyEnd(from start: Int) -> Int {
        var index = start + 2
        while index < bytes.count && bytes[index] != SQLByte.newline && bytes[index] != SQLByte.carriageReturn {
            index += 1
        }
        return index
    }

    /// A `$`: a parameter (`$1`), a dollar-quoted string (`$$…$$`, `$tag$…$tag$`) or punctuation.
    private mutating func dollar(at index: Int) -> Int {
        if SQLByte.isDigit(byte(index + 1)) {
            var end = index + 1
            while SQLByte.isDigit(byte(end)) { end += 1 }
            return emit(.parameter, from: index, to: end)
        }
        guard let tagEnd = dollarTagEnd(from: index) else { return emitPunctuation(at: index) }
        return emit(.string, from: index, to: dollarBodyEnd(tagStart: index, tagEnd: tagEnd))
    }

    /// The index after an opening dollar-quote delimiter at `start` (`$$` or `$tag$`, the tag not
    /// starting with a digit), or nil when there is none.
    private func dollarTagEnd(from start: Int) -> Int? {
        var index = start + 1
        if byte(index) == SQLByte.dollar { return index + 1 }
        guard SQLByte.isIdentifierStart(byte(index)) else { return nil }
        index += 1
        while index < bytes.count && SQLByte.isDollarTagContinue(bytes[index]) { index += 1 }
        return byte(index) == SQLByte.dollar ? index + 1 : nil
    }

    /// The index after the delimiter that closes the dollar quote opened by `tagStart..<tagEnd`,
    /// or the end of input. Linear: the tag holds no `$`, so a partial match never overlaps the next candidate.
    private func dollarBodyEnd(tagStart: Int, tagEnd: Int) -> Int {
        let length = tagEnd - tagStart
        var index = tagEnd
        while index + length <= bytes.count {
            if bytes[index] == SQLByte.dollar && matchesTag(at: index, tagStart: tagStart, length: length) {
                return index + length
            }
            index += 1
        }
        return bytes.count
    }

    /// Whether the `length` bytes at `index` equal those at `tagStart` (the caller checks bounds).
    private func matchesTag(at index: Int, tagStart: Int, length: Int) -> Bool {
        var offset = 0
        while offset < length {
            if bytes[index + offset] != bytes[tagStart + offset] { return false }
            offset += 1
        }
        return true
    }

    /// The end of an unquoted identifier or keyword starting at `start`.
    private func identifierEnd(from start: Int) -> Int {
        var index = start + 1
        while index < bytes.count && SQLByte.isIdentifierContinue(bytes[index]) { index += 1 }
        return index
    }

    /// The end of a number starting at `start`: digits, an optional fraction and an optional exponent.
    ///
    /// Letters after a number are deliberately not taken in: before PostgreSQL 15 the server read
    /// `1e'…'` as `1` followed by an `E'…'` string, and newer servers reject such text outright.
    private func numberEnd(from start: Int) -> Int {
        var index = start
        while SQLByte.isDigit(byte(index)) { index += 1 }
        if byte(index) == SQLByte.dot && byte(index + 1) != SQLByte.dot {
            index += 1
            while SQLByte.isDigit(byte(index)) { index += 1 }
        }
        if SQLByte.lowercased(byte(index)) == UInt8(ascii: "e") {
            var exponent = index + 1
            if byte(exponent) == SQLByte.plus || byte(exponent) == SQLByte.minus { exponent += 1 }
            if SQLByte.isDigit(byte(exponent)) {
                index = exponent
                while SQLByte.isDigit(byte(index)) { index += 1 }
            }
        }
        return index
    }
}

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

// MARK: - Classes

/// A class a statement can have; the declaration order is the reporting order.
enum SQLStatementClass: Int, CaseIterable, Sendable {
    case read, write, ddl, create, alter, drop, truncate, dcl, grant, revoke
    case deleteWithoutWhere, updateWithoutWhere
    case copyIn, copyOut, copyProgram, copyFile
    case procedural, set, setRole, transaction, utility, unknown
    case alterSystem, fileAccess, adminFunction

    /// The class's name as the guardrails spell it.
    var name: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .ddl: "ddl"
        case .create: "create"
        case .alter: "alter"
        case .drop: "drop"
        case .truncate: "truncate"
        case .dcl: "dcl"
        case .grant: "grant"
        case .revoke: "revoke"
        case .deleteWithoutWhere: "delete_without_where"
        case .updateWithoutWhere: "update_without_where"
        case .copyIn: "copy_in"
        case .copyOut: "copy_out"
        case .copyProgram: "copy_program"
        case .copyFile: "copy_file"
        case .procedural: "procedural"
        case .set: "set"
        case .setRole: "set_role"
        case .transaction: "transaction"
        case .utility: "utility"
        case .unknown: "unknown"
        case .alterSystem: "alter_system"
        case .fileAccess: "file_access"
        case .adminFunction: "admin_function"
        }
    }
}

/// A set of statement classes.
struct SQLClassSet: Sendable, Equatable, ExpressibleByArrayLiteral {
    private var bits: UInt32 = 0

    init() {}

    init(arrayLiteral elements: SQLStatementClass...) {
        for element in elements { insert(element) }
    }

    var isEmpty: Bool { bits == 0 }

    func contains(_ member: SQLStatementClass) -> Bool {
        bits & Self.mask(member) != 0
    }

    mutating func insert(_ member: SQLStatementClass) {
        bits |= Self.mask(member)
    }

    mutating func formUnion(_ other: SQLClassSet) {
        bits |= other.bits
    }

    func removing(_ member: SQLStatementClass) -> SQLClassSet {
        var copy = self
        copy.bits &= ~Self.mask(member)
        return copy
    }

    /// The members' names in reporting order.
    var names: [String] {
        SQLStatementClass.allCases.filter(contains).map(\.name)
    }

    private static func mask(_ member: SQLStatementClass) -> UInt32 {
        1 << UInt32(member.rawValue)
    }
}

// MARK: - Classification

/// The tokens of one statement being classified: `start` is its first keyword, and tokens at
/// parenthesis depth `base` or less are its top level.
private struct SQLStatementSpan {
    var start: Int
    var end: Int
    var base: Int
}

/// Derives guardrail classes from the tokens of a statement.
struct SQLClassifier: Sendable {
    let bytes: [UInt8]
    let tokens: [SQLToken]

    /// How deeply statements inside statements (CTE bodies, EXPLAIN, COPY, PREPARE) are followed.
    static let maximumNesting = 32

    /// Statements whose first keyword alone decides their classes.
    private static let fixedClasses: [String: SQLClassSet] = [
        "values": [.read], "table": [.read], "show": [.read], "fetch": [.read],
        "insert": [.write], "merge": [.write],
        "import": [.ddl, .create],
        "drop": [.ddl, .drop],
        "truncate": [.write, .ddl, .truncate],
        "comment": [.ddl], "reindex": [.ddl], "security": [.ddl],
        "grant": [.dcl, .grant], "revoke": [.dcl, .revoke], "reassign": [.dcl],
        "begin": [.transaction], "start": [.transaction], "commit": [.transaction], "end": [.transaction],
        "rollback": [.transaction], "savepoint": [.transaction], "release": [.transaction], "abort": [.transaction],
        "call": [.write, .procedural], "do": [.write, .procedural],
        "vacuum": [.utility], "analyze": [.utility], "analyse": [.utility], "listen": [.utility],
        "notify": [.utility], "unlisten": [.utility], "deallocate": [.utility], "execute": [.utility],
        "lock": [.utility], "checkpoint": [.utility], "load": [.utility], "cluster": [.utility],
        "close": [.utility], "move": [.utility],
        "refresh": [.write, .utility],
    ]

    /// Keywords that can start the main statement after a WITH list.
    private static let mainStatementKeywords: Set<String> = [
        "select", "insert", "update", "delete", "merge", "values", "table",
    ]

    // MARK: Segments

    /// The segment's text, trimmed of surrounding whitespace.
    func trimmedText(of segment: SQLSegment) -> String {
        var start = max(0, segment.textStart)
        var end = min(bytes.count, segment.textEnd)
        while start < end && SQLByte.isSpace(bytes[start]) { start += 1 }
        while end > start && SQLByte.isSpace(bytes[end - 1]) { end -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// Up to four leading unquoted words of the segment, after any opening parentheses.
    func leadingWords(of segment: SQLSegment) -> [String] {
        var index = segment.tokens.lowerBound
        while index < segment.tokens.upperBound && isPunctuation(index, SQLByte.openParenthesis) { index += 1 }
        var words: [String] = []
        while index < segment.tokens.upperBound && words.count < 4 && tokens[index].kind == .word {
            words.append(tokens[index].word)
            index += 1
        }
        return words
    }

    // MARK: Entry

    /// The classes of the statement made of the tokens in `range`; never empty.
    func classify(_ range: Range<Int>, nesting: Int = 0) -> SQLClassSet {
        var ignored: [Range<Int>] = []
        return classify(range, nesting: nesting, nested: &ignored)
    }

    /// The classes of the statement in `range`; appends the token ranges of the statements it
    /// runs inside itself (see ``SQLStatement/nested``) to `nested`.
    func classify(_ range: Range<Int>, nesting: Int = 0, nested: inout [Range<Int>]) -> SQLClassSet {
        guard nesting <= Self.maximumNesting else { return [.unknown] }
        let end = min(range.upperBound, tokens.count)
        var start = max(0, range.lowerBound)
        while start < end && isPunctuation(start, SQLByte.openParenthesis) { start += 1 }
        guard start < end, tokens[start].kind == .word else { return [.unknown] }
        let span = SQLStatementSpan(start: start, end: end, base: tokens[start].depth)
        let classes = classifyStatement(span, nesting: nesting, nested: &nested)
        return classes.isEmpty ? [.unknown] : classes
    }

    /// Classifies a statement that runs inside another and reports its range as nested.
    private func classifyInner(_ range: Range<Int>, nesting: Int, nested: inout [Range<Int>]) -> SQLClassSet {
        if range.lowerBound < range.upperBound, nested.count < SQLStatements.maximumNested * 4 { nested.append(range) }
        return classify(range, nesting: nesting, nested: &nested)
    }

    /// Dispatches on the first keyword.
    private func classifyStatement(_ span: SQLStatementSpan, nesting: Int, nested: inout [Range<Int>]) -> SQLClassSet {
        let keyword = tokens[span.start].word
        switch keyword {
        case "select":
            return hasTopLevelWord("into", in: span) ? [.write, .ddl, .create] : [.read]
        case "with":
            return classifyWith(span, nesting: nesting, nested: &nested)
        case "create":
            return classifyCreate(span)
        case "alter":
            return word(span.start + 1, span) == "system" ? [.ddl, .alter, .alterSystem] : [.ddl, .alter]
        case "update":
            return classifyModification(span, withoutWhere: .updateWithoutWhere)
        case "delete":
            return classifyModification(span, withoutWhere: .deleteWithoutWhere)
        case "explain":
            return classifyExplain(span, nesting: nesting, nested: &nested)
        case "copy":
            return classifyCopy(span, nesting: nesting, nested: &nested)
        case "set":
            return classifySet(span)
        case "reset":
            return classifyReset(span)
        case "prepare":
            return classifyPrepare(span, nesting: nesting, nested: &nested)
        case "declare":
            return classifyDeclare(span, nesting: nesting, nested: &nested)
        case "discard":
            return word(span.start + 1, span) == "all" ? [.utility, .setRole] : [.utility]
        default:
            return Self.fixedClasses[keyword] ?? [.unknown]
        }
    }

    // MARK: Statements

    /// UPDATE or DELETE: a write, flagged when it has no top-level WHERE.
    private func classifyModification(_ span: SQLStatementSpan, withoutWhere: SQLStatementClass) -> SQLClassSet {
        var classes: SQLClassSet = [.write]
        if !hasTopLevelWord("where", in: span) { classes.insert(withoutWhere) }
        return classes
    }

    /// `WITH [RECURSIVE] name [(columns)] AS [NOT] [MATERIALIZED] (body) [SEARCH…|CYCLE…], … main`:
    /// the main statement's classes plus those of every CTE body except `read`.
    private func classifyWith(_ span: SQLStatementSpan, nesting: Int, nested: inout [Range<Int>]) -> SQLClassSet {
        var classes = SQLClassSet()
        var index = span.start + 1
        if word(index, span) == "recursive" { index += 1 }
        while index < span.end && isName(index) {
            index += 1
            if isPunctuation(index, SQLByte.openParenthesis, span) { index = min(groupEnd(index, span) + 1, span.end) }
            guard word(index, span) == "as" else { break }
            index += 1
            if word(index, span) == "not" { index += 1 }
            if word(index, span) == "materialized" { index += 1 }
            guard isPunctuation(index, SQLByte.openParenthesis, span) else { break }
            let close = groupEnd(index, span)
            classes.formUnion(classifyInner((index + 1)..<close, nesting: nesting + 1, nested: &nested).removing(.read))
            index = skipSearchAndCycle(from: min(close + 1, span.end), span)
            guard isPunctuation(index, SQLByte.comma, span) else { break }
            index += 1
        }
        if let main = mainStatementStart(from: index, span) {
            classes.formUnion(classifyInner(main..<span.end, nesting: nesting + 1, nested: &nested))
        } else {
            classes.insert(.unknown)
        }
        return classes
    }

    /// Skips `SEARCH …` and `CYCLE …` clauses after a CTE body, up to the next top-level comma or main keyword.
    private func skipSearchAndCycle(from start: Int, _ span: SQLStatementSpan) -> Int {
        var index = start
        while index < span.end, word(index, span) == "search" || word(index, span) == "cycle" {
            index += 1
            while index < span.end && !(isTopLevel(index, span)
                && (isPunctuation(index, SQLByte.comma) || Self.mainStatementKeywords.contains(tokens[index].word))) {
                index += 1
            }
        }
        return index
    }

    /// Where the main statement after a WITH list starts: at `index` when it looks like one,
    /// otherwise the first top-level main keyword after WITH; nil when there is none.
    private func mainStatementStart(from index: Int, _ span: SQLStatementSpan) -> Int? {
        if index < span.end
            && (Self.mainStatementKeywords.contains(word(index, span)) || isPunctuation(index, SQLByte.openParenthesis)) {
            return index
        }
        return firstTopLevelWord(in: Self.mainStatementKeywords, from: span.start + 1, span)
    }

    /// `EXPLAIN [ANALYZE] [VERBOSE] statement` or `EXPLAIN (options) statement`: a read, unless
    /// ANALYZE runs the statement, in which case the statement's own classes.
    private func classifyExplain(_ span: SQLStatementSpan, nesting: Int, nested: inout [Range<Int>]) -> SQLClassSet {
        var index = span.start + 1
        var analyze = false
        if isPunctuation(index, SQLByte.openParenthesis, span) {
            let close = groupEnd(index, span)
            analyze = optionsEnableAnalyze((index + 1)..<close)
            index = min(close + 1, span.end)
        } else {
            while ["analyze", "analyse", "verbose"].contains(word(index, span)) {
                if word(index, span) != "verbose" { analyze = true }
                index += 1
            }
        }
        guard analyze, index < span.end else { return [.read] }
        return classifyInner(index..<span.end, nesting: nesting + 1, nested: &nested)
    }

    /// Whether an EXPLAIN option list turns ANALYZE on (any value but false, off or 0).
    private func optionsEnableAnalyze(_ range: Range<Int>) -> Bool {
        var analyze = false
        for index in range where tokens[index].kind == .word {
            let option = tokens[index].word
            guard option == "analyze" || option == "analyse" else { continue }
            let value = index + 1 < range.upperBound ? literalValue(index + 1) : ""
            analyze = !["false", "off", "0"].contains(value)
        }
        return analyze
    }

    /// `COPY table|(query) FROM|TO STDIN|STDOUT|PROGRAM '…'|'file'`.
    private func classifyCopy(_ span: SQLStatementSpan, nesting: Int, nested: inout [Range<Int>]) -> SQLClassSet {
        var classes = SQLClassSet()
        var index = span.start + 1
        if isPunctuation(index, SQLByte.openParenthesis, span) {
            let close = groupEnd(index, span)
            classes.formUnion(classifyInner((index + 1)..<close, nesting: nesting + 1, nested: &nested).removing(.read))
            index = min(close + 1, span.end)
        }
        guard let direction = firstTopLevelWord(in: ["from", "to"], from: index, span) else {
            classes.insert(.write)
            return classes
        }
        let target = direction + 1
        let targetWord = word(target, span)
        let toFile = target < span.end && tokens[target].kind == .string
        let outward = tokens[direction].word == "to"
        classes.insert(outward ? .read : .write)
        if targetWord == "program" {
            classes.insert(.copyProgram)
        } else if targetWord == "stdin" || targetWord == "stdout" {
            classes.insert(outward ? .copyOut : .copyIn)
        } else if toFile {
            classes.insert(.copyFile)
        }
        return classes
    }

    /// `SET [SESSION|LOCAL] ROLE …`, `SET SESSION AUTHORIZATION …` and `SET role|session_authorization = …`
    /// change who the session acts as; any other SET is `set`.
    private func classifySet(_ span: SQLStatementSpan) -> SQLClassSet {
        var index = span.start + 1
        if word(index, span) == "session" || word(index, span) == "local" {
            if word(index + 1, span) == "authorization" { return [.setRole] }
            index += 1
        }
        return namesRoleSetting(index, span) ? [.setRole] : [.set]
    }

    /// `RESET ROLE`, `RESET SESSION AUTHORIZATION` (and `RESET ALL`, which includes the role) are `set_role`.
    private func classifyReset(_ span: SQLStatementSpan) -> SQLClassSet {
        let index = span.start + 1
        if word(index, span) == "all" { return [.set, .setRole] }
        if word(index, span) == "session" { return [.setRole] }
        return namesRoleSetting(index, span) ? [.setRole] : [.set]
    }

    /// Whether the setting named at `index` is `role` or `session_authorization` (names are
    /// case-insensitive even when quoted; a `U&"…"` name with escapes is assumed to be one).
    private func namesRoleSetting(_ index: Int, _ span: SQLStatementSpan) -> Bool {
        guard index < span.end else { return false }
        let token = tokens[index]
        let roleNames: Set<String> = ["role", "session_authorization", "authorization"]
        switch token.kind {
        case .word:
            return roleNames.contains(token.word)
        case .quotedIdentifier:
            let name = quotedIdentifierName(token)
            if token.lead != SQLByte.doubleQuote && (name.contains("\\") || word(index + 1, span) == "uescape") {
                return true
            }
            return roleNames.contains(name)
        default:
            return false
        }
    }

    /// `PREPARE TRANSACTION` is a transaction; `PREPARE name AS statement` is a utility plus the statement's classes.
    private func classifyPrepare(_ span: SQLStatementSpan, nesting: Int, nested: inout [Range<Int>]) -> SQLClassSet {
        if word(span.start + 1, span) == "transaction" { return [.transaction] }
        var classes: SQLClassSet = [.utility]
        if let keyword = firstTopLevelWord(in: ["as"], from: span.start + 1, span) {
            classes.formUnion(classifyInner((keyword + 1)..<span.end, nesting: nesting + 1, nested: &nested))
        }
        return classes
    }

    /// `DECLARE name … CURSOR … FOR query`: a utility plus the query's classes.
    private func classifyDeclare(_ span: SQLStatementSpan, nesting: Int, nested: inout [Range<Int>]) -> SQLClassSet {
        var classes: SQLClassSet = [.utility]
        if let cursor = firstTopLevelWord(in: ["cursor"], from: span.start + 1, span),
           let keyword = firstTopLevelWord(in: ["for"], from: cursor + 1, span) {
            classes.formUnion(classifyInner((keyword + 1)..<span.end, nesting: nesting + 1, nested: &nested))
        }
        return classes
    }

    /// `CREATE …`: DDL; `procedural` when it installs code (functions, procedures, triggers,
    /// rules, languages, transforms), whatever options come between CREATE and the object kind.
    private func classifyCreate(_ span: SQLStatementSpan) -> SQLClassSet {
        var classes: SQLClassSet = [.ddl, .create]
        var index = span.start + 1
        let modifiers: Set<String> = ["or", "replace", "constraint", "trusted", "procedural", "temp", "temporary", "event"]
        while modifiers.contains(word(index, span)) { index += 1 }
        let codeObjects: Set<String> = ["function", "procedure", "trigger", "rule", "language", "transform"]
        if codeObjects.contains(word(index, span)) || word(span.start + 1, span) == "event" { classes.insert(.procedural) }
        return classes
    }

    /// Server functions that read or write the server's files.
    private static let fileFunctions: Set<String> = [
        "pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_ls_dir", "pg_ls_logdir", "pg_ls_waldir",
        "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_ls_logicalsnapdir", "pg_ls_logicalmapdir",
        "pg_ls_replslotdir", "lo_import", "lo_export", "pg_file_write", "pg_file_rename", "pg_file_unlink",
        "pg_file_sync", "pg_logdir_ls", "pg_current_logfile",
    ]

    /// Server functions that act on the server, other sessions or other servers.
    private static let adminFunctions: Set<String> = [
        "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_promote",
        "pg_switch_wal", "pg_create_restore_point", "pg_backup_start", "pg_backup_stop", "pg_start_backup",
        "pg_stop_backup", "pg_create_physical_replication_slot", "pg_create_logical_replication_slot",
        "pg_drop_replication_slot", "pg_replication_origin_create", "pg_wal_replay_pause", "pg_wal_replay_resume",
        "dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query", "dblink_open",
        "pg_file_settings", "pg_hba_file_rules", "pg_log_backend_memory_contexts", "pg_signal_backend",
    ]

    /// Classes from the functions the tokens call, at any depth: `file_access`, `admin_function`,
    /// and `set_role` for `set_config('role' | 'session_authorization', …)` (or a setting name that
    /// is not a plain string constant). A `U&"…"` name with escapes could be any of them.
    func functionClasses(_ range: Range<Int>) -> SQLClassSet {
        var classes = SQLClassSet()
        let end = min(range.upperBound, tokens.count)
        var index = max(0, range.lowerBound)
        while index + 1 < end {
            defer { index += 1 }
            guard isPunctuation(index + 1, SQLByte.openParenthesis) else { continue }
            let token = tokens[index]
            let name: String
            switch token.kind {
            case .word:
                name = token.word
            case .quotedIdentifier:
                if token.lead != SQLByte.doubleQuote {
                    let raw = quotedIdentifierName(token)
                    if raw.contains("\\") || (index + 2 < end && tokens[index + 2].word == "uescape") {
                        classes.insert(.fileAccess)
                        classes.insert(.adminFunction)
                        classes.insert(.setRole)
                        continue
                    }
                    name = raw
                } else {
                    name = quotedIdentifierName(token)
                }
            default:
                continue
            }
            if Self.fileFunctions.contains(name) { classes.insert(.fileAccess) }
            if Self.adminFunctions.contains(name) { classes.insert(.adminFunction) }
            if name == "set_config" {
                let argument = index + 2
                let literal = argument < end && tokens[argument].kind == .string && tokens[argument].lead == SQLByte.singleQuote
                    ? literalValue(argument) : nil
                if literal == nil || ["role", "session_authorization"].contains(literal!) { classes.insert(.setRole) }
            }
        }
        return classes
    }

    /// For `PREPARE name …`, `EXECUTE name …` and `DEALLOCATE [PREPARE] name | ALL`: the role and
    /// the name as the server keys it (unquoted names lower-cased, quoted names as written).
    func preparedStatementName(_ range: Range<Int>) -> (SQLStatement.PreparedRole, String)? {
        let end = min(range.upperBound, tokens.count)
        var index = max(0, range.lowerBound)
        guard index < end, tokens[index].kind == .word else { return nil }
        let role: SQLStatement.PreparedRole
        switch tokens[index].word {
        case "prepare": role = .prepare
        case "execute": role = .execute
        case "deallocate": role = .deallocate
        default: return nil
        }
        index += 1
        if role == .deallocate, index < end, tokens[index].word == "prepare" { index += 1 }
        guard index < end else { return nil }
        let token = tokens[index]
        switch token.kind {
        case .word:
            if role == .prepare && token.word == "transaction" { return nil }
            if role == .deallocate && token.word == "all" { return (role, "*") }
            return (role, token.word)
        case .quotedIdentifier where token.lead == SQLByte.doubleQuote:
            return (role, quotedIdentifierText(token))
        default:
            return (role, "?")
        }
    }

    /// The bytes of the tokens in `range`, from the first token's start to the last one's end.
    func text(of range: Range<Int>) -> String {
        let end = min(range.upperBound, tokens.count)
        guard range.lowerBound < end else { return "" }
        return String(decoding: bytes[tokens[range.lowerBound].start..<min(tokens[end - 1].end, bytes.count)], as: UTF8.self)
    }

    /// A double-quoted identifier's name exactly as the server keys it (`""` unescaped, case kept).
    private func quotedIdentifierText(_ token: SQLToken) -> String {
        var name: [UInt8] = []
        var index = token.start + 1
        while index < token.end {
            let current = bytes[index]
            if current == SQLByte.doubleQuote {
                guard index + 1 < token.end && bytes[index + 1] == SQLByte.doubleQuote else { break }
                index += 1
            }
            name.append(current)
            index += 1
        }
        return String(decoding: name, as: UTF8.self)
    }

    // MARK: Token helpers

    /// The lower-cased word at `index` inside `span`, or "" when it is not an unquoted word.
    private func word(_ index: Int, _ span: SQLStatementSpan) -> String {
        index >= span.start && index < span.end ? tokens[index].word : ""
    }

    /// Whether the token at `index` is the punctuation byte `byte`.
    private func isPunctuation(_ index: Int, _ byte: UInt8) -> Bool {
        index >= 0 && index < tokens.count && tokens[index].kind == .punctuation && tokens[index].lead == byte
    }

    /// Whether the token at `index`, inside `span`, is the punctuation byte `byte`.
    private func isPunctuation(_ index: Int, _ byte: UInt8, _ span: SQLStatementSpan) -> Bool {
        index < span.end && isPunctuation(index, byte)
    }

    /// Whether the token at `index` can name something (an unquoted or quoted identifier).
    private func isName(_ index: Int) -> Bool {
        index < tokens.count && (tokens[index].kind == .word || tokens[index].kind == .quotedIdentifier)
    }

    /// Whether the token at `index` is at the span's top level (outside its parentheses).
    private func isTopLevel(_ index: Int, _ span: SQLStatementSpan) -> Bool {
        tokens[index].depth <= span.base
    }

    /// Whether `keyword` appears as a top-level word after the span's first keyword.
    private func hasTopLevelWord(_ keyword: String, in span: SQLStatementSpan) -> Bool {
        firstTopLevelWord(in: [keyword], from: span.start + 1, span) != nil
    }

    /// The index of the first top-level word in `keywords` at or after `start`, if any.
    private func firstTopLevelWord(in keywords: Set<String>, from start: Int, _ span: SQLStatementSpan) -> Int? {
        var index = max(start, span.start)
        while index < span.end {
            if tokens[index].kind == .word && isTopLevel(index, span) && keywords.contains(tokens[index].word) {
                return index
            }
            index += 1
        }
        return nil
    }

    /// The index of the `)` closing the `(` at `open`, or the span's end when it is unclosed.
    private func groupEnd(_ open: Int, _ span: SQLStatementSpan) -> Int {
        let depth = tokens[open].depth
        var index = open + 1
        while index < span.end {
            if isPunctuation(index, SQLByte.closeParenthesis) && tokens[index].depth <= depth { return index }
            index += 1
        }
        return span.end
    }

    /// A constant's value for option checks: a word, a number's text or a quoted string's contents, lower-cased.
    private func literalValue(_ index: Int) -> String {
        let token = tokens[index]
        switch token.kind {
        case .word:
            return token.word
        case .number:
            return lowercasedText(token.start..<token.end)
        case .string where token.lead == SQLByte.singleQuote && token.end - token.start >= 2:
            return lowercasedText((token.start + 1)..<(token.end - 1))
        default:
            return ""
        }
    }

    /// A quoted identifier's name with `""` unescaped, lower-cased (setting names are case-insensitive).
    private func quotedIdentifierName(_ token: SQLToken) -> String {
        var index = token.start
        while index < token.end && bytes[index] != SQLByte.doubleQuote { index += 1 }
        index += 1
        var name: [UInt8] = []
        while index < token.end {
            let current = bytes[index]
            if current == SQLByte.doubleQuote {
                guard index + 1 < token.end && bytes[index + 1] == SQLByte.doubleQuote else { break }
                index += 1
            }
            name.append(SQLByte.lowercased(current))
            index += 1
        }
        return String(decoding: name, as: UTF8.self)
    }

    /// The bytes in `range`, ASCII-lower-cased, as a string.
    private func lowercasedText(_ range: Range<Int>) -> String {
        String(decoding: bytes[range].map(SQLByte.lowercased), as: UTF8.self)
    }
}
