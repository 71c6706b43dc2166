// The guardrail classes of a statement, from its tokens.

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
