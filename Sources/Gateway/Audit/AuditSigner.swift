import Crypto
import Foundation

/// The gateway's Ed25519 signing key, held in one place. It signs session seals and control-log
/// checkpoints; everything else gets only the public half (to verify) — the private key is
/// never handed out, printed or logged.
public final class AuditSigner: Sendable {
    private let key: Curve25519.Signing.PrivateKey

    public init(key: Curve25519.Signing.PrivateKey) {
        self.key = key
    }

    public var publicKey: Curve25519.Signing.PublicKey { key.publicKey }

    /// The signature of `data`; nil only if the platform's signer fails.
    public func signature<D: DataProtocol>(for data: D) -> Data? {
        try? key.signature(for: data)
    }

    /// A verifier of the record in `store` against this key.
    public func verifier(for store: any RecordReader) -> AuditVerifier {
        AuditVerifier(store: store, publicKey: publicKey)
    }
}
