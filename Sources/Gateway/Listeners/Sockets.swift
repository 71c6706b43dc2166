import Adapters
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// The event loops of the protocol listeners: one per core by default, or
/// `SLUICE_EVENT_LOOP_THREADS` (1–64).
enum EventLoops {
    static let group: MultiThreadedEventLoopGroup = {
        if let text = ProcessInfo.processInfo.environment["SLUICE_EVENT_LOOP_THREADS"], let count = Int(text), (1...64).contains(count) {
            return MultiThreadedEventLoopGroup(numberOfThreads: count)
        }
        return MultiThreadedEventLoopGroup.singleton
    }()
}

/// Bootstraps sockets for the adapters (the only module that may): upstream connections on the
/// caller's event loop, and TLS from the gateway's certificate.
enum Sockets {
    /// Plain TCP, or for Postgres targets with `sslmode` other than `disable`, SSLRequest then TLS
    /// (verify-full checks the chain against `ca_file` and the host name).
    static let connector: UpstreamConnector = { eventLoop, request, initializer in
        if request.directTLS { return directTLS(eventLoop, request, initializer) }
        let mode: PostgresSSLMode
        do {
            mode = request.negotiateTLS && request.target.kind == .postgres ? try PostgresSSLMode.of(request.target) : .disable
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        guard mode != .disable else {
            return ClientBootstrap(group: eventLoop)
                .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(10))
                .channelInitializer(initializer)
                .connect(host: request.host, port: request.port)
        }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: try mode.tlsConfiguration(caFile: request.target.caFile))
        } catch {
            return eventLoop.makeFailedFuture(UpstreamTLSError(reason: "cannot load the CA or TLS settings (\(error))"))
        }
        let negotiated = eventLoop.makePromise(of: Void.self)
        let serverName = request.host.first?.isNumber == true || request.host.contains(":") ? nil : request.host
        return ClientBootstrap(group: eventLoop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        PostgresSSLNegotiator(context: context, serverName: serverName, promise: negotiated))
                }
            }
            .connect(host: request.host, port: request.port)
            .flatMap { channel in
                negotiated.futureResult.flatMap { initializer(channel) }.map { channel }
            }
    }

    /// HTTPS and Kubernetes upstreams: TLS from the first byte, the chain checked against the
    /// connection's `ca_file` (else the system roots) and the host name.
    private static func directTLS(_ eventLoop: any EventLoop, _ request: UpstreamRequest,
                                  _ initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>) -> EventLoopFuture<any Channel> {
        let context: NIOSSLContext
        do {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            tls.certificateVerification = .fullVerification
            if let caFile = request.target.caFile { tls.trustRoots = .file(caFile) }
            context = try NIOSSLContext(configuration: tls)
        } catch {
            return eventLoop.makeFailedFuture(UpstreamTLSError(reason: "cannot load the CA or TLS settings (\(error))"))
        }
        let serverName = request.host.first?.isNumber == true || request.host.contains(":") ? nil : request.host
        return ClientBootstrap(group: eventLoop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                do {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: serverName))
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
                return initializer(channel)
            }
            .connect(host: request.host, port: request.port)
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
