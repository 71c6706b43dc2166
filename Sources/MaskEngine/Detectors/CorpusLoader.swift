import Foundation
import Yams

/// A corpus file that cannot be loaded: which file, which line, and why.
public struct CorpusError: Error, CustomStringConvertible, Equatable, Sendable {
    public var file: String
    public var line: Int
    public var reason: String

    public init(file: String, line: Int, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }

    public var description: String { "\(file):\(line): \(reason)" }
}

/// Reads detector definitions from `corpora/*.yaml`.
///
/// A file holds `detectors:`, a list of mappings. Unknown keys are errors, so a typo never
/// silently disables a check.
public enum CorpusLoader {
    /// Loads every `*.yaml` / `*.yml` file directly inside each directory (sorted by name, so the
    /// order of detectors, which breaks ties between equal matches, is stable).
    public static func load(directories: [String]) throws -> [Detector] {
        var detectors: [Detector] = []
        for directory in directories {
            let url = URL(fileURLWithPath: directory)
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: url.path)
            } catch {
                throw CorpusError(file: directory, line: 0, reason: "cannot list the corpus directory")
            }
            for name in names.sorted() where name.hasSuffix(".yaml") || name.hasSuffix(".yml") {
                let path = url.appendingPathComponent(name).path
                guard let data = FileManager.default.contents(atPath: path),
                      let text = String(data: data, encoding: .utf8) else {
                    throw CorpusError(file: path, line: 0, reason: "cannot read the file as UTF-8")
                }
                detectors += try parse(yaml: text, file: path)
            }
        }
        var seen: [String: String] = [:]
        for detector in detectors {
            if let first = seen[detector.id] {
                let (file, line) = splitSource(detector.source)
                throw CorpusError(file: file, line: line, reason: "detector id '\(detector.id)' is already defined at \(first)")
            }
            seen[detector.id] = detector.source
        }
        return detectors
    }

    /// Parses one corpus document.
    public static func parse(yaml: String, file: String) throws -> [Detector] {
        let root: Node?
        do {
            // The basic resolver tags every plain scalar as a string: the default one matches
            // each scalar against ICU regular expressions, which cost more than the rest of the
            // load. `Reader` reads integers, numbers and booleans from plain scalars itself.
            root = try Yams.compose(yaml: yaml, .basic)
        } catch let error as YamlError {
            throw CorpusError(file: file, line: yamlErrorLine(error), reason: "YAML syntax: \(yamlProblem(error))")
        }
        guard let root, case .mapping(let top) = root else {
            throw CorpusError(file: file, line: 1, reason: "expected a mapping with a 'detectors' list")
        }
        let reader = Reader(file: file)
        try reader.checkKeys(top, allowed: ["detectors", "description"], at: root)
        guard let list = top["detectors"] else {
            throw CorpusError(file: file, line: line(root), reason: "missing key 'detectors'")
        }
        guard case .sequence(let items) = list else {
            throw CorpusError(file: file, line: line(list), reason: "'detectors' must be a list")
        }
        return try items.map { try reader.detector($0) }
    }

    static func line(_ node: Node) -> Int { node.mark?.line ?? 0 }

    static func splitSource(_ source: String) -> (String, Int) {
        guard let colon = source.lastIndex(of: ":"), let line = Int(source[source.index(after: colon)...]) else {
            return (source, 0)
        }
        return (String(source[..<colon]), line)
    }

    private static func yamlErrorLine(_ error: YamlError) -> Int {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        case .duplicatedKeysInMapping(_, let context):
            return context.mark.line
        default:
            return 0
        }
    }

    private static func yamlProblem(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _):
            return problem
        case .duplicatedKeysInMapping(let duplicates, _):
            return "duplicated keys \(duplicates.joined(separator: ", "))"
        case .reader(let problem, _, _, _):
            return problem
        default:
            return "unreadable document"
        }
    }
}

private struct Reader {
    let file: String

    func fail(_ node: Node, _ reason: String) -> CorpusError {
        CorpusError(file: file, line: CorpusLoader.line(node), reason: reason)
    }

