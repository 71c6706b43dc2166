import Adapters
import CLibSSH
import Foundation
import Logging
import MaskEngine

/// The libssh transport of one user's SSH connection: it turns libssh's callbacks into events
/// of an ``SSHSessionMachine`` (which holds every decision: requests, typed lines, reviews,
/// masking, the order of the streams' ends, port forwards) and performs the actions the machine
/// returns — queueing bytes within the channels' windows, connecting the upstream, sending EOF
/// and the exit status. It runs on its own thread, in one `ssh_event` loop over both legs.
///
/// Nothing waits on a review here: a held command's ticket is awaited in a task, which posts
/// the outcome to this loop's inbox and wakes it through a pipe in the same `ssh_event`. The
/// loop sleeps until a socket, the pipe or the machine's next deadline (idle output) wakes it,
/// at most one second (a liveness bound, not a poll). The login (token check) and the upstream
/// connect still run on this thread, bounded by their timeouts.
final class SSHSessionDriver: @unchecked Sendable {
    private let client: ssh_session
    private let runtime: GatewayRuntime
    private let logger: Logger
    private let recordCap: Int
    private let startupTimeout: Duration
    /// The client's `HOST:PORT`, recorded with the session and counted by login throttling.
    private let peer: String
    /// The source counted in `runtime.admission` until the login succeeds or the connection ends.
    private var admitted: String?

    private var governed: (any GovernedSession)?
    private var machine: SSHSessionMachine?
    private var authAttempts = 0
    /// The user name of a keyboard-interactive exchange (the response packet does not repeat it).
    private var interactiveUser: String?

    private var event: ssh_event?
    private var clientChannel: ssh_channel?
    private var upstream: ssh_session?
    private var upstreamChannel: ssh_channel?

    // Queues (bounded: a full queue leaves bytes in libssh, whose window then closes).
    private var toClient: [UInt8] = []
    private var toClientStderr: [UInt8] = []
    private var toUpstream: [UInt8] = []
    /// Client bytes read out of libssh that the machine did not take yet (a held typed line).
    private var clientBacklog: [UInt8] = []
    private var upstreamEOFPending = false
    private var upstreamEOFSent = false
    private var exitPending: (status: Int?, signal: String?)?
    /// Set once the exit went out: the client gets this long to close the connection itself.
    private var closeDeadline: ContinuousClock.Instant?

    // What libssh reported, passed to the machine once the bytes before it were.
    private var clientEOFSeen = false
    private var clientEOFReported = false
    private var clientClosed = false
    private var upstreamEOFSeen = false
    private var upstreamEOFReported = false
    private var upstreamClosedSeen = false
    private var upstreamClosedReported = false
    private var finished = false
    /// Actions of a channel request, performed after libssh has answered the request.
    private var deferred: [SSHSessionMachine.Action] = []

    // Port forwards: relaying, and held for review (accepted, nothing relayed until approved).
    private var forwards: [SSHForward] = []
    private var heldForwards: [String: HeldForward] = [:]
    private struct HeldForward {
        let channel: ssh_channel
        let host: String
        let port: Int
        let originator: String
        let originatorPort: Int32
    }

    /// Events from other threads (review outcomes, termination), read by the loop.
    private enum Wake: Sendable {
        case review(String, ReviewOutcome)
        case forwardReview(String, ReviewOutcome)
        case terminate(String)
    }

    private let inbox = Locked<[Wake]>([])
    /// A pipe in the `ssh_event`: a byte written wakes the loop.
    private var wakeRead: Int32 = -1
    private var wakeWrite: Int32 = -1

    static let bufferLimit = 4 << 20
    /// Longest sleep of the loop when nothing is due (a liveness bound).
    static let maximumWait = Duration.seconds(1)

    // Callback tables must outlive the sessions that point at them.
    private let serverCallbacks = UnsafeMutablePointer<ssh_server_callbacks_struct>.allocate(capacity: 1)
    private let clientChannelCallbacks = UnsafeMutablePointer<ssh_channel_callbacks_struct>.allocate(capacity: 1)
    private let upstreamChannelCallbacks = UnsafeMutablePointer<ssh_channel_callbacks_struct>.allocate(capacity: 1)

