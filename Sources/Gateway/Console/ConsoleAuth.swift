import MaskEngine
import Adapters
import Crypto
import Foundation

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
        Hex.string(SHA256.hash(data: Array(secret.utf8)))
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

/// The OIDC authorization-code flow with PKCE against the first configured provider: the
/// console is a confidential client (`client_secret_env`), otherwise the same flow as
/// `sluice login` (``OIDCLogin``), without `offline_access` (the console keeps no refresh token).
struct ConsoleOIDC: Sendable {
    let provider: GatewayConfiguration.OIDCProvider
    let fetch: HTTPFetcher

    struct Failure: Error, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    static let scope = "openid profile email groups"

    /// The client, with its secret read from the environment now (a missing one fails the exchange, not the redirect).
    func login(needingSecret: Bool) throws -> OIDCLogin {
        var secret: String?
        if let name = provider.clientSecretEnv {
            secret = ProcessInfo.processInfo.environment[name]
            if needingSecret && (secret?.isEmpty ?? true) { throw Failure(reason: "the client secret (env \(name)) is not set") }
        }
        return OIDCLogin(issuer: provider.issuer, clientID: provider.clientID ?? provider.audience, discoveryURL: provider.discoveryURL,
                         clientSecret: secret, scope: Self.scope, fetch: fetch)
    }

    func endpoints() async throws -> OIDCLogin.Endpoints {
        try await login(needingSecret: false).endpoints()
    }

    func authorizationURL(_ endpoints: OIDCLogin.Endpoints, state: String, pending: ConsoleLogins.PendingOIDC) throws -> String {
        try login(needingSecret: false).authorizationURL(endpoints, redirect: pending.redirect, state: state, nonce: pending.nonce,
                                                         challenge: ConsoleLogins.challenge(pending.verifier))
    }

    /// Exchanges the code for an ID token (which the caller verifies like any other token).
    func exchange(code: String, pending: ConsoleLogins.PendingOIDC, endpoints: OIDCLogin.Endpoints) async throws -> String {
        try await login(needingSecret: true).exchange(code: code, verifier: pending.verifier, redirect: pending.redirect,
                                                      endpoints: endpoints).idToken
    }
}
