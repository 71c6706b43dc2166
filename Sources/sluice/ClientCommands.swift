import ArgumentParser
import Foundation
import Adapters
import Gateway

/// This program's absolute path: what ssh runs as its askpass helper and kubectl as its exec plugin.
func selfPath() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    if count > 0 { return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    let first = CommandLine.arguments.first ?? "sluice"
    return first.hasPrefix("/") ? first : FileManager.default.currentDirectoryPath + "/" + first
}

/// The gateway a client command talks to, and the caller's token.
struct ClientOptions: ParsableArguments {
    @Option(help: "Bearer token (default: $SLUICE_TOKEN, else your `sluice login`).")
    var token: String?

    @Option(name: [.customLong("gateway"), .customLong("url")],
            help: "The gateway's admin URL (default: $SLUICE_GATEWAY, else the last `sluice login`, else listen.admin of --config).")
    var gateway: String?

    func gatewayURL(_ configuration: GatewayConfiguration?) -> String {
        Self.gatewayURL(explicit: gateway, configuration)
    }

    static func gatewayURL(explicit gateway: String?, _ configuration: GatewayConfiguration?) -> String {
        if let gateway { return TokenCache.key(gateway) }
        if let value = ProcessInfo.processInfo.environment["SLUICE_GATEWAY"], !value.isEmpty { return TokenCache.key(value) }
        if configuration?.file == nil, let current = try? TokenCache.standard().load().current { return current }
        return "http://" + (configuration?.listen.admin?.description ?? "127.0.0.1:8080")
    }

    /// The token: `--token`, `$SLUICE_TOKEN`, else the cached sign-in (refreshed when due).
    func bearer(gateway: String) async -> String {
        if let token, !token.isEmpty { return token }
        if let token = ProcessInfo.processInfo.environment["SLUICE_TOKEN"], !token.isEmpty { return token }
        do {
            return try await TokenCache.standard().validEntry(gateway: gateway).token
        } catch {
            fail("\(error)", code: 2)
        }
    }

    func client(_ configuration: GatewayConfiguration?) async -> AdminClient {
        let base = gatewayURL(configuration)
        return AdminClient(baseURL: base, token: await bearer(gateway: base))
    }
}

/// `--config` for client commands: optional (a user's machine has no gateway configuration).
func optionalConfiguration(_ options: ConfigOption) -> GatewayConfiguration? {
    guard options.config != nil || FileManager.default.fileExists(atPath: "sluice.yaml") else { return nil }
    return try? options.load()
}

func decode<T: Decodable>(_ type: T.Type, _ reply: AdminClient.Reply, what: String) -> T {
    guard reply.status == 200 || reply.status == 201 else { fail(reply.errorMessage, code: 1) }
    do {
        return try JSONDecoder().decode(T.self, from: reply.body)
    } catch {
        fail("the gateway's answer to \(what) is not what this sluice understands (\(error))", code: 1)
    }
}

