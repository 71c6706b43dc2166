import ArgumentParser
import Foundation
import Gateway

/// The keys of a connection that `connections add` and `edit` set from flags (the rest through --file).
struct ConnectionFields: ParsableArguments {
    @Option(help: "postgres, ssh, http or kubernetes.") var type: String?
    @Option(help: "HOST:PORT, or a URL for http and kubernetes.") var target: String?
    @Option(help: "Postgres: the database.") var database: String?
    @Option(help: "The account the gateway logs in as.") var username: String?
    @Option(help: "Environment variable (on the gateway's host) holding the password.") var passwordEnv: String?
    @Option(help: "File (on the gateway's host) holding the password.") var passwordFile: String?
    @Option(help: "SSH: the private key file on the gateway's host.") var privateKeyFile: String?
    @Option(help: "HTTP/Kubernetes: environment variable holding the token.") var tokenEnv: String?
    @Option(help: "HTTP/Kubernetes: file holding the token.") var tokenFile: String?
    @Option(help: "SSH: the target's host key (ssh-ed25519 AAAA…).") var hostKey: String?
    @Option(help: "CA bundle for the target's TLS.") var caFile: String?
    @Option(help: "Comma-separated groups that may use it.") var groups: String?
    @Option(help: "Masking profile.") var profile: String?
    @Option(help: "Comma-separated approvers' groups for reviews.") var approvers: String?
    @Option(name: .customLong("option"), help: "KEY=VALUE connection option (repeatable), e.g. sslmode=require.") var options: [String] = []
    @Option(help: "A YAML or JSON file with the whole definition (a connections: entry); flags override it.") var file: String?

    /// Applies the flags to `object` (a definition as JSON).
    func apply(to object: inout [String: Any]) {
        if let type { object["type"] = type }
        if let target { object["target"] = target }
        if let database { object["database"] = database }
        if let hostKey { object["host_key"] = hostKey }
        if let caFile { object["ca_file"] = caFile }
        var credential = object["credential"] as? [String: Any] ?? [:]
        for (key, value) in [("username", username), ("password_env", passwordEnv), ("password_file", passwordFile),
                             ("private_key_file", privateKeyFile), ("token_env", tokenEnv), ("token_file", tokenFile)] {
            if let value { credential[key] = value }
        }
        if !credential.isEmpty { object["credential"] = credential }
        if let groups {
            var access = object["access"] as? [String: Any] ?? [:]
            access["groups"] = groups.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            object["access"] = access
        }
        if let profile {
            var masking = object["masking"] as? [String: Any] ?? [:]
            masking["profile"] = profile
            object["masking"] = masking
        }
        if let approvers {
            var reviews = object["reviews"] as? [String: Any] ?? [:]
            reviews["approvers"] = approvers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            object["reviews"] = reviews
        }
        if !self.options.isEmpty {
            var options = object["options"] as? [String: Any] ?? [:]
            for pair in self.options {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { fail("--option \(pair.prefix(40)): expected KEY=VALUE", code: 2) }
                options[String(parts[0])] = String(parts[1])
            }
            object["options"] = options
        }
    }

    func fromFile() -> [String: Any]? {
        guard let file else { return nil }
        guard let data = FileManager.default.contents(atPath: file) else { fail("cannot read \(file)", code: 2) }
        let json = orFail(file) { try GatewayConfiguration.connectionSpecJSON(String(decoding: data, as: UTF8.self)) }
        return (try? JSONSerialization.jsonObject(with: json)) as? [String: Any]
    }
}

