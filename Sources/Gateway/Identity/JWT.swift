import Crypto
import CryptoExtras
import Foundation

/// Why a token was refused. Each case has its own code; messages never contain the token.
public struct TokenError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let malformed = Code(rawValue: "token_malformed")
        public static let algorithmNone = Code(rawValue: "token_alg_none")
        public static let hmacRefused = Code(rawValue: "token_hmac_refused")
        public static let unsupportedAlgorithm = Code(rawValue: "token_alg_unsupported")
        public static let algorithmKeyMismatch = Code(rawValue: "token_alg_key_mismatch")
        public static let unknownKey = Code(rawValue: "token_unknown_kid")
        public static let badSignature = Code(rawValue: "token_bad_signature")
        public static let expired = Code(rawValue: "token_expired")
        public static let notYetValid = Code(rawValue: "token_not_yet_valid")
        public static let issuedInFuture = Code(rawValue: "token_iat_in_future")
        public static let wrongIssuer = Code(rawValue: "token_wrong_issuer")
        public static let wrongAudience = Code(rawValue: "token_wrong_audience")
        public static let missingClaim = Code(rawValue: "token_missing_claim")
        /// A claim of the wrong type or out of range (e.g. `exp` not a date between 1970 and 9999).
        public static let invalidClaim = Code(rawValue: "token_invalid_claim")
        public static let providerUnavailable = Code(rawValue: "idp_unavailable")
        public static let devIssuerDisabled = Code(rawValue: "dev_issuer_disabled")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// base64url without padding, as JOSE uses it.
enum Base64URL {
    static func decode(_ text: Substring) -> [UInt8]? {
        guard text.utf8.count < 1 << 20 else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        if base64.contains("=") { return nil }
        while base64.utf8.count % 4 != 0 { base64.append("=") }
        return Data(base64Encoded: base64).map(Array.init)
    }

    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

/// A JWT split into its parts, header and claims parsed, signature not yet checked.
struct ParsedJWT {
    var algorithm: String
    var keyID: String?
    var claims: [String: Any]
    var signingInput: [UInt8]
    var signature: [UInt8]

    static let maximumLength = 16 * 1024

    init(_ token: String) throws {
        guard token.utf8.count <= Self.maximumLength else { throw TokenError(.malformed, "token longer than \(Self.maximumLength) bytes") }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw TokenError(.malformed, "a JWT has three dot-separated parts (\(parts.count) found)") }
        guard let headerBytes = Base64URL.decode(parts[0]),
              let header = (try? JSONSerialization.jsonObject(with: Data(headerBytes))) as? [String: Any] else {
            throw TokenError(.malformed, "header is not base64url JSON")
        }
        guard let algorithm = header["alg"] as? String else { throw TokenError(.malformed, "header has no alg") }
        guard let claimBytes = Base64URL.decode(parts[1]),
              let claims = (try? JSONSerialization.jsonObject(with: Data(claimBytes))) as? [String: Any] else {
            throw TokenError(.malformed, "payload is not base64url JSON")
        }
        guard let signature = Base64URL.decode(parts[2]) else { throw TokenError(.malformed, "signature is not base64url") }
        self.algorithm = algorithm
        self.keyID = header["kid"] as? String
        self.claims = claims
        self.signingInput = Array(parts[0].utf8) + [UInt8(ascii: ".")] + Array(parts[1].utf8)
        self.signature = signature
    }

    /// Refuses algorithms that must never be accepted before any key is looked up.
    func checkAlgorithmIsAsymmetric() throws {
        if algorithm.lowercased() == "none" { throw TokenError(.algorithmNone, "unsigned tokens (alg none) are refused") }
        if algorithm.uppercased().hasPrefix("HS") {
            throw TokenError(.hmacRefused, "HMAC-signed tokens are refused (a public key is not a shared secret)")
        }
        guard ["RS256", "ES256", "EdDSA"].contains(algorithm) else {
            throw TokenError(.unsupportedAlgorithm, "algorithm \(algorithm.prefix(16)) is not supported (RS256, ES256, EdDSA)")
        }
    }
}

/// A public key from a JWKS (RSA, P-256 or Ed25519).
public struct JSONWebKey: Sendable {
    public enum Material: Sendable {
        case rsa(_RSA.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case ed25519(Curve25519.Signing.PublicKey)
    }

    public var keyID: String?
    public var material: Material

    public init(keyID: String?, material: Material) {
        self.keyID = keyID
        self.material = material
    }

    /// Parses one JWK object; returns nil for key types it does not use (e.g. encryption keys).
    static func parse(_ object: [String: Any]) -> JSONWebKey? {
        if let use = object["use"] as? String, use != "sig" { return nil }
        let keyID = object["kid"] as? String
        switch object["kty"] as? String {
        case "RSA":
            guard let n = (object["n"] as? String).flatMap({ Base64URL.decode(Substring($0)) }),
                  let e = (object["e"] as? String).flatMap({ Base64URL.decode(Substring($0)) }),
                  let key = try? _RSA.Signing.PublicKey(n: n, e: e) else { return nil }
            return JSONWebKey(keyID: keyID, material: .rsa(key))
        case "EC":
            guard object["crv"] as? String == "P-256",
                  let x = (object["x"] as? String).flatMap({ Base64URL.decode(Substring($0)) }),
                  let y = (object["y"] as? String).flatMap({ Base64URL.decode(Substring($0)) }),
                  x.count == 32, y.count == 32,
                  let key = try? P256.Signing.PublicKey(rawRepresentation: x + y) else { return nil }
            return JSONWebKey(keyID: keyID, material: .p256(key))
        case "OKP":
            guard object["crv"] as? String == "Ed25519",
                  let x = (object["x"] as? String).flatMap({ Base64URL.decode(Substring($0)) }),
                  let key = try? Curve25519.Signing.PublicKey(rawRepresentation: x) else { return nil }
            return JSONWebKey(keyID: keyID, material: .ed25519(key))
        default:
            return nil
        }
    }

    static func parseSet(_ data: Data) -> [JSONWebKey]? {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let keys = object["keys"] as? [[String: Any]] else { return nil }
        return keys.compactMap(parse)
    }

    func fits(_ algorithm: String) -> Bool {
        switch (material, algorithm) {
        case (.rsa, "RS256"), (.p256, "ES256"), (.ed25519, "EdDSA"): return true
        default: return false
        }
    }

    func verify(_ jwt: ParsedJWT) throws {
        guard fits(jwt.algorithm) else {
            throw TokenError(.algorithmKeyMismatch, "alg \(jwt.algorithm) does not fit the key's type")
        }
        let valid: Bool
        switch material {
        case .rsa(let key):
            valid = key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: jwt.signature),
                                         for: SHA256.hash(data: jwt.signingInput), padding: .insecurePKCS1v1_5)
        case .p256(let key):
            guard let signature = try? P256.Signing.ECDSASignature(rawRepresentation: jwt.signature) else {
                throw TokenError(.badSignature, "signature does not verify")
            }
            valid = key.isValidSignature(signature, for: SHA256.hash(data: jwt.signingInput))
        case .ed25519(let key):
            valid = key.isValidSignature(jwt.signature, for: jwt.signingInput)
        }
        if !valid { throw TokenError(.badSignature, "signature does not verify") }
    }
}