// MARK: - login, logout, whoami

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Sign in to a gateway: your identity provider in a browser (or --device), or the dev issuer (--dev).",
        discussion: "The token and refresh token are kept in ~/.config/sluice/credentials.json (mode 0600) and refreshed silently.")

    @OptionGroup var options: ConfigOption
    @Option(name: [.customLong("gateway"), .customLong("url")], help: "The gateway's admin URL (default: $SLUICE_GATEWAY, else listen.admin).")
    var gateway: String?
    @Flag(help: "Sign in with the gateway's dev issuer (needs the gateway's --config and state directory on this machine).")
    var dev = false
    @Option(help: "--dev: the user name.") var user: String?
    @Option(help: "--dev: comma-separated groups.") var groups = ""
    @Option(help: "--dev: lifetime, e.g. 8h.") var ttl: String?
    @Flag(help: "Use the device authorization grant (a code to enter on another device).") var device = false
    @Flag(help: "Do not open a browser; print the URL to open.") var noBrowser = false
    @Option(help: "The identity provider's issuer, when the gateway trusts several.") var provider: String?
    @Option(help: "The loopback port for the provider's redirect (default: any free port).") var port = 0

    func run() async throws {
        let configuration = optionalConfiguration(options)
        let base = ClientOptions.gatewayURL(explicit: gateway, configuration)
        let cache = TokenCache.standard()
        if dev {
            guard let user else { fail("--dev needs --user", code: 2) }
            guard let configuration = configuration ?? (try? options.load()), configuration.identity.devIssuer else {
                fail("the dev issuer is off in this configuration (identity.dev_issuer)", code: 2)
            }
            var lifetime = configuration.identity.devTokenTTL
            if let ttl {
                guard let seconds = GatewayConfiguration.parseDurationText(ttl) else { fail("--ttl: expected e.g. 30m or 8h", code: 2) }
                lifetime = .seconds(seconds)
            }
            let key = orFail("configuration: \(configuration.file ?? "embedded defaults")") {
                try StateDirectory(path: configuration.stateDir).existingSigningKey()
            }
            let groupList = groups.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let token = try DevIssuer.mint(user: user, groups: groupList, ttl: lifetime, key: key)
            let expires = Int64(Date().timeIntervalSince1970) + lifetime.components.seconds
            try cache.store(TokenCache.Entry(token: token, expiresAt: expires, kind: "dev", user: user, groups: groupList), for: base)
            print("signed in to \(base) as \(user) (dev issuer) until \(Self.local(expires))")
            return
        }
        let reply = try await AdminClient(baseURL: base, token: "").send("GET", "/api/client-config")
        let settings = decode(Views.ClientConfig.self, reply, what: "client-config")
        guard let chosen = provider.map({ wanted in settings.oidc.first { $0.issuer == wanted } }) ?? settings.oidc.first else {
            if settings.oidc.isEmpty {
                fail("\(base) trusts no identity provider (identity.oidc)" + (settings.dev_issuer ? "; sign in with --dev" : ""), code: 2)
            }
            fail("\(base) does not trust \(provider ?? "")", code: 2)
        }
        let login = OIDCLogin(issuer: chosen.issuer, clientID: chosen.client_id, discoveryURL: chosen.discovery_url,
                              clientSecret: chosen.cli_client_secret)
        let endpoints = try await login.endpoints()
        let tokens: OIDCLogin.Tokens
        if device {
            let grant = try await login.startDevice(endpoints)
            FileHandle.standardError.write(Data("""
                To sign in, open \(grant.verificationURI) and enter the code \(grant.userCode)
                \(grant.verificationURIComplete.map { "(or open \($0))\n" } ?? "")Waiting…

                """.utf8))
            tokens = try await login.pollDevice(grant, endpoints: endpoints)
        } else {
            let redirect = try LoopbackRedirect(port: port)
            let (verifier, challenge) = OIDCLogin.pkce()
            let state = OIDCLogin.pkce().verifier
            let url = login.authorizationURL(endpoints, redirect: redirect.redirectURI, state: state, nonce: OIDCLogin.pkce().verifier,
                                             challenge: challenge)
            FileHandle.standardError.write(Data("Open this URL to sign in (it expires in 5 minutes):\n\(url)\n".utf8))
            if !noBrowser { Self.openBrowser(url) }
            let code: String
            do {
                code = try await Self.detached { try redirect.waitForCode(state: state) }
            } catch {
                fail("\(error)", code: 1)
            }
            tokens = try await login.exchange(code: code, verifier: verifier, redirect: redirect.redirectURI, endpoints: endpoints)
        }
        // The gateway says who this token is (and refuses one it does not trust).
        let me = try await AdminClient(baseURL: base, token: tokens.idToken).send("GET", "/api/me")
        let identity = decode(Identity.self, me, what: "/api/me")
        let expires = (OIDCLogin.claims(tokens.idToken)["exp"] as? NSNumber)?.int64Value ?? Int64(Date().timeIntervalSince1970) + 300
        try cache.store(TokenCache.Entry(token: tokens.idToken, refreshToken: tokens.refreshToken, expiresAt: expires, kind: "oidc",
                                         issuer: chosen.issuer, tokenEndpoint: endpoints.token, clientID: chosen.client_id,
                                         user: identity.user, groups: identity.groups), for: base)
        if let secret = chosen.cli_client_secret, var stored = try cache.entry(for: base) {
            stored.clientSecret = secret
            try cache.store(stored, for: base)
        }
        print("signed in to \(base) as \(identity.user) (\(identity.groups.joined(separator: ", "))) until \(Self.local(expires))"
              + (tokens.refreshToken == nil ? "" : "; refreshed automatically"))
    }

    static func local(_ seconds: Int64) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss zzz"
        return formatter.string(from: Date(timeIntervalSince1970: Double(seconds)))
    }

    /// `$BROWSER URL`, else `xdg-open URL` when there is a display; quietly nothing otherwise.
    static func openBrowser(_ url: String) {
        let environment = ProcessInfo.processInfo.environment
        let command: String
        if let browser = environment["BROWSER"], !browser.isEmpty {
            command = browser
        } else if environment["DISPLAY"] != nil || environment["WAYLAND_DISPLAY"] != nil {
            command = "xdg-open"
        } else {
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [command, url]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try? process.run()
    }

    /// Runs blocking `work` on its own thread.
    static func detached<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
        }
    }
}

