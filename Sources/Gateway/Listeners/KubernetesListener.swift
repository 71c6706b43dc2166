import Adapters
import Logging
import NIOCore
import NIOSSL

/// The Kubernetes listener (`listen.kubernetes`): TLS with the gateway's certificate, routed by
/// the `/CONNECTION` prefix kubeconfigs put in `server:`.
enum KubernetesListener {
    static func make(configuration: GatewayConfiguration, runtime: GatewayRuntime, logger: Logger) throws -> TCPListener? {
        guard let address = configuration.listen.kubernetes else { return nil }
        var settings = HTTPAdapterConfiguration()
        settings.clientScheme = "https"
        settings.recordCap = min(configuration.recordOutputCap, 1 << 20)
        // Watches stay open between events; heads still must come promptly.
        settings.headerTimeout = .nanoseconds(configuration.http.headerTimeout.nanoseconds)
        settings.bodyIdleTimeout = .nanoseconds(configuration.http.bodyIdleTimeout.nanoseconds)
        let profile = HTTPProxyProfile.kubernetes(secretValues: { target in
            target.options["secret_values"].flatMap(SecretValuePolicy.init(rawValue:)) ?? .replace
        })
        let adapter = HTTPAdapter(governor: runtime, configuration: settings, profile: profile, connector: Sockets.connector,
                                  upgradeInstaller: KubernetesExec.installer(recordCap: configuration.recordOutputCap))
        let tls = try Sockets.serverTLS(configuration)
        return TCPListener(name: "kubernetes", address: address, logger: logger) { channel in
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
            try adapter.configure(channel)
        }
    }
}
