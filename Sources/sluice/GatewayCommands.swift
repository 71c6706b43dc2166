import ArgumentParser
import Foundation
import Gateway
import Logging

/// `--config FILE` shared by every gateway subcommand (default ./sluice.yaml, else the embedded defaults).
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Configuration file. Default: ./sluice.yaml when present, else the embedded defaults.")
    var config: String?

    func load() throws -> GatewayConfiguration {
        do {
            return try GatewayConfiguration.load(path: config)
        } catch {
            fail("\(error)", code: 2)
        }
    }
}

func fail(_ message: String, code: Int32) -> Never {
    FileHandle.standardError.write(Data("sluice: \(message)\n".utf8))
    exit(code)
}

func printJSON(_ value: some Encodable) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    if let data = try? encoder.encode(value) { print(String(decoding: data, as: UTF8.self)) }
}

func openStore(_ configuration: GatewayConfiguration, url: String? = nil) -> any Store {
    do {
        return try Gateway.openStore(configuration, url: url, readOnly: true)
    } catch {
        // Commands other than `serve` never create a store: say which one was looked for.
        fail("\(error) (configuration: \(configuration.file ?? "embedded defaults"))", code: 2)
    }
}

/// The result of `body`, or exit 2 with its error and `context`.
func orFail<T>(_ context: String, _ body: () throws -> T) -> T {
    do {
        return try body()
    } catch {
        fail("\(error) (\(context))", code: 2)
    }
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the gateway (no config: embedded defaults, dev issuer, loopback ports).")

    @OptionGroup var options: ConfigOption

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel = "info"

    func run() async throws {
        let configuration = try options.load()
        var logger = Logger(label: "sluice")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        do {
            try await GatewayServer(configuration: configuration, configurationPath: options.config, logger: logger).run()
        } catch let error as ConfigurationError {
            fail("\(error)", code: 2)
        }
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Print your token (from `sluice login`, refreshed when due), or mint one from the dev issuer (--user).")

    @OptionGroup var options: ConfigOption

    @Option(help: "Mint a dev-issuer token for this user (the preferred_username claim; dev mode only).")
    var user: String?

    @Option(help: "Comma-separated groups (with --user).")
    var groups = ""

    @Option(help: "Lifetime, e.g. 30m, 1h, 8h (with --user).")
    var ttl: String?

    @Flag(help: "Print a client.authentication.k8s.io/v1 ExecCredential (kubectl's exec plugin runs this).")
    var exec = false

    @Option(name: [.customLong("gateway"), .customLong("url")], help: "The gateway whose sign-in to print (default: the current one).")
    var gateway: String?

    func run() async throws {
        guard let user else {
            await TokenOutput.printCached(gateway: gateway, exec: exec, configuration: optionalConfiguration(options))
            return
        }
        let configuration = try options.load()
        guard configuration.identity.devIssuer else {
            fail("the dev issuer is off (identity.dev_issuer: false in \(configuration.file ?? "the configuration"))", code: 2)
        }
        var lifetime = configuration.identity.devTokenTTL
        if let ttl {
            guard let seconds = GatewayConfiguration.parseDurationText(ttl) else { fail("--ttl: expected e.g. 30m or 1h", code: 2) }
            lifetime = .seconds(seconds)
        }
        let state = StateDirectory(path: configuration.stateDir)
        let key = orFail("configuration: \(configuration.file ?? "embedded defaults")") { try state.existingSigningKey() }
        let groupList = groups.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        print(try DevIssuer.mint(user: user, groups: groupList, ttl: lifetime, key: key))
    }
}

struct Reviews: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reviews",
        abstract: "List, show, approve and deny reviews.",
        subcommands: [List.self, Show.self, Approve.self, Deny.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List reviews, pending first (reads the store).")
        @OptionGroup var options: ConfigOption
        @Option(help: "Only this status: pending, approved, denied, timed_out, expired.") var status: String?
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let store = openStore(try options.load())
            let reviews = try store.reviews(status: status, limit: 500).map(Views.Review.init)
            if json { printJSON(reviews); return }
            print(pad("id", 14) + pad("status", 10) + pad("kind", 8) + pad("requester", 14) + pad("connection", 16) + "what")
            for review in reviews {
                let what = review.command.map { String($0.prefix(60)) } ?? "access for \(review.grant_seconds ?? 0)s"
                print(pad(review.id, 14) + pad(review.status, 10) + pad(review.kind, 8) + pad(review.requester, 14)
                      + pad(review.connection, 16) + what)
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one review as JSON (reads the store).")
        @OptionGroup var options: ConfigOption
        @Argument var id: String

        func run() throws {
            let store = openStore(try options.load())
            guard let review = try store.review(id: id) else { fail("no review \(id)", code: 1) }
            printJSON(Views.Review(review))
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "approve", abstract: "Approve a review (through the running gateway).")
        @OptionGroup var options: ConfigOption
        @OptionGroup var client: ClientOptions
        @Argument var id: String

        func run() async throws {
            let reply = try await client.client(optionalConfiguration(options)).send("POST", "/api/reviews/\(id)/approve")
            guard reply.status == 200 else { fail(reply.errorMessage, code: 1) }
            print(String(decoding: reply.body, as: UTF8.self))
        }
    }

    struct Deny: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "deny", abstract: "Deny a review (through the running gateway).")
        @OptionGroup var options: ConfigOption
        @OptionGroup var client: ClientOptions
        @Argument var id: String
        @Option(help: "Why (shown to the requester).") var reason = ""

        func run() async throws {
            let reply = try await client.client(optionalConfiguration(options)).send("POST", "/api/reviews/\(id)/deny", json: ["reason": reason])
            guard reply.status == 200 else { fail(reply.errorMessage, code: 1) }
            print(String(decoding: reply.body, as: UTF8.self))
        }
    }
}

