import MaskEngine
import Adapters
import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore

/// Fetches a URL's body (discovery documents, JWKS). Injected so tests can count fetches.
public typealias HTTPFetcher = @Sendable (String) async throws -> Data

public enum HTTPFetch {
    /// GET with AsyncHTTPClient: 5 s timeout, bodies up to 1 MiB, 2xx only.
    public static let live: HTTPFetcher = { url in
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        guard (200..<300).contains(response.status.code) else {
            throw TokenError(.providerUnavailable, "GET \(url) answered \(response.status.code)")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        return Data(buffer: body)
    }
}

/// Signing keys of one issuer.
protocol KeySource: Sendable {
    func key(id: String?, algorithm: String) async throws -> JSONWebKey
}

struct StaticKeys: KeySource {
    let keys: [JSONWebKey]

    func key(id: String?, algorithm: String) async throws -> JSONWebKey {
        if let id {
            guard let key = keys.first(where: { $0.keyID == id }) else { throw TokenError(.unknownKey, "no key with this kid") }
            return key
        }
        guard let key = keys.first(where: { $0.fits(algorithm) }) else { throw TokenError(.unknownKey, "no key for \(algorithm)") }
        return key
    }
}

/// An OIDC provider's keys: discovery, then the JWKS, cached; an unknown `kid` refetches the JWKS
/// at most once per `refetchInterval` (key rotation without letting forged kids hammer the provider).
final class OIDCKeySource: KeySource {
    struct State {
        var jwksURI: String?
        var keys: [JSONWebKey] = []
        var lastFetch: ContinuousClock.Instant?
    }

    let issuer: String
    let discoveryURL: String
    let fetch: HTTPFetcher
    let refetchInterval: Duration
    private let state = Locked(State())

    init(issuer: String, discoveryURL: String?, fetch: @escaping HTTPFetcher, refetchInterval: Duration = .seconds(30)) {
        self.issuer = issuer
        self.discoveryURL = discoveryURL ?? issuer.trimmingSuffix("/") + "/.well-known/openid-configuration"
        self.fetch = fetch
        self.refetchInterval = refetchInterval
    }

    private func discover() async throws -> String {
        if let uri = state.withLock({ $0.jwksURI }) { return uri }
        let data: Data
        do { data = try await fetch(discoveryURL) } catch {
            throw TokenError(.providerUnavailable, "discovery document unavailable")
        }
        guard let document = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let uri = document["jwks_uri"] as? String else {
            throw TokenError(.providerUnavailable, "discovery document has no jwks_uri")
        }
        guard (document["issuer"] as? String)?.trimmingSuffix("/") == issuer.trimmingSuffix("/") else {
            throw TokenError(.providerUnavailable, "discovery document names another issuer")
        }
        state.withLock { $0.jwksURI = uri }
        return uri
    }

    private func refresh(force: Bool) async throws -> [JSONWebKey] {
        let now = ContinuousClock.now
        let (cached, allowed) = state.withLock { state -> ([JSONWebKey], Bool) in
            let allowed = state.lastFetch.map { now - $0 >= refetchInterval } ?? true
            return (state.keys, allowed)
        }
        if !cached.isEmpty && !force { return cached }
        guard allowed else { return cached }
        let uri = try await discover()
        state.withLock { $0.lastFetch = now }
        let data: Data
        do { data = try await fetch(uri) } catch {
            if !cached.isEmpty { return cached }
            throw TokenError(.providerUnavailable, "JWKS unavailable")
        }
        guard let keys = JSONWebKey.parseSet(data) else { throw TokenError(.providerUnavailable, "JWKS is not a key set") }
        state.withLock { $0.keys = keys }
        return keys
    }

    func key(id: String?, algorithm: String) async throws -> JSONWebKey {
        func pick(_ keys: [JSONWebKey]) -> JSONWebKey? {
            if let id { return keys.first { $0.keyID == id } }
            let fitting = keys.filter { $0.fits(algorithm) }
            return fitting.count == 1 ? fitting[0] : nil
        }
        if let key = pick(try await refresh(force: false)) { return key }
        if let key = pick(try await refresh(force: true)) { return key }
        throw TokenError(.unknownKey, id == nil ? "token has no kid and the issuer has several keys" : "no key with this kid at the issuer")
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        var text = self
        while text.hasSuffix(suffix) { text.removeLast(suffix.count) }
        return text
    }
}

/// Checks bearer JWTs against the dev issuer and the configured OIDC providers.
public final class TokenVerifier: Sendable {
    struct Issuer: Sendable {
        var name: String
        var audience: String
        var userClaim: String
        var groupsClaim: String
        var keys: any KeySource
    }

