import MaskEngine
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// `kubectl exec` / `attach` after the WebSocket upgrade: the gateway is the WebSocket server to
/// kubectl and the client to the API server. Every message of the channel protocol is read:
/// stdout and stderr go through one stream masker each (exact across messages, with an idle
/// flush for interactive sessions), stdin is recorded masked, resizes are recorded and relayed,
/// the exit status is recorded. Masking failures end the stream (fail closed).
package enum KubernetesExec {
    package static let maximumMessage = 4 << 20

    /// Installs the bridge on both connections (see ``HTTPUpgradeInstaller``).
    package static func installer(recordCap: Int, idleFlush: TimeAmount = .milliseconds(50)) -> HTTPUpgradeInstaller {
        { client, upstream, _, response, _, session in
            guard let subprotocol = ExecSubprotocol.choose(offered: response.headers.first(name: "sec-websocket-protocol") ?? "") else {
                throw KubernetesProtocolError(.malformedStatus, "the API server chose no channel protocol the gateway reads")
            }
            let bridge = try ExecBridge(session: session, subprotocol: subprotocol, recordCap: recordCap, idleFlush: idleFlush)
            try client.pipeline.syncOperations.addHandlers([
                ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maximumMessage)),
                WebSocketFrameEncoder(),
                NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 4096, maxAccumulatedFrameSize: maximumMessage),
                ExecSideHandler(bridge: bridge, side: .client),
            ])
            try upstream.pipeline.syncOperations.addHandlers([
                ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maximumMessage)),
                WebSocketFrameEncoder(),
                NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 4096, maxAccumulatedFrameSize: maximumMessage),
                ExecSideHandler(bridge: bridge, side: .upstream),
            ])
        }
    }
}

/// The two legs of one exec stream (both on the client's event loop).
final class ExecBridge {
    enum Side { case client, upstream }

    let session: any GovernedSession
    let subprotocol: ExecSubprotocol
    private let idleFlush: TimeAmount
    private var client: ChannelHandlerContext?
    private var upstream: ChannelHandlerContext?
    /// Masking, idle flush, record cap and input recording of the two output streams.
    private let relay: TerminalRelay
    private var flushTimer: RepeatedTask?
    private var finished = false
    private var exitStatus: ExecStatus?
    private var lastClientWrite: EventLoopFuture<Void>?
    private var lastUpstreamWrite: EventLoopFuture<Void>?

    init(session: any GovernedSession, subprotocol: ExecSubprotocol, recordCap: Int, idleFlush: TimeAmount) throws {
        self.session = session
        self.subprotocol = subprotocol
        self.idleFlush = idleFlush
        let choice = session.masking(for: .stream)
        relay = try TerminalRelay(session: session, stdout: choice, stderr: choice, recordCap: recordCap,
                                  idleFlush: .nanoseconds(idleFlush.nanoseconds))
    }

