import Adapters
import Foundation
import MaskEngine

/// The gateway's configuration (the keys of DESIGN.md are the user-facing contract).
public struct GatewayConfiguration: Sendable {
    public struct Listeners: Sendable, Equatable {
        public var admin: HostPort? = HostPort(host: "127.0.0.1", port: 8080)
        public var postgres: HostPort? = HostPort(host: "127.0.0.1", port: 15432)
        public var ssh: HostPort? = HostPort(host: "127.0.0.1", port: 12222)
        public var http: HostPort? = HostPort(host: "127.0.0.1", port: 18080)
        public var kubernetes: HostPort? = HostPort(host: "127.0.0.1", port: 16443)
        public init() {}

        /// No listener at all: where a `listen:` block starts before its entries apply.
        public static var none: Listeners {
            var listeners = Listeners()
            listeners.admin = nil
            listeners.postgres = nil
            listeners.ssh = nil
            listeners.http = nil
            listeners.kubernetes = nil
            return listeners
        }
    }

    public struct OIDCProvider: Sendable, Equatable {
        public var issuer: String
        public var audience: String
        public var userClaim = "preferred_username"
        public var groupsClaim = "groups"
        /// Where to fetch the discovery document; default `ISSUER/.well-known/openid-configuration`.
        public var discoveryURL: String?
        /// The web console's OAuth client (default: `audience`) and its secret's environment variable.
        public var clientID: String?
        public var clientSecretEnv: String?
        /// The client secret `sluice login` sends, for providers that demand one even from
        /// native apps (Google's "installed app" clients). Not a secret: every CLI user gets it
        /// from `/api/client-config`. Unset: the CLI is a public client (PKCE, no secret).
        public var cliClientSecret: String?
        public init(issuer: String, audience: String) {
            self.issuer = issuer
            self.audience = audience
        }
    }

    public struct Identity: Sendable, Equatable {
        public var devIssuer = true
        /// Lets the gateway start with the dev issuer on while a listener binds a non-loopback
        /// address (`identity.dev_issuer_public`); it then warns at every start.
        public var devIssuerPublic = false
        public var oidc: [OIDCProvider] = []
        /// Allowed clock skew for `exp`, `nbf` and `iat`.
        public var clockSkew: Duration = .seconds(60)
        /// Lifetime of dev tokens when `--ttl` is not given.
        public var devTokenTTL: Duration = .seconds(3600)
        public init() {}
    }

    public struct Masking: Sendable, Equatable {
        public var hashKeyEnv = "SLUICE_HASH_KEY"
        public var profiles: [String: MaskingProfile] = MaskingProfile.builtIn
        public init() {}
    }

    public struct Rule: Sendable, Equatable {
        public enum Action: String, Sendable, Equatable { case allow, block, review }
        /// A regular expression over the command text the adapter reports.
        public var match: String?
        /// A class the adapter derives (`drop`, `delete_without_where`, `exec`, …).
        public var commandClass: String?
        public var action: Action
        public var message: String?
        /// Limits the rule to these groups; empty = everyone.
        public var groups: [String] = []
    }

    public struct ReviewSettings: Sendable, Equatable {
        public var approvers: [String] = ["admin"]
        public var minApprovals = 1
        public var timeout: Duration = .seconds(600)
        /// Longest just-in-time grant a user may request.
        public var maxGrant: Duration = .seconds(8 * 3600)
        public init() {}
    }

    public struct ConnectionMasking: Sendable, Equatable {
        public var profile = "default"
        public var groups: [String: String] = [:]
        public var unmaskedGroups: [String] = []
        /// `table.column` or `*.column` → style.
        public var columns: [String: MaskStyle] = [:]
        public init() {}
    }

    public struct CredentialSource: Sendable, Equatable {
        public var username: String?
        public var passwordEnv: String?
        public var passwordFile: String?
        public var privateKeyFile: String?
        public var tokenEnv: String?
        public var tokenFile: String?
        /// HTTP: the header that carries the token (default `Authorization: Bearer`).
        public var header: String?
        /// How the gateway logs in to the target: with this long-lived credential (`static`), or
        /// with one made for each session (``JustInTime``).
        public var justInTime: JustInTime?
        public init() {}
    }