    init(session: ssh_session, runtime: GatewayRuntime, logger: Logger, recordCap: Int, peer: String, admitted: String?,
         startupTimeout: Duration = .seconds(10)) {
        self.client = session
        self.runtime = runtime
        self.logger = logger
        self.recordCap = recordCap
        self.peer = peer
        self.admitted = admitted
        self.startupTimeout = startupTimeout
    }

    deinit {
        serverCallbacks.deallocate()
        clientChannelCallbacks.deallocate()
        upstreamChannelCallbacks.deallocate()
    }

    private var me: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    private static func from(_ pointer: UnsafeMutableRawPointer?) -> SSHSessionDriver {
        Unmanaged<SSHSessionDriver>.fromOpaque(pointer!).takeUnretainedValue()
    }

    private func releaseAdmission() {
        if let admitted { runtime.admission.release(admitted) }
        admitted = nil
    }

    // MARK: - Loop

    func run() {
        defer { teardown() }
        installServerCallbacks()
        // An outsider who connects and stays silent holds this thread for at most the startup
        // timeout, once for the key exchange and once for the login.
        var timeout = Int(max(1, startupTimeout.components.seconds))
        ssh_options_set(client, SSH_OPTIONS_TIMEOUT, &timeout)
        guard ssh_handle_key_exchange(client) == SSH_OK else {
            logger.info("ssh handshake failed", metadata: ["error": "\(String(cString: ssh_get_error(UnsafeMutableRawPointer(client))))"])
            return
        }
        guard let event = ssh_event_new(), openWakePipe() else { return }
        self.event = event
        ssh_event_add_session(event, client)
        ssh_event_add_fd(event, wakeRead, Int16(POLLIN), { fd, _, _ in
            var sink = [UInt8](repeating: 0, count: 64)
            while read(fd, &sink, sink.count) > 0 {}
            return 0
        }, nil)
        let loginDeadline = ContinuousClock.now + startupTimeout
        while !finished {
            let now = ContinuousClock.now
            if governed == nil, now >= loginDeadline { break }
            if let closeDeadline, now >= closeDeadline { break }
            let status = ssh_event_dopoll(event, Self.milliseconds(until: wakeTime(loginDeadline: loginDeadline), from: now))
            // The client's connection is gone (teardown tells the machine).
            if status == SSH_ERROR, upstream == nil || clientClosed || ssh_is_connected(client) == 0 { break }
            if ssh_is_connected(client) == 0 { break }
            readInbox()
            step()
        }
    }

    /// When the loop must wake at the latest.
    private func wakeTime(loginDeadline: ContinuousClock.Instant) -> ContinuousClock.Instant {
        var wake = ContinuousClock.now + Self.maximumWait
        if governed == nil { wake = min(wake, loginDeadline) }
        if let deadline = machine?.nextDeadline { wake = min(wake, deadline) }
        if let closeDeadline { wake = min(wake, closeDeadline) }
        return wake
    }

    private static func milliseconds(until instant: ContinuousClock.Instant, from now: ContinuousClock.Instant) -> Int32 {
        let left = instant - now
        guard left > .zero else { return 0 }
        let (seconds, attoseconds) = left.components
        return Int32(min(Int64(Self.maximumWait.components.seconds) * 1000, seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1))
    }

