import NIOCore
import NIOHTTP1

/// The HTTP reverse proxy: one ``HTTPFrontendHandler`` per client connection, behind NIO's HTTP/1
/// server codec (with pipelining assistance and protocol-error handling).
/// Takes over both connections after an accepted protocol upgrade: adds its handlers at the end
/// of each pipeline (the HTTP handlers are removed right after, and bytes that arrived behind the
/// `101` flow into the new handlers).
package typealias HTTPUpgradeInstaller = @Sendable (_ client: any Channel, _ upstream: any Channel, _ request: HTTPRequestHead,
                                                   _ response: HTTPResponseHead, _ uri: String, _ session: any GovernedSession) throws -> Void

package struct HTTPAdapter: Sendable {
    package let governor: any Governor
    package let configuration: HTTPAdapterConfiguration
    package let profile: HTTPProxyProfile
    package let connector: UpstreamConnector
    package let upgradeInstaller: HTTPUpgradeInstaller?

    package init(governor: any Governor, configuration: HTTPAdapterConfiguration, profile: HTTPProxyProfile = .http,
                connector: @escaping UpstreamConnector, upgradeInstaller: HTTPUpgradeInstaller? = nil) {
        self.governor = governor
        self.configuration = configuration
        self.profile = profile
        self.connector = connector
        self.upgradeInstaller = upgradeInstaller
    }

    /// Adds the HTTP server codec (with pipelining assistance and protocol-error handling) and the
    /// proxy handler to a new client channel. Reads are driven by the handler (`autoRead` toggled).
    package func configure(_ channel: any Channel) throws {
        let encoder = HTTPResponseEncoder()
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
        let pipelining = HTTPServerPipelineHandler()
        let errors = HTTPServerProtocolErrorHandler()
        let handler = HTTPFrontendHandler(adapter: self, httpHandlers: [errors, pipelining, encoder, decoder])
        try channel.pipeline.syncOperations.addHandlers([encoder, decoder, pipelining, errors, handler])
    }
}

