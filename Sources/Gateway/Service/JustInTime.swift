import Adapters
import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// A credential made for one session (docs/just-in-time.md): what the adapter logs in with, what
/// the session's record says about it (never the secret), until when it is valid, and what to
/// do when the session ends.
struct IssuedCredential: Sendable {
    var credential: Credential
    var marker: SessionMarker
    /// Unix seconds; the session ends then at the latest (ephemeral roles).
    var endsAt: Int64?
    var cleanup: (@Sendable () async -> Void)?
}

/// Why a just-in-time credential could not be made (no secret in the reason).
struct JustInTimeError: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}

enum JustInTime {
    /// Makes the session's credential for a connection with `credential.mode` other than static.
    static func issue(_ mode: GatewayConfiguration.JustInTime, connection: GatewayConfiguration.Connection, user: String,
                      session: String, gatewayID: String, now: Date, logger: Logger) async throws -> IssuedCredential {
        switch mode {
        case .ephemeralRole(let admin, let grantRoles, let ttl):
            return try await EphemeralRoles.create(connection: connection, admin: admin, grantRoles: grantRoles, ttl: ttl, user: user,
                                                   session: session, gatewayID: gatewayID, now: now, logger: logger)
        case .certificate(let caKeyFile, let principals, let ttl):
            return try SessionCertificates.issue(connection: connection, caKeyFile: caKeyFile, principals: principals, ttl: ttl,
                                                 user: user, session: session, now: now)
        }
    }

    static func iso(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    static func randomHex(_ bytes: Int) -> String { Hex.random(bytes: bytes) }
}

/// SSH: a per-session ed25519 key and a user certificate for it, signed with the connection's CA.
enum SessionCertificates {
    static func issue(connection: GatewayConfiguration.Connection, caKeyFile: String, principals: [String], ttl: Duration,
                      user: String, session: String, now: Date) throws -> IssuedCredential {
        guard let data = FileManager.default.contents(atPath: caKeyFile), !data.isEmpty else {
            throw JustInTimeError(reason: "the certificate authority key \(caKeyFile) is missing or unreadable")
        }
        let ca: Curve25519.Signing.PrivateKey
        do {
            ca = try OpenSSHKey.parsePrivate(String(decoding: data, as: UTF8.self))
        } catch {
            throw JustInTimeError(reason: "the certificate authority key \(caKeyFile): \(error)")
        }
        let key = Curve25519.Signing.PrivateKey()
        var generator = SystemRandomNumberGenerator()
        let serial = UInt64.random(in: 1...UInt64.max, using: &generator)
        let start = UInt64(max(0, now.timeIntervalSince1970 - 60))
        let end = UInt64(now.timeIntervalSince1970) + UInt64(ttl.components.seconds)
        let keyID = "sluice user=\(user) session=\(session) connection=\(connection.name)"
        let certificate = SSHUserCertificate(key: key.publicKey, serial: serial, keyID: keyID, principals: principals,
                                             validAfter: start, validBefore: end)
        let blob = try certificate.signed(by: ca)
        let login = connection.credential.username ?? principals[0]
        var credential = Credential(username: login, privateKey: Secret(OpenSSHKey.privateText(key)))
        credential.certificate = Secret(Data(blob).base64EncodedString())
        let marker = SessionMarker.credential(mode: "certificate", details: [
            "serial": .string(String(serial)), "key_id": .string(keyID), "principals": .strings(principals),
            "valid_after": .string(JustInTime.iso(Date(timeIntervalSince1970: Double(start)))),
            "valid_before": .string(JustInTime.iso(Date(timeIntervalSince1970: Double(end)))),
            "ca": .string(OpenSSHKey.fingerprint(ca.publicKey)),
        ])
        return IssuedCredential(credential: credential, marker: marker, endsAt: nil, cleanup: nil)
    }
}

/// PostgreSQL: a login role per session, made and dropped with the connection's admin account.
enum EphemeralRoles {
    /// Roles the gateway makes start with this; nothing else is ever dropped.
    static let prefix = "sluice_"

    /// `sluice_<user>_<8 hex>`: the user's name folded to `[a-z0-9_]`, at most 40 characters.
    static func roleName(user: String) -> String {
        let folded = String(user.lowercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "_" }.prefix(40))
        return prefix + (folded.isEmpty ? "user" : folded) + "_" + JustInTime.randomHex(4)
    }