    private func openWakePipe() -> Bool {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return false }
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        return true
    }

    /// Called from any thread: queues `wake` for the loop and wakes it.
    private func post(_ wake: Wake) {
        inbox.withLock { $0.append(wake) }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    private func readInbox() {
        let wakes = inbox.withLock { list -> [Wake] in
            defer { list.removeAll() }
            return list
        }
        for wake in wakes {
            switch wake {
            case .review(let id, let outcome):
                perform(machine?.reviewDecided(id, outcome, now: .now) ?? [])
            case .forwardReview(let id, let outcome):
                decideHeldForward(id, outcome)
            case .terminate(let reason):
                if machine == nil || clientChannel == nil {
                    finished = true
                } else {
                    perform(machine?.terminate(reason: reason) ?? [])
                }
            }
        }
    }

    /// One turn after libssh ran its callbacks: pull what is left in libssh's buffers, report
    /// ends whose bytes all went through, release idle output, write within the windows.
    private func step() {
        guard machine != nil else { return }
        if !deferred.isEmpty {
            let actions = deferred
            deferred.removeAll()
            perform(actions)
        }
        pumpForwards()
        pullBuffered()
        if clientEOFSeen, !clientEOFReported, !clientHasBufferedData {
            clientEOFReported = true
            perform(machine?.clientEOF(now: .now) ?? [])
        }
        if upstreamEOFSeen, !upstreamEOFReported, !upstreamHasBufferedData {
            upstreamEOFReported = true
            perform(machine?.upstreamEOF(now: .now) ?? [])
        }
        if upstreamClosedSeen, !upstreamClosedReported, !upstreamHasBufferedData {
            upstreamClosedReported = true
            perform(machine?.upstreamClosed(now: .now) ?? [])
        }
        if let deadline = machine?.nextDeadline, deadline <= .now {
            perform(machine?.tick(now: .now) ?? [])
        }
        flushToUpstream()
        flushToClient()
        pullBuffered()
        if clientClosed {
            perform(machine?.clientClosed() ?? [])
            finished = true
            return
        }
        sendExitIfDue()
    }

    // MARK: - Actions

    private func perform(_ actions: [SSHSessionMachine.Action]) {
        for action in actions {
            switch action {
            case .toClient(let bytes): toClient += bytes
            case .toClientStderr(let bytes): toClientStderr += bytes
            case .toUpstream(let bytes): toUpstream += bytes
            case .openUpstream(let request, let terminal, let environment):
                openUpstream(request, terminal: terminal, environment: environment)
            case .resizeUpstream(let columns, let rows):
                if let upstreamChannel { ssh_channel_change_pty_size(upstreamChannel, Int32(columns), Int32(rows)) }
            case .sendUpstreamEOF:
                upstreamEOFPending = true
            case .closeUpstream:
                if let upstreamChannel, ssh_channel_is_open(upstreamChannel) != 0 { ssh_channel_close(upstreamChannel) }
                upstreamEOFSeen = true
                upstreamClosedSeen = true
                upstreamEOFReported = true
                upstreamClosedReported = true
            case .awaitReview(let ticket):
                awaitOutcome(of: ticket) { .review($0, $1) }
            case .exit(let status, let signal):
                exitPending = (status, signal)
            }
        }
    }

    /// Awaits a review in a task; the outcome comes back through the inbox.
    private func awaitOutcome(of ticket: ReviewTicket, _ wake: @escaping @Sendable (String, ReviewOutcome) -> Wake) {
        let id = ticket.id
        Task { [weak self] in
            let outcome = await ticket.outcome()
            self?.post(wake(id, outcome))
        }
    }

    private func openUpstream(_ request: SSHRequest, terminal: SSHTerminal?, environment: [(String, String)]) {
        guard let governed else { return }
        do {
            try connectUpstream(governed.connection, request: request, terminal: terminal, environment: environment)
            perform(machine?.upstreamOpened(now: .now) ?? [])
        } catch {
            logger.warning("ssh upstream failed", metadata: ["connection": "\(governed.connection.name)", "error": "\(error)"])
            perform(machine?.upstreamFailed("\(error)") ?? [])
        }
    }

    /// The exit goes out once everything queued for the client has: status, signal, EOF, close.
    private func sendExitIfDue() {
        guard let exit = exitPending, toClient.isEmpty, toClientStderr.isEmpty else { return }
        exitPending = nil
        guard let channel = clientChannel, ssh_channel_is_open(channel) != 0 else {
            finished = true
            return
        }
        if let status = exit.status { ssh_channel_request_send_exit_status(channel, Int32(truncatingIfNeeded: status)) }
        if let signal = exit.signal { ssh_channel_request_send_exit_signal(channel, signal, 0, "", "") }
        ssh_channel_send_eof(channel)
        ssh_channel_close(channel)
        // Let the client close the connection itself (as with sshd), for up to two seconds.
        closeDeadline = .now + .seconds(2)
    }

    // MARK: - Writing

    private func flushToUpstream() {
        guard let channel = upstreamChannel, ssh_channel_is_open(channel) != 0 else { return }
        send(\.toUpstream, to: channel, stderr: false)
        if upstreamEOFPending, !upstreamEOFSent, toUpstream.isEmpty {
            upstreamEOFSent = true
            ssh_channel_send_eof(channel)
        }
    }

    private func flushToClient() {
        guard let channel = clientChannel, ssh_channel_is_open(channel) != 0 else {
            toClient.removeAll()
            toClientStderr.removeAll()
            return
        }
        send(\.toClientStderr, to: channel, stderr: true)
        send(\.toClient, to: channel, stderr: false)
    }

    /// Writes the head of a queue within the channel's window. libssh may run callbacks (which
    /// append to the queues) while it writes, so no access to a queue is held across a libssh
    /// call: the chunk is copied out first.
    private func send(_ queue: ReferenceWritableKeyPath<SSHSessionDriver, [UInt8]>, to channel: ssh_channel, stderr: Bool) {
        while true {
            let window = Int(ssh_channel_window_size(channel))
            let chunk = Array(self[keyPath: queue].prefix(min(window, 32 * 1024)))
            guard !chunk.isEmpty else { break }
            let written = chunk.withUnsafeBytes {
                stderr ? ssh_channel_write_stderr(channel, $0.baseAddress, UInt32($0.count)) : ssh_channel_write(channel, $0.baseAddress, UInt32($0.count))
            }
            guard written > 0 else { break }
            self[keyPath: queue].removeFirst(Int(written))
        }
    }

    // MARK: - Reading

    /// Client bytes from a callback: offered to the machine while the upstream queue has room.
    private func clientData(_ data: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        guard let data, length > 0, machine != nil, toUpstream.count < Self.bufferLimit else { return 0 }
        let (taken, actions) = machine!.clientData(UnsafeRawBufferPointer(start: data, count: length), now: .now)
        perform(actions)
        return Int32(taken)
    }

    /// Output from the target: masked by the machine, queued for the client (backpressure:
    /// nothing is consumed while the client's queue is full).
    private func upstreamData(_ data: UnsafeMutableRawPointer?, _ length: Int, stderr: Bool) -> Int32 {
        guard let data, length > 0, machine != nil else { return 0 }
        if toClient.count + toClientStderr.count >= Self.bufferLimit { return 0 }
        perform(machine!.upstreamData(UnsafeRawBufferPointer(start: data, count: length), stderr: stderr, now: .now))
        return Int32(length)
    }

    /// libssh calls a data callback only when a packet arrives; bytes a callback left unconsumed
    /// (a queue was full, a typed line is held) stay in the channel's buffer. Pull them once
    /// there is room again, or the peers would wait on each other's windows forever.
    private func pullBuffered() {
        var scratch = [UInt8](repeating: 0, count: 32 * 1024)
        if let channel = upstreamChannel {
            for stderr: Int32 in [0, 1] {
                while toClient.count + toClientStderr.count < Self.bufferLimit, ssh_channel_poll(channel, stderr) > 0 {
                    let count = scratch.withUnsafeMutableBytes {
                        ssh_channel_read_nonblocking(channel, $0.baseAddress, UInt32($0.count), stderr)
                    }
                    guard count > 0 else { break }
                    _ = scratch.withUnsafeMutableBytes { upstreamData($0.baseAddress, Int(count), stderr: stderr != 0) }
                }
            }
        }
        // Input read out of libssh but not yet taken (a review hold stopped it mid-chunk).
        while !clientBacklog.isEmpty, toUpstream.count < Self.bufferLimit {
            let taken = clientBacklog.withUnsafeMutableBytes { clientData($0.baseAddress, $0.count) }
            guard taken > 0 else { break }
            clientBacklog.removeFirst(Int(taken))
        }
        if let channel = clientChannel, clientBacklog.isEmpty {
            while toUpstream.count < Self.bufferLimit, ssh_channel_poll(channel, 0) > 0 {
                let count = scratch.withUnsafeMutableBytes {
                    ssh_channel_read_nonblocking(channel, $0.baseAddress, UInt32($0.count), 0)
                }
                guard count > 0 else { break }
                let taken = Int(scratch.withUnsafeMutableBytes { clientData($0.baseAddress, Int(count)) })
                if taken < Int(count) {
                    clientBacklog.append(contentsOf: scratch[taken..<Int(count)])
                    break
                }
            }
        }
    }

    private var upstreamHasBufferedData: Bool {
        guard let channel = upstreamChannel else { return false }
        return ssh_channel_poll(channel, 0) > 0 || ssh_channel_poll(channel, 1) > 0
    }

    /// Client bytes not yet taken: in our backlog, or still in libssh's channel buffer. The
    /// client's EOF can arrive before them.
    private var clientHasBufferedData: Bool {
        guard clientBacklog.isEmpty else { return true }
        guard let channel = clientChannel else { return false }
        return ssh_channel_poll(channel, 0) > 0
    }

    // MARK: - Teardown

    private func teardown() {
        releaseAdmission()
        for forward in forwards { closeForward(forward) }
        forwards.removeAll()
        for held in heldForwards.values { ssh_channel_close(held.channel); ssh_channel_free(held.channel) }
        heldForwards.removeAll()
        if let event {
            if let upstream { ssh_event_remove_session(event, upstream) }
            ssh_event_remove_session(event, client)
            if wakeRead >= 0 { ssh_event_remove_fd(event, wakeRead) }
            ssh_event_free(event)
        }
        if let upstreamChannel { ssh_channel_free(upstreamChannel) }
        if let upstream {
            ssh_disconnect(upstream)
            ssh_free(upstream)
        }
        if let clientChannel { ssh_channel_free(clientChannel) }
        ssh_disconnect(client)
        ssh_free(client)
        if machine != nil, !(machine!.isDone) { perform(machine!.clientClosed()) }
        if let governed {
            let reason = machine?.endReason ?? "ssh session ended"
            Task { await governed.close(reason: reason) }
        }
        // Only now: a review task posting late finds the pipe closed, not reused.
        if wakeRead >= 0 { close(wakeRead) }
        if wakeWrite >= 0 { close(wakeWrite) }
    }
}

