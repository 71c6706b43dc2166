import Foundation
import NIOHTTP1

/// How the HTTP listener finds the connection of a request.
public enum HTTPRouting: Sendable, Equatable {
    /// `/<connection>/rest…`: the first path segment names the connection and is removed.
    case path
    /// `Host: <connection>.<suffix>`: the host name names the connection and the path is kept;
    /// requests whose host does not end in the suffix are routed by path.
    case host(suffix: String)
}

/// A request's connection and the URI the upstream gets.
public struct HTTPRoute: Sendable, Equatable {
    public var connection: String
    public var uri: String

    /// nil when the request names no connection (the gateway answers 404).
    public static func resolve(uri: String, host: String?, routing: HTTPRouting) -> HTTPRoute? {
        guard uri.hasPrefix("/") else { return nil }   // absolute-form and `*` are not proxied
        switch routing {
        case .path:
            let rest = uri.dropFirst()
            let end = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            let name = String(rest[..<end])
            guard isConnectionName(name) else { return nil }
            var remainder = String(rest[end...])
            if remainder.isEmpty || remainder.hasPrefix("?") { remainder = "/" + remainder }
            return HTTPRoute(connection: name, uri: remainder)
        case .host(let suffix):
            if var host = host?.lowercased() {
                if let colon = host.lastIndex(of: ":"), !host.hasSuffix("]") { host = String(host[..<colon]) }
                let tail = "." + suffix.lowercased()
                if host.hasSuffix(tail) {
                    let name = String(host.dropLast(tail.count))
                    return isConnectionName(name) ? HTTPRoute(connection: name, uri: uri) : nil
                }
            }
            return resolve(uri: uri, host: nil, routing: .path)
        }
    }

    static func isConnectionName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
            && name != "." && name != ".."
    }
}

/// The credential the gateway puts on upstream requests in place of the user's token.
public enum HTTPCredential: Sendable {
    case bearer(Secret)
    case basic(username: String, password: Secret)
    case header(name: String, value: Secret)

    /// From the connection's credential: a named header (`header` + token), basic auth
    /// (username + password) or a bearer token. nil when the connection has none.
    public init?(_ credential: Credential) {
        if let name = credential.headerName, let token = credential.token ?? credential.password {
            self = .header(name: name, value: token)
        } else if let username = credential.username, let password = credential.password {
            self = .basic(username: username, password: password)
        } else if let token = credential.token {
            self = .bearer(token)
        } else {
            return nil
        }
    }

    func apply(to headers: inout HTTPHeaders) {
        switch self {
        case .bearer(let token):
            headers.replaceOrAdd(name: "Authorization", value: "Bearer " + token.exposed)
        case .basic(let username, let password):
            let pair = Array((username + ":" + password.exposed).utf8)
            headers.replaceOrAdd(name: "Authorization", value: "Basic " + Data(pair).base64EncodedString())
        case .header(let name, let value):
            headers.replaceOrAdd(name: name, value: value.exposed)
        }
    }
}

/// Header rules of the proxy (RFC 9110 §7.6.1 for hop-by-hop fields).
public enum HTTPHeaderRules {
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization",
    ]

    /// Drops hop-by-hop fields, including those the `Connection` field names.
    public static func removingHopByHop(_ headers: HTTPHeaders) -> HTTPHeaders {
        var named = hopByHop
        for value in headers[canonicalForm: "connection"] { named.insert(value.lowercased()) }
        var out = HTTPHeaders()
        out.reserveCapacity(headers.count)
        for (name, value) in headers where !named.contains(name.lowercased()) { out.add(name: name, value: value) }
        return out
    }

    /// The user's token, read from `Authorization: Bearer T` or `Basic` (password = token).
    public static func token(from headers: HTTPHeaders) -> String? {
        guard let value = headers.first(name: "authorization") else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2 else { return nil }
        let credentials = ASCII.trimmed(parts[1])
        switch parts[0].lowercased() {
        case "bearer": return credentials.isEmpty ? nil : credentials
        case "basic":
            guard let decoded = Data(base64Encoded: credentials).map(Array.init), let colon = decoded.firstIndex(of: UInt8(ascii: ":")) else { return nil }
            let password = String(decoding: decoded[(colon + 1)...], as: UTF8.self)
            return password.isEmpty ? nil : password
        default: return nil
        }
    }

    /// The head sent upstream: hop-by-hop fields and the user's `Authorization` removed, the
    /// connection's credential added, `Host` set to the target, `X-Forwarded-*` appended, and
    /// `Accept-Encoding` narrowed to the codings the gateway can decode when it scans.
    public static func upstreamHeaders(_ client: HTTPHeaders, clientAddress: String?, clientScheme: String,
                                       upstreamHost: String, credential: HTTPCredential?, scanning: Bool) -> HTTPHeaders {
        var headers = removingHopByHop(client)
        let originalHost = headers.first(name: "host")
        headers.remove(name: "authorization")
        headers.replaceOrAdd(name: "Host", value: upstreamHost)
        if let clientAddress {
            let previous = headers[canonicalForm: "x-forwarded-for"].joined(separator: ", ")
            headers.replaceOrAdd(name: "X-Forwarded-For", value: previous.isEmpty ? clientAddress : previous + ", " + clientAddress)
        }
        headers.replaceOrAdd(name: "X-Forwarded-Proto", value: clientScheme)
        if let originalHost { headers.replaceOrAdd(name: "X-Forwarded-Host", value: originalHost) }
        if scanning {
            let accepted = headers[canonicalForm: "accept-encoding"].compactMap { item -> String? in
                let coding = item.split(separator: ";").first.map { ASCII.trimmed($0).lowercased() } ?? ""
                return ["gzip", "x-gzip", "deflate", "identity"].contains(coding) ? String(item) : nil
            }
            headers.remove(name: "accept-encoding")
            headers.add(name: "Accept-Encoding", value: accepted.isEmpty ? "identity" : accepted.joined(separator: ", "))
        }
        credential?.apply(to: &headers)
        return headers
    }
}

