import Foundation
import MaskEngine
import NIOHTTP1

/// How the HTTP listener finds the connection of a request.
package enum HTTPRouting: Sendable, Equatable {
    /// `/<connection>/rest…`: the first path segment names the connection and is removed.
    case path
    /// `Host: <connection>.<suffix>`: the host name names the connection and the path is kept;
    /// requests whose host does not end in the suffix are routed by path.
    case host(suffix: String)
}

/// A request's connection and the URI the upstream gets.
package struct HTTPRoute: Sendable, Equatable {
    package var connection: String
    package var uri: String

    /// nil when the request names no connection (the gateway answers 404).
    package static func resolve(uri: String, host: String?, routing: HTTPRouting) -> HTTPRoute? {
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
package enum HTTPCredential: Sendable {
    case bearer(Secret)
    case basic(username: String, password: Secret)
    case header(name: String, value: Secret)

    /// From the connection's credential: a named header (`header` + token), basic auth
    /// (username + password) or a bearer token. nil when the connection has none.
    package init?(_ credential: Credential) {
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
package enum HTTPHeaderRules {
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization",
    ]

    /// Drops hop-by-hop fields, including those the `Connection` field names.
    package static func removingHopByHop(_ headers: HTTPHeaders) -> HTTPHeaders {
        var named = hopByHop
        for value in headers[canonicalForm: "connection"] { named.insert(value.lowercased()) }
        var out = HTTPHeaders()
        out.reserveCapacity(headers.count)
        for (name, value) in headers where !named.contains(name.lowercased()) { out.add(name: name, value: value) }
        return out
    }

    /// The user's token, read from `Authorization: Bearer T` or `Basic` (password = token).
    package static func token(from headers: HTTPHeaders) -> String? {
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
    package static func upstreamHeaders(_ client: HTTPHeaders, clientAddress: String?, clientScheme: String,
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
package struct HTTPResponsePlan: Sendable, Equatable {
    package enum Coding: Sendable, Equatable { case identity, gzip, deflate }
    /// The body goes through the scanning path: sniffed on its first bytes, normalised, masked.
    /// False only for bodies without one, and pass-through types in a coding the gateway does not decode.
    package var scan: Bool
    /// The type is on the connection's pass-through list: if its first bytes look binary it passes
    /// byte for byte (recorded by size); if they look like text it is scanned all the same.
    package var passThrough = false
    /// A type known to be text (JSON, XML, `text/*`…): the head goes out at once (streams such as
    /// watches and server-sent events are not held back); other bodies' heads wait for the sniff.
    package var knownText = false
    /// The body's content coding, decoded before scanning.
    package var coding: Coding
    /// Set when the body cannot be scanned (an unknown coding or charset): answer 502, never forward it.
    package var refusal: String?
    package var hasBody: Bool

    package init(scan: Bool, passThrough: Bool = false, coding: Coding, refusal: String?, hasBody: Bool) {
        self.scan = scan
        self.passThrough = passThrough
        self.coding = coding
        self.refusal = refusal
        self.hasBody = hasBody
    }

    /// The media type of a `Content-Type` value, lower case, when it is well-formed
    /// (`type/subtype` made of token characters); nil for anything else (lists, garbage).
    package static func mediaType(_ contentType: String?) -> String? {
        guard let contentType else { return nil }
        let type = contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first.map { ASCII.trimmed($0).lowercased() } ?? ""
        let parts = type.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
              type.utf8.allSatisfy({ $0 == UInt8(ascii: "/") || isTokenByte($0) }) else { return nil }
        return type
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): true
        default: false
        }
    }

    /// Whether a media type is on a pass-through list (`image/png`, `image/*`; `*/*` is not accepted).
    package static func isPassThrough(_ contentType: String?, list: [String]) -> Bool {
        guard let type = mediaType(contentType) else { return false }
        let major = type.split(separator: "/")[0]
        return list.contains { pattern in
            let pattern = ASCII.trimmed(pattern).lowercased()
            if pattern.hasSuffix("/*") { return pattern != "*/*" && major == pattern.dropLast(2) }
            return pattern == type
        }
    }

    /// Types known to be text: their heads are not held for sniffing (they are scanned either way).
    package static func isKnownText(_ contentType: String?) -> Bool {
        guard let type = mediaType(contentType) else { return false }
        if type.hasPrefix("text/") || type.hasSuffix("+json") || type.hasSuffix("+xml") { return true }
        return [
            "application/json", "application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-seq",
            "application/xml", "application/javascript", "application/x-www-form-urlencoded", "application/yaml",
            "application/x-yaml", "application/graphql", "application/problem+json", "application/csv",
        ].contains(type)
    }

    /// Charsets whose ASCII range is ASCII (what the detectors read), so scanning sees the text.
    static let scannableCharsets: Set<String> = ["utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin1", "iso-8859-15", "windows-1252"]

    /// The `charset` parameter of a `Content-Type`, lower case, unquoted.
    package static func charset(_ contentType: String?) -> String? {
        guard let contentType else { return nil }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, ASCII.trimmed(pair[0]).lowercased() == "charset" else { continue }
            var value = ASCII.trimmed(pair[1]).lowercased()
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value
        }
        return nil
    }

    /// Whether a response to `requestMethod` with `status` has a body.
    static func hasBody(_ requestMethod: HTTPMethod, _ status: HTTPResponseStatus) -> Bool {
        requestMethod != .HEAD && status.code >= 200 && status != .noContent && status != .notModified
    }

    /// Fail closed: every body is scanned except binary bodies of the connection's pass-through
    /// types. Codings other than gzip/deflate and charsets other than ASCII-compatible ones are refused.
    package static func make(requestMethod: HTTPMethod, status: HTTPResponseStatus, headers: HTTPHeaders,
                            passThrough: [String] = []) -> HTTPResponsePlan {
        let hasBody = hasBody(requestMethod, status)
        // Several Content-Type fields are one malformed type (never a pass-through one).
        let contentTypes = headers["content-type"]
        let contentType: String? = contentTypes.isEmpty ? nil : contentTypes.joined(separator: ",")
        var plan = HTTPResponsePlan(scan: hasBody, coding: .identity, refusal: nil, hasBody: hasBody)
        guard hasBody else { return plan }
        if contentType?.lowercased().hasPrefix("application/vnd.kubernetes.protobuf") == true {
            // Kubernetes objects in protobuf: structured data the stream masker cannot read.
            plan.refusal = "the response is Kubernetes protobuf, which the gateway cannot scan (ask for JSON)"
            return plan
        }
        let codings = headers[canonicalForm: "content-encoding"].map { ASCII.trimmed($0).lowercased() }
            .filter { !$0.isEmpty && $0 != "identity" }
        if isPassThrough(contentType, list: passThrough) {
            plan.passThrough = true
            // Only an identity body can be sniffed and still sent as it came.
            if !codings.isEmpty { plan.scan = false }
            return plan
        }
        plan.knownText = isKnownText(contentType)
        if let charset = charset(contentType), !scannableCharsets.contains(charset) {
            plan.refusal = "the response is in charset \(charset.prefix(40)), which the gateway does not scan"
            return plan
        }
        if codings == ["gzip"] || codings == ["x-gzip"] {
            plan.coding = .gzip
        } else if codings == ["deflate"] {
            plan.coding = .deflate
        } else if !codings.isEmpty {
            plan.refusal = "the response is encoded with \(codings.joined(separator: ", ").prefix(40)), which the gateway cannot scan"
        }
        return plan
    }

    /// The head sent to the client: hop-by-hop fields removed; when the body is rewritten (`raw`
    /// false), its length and coding go (the body is re-framed, chunked for HTTP/1.1 clients) and
    /// validators that describe the original bytes are dropped.
    package func clientHeaders(_ upstream: HTTPHeaders, raw: Bool = false) -> HTTPHeaders {
        var headers = HTTPHeaderRules.removingHopByHop(upstream)
        if scan && !raw {
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

/// The plan of a connection's last response with a body, kept with what it was made from
/// (the `Content-Type` and `Content-Encoding` fields as they came, the pass-through list): the
/// responses of one connection mostly share their type, and the plan is then not made again.
package struct HTTPResponsePlanCache: Sendable {
    private var last: (types: [String], codings: [String], passThrough: [String], plan: HTTPResponsePlan)?

    package init() {}

    package mutating func plan(requestMethod: HTTPMethod, status: HTTPResponseStatus, headers: HTTPHeaders,
                               passThrough: [String]) -> HTTPResponsePlan {
        guard HTTPResponsePlan.hasBody(requestMethod, status) else {
            return HTTPResponsePlan.make(requestMethod: requestMethod, status: status, headers: headers, passThrough: passThrough)
        }
        let types = headers["content-type"]
        let codings = headers["content-encoding"]
        if let last, last.types == types, last.codings == codings, last.passThrough == passThrough { return last.plan }
        let plan = HTTPResponsePlan.make(requestMethod: requestMethod, status: status, headers: headers, passThrough: passThrough)
        last = (types, codings, passThrough, plan)
        return plan
    }
}

extension HTTPRefusal: Error {}

/// Response header masking: every header is masked except the structural ones below, on every
/// status (redirects, 304). The scanned view of a value is percent-decoded and normalised (see
/// ``TextNormaliser``); when something matches, the masked view replaces the value.
package enum HTTPHeaderMasking {
    /// Headers that carry protocol structure, not data: passed as they are.
    package static let structural: Set<String> = [
        "content-type", "content-length", "content-encoding", "content-language", "transfer-encoding", "connection",
        "keep-alive", "date", "cache-control", "expires", "last-modified", "age", "pragma", "etag", "vary", "server",
        "accept-ranges", "upgrade", "sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions",
        "strict-transport-security", "x-content-type-options", "retry-after",
    ]

    /// The headers with every value that can carry data masked; the same headers (no copy) when
    /// nothing matched, as for most responses.
    package static func mask(_ headers: HTTPHeaders, with masker: ValueMasker) throws -> HTTPHeaders {
        var out: HTTPHeaders?
        for (index, (name, value)) in headers.enumerated() {
            let shown = structural.contains(name.lowercased()) ? value : try maskValue(value, with: masker)
            if out == nil, shown != value {
                // The first change: the headers before it go as they are.
                var copy = HTTPHeaders()
                for (earlier, (name, value)) in headers.enumerated() where earlier < index { copy.add(name: name, value: value) }
                out = copy
            }
            out?.add(name: name, value: shown)
        }
        return out ?? headers
    }

    /// One header value: the original when nothing matches in its scanned view, else the masked view.
    package static func maskValue(_ value: String, with masker: ValueMasker) throws -> String {
        let view = TextNormaliser.normalise(percentDecoded(Array(value.utf8)))
        switch try masker.mask(view) {
        case .unchanged: return value
        case .null: return "[REDACTED]"
        case .masked(let bytes):
            // Controls (a decoded %0D%0A) never go into a header line.
            var out: [UInt8] = []
            for byte in bytes {
                if byte < 0x20 || byte == 0x7f {
                    out.append(contentsOf: Array(String(format: "%%%02X", byte).utf8))
                } else {
                    out.append(byte)
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    static func percentDecoded(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count, let high = HTTPPath.hexValue(bytes[index + 1]),
               let low = HTTPPath.hexValue(bytes[index + 2]) {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return out
    }
}

/// The request target, normalised once: what the rules see, what is recorded and what goes
/// upstream (RFC 3986 §6.2.2: unreserved percent-escapes decoded, other escapes upper-cased,
/// `//` collapsed, dot segments removed). Refused: an encoded `/` (`%2F`) or backslash (`%5C`, or a
/// raw one), encoded dots inside a dot segment, a `..` that would climb above the
/// connection's base path, fragments, control bytes and malformed escapes.
package enum HTTPPath {
    package static func normalise(_ uri: String) -> Result<String, HTTPRefusal> {
        func refuse(_ message: String) -> Result<String, HTTPRefusal> { .failure(HTTPRefusal(.badRequest, code: "bad_path", message)) }
        let bytes = Array(uri.utf8)
        let queryStart = bytes.firstIndex(of: UInt8(ascii: "?")) ?? bytes.count
        let path = bytes[..<queryStart]
        let query = bytes[queryStart...]
        if bytes.contains(UInt8(ascii: "#")) { return refuse("fragments are not sent to servers") }
        if bytes.contains(where: { $0 < 0x20 || $0 == 0x7f }) { return refuse("control characters in the request target") }
        guard path.first == UInt8(ascii: "/") else { return refuse("the path must start with /") }
        // Segments with their escapes resolved.
        var segments: [[UInt8]] = []
        for raw in path.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            var segment: [UInt8] = []
            var encodedDot = false
            var index = raw.startIndex
            while index < raw.endIndex {
                let byte = raw[index]
                if byte == UInt8(ascii: "\\") { return refuse("backslashes are not accepted in paths") }
                guard byte == UInt8(ascii: "%") else {
                    segment.append(byte)
                    index += 1
                    continue
                }
                guard raw.distance(from: index, to: raw.endIndex) >= 3,
                      let high = hexValue(raw[index + 1]), let low = hexValue(raw[index + 2]) else {
                    return refuse("a malformed percent-escape")
                }
                let value = high << 4 | low
                if value == UInt8(ascii: "/") || value == UInt8(ascii: "\\") { return refuse("encoded / or \\ is not accepted in paths") }
                if isUnreserved(value) {
                    if value == UInt8(ascii: ".") { encodedDot = true }
                    segment.append(value)
                } else {
                    segment.append(contentsOf: Array(String(format: "%%%02X", value).utf8))
                }
                index += 3
            }
            let isDot = segment == [UInt8(ascii: ".")] || segment == [UInt8(ascii: "."), UInt8(ascii: ".")]
            if isDot && encodedDot { return refuse("encoded dots in a dot segment") }
            segments.append(segment)
        }
        var output: [[UInt8]] = []
        for (position, segment) in segments.enumerated() {
            let last = position == segments.count - 1
            if segment == [UInt8(ascii: ".")] {
                if last { output.append([]) }
            } else if segment == [UInt8(ascii: "."), UInt8(ascii: ".")] {
                guard !output.isEmpty else { return .failure(HTTPRefusal(.forbidden, code: "path_escapes", "the path climbs above the connection's base path")) }
                output.removeLast()
                if last { output.append([]) }
            } else if segment.isEmpty && !last {
                continue   // `//` collapsed
            } else {
                output.append(segment)
            }
        }
        var result: [UInt8] = [UInt8(ascii: "/")]
        for (index, segment) in output.enumerated() {
            if index > 0 { result.append(UInt8(ascii: "/")) }
            result.append(contentsOf: segment)
        }
        result.append(contentsOf: query)
        return .success(String(decoding: result, as: UTF8.self))
    }

    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"): true
        default: false
        }
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// How an HTTP request is described to the guardrails: `METHOD /path?query` (prefix removed),
/// classes: the method in lower case and `read` (GET, HEAD, OPTIONS) or `write`.
package enum HTTPCommands {
    package static func request(method: HTTPMethod, uri: String) -> Command {
        let name = method.rawValue
        let read = [HTTPMethod.GET, .HEAD, .OPTIONS].contains(method)
        return Command(text: "\(name) \(uri)", classes: [name.lowercased(), read ? "read" : "write"])
    }

    /// The commands a request is decided as, in order (the first not allowed decides). `HEAD`
    /// reads what `GET` reads, so it is decided as `HEAD /p` and then as `GET /p`: rules that
    /// name HEAD apply, and so do rules on GET.
    package static func requests(method: HTTPMethod, uri: String) -> [Command] {
        let command = request(method: method, uri: uri)
        guard method == .HEAD else { return [command] }
        return [command, request(method: .GET, uri: uri)]
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
