import Crypto
import Foundation

/// OpenSSH key and certificate formats for ed25519, written and read with swift-crypto: the
/// `openssh-key-v1` private key file (unencrypted), public key blobs, and user certificates as
/// OpenSSH's PROTOCOL.certkeys defines them (`ssh-ed25519-cert-v01@openssh.com`).
public enum OpenSSHKey {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var reason: String
        public var description: String { reason }
    }

    static let keyType = "ssh-ed25519"
    static let certificateType = "ssh-ed25519-cert-v01@openssh.com"

    /// The public key blob: string "ssh-ed25519", string key (32 bytes).
    public static func publicBlob(_ key: Curve25519.Signing.PublicKey) -> [UInt8] {
        var writer = SSHWireWriter()
        writer.string(keyType)
        writer.string(Array(key.rawRepresentation))
        return writer.bytes
    }

    /// `ssh-ed25519 AAAA… comment`, as in `authorized_keys` and `TrustedUserCAKeys`.
    public static func publicLine(_ key: Curve25519.Signing.PublicKey, comment: String = "") -> String {
        keyType + " " + Data(publicBlob(key)).base64EncodedString() + (comment.isEmpty ? "" : " " + comment)
    }

    /// Reads `ssh-ed25519 AAAA… [comment]` (a `.pub` file).
    public static func parsePublicLine(_ text: String) throws -> Curve25519.Signing.PublicKey {
        let parts = text.split(whereSeparator: { $0 == " " || $0.isNewline })
        guard parts.count >= 2, parts[0] == keyType, let data = Data(base64Encoded: String(parts[1])) else {
            throw Failure(reason: "not an ssh-ed25519 public key line")
        }
        var reader = SSHWireReader(Array(data))
        guard try reader.text() == keyType else { throw Failure(reason: "not an ssh-ed25519 public key") }
        return try Curve25519.Signing.PublicKey(rawRepresentation: try reader.string())
    }

    /// Reads an unencrypted `openssh-key-v1` file holding one ed25519 key (what
    /// `ssh-keygen -t ed25519 -N ''` writes).
    public static func parsePrivate(_ text: String) throws -> Curve25519.Signing.PrivateKey {
        let body = text.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("-----") }.joined()
        guard text.contains("BEGIN OPENSSH PRIVATE KEY"), let data = Data(base64Encoded: String(body)) else {
            throw Failure(reason: "not an OpenSSH private key file (-----BEGIN OPENSSH PRIVATE KEY-----)")
        }
        var reader = SSHWireReader(Array(data))
        let magic = Array("openssh-key-v1".utf8) + [0]
        guard try reader.raw(magic.count) == magic else { throw Failure(reason: "not an openssh-key-v1 key") }
        guard try reader.text() == "none", try reader.text() == "none" else {
            throw Failure(reason: "the key is encrypted; the gateway needs it unencrypted (protect the file instead)")
        }
        _ = try reader.string()
        guard try reader.uint32() == 1 else { throw Failure(reason: "the file holds more than one key") }
        _ = try reader.string()
        var secret = SSHWireReader(try reader.string())
        guard try secret.uint32() == secret.uint32() else { throw Failure(reason: "the key's check words differ (damaged or encrypted)") }
        guard try secret.text() == keyType else { throw Failure(reason: "not an ed25519 key (the gateway signs with ed25519)") }
        let publicKey = try secret.string()
        let privateKey = try secret.string()
        guard publicKey.count == 32, privateKey.count == 64 else { throw Failure(reason: "malformed ed25519 key") }
        let key = try Curve25519.Signing.PrivateKey(rawRepresentation: privateKey.prefix(32))
        guard Array(key.publicKey.rawRepresentation) == publicKey else { throw Failure(reason: "the key's public half does not match") }
        return key
    }

    /// The key as an unencrypted `openssh-key-v1` file.
    public static func privateText(_ key: Curve25519.Signing.PrivateKey, comment: String = "") -> String {
        let publicKey = Array(key.publicKey.rawRepresentation)
        var secret = SSHWireWriter()
        var generator = SystemRandomNumberGenerator()
        let check = UInt32.random(in: 0...UInt32.max, using: &generator)
        secret.uint32(check)
        secret.uint32(check)
        secret.string(keyType)
        secret.string(publicKey)
        secret.string(Array(key.rawRepresentation) + publicKey)
        secret.string(comment)
        var pad: UInt8 = 1
        while secret.bytes.count % 8 != 0 {
            secret.bytes.append(pad)
            pad += 1
        }
        var writer = SSHWireWriter()
        writer.bytes += Array("openssh-key-v1".utf8) + [0]
        writer.string("none")
        writer.string("none")
        writer.string([UInt8]())
        writer.uint32(1)
        writer.string(publicBlob(key.publicKey))
        writer.string(secret.bytes)
        let base64 = Data(writer.bytes).base64EncodedString()
        var lines = ["-----BEGIN OPENSSH PRIVATE KEY-----"]
        var index = base64.startIndex
        while index < base64.endIndex {
            let end = base64.index(index, offsetBy: 70, limitedBy: base64.endIndex) ?? base64.endIndex
            lines.append(String(base64[index..<end]))
            index = end
        }
        lines.append("-----END OPENSSH PRIVATE KEY-----")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// An OpenSSH user certificate (PROTOCOL.certkeys) for an ed25519 key, signed by an ed25519 CA.
public struct SSHUserCertificate: Sendable {
    public var key: Curve25519.Signing.PublicKey
    public var serial: UInt64
    /// Shown in the target's sshd log (`Accepted publickey … ID <key id>`): the user it was made for.
    public var keyID: String
    public var principals: [String]
    /// Unix seconds.
    public var validAfter: UInt64
    public var validBefore: UInt64
    /// Sorted by name when written; the gateway relays a terminal and decides forwards itself.
    public var extensions: [String] = ["permit-port-forwarding", "permit-pty"]

    public init(key: Curve25519.Signing.PublicKey, serial: UInt64, keyID: String, principals: [String],
                validAfter: UInt64, validBefore: UInt64) {
        self.key = key
        self.serial = serial
        self.keyID = keyID
        self.principals = principals
        self.validAfter = validAfter
        self.validBefore = validBefore
    }

    /// The certificate blob, signed by `ca`.
    public func signed(by ca: Curve25519.Signing.PrivateKey) throws -> [UInt8] {
        var writer = SSHWireWriter()
        writer.string(OpenSSHKey.certificateType)
        var generator = SystemRandomNumberGenerator()
        writer.string((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
        writer.string(Array(key.rawRepresentation))
        writer.uint64(serial)
        writer.uint32(1)  // SSH_CERT_TYPE_USER
        writer.string(keyID)
        var names = SSHWireWriter()
        for principal in principals { names.string(principal) }
        writer.string(names.bytes)
        writer.uint64(validAfter)
        writer.uint64(validBefore)
        writer.string([UInt8]())  // critical options: none
        var extensionData = SSHWireWriter()
        for name in extensions.sorted() {
            extensionData.string(name)
            extensionData.string([UInt8]())
        }
        writer.string(extensionData.bytes)
        writer.string([UInt8]())  // reserved
        writer.string(OpenSSHKey.publicBlob(ca.publicKey))
        let signature = try ca.signature(for: writer.bytes)
        var signatureBlob = SSHWireWriter()
        signatureBlob.string(OpenSSHKey.keyType)
        signatureBlob.string(Array(signature))
        writer.string(signatureBlob.bytes)
        return writer.bytes
    }

    /// `ssh-ed25519-cert-v01@openssh.com AAAA…` (what `ssh-keygen -s` writes to `-cert.pub`).
    public func line(signedBy ca: Curve25519.Signing.PrivateKey) throws -> String {
        OpenSSHKey.certificateType + " " + Data(try signed(by: ca)).base64EncodedString()
    }
}

/// SSH wire encoding (RFC 4251): big-endian integers, length-prefixed strings.
struct SSHWireWriter {
    var bytes: [UInt8] = []

    mutating func uint32(_ value: UInt32) {
        bytes += [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }

    mutating func uint64(_ value: UInt64) {
        uint32(UInt32(value >> 32))
        uint32(UInt32(value & 0xffff_ffff))
    }

    mutating func string(_ value: [UInt8]) {
        uint32(UInt32(value.count))
        bytes += value
    }

    mutating func string(_ value: String) { string(Array(value.utf8)) }
}

struct SSHWireReader {
    private let bytes: [UInt8]
    private var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func raw(_ count: Int) throws -> [UInt8] {
        guard count >= 0, bytes.count - index >= count else { throw OpenSSHKey.Failure(reason: "truncated key data") }
        defer { index += count }
        return Array(bytes[index..<index + count])
    }

    mutating func uint32() throws -> UInt32 {
        try raw(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func uint64() throws -> UInt64 {
        try raw(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func string() throws -> [UInt8] {
        let count = try uint32()
        guard count <= 1 << 20 else { throw OpenSSHKey.Failure(reason: "a key field is too long") }
        return try raw(Int(count))
    }

    mutating func text() throws -> String { String(decoding: try string(), as: UTF8.self) }
}
