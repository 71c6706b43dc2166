import Adapters
import Foundation
import Yams

/// A configuration problem: which file, line and key, and why. Never carries a secret's value.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String?
    public var line: Int?
    public var key: String
    public var reason: String

    public init(file: String? = nil, line: Int? = nil, key: String, reason: String) {
        self.file = file
        self.line = line
        self.key = key
        self.reason = reason
    }

    public var description: String {
        var prefix = ""
        if let file { prefix = file + (line.map { ":\($0)" } ?? "") + ": " }
        else if let line { prefix = "line \(line): " }
        return prefix + "\(key): \(reason)"
    }
}

/// A YAML node with the key path that reached it, so every error names file, line and key.
struct ConfigNode {
    let node: Node
    let path: String
    let file: String?

    static func parse(_ text: String, file: String?) throws -> ConfigNode? {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigurationError(file: file, key: "(yaml)", reason: Self.describe(error))
        }
        return node.map { ConfigNode(node: $0, path: "", file: file) }
    }

    /// Yams' own messages quote the offending source line; keep only position and problem.
    private static func describe(_ error: YamlError) -> String {
        switch error {
        case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _):
            return "invalid YAML at line \(mark.line) column \(mark.column): \(problem)"
        default:
            return "invalid YAML"
        }
    }

    func error(_ reason: String) -> ConfigurationError {
        ConfigurationError(file: file, line: node.mark?.line, key: path.isEmpty ? "(top level)" : path, reason: reason)
    }

    private func child(_ node: Node, key: String) -> ConfigNode {
        ConfigNode(node: node, path: path.isEmpty ? key : path + "." + key, file: file)
    }

    var isMapping: Bool {
        if case .mapping = node { return true }
        return false
    }

    var isNull: Bool {
        if case .scalar(let scalar) = node, scalar.style == .plain { return ["", "~", "null", "Null", "NULL"].contains(scalar.string) }
        return false
    }

    /// The mapping's entries; unknown keys are refused so a typo never silently does nothing.
    func mapping(allowed: Set<String>? = nil) throws -> [String: ConfigNode] {
        guard case .mapping(let mapping) = node else { throw error("expected a mapping") }
        var result: [String: ConfigNode] = [:]
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else { throw error("keys must be plain text") }
            let name = scalar.string
            if let allowed, !allowed.contains(name) {
                throw child(value, key: name).error("unknown key (known: \(allowed.sorted().joined(separator: ", ")))")
            }
            if result[name] != nil { throw child(value, key: name).error("duplicate key") }
            result[name] = child(value, key: name)
        }
        return result
    }

    /// Entries of a mapping whose keys are names chosen by the user (profiles, column rules).
    func entries() throws -> [(String, ConfigNode)] {
        guard case .mapping(let mapping) = node else { throw error("expected a mapping") }
        return try mapping.map { key, value in
            guard case .scalar(let scalar) = key else { throw error("keys must be plain text") }
            return (scalar.string, child(value, key: scalar.string))
        }
    }

    func sequence() throws -> [ConfigNode] {
        guard case .sequence(let sequence) = node else { throw error("expected a list") }
        return sequence.enumerated().map { index, element in
            ConfigNode(node: element, path: "\(path)[\(index)]", file: file)
        }
    }

    func string() throws -> String {
        guard case .scalar(let scalar) = node else { throw error("expected text") }
        return scalar.string
    }

    func nonEmptyString() throws -> String {
        let value = try string()
        if value.isEmpty { throw error("must not be empty") }
        return value
    }

    func bool() throws -> Bool {
        switch try string().lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error("expected true or false")
        }
    }

    func int(in range: ClosedRange<Int>) throws -> Int {
        guard let value = Int(try string()) else { throw error("expected a whole number") }
        guard range.contains(value) else { throw error("must be between \(range.lowerBound) and \(range.upperBound)") }
        return value
    }

    /// A list of text, or one text standing for a list of one.
    func strings() throws -> [String] {
        if case .scalar = node { return [try string()] }
        return try sequence().map { try $0.string() }
    }

    /// The longest duration a configuration may give: ten years. Longer is a typo, and keeping every
    /// duration this small means no timer or deadline derived from one can overflow.
    static let maximumDurationSeconds = 10 * 365 * 86_400

    /// A duration such as `90s`, `10m`, `1h`, `1h30m` or a number of seconds, up to ten years.
    func duration() throws -> Duration {
        let text = try string()
        guard let seconds = ConfigNode.parseDuration(text) else {
            throw error("expected a duration such as 30s, 10m or 1h (at most 10 years)")
        }
        return .seconds(seconds)
    }

    /// Seconds in `0...maximumDurationSeconds` (a bare number may be 0; `1h30m` forms must be > 0),
    /// or nil for anything else, including numbers too large for any integer. Never traps.
    static func parseDuration(_ text: String) -> Int? {
        let limit = maximumDurationSeconds
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        if text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            guard let seconds = Int(text), seconds <= limit else { return nil }
            return seconds
        }
        var total = 0
        var number = ""
        for character in text {
            if character.isASCII && character.isNumber { number.append(character); continue }
            guard let value = Int(number) else { return nil }
            let unit: Int
            switch character {
            case "s": unit = 1
            case "m": unit = 60
            case "h": unit = 3600
            case "d": unit = 86400
            default: return nil
            }
            let (product, overflowed) = value.multipliedReportingOverflow(by: unit)
            guard !overflowed, product <= limit else { return nil }
            total += product // both terms are at most `limit`: no overflow
            guard total <= limit else { return nil }
            number = ""
        }
        return number.isEmpty && total > 0 ? total : nil
    }

    /// `host:port`, with the port in range.
    func hostPort() throws -> HostPort {
        let text = try string()
        guard let value = HostPort(text) else { throw error("expected HOST:PORT, e.g. 127.0.0.1:8080") }
        return value
    }
}
