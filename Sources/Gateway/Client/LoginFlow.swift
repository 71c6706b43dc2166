import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore

/// POSTs a form (with extra headers) and returns the status and body (≤ 1 MiB). Replaced in tests.
public typealias FormPoster = @Sendable (_ url: String, _ fields: [(String, String)], _ headers: [(String, String)]) async throws
    -> (status: Int, body: Data)

public enum FormPost {
    public static let live: FormPoster = { url, fields, headers in
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        request.body = .bytes(ByteBuffer(string: fields.map { "\($0.0)=\(FormData.encode($0.1))" }.joined(separator: "&")))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(15))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), Data(buffer: body))
    }
}

/// `sluice login` against an OIDC provider, as a public client (no secret; PKCE instead):
/// the authorization-code flow on a loopback redirect (RFC 8252), the device authorization
/// grant (RFC 8628) for machines without a browser, and refresh. The gateway verifies the ID
/// token, so that is the token kept.
public struct OIDCLogin: Sendable {
    public struct Endpoints: Sendable, Equatable {
        public var authorization: String
        public var token: String
        public var deviceAuthorization: String?
    }

    public struct Tokens: Sendable, Equatable {
        public var idToken: String
        public var refreshToken: String?
    }

    public struct Device: Sendable, Equatable {
        public var deviceCode: String
        public var userCode: String
        public var verificationURI: String
        public var verificationURIComplete: String?
        public var interval: Int
        public var expiresIn: Int
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var reason: String
        public var description: String { reason }
        public init(_ reason: String) { self.reason = reason }
    }

    public let issuer: String
    public let clientID: String
    public let discoveryURL: String?
    /// A provider's "installed app" secret, when it demands one (not a secret; see OIDCProvider.cliClientSecret).
    public let clientSecret: String?
    /// The scopes asked for (`sluice login` adds `offline_access` for a refresh token).
    public let scope: String
    let fetch: HTTPFetcher
    let post: FormPoster

    public init(issuer: String, clientID: String, discoveryURL: String? = nil, clientSecret: String? = nil,
                scope: String = OIDCLogin.scope, fetch: @escaping HTTPFetcher = HTTPFetch.live, post: @escaping FormPoster = FormPost.live) {
        self.clientSecret = clientSecret
        self.scope = scope
        self.issuer = issuer
        self.clientID = clientID
        self.discoveryURL = discoveryURL
        self.fetch = fetch
        self.post = post
    }

    public static let scope = "openid profile email groups offline_access"

    public func endpoints() async throws -> Endpoints {
        let url = discoveryURL ?? (issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer) + "/.well-known/openid-configuration"
        let data: Data
        do {
            data = try await fetch(url)
        } catch {
            throw Failure("cannot read the provider's discovery document (\(url)): \(error)")
        }
        guard let document = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let authorization = document["authorization_endpoint"] as? String,
              let token = document["token_endpoint"] as? String else {
            throw Failure("the provider's discovery document has no authorization or token endpoint")
        }
        return Endpoints(authorization: authorization, token: token,
                         deviceAuthorization: document["device_authorization_endpoint"] as? String)
    }

    /// A PKCE verifier (RFC 7636: 43–128 characters) and its S256 challenge.
    public static func pkce() -> (verifier: String, challenge: String) {
        let verifier = ConsoleLogins.random(bytes: 48)
        return (verifier, ConsoleLogins.challenge(verifier))
    }

    public func authorizationURL(_ endpoints: Endpoints, redirect: String, state: String, nonce: String, challenge: String) -> String {
        let query = [
            ("response_type", "code"), ("client_id", clientID), ("redirect_uri", redirect), ("scope", scope),
            ("state", state), ("nonce", nonce), ("code_challenge", challenge), ("code_challenge_method", "S256"),
        ].map { "\($0.0)=\(FormData.encode($0.1))" }.joined(separator: "&")
        return endpoints.authorization + (endpoints.authorization.contains("?") ? "&" : "?") + query
    }

