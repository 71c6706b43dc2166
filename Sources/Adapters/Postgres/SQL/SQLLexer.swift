// The lexer for PostgreSQL query text: bytes to tokens (see SQLStatements.swift for the rules it
// follows). Every loop is bounded by the input length.

// MARK: - Bytes

/// The byte values the lexer and classifier look at.
enum SQLByte {
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