// MARK: - libssh callbacks

extension SSHSessionDriver {
    private func installServerCallbacks() {
        serverCallbacks.initialize(to: ssh_server_callbacks_struct())
        serverCallbacks.pointee.size = MemoryLayout<ssh_server_callbacks_struct>.size
        serverCallbacks.pointee.userdata = me
        serverCallbacks.pointee.auth_password_function = { _, user, password, userdata in
            SSHSessionDriver.from(userdata).authenticate(user: user.map { String(cString: $0) } ?? "",
                                                         token: password.map { String(cString: $0) } ?? "")
        }
        serverCallbacks.pointee.channel_open_request_session_function = { _, userdata in
            SSHSessionDriver.from(userdata).openChannel()
        }
        ssh_set_server_callbacks(client, serverCallbacks)
        ssh_set_auth_methods(client, Int32(SSH_AUTH_METHOD_PASSWORD | SSH_AUTH_METHOD_INTERACTIVE))
        ssh_set_message_callback(client, { session, message, userdata in
            SSHSessionDriver.from(userdata).message(message, session: session)
        }, me)
    }

    /// The token check runs on this thread (libssh answers the login before the callback
    /// returns); it is bounded by the verifier's own timeouts.
    private func authenticate(user connection: String, token: String) -> Int32 {
        authAttempts += 1
        guard authAttempts <= 3, governed == nil else { return Int32(SSH_AUTH_DENIED.rawValue) }
        let runtime = self.runtime
        let peer = self.peer
        do {
            let session = try blockingAwait {
                try await runtime.openSession(token: token, connection: connection, kind: .ssh, peer: peer)
            }
            governed = session
            machine = SSHSessionMachine(session: session, configuration: .init(recordCap: recordCap, idleFlush: .milliseconds(50)))
            releaseAdmission()
            session.onTermination { [weak self] reason in self?.post(.terminate(reason)) }
            return Int32(SSH_AUTH_SUCCESS.rawValue)
        } catch let error as GovernorError {
            logger.info("ssh login refused", metadata: ["code": "\(error.code)"])
            return Int32(SSH_AUTH_DENIED.rawValue)
        } catch {
            return Int32(SSH_AUTH_DENIED.rawValue)
        }
    }

