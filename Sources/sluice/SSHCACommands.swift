import ArgumentParser
import Crypto
import Foundation
import Gateway

/// The certificate authority of `credential.mode: certificate` connections (docs/just-in-time.md).
struct SSHCA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ssh-ca", abstract: "Make the SSH certificate authority key, or sign a certificate by hand (break-glass, tests).",
        subcommands: [Init.self, Sign.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init", abstract: "Write a new ed25519 CA key (mode 0600) and print the line for the target's TrustedUserCAKeys.")
        @Argument(help: "The key file to write (must not exist).") var file: String

        func run() throws {
            guard !FileManager.default.fileExists(atPath: file) else { fail("\(file) exists; the CA key is never overwritten", code: 2) }
            let key = Curve25519.Signing.PrivateKey()
            guard FileManager.default.createFile(atPath: file, contents: Data(OpenSSHKey.privateText(key, comment: "sluice-ca").utf8),
                                                 attributes: [.posixPermissions: 0o600]) else { fail("cannot write \(file)", code: 2) }
            let line = OpenSSHKey.publicLine(key.publicKey, comment: "sluice-ca")
            try? (line + "\n").write(toFile: file + ".pub", atomically: true, encoding: .utf8)
            print(line)
        }
    }

    struct Sign: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "sign", abstract: "Sign a user certificate for an ed25519 public key; writes KEY-cert.pub.")
        @Option(help: "The CA key file.") var ca: String
        @Option(help: "The user's public key file (ssh-ed25519 …).") var publicKey: String
        @Option(help: "Account the certificate is valid for (repeatable).") var principal: [String]
        @Option(help: "Key id (sshd logs it).") var keyID: String
        @Option(help: "Start of validity relative to now, e.g. -10m or 0.") var validFrom = "0"
        @Option(help: "Length of validity, e.g. 5m.") var validFor = "5m"

        func run() throws {
            let caKey = orFail(ca) { try OpenSSHKey.parsePrivate(String(decoding: FileManager.default.contents(atPath: ca) ?? Data(), as: UTF8.self)) }
            let user = orFail(publicKey) {
                try OpenSSHKey.parsePublicLine(String(decoding: FileManager.default.contents(atPath: publicKey) ?? Data(), as: UTF8.self))
            }
            let negative = validFrom.hasPrefix("-")
            guard let offset = validFrom == "0" ? 0 : GatewayConfiguration.parseDurationText(negative ? String(validFrom.dropFirst()) : validFrom),
                  let length = GatewayConfiguration.parseDurationText(validFor) else { fail("durations such as 10m or 1h", code: 2) }
            let start = Int64(Date().timeIntervalSince1970) + Int64(negative ? -offset : offset)
            var generator = SystemRandomNumberGenerator()
            let certificate = SSHUserCertificate(key: user, serial: UInt64.random(in: 1...UInt64.max, using: &generator), keyID: keyID,
                                                 principals: principal, validAfter: UInt64(max(0, start)), validBefore: UInt64(max(0, start + Int64(length))))
            let out = (publicKey.hasSuffix(".pub") ? String(publicKey.dropLast(4)) : publicKey) + "-cert.pub"
            try (try certificate.line(signedBy: caKey) + " " + keyID + "\n").write(toFile: out, atomically: true, encoding: .utf8)
            print(out)
        }
    }
}
