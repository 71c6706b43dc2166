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
package struct SQLStatement: Sendable, Equatable {
    /// The statement's text as written, without the trailing semicolon, trimmed of surrounding whitespace (comments inside kept).
    package var text: String
    /// Lower-cased first keywords after comments, e.g. ["delete", "from"]; at most 4 words.
    ///
    /// These are the leading unquoted words of the statement (after any opening parentheses), so
    /// an identifier that directly follows the keywords is included: `delete from t` gives
    /// `["delete", "from", "t"]`.
    package var keywords: [String]
    /// Classes the guardrails match on (see ``SQLStatements``), deduplicated, in a stable order.
    package var classes: [String]
    /// The statement as code, which guardrail regexes see: comments removed, every string
    /// constant (quoted or dollar-quoted) replaced by `'?'`, whitespace between tokens collapsed
    /// to one space. So `/* drop table x */ select 1` and `select 'drop table x'` never match a
    /// rule about dropping tables.
    package var code: String = ""
    /// Statements inside this one that run as part of it, flattened: CTE bodies and the main
    /// statement after `WITH`, the body of `PREPARE … AS`, the query of `COPY (…)`, `DECLARE …
    /// CURSOR FOR` and `EXPLAIN ANALYZE`. Each carries its own text, code and classes, so a rule
    /// written for `DELETE` also sees a `DELETE` inside `WITH x AS (DELETE …) SELECT …`.
    package var nested: [SQLStatement] = []
    /// For `PREPARE name AS …`: the statement's name as the server stores it (unquoted names
    /// folded to lower case). For `EXECUTE name`: the name executed. For `DEALLOCATE`: the name
    /// released (`*` for ALL).
    package var preparedName: String?
    package var preparedRole: PreparedRole?

    /// What a statement does to the session's named prepared statements.
    package enum PreparedRole: Sendable, Equatable {
        case prepare, execute, deallocate
    }

    /// Creates a statement from its parts.
    package init(text: String, keywords: [String], classes: [String]) {
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
package enum SQLStatements {
    /// The most statements one query is split into; anything beyond is folded into the last one,
    /// whose classes are then the union of the classes of everything folded into it.
    static let maximumStatements = 10_000

    /// Splits a query string into statements at top-level semicolons (not inside quotes, dollar quotes, comments or parentheses),
    /// dropping empty statements (only whitespace/comments).
    ///
    /// - Parameter standardConformingStrings: the server's setting; when off, a backslash escapes
    ///   the next byte inside `'…'` strings (as in `E'…'`).
    package static func split(_ query: String, standardConformingStrings: Bool = true) -> [SQLStatement] {
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