    /// Keyboard-interactive logins (one prompt for the token) and port-forward channel opens.
    private func message(_ message: ssh_message?, session: ssh_session?) -> Int32 {
        guard let message else { return 1 }
        if ssh_message_type(message) == Int32(SSH_REQUEST_CHANNEL_OPEN.rawValue),
           ssh_message_subtype(message) == Int32(SSH_CHANNEL_DIRECT_TCPIP.rawValue) {
            return openForward(message)
        }
        guard ssh_message_type(message) == Int32(SSH_REQUEST_AUTH.rawValue),
              ssh_message_subtype(message) == Int32(SSH_AUTH_METHOD_INTERACTIVE) else {
            return 1
        }
        if ssh_message_auth_kbdint_is_response(message) != 0 {
            let answer = ssh_userauth_kbdint_getanswer(client, 0).map { String(cString: $0) } ?? ""
            let user = ssh_message_auth_user(message).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
                ?? interactiveUser ?? ""
            if authenticate(user: user, token: answer) == Int32(SSH_AUTH_SUCCESS.rawValue) {
                ssh_message_auth_reply_success(message, 0)
            } else {
                ssh_message_auth_set_methods(message, Int32(SSH_AUTH_METHOD_PASSWORD | SSH_AUTH_METHOD_INTERACTIVE))
                ssh_message_reply_default(message)
            }
            return 0
        }
        interactiveUser = ssh_message_auth_user(message).map { String(cString: $0) }
        var prompts: [UnsafePointer<CChar>?] = [UnsafePointer(strdup("Sluice token: "))]
        var echo: [CChar] = [0]
        defer { prompts.forEach { free(UnsafeMutablePointer(mutating: $0)) } }
        ssh_message_auth_interactive_request(message, "Sluice", "Paste your Sluice token.", 1, &prompts, &echo)
        return 0
    }