struct Logout: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logout", abstract: "Forget the tokens `sluice login` kept.")
    @OptionGroup var options: ConfigOption
    @Option(name: [.customLong("gateway"), .customLong("url")], help: "Only this gateway (default: the current one).") var gateway: String?
    @Flag(help: "Every gateway.") var all = false

    func run() throws {
        let cache = TokenCache.standard()
        let target = all ? nil : ClientOptions.gatewayURL(explicit: gateway, optionalConfiguration(options))
        let removed = try cache.remove(gateway: target)
        print(removed ? "signed out of \(target ?? "every gateway")" : "not signed in to \(target ?? "any gateway")")
    }
}

struct Whoami: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "whoami", abstract: "Who you are to a gateway: user, groups, expiry.")
    @OptionGroup var options: ConfigOption
    @OptionGroup var client: ClientOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let base = client.gatewayURL(optionalConfiguration(options))
        let token = await client.bearer(gateway: base)
        let reply = try await AdminClient(baseURL: base, token: token).send("GET", "/api/me")
        let identity = decode(Identity.self, reply, what: "/api/me")
        let expires = (OIDCLogin.claims(token)["exp"] as? NSNumber)?.int64Value
        let cached = try? TokenCache.standard().entry(for: base)
        if json {
            struct Document: Encodable {
                var gateway: String
                var user: String
                var groups: [String]
                var expires_at: Int64?
                var source: String
            }
            printJSON(Document(gateway: base, user: identity.user, groups: identity.groups, expires_at: expires,
                               source: cached?.token == token ? "sluice login (\(cached?.kind ?? "?"))" : "token"))
            return
        }
        print("gateway: \(base)")
        print("user:    \(identity.user)")
        print("groups:  \(identity.groups.joined(separator: ", "))")
        if let expires { print("expires: \(Login.local(expires))") }
        print("via:     " + (cached?.token == token ? "sluice login (\(cached?.kind ?? "?"))" : "--token or $SLUICE_TOKEN"))
    }
}

// MARK: - connect

