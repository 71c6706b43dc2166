import MaskEngine

/// What a user asked an SSH session channel to run.
package enum SSHRequest: Sendable, Equatable {
    case exec(String)
    case shell
    case subsystem(String)

    /// How the guardrails see it.
    package var command: Command {
        switch self {
        case .exec(let text): SSHCommands.exec(text)
        case .shell: Command(text: "shell", classes: ["shell_session"])
        case .subsystem(let name): SSHCommands.subsystem(name)
        }
    }

    /// A file transfer (SFTP, SCP): a binary protocol relayed byte for byte, recorded by file
    /// name and size.
    package var isTransfer: Bool {
        switch self {
        case .subsystem: true
        case .exec(let text): SSHCommands.exec(text).classes.contains("scp")
        case .shell: false
        }
    }
}

/// A terminal the client asked for.
package struct SSHTerminal: Sendable, Equatable {
    package var term: String
    package var columns: Int
    package var rows: Int

    package init(term: String, columns: Int, rows: Int) {
        self.term = term
        self.columns = columns
        self.rows = rows
    }
}

/// One user's SSH session channel through the gateway, sans-IO: it decides the channel's
/// request (exec, shell, subsystem) and every line typed in a shell with a terminal, holds
/// reviews without blocking anything, masks and records the output, orders the end of the
/// streams (EOF, exit status) and decides port forwards. A driver (the libssh transport in
/// Gateway) feeds it events and performs the actions it returns, in order.
///
/// Ordering contract for the driver: bytes of `.toUpstream`, `.toClient` and `.toClientStderr`
/// are queued and written in order, within the channels' windows; `.sendUpstreamEOF` goes after
/// every `.toUpstream` byte before it; `.exit` goes after every byte queued for the client
/// before it, then the client channel gets EOF and is closed. `clientEOF()` is reported only
/// once the driver holds no unread client bytes, `upstreamEOF(now:)` once it holds no unread
/// upstream bytes.
package struct SSHSessionMachine {
    package enum Action {
        case toClient([UInt8])
        case toClientStderr([UInt8])
        case toUpstream([UInt8])
        /// Connect the gateway's own session to the target and open a channel running `request`
        /// (with this terminal and environment); report `upstreamOpened()` or `upstreamFailed(_:)`.
        case openUpstream(SSHRequest, terminal: SSHTerminal?, environment: [(String, String)])
        case resizeUpstream(columns: Int, rows: Int)
        case sendUpstreamEOF
        case closeUpstream
        /// Await the ticket's outcome off this machine and report it with `reviewDecided(_:_:now:)`.
        case awaitReview(ReviewTicket)
        /// Send the exit status (when known) and signal (when one ended the command), then EOF,
        /// then close the client channel.
        case exit(status: Int?, signal: String?)
    }

    /// What a port forward request gets.
    package enum ForwardAnswer {
        case accept
        /// Accepted, but nothing is relayed until the review is approved (libssh answers a
        /// channel open before the callback returns, so a held forward is an open channel that
        /// carries no byte until approved, and is closed if not).
        case hold(ReviewTicket)
        case refuse
    }

    package struct Configuration: Sendable {
        package var recordCap: Int
        package var idleFlush: Duration
        package var forwardLimit: Int

        package init(recordCap: Int = 1 << 20, idleFlush: Duration = .milliseconds(50), forwardLimit: Int = 64) {
            self.recordCap = recordCap
            self.idleFlush = idleFlush
            self.forwardLimit = forwardLimit
        }
    }

    private enum State {
        /// Terminal and environment requests may come; then one request.
        case awaitingRequest
        /// The request is held for review (input typed meanwhile is queued and recorded).
        case reviewing(Relay, ticket: String)
        /// The upstream channel is being opened.
        case opening(Relay)
        case relaying(Relay)
        /// The exit went out (or the session was refused); nothing more is relayed.
        case done
    }

    /// The state of a running channel.
    private struct Relay {
        var request: SSHRequest
        var output: TerminalRelay
        var transfer: SFTPObserver?
        /// Typed-line guardrails: shells with a terminal.
        var typed: TypedLine?
        /// A typed line waiting for its review: its Enter is held.
        var heldLine: String?
        var upstreamEOF = false
        var exitStatus: Int?
        var exitSignal: String?
    }

    package let session: any GovernedSession
    package let configuration: Configuration
    private var state = State.awaitingRequest
    private var terminal: SSHTerminal?
    private var environment: [(String, String)] = []
    private var clientEOF = false
    private var upstreamEOFSent = false
    /// Why the session ended badly (the record's end reason); nil for a normal end.
    package private(set) var failure: String?
    private var forwardDecisions: [String: Bool] = [:]
    private var heldForwards: [String: String] = [:]
    package private(set) var openForwards = 0

    package init(session: any GovernedSession, configuration: Configuration = Configuration()) {
        self.session = session
        self.configuration = configuration
    }

    /// Environment variables passed to the target; others are refused.
    package static func acceptsEnvironment(_ name: String) -> Bool {
        ["LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ"].contains(name) || name.hasPrefix("LC_")
    }

    /// Whether the channel has ended (exit sent or refused).
    package var isDone: Bool { if case .done = state { true } else { false } }

    /// The end reason for the session record.
    package var endReason: String { failure ?? "ssh session ended" }

    // MARK: Channel requests

    /// A `pty-req`: accepted before the channel's request.
    package mutating func terminalRequested(_ requested: SSHTerminal) -> Bool {
        guard case .awaitingRequest = state else { return false }
        terminal = requested
        return true
    }

    /// An `env` request: only locale and terminal variables are passed on.
    package mutating func environmentRequested(name: String, value: String) -> Bool {
        guard case .awaitingRequest = state, Self.acceptsEnvironment(name), environment.count < 64 else { return false }
        environment.append((name, value))
        return true
    }

    /// The channel's one request (a second is refused: `accepted` false). The request is
    /// decided now: allowed (open upstream), blocked (told, exit 126) or held for review.
    package mutating func requested(_ request: SSHRequest, now: ContinuousClock.Instant) -> (accepted: Bool, actions: [Action]) {
        guard case .awaitingRequest = state else { return (false, []) }
        if case .exec(let text) = request { session.record(SessionEvent(.input, text: text)) }
        let decision = session.decide(request.command)
        if case .block(let message) = decision {
            return (true, refuse("sluice: blocked: \(message)"))
        }
        let relay: Relay
        do {
            relay = try makeRelay(request)
        } catch {
            failure = "the masking engine could not start (\(error))"
            session.mark(.error("the masking engine could not start"))
            return (true, finish(told: "sluice: the gateway cannot mask this session; nothing was run", status: 255))
        }
        if case .review(let ticket) = decision {
            state = .reviewing(relay, ticket: ticket.id)
            return (true, [.toClientStderr(Self.line(ReviewWording.held(ticket))), .awaitReview(ticket)])
        }
        state = .opening(relay)
        return (true, [.openUpstream(request, terminal: terminal, environment: environment)])
    }

    /// Masking and recording for the request: a file transfer's stdout is relayed as it is
    /// (masking would corrupt it) and recorded by file name and size.
    private func makeRelay(_ request: SSHRequest) throws -> Relay {
        let transfer = request.isTransfer
        let stream = session.masking(for: .stream)
        let output = try TerminalRelay(session: session, stdout: transfer ? .unmasked : stream, stderr: stream,
                                       recordCap: configuration.recordCap, idleFlush: configuration.idleFlush,
                                       recordsStdout: !transfer)
        var typed: TypedLine?
        if case .shell = request, terminal != nil { typed = TypedLine() }
        return Relay(request: request, output: output, transfer: transfer ? SFTPObserver() : nil, typed: typed)
    }

    /// A review this machine asked for was decided.
    package mutating func reviewDecided(_ id: String, _ outcome: ReviewOutcome, now: ContinuousClock.Instant) -> [Action] {
        switch state {
        case .reviewing(let relay, let ticket) where ticket == id:
            if let refusal = ReviewWording.refusal(outcome) {
                return refuse("sluice: \(refusal)")
            }
            state = .opening(relay)
            return [.openUpstream(relay.request, terminal: terminal, environment: environment)]
        case .relaying(var relay) where relay.heldLine == id:
            relay.heldLine = nil
            var actions: [Action] = []
            if case .approved = outcome {
                actions = [.toClient(Self.line("sluice: " + ReviewWording.decided(outcome))), .toUpstream([0x0d])]
            } else {
                // Denied or timed out: the typed line is erased (Ctrl-U) instead of run.
                actions = [.toClient(Self.line("sluice: " + (ReviewWording.refusal(outcome) ?? "refused"))), .toUpstream([0x15, 0x0d])]
            }
            state = .relaying(relay)
            return actions
        default:
            return []
        }
    }

    /// The upstream channel runs the request: relaying starts.
    package mutating func upstreamOpened(now: ContinuousClock.Instant) -> [Action] {
        guard case .opening(let relay) = state else { return [] }
        state = .relaying(relay)
        var actions: [Action] = []
        if let terminal { session.record(SessionEvent(.resize, text: "\(terminal.columns)x\(terminal.rows)")) }
        if clientEOF { actions += sendUpstreamEOF() }
        return actions
    }

    /// The upstream could not be reached, refused the key or the request.
    package mutating func upstreamFailed(_ reason: String) -> [Action] {
        let name = session.connection.name
        session.reportUpstreamFailure(reason)
        session.mark(.upstreamError(String(reason.prefix(200))))
        failure = reason
        return finish(told: "sluice: cannot reach \(name): \(reason)", status: 255)
    }

    // MARK: Client

    /// Bytes the user typed or piped in. Returns how many were taken: fewer than given while a
    /// typed line waits for its review (the driver keeps the rest and offers it again after
    /// `reviewDecided`).
    package mutating func clientData(_ bytes: UnsafeRawBufferPointer, now: ContinuousClock.Instant) -> (taken: Int, actions: [Action]) {
        guard !bytes.isEmpty else { return (0, []) }
        switch state {
        case .awaitingRequest, .done:
            return (bytes.count, [])
        case .reviewing(var relay, _), .opening(var relay):
            // Input before the command runs goes up once it does (the driver queues it),
            // recorded like any input (masked; a transfer's by file name and size).
            if relay.transfer != nil {
                relay.transfer!.clientBytes(bytes)
                if case .reviewing(_, let ticket) = state { state = .reviewing(relay, ticket: ticket) } else { state = .opening(relay) }
            } else {
                relay.output.recordInput(bytes, now: now)
            }
            return (bytes.count, [.toUpstream(Array(bytes))])
        case .relaying(var relay):
            defer { state = .relaying(relay) }
            if relay.heldLine != nil { return (0, []) }
            var actions: [Action] = []
            var taken = bytes.count
            if relay.typed != nil {
                var forward: [UInt8] = []
                var lineStart = 0
                scan: for (index, byte) in bytes.enumerated() {
                    for event in relay.typed!.feed(CollectionOfOne(byte)) {
                        guard case .line(let line) = event, !line.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
                        switch session.decide(SSHCommands.shellLine(line)) {
                        case .allow:
                            continue
                        case .block(let message):
                            // Erase the typed line in the shell (Ctrl-U) instead of running it.
                            forward += bytes[lineStart..<index]
                            forward += [0x15, 0x0d]
                            actions.append(.toClient(Array("\r\nsluice: blocked: \(message)\r\n".utf8)))
                            lineStart = index + 1
                        case .review(let ticket):
                            // Everything before Enter goes up; Enter waits for the decision.
                            forward += bytes[lineStart..<index]
                            relay.heldLine = ticket.id
                            actions.append(.toClient(Array("\r\n".utf8) + Self.line("sluice: " + ReviewWording.held(ticket))))
                            actions.append(.awaitReview(ticket))
                            lineStart = index + 1
                            taken = index + 1
                            break scan
                        }
                    }
                }
                if relay.heldLine == nil { forward += bytes[lineStart...] }
                if !forward.isEmpty { actions.insert(.toUpstream(forward), at: 0) }
            } else {
                actions.append(.toUpstream(Array(bytes)))
            }
            let part = UnsafeRawBufferPointer(rebasing: bytes[..<taken])
            if relay.transfer != nil {
                relay.transfer!.clientBytes(part)
            } else {
                relay.output.recordInput(part, now: now)
            }
            return (taken, actions)
        }
    }

    /// The client sent EOF (and the driver holds none of its bytes): EOF goes upstream.
    package mutating func clientEOF(now: ContinuousClock.Instant) -> [Action] {
        guard !clientEOF else { return [] }
        clientEOF = true
        guard case .relaying(let relay) = state else { return [] }
        relay.output.finishInput()
        return sendUpstreamEOF()
    }

    private mutating func sendUpstreamEOF() -> [Action] {
        guard !upstreamEOFSent else { return [] }
        upstreamEOFSent = true
        return [.sendUpstreamEOF]
    }

    /// A window change: recorded and passed on.
    package mutating func resized(columns: Int, rows: Int) -> [Action] {
        terminal?.columns = columns
        terminal?.rows = rows
        session.record(SessionEvent(.resize, text: "\(columns)x\(rows)"))
        if case .relaying = state { return [.resizeUpstream(columns: columns, rows: rows)] }
        return []
    }

    /// The client closed the channel or the connection: the upstream is closed, the record ends.
    package mutating func clientClosed() -> [Action] {
        let wasRunning: Bool = if case .relaying = state { true } else { false }
        endRecording()
        state = .done
        return wasRunning ? [.closeUpstream] : []
    }

    // MARK: Upstream

    /// Output from the target: masked, recorded, queued for the client. A masking error ends
    /// the session (nothing unscanned is sent).
    package mutating func upstreamData(_ bytes: UnsafeRawBufferPointer, stderr: Bool, now: ContinuousClock.Instant) -> [Action] {
        guard case .relaying(var relay) = state, !bytes.isEmpty else { return [] }
        do {
            let out = try relay.output.output(bytes, on: stderr ? .stderr : .stdout, now: now)
            if !stderr, relay.transfer != nil { relay.transfer!.serverBytes(out) }
            state = .relaying(relay)
            return out.isEmpty ? [] : [stderr ? .toClientStderr(out) : .toClient(out)]
        } catch {
            return failClosed()
        }
    }

    package mutating func upstreamExit(status: Int) {
        guard case .relaying(var relay) = state else { return }
        relay.exitStatus = status
        state = .relaying(relay)
    }

    package mutating func upstreamExit(signal: String) {
        guard case .relaying(var relay) = state else { return }
        relay.exitSignal = signal
        state = .relaying(relay)
    }

    /// The target's output ended (the driver holds none of its bytes): held bytes go out.
    package mutating func upstreamEOF(now: ContinuousClock.Instant) -> [Action] {
        guard case .relaying(var relay) = state, !relay.upstreamEOF else { return [] }
        relay.upstreamEOF = true
        state = .relaying(relay)
        do {
            var actions: [Action] = []
            let out = try relay.output.finish(.stdout)
            if !out.isEmpty {
                if relay.transfer != nil { relay.transfer!.serverBytes(out) }
                actions.append(.toClient(out))
            }
            let err = try relay.output.finish(.stderr)
            if !err.isEmpty { actions.append(.toClientStderr(err)) }
            state = .relaying(relay)
            return actions
        } catch {
            return failClosed()
        }
    }

    /// The target closed the channel: the exit status goes to the client after all output.
    package mutating func upstreamClosed(now: ContinuousClock.Instant) -> [Action] {
        guard case .relaying(let relay) = state else { return [] }
        var actions = upstreamEOF(now: now)
        guard case .relaying = state else { return actions }
        session.mark(.exitStatus(relay.exitStatus ?? -1))
        endRecording()
        state = .done
        actions.append(.exit(status: relay.exitStatus, signal: relay.exitSignal))
        return actions
    }

    // MARK: Time and termination

    /// Held output released after `idleFlush` without more.
    package mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        guard case .relaying(let relay) = state else { return [] }
        do {
            return try relay.output.idle(now: now).map { $0.0 == .stderr ? .toClientStderr($0.1) : .toClient($0.1) }
        } catch {
            return failClosed()
        }
    }

    /// When `tick(now:)` should next run; nil when nothing waits.
    package var nextDeadline: ContinuousClock.Instant? {
        guard case .relaying(let relay) = state else { return nil }
        return relay.output.nextIdleDeadline()
    }

    /// The gateway ends the session (shutdown, revoked access, expired token): the user is told why.
    package mutating func terminate(reason: String) -> [Action] {
        guard !isDone else { return [] }
        failure = failure ?? reason
        return finish(told: "\r\nsluice: session ended: \(reason)", status: 255)
    }

    // MARK: Port forwarding

    /// A `direct-tcpip` channel (`ssh -L`, `ssh -D`): only to destinations the connection's
    /// `port_forwarding` lists, then through the guardrails (class `port_forward`), decided once
    /// per destination and session. The refusal reason goes to the session's stderr when there
    /// is a session channel (`ssh -N` has none; the record says why).
    package mutating func forwardRequested(host: String, port: Int) -> (answer: ForwardAnswer, actions: [Action]) {
        let destination = Self.destination(host: host, port: port)
        guard !host.isEmpty, host.utf8.count <= 255, openForwards < configuration.forwardLimit else { return (.refuse, []) }
        if let allowed = forwardDecisions[destination] {
            return (allowed ? .accept : .refuse, [])
        }
        guard session.connection.portForwarding.permits(host: host, port: port) else {
            forwardDecisions[destination] = false
            session.mark(.forward(destination: destination, .refused("not in port_forwarding")))
            return (.refuse, tell("sluice: port forwarding to \(destination) is not allowed on \(session.connection.name)"))
        }
        switch session.decide(SSHCommands.portForward(destination)) {
        case .allow:
            forwardDecisions[destination] = true
            return (.accept, [])
        case .block(let message):
            forwardDecisions[destination] = false
            return (.refuse, tell("sluice: blocked: \(message)"))
        case .review(let ticket):
            heldForwards[ticket.id] = destination
            return (.hold(ticket), tell("sluice: forward to \(destination) " + ReviewWording.held(ticket)) + [.awaitReview(ticket)])
        }
    }

    /// The review of a held forward was decided: true when its channel may relay.
    package mutating func forwardReviewDecided(_ id: String, _ outcome: ReviewOutcome) -> (relay: Bool, actions: [Action]) {
        guard let destination = heldForwards.removeValue(forKey: id) else { return (false, []) }
        let approved: Bool = if case .approved = outcome { true } else { false }
        forwardDecisions[destination] = approved
        let wording = approved ? ReviewWording.decided(outcome) : (ReviewWording.refusal(outcome) ?? "refused")
        return (approved, tell("sluice: forward to \(destination) \(wording)"))
    }

    package mutating func forwardOpened(host: String, port: Int) {
        openForwards += 1
        session.mark(.forward(destination: Self.destination(host: host, port: port), .opened))
    }

    package mutating func forwardFailed(host: String, port: Int, reason: String) -> [Action] {
        let destination = Self.destination(host: host, port: port)
        session.mark(.forward(destination: destination, .failed(String(reason.prefix(200)))))
        return tell("sluice: forward to \(destination) failed: \(reason)")
    }

    package mutating func forwardClosed(host: String, port: Int, bytesUp: Int, bytesDown: Int) {
        openForwards = max(0, openForwards - 1)
        session.mark(.forward(destination: Self.destination(host: host, port: port), .closed(bytesUp: bytesUp, bytesDown: bytesDown)))
    }

    package static func destination(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    // MARK: Internals

    private func tell(_ text: String) -> [Action] {
        [.toClientStderr(Self.line(text))]
    }

    private static func line(_ text: String) -> [UInt8] { Array((text + "\r\n").utf8) }

    /// The request was refused (blocked, denied, timed out): told, exit 126.
    private mutating func refuse(_ text: String) -> [Action] {
        endRecording()
        session.mark(.exitStatus(126))
        state = .done
        return [.toClientStderr(Self.line(text)), .exit(status: 126, signal: nil)]
    }

    /// Fail closed: the output could not be masked; nothing more of it is sent.
    private mutating func failClosed() -> [Action] {
        failure = "output could not be masked"
        return finish(told: "\r\nsluice: output stopped: it could not be masked", status: 255)
    }

    private mutating func finish(told text: String, status: Int) -> [Action] {
        var actions: [Action] = [.toClientStderr(Self.line(text))]
        if case .relaying = state { actions.insert(.closeUpstream, at: 0) }
        endRecording()
        session.mark(.exitStatus(status))
        state = .done
        actions.append(.exit(status: status, signal: nil))
        return actions
    }

    /// The request's relay, from the moment it was accepted.
    private var relay: Relay? {
        switch state {
        case .reviewing(let relay, _), .opening(let relay), .relaying(let relay): relay
        case .awaitingRequest, .done: nil
        }
    }

    /// The input held by the recording masker, and a transfer's names and sizes, go to the record.
    private func endRecording() {
        guard let relay else { return }
        relay.output.finishInput()
        guard let transfer = relay.transfer else { return }
        var kind = "scp"
        if case .subsystem(let name) = relay.request { kind = name }
        session.mark(transfer.summary(kind: kind))
    }
}
