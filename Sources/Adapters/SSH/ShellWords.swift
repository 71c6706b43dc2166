/// A shell-word parse of an SSH command line, for the guardrails (pure logic, no IO).
///
/// Regexes over raw shell text are easy to evade: `r''m -rf`, `rm -r -f`, `rm -fr`,
/// `rm --recursive --force`, `rm${IFS}-rf`. This parse resolves quotes and escapes, splits the
/// line into simple commands at `;` `&` `&&` `||` `|` `|&` newlines and parentheses, drops
/// assignments, redirections, comments and here-document bodies, looks through command wrappers
/// (`sudo`, `env`, `xargs`, `find -exec`, `bash -c '…'`, …) and reports, for every simple command,
/// canonical texts that rules are matched against besides the raw line (see ``forms``):
///
/// - plain: the command's basename and its words, quotes resolved: `rm -fr /tmp/x`
/// - split: basename, each short option on its own, sorted, then long options sorted, then the
///   operands in order: `rm -f -r /tmp/x` (known long options are mapped to their short letter:
///   `rm --recursive --force` → `rm -f -r`; `rm -R` → `rm -r`)
/// - combined: the short options as one word, in every order of every subset of two or more
///   (four options or fewer; sorted only beyond): `rm -fr /tmp/x` and `rm -rf /tmp/x`
///
/// What cannot be known statically is reported as class `dynamic` (``dynamicReasons`` says why):
/// command substitution (`$(…)`, backticks, `<(…)`), a variable, glob or brace expansion in
/// command position, `${IFS}`, `eval`, `source`/`.`, a shell or interpreter fed from stdin or
/// given inline code (`| sh`, `bash -s`, `python -c`, `perl -e`), a decoder (`base64 -d`,
/// `xxd -r`), brace expansion anywhere, an unterminated quote, and input over the limits.
/// A variable in an argument (`rm $opts /`) is class `expansion`. Variables assigned a literal
/// earlier on the same line are substituted (`x=rm; $x -rf` → `rm -rf`), and still reported.
package struct ShellCommandLine: Sendable, Equatable {
    package struct SimpleCommand: Sendable, Equatable {
        /// The words after quote removal, without assignments and redirections.
        package var words: [String]
        /// `words[0]`'s last path component (`/bin/rm` → `rm`).
        package var name: String
    }

    package private(set) var commands: [SimpleCommand] = []
    /// Why the line cannot be fully known statically (sorted, unique); empty when it can.
    package private(set) var dynamicReasons: [String] = []
    /// A variable or parameter is expanded in an argument (its value is unknown here).
    package private(set) var expandsVariables = false

    /// Limits: longer input, deeper nesting or more commands make the line `dynamic`.
    package static let maximumLength = 64 * 1024
    package static let maximumDepth = 4
    package static let maximumCommands = 256
    package static let maximumForms = 2048

    /// Guardrail classes: `dynamic` and/or `expansion`.
    package var classes: [String] {
        (dynamicReasons.isEmpty ? [] : ["dynamic"]) + (expandsVariables ? ["expansion"] : [])
    }

    /// The canonical texts of every simple command (plain, split, combined), unique, in order.
    package var forms: [String] {
        var seen = Set<String>()
        var result: [String] = []
        for command in commands {
            for form in Self.forms(of: command) where seen.insert(form).inserted {
                guard result.count < Self.maximumForms else { return result }
                result.append(form)
            }
        }
        return result
    }

    package static func parse(_ text: String) -> ShellCommandLine {
        var line = ShellCommandLine()
        guard text.utf8.count <= maximumLength else {
            line.dynamicReasons = ["too_long"]
            return line
        }
        var analyzer = Analyzer()
        analyzer.analyze(Array(text.utf8), depth: 0)
        line.commands = analyzer.commands
        line.expandsVariables = analyzer.expandsVariables
        line.dynamicReasons = analyzer.reasons.sorted()
        return line
    }

    // MARK: - Forms

    /// Long options mapped to a short letter, and short aliases, per command.
    static let longOptions: [String: [String: Character]] = [
        "rm": ["recursive": "r", "force": "f", "dir": "d", "verbose": "v", "interactive": "i"],
        "cp": ["recursive": "r", "force": "f", "archive": "a", "verbose": "v"],
        "mv": ["force": "f", "verbose": "v"],
        "chmod": ["recursive": "R", "verbose": "v"],
        "chown": ["recursive": "R", "verbose": "v"],
        "chgrp": ["recursive": "R", "verbose": "v"],
        "kill": ["signal": "s"],
        "git": ["force": "f"],
    ]
    static let shortAliases: [String: [Character: Character]] = ["rm": ["R": "r"], "cp": ["R": "r"]]

    static func forms(of command: SimpleCommand) -> [String] {
        var flags: [Character] = []
        var longs: [String] = []
        var operands: [String] = []
        var endOfOptions = false
        let table = longOptions[command.name] ?? [:]
        let aliases = shortAliases[command.name] ?? [:]
        for word in command.words.dropFirst() {
            if endOfOptions { operands.append(word); continue }
            if word == "--" { endOfOptions = true; continue }
            if word.hasPrefix("--") {
                let name = String(word.dropFirst(2).prefix { $0 != "=" })
                if let letter = table[name], !word.contains("=") { flags.append(letter) } else { longs.append(word) }
                continue
            }
            if word.hasPrefix("-"), word.count > 1, word.dropFirst().allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) {
                flags.append(contentsOf: word.dropFirst().map { aliases[$0] ?? $0 })
                continue
            }
            operands.append(word)
        }
        let letters = Array(Set(flags)).sorted()
        let tail = (longs.sorted() + operands).map { " " + $0 }.joined()
        var result = [([command.name] + command.words.dropFirst()).joined(separator: " ")]
        result.append(command.name + letters.map { " -\($0)" }.joined() + tail)
        if letters.count >= 2 {
            result.append(command.name + " -" + String(letters) + tail)
            if letters.count <= 4 {
                for subset in subsets(letters) where subset.count >= 2 {
                    for order in permutations(subset) { result.append(command.name + " -" + String(order) + tail) }
                }
            }
        }
        return result
    }

    static func subsets(_ items: [Character]) -> [[Character]] {
        (0..<(1 << items.count)).map { mask in items.indices.filter { mask & (1 << $0) != 0 }.map { items[$0] } }
    }

    static func permutations(_ items: [Character]) -> [[Character]] {
        guard items.count > 1 else { return [items] }
        return items.indices.flatMap { index -> [[Character]] in
            var rest = items
            let first = rest.remove(at: index)
            return permutations(rest).map { [first] + $0 }
        }
    }
}