    func checkKeys(_ mapping: Node.Mapping, allowed: Set<String>, at node: Node) throws {
        for (key, _) in mapping {
            guard let name = key.string, allowed.contains(name) else {
                throw fail(key, "unknown key '\(key.string ?? "?")' (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
        }
    }

    func string(_ node: Node, _ what: String) throws -> String {
        guard case .scalar(let scalar) = node else { throw fail(node, "'\(what)' must be a string") }
        return scalar.string
    }

    func int(_ node: Node, _ what: String, range: ClosedRange<Int>) throws -> Int {
        guard case .scalar = node, let value = node.int else { throw fail(node, "'\(what)' must be an integer") }
        guard range.contains(value) else { throw fail(node, "'\(what)' must be within \(range.lowerBound)...\(range.upperBound)") }
        return value
    }

    /// A plain (unquoted) YAML 1.1 boolean, as Yams' default resolver reads one.
    func bool(_ node: Node) -> Bool? {
        guard case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any else { return nil }
        switch scalar.string {
        case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON": return true
        case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF": return false
        default: return nil
        }
    }

    func strings(_ node: Node, _ what: String) throws -> [String] {
        switch node {
        case .scalar: return [try string(node, what)]
        case .sequence(let items): return try items.map { try string($0, what) }
        default: throw fail(node, "'\(what)' must be a string or a list of strings")
        }
    }

    func examples(_ node: Node, _ what: String) throws -> [DetectorExample] {
        guard case .sequence(let items) = node else { throw fail(node, "'\(what)' must be a list of strings") }
        return try items.map { DetectorExample(text: try string($0, what), line: CorpusLoader.line($0)) }
    }

    func detector(_ node: Node) throws -> Detector {
        guard case .mapping(let map) = node else { throw fail(node, "each detector must be a mapping") }
        try checkKeys(map, allowed: ["id", "category", "label", "pattern", "patterns", "trigger", "triggers", "trigger_before", "finder", "caseless", "validator",
                                      "context", "style", "max_width", "span", "extend", "examples", "description"], at: node)
        guard let idNode = map["id"] else { throw fail(node, "missing key 'id'") }
        let id = try string(idNode, "id")
        guard !id.isEmpty, id.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || (48...57).contains($0) || (97...122).contains($0) }) else {
            throw fail(idNode, "'id' must be lowercase letters, digits, '_' or '-'")
        }
        guard let categoryNode = map["category"] else { throw fail(node, "detector '\(id)': missing key 'category'") }
        let category = try string(categoryNode, "category")

        var patterns: [String] = []
        if let p = map["pattern"] { patterns += try strings(p, "pattern") }
        if let p = map["patterns"] { patterns += try strings(p, "patterns") }
        guard !patterns.isEmpty else { throw fail(node, "detector '\(id)': needs 'pattern' or 'patterns'") }
        if let empty = patterns.first(where: { $0.isEmpty }) { _ = empty; throw fail(node, "detector '\(id)': a pattern is empty") }

        var detector = Detector(id: id, category: category, patterns: patterns, source: "\(file):\(CorpusLoader.line(node))")
        if let label = map["label"] { detector.label = try string(label, "label") }
        if let t = map["trigger"] { detector.triggers += try strings(t, "trigger") }
        if let t = map["triggers"] { detector.triggers += try strings(t, "triggers") }
        if let f = map["finder"] {
            let name = try string(f, "finder")
            guard name == "digit_run" else { throw fail(f, "unknown finder '\(name)' (digit_run)") }
            guard detector.triggers.isEmpty else { throw fail(f, "'finder' and 'trigger' exclude each other") }
            detector.finder = name
        }
        if let b = map["trigger_before"] {
            guard !detector.triggers.isEmpty else { throw fail(b, "'trigger_before' needs 'trigger'") }
            detector.triggerBefore = try int(b, "trigger_before", range: 0...1024)
        }
        if let caseless = map["caseless"] {
            guard let value = bool(caseless) else { throw fail(caseless, "'caseless' must be true or false") }
            detector.caseless = value
        }
        if let style = map["style"] {
            let name = try string(style, "style")
            guard let value = MaskStyle(rawValue: name) else {
                throw fail(style, "unknown style '\(name)' (redact, partial, hash, null)")
            }
            detector.style = value
        }
        if let width = map["max_width"] { detector.maxWidth = try int(width, "max_width", range: 1...4096) }
        if let validator = map["validator"] { detector.validator = try validatorSpec(validator) }
        if let context = map["context"] {
            if case .sequence(let rules) = context {
                detector.context = try rules.map(contextRule)
            } else {
                detector.context = [try contextRule(context)]
            }
        }
        if let span = map["span"] { detector.span = try secretSpan(span) }
        if let extend = map["extend"] { detector.extend = try extensionRule(extend) }
        if let examples = map["examples"] {
            guard case .mapping(let ex) = examples else { throw fail(examples, "'examples' must be a mapping with 'match' and 'no_match'") }
            try checkKeys(ex, allowed: ["match", "no_match"], at: examples)
            if let m = ex["match"] { detector.shouldMatch = try self.examples(m, "match") }
            if let n = ex["no_match"] { detector.shouldNotMatch = try self.examples(n, "no_match") }
        }
        if detector.shouldMatch.count < 3 || detector.shouldNotMatch.count < 3 {
            throw fail(node, "detector '\(id)': needs at least 3 'match' and 3 'no_match' examples")
        }
        return detector
    }