    private func openChannel() -> ssh_channel? {
        guard machine != nil, clientChannel == nil, let channel = ssh_channel_new(client) else { return nil }
        clientChannelCallbacks.initialize(to: ssh_channel_callbacks_struct())
        let callbacks = clientChannelCallbacks
        callbacks.pointee.size = MemoryLayout<ssh_channel_callbacks_struct>.size
        callbacks.pointee.userdata = me
        callbacks.pointee.channel_pty_request_function = { _, _, term, columns, rows, _, _, userdata in
            let driver = SSHSessionDriver.from(userdata)
            let terminal = SSHTerminal(term: term.map { String(cString: $0) } ?? "xterm", columns: Int(columns), rows: Int(rows))
            return driver.machine?.terminalRequested(terminal) == true ? 0 : -1
        }
        callbacks.pointee.channel_env_request_function = { _, _, name, value, userdata in
            let driver = SSHSessionDriver.from(userdata)
            let accepted = driver.machine?.environmentRequested(name: name.map { String(cString: $0) } ?? "",
                                                                value: value.map { String(cString: $0) } ?? "")
            return accepted == true ? 0 : -1
        }
        callbacks.pointee.channel_exec_request_function = { _, _, command, userdata in
            SSHSessionDriver.from(userdata).requested(.exec(command.map { String(cString: $0) } ?? ""))
        }
        callbacks.pointee.channel_shell_request_function = { _, _, userdata in
            SSHSessionDriver.from(userdata).requested(.shell)
        }
        callbacks.pointee.channel_subsystem_request_function = { _, _, name, userdata in
            SSHSessionDriver.from(userdata).requested(.subsystem(name.map { String(cString: $0) } ?? ""))
        }
        callbacks.pointee.channel_pty_window_change_function = { _, _, columns, rows, _, _, userdata in
            let driver = SSHSessionDriver.from(userdata)
            driver.perform(driver.machine?.resized(columns: Int(columns), rows: Int(rows)) ?? [])
            return 0
        }
        callbacks.pointee.channel_data_function = { _, _, data, length, _, userdata in
            SSHSessionDriver.from(userdata).clientData(data, Int(length))
        }
        callbacks.pointee.channel_eof_function = { _, _, userdata in
            SSHSessionDriver.from(userdata).clientEOFSeen = true
        }
        callbacks.pointee.channel_close_function = { _, _, userdata in
            SSHSessionDriver.from(userdata).clientClosed = true
        }
        ssh_set_channel_callbacks(channel, callbacks)
        clientChannel = channel
        return channel
    }

