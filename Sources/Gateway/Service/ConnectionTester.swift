import Adapters
import AsyncHTTPClient
import CLibSSH
import Crypto
import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO

/// `sluice connections test NAME`: opens a connection to the target with the connection's own
/// credential (or, for just-in-time modes, the account or CA that makes one) and says what works:
/// reachability, TLS or the host key, and the login. Reasons carry codes and names, never secrets.
public struct ConnectionTestReport: Codable, Sendable, Equatable {
    public struct Check: Codable, Sendable, Equatable {
        /// `credential`, `reach`, `tls`, `host_key`, `auth`, `grant`.
        public var name: String
        public var ok: Bool
        public var detail: String
    }

    public var connection: String
    public var type: String
    public var ok: Bool
    public var checks: [Check]

    init(connection: String, type: String, checks: [Check]) {
        self.connection = connection
        self.type = type
        self.checks = checks
        ok = !checks.isEmpty && checks.allSatisfy(\.ok)
    }
}

enum ConnectionTester {
    typealias Check = ConnectionTestReport.Check

    static func test(_ connection: GatewayConfiguration.Connection, logger: Logger = Logger(label: "sluice.test")) async -> ConnectionTestReport {
        var checks: [Check] = []
        if let problem = CredentialResolver.problem(connection.credential) {
            checks.append(Check(name: "credential", ok: false, detail: problem))
            return ConnectionTestReport(connection: connection.name, type: connection.kind.rawValue, checks: checks)
        }
        checks.append(Check(name: "credential", ok: true, detail: "readable (\(connection.credential.justInTime?.mode ?? "static"))"))
        switch connection.kind {
        case .postgres: checks += await postgres(connection, logger: logger)
        case .ssh: checks += await ssh(connection)
        case .http, .kubernetes: checks += await http(connection)
        }
        return ConnectionTestReport(connection: connection.name, type: connection.kind.rawValue, checks: checks)
    }

    // MARK: PostgreSQL

