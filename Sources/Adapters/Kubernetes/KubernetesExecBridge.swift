import MaskEngine
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// `kubectl exec` / `attach` after the WebSocket upgrade: the gateway is the WebSocket server to
/// kubectl and the client to the API server. Every message of the channel protocol is read:
/// stdout and stderr go through one stream masker each (exact across messages, with an idle
/// flush for interactive sessions), stdin is recorded masked, resizes are recorded and relayed,
/// the exit status is recorded. Masking failures end the stream (fail closed).
public enum KubernetesExec {
    public static let maximumMessage = 4 << 20

    /// Installs the bridge on both connections (see ``HTTPUpgradeInstaller``).
    public static func installer(recordCap: Int, idleFlush: TimeAmount = .milliseconds(50)) -> HTTPUpgradeInstaller {
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
    private let recordCap: Int
    private let idleFlush: TimeAmount
    private var client: ChannelHandlerContext?
    private var upstream: ChannelHandlerContext?
    private let stdout: SSHOutputMasker
    private let stderr: SSHOutputMasker
    private var inputRecorder: StreamMasker?
    private var recorded = 0
    private var recordCut = false
    private var flushTimer: RepeatedTask?
    private var finished = false
    private var exitStatus: ExecStatus?
    private var lastClientWrite: EventLoopFuture<Void>?
    private var lastUpstreamWrite: EventLoopFuture<Void>?

    init(session: any GovernedSession, subprotocol: ExecSubprotocol, recordCap: Int, idleFlush: TimeAmount) throws {
        self.session = session
        self.subprotocol = subprotocol
        self.recordCap = recordCap
        self.idleFlush = idleFlush
        let choice = session.masking(for: .stream)
        stdout = try SSHOutputMasker(choice: choice, idleFlush: .nanoseconds(idleFlush.nanoseconds))
        stderr = try SSHOutputMasker(choice: choice, idleFlush: .nanoseconds(idleFlush.nanoseconds))
        inputRecorder = try session.recordingEngine?.makeStreamMasker()
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
                    try relayOutput(bytes, stream: ExecStreamMessage.stdoutStream, masker: stdout)
                case .stderr(let bytes):
                    try relayOutput(bytes, stream: ExecStreamMessage.stderrStream, masker: stderr)
                case .status(let json):
                    flushMaskers(final: true)
                    exitStatus = try? ExecStatus(json: json)
                    let code = exitStatus.map { $0.success ? 0 : ($0.exitCode ?? -1) } ?? -1
                    session.mark(.exitStatus(code))
                    sendMessage(to: .client, [ExecStreamMessage.statusStream] + json)
                case .close(let stream):
                    if stream == ExecStreamMessage.stdoutStream { try drain(stdout, stream: stream) }
                    if stream == ExecStreamMessage.stderrStream { try drain(stderr, stream: stream) }
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

    private func relayOutput(_ bytes: [UInt8], stream: UInt8, masker: SSHOutputMasker) throws {
        if bytes.isEmpty {
            // The API server's first message on a stream carries no data: relay it as it is.
            sendMessage(to: .client, [stream])
            return
        }
        // Output after its stream ended cannot be scanned in order: fail closed.
        guard !drained.contains(stream) else { throw KubernetesProtocolError(.malformedClose, "output after the end of stream \(stream)") }
        let masked = try bytes.withUnsafeBytes { try masker.write($0) }
        guard !masked.isEmpty else { return }
        deliver(masked, stream: stream)
    }

    /// Ends a stream's masker once (the status, a close message and the close frame all end it).
    private var drained: Set<UInt8> = []

    private func drain(_ masker: SSHOutputMasker, stream: UInt8) throws {
        guard drained.insert(stream).inserted, !masker.failed else { return }
        let rest = try masker.finish()
        if !rest.isEmpty { deliver(rest, stream: stream) }
    }

    private func deliver(_ bytes: [UInt8], stream: UInt8) {
        sendMessage(to: .client, [stream] + bytes)
        guard recorded < recordCap else {
            if !recordCut {
                recordCut = true
                session.mark(.outputCut(atBytes: recordCap))
            }
            return
        }
        let part = Array(bytes.prefix(recordCap - recorded))
        recorded += part.count
        session.record(SessionEvent(.output, part))
    }

    private func flushMaskers(final: Bool) {
        do {
            if final {
                try drain(stdout, stream: ExecStreamMessage.stdoutStream)
                try drain(stderr, stream: ExecStreamMessage.stderrStream)
            } else {
                if !drained.contains(ExecStreamMessage.stdoutStream) {
                    let out = try stdout.idleBytes()
                    if !out.isEmpty { deliver(out, stream: ExecStreamMessage.stdoutStream) }
                }
                if !drained.contains(ExecStreamMessage.stderrStream) {
                    let err = try stderr.idleBytes()
                    if !err.isEmpty { deliver(err, stream: ExecStreamMessage.stderrStream) }
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
        guard let inputRecorder, !bytes.isEmpty else { return }
        var masked: [UInt8] = []
        do {
            try bytes.withUnsafeBytes { try inputRecorder.write($0) { masked.append(contentsOf: $0) } }
        } catch {
            self.inputRecorder = nil
            return
        }
        if !masked.isEmpty { session.record(SessionEvent(.input, masked)) }
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
        if let inputRecorder, let rest = try? inputRecorder.finish(), !rest.isEmpty {
            session.record(SessionEvent(.input, rest))
        }
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