    public func exchange(code: String, verifier: String, redirect: String, endpoints: Endpoints) async throws -> Tokens {
        try await tokenRequest(endpoints.token, [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect),
                                                 ("client_id", clientID), ("code_verifier", verifier)])
    }

    /// A new ID token from a refresh token. Providers that answer a refresh without an ID token
    /// (plain OAuth 2 servers) cannot refresh a gateway sign-in: the user signs in again.
    public func refresh(_ refreshToken: String, tokenEndpoint: String) async throws -> Tokens {
        // No scope: the refresh keeps the sign-in's (RFC 6749 §6).
        var tokens = try await tokenRequest(tokenEndpoint, [("grant_type", "refresh_token"), ("refresh_token", refreshToken),
                                                            ("client_id", clientID)])
        if tokens.refreshToken == nil { tokens.refreshToken = refreshToken }
        return tokens
    }

    /// Starts the device authorization grant.
    public func startDevice(_ endpoints: Endpoints) async throws -> Device {
        guard let url = endpoints.deviceAuthorization else {
            throw Failure("the provider offers no device authorization endpoint; use `sluice login` with a browser (--no-browser prints the URL)")
        }
        let (status, body) = try await post(url, [("client_id", clientID), ("scope", scope)], clientAuthentication)
        guard (200..<300).contains(status), let document = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let deviceCode = document["device_code"] as? String, let userCode = document["user_code"] as? String,
              let uri = (document["verification_uri"] ?? document["verification_url"]) as? String else {
            throw Failure("the device authorization endpoint answered \(status) without a device code")
        }
        return Device(deviceCode: deviceCode, userCode: userCode, verificationURI: uri,
                      verificationURIComplete: document["verification_uri_complete"] as? String,
                      interval: max(1, (document["interval"] as? Int) ?? 5), expiresIn: min(1800, (document["expires_in"] as? Int) ?? 600))
    }

    /// Polls the token endpoint until the user approves (or denies, or the code expires).
    public func pollDevice(_ device: Device, endpoints: Endpoints,
                           sleep: @Sendable (Int) async throws -> Void = { try await Task.sleep(for: .seconds($0)) }) async throws -> Tokens {
        var interval = device.interval
        var waited = 0
        while waited < device.expiresIn {
            try await sleep(interval)
            waited += interval
            let (status, body) = try await post(endpoints.token, [("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                                                                  ("device_code", device.deviceCode), ("client_id", clientID)],
                                                clientAuthentication)
            if (200..<300).contains(status) { return try Self.tokens(body) }
            let error = (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["error"] as? String
            switch error {
            case "authorization_pending": continue
            case "slow_down": interval += 5
            case "access_denied": throw Failure("the sign-in was denied")
            case "expired_token": throw Failure("the code expired; run `sluice login --device` again")
            default: throw Failure("the token endpoint answered \(status) (\(error ?? "no error code"))")
            }
        }
        throw Failure("the code expired; run `sluice login --device` again")
    }

    /// With a client secret, HTTP Basic authentication (RFC 6749 §2.3.1: every server takes it).
    var clientAuthentication: [(String, String)] {
        guard let clientSecret else { return [] }
        let pair = FormData.encode(clientID) + ":" + FormData.encode(clientSecret)
        return [("Authorization", "Basic " + Data(pair.utf8).base64EncodedString())]
    }

    private func tokenRequest(_ url: String, _ fields: [(String, String)]) async throws -> Tokens {
        let (status, body) = try await post(url, fields, clientAuthentication)
        guard (200..<300).contains(status) else {
            let error = (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["error"] as? String
            throw Failure("the token endpoint answered \(status)" + (error.map { " (\($0.prefix(60)))" } ?? ""))
        }
        return try Self.tokens(body)
    }

    static func tokens(_ body: Data) throws -> Tokens {
        guard let document = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw Failure("the token endpoint's answer is not JSON")
        }
        guard let idToken = document["id_token"] as? String else {
            throw Failure("the token endpoint sent no id_token (the gateway verifies ID tokens; see docs/login.md)")
        }
        return Tokens(idToken: idToken, refreshToken: document["refresh_token"] as? String)
    }

    /// The claims of a JWT, unverified (for display and expiry only: the gateway verifies).
    public static func claims(_ token: String) -> [String: Any] {
        let parts = token.split(separator: ".")
        guard parts.count == 3 else { return [:] }
        var text = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        guard let data = Data(base64Encoded: text), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            return [:]
        }
        return object
    }
}

/// The loopback redirect of `sluice login` (RFC 8252 §7.3): a one-shot HTTP listener on
/// 127.0.0.1 that takes the provider's redirect, checks the state and hands over the code.
public final class LoopbackRedirect: @unchecked Sendable {
    public let port: Int
    private let socket: Int32

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var reason: String
        public var description: String { reason }
    }

    public init(port: Int = 0) throws {
        let fd = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(reason: "cannot open a socket (errno \(errno))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 4) == 0 else {
            close(fd)
            throw Failure(reason: "cannot listen on 127.0.0.1:\(port) (errno \(errno))")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: address.sin_port))
        self.socket = fd
    }

    deinit { close(socket) }

    public var redirectURI: String { "http://127.0.0.1:\(port)/callback" }

    /// Waits (blocking, at most `timeout` seconds) for `GET /callback?code=…&state=…` with
    /// `state`; other requests (a favicon) get 404. Returns the code.
    public func waitForCode(state: String, timeout: Int = 300) throws -> String {
        let deadline = Date().addingTimeInterval(Double(timeout))
        while Date() < deadline {
            var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let left = Int32(max(0, min(1000, deadline.timeIntervalSinceNow * 1000)))
            guard poll(&poller, 1, left) > 0 else { continue }
            let client = accept(socket, nil, nil)
            guard client >= 0 else { continue }
            defer { close(client) }
            var timeoutValue = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeoutValue, socklen_t(MemoryLayout<timeval>.size))
            var request: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while request.count < 16 << 10, !request.containsHeaderEnd {
                let count = read(client, &buffer, buffer.count)
                if count <= 0 { break }
                request += buffer[0..<count]
            }
            let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
            let parts = line.split(separator: " ")
            guard parts.count >= 2, parts[0] == "GET", parts[1].hasPrefix("/callback") else {
                Self.answer(client, status: "404 Not Found", text: "not found")
                continue
            }
            let query = parts[1].split(separator: "?", maxSplits: 1).dropFirst().first.map { FormData.parse(String($0)) } ?? [:]
            if let error = query["error"] {
                Self.answer(client, status: "400 Bad Request", text: "Sign-in failed (\(error.prefix(60))). Return to the terminal.")
                throw Failure(reason: "the provider refused the sign-in (\(error.prefix(60)))")
            }
            guard let got = query["state"], ConsoleLogins.same(got, state), let code = query["code"], !code.isEmpty else {
                Self.answer(client, status: "400 Bad Request", text: "This sign-in does not belong to this terminal; start again.")
                throw Failure(reason: "the redirect carried a wrong or no state; sign in again")
            }
            Self.answer(client, status: "200 OK", text: "Signed in to Sluice. You can close this tab and return to the terminal.")
            return code
        }
        throw Failure(reason: "no sign-in within \(timeout) s")
    }

    private static func answer(_ client: Int32, status: String, text: String) {
        let body = "<!doctype html><meta charset=utf-8><title>Sluice</title><p>\(text)</p>\n"
        let response = "HTTP/1.1 \(status)\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Cache-Control: no-store\r\nConnection: close\r\n\r\n" + body
        _ = response.withCString { write(client, $0, strlen($0)) }
    }
}

private extension Array where Element == UInt8 {
    var containsHeaderEnd: Bool {
        guard count >= 4 else { return false }
        for index in 0...(count - 4) where self[index] == 13 && self[index + 1] == 10 && self[index + 2] == 13 && self[index + 3] == 10 {
            return true
        }
        return false
    }
}
