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

/// Bytes from one channel go to the other, flushed once per read burst.
final class ByteForward: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let other: any Channel
    init(to other: any Channel) { self.other = other }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { other.write(unwrapInboundIn(data), promise: nil) }
    func channelReadComplete(context: ChannelHandlerContext) { other.flush() }
    func channelInactive(context: ChannelHandlerContext) { other.close(promise: nil) }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

/// Client requests, parsed, to the upstream as client request parts.
final class RequestForward: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    let upstream: any Channel
    let host: String
    init(to upstream: any Channel, host: String) {
        self.upstream = upstream
        self.host = host
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(var head):
            head.headers.replaceOrAdd(name: "Host", value: host)
            upstream.write(HTTPClientRequestPart.head(head), promise: nil)
        case .body(let buffer):
            upstream.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
        case .end(let trailers):
            upstream.write(HTTPClientRequestPart.end(trailers), promise: nil)
        }
    }
    func channelReadComplete(context: ChannelHandlerContext) { upstream.flush() }
    func channelInactive(context: ChannelHandlerContext) { upstream.close(promise: nil) }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

/// Upstream responses, parsed, to the client as server response parts.
final class ResponseForward: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPClientResponsePart
    let client: any Channel
    init(to client: any Channel) { self.client = client }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): client.write(HTTPServerResponsePart.head(head), promise: nil)
        case .body(let buffer): client.write(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil)
        case .end(let trailers): client.write(HTTPServerResponsePart.end(trailers), promise: nil)
        }
    }
    func channelReadComplete(context: ChannelHandlerContext) { client.flush() }
    func channelInactive(context: ChannelHandlerContext) { client.close(promise: nil) }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
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
                        try upstream.pipeline.syncOperations.addHandler(ResponseForward(to: client))
                    } else {
                        try upstream.pipeline.syncOperations.addHandler(ByteForward(to: client))
                    }
                }
            }
            .connect(host: targetHost, port: targetPort)
            .flatMapThrowing { upstream in
                if http {
                    try client.pipeline.syncOperations.configureHTTPServerPipeline()
                    try client.pipeline.syncOperations.addHandler(RequestForward(to: upstream, host: hostHeader))
                } else {
                    try client.pipeline.syncOperations.addHandler(ByteForward(to: upstream))
                }
            }
    }
    .bind(host: "127.0.0.1", port: listenPort)
    .wait()
print("NIORelay \(arguments[1]) on 127.0.0.1:\(listenPort) -> \(targetHost):\(targetPort), \(threads) threads")
try server.closeFuture.wait()
