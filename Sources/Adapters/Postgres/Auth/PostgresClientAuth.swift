import MaskEngine
import Crypto
import Foundation

/// The client side of PostgreSQL authentication with the connection's stored credential:
/// trust, cleartext, md5 and SCRAM-SHA-256 (RFC 5802/7677, no channel binding).
package enum PostgresClientAuth {
    /// `md5` + md5(md5(password ‖ user) ‖ salt), as PostgreSQL expects.
    package static func md5Response(user: String, password: Secret, salt: [UInt8]) -> [UInt8] {
        func hex(_ digest: some Sequence<UInt8>) -> [UInt8] {
            let digits = Array("0123456789abcdef".utf8)
            var out: [UInt8] = []
            for byte in digest {
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0x0f)])
            }
            return out
        }
        let inner = password.withBytes { hex(Insecure.MD5.hash(data: $0 + Array(user.utf8))) }
        return Array("md5".utf8) + hex(Insecure.MD5.hash(data: inner + salt))
    }

    /// The SCRAM-SHA-256 verifier PostgreSQL stores for `password`
    /// (`SCRAM-SHA-256$ITER:SALT$STOREDKEY:SERVERKEY`): given to `CREATE ROLE … PASSWORD`, the
    /// password itself never travels to the server or into its statement log.
    package static func scramVerifier(password: [UInt8], salt: [UInt8], iterations: Int = 4096) -> String {
        let salted = SCRAM.saltedPassword(password, salt: salt, iterations: iterations)
        let key = SymmetricKey(data: salted)
        let clientKey = Array(HMAC<SHA256>.authenticationCode(for: Array("Client Key".utf8), using: key))
        let storedKey = Array(SHA256.hash(data: clientKey))
        let serverKey = Array(HMAC<SHA256>.authenticationCode(for: Array("Server Key".utf8), using: key))
        return "SCRAM-SHA-256$\(iterations):\(Data(salt).base64EncodedString())$"
            + "\(Data(storedKey).base64EncodedString()):\(Data(serverKey).base64EncodedString())"
    }

    /// One SCRAM-SHA-256 exchange.
    package struct SCRAM: Sendable {
        package let clientNonce: String
        private let password: Secret
        private var clientFirstBare = ""
        private var authMessage = ""
        private var saltedPassword: [UInt8] = []

        package init(password: Secret, clientNonce: String? = nil) {
            self.password = password
            self.clientNonce = clientNonce ?? SCRAM.makeNonce()
        }

        static func makeNonce() -> String {
            var generator = SystemRandomNumberGenerator()
            let bytes = (0..<18).map { _ in UInt8.random(in: 0...255, using: &generator) }
            return Data(bytes).base64EncodedString()
        }

        /// `n,,n=,r=NONCE` (PostgreSQL takes the user from the startup packet).
        package mutating func clientFirst() -> [UInt8] {
            clientFirstBare = "n=,r=\(clientNonce)"
            return Array(("n,," + clientFirstBare).utf8)
        }

        /// Answers the server-first message with the client-final message (with the proof).
        package mutating func clientFinal(serverFirst data: [UInt8]) throws -> [UInt8] {
            let serverFirst = String(decoding: data, as: UTF8.self)
            var attributes: [Character: String] = [:]
            for part in serverFirst.split(separator: ",") where part.count >= 2 && part.dropFirst().first == "=" {
                attributes[part.first!] = String(part.dropFirst(2))
            }
            guard let nonce = attributes["r"], nonce.hasPrefix(clientNonce), nonce.count > clientNonce.count,
                  let saltText = attributes["s"], let salt = Data(base64Encoded: saltText),
                  let iterationText = attributes["i"], let iterations = Int(iterationText), (1...1_000_000).contains(iterations) else {
                throw PostgresProtocolError(.upstreamAuthentication, "malformed SCRAM server-first message (\(data.count) bytes)")
            }
            saltedPassword = password.withBytes { SCRAM.saltedPassword($0, salt: Array(salt), iterations: iterations) }
            let clientFinalWithoutProof = "c=biws,r=\(nonce)"
            authMessage = clientFirstBare + "," + serverFirst + "," + clientFinalWithoutProof
            let clientKey = Array(HMAC<SHA256>.authenticationCode(for: Array("Client Key".utf8), using: SymmetricKey(data: saltedPassword)))
            let storedKey = Array(SHA256.hash(data: clientKey))
            let signature = Array(HMAC<SHA256>.authenticationCode(for: Array(authMessage.utf8), using: SymmetricKey(data: storedKey)))
            let proof = zip(clientKey, signature).map { $0 ^ $1 }
            return Array((clientFinalWithoutProof + ",p=" + Data(proof).base64EncodedString()).utf8)
        }

        /// Checks the server's signature (the server proves it knew the password too).
        package func verifyServerFinal(_ data: [UInt8]) throws {
            let text = String(decoding: data, as: UTF8.self)
            guard text.hasPrefix("v="), let signature = Data(base64Encoded: String(text.dropFirst(2))) else {
                throw PostgresProtocolError(.upstreamAuthentication, "SCRAM server-final message is an error or malformed")
            }
            let serverKey = HMAC<SHA256>.authenticationCode(for: Array("Server Key".utf8), using: SymmetricKey(data: saltedPassword))
            let expected = HMAC<SHA256>.authenticationCode(for: Array(authMessage.utf8), using: SymmetricKey(data: Array(serverKey)))
            guard Array(expected) == Array(signature) else {
                throw PostgresProtocolError(.upstreamAuthentication, "SCRAM server signature does not verify")
            }
        }

        private struct CacheKey: Hashable {
            var digest: [UInt8]
            var salt: [UInt8]
            var iterations: Int
        }

        /// PBKDF2 runs 4096 HMACs per login; the result is cached per (password digest, salt,
        /// iterations), so reconnects are cheap. Bounded to 256 entries.
        private static let cache = Locked<[CacheKey: [UInt8]]>([:])

        static func saltedPassword(_ password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
            let key = CacheKey(digest: Array(SHA256.hash(data: password + salt)), salt: salt, iterations: iterations)
            if let cached = cache.withLock({ $0[key] }) { return cached }
            let symmetric = SymmetricKey(data: password)
            var block = Array(HMAC<SHA256>.authenticationCode(for: salt + [0, 0, 0, 1], using: symmetric))
            var result = block
            if iterations > 1 {
                for _ in 1..<iterations {
                    block = Array(HMAC<SHA256>.authenticationCode(for: block, using: symmetric))
                    for index in 0..<result.count { result[index] ^= block[index] }
                }
            }
            cache.withLock { cache in
                if cache.count >= 256 { cache.removeAll() }
                cache[key] = result
            }
            return result
        }
    }
}