    /// The channel's request, decided by the machine. libssh answers the request when this
    /// returns; what the request leads to (an upstream, a block, a hold) happens in `perform`.
    private func requested(_ request: SSHRequest) -> Int32 {
        guard machine != nil else { return -1 }
        let (accepted, actions) = machine!.requested(request, now: .now)
        guard accepted else { return -1 }
        // Acted on after libssh has answered the request (the reply precedes any output).
        deferred += actions
        return 0
    }
}

// MARK: - Upstream

extension SSHSessionDriver {
    /// The gateway's own SSH session to the target, connected (host key checked, key
    /// authenticated) on first use: by the session channel's request or by a port forward.
    private func upstreamSession(_ target: ConnectionTarget) throws -> ssh_session {
        if let upstream { return upstream }
        let session: ssh_session
        do {
            session = try SSHUpstreamLogin.open(target)
        } catch let error as SSHUpstreamLogin.Failure {
            if case .hostKeyMismatch(let presented) = error.stage { governed?.mark(.hostKeyMismatch(presented: presented)) }
            throw SSHBridgeError(reason: error.reason)
        }
        upstream = session
        ssh_set_blocking(session, 0)
        if let event { ssh_event_add_session(event, session) }
        return session
    }

    private func connectUpstream(_ target: ConnectionTarget, request: SSHRequest, terminal: SSHTerminal?,
                                 environment: [(String, String)]) throws {
        let session = try upstreamSession(target)
        ssh_set_blocking(session, 1)
        defer { ssh_set_blocking(session, 0) }
        guard let channel = ssh_channel_new(session), ssh_channel_open_session(channel) == SSH_OK else {
            throw SSHBridgeError(reason: "cannot open a session channel")
        }
        upstreamChannel = channel
        for (name, value) in environment { ssh_channel_request_env(channel, name, value) }
        if let terminal {
            ssh_channel_request_pty_size(channel, terminal.term, Int32(terminal.columns), Int32(terminal.rows))
        }
        let status: Int32
        switch request {
        case .exec(let command): status = ssh_channel_request_exec(channel, command)
        case .shell: status = ssh_channel_request_shell(channel)
        case .subsystem(let name): status = ssh_channel_request_subsystem(channel, name)
        }
        guard status == SSH_OK else { throw SSHBridgeError(reason: "the target refused the request") }

        upstreamChannelCallbacks.initialize(to: ssh_channel_callbacks_struct())
        let callbacks = upstreamChannelCallbacks
        callbacks.pointee.size = MemoryLayout<ssh_channel_callbacks_struct>.size
        callbacks.pointee.userdata = me
        callbacks.pointee.channel_data_function = { _, _, data, length, isStderr, userdata in
            SSHSessionDriver.from(userdata).upstreamData(data, Int(length), stderr: isStderr != 0)
        }
        callbacks.pointee.channel_eof_function = { _, _, userdata in
            SSHSessionDriver.from(userdata).upstreamEOFSeen = true
        }
        callbacks.pointee.channel_close_function = { _, _, userdata in
            let driver = SSHSessionDriver.from(userdata)
            driver.upstreamEOFSeen = true
            driver.upstreamClosedSeen = true
        }
        callbacks.pointee.channel_exit_status_function = { _, _, status, userdata in
            SSHSessionDriver.from(userdata).machine?.upstreamExit(status: Int(status))
        }
        callbacks.pointee.channel_exit_signal_function = { _, _, signal, _, _, _, userdata in
            if let signal { SSHSessionDriver.from(userdata).machine?.upstreamExit(signal: String(cString: signal)) }
        }
        ssh_set_channel_callbacks(channel, callbacks)
    }
}

// MARK: - Port forwarding

