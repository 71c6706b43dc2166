// The floor of the gateway benchmarks: a SwiftNIO relay that does nothing but relay. `tcp`
// copies bytes both ways (what a Postgres proxy cannot go below); `http` parses and re-encodes
// each request and response with NIOHTTP1 on both legs, as the gateway does, and rewrites only
// the Host header. One upstream connection per client connection, opened when the client
// connects; no TLS, no backpressure, no limits: a measuring stick, not a proxy to deploy.
//
// Usage: NIORelay tcp|http LISTEN_PORT TARGET_HOST TARGET_PORT [THREADS]
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOPosix

let arguments = CommandLine.arguments
guard arguments.count >= 5, let listenPort = Int(arguments[2]), let targetPort = Int(arguments[4]),
      arguments[1] == "tcp" || arguments[1] == "http" else {
    print("usage: NIORelay tcp|http LISTEN_PORT TARGET_HOST TARGET_PORT [THREADS]")
    exit(2)
}
let http = arguments[1] == "http"
let targetHost = arguments[3]
let threads = arguments.count > 5 ? Int(arguments[5]) ?? System.coreCount : System.coreCount

/// What one channel reads goes to the other, converted (bytes as they are; HTTP server parts
/// to client parts and back), flushed once per read burst.
final class Forward<In, Out: Sendable>: ChannelInboundHandler, Sendable {
    typealias InboundIn = In
    let other: any Channel
    let convert: @Sendable (In) -> Out
    init(to other: any Channel, _ convert: @escaping @Sendable (In) -> Out) {
        self.other = other
        self.convert = convert
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { other.write(convert(unwrapInboundIn(data)), promise: nil) }
    func channelReadComplete(context: ChannelHandlerContext) { other.flush() }
    func channelInactive(context: ChannelHandlerContext) { other.close(promise: nil) }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

/// A client request part as the upstream gets it (only the Host header changes).
@Sendable func upstreamPart(_ part: HTTPServerRequestPart, host: String) -> HTTPClientRequestPart {
    switch part {
    case .head(var head):
        head.headers.replaceOrAdd(name: "Host", value: host)
        return .head(head)
    case .body(let buffer): return .body(.byteBuffer(buffer))
    case .end(let trailers): return .end(trailers)
    }
}

/// An upstream response part as the client gets it.
@Sendable func clientPart(_ part: HTTPClientResponsePart) -> HTTPServerResponsePart {
    switch part {
    case .head(let head): .head(head)
    case .body(let buffer): .body(.byteBuffer(buffer))
    case .end(let trailers): .end(trailers)
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let hostHeader = "\(targetHost):\(targetPort)"
let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { client in
        ClientBootstrap(group: client.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { upstream in
                upstream.eventLoop.makeCompletedFuture {
                    if http {
                        try upstream.pipeline.syncOperations.addHTTPClientHandlers()
                        try upstream.pipeline.syncOperations.addHandler(Forward(to: client, clientPart))
                    } else {
                        try upstream.pipeline.syncOperations.addHandler(Forward<ByteBuffer, ByteBuffer>(to: client) { $0 })
                    }
                }
            }
            .connect(host: targetHost, port: targetPort)
            .flatMapThrowing { upstream in
                if http {
                    try client.pipeline.syncOperations.configureHTTPServerPipeline()
                    try client.pipeline.syncOperations.addHandler(Forward(to: upstream) { upstreamPart($0, host: hostHeader) })
                } else {
                    try client.pipeline.syncOperations.addHandler(Forward<ByteBuffer, ByteBuffer>(to: upstream) { $0 })
                }
            }
    }
    .bind(host: "127.0.0.1", port: listenPort)
    .wait()
print("NIORelay \(arguments[1]) on 127.0.0.1:\(listenPort) -> \(targetHost):\(targetPort), \(threads) threads")
try server.closeFuture.wait()
