import Adapters
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// Why an upstream TLS connection could not be made (no payload, names and modes only).
struct UpstreamTLSError: Error, CustomStringConvertible {
    var reason: String
    var description: String { "upstream TLS: \(reason)" }
}

/// The `sslmode` of a Postgres connection (`options: { sslmode: … }`), as libpq names them.
enum PostgresSSLMode: String {
    case disable, require, verifyCA = "verify-ca", verifyFull = "verify-full"

    static func of(_ target: ConnectionTarget) throws -> PostgresSSLMode {
        let text = target.options["sslmode"] ?? "disable"
        guard let mode = PostgresSSLMode(rawValue: text) else {
            throw UpstreamTLSError(reason: "sslmode '\(text.prefix(20))' (use disable, require, verify-ca or verify-full)")
        }
        return mode
    }

    func tlsConfiguration(caFile: String?) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        switch self {
        case .disable, .require:
            tls.certificateVerification = .none
        case .verifyCA:
            tls.certificateVerification = .noHostnameVerification
        case .verifyFull:
            tls.certificateVerification = .fullVerification
        }
        if self == .verifyCA || self == .verifyFull {
            if let caFile {
                tls.trustRoots = .file(caFile)
            } else {
                tls.trustRoots = .default
            }
        }
        return tls
    }
}

/// Sends an SSLRequest, reads the one-byte answer, and on `S` puts TLS in front of the channel.
/// Bytes after the `S` before the handshake are refused (they could be injected, CVE-2021-23222).
final class PostgresSSLNegotiator: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let context: NIOSSLContext
    private let serverName: String?
    private let promise: EventLoopPromise<Void>
    /// After `S`: waiting for the TLS handshake, whose failure must fail the connect.
    private var handshaking = false

    init(context: NIOSSLContext, serverName: String?, promise: EventLoopPromise<Void>) {
        self.context = context
        self.serverName = serverName
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        var request = ByteBuffer()
        request.writeInteger(Int32(8))
        request.writeInteger(PostgresWire.sslRequestCode)
        context.writeAndFlush(wrapOutboundOut(request), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if handshaking {
            context.fireChannelRead(data)
            return
        }
        var buffer = unwrapInboundIn(data)
        guard let answer = buffer.readInteger(as: UInt8.self) else { return }
        guard answer == UInt8(ascii: "S") else {
            promise.fail(UpstreamTLSError(reason: "the server does not accept TLS"))
            context.close(promise: nil)
            return
        }
        guard buffer.readableBytes == 0 else {
            promise.fail(UpstreamTLSError(reason: "unexpected bytes after the server accepted TLS"))
            context.close(promise: nil)
            return
        }
        do {
            let handler = try NIOSSLClientHandler(context: self.context, serverHostname: serverName)
            handshaking = true
            try context.pipeline.syncOperations.addHandler(handler, position: .first)
        } catch {
            promise.fail(UpstreamTLSError(reason: "handshake setup failed (\(error))"))
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if handshaking, let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            handshaking = false
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
            promise.succeed()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(UpstreamTLSError(reason: "the server closed the connection during TLS negotiation"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(UpstreamTLSError(reason: handshaking ? "TLS handshake failed (\(error))" : "\(error)"))
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension PostgresSSLNegotiator: Sendable {}