/// What the gateway does with a response body.
public struct HTTPResponsePlan: Sendable, Equatable {
    public enum Coding: Sendable, Equatable { case identity, gzip, deflate }
    /// Scan (and mask) the body; false for binary types, which pass as they are.
    public var scan: Bool
    /// The body's content coding, decoded before scanning.
    public var coding: Coding
    /// Set when the body cannot be scanned (an unknown coding): answer 502, never forward it.
    public var refusal: String?
    public var hasBody: Bool

    /// Text-like types are scanned; so is a body without a type (it could be anything).
    public static func isScanned(contentType: String?) -> Bool {
        guard let contentType else { return true }
        let type = contentType.split(separator: ";").first.map { ASCII.trimmed($0).lowercased() } ?? ""
        if type.isEmpty || type.hasPrefix("text/") { return true }
        if type.hasSuffix("+json") || type.hasSuffix("+xml") { return true }
        return [
            "application/json", "application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-seq",
            "application/xml", "application/javascript", "application/x-www-form-urlencoded", "application/yaml",
            "application/x-yaml", "application/graphql", "application/problem+json", "application/csv",
        ].contains(type)
    }

    public static func make(requestMethod: HTTPMethod, status: HTTPResponseStatus, headers: HTTPHeaders) -> HTTPResponsePlan {
        let hasBody = requestMethod != .HEAD && status.code >= 200 && status != .noContent && status != .notModified
        let contentType = headers.first(name: "content-type")
        let scan = hasBody && isScanned(contentType: contentType)
        var plan = HTTPResponsePlan(scan: scan, coding: .identity, refusal: nil, hasBody: hasBody)
        if hasBody, contentType?.lowercased().hasPrefix("application/vnd.kubernetes.protobuf") == true {
            // Kubernetes objects in protobuf: structured data the stream masker cannot read.
            plan.refusal = "the response is Kubernetes protobuf, which the gateway cannot scan (ask for JSON)"
            return plan
        }
        guard scan else { return plan }
        let codings = headers[canonicalForm: "content-encoding"].map { ASCII.trimmed($0).lowercased() }
            .filter { !$0.isEmpty && $0 != "identity" }
        if codings == ["gzip"] || codings == ["x-gzip"] {
            plan.coding = .gzip
        } else if codings == ["deflate"] {
            plan.coding = .deflate
        } else if !codings.isEmpty {
            plan.refusal = "the response is encoded with \(codings.joined(separator: ", ").prefix(40)), which the gateway cannot scan"
        }
        return plan
    }

    /// The head sent to the client: hop-by-hop fields removed; when the body is rewritten, its
    /// length and coding go (the body is re-framed, chunked for HTTP/1.1 clients) and validators
    /// that describe the original bytes are dropped.
    public func clientHeaders(_ upstream: HTTPHeaders) -> HTTPHeaders {
        var headers = HTTPHeaderRules.removingHopByHop(upstream)
        if scan {
            headers.remove(name: "content-length")
            headers.remove(name: "content-encoding")
            headers.remove(name: "content-md5")
            headers.remove(name: "digest")
            headers.remove(name: "accept-ranges")
            if let etag = headers.first(name: "etag"), !etag.hasPrefix("W/") {
                headers.replaceOrAdd(name: "ETag", value: "W/" + etag)
            }
        }
        return headers
    }
}

/// How an HTTP request is described to the guardrails: `METHOD /path?query` (prefix removed),
/// classes: the method in lower case and `read` (GET, HEAD, OPTIONS) or `write`.
public enum HTTPCommands {
    public static func request(method: HTTPMethod, uri: String) -> Command {
        let name = method.rawValue
        let read = [HTTPMethod.GET, .HEAD, .OPTIONS].contains(method)
        return Command(text: "\(name) \(uri)", classes: [name.lowercased(), read ? "read" : "write"])
    }
}

/// Header-value helpers that stay on bytes (Foundation's `trimmingCharacters` walks UTF-16 and
/// showed up in profiles of small requests).
enum ASCII {
    static func trimmed<S: StringProtocol>(_ text: S) -> String {
        let text = Substring(text)
        guard let first = text.utf8.firstIndex(where: { $0 != 0x20 && $0 != 0x09 }),
              let last = text.utf8.lastIndex(where: { $0 != 0x20 && $0 != 0x09 }) else { return "" }
        return String(text[first...last])
    }
}