    /// A credential made for one session (docs/just-in-time.md), opt-in per connection.
    public enum JustInTime: Sendable, Equatable {
        /// PostgreSQL: a login role `sluice_<user>_<random>` created with `admin`, granted
        /// `grantRoles`, valid for `ttl`, dropped when the session ends.
        case ephemeralRole(admin: AdminLogin, grantRoles: [String], ttl: Duration)
        /// SSH: an ed25519 user certificate signed with the CA in `caKeyFile` for `principals`,
        /// valid for `ttl`.
        case certificate(caKeyFile: String, principals: [String], ttl: Duration)

        public var mode: String {
            switch self {
            case .ephemeralRole: "ephemeral_role"
            case .certificate: "certificate"
            }
        }

        public var ttl: Duration {
            switch self {
            case .ephemeralRole(_, _, let ttl), .certificate(_, _, let ttl): ttl
            }
        }
    }

    /// The account that creates ephemeral roles (needs CREATEROLE and the granted roles with ADMIN OPTION).
    public struct AdminLogin: Sendable, Equatable {
        public var username: String
        public var passwordEnv: String?
        public var passwordFile: String?
        public init(username: String) { self.username = username }
    }

    public struct Connection: Sendable, Equatable {
        public var name: String
        public var kind: ConnectionKind
        public var target: String
        public var database: String?
        public var credential = CredentialSource()
        public var hostKey: String?
        public var caFile: String?
        public var accessGroups: [String] = []
        /// Access granted only through approved just-in-time requests.
        public var requiresGrant = false
        public var masking = ConnectionMasking()
        public var guardrails: [Rule] = []
        public var reviews = ReviewSettings()
        public var options: [String: String] = [:]
        /// SSH: `HOST:PORT` patterns users may forward to (`ssh -L`/`-D`); empty refuses all.
        public var portForwarding = ForwardPermission()
        /// `session.end_on_token_expiry`: the gateway ends an open session when its token expires
        /// (its `exp` plus `identity.clock_skew`). Default on.
        public var endOnTokenExpiry = true
    }

    public var file: String?
    public var listen = Listeners()
    public var stateDir = ".sluice"
    /// `limits.startup_timeout`: how long a client may take from connecting to presenting its
    /// token before an unauthenticated connection is closed.
    public var startupTimeout: Duration = .seconds(10)
    /// `limits.shutdown_timeout`: how long a graceful stop may take before what is still open is
    /// cancelled (and, five seconds later, the process ends).
    public var shutdownTimeout: Duration = .seconds(10)
    /// `limits.max_message_bytes`: the largest Postgres protocol message (a row, a query) the
    /// gateway holds whole to mask it; a larger one ends the statement with an error. With the
    /// decoder's compaction it bounds a session's memory whatever the values' size.
    public var maxMessageBytes = 64 << 20
    /// `limits.failed_logins_per_source` / `limits.failed_logins_per_user`: failed logins per
    /// minute before the source address (or the claimed user) is locked out, 5 s at first,
    /// doubling up to 5 minutes.
    var loginThrottle = LoginThrottle.Limits()
    /// `limits.unauthenticated_per_source` / `limits.unauthenticated_total`: Postgres and SSH
    /// connections that have not logged in yet, per source address and in all.
    public var admission = ConnectionAdmission.Limits()
    /// `postgres.require_tls`: refuse Postgres logins on plaintext connections (the token is the
    /// password). On by default; turning it off is an explicit, documented choice.
    public var postgresRequireTLS = true
    public var store: String?
    /// The PostgreSQL store's password (`store: {url, password_env | password_file}`).
    public var storeCredential = CredentialSource()
    public struct TLSFiles: Sendable, Equatable {
        public var cert: String
        public var key: String
    }
    /// Certificate and key files; without them the state dir's generated pair is used.
    public var tls: TLSFiles?
    public var identity = Identity()
    public var detectors: [String]?
    public var masking = Masking()
    public var connections: [Connection] = []
    /// URL that receives a JSON POST for each new review.
    public var reviewWebhook: String?
    /// Where the web console and approve hints point users.
    public var publicURL: String?
    /// Per-statement cap on recorded result bytes (adapters read it).
    public var recordOutputCap = 1 << 20

    /// The HTTP listener's routing and timeouts (`http:`).
    public struct HTTPSettings: Sendable, Equatable {
        /// When set, `Host: CONNECTION.SUFFIX` routes by host; other requests by path.
        public var hostSuffix: String?
        public var headerTimeout: Duration = .seconds(15)
        public var bodyIdleTimeout: Duration = .seconds(30)
        public init() {}
    }