struct Connections: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connections",
        abstract: "List, inspect, add, change, remove and test connections (through the running gateway).",
        discussion: "Connections added here are kept in the gateway's store and served at once by every gateway on it; "
            + "the configuration file's own connections win on a name clash. Changing them takes the admin group.",
        subcommands: [List.self, Show.self, Add.self, Edit.self, Remove.self, Test.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "The connections you may see.")
        @OptionGroup var options: ConfigOption
        @OptionGroup var client: ClientOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let reply = try await client.client(optionalConfiguration(options)).send("GET", "/api/connections")
            let connections = decode([Views.Connection].self, reply, what: "the connections")
            if json { printJSON(connections); return }
            print(pad("name", 18) + pad("type", 11) + pad("target", 30) + pad("source", 9) + pad("credential", 15) + "groups")
            for connection in connections {
                print(pad(connection.name, 18) + pad(connection.type, 11) + pad(String(connection.target.prefix(28)), 30)
                      + pad(connection.source ?? "-", 9) + pad(connection.credential_mode, 15) + connection.access_groups.joined(separator: ","))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "One connection as JSON (admins also see a runtime one's definition).")
        @OptionGroup var options: ConfigOption
        @OptionGroup var client: ClientOptions
        @Argument var name: String

        func run() async throws {
            let reply = try await client.client(optionalConfiguration(options)).send("GET", "/api/connections/\(name)")
            printJSON(decode(Views.Connection.self, reply, what: "the connection"))
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add", abstract: "Add a connection, served at once (credentials are named, never given: --password-env, --password-file, …).")
        @OptionGroup var options: ConfigOption
        @OptionGroup var client: ClientOptions
        @Argument var name: String
        @OptionGroup var fields: ConnectionFields

        func run() async throws {
            var object = fields.fromFile() ?? [:]
            object["name"] = name
            fields.apply(to: &object)
            let body = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            let reply = try await client.client(optionalConfiguration(options)).send("POST", "/api/connections", body: body)
            let connection = decode(Views.Connection.self, reply, what: "the new connection")
            print("added \(connection.name) (\(connection.type) → \(connection.target)); `sluice connections test \(connection.name)` checks it")
        }
    }

    struct Edit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "edit", abstract: "Change a runtime connection (flags change those keys; --file replaces it).")
        @OptionGroup var options: ConfigOption
        @OptionGroup var client: ClientOptions
        @Argument var name: String
        @OptionGroup var fields: ConnectionFields

        func run() async throws {
            let admin = await client.client(optionalConfiguration(options))
            var object: [String: Any]
            if let replaced = fields.fromFile() {
                object = replaced
            } else {
                let current = decode(Views.Connection.self, try await admin.send("GET", "/api/connections/\(name)"), what: "the connection")
                guard let spec = current.spec, let parsed = (try? JSONSerialization.jsonObject(with: Data(spec.utf8))) as? [String: Any] else {
                    fail("\(name) comes from the configuration file (or you are not an admin): change it there", code: 1)
                }
                object = parsed
            }
            object["name"] = name
            fields.apply(to: &object)
            let body = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            let reply = try await admin.send("PUT", "/api/connections/\(name)", body: body)
            _ = decode(Views.Connection.self, reply, what: "the changed connection")
            print("changed \(name); new sessions use it now")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a runtime connection (open sessions run on).")
        @OptionGroup var options: ConfigOption
        @OptionGroup var client: ClientOptions
        @Argument var name: String

        func run() async throws {
            let reply = try await client.client(optionalConfiguration(options)).send("DELETE", "/api/connections/\(name)")
            guard reply.status == 200 else { fail(reply.errorMessage, code: 1) }
            print("removed \(name)")
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "test", abstract: "Open a connection to the target with the stored credential: reachability, TLS or host key, login.")
        @OptionGroup var options: ConfigOption
        @OptionGroup var client: ClientOptions
        @Argument var name: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let reply = try await client.client(optionalConfiguration(options)).send("POST", "/api/connections/\(name)/test")
            let report = decode(ConnectionTestReport.self, reply, what: "the test")
            if json {
                printJSON(report)
            } else {
                for check in report.checks { print((check.ok ? "ok    " : "FAIL  ") + pad(check.name, 11) + check.detail) }
                print(report.ok ? "\(name): ok" : "\(name): FAILED")
            }
            if !report.ok { throw ExitCode(1) }
        }
    }
}
