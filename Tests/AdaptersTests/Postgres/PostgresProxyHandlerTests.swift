import MaskEngine
import NIOCore
import NIOEmbedded
import Testing
@testable import Adapters

/// The NIO handler with in-memory channels on both sides: a client and a fake upstream server.
@Suite struct PostgresProxyHandlerTests {
    func makeGovernor(rules: [@Sendable (Command) -> Decision?] = [],
                      reviewOutcome: ReviewOutcome? = .approved(by: ["approver"])) -> InMemoryGovernor {
        InMemoryGovernor(
            tokens: ["tok": Identity(user: "alice", groups: ["eng"], issuer: "test")],
            connections: [ConnectionTarget(name: "db", kind: .postgres, target: "127.0.0.1:5432", database: "app",
                                           credential: Credential(username: "app"))],
            engine: testEngine, rules: rules, reviewOutcome: reviewOutcome)
    }

    func waitForWrite(_ channel: NIOAsyncTestingChannel) async throws -> ByteBuffer {
        try await channel.waitForOutboundWrite(as: ByteBuffer.self)
    }

    /// Connects `client`, logs in with the token `tok` and answers the gateway's upstream login
    /// on `upstream`: the connection is then relaying.
    func logIn(_ client: NIOAsyncTestingChannel, upstream: NIOAsyncTestingChannel) async throws {
        try await client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        try await client.writeInbound(PostgresMessages.startup([("user", "alice"), ("database", "db")]))
        _ = try await waitForWrite(client)
        try await client.writeInbound(Wire.password("tok"))
        _ = try await waitForWrite(upstream)
        var ready = ByteBuffer()
        for var message in [Wire.authentication(0), Wire.ready()] { ready.writeBuffer(&message) }
        try await upstream.writeInbound(ready)
        _ = try await waitForWrite(client)
    }

    @Test func loginRelayAndMaskingThroughTheHandler() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let upstream = NIOAsyncTestingChannel(loop: loop)
        let governor = makeGovernor()
        let adapter = PostgresAdapter(governor: governor, configuration: PostgresAdapterConfiguration(),
                                      connector: { eventLoop, _, initializer in
                                          initializer(upstream).map { upstream }
                                      }, tlsUpgrade: nil)
        let client = try await NIOAsyncTestingChannel(loop: loop) { channel in
            try channel.pipeline.syncOperations.addHandler(adapter.makeHandler())
        }
        try await client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()

        try await client.writeInbound(PostgresMessages.startup([("user", "alice"), ("database", "db")]))
        #expect(try Wire.types([try await waitForWrite(client)]) == "R")
        try await client.writeInbound(Wire.password("tok"))

        // The gateway logs in upstream with the connection's credential.
        var startup = try await waitForWrite(upstream)
        #expect(startup.readInteger(as: Int32.self) == Int32(startup.readableBytes + 4))
        #expect(startup.readInteger(as: Int32.self) == PostgresWire.protocolVersion3)
        #expect(String(buffer: startup).contains("user\u{0}app\u{0}"))

        var ready = ByteBuffer()
        for var message in [Wire.authentication(0), Wire.message("K") { $0.writeInteger(Int32(1)); $0.writeInteger(Int32(2)) }, Wire.ready()] {
            ready.writeBuffer(&message)
        }
        try await upstream.writeInbound(ready)
        #expect(try Wire.types([try await waitForWrite(client)]) == "RKZ")

        try await client.writeInbound(Wire.query("select email from customers"))
        #expect(try Wire.types([try await waitForWrite(upstream)]) == "Q")
        var reply = ByteBuffer()
        for var message in [Wire.rowDescription([("email", 25, 0)]), Wire.text("jane.doe@example.com"), Wire.complete("SELECT 1"), Wire.ready()] {
            reply.writeBuffer(&message)
        }
        try await upstream.writeInbound(reply)
        let messages = try Wire.decode([try await waitForWrite(client)])
        #expect(Wire.dataRowValues(messages[1]) == ["[EMAIL]"])