    func attach(_ context: ChannelHandlerContext, side: Side) {
        switch side {
        case .client: client = context
        case .upstream: upstream = context
        }
        guard client != nil, upstream != nil, flushTimer == nil else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        flushTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: idleFlush, delay: idleFlush) { _ in
            bound.value.idleFlushTick()
        }
    }

    // MARK: Frames from kubectl

    func fromClient(_ frame: WebSocketFrame) {
        guard !finished else { return }
        switch frame.opcode {
        case .ping:
            send(to: .client, WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData))
        case .pong:
            break
        case .connectionClose:
            send(to: .upstream, WebSocketFrame(fin: true, opcode: .connectionClose, data: frame.unmaskedData), flush: true)
            finish(reason: "client closed the stream", closeClient: false)
        case .binary, .text:
            let data = Array(frame.unmaskedData.readableBytesView)
            do {
                let message = try ExecStreamMessage(message: data, protocol: subprotocol)
                switch message {
                case .stdin(let bytes): recordInput(bytes)
                case .resize(let width, let height): session.record(SessionEvent(.resize, text: "\(width)x\(height)"))
                default: break
                }
            } catch {
                // Unreadable messages are not relayed.
                session.mark(.error("unreadable client message", bytes: data.count))
                return
            }
            send(to: .upstream, WebSocketFrame(fin: true, opcode: frame.opcode, data: frame.unmaskedData))
        default:
            break
        }
    }

    // MARK: Frames from the API server

    func fromUpstream(_ frame: WebSocketFrame) {
        guard !finished else { return }
        switch frame.opcode {
        case .ping:
            send(to: .upstream, WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData))
        case .pong:
            break
        case .connectionClose:
            flushMaskers(final: true)
            send(to: .client, WebSocketFrame(fin: true, opcode: .connectionClose, data: frame.unmaskedData), flush: true)
            finish(reason: "the API server closed the stream", closeClient: true)
        case .binary:
            let data = Array(frame.unmaskedData.readableBytesView)
            let message: ExecStreamMessage
            do {
                message = try ExecStreamMessage(message: data, protocol: subprotocol)
            } catch {
                failClosed("unreadable message from the API server")
                return
            }
            do {
                switch message {
                case .stdout(let bytes):
                    try relayOutput(bytes, stream: ExecStreamMessage.stdoutStream)
                case .stderr(let bytes):
                    try relayOutput(bytes, stream: ExecStreamMessage.stderrStream)
                case .status(let json):
                    flushMaskers(final: true)
                    exitStatus = try? ExecStatus(json: json)
                    let code = exitStatus.map { $0.success ? 0 : ($0.exitCode ?? -1) } ?? -1
                    session.mark(.exitStatus(code))
                    sendMessage(to: .client, [ExecStreamMessage.statusStream] + json)
                case .close(let stream):
                    if stream == ExecStreamMessage.stdoutStream || stream == ExecStreamMessage.stderrStream { try drain(stream) }
                    sendMessage(to: .client, data)
                default:
                    sendMessage(to: .client, data)
                }
            } catch {
                failClosed("output could not be masked")
            }
        case .text:
            failClosed("text messages cannot be read on \(subprotocol.rawValue)")
        default:
            break
        }
    }

    func sideClosed(_ side: Side) {
        guard !finished else { return }
        if side == .upstream { flushMaskers(final: true) }
        finish(reason: side == .client ? "client disconnected" : "the API server disconnected", closeClient: true)
    }

    // MARK: Internals

    private static func terminalStream(_ stream: UInt8) -> TerminalRelay.Stream {
        stream == ExecStreamMessage.stderrStream ? .stderr : .stdout
    }

    private func relayOutput(_ bytes: [UInt8], stream: UInt8) throws {
        if bytes.isEmpty {
            // The API server's first message on a stream carries no data: relay it as it is.
            sendMessage(to: .client, [stream])
            return
        }
        // Output after its stream ended cannot be scanned in order: the relay throws (fail closed).
        let masked = try relay.output(bytes, on: Self.terminalStream(stream), now: .now)
        if !masked.isEmpty { sendMessage(to: .client, [stream] + masked) }
    }

    /// Ends a stream once (the status, a close message and the close frame all end it).
    private func drain(_ stream: UInt8) throws {
        let rest = try relay.finish(Self.terminalStream(stream))
        if !rest.isEmpty { sendMessage(to: .client, [stream] + rest) }
    }

    private func flushMaskers(final: Bool) {
        do {
            if final {
                try drain(ExecStreamMessage.stdoutStream)
                try drain(ExecStreamMessage.stderrStream)
            } else {
                for (stream, bytes) in try relay.idle(now: .now) {
                    sendMessage(to: .client, [stream == .stderr ? ExecStreamMessage.stderrStream : ExecStreamMessage.stdoutStream] + bytes)
                }
            }
            client?.flush()
        } catch {
            failClosed("output could not be masked")
        }
    }

    private func idleFlushTick() {
        guard !finished else { return }
        flushMaskers(final: false)
    }

    private func recordInput(_ bytes: [UInt8]) {
        relay.recordInput(bytes, now: .now)
    }

    /// Fail closed: the user gets a Status saying why, the stream ends, nothing unscanned leaves.
    private func failClosed(_ reason: String) {
        session.mark(.error(reason))
        sendMessage(to: .client, [ExecStreamMessage.statusStream] + ExecStatus.failureStatus(message: "sluice: \(reason)", code: 500, reason: "InternalError"))
        var code = ByteBuffer()
        code.writeInteger(UInt16(1011))
        send(to: .client, WebSocketFrame(fin: true, opcode: .connectionClose, data: code), flush: true)
        finish(reason: reason, closeClient: true)
    }

    private func sendMessage(to side: Side, _ bytes: [UInt8]) {
        send(to: side, WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: bytes)))
    }

    private func send(to side: Side, _ frame: WebSocketFrame, flush: Bool = true) {
        var frame = frame
        let context: ChannelHandlerContext?
        switch side {
        case .client:
            context = client
        case .upstream:
            context = upstream
            frame.maskKey = .random()   // a client's frames are masked (RFC 6455 §5.3)
        }
        guard let context else { return }
        let written = context.write(NIOAny(frame))
        if side == .client { lastClientWrite = written } else { lastUpstreamWrite = written }
        if flush { context.flush() }
    }

    private func finish(reason: String, closeClient: Bool) {
        guard !finished else { return }
        finished = true
        flushTimer?.cancel()
        flushTimer = nil
        relay.finishInput()
        // Close once what was written has gone out (the close frame included).
        if let clientChannel = client?.channel, closeClient {
            (lastClientWrite ?? clientChannel.eventLoop.makeSucceededVoidFuture()).whenComplete { _ in clientChannel.close(promise: nil) }
        }
        if let upstreamChannel = upstream?.channel {
            (lastUpstreamWrite ?? upstreamChannel.eventLoop.makeSucceededVoidFuture()).whenComplete { _ in upstreamChannel.close(promise: nil) }
        }
        let session = self.session
        Task { await session.close(reason: reason) }
    }
}

/// One side's handler: frames in go to the bridge; closes end the bridge.
final class ExecSideHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let bridge: ExecBridge
    private let side: ExecBridge.Side

    init(bridge: ExecBridge, side: ExecBridge.Side) {
        self.bridge = bridge
        self.side = side
    }

    func handlerAdded(context: ChannelHandlerContext) {
        bridge.attach(context, side: side)
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch side {
        case .client: bridge.fromClient(frame)
        case .upstream: bridge.fromUpstream(frame)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        bridge.sideClosed(side)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        bridge.sideClosed(side)
        context.close(promise: nil)
    }
}