struct Access: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "access", abstract: "Just-in-time access.", subcommands: [Request.self])

    struct Request: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "request", abstract: "Request access to a connection for a while; it starts when approved.")
        @OptionGroup var options: ConfigOption
        @OptionGroup var client: ClientOptions
        @Argument var connection: String
        @Option(help: "How long, e.g. 30m or 2h.") var duration = "1h"
        @Option(help: "Why you need it.") var reason = ""

        func run() async throws {
            let reply = try await client.client(optionalConfiguration(options)).send(
                "POST", "/api/access-requests", json: ["connection": connection, "duration": duration, "reason": reason])
            guard reply.status == 201 else { fail(reply.errorMessage, code: 1) }
            print(String(decoding: reply.body, as: UTF8.self))
        }
    }
}

struct Sessions: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions",
        abstract: "Recorded sessions (reads the store).",
        subcommands: [List.self, Show.self, Replay.self, Export.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List sessions, newest first.")
        @OptionGroup var options: ConfigOption
        @Option var user: String?
        @Option var connection: String?
        @Option var limit = 50
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let store = openStore(try options.load())
            var filter = SessionFilter()
            filter.user = user
            filter.connection = connection
            filter.limit = limit
            let sessions = try store.sessions(filter).map(Views.Session.init)
            if json { printJSON(sessions); return }
            print(pad("id", 20) + pad("user", 14) + pad("connection", 16) + pad("protocol", 11) + pad("started", 26) + pad("events", 8) + "sealed")
            for session in sessions {
                print(pad(session.id, 20) + pad(session.user, 14) + pad(session.connection, 16) + pad(session.protocol, 11)
                      + pad(session.started_at, 26) + pad(String(session.event_count), 8) + (session.sealed ? "yes" : "no"))
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "A session's metadata and events as JSON.")
        @OptionGroup var options: ConfigOption
        @Argument var id: String

        func run() throws {
            let store = openStore(try options.load())
            guard let session = try store.session(id: id) else { fail("no session \(id)", code: 1) }
            struct Document: Encodable {
                var session: Views.Session
                var events: [Views.Event]
            }
            printJSON(Document(session: Views.Session(session), events: try store.events(session: id, after: -1, limit: 100_000).map(Views.Event.init)))
        }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "replay", abstract: "Replay a session's (masked) output to this terminal with its timing.")
        @OptionGroup var options: ConfigOption
        @Argument var id: String
        @Option(help: "Playback speed factor.") var speed = 1.0
        @Flag(help: "Print without waiting.") var noWait = false

        func run() throws {
            let store = openStore(try options.load())
            guard let session = try store.session(id: id) else { fail("no session \(id)", code: 1) }
            var last: Int64 = 0
            var after = -1
            var terminal: Bool?
            while true {
                let page = try store.events(session: id, after: after, limit: 1000)
                if page.isEmpty { break }
                let isTerminal = terminal ?? SessionTimeline.isTerminal(kind: session.kind, events: page)
                terminal = isTerminal
                for event in page {
                    after = event.seq
                    if !noWait && event.offset > last && speed > 0 {
                        usleep(useconds_t(min(5_000_000, Double(event.offset - last) / speed)))
                    }
                    last = event.offset
                    let shown = SessionTimeline.replay(event, kind: session.kind, terminal: isTerminal)
                    if !shown.isEmpty { FileHandle.standardOutput.write(Data(shown)) }
                }
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "export", abstract: "Export a session (asciicast v2 plays in any asciinema player).")
        @OptionGroup var options: ConfigOption
        @Argument var id: String
        @Option(help: "asciicast or json.") var format = "asciicast"

        func run() throws {
            let store = openStore(try options.load())
            guard let session = try store.session(id: id) else { fail("no session \(id)", code: 1) }
            switch format {
            case "asciicast": FileHandle.standardOutput.write(Data(try Asciicast.export(session: session, store: store).utf8))
            case "json": printJSON(try store.events(session: id, after: -1, limit: 1_000_000).map(Views.Event.init))
            default: fail("--format: asciicast or json", code: 2)
            }
        }
    }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "Check the audit record.", subcommands: [Verify.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Recompute every hash chain and signature offline; name the first broken record.")
        @OptionGroup var options: ConfigOption
        @Option(help: "Store URL (default: the configuration's store), sqlite:PATH or postgres://USER@HOST/DB.") var store: String?
        @Option(help: "Gateway public key file (default: STATE_DIR/signing.pub).") var publicKey: String?
        @Flag(help: "Print the report as JSON.") var json = false

        func run() throws {
            let configuration = try options.load()
            let database = openStore(configuration, url: store)
            let key: PublicKeyFile
            do {
                key = try PublicKeyFile(path: publicKey ?? StateDirectory(path: configuration.stateDir).publicKeyPath)
            } catch {
                fail("\(error)", code: 2)
            }
            let report = try AuditVerifier(store: database, publicKey: key.key).verify()
            if json {
                printJSON(report)
            } else {
                print("sessions: \(report.sessionsChecked) checked, \(report.sessionsSealed) sealed, \(report.unsealed.count) unsealed")
                print("events: \(report.eventsChecked) verified; control chain: \(report.controlEventsChecked) verified")
                for id in report.unsealed { print("unsealed: session \(id) (intact, but the gateway stopped before sealing it, or it is still open)") }
                for id in report.recordingFailed {
                    print("recording failed: session \(id) (the store refused a write; the gateway stopped the session and marked the gap; not tampering)")
                }
                for problem in report.problems { print("BROKEN: \(problem)") }
                print(report.ok ? "audit verify: OK" : "audit verify: FAILED (\(report.problems.count) problem(s))")
            }
            if !report.ok { throw ExitCode(1) }
        }
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reload", abstract: "Tell the running gateway to reload its configuration (SIGHUP).")
    @OptionGroup var options: ConfigOption

    func run() throws {
        let configuration = try options.load()
        let pidFile = (configuration.stateDir as NSString).appendingPathComponent("sluice.pid")
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            fail("no running gateway found (\(pidFile))", code: 1)
        }
        guard kill(pid, SIGHUP) == 0 else { fail("cannot signal process \(pid)", code: 1) }
        print("sent SIGHUP to \(pid); a bad configuration is refused and logged, the running one stays")
    }
}

