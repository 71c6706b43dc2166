import MaskEngine
import Adapters
import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore

/// Who is signed in to the console: a random session id in an `HttpOnly; SameSite=Strict`
/// cookie, mapped here to the identity and the CSRF token of every form. Bounded and expiring.
///
/// With a store (`sluice serve` passes its own), sign-ins and OIDC sign-ins in progress are also
/// kept there — under the SHA-256 of the cookie or state, never the value itself — so a browser
/// sent to another gateway of a shared store stays signed in, and an identity provider's
/// redirect may come back to any of them.
public final class ConsoleLogins: Sendable {
    public struct Login: Sendable {
        public var id: String
        public var identity: Identity
        public var csrf: String
        public var expires: ContinuousClock.Instant
    }

    struct PendingOIDC: Sendable {
        var verifier: String
        var nonce: String
        var redirect: String
        var expires: ContinuousClock.Instant
    }

    public static let maximumLogins = 10_000
    public static let lifetime: Duration = .seconds(8 * 3600)
    private let logins = Locked<[String: Login]>([:])
    private let pending = Locked<[String: PendingOIDC]>([:])
    private let store: (any Store)?

    public init(store: (any Store)? = nil) {
        self.store = store
    }

    /// What the store keeps of a sign-in (expiry in wall-clock microseconds: gateways share it).
    private struct SharedLogin: Codable {
        var identity: Identity
        var csrf: String
        var expires: Int64
    }

    private struct SharedPending: Codable {
        var verifier: String
        var nonce: String
        var redirect: String
        var expires: Int64
    }