    public var http = HTTPSettings()

    public init() {}

    /// The SQLite file (or other store URL) in effect.
    public var storeURL: String { store ?? "sqlite:" + (stateDir as NSString).appendingPathComponent("sluice.db") }

    public func connection(named name: String) -> Connection? { connections.first { $0.name == name } }
}

extension GatewayConfiguration {
    /// Where the configuration comes from: `--config FILE`, else `./sluice.yaml` when present,
    /// else the embedded defaults (the checked-in `examples/sluice.yaml`).
    public static func load(path: String?) throws -> GatewayConfiguration {
        if let path { return try parse(file: path) }
        if FileManager.default.fileExists(atPath: "sluice.yaml") { return try parse(file: "sluice.yaml") }
        return try embeddedDefaults()
    }

    public static func embeddedDefaults() throws -> GatewayConfiguration {
        guard let path = ProjectFiles.locate("examples/sluice.yaml") else {
            var configuration = GatewayConfiguration()
            configuration.file = "(embedded defaults)"
            return configuration
        }
        return try parse(file: path, resolvingPaths: false)
    }

    /// Reads a configuration file. Relative paths in it (`state_dir`, also when left at its default,
    /// a `sqlite:` store, `tls`, `detectors`, credential files, `ca_file`) name places next to the
    /// file, not in the folder a command happens to run from: `sluice token --config
    /// gw/sluice.yaml` uses the gateway's key wherever it runs. The embedded defaults keep their
    /// paths as written (the current folder), which is what `make run` wants.
    public static func parse(file: String, resolvingPaths: Bool = true) throws -> GatewayConfiguration {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigurationError(file: file, key: "(file)", reason: "cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(file: file, key: "(file)", reason: "is not UTF-8 text")
        }
        var configuration = try parse(text: text, file: file)
        if resolvingPaths {
            configuration.resolvePaths(relativeTo: URL(fileURLWithPath: file).standardizedFileURL.deletingLastPathComponent().path)
        }
        return configuration
    }

