import Adapters
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// Bootstraps sockets for the adapters (the only module that may): upstream connections on the
/// caller's event loop, and TLS from the gateway's certificate.
enum Sockets {
    static let connector: UpstreamConnector = { eventLoop, host, port, initializer in
        ClientBootstrap(group: eventLoop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer(initializer)
            .connect(host: host, port: port)
    }

    /// A TLS server context from the configured pair, else the state dir's generated one.
    static func serverTLS(_ configuration: GatewayConfiguration) throws -> NIOSSLContext {
        let state = StateDirectory(path: configuration.stateDir)
        let certificate = configuration.tls?.cert ?? state.certificatePath
        let key = configuration.tls?.key ?? state.certificateKeyPath
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
            var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            tls.minimumTLSVersion = .tlsv12
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw ConfigurationError(file: certificate, key: "tls", reason: "cannot load the certificate or key (\(error))")
        }
    }
}

/// The Postgres listener (`listen.postgres`) as a service: accepts until graceful shutdown.
struct PostgresListener: Service {
    let address: HostPort
    let adapter: PostgresAdapter
    let logger: Logger

    static func make(configuration: GatewayConfiguration, runtime: GatewayRuntime, logger: Logger) throws -> PostgresListener? {
        guard let address = configuration.listen.postgres else { return nil }
        var settings = PostgresAdapterConfiguration()
        settings.clientTLS = true
        settings.recordOutputCap = configuration.recordOutputCap
        let context = try Sockets.serverTLS(configuration)
        let upgrade: ClientTLSUpgrade = { channel in
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context), position: .first)
        }
        let adapter = PostgresAdapter(governor: runtime, configuration: settings, connector: Sockets.connector, tlsUpgrade: upgrade)
        return PostgresListener(address: address, adapter: adapter, logger: logger)
    }

    func run() async throws {
        let adapter = self.adapter
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.backlog, value: 512)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(adapter.makeHandler())
                }
            }
            .bind(host: address.host, port: address.port).get()
        logger.notice("postgres listening", metadata: ["address": "\(server.localAddress?.description ?? "?")"])
        await withGracefulShutdownHandler {
            try? await server.closeFuture.get()
        } onGracefulShutdown: {
            server.close(promise: nil)
        }
    }
}
