import Adapters
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// One accepting socket of a NIO adapter (`listen.postgres`, `listen.http`,
/// `listen.kubernetes`) as a service: binds, logs its address, accepts until graceful shutdown.
/// A listener supplies only its name and how a new connection's pipeline is built.
struct TCPListener: Service {
    let name: String
    let address: HostPort
    let logger: Logger
    /// Adds the adapter's handlers (and TLS where the listener has it) to an accepted channel.
    let configureChild: @Sendable (any Channel) throws -> Void

    func run() async throws {
        let configureChild = self.configureChild
        let server = try await ServerBootstrap(group: EventLoops.group)
            .serverChannelOption(ChannelOptions.backlog, value: 512)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try configureChild(channel) }
            }
            .bind(host: address.host, port: address.port).get()
        logger.notice("\(name) listening", metadata: ["address": "\(server.localAddress?.description ?? "?")"])
        await withGracefulShutdownHandler {
            try? await server.closeFuture.get()
        } onGracefulShutdown: {
            server.close(promise: nil)
        }
    }
}
