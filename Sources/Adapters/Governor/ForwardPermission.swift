/// Where a connection lets its users forward ports (`ssh -L`, `ssh -D`): a list of `HOST:PORT`
/// patterns, where HOST is a name, an address, `*` or `*.suffix` and PORT a number or `*`.
/// Empty (the default) refuses every forward. Names compare case-insensitively; no DNS is done,
/// so `127.0.0.1:5432` does not permit `localhost:5432`.
public struct ForwardPermission: Sendable, Equatable {
    public struct Pattern: Sendable, Equatable {
        public var host: String
        public var port: Int?
    }

    public private(set) var patterns: [Pattern] = []

    public init() {}

    /// Parses the patterns; the error names the first bad one.
    public init(_ texts: [String]) throws(ForwardPatternError) {
        for text in texts {
            guard let colon = text.lastIndex(of: ":") else { throw ForwardPatternError(pattern: text) }
            var host = String(text[..<colon]).lowercased()
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            let portText = text[text.index(after: colon)...]
            let port: Int?
            if portText == "*" {
                port = nil
            } else if let value = Int(portText), (1...65535).contains(value) {
                port = value
            } else {
                throw ForwardPatternError(pattern: text)
            }
            let wildcard = host.dropFirst(host.hasPrefix("*.") ? 2 : 0)
            guard !host.isEmpty, host == "*" || !wildcard.contains("*"),
                  wildcard.allSatisfy({ $0.isLetter || $0.isNumber || "-.:_".contains($0) || $0 == "*" }) else {
                throw ForwardPatternError(pattern: text)
            }
            patterns.append(Pattern(host: host, port: port))
        }
    }

    public func permits(host: String, port: Int) -> Bool {
        let host = host.lowercased()
        return patterns.contains { pattern in
            if let wanted = pattern.port, wanted != port { return false }
            if pattern.host == "*" { return true }
            if pattern.host.hasPrefix("*.") { return host.hasSuffix(pattern.host.dropFirst()) && host.count > pattern.host.count - 1 }
            return host == pattern.host
        }
    }
}

public struct ForwardPatternError: Error, Sendable, CustomStringConvertible {
    public var pattern: String
    public var description: String { "'\(pattern)' is not HOST:PORT (HOST may be * or *.suffix, PORT may be *)" }
}
