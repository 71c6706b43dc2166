import NIOCore
import NIOHTTP1

/// The HTTP reverse proxy: one ``HTTPFrontendHandler`` per client connection, behind NIO's HTTP/1
/// server codec (with pipelining assistance and protocol-error handling).
public struct HTTPAdapter: Sendable {
    public let governor: any Governor
    public let configuration: HTTPAdapterConfiguration
    public let profile: HTTPProxyProfile
    public let connector: UpstreamConnector

    public init(governor: any Governor, configuration: HTTPAdapterConfiguration, profile: HTTPProxyProfile = .http,
                connector: @escaping UpstreamConnector) {
        self.governor = governor
        self.configuration = configuration
        self.profile = profile
        self.connector = connector
    }

    /// Adds the HTTP server codec and the proxy handler to a new client channel (reads are driven
    /// by the handler: the channel should have `autoRead` on; the handler turns it off and on).
    public func configure(_ channel: any Channel) throws {
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
        try channel.pipeline.syncOperations.addHandler(HTTPFrontendHandler(adapter: self))
    }
}

public final class HTTPFrontendHandler: ChannelInboundHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundOut = HTTPServerResponsePart

    let adapter: HTTPAdapter
    private var machine: HTTPProxyMachine
    private var context: ChannelHandlerContext?
    private var upstream: (any Channel)?
    /// Which connection the idle upstream channel belongs to (reused for the next request to it).
    private var upstreamKey: String?
    private var wantsRead = true
    private var upstreamWritable = true
    private var timer: Scheduled<Void>?
    private var closed = false
    /// The last write to the client: the connection closes once it has gone out.
    private var lastWrite: EventLoopFuture<Void>?

    init(adapter: HTTPAdapter) {
        self.adapter = adapter
        machine = HTTPProxyMachine(configuration: adapter.configuration, profile: adapter.profile)
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { armTimer(adapter.configuration.headerTimeout) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        armTimer(adapter.configuration.headerTimeout)
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            timer?.cancel()
            timer = nil
            run(machine.requestHead(head, clientAddress: context.remoteAddress?.ipAddress))
        case .body(let buffer):
            armTimer(adapter.configuration.bodyIdleTimeout)
            run(machine.requestBody(buffer))
        case .end:
            timer?.cancel()
            timer = nil
            run(machine.requestEnd())
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        shutdown()
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        shutdown()
        context.close(promise: nil)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Backpressure: stop reading the upstream response while the client cannot take more.
        upstream?.setOption(ChannelOptions.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Upstream events (same event loop)

    func upstreamRead(_ part: HTTPClientResponsePart) {
        switch part {
        case .head(let head): run(machine.responseHead(head))
        case .body(let buffer): run(machine.responseBody(buffer))
        case .end: run(machine.responseEnd())
        }
    }

    func upstreamClosed(_ channel: any Channel) {
        guard channel === upstream else { return }
        upstream = nil
        upstreamKey = nil
        run(machine.upstreamClosed())
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        upstreamWritable = writable
        updateReading()
    }

    // MARK: Actions

    private func run(_ actions: [HTTPProxyMachine.Action]) {
        guard let context else { return }
        var flush = false
        for action in actions {
            switch action {
            case .sendClient(let part):
                lastWrite = context.write(wrapOutboundOut(part))
                flush = true
                if case .end = part {
                    context.flush()
                    flush = false
                    if machine.isIdle { armTimer(adapter.configuration.headerTimeout) }
                }
            case .sendUpstream(let part):
                upstream?.write(part, promise: nil)
                if case .end = part { upstream?.flush() }
                if case .body = part { upstream?.flush() }
            case .readClient(let on):
                wantsRead = on
                updateReading()
            case .openSession(let token, let connection):
                openSession(token: token, connection: connection, context: context)
            case .closeSession(let session):
                Task { await session.close(reason: "http session switched or ended") }
            case .awaitReview(let ticket):
                let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
                let eventLoop = context.eventLoop
                Task {
                    let outcome = await ticket.outcome()
                    eventLoop.execute { bound.value.run(bound.value.machine.reviewDecided(outcome)) }
                }
            case .connectUpstream(let connection, let target):
                connectUpstream(connection, target, context: context)
            case .releaseUpstream(let reusable):
                if !reusable {
                    upstream?.close(promise: nil)
                    upstream = nil
                    upstreamKey = nil
                }
            case .closeClient:
                flush = false
                context.flush()
                let channel = context.channel
                if let lastWrite {
                    lastWrite.whenComplete { _ in channel.close(promise: nil) }
                } else {
                    channel.close(promise: nil)
                }
                shutdown()
            }
        }
        if flush { context.flush() }
    }

    private func updateReading() {
        context?.channel.setOption(ChannelOptions.autoRead, value: wantsRead && upstreamWritable).whenFailure { _ in }
    }

    private func armTimer(_ delay: TimeAmount) {
        timer?.cancel()
        guard let context, !closed else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: delay) {
            let handler = bound.value
            handler.timer = nil
            handler.timedOut()
        }
    }

    private func timedOut() {
        guard let context, !closed else { return }
        if machine.isIdle {
            // Slow or idle client: 408 and close (RFC 9110 §15.5.9 lets a server say so). No
            // request is in flight, so the bytes go in below the HTTP codec.
            let channel = context.channel
            let response = ByteBuffer(string: "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            if let encoder = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self) {
                encoder.writeAndFlush(NIOAny(response)).whenComplete { _ in channel.close(promise: nil) }
            } else {
                channel.close(promise: nil)
            }
            shutdown()
            return
        }
        run(machine.timedOut())
    }

    private func openSession(token: String, connection: String, context: ChannelHandlerContext) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let governor = adapter.governor
        let kind = adapter.profile.kind
        let peer = context.remoteAddress?.description ?? "?"
        Task {
            do {
                let session = try await governor.openSession(token: token, connection: connection, kind: kind, peer: peer)
                eventLoop.execute {
                    let handler = bound.value
                    session.onTermination { _ in
                        eventLoop.execute { bound.value.terminate() }
                    }
                    if handler.closed {
                        Task { await session.close(reason: "client left during login") }
                        return
                    }
                    handler.run(handler.machine.sessionOpened(session))
                }
            } catch let error as GovernorError {
                eventLoop.execute { bound.value.run(bound.value.machine.sessionRefused(error)) }
            } catch {
                eventLoop.execute { bound.value.run(bound.value.machine.sessionRefused(GovernorError(.unavailable, "login failed"))) }
            }
        }
    }

    private func connectUpstream(_ connection: ConnectionTarget, _ target: HTTPTarget, context: ChannelHandlerContext) {
        let key = "\(connection.name)|\(connection.target)"
        if let upstream, upstreamKey == key, upstream.isActive {
            run(machine.upstreamConnected())
            return
        }
        upstream?.close(promise: nil)
        upstream = nil
        upstreamKey = nil
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let request = UpstreamRequest(target: connection, host: target.host, port: target.port, negotiateTLS: false, directTLS: target.tls)
        adapter.connector(context.eventLoop, request) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                try channel.pipeline.syncOperations.addHandler(HTTPUpstreamHandler(frontend: bound))
            }
        }.whenComplete { result in
            let handler = bound.value
            switch result {
            case .success(let channel):
                if handler.closed {
                    channel.close(promise: nil)
                    return
                }
                handler.upstream = channel
                handler.upstreamKey = key
                handler.run(handler.machine.upstreamConnected())
            case .failure(let error):
                handler.run(handler.machine.upstreamFailed(String(describing: error).prefix(160).description))
            }
        }
    }

    /// The gateway ends the session (shutdown, revoked access).
    private func terminate() {
        guard let context, !closed else { return }
        context.close(promise: nil)
        shutdown()
    }

    private func shutdown() {
        guard !closed else { return }
        closed = true
        timer?.cancel()
        timer = nil
        upstream?.close(promise: nil)
        upstream = nil
        run(machine.clientClosed())
    }
}

/// Forwards the upstream channel's events to the frontend handler (same event loop).
final class HTTPUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let frontend: NIOLoopBound<HTTPFrontendHandler>

    init(frontend: NIOLoopBound<HTTPFrontendHandler>) {
        self.frontend = frontend
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        frontend.value.upstreamRead(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        frontend.value.upstreamClosed(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        frontend.value.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }
}
