import Adapters
import CLibSSH
import Foundation

/// Connects and logs in to an SSH target with libssh (blocking): the host key must be the one
/// the connection names, and the login is the connection's private key — with the per-session
/// certificate when the connection uses `credential.mode: certificate`. Used by sessions and by
/// `sluice connections test`.
enum SSHUpstreamLogin {
    struct Failure: Error, CustomStringConvertible {
        enum Stage: Equatable {
            case configuration
            case connect
            case hostKeyMismatch(presented: String)
            case key
            case authentication
        }
        var stage: Stage
        var reason: String
        var description: String { reason }
    }

    /// A connected, authenticated session in blocking mode; the caller frees it.
    static func open(_ target: ConnectionTarget) throws -> ssh_session {
        guard let address = HostPort(target.target) else { throw Failure(stage: .configuration, reason: "target is not HOST:PORT") }
        guard let expected = target.hostKey?.split(separator: " ").prefix(2).joined(separator: " "), !expected.isEmpty else {
            throw Failure(stage: .configuration, reason: "the connection has no host_key; the gateway will not trust an unknown host")
        }
        guard let keyText = target.credential.privateKey?.exposed else {
            throw Failure(stage: .configuration, reason: "the connection has no private_key_file")
        }
        guard let session = ssh_new() else { throw Failure(stage: .connect, reason: "ssh_new failed") }
        var connected = false
        defer {
            if !connected {
                ssh_disconnect(session)
                ssh_free(session)
            }
        }
        var port = Int32(address.port)
        var no: Int32 = 0
        var timeout: Int = 15
        ssh_options_set(session, SSH_OPTIONS_HOST, address.host)
        ssh_options_set(session, SSH_OPTIONS_PORT, &port)
        ssh_options_set(session, SSH_OPTIONS_USER, target.credential.username ?? "root")
        ssh_options_set(session, SSH_OPTIONS_STRICTHOSTKEYCHECK, &no)
        ssh_options_set(session, SSH_OPTIONS_KNOWNHOSTS, "/dev/null")
        ssh_options_set(session, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null")
        ssh_options_set(session, SSH_OPTIONS_PROCESS_CONFIG, &no)
        ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &timeout)
        ssh_options_set(session, SSH_OPTIONS_HOSTKEYS,
                        "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256")
        if target.credential.certificate != nil {
            // Offer the certificate type first: sshd accepts it only under its own algorithm name.
            ssh_options_set(session, SSH_OPTIONS_PUBLICKEY_ACCEPTED_TYPES,
                            "ssh-ed25519-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256")
        }
        guard ssh_connect(session) == SSH_OK else {
            throw Failure(stage: .connect, reason: "connect failed: \(String(cString: ssh_get_error(UnsafeMutableRawPointer(session))))")
        }
        var serverKey: ssh_key?
        guard ssh_get_server_publickey(session, &serverKey) == SSH_OK, let serverKey else {
            throw Failure(stage: .connect, reason: "no server host key")
        }
        defer { ssh_key_free(serverKey) }
        var base64: UnsafeMutablePointer<CChar>?
        ssh_pki_export_pubkey_base64(serverKey, &base64)
        let typeName = ssh_key_type_to_char(ssh_key_type(serverKey)).map { String(cString: $0) } ?? "?"
        let presented = typeName + " " + (base64.map { String(cString: $0) } ?? "")
        ssh_string_free_char(base64)
        guard presented == expected else {
            throw Failure(stage: .hostKeyMismatch(presented: typeName),
                          reason: "the host key of \(target.name) does not match host_key (\(typeName) presented)")
        }
        var key: ssh_key?
        guard ssh_pki_import_privkey_base64(keyText, nil, nil, nil, &key) == SSH_OK, let key else {
            throw Failure(stage: .key, reason: "the private key cannot be read (unencrypted OpenSSH or PEM expected)")
        }
        defer { ssh_key_free(key) }
        if let certificate = target.credential.certificate?.exposed {
            var cert: ssh_key?
            guard ssh_pki_import_cert_base64(certificate, SSH_KEYTYPE_ED25519_CERT01, &cert) == SSH_OK, let cert else {
                throw Failure(stage: .key, reason: "the session certificate cannot be read")
            }
            defer { ssh_key_free(cert) }
            guard ssh_pki_copy_cert_to_privkey(cert, key) == SSH_OK else {
                throw Failure(stage: .key, reason: "the session certificate does not belong to the session key")
            }
        }
        guard ssh_userauth_publickey(session, nil, key) == Int32(SSH_AUTH_SUCCESS.rawValue) else {
            let what = target.credential.certificate == nil ? "the connection's key" : "the session certificate"
            throw Failure(stage: .authentication, reason: "the target refused \(what)")
        }
        connected = true
        return session
    }
}