    static func postgres(_ connection: GatewayConfiguration.Connection, logger: Logger) async -> [Check] {
        var checks: [Check] = []
        guard let address = HostPort(connection.target) else { return [Check(name: "reach", ok: false, detail: "target is not HOST:PORT")] }
        let reach = await tcpReach(address)
        checks.append(reach)
        guard reach.ok else { return checks }
        let username: String
        let password: String?
        var grants: [String] = []
        do {
            switch connection.credential.justInTime {
            case .ephemeralRole(let admin, let roles, _):
                username = admin.username
                password = try EphemeralRoles.adminPassword(admin)
                grants = roles
            case .certificate, nil:
                let credential = try CredentialResolver.resolve(connection.credential)
                username = credential.username ?? "postgres"
                password = credential.password?.exposed
            }
        } catch {
            checks.append(Check(name: "credential", ok: false, detail: "\(error)"))
            return checks
        }
        let mode = connection.options["sslmode"] ?? "disable"
        let database: PostgresConnection
        do {
            database = try await EphemeralRoles.connect(connection, username: username, password: password, logger: logger)
        } catch {
            let detail = EphemeralRoles.describe(error)
            if let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] {
                checks.append(Check(name: "tls", ok: true, detail: mode == "disable" ? "off (sslmode=disable)" : "sslmode=\(mode)"))
                let auth = state.hasPrefix("28") ? "the server refused the login of \(username) (\(detail))" : detail
                checks.append(Check(name: "auth", ok: false, detail: auth))
            } else if mode != "disable" {
                checks.append(Check(name: "tls", ok: false, detail: "TLS with sslmode=\(mode) failed: \(detail)"))
            } else {
                checks.append(Check(name: "auth", ok: false, detail: detail))
            }
            return checks
        }
        defer { Task { try? await database.close() } }
        checks.append(Check(name: "tls", ok: true, detail: mode == "disable" ? "off (sslmode=disable)" : "on (sslmode=\(mode))"))
        checks.append(Check(name: "auth", ok: true, detail: "logged in as \(username)"))
        if !grants.isEmpty {
            do {
                let rows = try await database.query("""
                    SELECT r.rolname, pg_has_role(current_user, r.oid, 'USAGE WITH ADMIN OPTION') OR a.rolcreaterole OR a.rolsuper
                    FROM pg_roles r, pg_roles a WHERE a.rolname = current_user AND r.rolname = ANY(\(grants))
                    """, logger: logger)
                var found: [String: Bool] = [:]
                for try await (name, grantable) in rows.decode((String, Bool).self) { found[name] = grantable }
                for role in grants {
                    switch found[role] {
                    case nil: checks.append(Check(name: "grant", ok: false, detail: "role \(role) does not exist"))
                    case false?: checks.append(Check(name: "grant", ok: false, detail: "\(username) may not grant \(role) (needs CREATEROLE or ADMIN OPTION)"))
                    case true?: checks.append(Check(name: "grant", ok: true, detail: "\(username) may create roles in \(role)"))
                    }
                }
            } catch {
                checks.append(Check(name: "grant", ok: false, detail: EphemeralRoles.describe(error)))
            }
        }
        return checks
    }

    // MARK: SSH

    static func ssh(_ connection: GatewayConfiguration.Connection) async -> [Check] {
        guard let address = HostPort(connection.target) else { return [Check(name: "reach", ok: false, detail: "target is not HOST:PORT")] }
        let reach = await tcpReach(address)
        guard reach.ok else { return [reach] }
        var checks = [reach]
        let target: ConnectionTarget
        do {
            var made = ConnectionTarget(name: connection.name, kind: .ssh, target: connection.target, hostKey: connection.hostKey)
            if let mode = connection.credential.justInTime {
                let issued = try await JustInTime.issue(mode, connection: connection, user: "sluice-test", session: "test",
                                                        gatewayID: "test", now: Date(), logger: Logger(label: "sluice.test"))
                made.credential = issued.credential
            } else {
                made.credential = try CredentialResolver.resolve(connection.credential)
            }
            target = made
        } catch {
            checks.append(Check(name: "credential", ok: false, detail: "\(error)"))
            return checks
        }
        let outcome: Result<Void, SSHUpstreamLogin.Failure> = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                do {
                    let session = try SSHUpstreamLogin.open(target)
                    ssh_disconnect(session)
                    ssh_free(session)
                    continuation.resume(returning: .success(()))
                } catch let error as SSHUpstreamLogin.Failure {
                    continuation.resume(returning: .failure(error))
                } catch {
                    continuation.resume(returning: .failure(SSHUpstreamLogin.Failure(stage: .connect, reason: "\(error)")))
                }
            }
        }
        switch outcome {
        case .success:
            checks.append(Check(name: "host_key", ok: true, detail: "matches host_key"))
            let how = connection.credential.justInTime == nil ? "the connection's key" : "a session certificate"
            checks.append(Check(name: "auth", ok: true, detail: "logged in as \(target.credential.username ?? "root") with \(how)"))
        case .failure(let failure):
            switch failure.stage {
            case .hostKeyMismatch, .configuration:
                checks.append(Check(name: "host_key", ok: false, detail: failure.reason))
            case .connect:
                checks.append(Check(name: "host_key", ok: false, detail: failure.reason))
            case .key, .authentication:
                checks.append(Check(name: "host_key", ok: true, detail: "matches host_key"))
                checks.append(Check(name: "auth", ok: false, detail: failure.reason))
            }
        }
        return checks
    }

    // MARK: HTTP and Kubernetes

    static func http(_ connection: GatewayConfiguration.Connection) async -> [Check] {
        guard let target = HTTPTarget(connection.target) else { return [Check(name: "reach", ok: false, detail: "target is not a URL")] }
        var checks: [Check] = []
        let credential: Credential
        do {
            credential = try CredentialResolver.resolve(connection.credential)
        } catch {
            return [Check(name: "credential", ok: false, detail: "\(error)")]
        }
        var configuration = HTTPClient.Configuration()
        if target.tls {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if let caFile = connection.caFile { tls.trustRoots = .file(caFile) }
            configuration.tlsConfiguration = tls
        }
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(10))
        let client = HTTPClient(eventLoopGroupProvider: .shared(EventLoops.group), configuration: configuration)
        defer { Task { try? await client.shutdown() } }
        let path = connection.kind == .kubernetes ? "/version" : "/"
        var request = HTTPClientRequest(url: connection.target.hasSuffix("/") ? String(connection.target.dropLast()) + path : connection.target + path)
        if let token = credential.token?.exposed {
            if let header = credential.headerName {
                request.headers.add(name: header, value: token)
            } else {
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
            }
        } else if let user = credential.username, let password = credential.password?.exposed {
            request.headers.add(name: "Authorization", value: "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
        }
        do {
            let response = try await client.execute(request, timeout: .seconds(10))
            _ = try? await response.body.collect(upTo: 1 << 16)
            checks.append(Check(name: "reach", ok: true, detail: "\(target.host):\(target.port) answered"))
            if target.tls { checks.append(Check(name: "tls", ok: true, detail: "certificate verified" + (connection.caFile == nil ? "" : " against ca_file"))) }
            let status = Int(response.status.code)
            if status == 401 || status == 403 {
                checks.append(Check(name: "auth", ok: false, detail: "GET \(path) answered \(status): the target refused the credential"))
            } else {
                checks.append(Check(name: "auth", ok: status < 500, detail: "GET \(path) answered \(status)"))
            }
        } catch let error as NIOSSLError {
            checks.append(Check(name: "reach", ok: true, detail: "\(target.host):\(target.port) accepts connections"))
            checks.append(Check(name: "tls", ok: false, detail: "TLS failed: \(String(describing: error).prefix(160))"))
        } catch {
            let text = String(describing: error)
            if text.contains("certificate") || text.contains("handshake") || text.contains("SSL") {
                checks.append(Check(name: "tls", ok: false, detail: "TLS failed: \(text.prefix(160))"))
            } else {
                checks.append(Check(name: "reach", ok: false, detail: "\(target.host):\(target.port): \(text.prefix(160))"))
            }
        }
        return checks
    }

    /// A plain TCP connect (10 s at most).
    static func tcpReach(_ address: HostPort) async -> Check {
        do {
            let channel = try await ClientBootstrap(group: EventLoops.group).connectTimeout(.seconds(10))
                .connect(host: address.host, port: address.port).get()
            try? await channel.close()
            return Check(name: "reach", ok: true, detail: "\(address) accepts connections")
        } catch {
            return Check(name: "reach", ok: false, detail: "\(address): \(String(describing: error).prefix(160))")
        }
    }
}
