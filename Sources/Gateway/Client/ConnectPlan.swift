import Adapters
import Foundation

/// What `sluice connect NAME` runs: the client for the connection's protocol with the gateway's
/// address, and the user's token where that client reads a secret from — `PGPASSWORD` for psql,
/// an askpass helper for ssh, an exec credential plugin for kubectl, a curl config file — never
/// on a command line (where every local user can read it in `/proc/*/cmdline`).
public struct ConnectPlan: Sendable, Equatable {
    public struct File: Sendable, Equatable {
        public var path: String
        public var contents: String
        public var mode: Int
    }

    public var program: String
    public var arguments: [String]
    /// Added to the client's environment.
    public var environment: [String: String]
    /// Written (mode as given) before the client starts.
    public var files: [File]
    /// The command as a person would type it (the token as `$(sluice token)`), for `--print`.
    public var display: String
    /// A libpq connection string, a URL or an ssh destination, for `--print`.
    public var connectionString: String

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var reason: String
        public var description: String { reason }
    }

    /// - Parameters:
    ///   - gatewayHost: the host the admin API was reached on (stands in for a wildcard listener).
    ///   - folder: where the plan's files go (the user's config folder).
    ///   - sluice: this program's path (askpass helper and exec plugin).
    public static func make(connection: Views.Connection, client: Views.ClientConfig, gateway: String, gatewayHost: String,
                            user: String, token: String, folder: String, sluice: String, extra: [String]) throws -> ConnectPlan {
        func listener(_ name: String) throws -> (host: String, port: Int) {
            guard let text = client.listeners[name], let address = HostPort(text) else {
                throw Failure(reason: "the gateway's \(name) listener is off")
            }
            let wildcard = ["0.0.0.0", "::", "[::]", ""].contains(address.host)
            return (wildcard ? gatewayHost : address.host, address.port)
        }
        let name = connection.name
        switch connection.type {
        case "postgres":
            let (host, port) = try listener("postgres")
            let conninfo = "host=\(host) port=\(port) dbname=\(name) user=\(user) sslmode=require"
            return ConnectPlan(program: "psql", arguments: [conninfo] + extra, environment: ["PGPASSWORD": token], files: [],
                               display: "PGPASSWORD=\"$(sluice token)\" psql \"\(conninfo)\"" + shown(extra),
                               connectionString: conninfo)
        case "ssh":
            let (host, port) = try listener("ssh")
            var files: [File] = []
            var options = ["-p", String(port), "-o", "PreferredAuthentications=keyboard-interactive,password", "-o", "PubkeyAuthentication=no"]
            if let key = client.ssh_host_key {
                let knownHosts = (folder as NSString).appendingPathComponent("known_hosts")
                let entry = (port == 22 ? host : "[\(host)]:\(port)") + " " + key
                files.append(File(path: knownHosts, contents: entry + "\n", mode: 0o600))
                options += ["-o", "UserKnownHostsFile=\(knownHosts)", "-o", "StrictHostKeyChecking=yes"]
            }
            let destination = "\(name)@\(host)"
            return ConnectPlan(program: "ssh", arguments: options + [destination] + extra,
                               environment: ["SSH_ASKPASS": sluice, "SSH_ASKPASS_REQUIRE": "force", "SLUICE_ASKPASS": gateway],
                               files: files, display: "ssh -p \(port) \(destination)" + shown(extra) + "    # token at \"Sluice token:\": sluice token",
                               connectionString: "ssh://\(name)@\(host):\(port)")
        case "kubernetes":
            let (host, port) = try listener("kubernetes")
            let path = (folder as NSString).appendingPathComponent("kubeconfig-\(name)")
            let server = "https://\(host.contains(":") ? "[\(host)]" : host):\(port)"
            let kubeconfig = try Kubeconfig.renderExec(server: server, connection: name, certificatePEM: client.tls_certificate,
                                                       sluice: sluice, gateway: gateway)
            return ConnectPlan(program: "kubectl", arguments: ["--kubeconfig", path] + extra, environment: [:],
                               files: [File(path: path, contents: kubeconfig, mode: 0o600)],
                               display: "sluice kubeconfig \(name) > ~/.kube/sluice-\(name) && kubectl --kubeconfig ~/.kube/sluice-\(name)" + shown(extra),
                               connectionString: "\(server)/\(name)")
        case "http":
            let (host, port) = try listener("http")
            let base = "http://\(host.contains(":") ? "[\(host)]" : host):\(port)/\(name)"
            let path = extra.first.map { $0.hasPrefix("/") ? $0 : "/" + $0 } ?? "/"
            let config = (folder as NSString).appendingPathComponent("curl-\(name).conf")
            let header = "header = \"Authorization: Bearer \(token)\"\n"
            return ConnectPlan(program: "curl", arguments: ["--config", config, "--silent", "--show-error", base + path] + extra.dropFirst(),
                               environment: [:], files: [File(path: config, contents: header, mode: 0o600)],
                               display: "curl -H \"Authorization: Bearer $(sluice token)\" \(base)\(path)", connectionString: base)
        default:
            throw Failure(reason: "no client for \(connection.type) connections")
        }
    }

    static func shown(_ extra: [String]) -> String {
        extra.isEmpty ? "" : " " + extra.map { $0.contains(" ") || $0.isEmpty ? "'\($0.replacingOccurrences(of: "'", with: "'\\''"))'" : $0 }
            .joined(separator: " ")
    }
}

extension Kubeconfig {
    /// A kubeconfig whose user is an exec credential plugin (`client.authentication.k8s.io/v1`):
    /// kubectl runs `sluice token --exec` for each token, so none is written into the file.
    public static func renderExec(server: String, connection name: String, certificatePEM: String?, sluice: String,
                                  gateway: String) throws -> String {
        guard let certificatePEM else {
            throw ConfigurationError(key: "tls.cert", reason: "the gateway did not say its TLS certificate")
        }
        let context = "sluice-\(name)"
        func quoted(_ text: String) -> String {
            "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        return """
        apiVersion: v1
        kind: Config
        clusters:
        - name: \(context)
          cluster:
            server: \(server)/\(name)
            certificate-authority-data: \(Data(certificatePEM.utf8).base64EncodedString())
        users:
        - name: \(context)
          user:
            exec:
              apiVersion: client.authentication.k8s.io/v1
              command: \(quoted(sluice))
              args: ["token", "--exec", "--gateway", \(quoted(gateway))]
              interactiveMode: Never
              provideClusterInfo: false
              installHint: "sluice signs you in: run `sluice login --gateway \(gateway)`"
        contexts:
        - name: \(context)
          context:
            cluster: \(context)
            user: \(context)
        current-context: \(context)

        """
    }
}
