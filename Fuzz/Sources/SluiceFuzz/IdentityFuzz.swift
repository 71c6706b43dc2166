import Foundation
@testable import Gateway

/// Token and key-set parsing: a JWT as sent by any client, a JWKS as served by any provider.
enum IdentityFuzz {
    static func tokensAndKeys(_ input: [UInt8]) {
        let text = String(decoding: input, as: UTF8.self)
        if let jwt = try? ParsedJWT(text) {
            try? jwt.checkAlgorithmIsAsymmetric()
            _ = TokenVerifier.claim(jwt.claims, path: "realm_access.roles")
            _ = TokenVerifier.time(jwt.claims["exp"])
        }
        _ = LoginThrottle.claimedUser(text)
        if let keys = JSONWebKey.parseSet(Data(input)) {
            for key in keys { _ = key.fits("EdDSA"); _ = key.fits("RS256"); _ = key.fits("ES256") }
        }
        _ = Base64URL.decode(text[...])
    }
}