extension SSHSessionDriver {
    /// A `direct-tcpip` channel (`ssh -L`, `ssh -D`), decided by the machine. libssh answers the
    /// channel open before this returns, so a forward held for review is accepted and relays
    /// nothing until approved (its upstream is not even connected); denied, it is closed.
    /// Returns 0 when answered here, 1 for libssh's default refusal.
    private func openForward(_ message: ssh_message) -> Int32 {
        guard machine != nil else { return 1 }
        let host = ssh_message_channel_request_open_destination(message).map { String(cString: $0) } ?? ""
        let port = Int(ssh_message_channel_request_open_destination_port(message))
        let originator = ssh_message_channel_request_open_originator(message).map { String(cString: $0) } ?? "127.0.0.1"
        let originatorPort = ssh_message_channel_request_open_originator_port(message)
        let (answer, actions) = machine!.forwardRequested(host: host, port: port)
        perform(actions)
        switch answer {
        case .refuse:
            return 1
        case .accept:
            guard let upstreamChannel = openUpstreamForward(host: host, port: port, originator: originator, originatorPort: originatorPort) else {
                return 1
            }
            guard let clientChannel = ssh_message_channel_request_open_reply_accept(message) else {
                ssh_channel_close(upstreamChannel)
                ssh_channel_free(upstreamChannel)
                return 0
            }
            forwards.append(SSHForward(client: clientChannel, upstream: upstreamChannel, host: host, port: port))
            machine?.forwardOpened(host: host, port: port)
            return 0
        case .hold(let ticket):
            guard let clientChannel = ssh_message_channel_request_open_reply_accept(message) else { return 0 }
            heldForwards[ticket.id] = HeldForward(channel: clientChannel, host: host, port: port, originator: originator,
                                                  originatorPort: originatorPort)
            awaitOutcome(of: ticket) { .forwardReview($0, $1) }
            return 0
        }
    }

    private func decideHeldForward(_ id: String, _ outcome: ReviewOutcome) {
        guard let held = heldForwards.removeValue(forKey: id), machine != nil else { return }
        let (relay, actions) = machine!.forwardReviewDecided(id, outcome)
        perform(actions)
        guard relay, ssh_channel_is_open(held.channel) != 0,
              let upstreamChannel = openUpstreamForward(host: held.host, port: held.port, originator: held.originator,
                                                        originatorPort: held.originatorPort) else {
            ssh_channel_close(held.channel)
            ssh_channel_free(held.channel)
            return
        }
        forwards.append(SSHForward(client: held.channel, upstream: upstreamChannel, host: held.host, port: held.port))
        machine?.forwardOpened(host: held.host, port: held.port)
    }

    /// The upstream half of a forward, on the gateway's own session; nil (told, recorded) when
    /// the target refuses it.
    private func openUpstreamForward(host: String, port: Int, originator: String, originatorPort: Int32) -> ssh_channel? {
        guard let governed else { return nil }
        do {
            let session = try upstreamSession(governed.connection)
            guard let channel = ssh_channel_new(session) else { throw SSHBridgeError(reason: "ssh_channel_new failed") }
            ssh_set_blocking(session, 1)
            let status = ssh_channel_open_forward(channel, host, Int32(port), originator, originatorPort)
            ssh_set_blocking(session, 0)
            guard status == SSH_OK else {
                ssh_channel_free(channel)
                throw SSHBridgeError(reason: "the target refused to open \(SSHSessionMachine.destination(host: host, port: port))")
            }
            return channel
        } catch {
            perform(machine?.forwardFailed(host: host, port: port, reason: "\(error)") ?? [])
            return nil
        }
    }

    private func pumpForwards() {
        guard !forwards.isEmpty else { return }
        // Pumping polls libssh, whose callbacks may open more forwards: iterate over a copy.
        let current = forwards
        let done = current.filter { $0.pump() }
        guard !done.isEmpty else { return }
        forwards.removeAll { forward in done.contains { $0 === forward } }
        done.forEach(closeForward)
    }

    private func closeForward(_ forward: SSHForward) {
        forward.close()
        machine?.forwardClosed(host: forward.host, port: forward.port, bytesUp: forward.bytesUp, bytesDown: forward.bytesDown)
    }
}