    static func digest(_ secret: String) -> String {
        SHA256.hash(data: Array(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    private static func wallMicros() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

    /// `instant` as wall-clock microseconds, and back, relative to `now`.
    private static func wall(_ instant: ContinuousClock.Instant, now: ContinuousClock.Instant) -> Int64 {
        let left = now.duration(to: instant)
        return wallMicros() + left.components.seconds * 1_000_000 + left.components.attoseconds / 1_000_000_000_000
    }

    private static func instant(_ wall: Int64, now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        now + .microseconds(wall - wallMicros())
    }

    public func create(_ identity: Identity, now: ContinuousClock.Instant = .now) -> Login {
        let login = Login(id: Self.random(), identity: identity, csrf: Self.random(), expires: now + Self.lifetime)
        keep(login, now: now)
        if let store {
            let shared = SharedLogin(identity: identity, csrf: login.csrf, expires: Self.wall(login.expires, now: now))
            // A store that cannot take it leaves the sign-in to this gateway alone.
            try? store.putShared(kind: "console.login", key: Self.digest(login.id), value: StoreJSON.encode(shared),
                                 expires: shared.expires, now: Self.wallMicros())
        }
        return login
    }

    private func keep(_ login: Login, now: ContinuousClock.Instant) {
        logins.withLock { logins in
            if logins.count >= Self.maximumLogins { logins = logins.filter { $0.value.expires > now } }
            if logins.count >= Self.maximumLogins, let oldest = logins.min(by: { $0.value.expires < $1.value.expires }) {
                logins[oldest.key] = nil
            }
            logins[login.id] = login
        }
    }

    public func lookup(_ id: String, now: ContinuousClock.Instant = .now) -> Login? {
        let local = logins.withLock { logins -> Login?? in
            guard let login = logins[id] else { return .none }
            guard login.expires > now else {
                logins[id] = nil
                return .some(nil)
            }
            return .some(login)
        }
        guard let store, id.count <= 64 else { return local ?? nil }
        // The store decides: signed in on another gateway, or signed out on one (a store that
        // does not answer leaves this gateway's own sign-ins as they are).
        let found: String?
        do {
            found = try store.shared(kind: "console.login", key: Self.digest(id), now: Self.wallMicros(), take: false)
        } catch {
            return local ?? nil
        }
        guard let text = found, let shared = StoreJSON.decode(SharedLogin.self, text) else {
            logins.withLock { _ = $0.removeValue(forKey: id) }
            return nil
        }
        if let local { return local }
        let login = Login(id: id, identity: shared.identity, csrf: shared.csrf, expires: Self.instant(shared.expires, now: now))
        guard login.expires > now else { return nil }
        keep(login, now: now)
        return login
    }

    public func remove(_ id: String) {
        _ = logins.withLock { $0.removeValue(forKey: id) }
        try? store?.removeShared(kind: "console.login", key: Self.digest(id))
    }

    func beginOIDC(redirect: String, now: ContinuousClock.Instant = .now) -> (state: String, pending: PendingOIDC) {
        let state = Self.random()
        let entry = PendingOIDC(verifier: Self.random(bytes: 48), nonce: Self.random(), redirect: redirect, expires: now + .seconds(600))
        pending.withLock { pending in
            if pending.count >= Self.maximumLogins { pending = pending.filter { $0.value.expires > now } }
            guard pending.count < Self.maximumLogins else { return }
            pending[state] = entry
        }
        if let store {
            let shared = SharedPending(verifier: entry.verifier, nonce: entry.nonce, redirect: entry.redirect,
                                       expires: Self.wall(entry.expires, now: now))
            try? store.putShared(kind: "console.oidc", key: Self.digest(state), value: StoreJSON.encode(shared),
                                 expires: shared.expires, now: Self.wallMicros())
        }
        return (state, entry)
    }

    /// The sign-in in progress for `state`, once: taken from this gateway's memory and the store.
    func finishOIDC(state: String, now: ContinuousClock.Instant = .now) -> PendingOIDC? {
        let local = pending.withLock { $0.removeValue(forKey: state) }
        guard let store, state.count <= 64 else { return local.flatMap { $0.expires > now ? $0 : nil } }
        // The store decides (each state is used once, on whichever gateway); a store that does
        // not answer leaves this gateway's own sign-ins in progress as they are.
        let shared: String?
        do {
            shared = try store.shared(kind: "console.oidc", key: Self.digest(state), now: Self.wallMicros(), take: true)
        } catch {
            return local.flatMap { $0.expires > now ? $0 : nil }
        }
        guard let text = shared, let entry = StoreJSON.decode(SharedPending.self, text) else { return nil }
        let restored = PendingOIDC(verifier: entry.verifier, nonce: entry.nonce, redirect: entry.redirect,
                                   expires: Self.instant(entry.expires, now: now))
        return restored.expires > now ? restored : nil
    }

    /// URL-safe base64 of `bytes` random bytes.
    static func random(bytes: Int = 32) -> String {
        var generator = SystemRandomNumberGenerator()
        return base64URL((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    static func base64URL<D: DataProtocol>(_ bytes: D) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The PKCE S256 challenge of a verifier (RFC 7636).
    static func challenge(_ verifier: String) -> String {
        base64URL(Array(SHA256.hash(data: Array(verifier.utf8))))
    }

    /// Constant-time comparison of CSRF tokens.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count, !x.isEmpty else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }
}

/// `application/x-www-form-urlencoded` bodies and query strings.
enum FormData {
    static func parse(_ text: String, limit: Int = 100) -> [String: String] {
        var result: [String: String] = [:]
        for pair in text.split(separator: "&").prefix(limit) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = decode(parts[0]) else { continue }
            result[key] = parts.count > 1 ? decode(parts[1]) ?? "" : ""
        }
        return result
    }

    static func decode<S: StringProtocol>(_ text: S) -> String? {
        String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }
}

/// The OIDC authorization-code flow with PKCE against the first configured provider.
struct ConsoleOIDC: Sendable {
    let provider: GatewayConfiguration.OIDCProvider
    let fetch: HTTPFetcher

    struct Endpoints: Sendable {
        var authorization: String
        var token: String
    }

    struct Failure: Error, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    func endpoints() async throws -> Endpoints {
        let url = provider.discoveryURL ?? (provider.issuer.hasSuffix("/") ? String(provider.issuer.dropLast()) : provider.issuer)
            + "/.well-known/openid-configuration"
        let data = try await fetch(url)
        guard let document = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let authorization = document["authorization_endpoint"] as? String,
              let token = document["token_endpoint"] as? String else {
            throw Failure(reason: "the provider's discovery document has no authorization or token endpoint")
        }
        return Endpoints(authorization: authorization, token: token)
    }

    func authorizationURL(_ endpoints: Endpoints, state: String, pending: ConsoleLogins.PendingOIDC) -> String {
        let query = [
            ("response_type", "code"), ("client_id", provider.clientID ?? provider.audience), ("redirect_uri", pending.redirect),
            ("scope", "openid profile email groups"), ("state", state), ("nonce", pending.nonce),
            ("code_challenge", ConsoleLogins.challenge(pending.verifier)), ("code_challenge_method", "S256"),
        ].map { "\($0.0)=\(FormData.encode($0.1))" }.joined(separator: "&")
        return endpoints.authorization + (endpoints.authorization.contains("?") ? "&" : "?") + query
    }

    /// Exchanges the code for an ID token (which the caller verifies like any other token).
    func exchange(code: String, pending: ConsoleLogins.PendingOIDC, endpoints: Endpoints) async throws -> String {
        var fields = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", pending.redirect),
                      ("client_id", provider.clientID ?? provider.audience), ("code_verifier", pending.verifier)]
        if let name = provider.clientSecretEnv {
            guard let secret = ProcessInfo.processInfo.environment[name], !secret.isEmpty else {
                throw Failure(reason: "the client secret (env \(name)) is not set")
            }
            fields.append(("client_secret", secret))
        }
        var request = HTTPClientRequest(url: endpoints.token)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        request.body = .bytes(ByteBuffer(string: fields.map { "\($0.0)=\(FormData.encode($0.1))" }.joined(separator: "&")))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard (200..<300).contains(response.status.code) else {
            throw Failure(reason: "the token endpoint answered \(response.status.code)")
        }
        guard let document = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
              let idToken = document["id_token"] as? String else {
            throw Failure(reason: "the token endpoint sent no id_token")
        }
        return idToken
    }
}