// MARK: - Lexer

/// One shell word: its text with quotes and escapes resolved (expansions kept as written).
struct ShellWord: Sendable, Equatable {
    var bytes: [UInt8] = []
    /// Unquoted literal characters only (to spot globs, braces and assignments).
    var unquoted: [UInt8] = []
    var expansions: [String] = []
    /// The whole word is one parameter expansion (`$x`, `${x}`, `"$x"`): its name and quoting.
    var soleExpansion: (name: String, quoted: Bool)?
    var substitution = false
    var started = false
    /// Literal text counts 2, an expansion 1: the word is one expansion alone when this is 1.
    var partCount = 0

    /// Text that stands for something unknown here (a substitution): never a glob, brace or name.
    mutating func appendOpaque(_ text: String) {
        started = true
        bytes.append(contentsOf: Array(text.utf8))
        unquoted.append(contentsOf: [UInt8](repeating: 0, count: text.utf8.count))
        partCount += 2
    }

    var text: String { String(decoding: bytes, as: UTF8.self) }
    var hasGlob: Bool { unquoted.contains { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "[") } }
    var hasBrace: Bool {
        guard let open = unquoted.firstIndex(of: UInt8(ascii: "{")),
              let close = unquoted.lastIndex(of: UInt8(ascii: "}")), open < close else { return false }
        let inside = unquoted[(open + 1)..<close]
        return inside.contains(UInt8(ascii: ",")) || String(decoding: inside, as: UTF8.self).contains("..")
    }

    /// `NAME=value` with an unquoted, valid name.
    var assignment: (name: String, value: String)? {
        guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")), equals > 0,
              unquoted.count >= equals + 1, Array(unquoted.prefix(equals + 1)) == Array(bytes.prefix(equals + 1)) else { return nil }
        let name = bytes[..<equals]
        guard let first = name.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first),
              name.allSatisfy({ ShellLexer.isNameByte($0) }) else { return nil }
        return (String(decoding: name, as: UTF8.self), String(decoding: bytes[(equals + 1)...], as: UTF8.self))
    }

    static func == (lhs: ShellWord, rhs: ShellWord) -> Bool { lhs.bytes == rhs.bytes && lhs.unquoted == rhs.unquoted }
}