    /// `"name"` with embedded quotes doubled.
    static func quoted(_ identifier: String) -> String {
        "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func adminPassword(_ admin: GatewayConfiguration.AdminLogin) throws -> String? {
        var source = GatewayConfiguration.CredentialSource()
        source.passwordEnv = admin.passwordEnv
        source.passwordFile = admin.passwordFile
        do {
            return try CredentialResolver.resolve(source).password?.exposed
        } catch {
            throw JustInTimeError(reason: "the admin credential is unavailable (\(error))")
        }
    }

    /// A connection to the target as `username` (the same TLS as the session's: `options.sslmode`).
    static func connect(_ connection: GatewayConfiguration.Connection, username: String, password: String?,
                        logger: Logger) async throws -> PostgresConnection {
        guard let address = HostPort(connection.target) else { throw JustInTimeError(reason: "target is not HOST:PORT") }
        let mode = connection.options["sslmode"] ?? "disable"
        let tls: PostgresConnection.Configuration.TLS
        switch mode {
        case "disable":
            tls = .disable
        case "require", "verify-ca", "verify-full":
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = .tlsv12
            configuration.certificateVerification = mode == "require" ? .none : mode == "verify-ca" ? .noHostnameVerification : .fullVerification
            if mode != "require" {
                configuration.trustRoots = connection.caFile.map { .file($0) } ?? .default
            }
            tls = .require(try NIOSSLContext(configuration: configuration))
        default:
            throw JustInTimeError(reason: "sslmode '\(mode.prefix(20))' (use disable, require, verify-ca or verify-full)")
        }
        var configuration = PostgresConnection.Configuration(host: address.host, port: address.port, username: username,
                                                             password: password, database: connection.database ?? "postgres", tls: tls)
        configuration.options.connectTimeout = .seconds(10)
        return try await PostgresConnection.connect(on: EventLoops.group.next(), configuration: configuration, id: 1, logger: logger)
    }

