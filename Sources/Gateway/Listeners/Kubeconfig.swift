import Adapters
import Foundation

/// The kubeconfig `sluice kubeconfig CONNECTION` prints: the Kubernetes listener with the
/// connection's path prefix as `server`, the gateway's certificate as the CA, the user's token.
public enum Kubeconfig {
    public static func render(configuration: GatewayConfiguration, connection name: String, token: String, server: String? = nil) throws -> String {
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
        let context = "sluice-\(name)"
        return """
        apiVersion: v1
        kind: Config
        clusters:
        - name: \(context)
          cluster:
            server: \(base)/\(name)
            certificate-authority-data: \(pem.base64EncodedString())
        users:
        - name: \(context)
          user:
            token: \(token)
        contexts:
        - name: \(context)
          context:
            cluster: \(context)
            user: \(context)
        current-context: \(context)

        """
    }
}