        // The upstream going away tells the client and closes it.
        try await upstream.close()
        let goodbye = try Wire.decode([try await waitForWrite(client)])
        #expect(try PostgresMessages.parseFields(goodbye[0].body)["C"] == "57P01")
    }

    /// A statement held for review whose client leaves is withdrawn, not left for approvers to
    /// decide for nobody (the HTTP adapter did this; the shared ``ReviewWait`` now does it for both).
    @Test func aHeldStatementsReviewIsWithdrawnWhenTheClientLeaves() async throws {
        let withdrawn = Locked<String?>(nil)
        let ticket = ReviewTicket(id: "r-held", approveHint: "sluice reviews approve r-held",
                                  withdraw: { reason in withdrawn.withLock { $0 = reason } }) {
            try? await Task.sleep(for: .seconds(30))
            return .timedOut
        }
        let governor = makeGovernor(rules: [{ $0.text.lowercased().hasPrefix("delete") ? .review(ticket) : nil }], reviewOutcome: nil)
        let loop = NIOAsyncTestingEventLoop()
        let upstream = NIOAsyncTestingChannel(loop: loop)
        let adapter = PostgresAdapter(governor: governor, configuration: PostgresAdapterConfiguration(),
                                      connector: { _, _, initializer in initializer(upstream).map { upstream } }, tlsUpgrade: nil)
        let client = try await NIOAsyncTestingChannel(loop: loop) { channel in
            try channel.pipeline.syncOperations.addHandler(adapter.makeHandler())
        }
        try await logIn(client, upstream: upstream)

        try await client.writeInbound(Wire.query("delete from customers"))
        #expect(try Wire.types([try await waitForWrite(client)]) == "N")
        let sent = try await upstream.readOutbound(as: ByteBuffer.self)
        #expect(sent == nil, "\(sent.map { String(buffer: $0) } ?? "")")
        #expect(withdrawn.withLock { $0 } == nil)

        try await client.close()
        for _ in 0..<100 where withdrawn.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(10)) }
        #expect(withdrawn.withLock { $0 }?.contains("ended before a decision") == true)
    }

    /// A handler that kept its context after removal stayed alive with every buffer of its
    /// connection (issue 14: 57 MB per `repeat(…)` query, never released).
    @Test func aClosedConnectionReleasesItsHandlerAndBuffers() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let upstream = NIOAsyncTestingChannel(loop: loop)
        let adapter = PostgresAdapter(governor: makeGovernor(), configuration: PostgresAdapterConfiguration(),
                                      connector: { _, _, initializer in initializer(upstream).map { upstream } },
                                      tlsUpgrade: nil)
        let released = WeakHandler()
        let client = try await NIOAsyncTestingChannel(loop: loop) { channel in
            let handler = adapter.makeHandler()
            released.handler = handler
            try channel.pipeline.syncOperations.addHandler(handler)
        }
        try await logIn(client, upstream: upstream)
        #expect(released.handler != nil)

        try await client.close()
        await loop.run()
        #expect(released.handler == nil)
    }

    @Test func aSourceOverItsShareOfConnectionsStillLoggingInIsRefusedAtOnce() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let admission = ConnectionAdmission(limits: .init(perSource: 1, total: 10))
        let adapter = PostgresAdapter(governor: makeGovernor(), configuration: PostgresAdapterConfiguration(),
                                      connector: { eventLoop, _, _ in eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) },
                                      tlsUpgrade: nil, admission: admission)
        func connect() async throws -> NIOAsyncTestingChannel {
            let channel = try await NIOAsyncTestingChannel(loop: loop) { channel in
                try channel.pipeline.syncOperations.addHandler(adapter.makeHandler())
            }
            try await channel.connect(to: SocketAddress(ipAddress: "192.0.2.1", port: 1)).get()
            return channel
        }
        let first = try await connect()
        #expect(admission.counts.waiting == 1)
        let second = try await connect()
        let refusal = try Wire.decode([try await waitForWrite(second)])
        #expect(try PostgresMessages.parseFields(refusal[0].body)["C"] == "53300")
        try await second.closeFuture.get()
        // The first leaving frees its place.
        try await first.close()
        await loop.run()
        #expect(admission.counts.waiting == 0)
        let third = try await connect()
        #expect(admission.counts.waiting == 1)
        try await third.close()
    }

    @Test func garbageStartupGetsAnErrorAndAClosedConnection() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let adapter = PostgresAdapter(governor: makeGovernor(), configuration: PostgresAdapterConfiguration(),
                                      connector: { eventLoop, _, _ in eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) },
                                      tlsUpgrade: nil)
        let client = try await NIOAsyncTestingChannel(loop: loop) { channel in
            try channel.pipeline.syncOperations.addHandler(adapter.makeHandler())
        }
        try await client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        try await client.writeInbound(ByteBuffer(bytes: [0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef]))
        let error = try Wire.decode([try await waitForWrite(client)])
        #expect(try PostgresMessages.parseFields(error[0].body)["C"] == "08P01")
        try await client.closeFuture.get()
    }

    @Test func aClientThatNeverLogsInIsClosedAtTheStartupDeadline() async throws {
        let loop = NIOAsyncTestingEventLoop()
        var configuration = PostgresAdapterConfiguration()
        configuration.startupTimeout = .seconds(3)
        let adapter = PostgresAdapter(governor: makeGovernor(), configuration: configuration,
                                      connector: { eventLoop, _, _ in eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) },
                                      tlsUpgrade: nil)
        let client = try await NIOAsyncTestingChannel(loop: loop) { channel in
            try channel.pipeline.syncOperations.addHandler(adapter.makeHandler())
        }
        try await client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        // The startup packet, then nothing (a client stuck at the password prompt, or a slowloris).
        try await client.writeInbound(PostgresMessages.startup([("user", "alice"), ("database", "db")]))
        #expect(try Wire.types([try await waitForWrite(client)]) == "R")
        await loop.advanceTime(by: .seconds(2))
        #expect(client.isActive)
        await loop.advanceTime(by: .seconds(1))
        let error = try Wire.decode([try await waitForWrite(client)])
        let fields = try PostgresMessages.parseFields(error[0].body)
        #expect(fields["C"] == "57014")
        #expect(fields["S"] == "FATAL")
        #expect(fields["M"]?.contains("timeout") == true)
        try await client.closeFuture.get()
    }

    @Test func aLoggedInSessionIsNotTouchedByTheStartupDeadline() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let upstream = NIOAsyncTestingChannel(loop: loop)
        var configuration = PostgresAdapterConfiguration()
        configuration.startupTimeout = .seconds(3)
        let adapter = PostgresAdapter(governor: makeGovernor(), configuration: configuration,
                                      connector: { _, _, initializer in initializer(upstream).map { upstream } }, tlsUpgrade: nil)
        let client = try await NIOAsyncTestingChannel(loop: loop) { channel in
            try channel.pipeline.syncOperations.addHandler(adapter.makeHandler())
        }
        try await client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        try await client.writeInbound(PostgresMessages.startup([("user", "alice"), ("database", "db")]))
        _ = try await waitForWrite(client)
        try await client.writeInbound(Wire.password("tok"))
        _ = try await waitForWrite(upstream)  // the gateway's own login upstream: the token was accepted
        await loop.advanceTime(by: .seconds(60))
        #expect(client.isActive)
        #expect(try await client.readOutbound(as: ByteBuffer.self) == nil)
    }
}

/// Watches a handler without keeping it: set once on the test's event loop, read after it ran.
private final class WeakHandler: @unchecked Sendable {
    weak var handler: PostgresFrontendHandler?
}