    let issuers: [String: Issuer]
    let skew: Int64
    let now: @Sendable () -> Date

    init(issuers: [Issuer], skew: Duration, now: @escaping @Sendable () -> Date = Date.init) {
        var map: [String: Issuer] = [:]
        for issuer in issuers { map[issuer.name.trimmingSuffix("/")] = issuer }
        self.issuers = map
        // At most a day: a larger allowance is a misconfiguration, and bounding it keeps the arithmetic safe.
        self.skew = min(max(skew.components.seconds, 0), 86_400)
        self.now = now
    }

    /// A verifier for a gateway configuration: the dev issuer (when on) and every OIDC provider.
    public convenience init(identity: GatewayConfiguration.Identity, devKey: Curve25519.Signing.PublicKey?,
                            fetch: @escaping HTTPFetcher = HTTPFetch.live, now: @escaping @Sendable () -> Date = Date.init,
                            jwksRefetchInterval: Duration = .seconds(30)) {
        var issuers: [Issuer] = []
        if identity.devIssuer, let devKey {
            issuers.append(Issuer(name: DevIssuer.issuer, audience: DevIssuer.audience, userClaim: "preferred_username",
                                  groupsClaim: "groups",
                                  keys: StaticKeys(keys: [JSONWebKey(keyID: DevIssuer.keyID(devKey), material: .ed25519(devKey))])))
        }
        for provider in identity.oidc {
            issuers.append(Issuer(name: provider.issuer, audience: provider.audience, userClaim: provider.userClaim,
                                  groupsClaim: provider.groupsClaim,
                                  keys: OIDCKeySource(issuer: provider.issuer, discoveryURL: provider.discoveryURL, fetch: fetch,
                                                      refetchInterval: jwksRefetchInterval)))
        }
        self.init(issuers: issuers, skew: identity.clockSkew, now: now)
    }

    /// Verifies `token` and maps its claims to an identity.
    public func verify(_ token: String) async throws -> Identity {
        try await verifyWithExpiry(token).identity
    }

    /// Verifies `token`; also says until when it stays valid (Unix seconds: `exp` plus the skew).
    public func verifyWithExpiry(_ token: String) async throws -> (identity: Identity, validUntil: Int64) {
        let jwt = try ParsedJWT(token)
        try jwt.checkAlgorithmIsAsymmetric()
        guard let issuerName = jwt.claims["iss"] as? String else { throw TokenError(.missingClaim, "token has no iss") }
        guard let issuer = issuers[issuerName.trimmingSuffix("/")] else {
            if issuerName == DevIssuer.issuer { throw TokenError(.devIssuerDisabled, "the dev issuer is off in this configuration") }
            throw TokenError(.wrongIssuer, "issuer is not configured")
        }
        let key = try await issuer.keys.key(id: jwt.keyID, algorithm: jwt.algorithm)
        try key.verify(jwt)

        // Time claims are checked for range before any arithmetic: a signed token is still input.
        let current = Self.seconds(now().timeIntervalSince1970) ?? 0
        guard let expClaim = jwt.claims["exp"], !(expClaim is NSNull) else { throw TokenError(.missingClaim, "token has no exp") }
        guard let exp = Self.time(expClaim) else { throw TokenError(.invalidClaim, "exp is not a date between 1970 and 9999") }
        if current > exp.addingClamped(skew) { throw TokenError(.expired, "token expired") }
        if let nbfClaim = jwt.claims["nbf"], !(nbfClaim is NSNull) {
            guard let nbf = Self.time(nbfClaim) else { throw TokenError(.invalidClaim, "nbf is not a date between 1970 and 9999") }
            if current.addingClamped(skew) < nbf { throw TokenError(.notYetValid, "token not valid yet (nbf)") }
        }
        if let iatClaim = jwt.claims["iat"], !(iatClaim is NSNull) {
            guard let iat = Self.time(iatClaim) else { throw TokenError(.invalidClaim, "iat is not a date between 1970 and 9999") }
            if iat > current.addingClamped(skew) { throw TokenError(.issuedInFuture, "token issued in the future (iat)") }
        }

        let audiences: [String]
        switch jwt.claims["aud"] {
        case let single as String: audiences = [single]
        case let many as [Any]: audiences = many.compactMap { $0 as? String }
        default: throw TokenError(.missingClaim, "token has no aud")
        }
        guard audiences.contains(issuer.audience) else { throw TokenError(.wrongAudience, "token is for another audience") }

        guard let user = Self.claim(jwt.claims, path: issuer.userClaim) as? String, !user.isEmpty, user.utf8.count <= 256 else {
            throw TokenError(.missingClaim, "token has no \(issuer.userClaim) claim")
        }
        let groups: [String]
        switch Self.claim(jwt.claims, path: issuer.groupsClaim) {
        case let list as [Any]: groups = list.compactMap { $0 as? String }
        case let single as String: groups = single.split(separator: " ").map(String.init)
        default: groups = []
        }
        return (Identity(user: user, groups: Array(groups.prefix(256)), issuer: issuer.name), exp + skew)
    }

