import MaskEngine
import NIOCore

/// Puts TLS in front of a client channel (called on its event loop, right after `S` is written).
package typealias ClientTLSUpgrade = @Sendable (any Channel) throws -> Void

/// Maps the cancel keys the gateway hands to clients to the upstream backends' keys.
package final class PostgresCancelRegistry: Sendable {
    struct Entry: Sendable {
        var upstream: PostgresProxyMachine.CancelKey
        var target: ConnectionTarget
        var host: String
        var port: Int
    }

    private let entries = Locked<[PostgresProxyMachine.CancelKey: Entry]>([:])
    package static let maximumEntries = 1_000_000

    package init() {}

    func register(_ client: PostgresProxyMachine.CancelKey, _ entry: Entry) {
        entries.withLock { if $0.count < Self.maximumEntries { $0[client] = entry } }
    }

    func remove(_ client: PostgresProxyMachine.CancelKey) {
        entries.withLock { _ = $0.removeValue(forKey: client) }
    }

    func lookup(_ client: PostgresProxyMachine.CancelKey) -> Entry? {
        entries.withLock { $0[client] }
    }

    package var count: Int { entries.withLock { $0.count } }
}

/// Everything the Postgres listener's child channels share.
package struct PostgresAdapter: Sendable {
    package let governor: any Governor
    package let configuration: PostgresAdapterConfiguration
    package let connector: UpstreamConnector
    package let tlsUpgrade: ClientTLSUpgrade?
    package let cancelRegistry: PostgresCancelRegistry
    /// Bounds connections that have not logged in yet (per source address and in all).
    package let admission: ConnectionAdmission?

    package init(governor: any Governor, configuration: PostgresAdapterConfiguration, connector: @escaping UpstreamConnector,
                tlsUpgrade: ClientTLSUpgrade?, cancelRegistry: PostgresCancelRegistry = PostgresCancelRegistry(),
                admission: ConnectionAdmission? = nil) {
        self.governor = governor
        var configuration = configuration
        configuration.clientTLS = tlsUpgrade != nil && configuration.clientTLS
        self.configuration = configuration
        self.connector = connector
        self.tlsUpgrade = tlsUpgrade
        self.cancelRegistry = cancelRegistry
        self.admission = admission
    }

    /// The handler for one accepted client connection.
    package func makeHandler() -> PostgresFrontendHandler {
        PostgresFrontendHandler(adapter: self)
    }
}