struct Connect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "Start the right client for a connection (psql, ssh, kubectl, curl) through the gateway, signed in.",
        discussion: "Arguments after -- go to the client: sluice connect app-db -- -c 'select 1'; sluice connect box -- uptime.")

    @OptionGroup var options: ConfigOption
    @OptionGroup var client: ClientOptions
    @Argument(help: "The connection.") var name: String
    @Flag(help: "Print the command and the connection string instead of running it.") var print = false
    @Argument(parsing: .postTerminator, help: "Arguments for the client.") var extra: [String] = []

    func run() async throws {
        let base = client.gatewayURL(optionalConfiguration(options))
        let admin = await client.client(optionalConfiguration(options))
        let settings = decode(Views.ClientConfig.self, try await admin.send("GET", "/api/client-config"), what: "client-config")
        let connection = decode(Views.Connection.self, try await admin.send("GET", "/api/connections/\(name)"), what: "the connection")
        let me = decode(Identity.self, try await admin.send("GET", "/api/me"), what: "/api/me")
        let host = URL(string: base)?.host ?? "127.0.0.1"
        let cache = TokenCache.standard()
        let plan: ConnectPlan
        do {
            plan = try ConnectPlan.make(connection: connection, client: settings, gateway: base, gatewayHost: host, user: me.user,
                                        token: admin.token, folder: cache.folder, sluice: selfPath(), extra: extra)
        } catch {
            fail("\(error)", code: 2)
        }
        if print {
            Swift.print(plan.display)
            Swift.print(plan.connectionString)
            return
        }
        try FileManager.default.createDirectory(atPath: cache.folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for file in plan.files {
            unlink(file.path)
            guard FileManager.default.createFile(atPath: file.path, contents: Data(file.contents.utf8), attributes: [.posixPermissions: file.mode]) else {
                fail("cannot write \(file.path)", code: 2)
            }
        }
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in plan.environment { environment[key] = value }
        // ssh's askpass helper and kubectl's plugin read the token from the cache, or from here
        // when it came from --token (the environment is the user's own, not a command line).
        if (try? cache.entry(for: base))?.token != admin.token { environment["SLUICE_TOKEN"] = admin.token }
        let code = run(plan.program, plan.arguments, environment: environment)
        // A curl config holds the token: gone as soon as curl is.
        for file in plan.files where file.path.hasSuffix(".conf") { unlink(file.path) }
        throw ExitCode(code)
    }

    /// Runs `program` (from PATH) with the terminal, and returns its exit status.
    func run(_ program: String, _ arguments: [String], environment: [String: String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program] + arguments
        process.environment = environment
        do {
            try process.run()
        } catch {
            fail("cannot start \(program): \(error)", code: 127)
        }
        // The client owns the terminal: ^C goes to it, not to us.
        signal(SIGINT, SIG_IGN)
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }
}

// MARK: - token for other programs

enum TokenOutput {
    /// `sluice token` without --user: the signed-in token (refreshed), or an ExecCredential for kubectl.
    static func printCached(gateway: String?, exec: Bool, configuration: GatewayConfiguration?) async {
        let base = ClientOptions.gatewayURL(explicit: gateway, configuration)
        let token: String
        var expires: Int64?
        if let value = ProcessInfo.processInfo.environment["SLUICE_TOKEN"], !value.isEmpty {
            token = value
            expires = (OIDCLogin.claims(value)["exp"] as? NSNumber)?.int64Value
        } else {
            do {
                let entry = try await TokenCache.standard().validEntry(gateway: base)
                token = entry.token
                expires = entry.expiresAt
            } catch {
                fail("\(error)", code: 2)
            }
        }
        guard exec else {
            print(token)
            return
        }
        var status: [String: String] = ["token": token]
        if let expires {
            let formatter = ISO8601DateFormatter()
            status["expirationTimestamp"] = formatter.string(from: Date(timeIntervalSince1970: Double(expires)))
        }
        let document: [String: Any] = ["apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": status]
        if let data = try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes]) {
            print(String(decoding: data, as: UTF8.self))
        }
    }
}

/// ssh runs this program as its askpass helper (`SSH_ASKPASS`, with `SLUICE_ASKPASS` naming
/// the gateway): the prompt comes as the only argument; the answer is the token.
enum AskPass {
    static func answerIfAsked() async {
        let environment = ProcessInfo.processInfo.environment
        guard let gateway = environment["SLUICE_ASKPASS"], !gateway.isEmpty else { return }
        let arguments = Array(CommandLine.arguments.dropFirst())
        let subcommands = Set(Sluice.configuration.subcommands.compactMap { $0.configuration.commandName })
        guard arguments.count <= 1, !subcommands.contains(arguments.first ?? "") else { return }
        let prompt = arguments.first?.lowercased() ?? ""
        // Host-key questions never come (the known_hosts entry is written first); refuse one.
        if prompt.contains("yes/no") || prompt.contains("fingerprint") {
            print("no")
            exit(0)
        }
        await TokenOutput.printCached(gateway: gateway, exec: false, configuration: nil)
        exit(0)
    }
}