    /// Makes every relative path of the configuration relative to `folder`.
    mutating func resolvePaths(relativeTo folder: String) {
        func resolve(_ path: String) -> String {
            path.hasPrefix("/") ? path : URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: folder, isDirectory: true)).standardizedFileURL.path
        }
        stateDir = resolve(stateDir)
        if let store, store.hasPrefix("sqlite:") { self.store = "sqlite:" + resolve(String(store.dropFirst("sqlite:".count))) }
        storeCredential.passwordFile = storeCredential.passwordFile.map(resolve)
        if let tls { self.tls = TLSFiles(cert: resolve(tls.cert), key: resolve(tls.key)) }
        detectors = detectors?.map(resolve)
        for index in connections.indices {
            connections[index].credential.passwordFile = connections[index].credential.passwordFile.map(resolve)
            connections[index].credential.privateKeyFile = connections[index].credential.privateKeyFile.map(resolve)
            connections[index].credential.tokenFile = connections[index].credential.tokenFile.map(resolve)
            connections[index].caFile = connections[index].caFile.map(resolve)
        }
    }

    public static func parse(text: String, file: String? = nil) throws -> GatewayConfiguration {
        var configuration = GatewayConfiguration()
        configuration.file = file
        guard let root = try ConfigNode.parse(text, file: file), !root.isNull else { return configuration }
        let top = try root.mapping(allowed: [
            "listen", "state_dir", "store", "tls", "identity", "detectors", "masking", "connections",
            "notifications", "public_url", "recording", "http", "limits", "postgres",
        ])
        if let listen = top["listen"] {
            let map = try listen.mapping(allowed: ["admin", "postgres", "ssh", "http", "kubernetes"])
            // With a `listen:` block only the listeners it names open (the defaults apply when
            // there is no block at all): a listener nobody asked for is a port nobody watches.
            configuration.listen = Listeners.none
            func address(_ key: String) throws -> HostPort?? {
                guard let node = map[key] else { return .none }
                if node.isNull || (try? node.string()) == "off" { return .some(nil) }
                return .some(try node.hostPort())
            }
            if let value = try address("admin") { configuration.listen.admin = value }
            if let value = try address("postgres") { configuration.listen.postgres = value }
            if let value = try address("ssh") { configuration.listen.ssh = value }
            if let value = try address("http") { configuration.listen.http = value }
            if let value = try address("kubernetes") { configuration.listen.kubernetes = value }
            if configuration.listen == .none {
                throw listen.error("names no listener (name at least one, or remove the block for the defaults)")
            }
        }
        if let node = top["state_dir"] { configuration.stateDir = try node.nonEmptyString() }
        if let node = top["store"] {
            // `store: URL`, or `store: {url: URL, password_env: NAME}` / `password_file: PATH`.
            var urlNode = node
            if node.isMapping {
                let map = try node.mapping(allowed: ["url", "password_env", "password_file"])
                guard let url = map["url"] else { throw node.error("needs url (sqlite:PATH or postgres://USER@HOST/DB)") }
                urlNode = url
                configuration.storeCredential.passwordEnv = try map["password_env"]?.nonEmptyString()
                configuration.storeCredential.passwordFile = try map["password_file"]?.nonEmptyString()
            }
            let url = try urlNode.nonEmptyString()
            if url.hasPrefix("sqlite:") {
                if configuration.storeCredential != CredentialSource() { throw node.error("an sqlite: store takes no password") }
            } else if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
                do {
                    let settings = try PostgresStoreSettings.parse(url)
                    if settings.password != nil {
                        throw urlNode.error("a password in the store URL is refused; use password_env or password_file")
                    }
                } catch let error as ConfigurationError {
                    throw urlNode.error(error.reason)
                }
            } else {
                throw node.error("expected sqlite:PATH or postgres://USER@HOST/DB")
            }
            configuration.store = url
        }
        if let node = top["tls"] {
            let map = try node.mapping(allowed: ["cert", "key"])
            guard let cert = map["cert"], let key = map["key"] else { throw node.error("needs both cert and key") }
            configuration.tls = TLSFiles(cert: try cert.nonEmptyString(), key: try key.nonEmptyString())
        }
        if let node = top["identity"] { configuration.identity = try parseIdentity(node) }
        if let node = top["detectors"] { configuration.detectors = try node.strings() }
        if let node = top["masking"] { configuration.masking = try parseMasking(node) }
        if let node = top["notifications"] {
            let map = try node.mapping(allowed: ["review_webhook"])
            configuration.reviewWebhook = try map["review_webhook"]?.nonEmptyString()
        }
        if let node = top["public_url"] { configuration.publicURL = try node.nonEmptyString() }
        if let node = top["postgres"] {
            let map = try node.mapping(allowed: ["require_tls"])
            if let value = map["require_tls"] { configuration.postgresRequireTLS = try value.bool() }
        }
        if let node = top["limits"] {
            let map = try node.mapping(allowed: ["startup_timeout", "shutdown_timeout", "max_message_bytes",
                                                    "failed_logins_per_source", "failed_logins_per_user",
                                                    "unauthenticated_per_source", "unauthenticated_total"])
            func bounded(_ value: ConfigNode) throws -> Duration {
                let duration = try value.duration()
                guard duration >= .seconds(1), duration <= .seconds(600) else { throw value.error("must be between 1s and 10m") }
                return duration
            }
            if let value = map["shutdown_timeout"] { configuration.shutdownTimeout = try bounded(value) }
            if let value = map["startup_timeout"] { configuration.startupTimeout = try bounded(value) }
            if let value = map["failed_logins_per_source"] { configuration.loginThrottle.perSource = try value.int(in: 1...100_000) }
            if let value = map["failed_logins_per_user"] { configuration.loginThrottle.perUser = try value.int(in: 1...100_000) }
            if let value = map["unauthenticated_per_source"] { configuration.admission.perSource = try value.int(in: 1...100_000) }
            if let value = map["unauthenticated_total"] { configuration.admission.total = try value.int(in: 1...1_000_000) }
            if let value = map["max_message_bytes"] { configuration.maxMessageBytes = try value.int(in: (64 << 10)...(1 << 30)) }
        }
        if let node = top["recording"] {
            let map = try node.mapping(allowed: ["output_cap_bytes"])
            if let cap = map["output_cap_bytes"] { configuration.recordOutputCap = try cap.int(in: 0...(1 << 30)) }
        }
        if let node = top["http"] {
            let map = try node.mapping(allowed: ["host_suffix", "header_timeout", "body_idle_timeout"])
            if let suffix = map["host_suffix"] {
                let text = try suffix.nonEmptyString().lowercased()
                guard text.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }), !text.hasPrefix(".") else {
                    throw suffix.error("expected a DNS suffix such as gw.example.com")
                }
                configuration.http.hostSuffix = text
            }
            if let value = map["header_timeout"] { configuration.http.headerTimeout = try value.duration() }
            if let value = map["body_idle_timeout"] { configuration.http.bodyIdleTimeout = try value.duration() }
        }
        if let node = top["connections"] {
            var seen = Set<String>()
            for element in try node.sequence() {
                let connection = try parseConnection(element, profiles: configuration.masking.profiles)
                guard seen.insert(connection.name).inserted else {
                    throw element.error("duplicate connection name '\(connection.name)'")
                }
                configuration.connections.append(connection)
            }
        }
        return configuration
    }

    private static func parseIdentity(_ node: ConfigNode) throws -> Identity {
        var identity = Identity()
        let map = try node.mapping(allowed: ["dev_issuer", "dev_issuer_public", "oidc", "clock_skew", "dev_token_ttl"])
        if let value = map["dev_issuer"] { identity.devIssuer = try value.bool() }
        if let value = map["dev_issuer_public"] { identity.devIssuerPublic = try value.bool() }
        if let value = map["clock_skew"] {
            identity.clockSkew = try value.duration()
            guard identity.clockSkew <= .seconds(86_400) else { throw value.error("must be at most 1d") }
        }
        if let value = map["dev_token_ttl"] { identity.devTokenTTL = try value.duration() }
        if let value = map["oidc"] {
            for element in try value.sequence() {
                let entry = try element.mapping(allowed: ["issuer", "audience", "user_claim", "groups_claim", "discovery_url", "client_id", "client_secret_env", "cli_client_secret"])
                guard let issuer = entry["issuer"] else { throw element.error("needs issuer") }
                guard let audience = entry["audience"] else { throw element.error("needs audience") }
                let issuerText = try issuer.nonEmptyString()
                guard issuerText.hasPrefix("https://") || issuerText.hasPrefix("http://") else {
                    throw issuer.error("must be an http(s) URL")
                }
                var provider = OIDCProvider(issuer: issuerText, audience: try audience.nonEmptyString())
                if let claim = entry["user_claim"] { provider.userClaim = try claim.nonEmptyString() }
                if let claim = entry["groups_claim"] { provider.groupsClaim = try claim.nonEmptyString() }
                if let url = entry["discovery_url"] { provider.discoveryURL = try url.nonEmptyString() }
                provider.clientID = try entry["client_id"]?.nonEmptyString()
                provider.clientSecretEnv = try entry["client_secret_env"]?.nonEmptyString()
                provider.cliClientSecret = try entry["cli_client_secret"]?.nonEmptyString()
                identity.oidc.append(provider)
            }
        }
        return identity
    }

    /// `credential.mode`: `static` (the default), `ephemeral_role` (postgres) or `certificate` (ssh).
    private static func parseJustInTime(_ entry: [String: ConfigNode], node: ConfigNode, kind: ConnectionKind) throws -> JustInTime? {
        let mode = try entry["mode"]?.nonEmptyString() ?? "static"
        let ephemeralKeys = ["admin", "grant_role"]
        let certificateKeys = ["ca_key_file", "principals"]
        func refuse(_ keys: [String], unless wanted: String) throws {
            for key in keys { if let extra = entry[key] { throw extra.error("only credential.mode: \(wanted) takes \(key)") } }
        }
        func ttl(default fallback: Duration, maximum: Duration) throws -> Duration {
            guard let node = entry["ttl"] else { return fallback }
            let value = try node.duration()
            guard value >= .seconds(10), value <= maximum else { throw node.error("between 10s and \(maximum.components.seconds / 3600)h") }
            return value
        }
        switch mode {
        case "static":
            try refuse(ephemeralKeys + certificateKeys + ["ttl"], unless: "ephemeral_role or certificate")
            return nil
        case "ephemeral_role":
            guard kind == .postgres else { throw entry["mode"]!.error("ephemeral_role is for postgres connections") }
            try refuse(certificateKeys, unless: "certificate")
            for key in ["username", "password_env", "password_file"] {
                if let extra = entry[key] { throw extra.error("the gateway makes the role; name the account that creates it under admin") }
            }
            guard let adminNode = entry["admin"] else { throw node.error("ephemeral_role needs admin (username, password_env or password_file)") }
            let admin = try adminNode.mapping(allowed: ["username", "password_env", "password_file", "password"])
            if let inline = admin["password"] { throw inline.error("inline secrets are refused; use password_env or password_file") }
            guard let user = admin["username"] else { throw adminNode.error("needs username") }
            var login = AdminLogin(username: try user.nonEmptyString())
            login.passwordEnv = try admin["password_env"]?.nonEmptyString()
            login.passwordFile = try admin["password_file"]?.nonEmptyString()
            guard let grant = entry["grant_role"] else { throw node.error("ephemeral_role needs grant_role (the role whose rights a session gets)") }
            let roles = try grant.strings()
            for role in roles where role.isEmpty || role.count > 63 || role.contains("\0") {
                throw grant.error("not a role name")
            }
            guard !roles.isEmpty else { throw grant.error("name at least one role") }
            return .ephemeralRole(admin: login, grantRoles: roles, ttl: try ttl(default: .seconds(3600), maximum: .seconds(24 * 3600)))
        case "certificate":
            guard kind == .ssh else { throw entry["mode"]!.error("certificate is for ssh connections") }
            try refuse(ephemeralKeys, unless: "ephemeral_role")
            for key in ["password_env", "password_file", "private_key_file"] {
                if let extra = entry[key] { throw extra.error("the gateway signs a key per session; name the CA with ca_key_file") }
            }
            guard let file = entry["ca_key_file"] else { throw node.error("certificate needs ca_key_file (an OpenSSH ed25519 private key)") }
            guard let principalsNode = entry["principals"] else { throw node.error("certificate needs principals (the target accounts)") }
            let principals = try principalsNode.strings()
            guard !principals.isEmpty, principals.allSatisfy({ !$0.isEmpty && $0.count <= 255 && !$0.contains(",") }) else {
                throw principalsNode.error("name one or more accounts")
            }
            if let login = entry["username"], !principals.contains(try login.nonEmptyString()) {
                throw login.error("the login must be one of the certificate's principals")
            }
            return .certificate(caKeyFile: try file.nonEmptyString(), principals: principals,
                                ttl: try ttl(default: .seconds(300), maximum: .seconds(24 * 3600)))
        default:
            throw entry["mode"]!.error("expected static, ephemeral_role or certificate")
        }
    }

    /// One runtime connection's definition (the JSON of a `connections:` entry, as stored):
    /// checked exactly as the configuration file's entries are.
    public static func parseRuntimeConnection(_ spec: String, profiles: [String: MaskingProfile]) throws -> Connection {
        guard let root = try ConfigNode.parse(spec, file: "runtime connection"), !root.isNull else {
            throw ConfigurationError(file: "runtime connection", key: "(top level)", reason: "empty definition")
        }
        return try parseConnection(root, profiles: profiles)
    }

    private static func parseStyle(_ node: ConfigNode) throws -> MaskStyle {
        let text = try node.string()
        guard let style = MaskStyle(rawValue: text) else {
            throw node.error("unknown style '\(text)' (known: \(MaskStyle.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return style
    }

    private static func parseMasking(_ node: ConfigNode) throws -> Masking {
        var masking = Masking()
        let map = try node.mapping(allowed: ["hash_key_env", "profiles"])
        if let value = map["hash_key_env"] { masking.hashKeyEnv = try value.nonEmptyString() }
        if let value = map["profiles"] {
            for (name, profileNode) in try value.entries() {
                let entry = try profileNode.mapping(allowed: ["detectors", "exclude", "style", "styles"])
                var profile = MaskingProfile(name: name)
                if let detectors = entry["detectors"] { profile.detectors = try detectors.strings() }
                if let exclude = entry["exclude"] { profile.exclude = try exclude.strings() }
                if let style = entry["style"] { profile.style = try parseStyle(style) }
                if let styles = entry["styles"] {
                    for (id, styleNode) in try styles.entries() { profile.styles[id] = try parseStyle(styleNode) }
                }
                masking.profiles[name] = profile
            }
        }
        return masking
    }

    private static func parseConnection(_ node: ConfigNode, profiles: [String: MaskingProfile]) throws -> Connection {
        let map = try node.mapping(allowed: [
            "name", "type", "target", "database", "credential", "host_key", "ca_file", "access", "masking",
            "guardrails", "reviews", "options", "port_forwarding", "http", "session",
        ])
        guard let nameNode = map["name"] else { throw node.error("needs name") }
        let name = try nameNode.nonEmptyString()
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw nameNode.error("use letters, digits, '-', '_' or '.' (it appears in URLs and user names)")
        }
        guard let typeNode = map["type"] else { throw node.error("needs type") }
        guard let kind = ConnectionKind(rawValue: try typeNode.string()) else {
            throw typeNode.error("unknown type (known: postgres, ssh, http, kubernetes)")
        }
        guard let targetNode = map["target"] else { throw node.error("needs target") }
        var connection = Connection(name: name, kind: kind, target: try targetNode.nonEmptyString())
        if kind != .http && kind != .kubernetes, HostPort(connection.target) == nil {
            throw targetNode.error("expected HOST:PORT")
        }
        if kind == .http || kind == .kubernetes, HTTPTarget(connection.target) == nil {
            throw targetNode.error("expected an http:// or https:// URL")
        }
        if let value = map["database"] { connection.database = try value.nonEmptyString() }
        if let value = map["host_key"] { connection.hostKey = try value.nonEmptyString() }
        if let value = map["ca_file"] { connection.caFile = try value.nonEmptyString() }
        if let value = map["credential"] {
            let entry = try value.mapping(allowed: ["username", "password_env", "password_file", "private_key_file", "token_env", "token_file",
                                                    "password", "header", "mode", "admin", "grant_role", "ttl", "ca_key_file", "principals"])
            if let inline = entry["password"] {
                throw inline.error("inline secrets are refused; use password_env or password_file")
            }
            connection.credential.justInTime = try parseJustInTime(entry, node: value, kind: kind)
            connection.credential.username = try entry["username"]?.nonEmptyString()
            connection.credential.passwordEnv = try entry["password_env"]?.nonEmptyString()
            connection.credential.passwordFile = try entry["password_file"]?.nonEmptyString()
            connection.credential.privateKeyFile = try entry["private_key_file"]?.nonEmptyString()
            connection.credential.tokenEnv = try entry["token_env"]?.nonEmptyString()
            connection.credential.tokenFile = try entry["token_file"]?.nonEmptyString()
            if let header = entry["header"] {
                guard kind == .http else { throw header.error("only http connections send the credential in a named header") }
                let name = try header.nonEmptyString()
                guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
                    throw header.error("not an HTTP header name")
                }
                connection.credential.header = name
            }
        }
        if let value = map["access"] {
            let entry = try value.mapping(allowed: ["groups", "requires_grant"])
            connection.accessGroups = try entry["groups"]?.strings() ?? []
            connection.requiresGrant = try entry["requires_grant"]?.bool() ?? false
        }
        if let value = map["masking"] {
            let entry = try value.mapping(allowed: ["profile", "groups", "unmasked_groups", "columns"])
            if let profile = entry["profile"] {
                connection.masking.profile = try profile.nonEmptyString()
                guard profiles[connection.masking.profile] != nil else {
                    throw profile.error("unknown profile '\(connection.masking.profile)'")
                }
            }
            if let groups = entry["groups"] {
                for (group, profileNode) in try groups.entries() {
                    let profile = try profileNode.nonEmptyString()
                    guard profiles[profile] != nil else { throw profileNode.error("unknown profile '\(profile)'") }
                    connection.masking.groups[group] = profile
                }
            }
            connection.masking.unmaskedGroups = try entry["unmasked_groups"]?.strings() ?? []
            if let columns = entry["columns"] {
                for (column, styleNode) in try columns.entries() {
                    guard column.split(separator: ".").count == 2 else {
                        throw styleNode.error("column rules are TABLE.COLUMN or *.COLUMN")
                    }
                    connection.masking.columns[column.lowercased()] = try parseStyle(styleNode)
                }
            }
        }
        if let value = map["guardrails"] {
            for element in try value.sequence() {
                let entry = try element.mapping(allowed: ["match", "class", "action", "message", "groups"])
                guard let actionNode = entry["action"] else { throw element.error("needs action (allow, block or review)") }
                guard let action = Rule.Action(rawValue: try actionNode.string()) else {
                    throw actionNode.error("expected allow, block or review")
                }
                let match = try entry["match"]?.nonEmptyString()
                let commandClass = try entry["class"]?.nonEmptyString()
                if match == nil && commandClass == nil { throw element.error("needs match or class") }
                // A class no adapter reports would never match: a misspelt rule is refused, not ignored.
                if let commandClass, let classNode = entry["class"],
                   let problem = GuardrailClasses.problem(with: commandClass, protocolName: kind.rawValue) {
                    throw classNode.error(problem)
                }
                if let match, let matchNode = entry["match"] {
                    do { _ = try Regex(match) } catch {
                        throw matchNode.error("invalid regular expression")
                    }
                }
                var rule = Rule(match: match, commandClass: commandClass, action: action, message: try entry["message"]?.string())
                rule.groups = try entry["groups"]?.strings() ?? []
                connection.guardrails.append(rule)
            }
        }
        if let value = map["reviews"] {
            let entry = try value.mapping(allowed: ["approvers", "min_approvals", "timeout", "max_grant"])
            if let approvers = entry["approvers"] { connection.reviews.approvers = try approvers.strings() }
            if let min = entry["min_approvals"] { connection.reviews.minApprovals = try min.int(in: 1...10) }
            if let timeout = entry["timeout"] { connection.reviews.timeout = try timeout.duration() }
            if let grant = entry["max_grant"] { connection.reviews.maxGrant = try grant.duration() }
        }
        if let value = map["port_forwarding"] {
            guard kind == .ssh else { throw value.error("only ssh connections forward ports") }
            do {
                connection.portForwarding = try ForwardPermission(try value.strings())
            } catch let error as ForwardPatternError {
                throw value.error(error.description)
            }
        }
        if let value = map["options"] {
            for (key, optionNode) in try value.entries() { connection.options[key] = try optionNode.string() }
        }
        if let value = map["session"] {
            let session = try value.mapping(allowed: ["end_on_token_expiry"])
            if let end = session["end_on_token_expiry"] { connection.endOnTokenExpiry = try end.bool() }
        }
        if let value = map["http"] {
            // HTTP adapter settings, handed to it as options (`http.KEY`).
            guard kind == .http || kind == .kubernetes else { throw value.error("only http and kubernetes connections take http settings") }
            let http = try value.mapping(allowed: ["pass_through_types"])
            if let types = http["pass_through_types"] {
                let list = try types.strings()
                for type in list where type == "*/*" || !type.contains("/") || type.contains(",") {
                    throw types.error("\(type.prefix(60)) is not a media type or TYPE/* (and */* would pass everything unscanned)")
                }
                connection.options["http.pass_through_types"] = list.joined(separator: ",")
            }
        }
        return connection
    }
}

