import MaskEngine
import Adapters
import Crypto
import CryptoExtras
import Foundation
import Testing
@testable import Gateway

/// A fake identity provider: keys, a discovery document and a JWKS served through the fetcher.
final class TestProvider: Sendable {
    static let issuer = "https://idp.test"
    let rsa = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
    let p256 = P256.Signing.PrivateKey()
    let ed = Curve25519.Signing.PrivateKey()
    let fetches = Locked<[String]>([])
    /// Key ids the JWKS publishes now (rotation changes it).
    let published = Locked<Set<String>>(["rsa-1", "ec-1", "ed-1"])

    var fetcher: HTTPFetcher {
        { [self] url in
            fetches.withLock { $0.append(url) }
            if url == Self.issuer + "/.well-known/openid-configuration" {
                return Data(#"{"issuer":"https://idp.test","jwks_uri":"https://idp.test/jwks"}"#.utf8)
            }
            if url == Self.issuer + "/jwks" { return jwks() }
            throw TokenError(.providerUnavailable, "404")
        }
    }

    func jwks() -> Data {
        let primitives = try! rsa.publicKey.getKeyPrimitives()
        let raw = p256.publicKey.rawRepresentation
        let all: [String: [String: String]] = [
            "rsa-1": ["kty": "RSA", "kid": "rsa-1", "use": "sig", "n": Base64URL.encode(primitives.modulus), "e": Base64URL.encode(primitives.publicExponent)],
            "ec-1": ["kty": "EC", "kid": "ec-1", "crv": "P-256", "x": Base64URL.encode(raw.prefix(32)), "y": Base64URL.encode(raw.suffix(32))],
            "ed-1": ["kty": "OKP", "kid": "ed-1", "crv": "Ed25519", "x": Base64URL.encode(ed.publicKey.rawRepresentation)],
            "rsa-2": ["kty": "RSA", "kid": "rsa-2", "n": Base64URL.encode(primitives.modulus), "e": Base64URL.encode(primitives.publicExponent)],
        ]
        let keys = published.withLock { Array($0) }.compactMap { all[$0] }
        return try! JSONSerialization.data(withJSONObject: ["keys": keys])
    }

    func fetchCount(_ suffix: String) -> Int { fetches.withLock { $0.filter { $0.hasSuffix(suffix) }.count } }

    static func claims(now: Int64 = Int64(Date().timeIntervalSince1970), _ changes: [String: Any] = [:]) -> [String: Any] {
        var claims: [String: Any] = ["iss": issuer, "aud": "sluice", "sub": "u-1", "preferred_username": "alice",
                                     "groups": ["eng"], "exp": now + 300, "iat": now, "nbf": now]
        for (key, value) in changes { claims[key] = value }
        return claims
    }

    static func encode(_ header: [String: Any], _ claims: [String: Any]) -> String {
        Base64URL.encode(try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) + "."
            + Base64URL.encode(try! JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys]))
    }

    func sign(alg: String, kid: String?, _ claims: [String: Any]) -> String {
        var header: [String: Any] = ["alg": alg, "typ": "JWT"]
        header["kid"] = kid
        let input = Self.encode(header, claims)
        let data = Array(input.utf8)
        let signature: [UInt8]
        switch alg {
        case "RS256":
            signature = Array(try! rsa.signature(for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5).rawRepresentation)
        case "ES256": signature = Array(try! p256.signature(for: data).rawRepresentation)
        case "EdDSA": signature = Array(try! ed.signature(for: data))
        default: signature = []
        }
        return input + "." + Base64URL.encode(signature)
    }

    /// A verifier for this provider; its clock is the real one unless `now` fixes it (a fixed
    /// clock made tokens signed more than the skew later look not yet valid on a loaded machine).
    func verifier(now: Date? = nil, refetch: Duration = .seconds(30)) -> TokenVerifier {
        var identity = GatewayConfiguration.Identity()
        identity.devIssuer = false
        var provider = GatewayConfiguration.OIDCProvider(issuer: Self.issuer, audience: "sluice")
        provider.groupsClaim = "realm.groups"
        identity.oidc = [provider]
        return TokenVerifier(identity: identity, devKey: nil, fetch: fetcher, now: { now ?? Date() }, jwksRefetchInterval: refetch)
    }
}

@Suite struct TokenVerifierTests {
    let provider = TestProvider()

    @Test(arguments: [("RS256", "rsa-1"), ("ES256", "ec-1"), ("EdDSA", "ed-1")])
    func validTokensOfEachAlgorithmAreAccepted(alg: String, kid: String) async throws {
        let token = provider.sign(alg: alg, kid: kid, TestProvider.claims(["realm": ["groups": ["eng", "dba"]]]))
        let identity = try await provider.verifier().verify(token)
        #expect(identity == Identity(user: "alice", groups: ["eng", "dba"], issuer: TestProvider.issuer))
    }

