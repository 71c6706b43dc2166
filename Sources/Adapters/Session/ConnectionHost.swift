import NIOCore

/// A NIO connection handler that carries a governed session (the Postgres and HTTP frontends):
/// what the session plumbing calls back, always on the handler's event loop.
protocol GovernedConnectionHost: AnyObject, SendableMetatype {
    /// The client connection is gone: a session that opens now is closed at once.
    var hasClosed: Bool { get }
    func sessionOpened(_ session: any GovernedSession)
    func sessionRefused(_ error: GovernorError)
    /// The gateway ended the session (shutdown, revoked access, expiry).
    func sessionTerminated(_ reason: String)
    /// The review the connection waited for (``ReviewWait``) was decided.
    func reviewDecided(_ outcome: ReviewOutcome)
}

extension GovernedConnectionHost {
    /// Opens a session off the event loop (token checks are async). The answer comes back on
    /// `eventLoop` as ``sessionOpened(_:)`` or ``sessionRefused(_:)``; the gateway ending the
    /// session later comes as ``sessionTerminated(_:)``. A session that opens after the client
    /// left is closed at once, with why.
    func openSession(with governor: any Governor, token: String, connection: String, kind: ConnectionKind,
                     peer: String, on eventLoop: any EventLoop) {
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        governor.openSession(token: token, connection: connection, kind: kind, peer: peer, on: eventLoop) { result in
            let host = bound.value
            switch result {
            case .success(let session):
                session.onTermination { reason in eventLoop.execute { bound.value.sessionTerminated(reason) } }
                if host.hasClosed {
                    Task { await session.close(reason: "client left during login") }
                    return
                }
                host.sessionOpened(session)
            case .failure(let error):
                host.sessionRefused(error)
            }
        }
    }
}

/// The review a connection waits for. Waiting takes no thread (the decision comes back on the
/// event loop as ``GovernedConnectionHost/reviewDecided(_:)``); a connection that ends first
/// withdraws the review, so approvers are not left deciding for nobody.
struct ReviewWait {
    private(set) var ticket: ReviewTicket?

    mutating func start<Host: GovernedConnectionHost>(_ ticket: ReviewTicket, for host: Host, on eventLoop: any EventLoop) {
        self.ticket = ticket
        let bound = NIOLoopBound(host, eventLoop: eventLoop)
        Task {
            let outcome = await ticket.outcome()
            eventLoop.execute { bound.value.reviewDecided(outcome) }
        }
    }

    /// The decision arrived: nothing to withdraw any more.
    mutating func settle() {
        ticket = nil
    }

    /// The connection ends before the decision: the review is withdrawn with `reason`.
    mutating func withdraw(reason: String) {
        guard let ticket else { return }
        self.ticket = nil
        Task { await ticket.withdraw(reason: reason) }
    }
}

/// What an upstream channel's events go to: the frontend handler of the same session, on the
/// same event loop (the connector opens the upstream on the client's loop).
protocol UpstreamEventSink: AnyObject {
    associatedtype UpstreamPart
    func upstreamRead(_ part: UpstreamPart)
    /// The end of one read from the upstream socket: the moment to flush what went to the client.
    func upstreamReadComplete()
    func upstreamClosed(_ channel: any Channel)
    func upstreamWritabilityChanged(_ channel: any Channel, _ writable: Bool)
}

extension UpstreamEventSink {
    func upstreamReadComplete() {}
}

/// The handler at the end of an upstream channel's pipeline: forwards its events to the
/// frontend. Errors close the channel; the close reaches the frontend as ``UpstreamEventSink/upstreamClosed(_:)``.
final class UpstreamForwarder<Sink: UpstreamEventSink>: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Sink.UpstreamPart

    private let sink: NIOLoopBound<Sink>

    init(_ sink: NIOLoopBound<Sink>) {
        self.sink = sink
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        sink.value.upstreamRead(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        sink.value.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        sink.value.upstreamClosed(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        sink.value.upstreamWritabilityChanged(context.channel, context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }
}

@available(*, unavailable)
extension UpstreamForwarder: Sendable {}

/// The client-facing NIO handler of a governed connection, written once for the Postgres and
/// HTTP frontends: it keeps the client's context, the session's upstream channel, whether the
/// connection ended and the review it waits for; it stops reading the upstream while the client
/// cannot take more (backpressure), and turns the client's disconnection or error into one
/// ``connectionEnded(reason:)``. The frontends override the hooks (`added`, `activated`, `read`,
/// `removed`, `connectionEnded`); NIO's own entry points stay here, so each is written once.
package class GovernedFrontend<ClientIn, ClientOut>: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ClientIn
    package typealias OutboundOut = ClientOut

    /// The client channel's context while this handler is in its pipeline. Dropped on removal:
    /// the context holds the handler, and keeping it would keep both, and every buffer of the
    /// connection, alive for ever.
    var context: ChannelHandlerContext?
    /// The session's upstream channel (its events come back through ``UpstreamForwarder``).
    var upstream: (any Channel)?
    /// The connection ended: nothing more is read, sent or opened.
    var closed = false
    /// The review a held command waits for: withdrawn if the connection ends first.
    var reviewWait = ReviewWait()

    init() {}

    /// Whether the connection ended (``GovernedConnectionHost/hasClosed``).
    var hasClosed: Bool { closed }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        added(context: context)
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        removed()
    }

    package func channelActive(context: ChannelHandlerContext) {
        activated(context: context)
        context.fireChannelActive()
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        read(unwrapInboundIn(data), context: context)
    }

    package func channelInactive(context: ChannelHandlerContext) {
        connectionEnded(reason: "client disconnected")
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connectionEnded(reason: "client connection error (\(type(of: error)))")
        context.close(promise: nil)
    }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Backpressure: stop reading the upstream while the client cannot take more.
        upstream?.setOption(ChannelOptions.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        context.fireChannelWritabilityChanged()
    }

    /// Opens the session's upstream connection on this connection's event loop. `pipeline`
    /// adds the protocol's handlers (ending with an ``UpstreamForwarder``); once connected the
    /// channel becomes ``upstream`` and `connected` runs, unless the client left meanwhile (then
    /// the new channel is closed); `failed` runs with the error.
    func openUpstream(_ request: UpstreamRequest, with connector: UpstreamConnector, on eventLoop: any EventLoop,
                      pipeline: @escaping @Sendable (any Channel) throws -> Void,
                      connected: @escaping (any Channel) -> Void, failed: @escaping (any Error) -> Void) {
        let callbacks = NIOLoopBound((self, connected, failed), eventLoop: eventLoop)
        connector(eventLoop, request) { channel in
            channel.eventLoop.makeCompletedFuture { try pipeline(channel) }
        }.whenComplete { result in
            let (frontend, connected, failed) = callbacks.value
            switch result {
            case .success(let channel):
                if frontend.closed {
                    channel.close(promise: nil)
                    return
                }
                frontend.upstream = channel
                connected(channel)
            case .failure(let error):
                failed(error)
            }
        }
    }

    // MARK: Hooks for the frontends

    /// The handler joined the pipeline (the channel may already be active).
    func added(context: ChannelHandlerContext) {}
    /// The handler left the pipeline (its context is already dropped).
    func removed() {}
    /// The client connection became active.
    func activated(context: ChannelHandlerContext) {}
    /// A part from the client.
    func read(_ part: ClientIn, context: ChannelHandlerContext) {}
    /// The client left or failed: release what the connection holds, once.
    func connectionEnded(reason: String) {}
}

@available(*, unavailable)
extension GovernedFrontend: Sendable {}