    /// The latest NumericDate accepted: 9999-12-31T23:59:59Z. Far enough for any real token, and
    /// small enough that adding any skew cannot overflow.
    static let latestTime: Int64 = 253_402_300_799

    /// A NumericDate claim (RFC 7519: seconds, fractions allowed) in `0...latestTime`, else nil.
    /// Never traps: huge, negative, fractional, NaN and non-numeric values are all just nil.
    static func time(_ value: Any?) -> Int64? {
        guard let seconds = number(value), (0...latestTime).contains(seconds) else { return nil }
        return seconds
    }

    /// A JSON number as whole seconds (rounded down), or nil when it is not a finite number in Int64's range.
    static func number(_ value: Any?) -> Int64? {
        switch value {
        case let integer as Int: return Int64(exactly: integer)
        case let integer as Int64: return integer
        case let double as Double: return seconds(double)
        case let number as NSNumber: return seconds(number.doubleValue)
        default: return nil
        }
    }

    static func seconds(_ double: Double) -> Int64? {
        guard double.isFinite else { return nil }
        return Int64(exactly: double.rounded(.down))
    }

    /// A claim by dotted path (`realm_access.roles`); a literal key with dots wins.
    static func claim(_ claims: [String: Any], path: String) -> Any? {
        if let direct = claims[path] { return direct }
        var current: Any? = claims
        for part in path.split(separator: ".") {
            current = (current as? [String: Any])?[String(part)]
        }
        return current
    }
}

/// The built-in dev issuer: tokens signed with the gateway's own Ed25519 key.
public enum DevIssuer {
    public static let issuer = "sluice-dev"
    public static let audience = "sluice"

    public static func keyID(_ key: Curve25519.Signing.PublicKey) -> String {
        Hex.string(SHA256.hash(data: key.rawRepresentation).prefix(8))
    }

    public static func mint(user: String, groups: [String], ttl: Duration, key: Curve25519.Signing.PrivateKey,
                            now: Date = Date()) throws -> String {
        let issued = TokenVerifier.seconds(now.timeIntervalSince1970) ?? 0
        let header: [String: Any] = ["alg": "EdDSA", "typ": "JWT", "kid": keyID(key.publicKey)]
        let claims: [String: Any] = [
            "iss": issuer, "aud": audience, "sub": user, "preferred_username": user, "groups": groups,
            "iat": issued, "nbf": issued, "exp": issued.addingClamped(ttl.components.seconds),
            "jti": UUID().uuidString.lowercased(),
        ]
        let headerPart = Base64URL.encode(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        let claimPart = Base64URL.encode(try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys]))
        let input = Array((headerPart + "." + claimPart).utf8)
        let signature = try key.signature(for: input)
        return headerPart + "." + claimPart + "." + Base64URL.encode(signature)
    }
}

extension Int64 {
    /// `self + other`, saturating at the bounds instead of trapping.
    func addingClamped(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        guard overflow else { return sum }
        return other > 0 ? .max : .min
    }
}
