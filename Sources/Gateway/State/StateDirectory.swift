import Crypto
import Foundation
import SwiftASN1
import X509

/// The gateway's state folder: its Ed25519 signing key (seals and dev tokens), the matching
/// public key (for offline `audit verify`), and a self-signed TLS pair when none is configured.
public struct StateDirectory: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    public var signingKeyPath: String { file("signing.key") }
    public var publicKeyPath: String { file("signing.pub") }
    public var certificatePath: String { file("tls.crt") }
    public var certificateKeyPath: String { file("tls.key") }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Creates the folder (mode 0700) and whatever key material is missing.
    public func prepare() throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        _ = try signingKey()
        try ensureCertificate()
    }

    /// The gateway's signing key, created on first use.
    public func signingKey() throws -> Curve25519.Signing.PrivateKey {
        if let data = FileManager.default.contents(atPath: signingKeyPath) {
            guard let text = String(data: data, encoding: .utf8),
                  let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
                  let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
                throw ConfigurationError(file: signingKeyPath, key: "state_dir", reason: "signing key is not a base64 Ed25519 key")
            }
            // A key put in place by hand (several gateways share one) gets its public half
            // beside it, for `audit verify`.
            if !FileManager.default.fileExists(atPath: publicKeyPath) {
                try? write(key.publicKey.rawRepresentation.base64EncodedString() + "\n", to: publicKeyPath, mode: 0o644)
            }
            return key
        }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let key = Curve25519.Signing.PrivateKey()
        try write(key.rawRepresentation.base64EncodedString() + "\n", to: signingKeyPath, mode: 0o600)
        try write(key.publicKey.rawRepresentation.base64EncodedString() + "\n", to: publicKeyPath, mode: 0o644)
        return key
    }

    /// The signing key the gateway created, for commands other than `serve`: they never create
    /// state, so a command pointed at the wrong configuration says where it looked instead of
    /// minting tokens with a new key the gateway does not know.
    public func existingSigningKey() throws -> Curve25519.Signing.PrivateKey {
        guard FileManager.default.fileExists(atPath: signingKeyPath) else {
            throw ConfigurationError(file: signingKeyPath, key: "state_dir",
                                     reason: "no signing key here: the gateway creates it when it first starts (sluice serve); "
                                         + "give this command the gateway's own --config")
        }
        return try signingKey()
    }

    /// This gateway's lasting id (12 hex digits in `gateway-id`, created on first use): ephemeral
    /// database roles carry it, so after a crash the gateway drops its own leftovers and never
    /// another gateway's live ones.
    public func gatewayID() throws -> String {
        let path = file("gateway-id")
        if let data = FileManager.default.contents(atPath: path) {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if text.count == 12, text.allSatisfy(\.isHexDigit) { return text.lowercased() }
        }
        let id = Hex.random(bytes: 6)
        try write(id + "\n", to: path, mode: 0o644)
        return id
    }

    /// The public half, from `signing.pub` (all that `audit verify` needs).
    public func publicKey() throws -> Curve25519.Signing.PublicKey {
        try StateDirectory.readPublicKey(at: publicKeyPath)
    }

    public static func readPublicKey(at path: String) throws -> Curve25519.Signing.PublicKey {
        guard let data = FileManager.default.contents(atPath: path),
              let text = String(data: data, encoding: .utf8),
              let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw ConfigurationError(file: path, key: "public key", reason: "missing or not a base64 Ed25519 public key")
        }
        return key
    }

    /// A self-signed P-256 certificate for localhost and 127.0.0.1, valid for a year.
    func ensureCertificate() throws {
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: certificatePath) && fileManager.fileExists(atPath: certificateKeyPath) { return }
        let key = P256.Signing.PrivateKey()
        let certificateKey = Certificate.PrivateKey(key)
        let name = try DistinguishedName {
            OrganizationName("Sluice")
            CommonName("Sluice gateway (self-signed)")
        }
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: certificateKey.publicKey,
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(365 * 86400),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([.dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))])
            },
            issuerPrivateKey: certificateKey
        )
        try write(key.pemRepresentation + "\n", to: certificateKeyPath, mode: 0o600)
        try write(try certificate.serializeAsPEM().pemString + "\n", to: certificatePath, mode: 0o644)
    }

    private func write(_ text: String, to path: String, mode: Int) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: Data(text.utf8),
                                             attributes: [.posixPermissions: mode]) else {
            throw ConfigurationError(file: path, key: "state_dir", reason: "cannot write")
        }
        _ = try? FileManager.default.removeItem(at: url)
        try FileManager.default.moveItem(at: temporary, to: url)
    }
}

/// A gateway public key read from a file (`signing.pub`), for offline verification.
public struct PublicKeyFile: Sendable {
    public let key: Curve25519.Signing.PublicKey

    public init(path: String) throws {
        key = try StateDirectory.readPublicKey(at: path)
    }
}