enum ShellToken: Sendable, Equatable {
    case word(ShellWord)
    /// `;` `&` `&&` `||` `|` `|&` newline `(` `)`.
    case separator(String)
    /// `<` `>` `>>` `<<` `<<<` `<&` `>&` `&>` …: the next word is its target.
    case redirect(String)
}

struct ShellLexer {
    let input: [UInt8]
    var index = 0
    var tokens: [ShellToken] = []
    var reasons = Set<String>()
    /// Texts inside `$(…)`, backticks and `<(…)`, parsed too (their commands run).
    var nested: [[UInt8]] = []
    private var word = ShellWord()
    private var pendingHeredocs: [(delimiter: [UInt8], stripTabs: Bool)] = []
    private var expectHeredocDelimiter: Bool? = nil

    init(_ input: [UInt8]) { self.input = input }

    static func isNameByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
    }

    private func peek(_ offset: Int = 0) -> UInt8? {
        index + offset < input.count ? input[index + offset] : nil
    }

    private mutating func endWord() {
        guard word.started else { return }
        if word.partCount != 1 { word.soleExpansion = nil }
        let finished = word
        word = ShellWord()
        if let stripTabs = expectHeredocDelimiter {
            expectHeredocDelimiter = nil
            pendingHeredocs.append((finished.bytes, stripTabs))
        }
        tokens.append(.word(finished))
    }

    private mutating func literal(_ byte: UInt8, quoted: Bool) {
        word.started = true
        word.bytes.append(byte)
        if !quoted { word.unquoted.append(byte) } else { word.unquoted.append(0) }
        word.partCount += 2 // literal text: the word is not one expansion alone
    }

    mutating func run() -> [ShellToken] {
        while let byte = peek() {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"):
                endWord(); index += 1
            case UInt8(ascii: "\n"):
                endWord(); index += 1
                tokens.append(.separator("\n"))
                skipHeredocBodies()
            case UInt8(ascii: "#") where !word.started:
                while let next = peek(), next != UInt8(ascii: "\n") { _ = next; index += 1 }
            case UInt8(ascii: "\\"):
                if peek(1) == UInt8(ascii: "\n") { index += 2; continue }
                index += 1
                if let next = peek() { literal(next, quoted: true); index += 1 } else { literal(byte, quoted: true) }
            case UInt8(ascii: "'"):
                index += 1
                word.started = true
                var closed = false
                while let next = peek() {
                    index += 1
                    if next == UInt8(ascii: "'") { closed = true; break }
                    literal(next, quoted: true)
                }
                if !word.started || word.bytes.isEmpty { word.partCount += 2 }
                if !closed { reasons.insert("unterminated_quote") }
            case UInt8(ascii: "\""):
                index += 1
                doubleQuoted()
            case UInt8(ascii: "`"):
                index += 1
                backtick(quoted: false)
            case UInt8(ascii: "$"):
                dollar(quoted: false)
            case UInt8(ascii: ";"), UInt8(ascii: "("), UInt8(ascii: ")"):
                endWord(); index += 1
                if byte == UInt8(ascii: ";"), peek() == UInt8(ascii: ";") { index += 1 }
                tokens.append(.separator(String(UnicodeScalar(byte))))
            case UInt8(ascii: "&"):
                endWord(); index += 1
                if peek() == UInt8(ascii: "&") { index += 1; tokens.append(.separator("&&")) }
                else if peek() == UInt8(ascii: ">") {
                    index += 1
                    if peek() == UInt8(ascii: ">") { index += 1 }
                    tokens.append(.redirect("&>"))
                } else { tokens.append(.separator("&")) }
            case UInt8(ascii: "|"):
                endWord(); index += 1
                if peek() == UInt8(ascii: "|") { index += 1; tokens.append(.separator("||")) }
                else if peek() == UInt8(ascii: "&") { index += 1; tokens.append(.separator("|&")) }
                else { tokens.append(.separator("|")) }
            case UInt8(ascii: "<"), UInt8(ascii: ">"):
                redirect(byte)
            default:
                literal(byte, quoted: false)
                index += 1
            }
        }
        endWord()
        return tokens
    }

    private mutating func redirect(_ byte: UInt8) {
        // A process substitution is a word; everything else is a redirection operator.
        if peek(1) == UInt8(ascii: "(") {
            index += 1
            substitution(balanced(open: UInt8(ascii: "("), close: UInt8(ascii: ")")), reason: "process_substitution", shown: "<(…)")
            return
        }
        // `2>` and `2>&1`: an all-digit word right before the operator is its file descriptor.
        if word.started, !word.bytes.isEmpty, word.bytes.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
           word.unquoted == word.bytes {
            word = ShellWord()
        } else {
            endWord()
        }
        var op = [byte]
        index += 1
        if byte == UInt8(ascii: "<") {
            if peek() == UInt8(ascii: "<") {
                op.append(UInt8(ascii: "<")); index += 1
                if peek() == UInt8(ascii: "<") { op.append(UInt8(ascii: "<")); index += 1 }
                else if peek() == UInt8(ascii: "-") { op.append(UInt8(ascii: "-")); index += 1; expectHeredocDelimiter = true }
                else { expectHeredocDelimiter = false }
            } else if let next = peek(), next == UInt8(ascii: "&") || next == UInt8(ascii: ">") { op.append(next); index += 1 }
        } else if let next = peek(), next == UInt8(ascii: ">") || next == UInt8(ascii: "&") || next == UInt8(ascii: "|") {
            op.append(next); index += 1
        }
        tokens.append(.redirect(String(decoding: op, as: UTF8.self)))
    }

    /// After a newline: the bodies of here-documents opened on the line just ended.
    private mutating func skipHeredocBodies() {
        while !pendingHeredocs.isEmpty {
            let (delimiter, stripTabs) = pendingHeredocs.removeFirst()
            while index < input.count {
                let end = input[index...].firstIndex(of: UInt8(ascii: "\n")) ?? input.count
                var line = input[index..<end]
                index = min(end + 1, input.count)
                if stripTabs { line = line.drop { $0 == UInt8(ascii: "\t") } }
                if Array(line) == delimiter { break }
            }
        }
    }

    /// From an opening bracket at `index`: the text up to its matching close, quotes respected.
    private mutating func balanced(open: UInt8, close: UInt8) -> [UInt8] {
        index += 1
        let start = index
        var depth = 1
        while let byte = peek() {
            switch byte {
            case UInt8(ascii: "\\"): index += 2; continue
            case UInt8(ascii: "'"):
                index += 1
                while let next = peek(), next != UInt8(ascii: "'") { _ = next; index += 1 }
            case UInt8(ascii: "\""):
                index += 1
                while let next = peek(), next != UInt8(ascii: "\"") { index += next == UInt8(ascii: "\\") ? 2 : 1 }
            case open: depth += 1
            case close:
                depth -= 1
                if depth == 0 {
                    let inner = Array(input[start..<index])
                    index += 1
                    return inner
                }
            default: break
            }
            index += 1
        }
        reasons.insert("unterminated_substitution")
        return Array(input[start..<min(index, input.count)])
    }

    private mutating func backtick(quoted: Bool) {
        var inner: [UInt8] = []
        var closed = false
        while let byte = peek() {
            index += 1
            if byte == UInt8(ascii: "\\"), let next = peek() { inner.append(next); index += 1; continue }
            if byte == UInt8(ascii: "`") { closed = true; break }
            inner.append(byte)
        }
        if !closed { reasons.insert("unterminated_substitution") }
        substitution(inner, reason: "command_substitution", shown: "`…`")
    }

    /// Records a substitution: its text is parsed as a nested line, the word it sits in can no
    /// longer be known statically (`reason`), and the word shows `shown` in its place.
    private mutating func substitution(_ inner: [UInt8], reason: String, shown: String) {
        reasons.insert(reason)
        nested.append(inner)
        word.substitution = true
        word.appendOpaque(shown)
    }

    private mutating func doubleQuoted() {
        word.started = true
        let before = word.partCount
        var parts = 0
        var closed = false
        while let byte = peek() {
            if byte == UInt8(ascii: "\"") { index += 1; closed = true; break }
            if byte == UInt8(ascii: "\\"), let next = peek(1) {
                index += 2
                if next == UInt8(ascii: "\n") { continue }
                if [UInt8(ascii: "$"), UInt8(ascii: "`"), UInt8(ascii: "\""), UInt8(ascii: "\\")].contains(next) {
                    literal(next, quoted: true)
                } else {
                    literal(byte, quoted: true); literal(next, quoted: true)
                }
                parts += 1
                continue
            }
            if byte == UInt8(ascii: "`") { index += 1; backtick(quoted: true); parts += 1; continue }
            if byte == UInt8(ascii: "$") { dollar(quoted: true); parts += 1; continue }
            literal(byte, quoted: true)
            parts += 1
            index += 1
        }
        if !closed { reasons.insert("unterminated_quote") }
        if parts == 0 { word.partCount = before + 2 }
    }

    /// `$name`, `${…}`, `$(…)`, `$((…))`, `$'…'`, `$"…"`, `$1`, `$@`, … at `index`.
    private mutating func dollar(quoted: Bool) {
        let next = peek(1)
        if !quoted, next == UInt8(ascii: "'") {
            index += 2
            ansiC()
            return
        }
        if !quoted, next == UInt8(ascii: "\"") {
            index += 1
            return  // `$"…"` is a double-quoted string
        }
        if next == UInt8(ascii: "(") {
            index += 1
            substitution(balanced(open: UInt8(ascii: "("), close: UInt8(ascii: ")")), reason: "command_substitution", shown: "$(…)")
            return
        }
        var name: [UInt8]
        let source: [UInt8]
        if next == UInt8(ascii: "{") {
            index += 1
            let inner = balanced(open: UInt8(ascii: "{"), close: UInt8(ascii: "}"))
            name = Array(inner.drop { $0 == UInt8(ascii: "!") || $0 == UInt8(ascii: "#") }.prefix { ShellLexer.isNameByte($0) })
            if name.isEmpty, let first = inner.first { name = [first] }
            source = Array("${".utf8) + inner + Array("}".utf8)
            if inner.contains(UInt8(ascii: "$")) || inner.contains(UInt8(ascii: "`")) {
                reasons.insert("command_substitution")
                nested.append(Array(inner.drop { ShellLexer.isNameByte($0) }))
            }
            if name != inner { word.partCount += 2 } // `${x:-y}`: not a plain value substitution
        } else if let next, ShellLexer.isNameByte(next), !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(next) {
            index += 1
            let start = index
            while let byte = peek(), ShellLexer.isNameByte(byte) { _ = byte; index += 1 }
            name = Array(input[start..<index])
            source = [UInt8(ascii: "$")] + name
        } else if let next, "0123456789@*#?$!-".utf8.contains(next) {
            index += 2
            name = [next]
            source = [UInt8(ascii: "$"), next]
        } else {
            literal(UInt8(ascii: "$"), quoted: quoted)
            index += 1
            return
        }
        let nameText = String(decoding: name, as: UTF8.self)
        if nameText == "IFS" {
            reasons.insert("ifs")
            if !quoted {
                // Unquoted, `$IFS` splits words: read it as the blank it usually is.
                endWord()
                return
            }
        }
        word.started = true
        word.bytes.append(contentsOf: source)
        word.unquoted.append(contentsOf: [UInt8](repeating: 0, count: source.count))
        word.expansions.append(nameText)
        word.soleExpansion = (nameText, quoted)
        word.partCount += 1
    }

    /// `$'…'` with its backslash escapes (bash): `$'\x72m'` is `rm`.
    private mutating func ansiC() {
        word.started = true
        word.partCount += 2
        func hex(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        while let byte = peek() {
            index += 1
            if byte == UInt8(ascii: "'") { return }
            guard byte == UInt8(ascii: "\\"), let escape = peek() else { literal(byte, quoted: true); continue }
            index += 1
            switch escape {
            case UInt8(ascii: "n"): literal(0x0a, quoted: true)
            case UInt8(ascii: "t"): literal(0x09, quoted: true)
            case UInt8(ascii: "r"): literal(0x0d, quoted: true)
            case UInt8(ascii: "e"), UInt8(ascii: "E"): literal(0x1b, quoted: true)
            case UInt8(ascii: "x"):
                var value: UInt8 = 0
                var digits = 0
                while digits < 2, let next = peek(), let digit = hex(next) { value = value &* 16 &+ digit; digits += 1; index += 1 }
                literal(digits == 0 ? UInt8(ascii: "x") : value, quoted: true)
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var value = Int(escape - UInt8(ascii: "0"))
                var digits = 1
                while digits < 3, let next = peek(), (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(next) {
                    value = value * 8 + Int(next - UInt8(ascii: "0")); digits += 1; index += 1
                }
                literal(UInt8(truncatingIfNeeded: value), quoted: true)
            case UInt8(ascii: "u"), UInt8(ascii: "U"), UInt8(ascii: "c"):
                reasons.insert("ansi_c_escape")
                literal(escape, quoted: true)
            default: literal(escape, quoted: true)
            }
        }
        reasons.insert("unterminated_quote")
    }
}

// MARK: - Simple commands

struct Analyzer {
    var commands: [ShellCommandLine.SimpleCommand] = []
    var reasons = Set<String>()
    var expandsVariables = false
    /// Variables assigned a literal earlier on the line.
    var assignments: [String: (value: String, literal: Bool)] = [:]

    static let shells: Set<String> = ["sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox"]
    static let interpreters: Set<String> = ["perl", "ruby", "node", "nodejs", "php", "lua", "tclsh", "osascript", "pwsh", "deno", "bun",
                                            "irb", "R", "Rscript", "julia", "jshell", "groovy"]
    static let inlineFlags: Set<String> = ["-c", "-e", "-E", "-r", "-p", "--eval", "--print", "--command", "--exec"]
    static let keywords: Set<String> = ["!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "time"]
    /// Wrappers that run their operand as a command, with options that take a value.
    static let wrappers: [String: Set<String>] = [
        "sudo": ["-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T", "--user", "--group", "--host", "--prompt",
                 "--chdir", "--role", "--type", "--other-user", "--close-from", "--command-timeout"],
        "doas": ["-u", "-C"], "env": ["-u", "-C", "-S", "--unset", "--chdir", "--split-string"], "nohup": [], "nice": ["-n", "--adjustment"],
        "ionice": ["-c", "-n", "-p", "-P", "-u", "--class", "--classdata"], "command": [], "builtin": [], "exec": ["-a"],
        "stdbuf": ["-i", "-o", "-e", "--input", "--output", "--error"], "setsid": [], "time": ["-f", "-o", "--format", "--output"],
        "xargs": ["-I", "-i", "-n", "-P", "-d", "-E", "-e", "-L", "-l", "-s", "-a", "--arg-file", "--delimiter", "--max-args",
                  "--max-procs", "--max-lines", "--replace", "--eof", "--max-chars", "--process-slot-var"],
        "timeout": ["-s", "-k", "--signal", "--kill-after"], "chroot": ["--userspec", "--groups"], "watch": ["-n", "-d", "--interval"],
        "flock": ["-w", "-E", "--timeout", "--conflict-exit-code"], "strace": ["-e", "-o", "-p", "-s", "-u"], "unbuffer": [],
        "caffeinate": [], "nsenter": ["-t", "--target"], "runuser": ["-u", "-g", "-G"], "sg": [], "firejail": [], "proxychains": [],
        "torsocks": [], "script": ["-c", "--command"], "su": ["-c", "--command", "-s", "--shell", "-g", "-G"],
    ]
    /// Wrappers whose first operand is not the command (`timeout 5 rm`, `chroot /srv rm`, `flock /lock rm`).
    static let leadingOperand: Set<String> = ["timeout", "chroot", "flock", "sg"]

    mutating func analyze(_ bytes: [UInt8], depth: Int) {
        guard depth <= ShellCommandLine.maximumDepth else { reasons.insert("too_deep"); return }
        var lexer = ShellLexer(bytes)
        let tokens = lexer.run()
        reasons.formUnion(lexer.reasons)
        var current: [ShellWord] = []
        var redirectedInput = false
        var pipedIn = false
        var skipNext = false
        for token in tokens + [.separator("\n")] {
            switch token {
            case .word(let word):
                if skipNext { skipNext = false; continue }
                current.append(word)
            case .redirect(let op):
                skipNext = true
                if op.hasPrefix("<") && op != "<&" { redirectedInput = true }
            case .separator(let separator):
                if !current.isEmpty { simple(current, stdinFed: pipedIn || redirectedInput, depth: depth) }
                current = []
                redirectedInput = false
                skipNext = false
                pipedIn = separator == "|" || separator == "|&"
            }
        }
        for inner in lexer.nested { analyze(inner, depth: depth + 1) }
    }

    /// One simple command's words: assignments, keywords, wrappers, interpreters, then the record.
    mutating func simple(_ input: [ShellWord], stdinFed: Bool, depth: Int) {
        var words = input
        while let first = words.first {
            if let assignment = first.assignment {
                let isStatic = first.expansions.isEmpty && !first.substitution
                assignments[assignment.name] = (assignment.value, isStatic)
                words.removeFirst()
                continue
            }
            if first.unquoted == first.bytes, Self.keywords.contains(first.text) { words.removeFirst(); continue }
            break
        }
        guard !words.isEmpty else { return }
        // Resolve words: substitute literal assignments made earlier on the line.
        var resolved: [String] = []
        for (position, word) in words.enumerated() {
            if word.hasBrace { reasons.insert("brace_expansion") }
            if position == 0 {
                if word.substitution { reasons.insert("command_substitution") }
                if !word.expansions.isEmpty { reasons.insert("variable_command") }
                if word.hasGlob && word.text != "[" && word.text != "[[" { reasons.insert("glob_command") }
            } else if !word.expansions.isEmpty {
                expandsVariables = true
            }
            if let sole = word.soleExpansion, let known = assignments[sole.name], known.literal {
                if sole.quoted { resolved.append(known.value) } else { resolved.append(contentsOf: Self.split(known.value)) }
            } else {
                resolved.append(word.text)
            }
        }
        guard commands.count < ShellCommandLine.maximumCommands else { reasons.insert("too_many_commands"); return }
        record(resolved, stdinFed: stdinFed, depth: depth)
    }

    static func split(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
    }

    static func basename(_ word: String) -> String {
        word.split(separator: "/").last.map(String.init) ?? word
    }

    /// Records a resolved simple command and looks inside wrappers and interpreters.
    mutating func record(_ words: [String], stdinFed: Bool, depth: Int) {
        guard let first = words.first, depth <= ShellCommandLine.maximumDepth + 2 else {
            if !words.isEmpty { reasons.insert("too_deep") }
            return
        }
        guard commands.count < ShellCommandLine.maximumCommands else { reasons.insert("too_many_commands"); return }
        let name = Self.basename(first)
        commands.append(.init(words: words, name: name))
        let arguments = Array(words.dropFirst())

        if let valued = Self.wrappers[name] {
            if (name == "su" || name == "script"), let index = arguments.firstIndex(where: { $0 == "-c" || $0 == "--command" }),
               index + 1 < arguments.count {
                analyze(Array(arguments[index + 1].utf8), depth: depth + 1)
                return
            }
            if name == "su" || name == "script" {
                if name == "su" { reasons.insert("shell_from_stdin") }
                return
            }
            var index = 0
            while index < arguments.count {
                let word = arguments[index]
                if word == "--" { index += 1; break }
                if name == "env", word.contains("="), !word.hasPrefix("-") { index += 1; continue }
                guard word.hasPrefix("-"), word.count > 1 else { break }
                if name == "env" && (word == "-S" || word == "--split-string") && index + 1 < arguments.count {
                    analyze(Array(arguments[index + 1].utf8), depth: depth + 1)
                    return
                }
                index += valued.contains(word) ? 2 : 1
            }
            if Self.leadingOperand.contains(name) { index += 1 }
            if name == "command", arguments.first == "-v" || arguments.first == "-V" { return }
            if index < arguments.count { record(Array(arguments[index...]), stdinFed: stdinFed, depth: depth + 1) }
            return
        }
        if name == "find" {
            var index = 0
            while index < arguments.count {
                if ["-exec", "-execdir", "-ok", "-okdir"].contains(arguments[index]) {
                    let end = arguments[(index + 1)...].firstIndex { $0 == ";" || $0 == "+" } ?? arguments.count
                    if index + 1 < end { record(Array(arguments[(index + 1)..<end]), stdinFed: false, depth: depth + 1) }
                    index = end
                }
                index += 1
            }
            return
        }
        switch name {
        case "eval":
            reasons.insert("eval")
            analyze(Array(arguments.joined(separator: " ").utf8), depth: depth + 1)
            return
        case "source", ".":
            reasons.insert("source")
            return
        case "base64", "base32", "basenc":
            if arguments.contains(where: { $0 == "-d" || $0 == "-D" || $0 == "--decode" || ($0.hasPrefix("-") && !$0.hasPrefix("--") && $0.contains("d")) }) {
                reasons.insert("decode")
            }
            return
        case "xxd":
            if arguments.contains(where: { $0 == "-r" || $0 == "-revert" || ($0.hasPrefix("-") && $0.contains("r") && !$0.hasPrefix("--")) }) {
                reasons.insert("decode")
            }
            return
        case "uudecode", "openssl":
            if name == "uudecode" || arguments.contains("-d") { reasons.insert("decode") }
            return
        default: break
        }
        let isShell = Self.shells.contains(name)
        let isInterpreter = Self.interpreters.contains(name) || name.hasPrefix("python") || name.hasPrefix("pypy")
        guard isShell || isInterpreter else { return }
        // Options before the script: `-c STRING` (shells: parsed), inline code, `-s`, or none at all (stdin).
        var index = 0
        while index < arguments.count {
            let word = arguments[index]
            if word == "-" || word == "-s" || word == "--stdin" { reasons.insert("shell_from_stdin"); return }
            if word == "--" { index += 1; break }
            guard word.hasPrefix("-") || word.hasPrefix("+") else { break }
            if isShell, word.hasPrefix("-"), !word.hasPrefix("--"), word.contains("c") {
                if index + 1 < arguments.count {
                    analyze(Array(arguments[index + 1].utf8), depth: depth + 1)
                } else {
                    reasons.insert("shell_from_stdin")
                }
                return
            }
            if isInterpreter, Self.inlineFlags.contains(word) || (name.hasPrefix("python") && word.hasPrefix("-c"))
                || ((name == "perl" || name == "ruby") && word.hasPrefix("-") && !word.hasPrefix("--") && word.contains("e")) {
                reasons.insert("interpreter_inline")
                return
            }
            if isShell && (word == "-o" || word == "+o" || word == "-O" || word == "+O") { index += 1 }
            if isInterpreter && (word == "-m" || word == "-W" || word == "-X") { reasons.insert("interpreter_inline"); return }
            index += 1
        }
        if index >= arguments.count {
            reasons.insert(stdinFed ? "pipe_to_interpreter" : "shell_from_stdin")
        }
    }
}
