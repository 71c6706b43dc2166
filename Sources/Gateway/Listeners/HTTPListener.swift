import Adapters
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The HTTP listener (`listen.http`): the reverse proxy for `type: http` connections.
struct HTTPListener: Service {
    let address: HostPort
    let adapter: HTTPAdapter
    let logger: Logger

    static func make(configuration: GatewayConfiguration, runtime: GatewayRuntime, logger: Logger) -> HTTPListener? {
        guard let address = configuration.listen.http else { return nil }
        var settings = HTTPAdapterConfiguration()
        if let suffix = configuration.http.hostSuffix { settings.routing = .host(suffix: suffix) }
        settings.recordCap = min(configuration.recordOutputCap, 1 << 20)
        settings.headerTimeout = .nanoseconds(configuration.http.headerTimeout.nanoseconds)
        settings.bodyIdleTimeout = .nanoseconds(configuration.http.bodyIdleTimeout.nanoseconds)
        let adapter = HTTPAdapter(governor: runtime, configuration: settings, profile: .http, connector: Sockets.connector)
        return HTTPListener(address: address, adapter: adapter, logger: logger)
    }

    func run() async throws {
        let adapter = self.adapter
        let server = try await ServerBootstrap(group: EventLoops.group)
            .serverChannelOption(ChannelOptions.backlog, value: 512)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try adapter.configure(channel) }
            }
            .bind(host: address.host, port: address.port).get()
        logger.notice("http listening", metadata: ["address": "\(server.localAddress?.description ?? "?")"])
        await withGracefulShutdownHandler {
            try? await server.closeFuture.get()
        } onGracefulShutdown: {
            server.close(promise: nil)
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