struct KubeconfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubeconfig",
        abstract: "Print a kubeconfig that points kubectl at a Kubernetes connection through the gateway.",
        discussion: "kubectl gets each token from `sluice token --exec` (your `sluice login`, or $SLUICE_TOKEN): none is written into the file.")

    @OptionGroup var options: ConfigOption

    @Argument(help: "The kubernetes connection.")
    var connection: String

    @Option(help: "The gateway's Kubernetes base URL as users reach it (default: from listen.kubernetes).")
    var server: String?

    @Option(name: [.customLong("gateway"), .customLong("url")], help: "The admin URL whose sign-in the plugin uses (default: listen.admin).")
    var gateway: String?

    @Option(help: .hidden) var token: String?

    func run() throws {
        if token != nil {
            // Kept so older scripts still run: the kubeconfig no longer holds a token.
            FileHandle.standardError.write(Data("sluice kubeconfig: --token is ignored; kubectl gets the token from `sluice token --exec` ($SLUICE_TOKEN or your `sluice login`)\n".utf8))
        }
        let configuration = try options.load()
        let base = ClientOptions.gatewayURL(explicit: gateway ?? "http://" + (configuration.listen.admin?.description ?? "127.0.0.1:8080"),
                                            configuration)
        do {
            print(try Kubeconfig.render(configuration: configuration, connection: connection, sluice: selfPath(), gateway: base,
                                        server: server), terminator: "")
        } catch {
            fail("\(error)", code: 2)
        }
    }
}

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "store", abstract: "Move the record between stores.",
                                                    subcommands: [Migrate.self])

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "migrate",
            abstract: "Copy every session, event, control record and review into an empty store (e.g. SQLite to PostgreSQL).")
        @OptionGroup var options: ConfigOption
        @Option(help: "The store to copy from (default: the configuration's store), e.g. sqlite:.sluice/sluice.db.") var from: String?
        @Option(help: "The empty store to copy into, e.g. postgres://sluice@db/sluice?sslmode=verify-full&sslrootcert=ca.pem.") var to: String
        @Option(help: "Environment variable holding the PostgreSQL password (default: the configuration's store password).")
        var passwordEnv: String?
        @Option(help: "File holding the PostgreSQL password.") var passwordFile: String?

        func run() throws {
            var configuration = try options.load()
            if passwordEnv != nil || passwordFile != nil {
                configuration.storeCredential = GatewayConfiguration.CredentialSource()
                configuration.storeCredential.passwordEnv = passwordEnv
                configuration.storeCredential.passwordFile = passwordFile
            }
            let source = openStore(configuration, url: from)
            let target = orFail("opening \(displayedStoreURL(to))") { try Gateway.openStore(configuration, url: to) }
            let report = orFail("copying into \(displayedStoreURL(to))") {
                try StoreMigration.copy(from: source, to: target) { progress in
                    FileHandle.standardError.write(Data("  \(progress.sessions) sessions, \(progress.events) events so far\n".utf8))
                }
            }
            print("copied \(report.sessions) sessions, \(report.events) events, \(report.controlEvents) control records, \(report.reviews) reviews, \(report.connections) runtime connections")
            print("next: sluice audit verify --store '\(displayedStoreURL(to))'")
        }
    }
}