/// Finds files of the source checkout (examples, corpora) from the working directory or the binary.
public enum ProjectFiles {
    public static func locate(_ relative: String) -> String? {
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: relative) { return relative }
        var url = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = url.appendingPathComponent(relative)
            if fileManager.fileExists(atPath: candidate.path) { return candidate.path }
            url.deleteLastPathComponent()
        }
        return nil
    }
}

extension GatewayConfiguration {
    /// Seconds in a duration such as `90s`, `10m`, `1h30m` (nil when malformed).
    /// The listeners bound to a non-loopback address (`name HOST:PORT`).
    public var publicListeners: [String] {
        [("admin", listen.admin), ("postgres", listen.postgres), ("ssh", listen.ssh), ("http", listen.http),
         ("kubernetes", listen.kubernetes)].compactMap { name, address in
            guard let address, !Self.isLoopback(address.host) else { return nil }
            return "\(name) \(address)"
        }
    }

    /// `127.0.0.0/8`, `::1` and `localhost`; anything else (`0.0.0.0`, `::`, names, addresses) may be reachable.
    public static func isLoopback(_ host: String) -> Bool {
        let host = host.lowercased()
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { part in UInt8(part).map { _ in true } ?? false }
    }

    /// The dev issuer mints any identity for whoever holds the state dir's key, and its tokens are
    /// only as safe as that; a gateway with it on must not face a network unless the operator says so.
    /// Throws when the dev issuer is on, a listener is public and `identity.dev_issuer_public` is not set;
    /// returns the public listeners (to warn about) when it is set.
    @discardableResult
    public func checkDevIssuerExposure() throws -> [String] {
        guard identity.devIssuer else { return [] }
        let exposed = publicListeners
        guard !exposed.isEmpty else { return [] }
        guard identity.devIssuerPublic else {
            throw ConfigurationError(file: file, key: "identity.dev_issuer",
                                     reason: "the dev issuer is on and \(exposed.joined(separator: ", ")) is not a loopback address; "
                                         + "turn it off (identity.dev_issuer: false) or, knowingly, set identity.dev_issuer_public: true")
        }
        return exposed
    }

    public static func parseDurationText(_ text: String) -> Int? { ConfigNode.parseDuration(text) }
}