    /// What went wrong, without values: the SQLSTATE, or the network/TLS cause.
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let state = error.serverInfo?[.sqlState] {
                return "SQLSTATE \(state)" + (error.serverInfo?[.message].map { " (\($0.prefix(160)))" } ?? "")
            }
            return "\(error.code)" + (error.underlying.map { ": \(String(describing: $0).prefix(160))" } ?? "")
        }
        return String(describing: error).prefix(200).description
    }

    static func create(connection: GatewayConfiguration.Connection, admin: GatewayConfiguration.AdminLogin, grantRoles: [String],
                       ttl: Duration, user: String, session: String, gatewayID: String, now: Date,
                       logger: Logger) async throws -> IssuedCredential {
        let password = try adminPassword(admin)
        let role = roleName(user: user)
        let secret = JustInTime.randomHex(24)
        let validUntil = now.addingTimeInterval(Double(ttl.components.seconds))
        let salt = (0..<16).map { _ in UInt8.random(in: 0...255) }
        // Only the SCRAM verifier reaches the server (and its statement log), never the password.
        let verifier = PostgresClientAuth.scramVerifier(password: Array(secret.utf8), salt: salt)
        let database: PostgresConnection
        do {
            database = try await connect(connection, username: admin.username, password: password, logger: logger)
        } catch {
            throw JustInTimeError(reason: "cannot log in as the admin account \(admin.username): \(describe(error))")
        }
        do {
            let roles = grantRoles.map(quoted).joined(separator: ", ")
            try await database.query(PostgresQuery(unsafeSQL: """
                CREATE ROLE \(quoted(role)) LOGIN INHERIT PASSWORD '\(verifier)' VALID UNTIL '\(JustInTime.iso(validUntil))' IN ROLE \(roles)
                """), logger: logger)
            let note = "sluice gateway=\(gatewayID) session=\(session) user=\(user.prefix(100))".replacingOccurrences(of: "'", with: "''")
            try await database.query(PostgresQuery(unsafeSQL: "COMMENT ON ROLE \(quoted(role)) IS '\(note)'"), logger: logger)
        } catch {
            _ = try? await database.query(PostgresQuery(unsafeSQL: "DROP ROLE IF EXISTS \(quoted(role))"), logger: logger)
            try? await database.close()
            throw JustInTimeError(reason: "cannot create the session role: \(describe(error))")
        }
        try? await database.close()
        let credential = Credential(username: role, password: Secret(secret))
        let marker = SessionMarker.credential(mode: "ephemeral_role", details: [
            "role": .string(role), "granted": .strings(grantRoles), "valid_until": .string(JustInTime.iso(validUntil)),
        ])
        let cleanup: @Sendable () async -> Void = {
            await drop(role: role, connection: connection, admin: admin, logger: logger)
        }
        return IssuedCredential(credential: credential, marker: marker, endsAt: Int64(validUntil.timeIntervalSince1970), cleanup: cleanup)
    }

    /// Ends the role's backends and drops it (with anything it came to own in the session's database).
    static func drop(role: String, connection: GatewayConfiguration.Connection, admin: GatewayConfiguration.AdminLogin,
                     logger: Logger) async {
        guard role.hasPrefix(prefix) else { return }
        do {
            let database = try await connect(connection, username: admin.username, password: try adminPassword(admin), logger: logger)
            defer { Task { try? await database.close() } }
            try await dropRole(role, on: database, logger: logger)
        } catch {
            logger.error("ephemeral role not dropped", metadata: ["connection": "\(connection.name)", "role": "\(role)",
                                                                 "error": "\(describe(error))"])
        }
    }

    private static func dropRole(_ role: String, on database: PostgresConnection, logger: Logger) async throws {
        // NOLOGIN first: nothing new may log in while the old backends are ended.
        try await database.query(PostgresQuery(unsafeSQL: "ALTER ROLE \(quoted(role)) NOLOGIN"), logger: logger)
        try await database.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = \(role)", logger: logger)
        _ = try? await database.query(PostgresQuery(unsafeSQL: "DROP OWNED BY \(quoted(role))"), logger: logger)
        try await database.query(PostgresQuery(unsafeSQL: "DROP ROLE IF EXISTS \(quoted(role))"), logger: logger)
    }

    /// Drops the roles this gateway made that outlived their session (a crash, a kill -9), and
    /// any `sluice_` role past its `VALID UNTIL` (another gateway's that died): at start-up and
    /// every few minutes. Returns how many were dropped.
    @discardableResult
    static func sweep(connection: GatewayConfiguration.Connection, admin: GatewayConfiguration.AdminLogin, gatewayID: String,
                      keep: Set<String>, logger: Logger) async -> Int {
        do {
            let database = try await connect(connection, username: admin.username, password: try adminPassword(admin), logger: logger)
            defer { Task { try? await database.close() } }
            let mine = "sluice gateway=\(gatewayID) %"
            let rows = try await database.query("""
                SELECT r.rolname FROM pg_roles r
                LEFT JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass
                WHERE r.rolname LIKE 'sluice\\_%' AND d.description LIKE 'sluice gateway=%'
                  AND (d.description LIKE \(mine) OR r.rolvaliduntil < now())
                """, logger: logger)
            var names: [String] = []
            for try await (name) in rows.decode(String.self) where !keep.contains(name) { names.append(name) }
            var dropped = 0
            for name in names {
                do {
                    try await dropRole(name, on: database, logger: logger)
                    dropped += 1
                } catch {
                    logger.error("stale ephemeral role not dropped", metadata: ["role": "\(name)", "error": "\(describe(error))"])
                }
            }
            return dropped
        } catch {
            logger.warning("ephemeral roles not swept", metadata: ["connection": "\(connection.name)", "error": "\(describe(error))"])
            return 0
        }
    }
}

extension OpenSSHKey {
    /// `SHA256:…` as `ssh-keygen -l` prints it.
    public static func fingerprint(_ key: Curve25519.Signing.PublicKey) -> String {
        "SHA256:" + Data(SHA256.hash(data: publicBlob(key))).base64EncodedString().replacingOccurrences(of: "=", with: "")
    }
}

extension GatewayRuntime {
    /// Drops the stale ephemeral roles of every `ephemeral_role` connection (``EphemeralRoles/sweep``),
    /// keeping those of this gateway's open sessions.
    public func sweepEphemeralRoles() async {
        let keep = openRoleNames()
        for connection in policy.configuration.connections {
            guard case .ephemeralRole(let admin, _, _) = connection.credential.justInTime else { continue }
            let dropped = await EphemeralRoles.sweep(connection: connection, admin: admin, gatewayID: gatewayID, keep: keep, logger: logger)
            if dropped > 0 {
                control.append("credential.roles_swept", actor: "sluice", ["connection": connection.name, "dropped": String(dropped)])
                logger.notice("stale ephemeral roles dropped", metadata: ["connection": "\(connection.name)", "count": "\(dropped)"])
            }
        }
    }
}