    func code(_ token: String, verifier: TokenVerifier? = nil) async -> TokenError.Code? {
        do {
            _ = try await (verifier ?? provider.verifier()).verify(token)
            return nil
        } catch let error as TokenError {
            return error.code
        } catch {
            return TokenError.Code(rawValue: "other: \(error)")
        }
    }

    @Test func eachRejectionHasItsOwnCode() async throws {
        let now = Int64(Date().timeIntervalSince1970)
        let good = TestProvider.claims()
        let rsaKey = provider.rsa.publicKey.pemRepresentation
        let hmacWithPublicKey: String = {
            let input = TestProvider.encode(["alg": "HS256", "typ": "JWT", "kid": "rsa-1"], good)
            let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: Array(rsaKey.utf8)))
            return input + "." + Base64URL.encode(Array(mac))
        }()
        var tampered = provider.sign(alg: "ES256", kid: "ec-1", good)
        tampered = String(tampered.dropLast(2)) + (tampered.hasSuffix("AA") ? "BB" : "AA")
        let cases: [(String, String, TokenError.Code)] = [
            ("alg none", TestProvider.encode(["alg": "none"], good) + ".", .algorithmNone),
            ("HS256 signed with the public key", hmacWithPublicKey, .hmacRefused),
            ("unknown kid", provider.sign(alg: "RS256", kid: "nope", good), .unknownKey),
            ("wrong issuer", provider.sign(alg: "RS256", kid: "rsa-1", TestProvider.claims(["iss": "https://evil.test"])), .wrongIssuer),
            ("wrong audience", provider.sign(alg: "RS256", kid: "rsa-1", TestProvider.claims(["aud": "other"])), .wrongAudience),
            ("audience list without us", provider.sign(alg: "RS256", kid: "rsa-1", TestProvider.claims(["aud": ["a", "b"]])), .wrongAudience),
            ("expired", provider.sign(alg: "RS256", kid: "rsa-1", TestProvider.claims(["exp": now - 120])), .expired),
            ("not yet valid", provider.sign(alg: "RS256", kid: "rsa-1", TestProvider.claims(["nbf": now + 600])), .notYetValid),
            ("issued in the future", provider.sign(alg: "RS256", kid: "rsa-1", TestProvider.claims(["iat": now + 600])), .issuedInFuture),
            ("no exp", provider.sign(alg: "RS256", kid: "rsa-1", TestProvider.claims(["exp": NSNull()])), .missingClaim),
            ("bad signature", tampered, .badSignature),
            ("alg does not fit the key", provider.sign(alg: "ES256", kid: "rsa-1", good), .algorithmKeyMismatch),
            ("PS256", TestProvider.encode(["alg": "PS256", "kid": "rsa-1"], good) + ".AAAA", .unsupportedAlgorithm),
            ("two parts", "abc.def", .malformed),
            ("garbage", "not a token at all", .malformed),
            ("dev issuer off", provider.sign(alg: "EdDSA", kid: "ed-1", TestProvider.claims(["iss": DevIssuer.issuer])), .devIssuerDisabled),
        ]
        for (name, token, expected) in cases {
            #expect(await code(token) == expected, "\(name)")
        }
    }

    @Test func skewToleratesSmallClockDifferences() async throws {
        let now = Int64(Date().timeIntervalSince1970)
        let token = provider.sign(alg: "RS256", kid: "rsa-1", TestProvider.claims(["exp": now - 30, "iat": now + 30, "nbf": now + 30]))
        #expect(await code(token) == nil)
    }

    @Test func unknownKidRefetchesTheKeySetAtMostOncePerInterval() async throws {
        let verifier = provider.verifier(refetch: .milliseconds(300))
        #expect(await code(provider.sign(alg: "RS256", kid: "rsa-1", TestProvider.claims()), verifier: verifier) == nil)
        #expect(provider.fetchCount("/jwks") == 1)
        try await Task.sleep(for: .milliseconds(350))
        // The provider rotates to a new key: the first token with the new kid triggers a refetch.
        provider.published.withLock { $0 = ["rsa-2"] }
        #expect(await code(provider.sign(alg: "RS256", kid: "rsa-2", TestProvider.claims()), verifier: verifier) == nil)
        #expect(provider.fetchCount("/jwks") == 2)
        // A burst of forged kids does not hammer the provider.
        for index in 0..<20 {
            #expect(await code(provider.sign(alg: "RS256", kid: "forged-\(index)", TestProvider.claims()), verifier: verifier) == .unknownKey)
        }
        #expect(provider.fetchCount("/jwks") == 2)
        #expect(provider.fetchCount("openid-configuration") == 1)
    }

    @Test func devTokensVerifyAndCarryTheirGroups() async throws {
        let key = Curve25519.Signing.PrivateKey()
        var identity = GatewayConfiguration.Identity()
        identity.devIssuer = true
        let verifier = TokenVerifier(identity: identity, devKey: key.publicKey, fetch: provider.fetcher)
        let token = try DevIssuer.mint(user: "bob", groups: ["dba", "eng"], ttl: .seconds(60), key: key)
        #expect(try await verifier.verify(token) == Identity(user: "bob", groups: ["dba", "eng"], issuer: DevIssuer.issuer))
        let other = try DevIssuer.mint(user: "bob", groups: [], ttl: .seconds(60), key: Curve25519.Signing.PrivateKey())
        #expect(await code(other, verifier: verifier) == .unknownKey)
        let expired = try DevIssuer.mint(user: "bob", groups: [], ttl: .seconds(60), key: key, now: Date().addingTimeInterval(-3600))
        #expect(await code(expired, verifier: verifier) == .expired)
    }

    /// Signs a token whose claims are given as raw JSON text, so any number can be written.
    func signRaw(_ claimsJSON: String) -> String {
        let header = Base64URL.encode(Array(#"{"alg":"EdDSA","kid":"ed-1","typ":"JWT"}"#.utf8))
        let input = header + "." + Base64URL.encode(Array(claimsJSON.utf8))
        return input + "." + Base64URL.encode(Array(try! provider.ed.signature(for: Array(input.utf8))))
    }

    @Test func outOfRangeTimeClaimsAreRejectedWithoutTrapping() async throws {
        let now = Int64(Date().timeIntervalSince1970)
        let base = #""iss":"https://idp.test","aud":"sluice","preferred_username":"alice""#
        let extremes = ["9223372036854775807", "-9223372036854775808", "9223372036854775808", "1e300", "-1e300",
                        "1.7976931348623157e308", "253402300800", "-1", "\"soon\"", "true", "[1]", "{}"]
        for value in extremes {
            for claim in ["exp", "nbf", "iat"] {
                var fields = ["exp": "\(now + 300)", "nbf": "\(now)", "iat": "\(now)"]
                fields[claim] = value
                let json = "{" + base + fields.map { ",\"\($0.key)\":\($0.value)" }.joined() + "}"
                let result = await code(signRaw(json))
                // `true` may be read as the number 1 (a date in 1970): then it is simply too old or fine.
                if value == "true" { #expect(result != nil || claim != "exp", "\(claim)=\(value)"); continue }
                #expect(result == .invalidClaim, "\(claim)=\(value)")
            }
        }
    }

    @Test func deeplyNestedClaimsAreRefusedWithoutCrashing() async throws {
        let depth = 5_800
        let nested = #"{"a":"# + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
        let token = Base64URL.encode(Array(#"{"alg":"EdDSA"}"#.utf8)) + "." + Base64URL.encode(Array(nested.utf8)) + ".AAAA"
        #expect(token.utf8.count <= ParsedJWT.maximumLength)
        #expect(await code(token) != nil)
    }

    @Test func fractionalAndLargestAcceptedTimesVerify() async throws {
        let now = Int64(Date().timeIntervalSince1970)
        let base = #""iss":"https://idp.test","aud":"sluice","preferred_username":"alice""#
        #expect(await code(signRaw("{" + base + ",\"exp\":253402300799,\"iat\":\(now).5,\"nbf\":\(now).25}")) == nil)
        #expect(await code(signRaw("{" + base + ",\"exp\":\(now - 3600).9}")) == .expired)
    }

    @Test func aHugeConfiguredSkewIsBoundedAndCannotOverflow() async throws {
        var identity = GatewayConfiguration.Identity()
        identity.devIssuer = false
        identity.clockSkew = .seconds(Int64.max)
        identity.oidc = [GatewayConfiguration.OIDCProvider(issuer: TestProvider.issuer, audience: "sluice")]
        let verifier = TokenVerifier(identity: identity, devKey: nil, fetch: provider.fetcher)
        let base = #""iss":"https://idp.test","aud":"sluice","preferred_username":"alice""#
        #expect(await code(signRaw("{" + base + ",\"exp\":253402300799,\"nbf\":253402300799}"), verifier: verifier) == .notYetValid)
        #expect(await code(signRaw("{" + base + ",\"exp\":1}"), verifier: verifier) == .expired)
    }

    @Test func devTokensWithAHugeLifetimeDoNotTrap() async throws {
        let key = Curve25519.Signing.PrivateKey()
        var identity = GatewayConfiguration.Identity()
        identity.devIssuer = true
        let verifier = TokenVerifier(identity: identity, devKey: key.publicKey, fetch: provider.fetcher)
        let token = try DevIssuer.mint(user: "bob", groups: [], ttl: .seconds(Int64.max), key: key)
        #expect(await code(token, verifier: verifier) == .invalidClaim)
    }

    @Test func errorsNeverContainTheToken() async throws {
        let token = provider.sign(alg: "RS256", kid: "rsa-1", TestProvider.claims(["aud": "other"]))
        do {
            _ = try await provider.verifier().verify(token)
            Issue.record("accepted a wrong audience")
        } catch {
            let text = "\(error)"
            #expect(!text.contains(token.prefix(20)))
            #expect(!text.contains(String(token.split(separator: ".")[1].prefix(12))))
        }
    }
}
