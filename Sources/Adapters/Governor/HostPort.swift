import NIOCore

/// A listening or target address.
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(_ text: String) {
        var text = Substring(text)
        var host: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            text = text[text.index(after: close)...]
            guard text.hasPrefix(":") else { return nil }
            text = text.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            text = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(text), (0...65535).contains(port) else { return nil }
        self.init(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// A client's address as sessions record it (`HOST:PORT`, IPv6 in brackets): the source
    /// address that login throttling counts is its host.
    public static func peer(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress else { return "?" }
        return HostPort(host: ip, port: address.port ?? 0).description
    }
}
