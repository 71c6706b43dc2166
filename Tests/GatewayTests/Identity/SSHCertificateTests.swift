import Crypto
import Foundation
import Testing
@testable import Gateway

@Suite struct SSHCertificateTests {
    @Test func aPrivateKeyFileRoundTrips() throws {
        let key = Curve25519.Signing.PrivateKey()
        let text = OpenSSHKey.privateText(key, comment: "c")
        #expect(text.hasPrefix("-----BEGIN OPENSSH PRIVATE KEY-----\n"))
        #expect(try OpenSSHKey.parsePrivate(text).rawRepresentation == key.rawRepresentation)
        #expect(try OpenSSHKey.parsePublicLine(OpenSSHKey.publicLine(key.publicKey, comment: "x")).rawRepresentation
                == key.publicKey.rawRepresentation)
    }

    @Test func encryptedOrForeignKeysAreRefusedWithWhy() {
        #expect(throws: OpenSSHKey.Failure.self) { try OpenSSHKey.parsePrivate("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n") }
        #expect(throws: OpenSSHKey.Failure.self) { try OpenSSHKey.parsePrivate("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n") }
    }

    /// Reads the certificate back field by field (PROTOCOL.certkeys) and checks the CA's
    /// signature over everything before it.
    @Test func aUserCertificateHasTheFieldsAskedAndVerifiesUnderTheCA() throws {
        let ca = Curve25519.Signing.PrivateKey()
        let user = Curve25519.Signing.PrivateKey()
        let certificate = SSHUserCertificate(key: user.publicKey, serial: 42, keyID: "sluice user=alice", principals: ["deploy", "ops"],
                                             validAfter: 1_000, validBefore: 2_000)
        let blob = try certificate.signed(by: ca)
        var reader = SSHWireReader(blob)
        #expect(try reader.text() == "ssh-ed25519-cert-v01@openssh.com")
        #expect(try reader.string().count == 32)  // nonce
        #expect(try reader.string() == Array(user.publicKey.rawRepresentation))
        #expect(try reader.uint64() == 42)
        #expect(try reader.uint32() == 1)
        #expect(try reader.text() == "sluice user=alice")
        var principals = SSHWireReader(try reader.string())
        #expect(try principals.text() == "deploy" && principals.text() == "ops")
        #expect(try reader.uint64() == 1_000 && reader.uint64() == 2_000)
        #expect(try reader.string().isEmpty)
        var extensions = SSHWireReader(try reader.string())
        #expect(try extensions.text() == "permit-port-forwarding")
        _ = try extensions.string()
        #expect(try extensions.text() == "permit-pty")
        #expect(try reader.string().isEmpty)
        #expect(try reader.string() == OpenSSHKey.publicBlob(ca.publicKey))
        let signedCount = blob.count - 4 - (4 + 11 + 4 + 64)
        var signature = SSHWireReader(try reader.string())
        #expect(try signature.text() == "ssh-ed25519")
        let bytes = try signature.string()
        #expect(ca.publicKey.isValidSignature(bytes, for: Array(blob[0..<signedCount])))
        #expect(!Curve25519.Signing.PrivateKey().publicKey.isValidSignature(bytes, for: Array(blob[0..<signedCount])))
    }
}