package final class HTTPFrontendHandler: GovernedFrontend<HTTPServerRequestPart, HTTPServerResponsePart>,
                                         GovernedConnectionHost, UpstreamEventSink {
    let adapter: HTTPAdapter
    private var machine: HTTPProxyMachine
    /// Which connection (name and target) the idle upstream channel belongs to (reused for the
    /// next request to it).
    private var upstreamKey: (name: String, target: String)?
    private var wantsRead = true
    private var inUpstreamRead = false
    private var clientNeedsFlush = false
    private var upstreamWritable = true
    /// The scheduled check of ``deadline``. Re-arming to a later deadline keeps it (when it
    /// fires early it schedules itself again), so a keep-alive connection does not schedule and
    /// cancel a task per request.
    private var timer: Scheduled<Void>?
    private var timerFiresAt: NIODeadline?
    /// When the header or body timeout ends the wait; nil while no timeout runs.
    private var deadline: NIODeadline?
    /// The client channel's `autoRead` as last set (nil: not set yet), so it is set only on a change.
    private var autoReadSet: Bool?
    /// The connection left HTTP (upgrade): the session now belongs to the upgraded protocol.
    private var upgradedAway = false
    /// The client channel after an upgrade: closed if the gateway ends the session (token expiry).
    private var upgradedClient: (any Channel)?
    /// The last write to the client: the connection closes once it has gone out.
    private var lastWrite: EventLoopFuture<Void>?

    /// The HTTP codec handlers in front of this one, removed on a protocol upgrade (decoder last).
    private let httpHandlers: [any RemovableChannelHandler]
    private var upstreamHTTPHandlers: [any RemovableChannelHandler] = []

    init(adapter: HTTPAdapter, httpHandlers: [any RemovableChannelHandler]) {
        self.adapter = adapter
        self.httpHandlers = httpHandlers
        machine = HTTPProxyMachine(configuration: adapter.configuration, profile: adapter.profile)
        super.init()
    }

    override func added(context: ChannelHandlerContext) {
        if context.channel.isActive { armTimer(adapter.configuration.headerTimeout) }
    }

    override func activated(context: ChannelHandlerContext) {
        armTimer(adapter.configuration.headerTimeout)
    }

    override func read(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            deadline = nil
            run(machine.requestHead(head, clientAddress: context.remoteAddress?.ipAddress))
        case .body(let buffer):
            armTimer(adapter.configuration.bodyIdleTimeout)
            run(machine.requestBody(buffer))
        case .end:
            deadline = nil
            run(machine.requestEnd())
        }
    }

    override func connectionEnded(reason: String) {
        shutdown()
    }

    // MARK: Upstream events (same event loop)

    func upstreamRead(_ part: HTTPClientResponsePart) {
        // Writes to the client are flushed once per upstream read, not once per part.
        inUpstreamRead = true
        defer { inUpstreamRead = false }
        switch part {
        case .head(let head): run(machine.responseHead(head))
        case .body(let buffer): run(machine.responseBody(buffer))
        case .end: run(machine.responseEnd())
        }
    }

    func upstreamReadComplete() {
        guard clientNeedsFlush else { return }
        clientNeedsFlush = false
        context?.flush()
    }

    func upstreamClosed(_ channel: any Channel) {
        guard channel === upstream else { return }
        dropUpstream()
        run(machine.upstreamClosed())
    }

    /// Lets the upstream channel go. Its handlers hold this one (their events come here), so the
    /// list of them must go too, or both would keep each other alive after the connection ends.
    private func dropUpstream() {
        upstream?.close(promise: nil)
        upstream = nil
        upstreamKey = nil
        upstreamHTTPHandlers = []
    }

    func upstreamWritabilityChanged(_ channel: any Channel, _ writable: Bool) {
        // A closing, replaced upstream must not stop the client's reads.
        guard channel === upstream else { return }
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
                    // The end of a response goes out now (the upstream may be closed before its
                    // read completes); head and body parts of the same read go with it.
                    context.flush()
                    flush = false
                    clientNeedsFlush = false
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
                openSession(with: adapter.governor, token: token, connection: connection, kind: adapter.profile.kind,
                            peer: HostPort.peer(context.remoteAddress), on: context.eventLoop)
            case .closeSession(let session):
                Task { await session.close(reason: "http session switched or ended") }
            case .awaitReview(let ticket):
                reviewWait.start(ticket, for: self, on: context.eventLoop)
            case .connectUpstream(let connection, let target):
                connectUpstream(connection, target, context: context)
            case .releaseUpstream(let reusable):
                if !reusable { dropUpstream() }
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
            case .recallRefusal(let key):
                run(machine.refusalRecalled(adapter.configuration.refusals.recall(key)))
            case .rememberRefusal(let key, let refusal):
                adapter.configuration.refusals.remember(key, refusal)
            case .upgrade(let response, let request, let uri, let session):
                upgrade(response: response, request: request, uri: uri, session: session, context: context)
                return
            }
        }
        if flush {
            if inUpstreamRead {
                clientNeedsFlush = true
            } else {
                context.flush()
            }
        }
    }

    /// The upstream switched protocols: send the `101` on, then hand both connections to the
    /// installer and take the HTTP handlers out (decoders last, so bytes that came behind the
    /// `101` reach the new handlers).
    private func upgrade(response: HTTPResponseHead, request: HTTPRequestHead, uri: String, session: any GovernedSession,
                         context: ChannelHandlerContext) {
        cancelTimer()
        guard let upstream, let installer = adapter.upgradeInstaller else {
            run([.closeClient(reason: "upgrade without an installer")])
            return
        }
        let client = context.channel
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.head(response))).whenComplete { result in
            // Next tick: the upstream decoder may still be delivering the end of the 101.
            client.eventLoop.execute {
                let handler = bound.value
                let upstreamHandlers = handler.upstreamHTTPHandlers
                do {
                    try result.get()
                    try installer(client, upstream, request, response, uri, session)
                    // This handler and the upstream's go first, so nothing HTTP reaches them again.
                    handler.upstream = nil
                    handler.upstreamHTTPHandlers = []
                    handler.closed = true
                    handler.upgradedAway = true
                    handler.upgradedClient = client
                    let clientPipeline = client.pipeline.syncOperations
                    let upstreamPipeline = upstream.pipeline.syncOperations
                    if let context = handler.context { clientPipeline.removeHandler(context: context, promise: nil) }
                    for http in handler.httpHandlers { clientPipeline.removeHandler(http, promise: nil) }
                    for http in upstreamHandlers { upstreamPipeline.removeHandler(http, promise: nil) }
                } catch {
                    session.mark(.error("upgrade failed"))
                    client.close(promise: nil)
                    upstream.close(promise: nil)
                    Task { await session.close(reason: "upgrade failed") }
                }
            }
        }
    }

    private func updateReading() {
        let read = wantsRead && upstreamWritable
        guard read != autoReadSet, let context else { return }
        autoReadSet = read
        context.channel.setOption(ChannelOptions.autoRead, value: read).whenFailure { _ in }
    }

    private func armTimer(_ delay: TimeAmount) {
        guard let context, !closed else { return }
        let due = NIODeadline.now() + delay
        deadline = due
        // A scheduled timer that fires first re-checks the deadline then (`timerFiresAt` is
        // set exactly while one is scheduled).
        if let firesAt = timerFiresAt, firesAt <= due { return }
        scheduleTimer(at: due, on: context.eventLoop)
    }

    private func scheduleTimer(at due: NIODeadline, on eventLoop: any EventLoop) {
        timer?.cancel()
        timerFiresAt = due
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        timer = eventLoop.scheduleTask(deadline: due) {
            let handler = bound.value
            handler.timer = nil
            handler.timerFiresAt = nil
            handler.timerFired()
        }
    }

    private func cancelTimer() {
        deadline = nil
        timer?.cancel()
        timer = nil
        timerFiresAt = nil
    }

    private func timerFired() {
        guard let deadline, let context, !closed else { return }
        if NIODeadline.now() < deadline {
            scheduleTimer(at: deadline, on: context.eventLoop)
            return
        }
        self.deadline = nil
        timedOut()
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

    // MARK: Session events (GovernedConnectionHost)

    func sessionOpened(_ session: any GovernedSession) {
        run(machine.sessionOpened(session))
    }

    func sessionRefused(_ error: GovernorError) {
        run(machine.sessionRefused(error))
    }

    func sessionTerminated(_ reason: String) {
        terminate(reason)
    }

    func reviewDecided(_ outcome: ReviewOutcome) {
        reviewWait.settle()
        run(machine.reviewDecided(outcome))
    }

    private func connectUpstream(_ connection: ConnectionTarget, _ target: HTTPTarget, context: ChannelHandlerContext) {
        let key = (name: connection.name, target: connection.target)
        if let upstream, let upstreamKey, upstreamKey == key, upstream.isActive {
            run(machine.upstreamConnected())
            return
        }
        dropUpstream()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let request = UpstreamRequest(target: connection, host: target.host, port: target.port, negotiateTLS: false, directTLS: target.tls)
        let handlers = NIOLoopBoundBox([any RemovableChannelHandler](), eventLoop: context.eventLoop)
        openUpstream(request, with: adapter.connector, on: context.eventLoop) { channel in
            let encoder = HTTPRequestEncoder()
            let decoder = ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes))
            let upstreamHandler = UpstreamForwarder(bound)
            try channel.pipeline.syncOperations.addHandlers([encoder, decoder, upstreamHandler])
            handlers.value = [upstreamHandler, encoder, decoder]
        } connected: { _ in
            self.upstreamKey = key
            self.upstreamHTTPHandlers = handlers.value
            self.upstreamWritable = true
            self.run(self.machine.upstreamConnected())
        } failed: { error in
            self.run(self.machine.upstreamFailed(String(describing: error).prefix(160).description))
        }
    }

    /// The gateway ends the session (shutdown, revoked access): a waiting request is told why.
    private func terminate(_ reason: String) {
        if upgradedAway {
            // An exec/attach stream: closing the client ends the upgraded bridge and its upstream.
            upgradedClient?.close(promise: nil)
            upgradedClient = nil
            return
        }
        guard !closed else { return }
        let answer = machine.terminated(reason)
        if !answer.isEmpty {
            // The 503 goes out, then its closeClient action closes the connection after the write.
            run(answer)
            shutdown(withdrawing: "the gateway ended the session: \(reason)")
            return
        }
        guard let context else { return }
        context.close(promise: nil)
        shutdown()
    }

    private func shutdown(withdrawing why: String = "the client closed the connection before a decision") {
        guard !closed, !upgradedAway else { return }
        closed = true
        // Nobody will receive the decision: close the review instead of leaving it pending.
        reviewWait.withdraw(reason: why)
        cancelTimer()
        dropUpstream()
        run(machine.clientClosed())
    }
}
