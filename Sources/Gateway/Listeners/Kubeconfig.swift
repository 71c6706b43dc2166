import Adapters
import Foundation

/// The kubeconfig `sluice kubeconfig CONNECTION` prints: the Kubernetes listener with the
/// connection's path prefix as `server`, the gateway's certificate as the CA, and an exec
/// credential plugin (`sluice token --exec`) instead of a token.
public enum Kubeconfig {
    /// - Parameters:
    ///   - sluice: the `sluice` program kubectl runs for each token (`sluice token --exec`).
    ///   - gateway: the admin API whose sign-in the plugin uses.
    public static func render(configuration: GatewayConfiguration, connection name: String, sluice: String, gateway: String,
                              server: String? = nil) throws -> String {
        guard let connection = configuration.connection(named: name) else {
            throw ConfigurationError(file: configuration.file, key: "connections", reason: "no connection named '\(name)'")
        }
        guard connection.kind == .kubernetes else {
            throw ConfigurationError(file: configuration.file, key: "connections", reason: "'\(name)' is a \(connection.kind.rawValue) connection, not kubernetes")
        }
        let base: String
        if let server {
            base = server.hasSuffix("/") ? String(server.dropLast()) : server
        } else {
            guard let listen = configuration.listen.kubernetes else {
                throw ConfigurationError(file: configuration.file, key: "listen.kubernetes", reason: "the Kubernetes listener is off")
            }
            let host = listen.host == "0.0.0.0" || listen.host == "::" ? "127.0.0.1" : listen.host
            base = "https://" + (host.contains(":") ? "[\(host)]" : host) + ":\(listen.port)"
        }
        let state = StateDirectory(path: configuration.stateDir)
        let certificatePath: String
        if let tls = configuration.tls {
            certificatePath = tls.cert
        } else {
            try state.prepare()   // the same pair `sluice serve` will use
            certificatePath = state.certificatePath
        }
        guard let pem = FileManager.default.contents(atPath: certificatePath) else {
            throw ConfigurationError(file: certificatePath, key: "tls.cert", reason: "cannot read the gateway certificate")
        }
        return try renderExec(server: base, connection: name, certificatePEM: String(decoding: pem, as: UTF8.self), sluice: sluice,
                              gateway: gateway)
    }
}