/// The client-facing handler: feeds bytes to the machine and performs its actions; owns the
/// upstream channel of the session.
package final class PostgresFrontendHandler: GovernedFrontend<ByteBuffer, ByteBuffer>, GovernedConnectionHost,
                                             UpstreamEventSink {
    let adapter: PostgresAdapter
    private var machine: PostgresProxyMachine
    private var registeredKey: PostgresProxyMachine.CancelKey?
    private var startupDeadline: Scheduled<Void>?
    /// The source address counted in `adapter.admission` until the session opens or the connection ends.
    private var admittedSource: String?

    init(adapter: PostgresAdapter) {
        self.adapter = adapter
        var generator = SystemRandomNumberGenerator()
        let key = PostgresProxyMachine.CancelKey(processID: Int32.random(in: 1...Int32.max, using: &generator),
                                                 secretKey: Int32.random(in: Int32.min...Int32.max, using: &generator))
        machine = PostgresProxyMachine(configuration: adapter.configuration, clientKey: key)
        super.init()
    }

    override func removed() {
        startupDeadline?.cancel()
        startupDeadline = nil
    }

    override func added(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context: context) }
        // An unauthenticated connection holds a descriptor: it gets `startupTimeout` to log in.
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let (seconds, attoseconds) = adapter.configuration.startupTimeout.components
        let delay = TimeAmount.milliseconds(min(seconds, 86_400) * 1000 + attoseconds / 1_000_000_000_000_000)
        startupDeadline = context.eventLoop.scheduleTask(in: delay) {
            let handler = bound.value
            guard !handler.closed else { return }
            handler.run(handler.machine.startupDeadlinePassed())
        }
    }

    override func activated(context: ChannelHandlerContext) {
        admit(context: context)
    }

    /// Counts this connection as not logged in yet; over the limit it is told and closed at once.
    private func admit(context: ChannelHandlerContext) {
        guard let admission = adapter.admission, admittedSource == nil, !closed else { return }
        let source = context.remoteAddress?.ipAddress ?? "?"
        if let refusal = admission.admit(source) {
            var out = ByteBuffer()
            PostgresMessages.error(sqlState: "53300", message: refusal.message, severity: "FATAL").write(into: &out)
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            shutdown(reason: "refused: \(refusal)")
            return
        }
        admittedSource = source
    }

    private func releaseAdmission() {
        if let admittedSource { adapter.admission?.release(admittedSource) }
        admittedSource = nil
    }

    override func read(_ part: ByteBuffer, context: ChannelHandlerContext) {
        guard !closed else { return }
        var bytes = part
        run(machine.clientBytes(&bytes))
    }

    override func connectionEnded(reason: String) {
        shutdown(reason: reason)
    }

    // MARK: Upstream events (on the same event loop)

    func upstreamRead(_ bytes: ByteBuffer) {
        var bytes = bytes
        run(machine.upstreamBytes(&bytes))
    }

    func upstreamClosed(_ channel: any Channel) {
        guard !closed else { return }
        if let context {
            var out = ByteBuffer()
            PostgresMessages.error(sqlState: "57P01", message: "the database closed the connection", severity: "FATAL").write(into: &out)
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
        shutdown(reason: "upstream closed")
    }

    func upstreamWritabilityChanged(_ channel: any Channel, _ writable: Bool) {
        context?.channel.setOption(ChannelOptions.autoRead, value: writable).whenFailure { _ in }
    }

    // MARK: Actions

    private func run(_ actions: [PostgresProxyMachine.Action]) {
        guard let context else { return }
        for action in actions {
            switch action {
            case .sendToClient(let buffer):
                context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            case .sendToUpstream(let buffer):
                upstream?.writeAndFlush(buffer, promise: nil)
            case .startClientTLS:
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "S")), promise: nil)
                do {
                    try adapter.tlsUpgrade?(context.channel)
                } catch {
                    shutdown(reason: "TLS setup failed")
                }
            case .openSession(let token, let connection):
                openSession(with: adapter.governor, token: token, connection: connection, kind: .postgres,
                            peer: HostPort.peer(context.remoteAddress), on: context.eventLoop)
            case .connectUpstream(let target):
                connectUpstream(target, context: context)
            case .cancel(let processID, let secretKey):
                forwardCancel(PostgresProxyMachine.CancelKey(processID: processID, secretKey: secretKey), eventLoop: context.eventLoop)
            case .registerCancelKey(let client, let upstreamKey):
                if let target = machine.session?.connection, let address = HostPort(target.target) {
                    adapter.cancelRegistry.register(client, .init(upstream: upstreamKey, target: target, host: address.host, port: address.port))
                    registeredKey = client
                }
            case .awaitReview(let ticket):
                reviewWait.start(ticket, for: self, on: context.eventLoop)
            case .close(let reason):
                shutdown(reason: reason)
            }
        }
    }

    // MARK: Session events (GovernedConnectionHost)

    func sessionOpened(_ session: any GovernedSession) {
        releaseAdmission()
        run(machine.sessionOpened(session))
    }

    func sessionRefused(_ error: GovernorError) {
        run(machine.sessionRefused(error))
    }

    func sessionTerminated(_ reason: String) {
        terminate(reason: reason)
    }

    func reviewDecided(_ outcome: ReviewOutcome) {
        reviewWait.settle()
        run(machine.reviewDecided(outcome))
    }

    private func connectUpstream(_ target: ConnectionTarget, context: ChannelHandlerContext) {
        guard let address = HostPort(target.target) else {
            run(machine.upstreamFailed("target is not HOST:PORT"))
            return
        }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let request = UpstreamRequest(target: target, host: address.host, port: address.port, negotiateTLS: true)
        openUpstream(request, with: adapter.connector, on: context.eventLoop) { channel in
            try channel.pipeline.syncOperations.addHandler(UpstreamForwarder(bound))
        } connected: { _ in
            self.run(self.machine.upstreamConnected())
        } failed: { error in
            self.run(self.machine.upstreamFailed("connect failed (\(error))"))
        }
    }

    private func forwardCancel(_ key: PostgresProxyMachine.CancelKey, eventLoop: any EventLoop) {
        guard let entry = adapter.cancelRegistry.lookup(key) else { return }
        let packet = PostgresMessages.cancelRequest(processID: entry.upstream.processID, secretKey: entry.upstream.secretKey)
        let request = UpstreamRequest(target: entry.target, host: entry.host, port: entry.port, negotiateTLS: false)
        adapter.connector(eventLoop, request) { channel in channel.eventLoop.makeSucceededVoidFuture() }
            .whenSuccess { channel in
                channel.writeAndFlush(packet).whenComplete { _ in channel.close(promise: nil) }
            }
    }

    /// The gateway ends the session (shutdown, revoked access): tell the client, then close.
    private func terminate(reason: String) {
        guard !closed, let context else { return }
        var out = ByteBuffer()
        PostgresMessages.error(sqlState: "57P01", message: "terminating connection: \(reason)", severity: "FATAL").write(into: &out)
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        shutdown(reason: reason)
    }

    private func shutdown(reason: String) {
        guard !closed else { return }
        closed = true
        reviewWait.withdraw(reason: "the connection ended before a decision (\(reason))")
        releaseAdmission()
        startupDeadline?.cancel()
        startupDeadline = nil
        if let registeredKey { adapter.cancelRegistry.remove(registeredKey) }
        upstream?.close(promise: nil)
        upstream = nil
        if let channel = context?.channel {
            // Close after what was written (an error message) has gone out.
            channel.writeAndFlush(ByteBuffer()).whenComplete { _ in channel.close(promise: nil) }
        }
        if let session = machine.session {
            Task { await session.close(reason: reason) }
        }
    }
}
