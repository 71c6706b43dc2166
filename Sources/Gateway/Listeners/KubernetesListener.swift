import Adapters
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// The Kubernetes listener (`listen.kubernetes`): TLS with the gateway's certificate, routed by
/// the `/CONNECTION` prefix kubeconfigs put in `server:`.
struct KubernetesListener: Service {
    let address: HostPort
    let adapter: HTTPAdapter
    let tls: NIOSSLContext
    let logger: Logger

    static func make(configuration: GatewayConfiguration, runtime: GatewayRuntime, logger: Logger) throws -> KubernetesListener? {
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
        return KubernetesListener(address: address, adapter: adapter, tls: try Sockets.serverTLS(configuration), logger: logger)
    }

    func run() async throws {
        let adapter = self.adapter
        let tls = self.tls
        let server = try await ServerBootstrap(group: EventLoops.group)
            .serverChannelOption(ChannelOptions.backlog, value: 512)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    try adapter.configure(channel)
                }
            }
            .bind(host: address.host, port: address.port).get()
        logger.notice("kubernetes listening", metadata: ["address": "\(server.localAddress?.description ?? "?")"])
        await withGracefulShutdownHandler {
            try? await server.closeFuture.get()
        } onGracefulShutdown: {
            server.close(promise: nil)
        }
    }
}