    func validatorSpec(_ node: Node) throws -> ValidatorSpec {
        switch node {
        case .scalar:
            let name = try string(node, "validator")
            guard Validators.known.contains(name) else { throw fail(node, "unknown validator '\(name)' (\(Validators.known.sorted().joined(separator: ", ")))") }
            return ValidatorSpec(name: name)
        case .mapping(let map):
            guard let nameNode = map["name"] else { throw fail(node, "validator needs 'name'") }
            let name = try string(nameNode, "validator.name")
            guard Validators.known.contains(name) else { throw fail(nameNode, "unknown validator '\(name)' (\(Validators.known.sorted().joined(separator: ", ")))") }
            var spec = ValidatorSpec(name: name)
            for (key, value) in map {
                guard let keyName = key.string else { throw fail(key, "validator keys must be strings") }
                if keyName == "name" { continue }
                guard case .scalar = value, let number = value.float else { throw fail(value, "validator parameter '\(keyName)' must be a number") }
                spec.parameters[keyName] = number
            }
            return spec
        default:
            throw fail(node, "'validator' must be a name or a mapping with 'name'")
        }
    }

    func contextRule(_ node: Node) throws -> ContextRule {
        guard case .mapping(let map) = node else { throw fail(node, "'context' must be a mapping with 'words', 'before', 'after'") }
        try checkKeys(map, allowed: ["words", "before", "after", "breakers"], at: node)
        guard let wordsNode = map["words"] else { throw fail(node, "'context' needs 'words'") }
        let words = try strings(wordsNode, "context.words")
        guard !words.isEmpty, words.allSatisfy({ !$0.isEmpty }) else { throw fail(wordsNode, "'context.words' must not be empty") }
        let before = try map["before"].map { try int($0, "context.before", range: 0...(1 << 20)) } ?? 0
        let after = try map["after"].map { try int($0, "context.after", range: 0...8192) } ?? 0
        guard before + after > 0 else { throw fail(node, "'context' needs a 'before' or 'after' window") }
        let breakers = try map["breakers"].map { try strings($0, "context.breakers") } ?? []
        return ContextRule(words: words, before: before, after: after, breakers: breakers)
    }

    func secretSpan(_ node: Node) throws -> SecretSpan {
        guard case .mapping(let map) = node else { throw fail(node, "'span' must be a mapping") }
        try checkKeys(map, allowed: ["after", "before_last", "trim"], at: node)
        var span = SecretSpan()
        if let after = map["after"] { span.after = try strings(after, "span.after") }
        if let before = map["before_last"] { span.beforeLast = try string(before, "span.before_last") }
        if let trim = map["trim"] { span.trim = try string(trim, "span.trim") }
        return span
    }

    func extensionRule(_ node: Node) throws -> Extension {
        guard case .mapping(let map) = node else { throw fail(node, "'extend' must be a mapping with 'class' or 'until'") }
        try checkKeys(map, allowed: ["class", "until", "max"], at: node)
        if let cls = map["class"] {
            let body = try string(cls, "extend.class")
            guard let set = ByteSet(classBody: body) else { throw fail(cls, "'extend.class' is not a valid class body") }
            return .byteClass(set)
        }
        if let until = map["until"] {
            let pattern = try string(until, "extend.until")
            let max = try map["max"].map { try int($0, "extend.max", range: 1...(1 << 24)) } ?? 65536
            return .until(pattern: pattern, max: max)
        }
        throw fail(node, "'extend' needs 'class' or 'until'")
    }
}
