import MaskEngine
import Adapters
import CLibSSH
import Foundation
import Logging

/// One user's SSH connection through the gateway, on its own thread: authenticates the token,
/// accepts one session channel, checks the exec/shell/subsystem request against the policy,
/// connects upstream with the connection's key, then relays — masking stdout and stderr and
/// recording — until both sides are done.
final class SSHBridgeSession: @unchecked Sendable {
    private let client: ssh_session
    private let runtime: GatewayRuntime
    private let logger: Logger
    private let recordCap: Int
    private var governed: (any GovernedSession)?
    private var authAttempts = 0
    /// The user name of a keyboard-interactive exchange (the response packet does not repeat it).
    private var interactiveUser: String?
    private var clientChannel: ssh_channel?
    private var upstream: ssh_session?
    private var upstreamChannel: ssh_channel?
    private var event: OpaquePointer?

    private enum Request {
        case exec(String)
        case shell
        case subsystem(String)
    }

    private var pty: (term: String, columns: Int32, rows: Int32)?
    private var environment: [(String, String)] = []
    private var request: Request?
    private var started = false
    private var finished = false
    /// Why the gateway ended the session (shutdown, revoked access, token expiry), set from the
    /// closing thread and read by the session's loop, which tells the user before closing.
    private let terminationReason = Locked<String?>(nil)
    private final class OutcomeBox: Sendable {
        let value = Locked<ReviewOutcome?>(nil)
    }

    private var review: (ticket: ReviewTicket, outcome: OutcomeBox)?

    // Relay state.
    private var toUpstream: [UInt8] = []
    private var toClient: [UInt8] = []
    private var toClientStderr: [UInt8] = []
    private var clientEOF = false
    private var upstreamEOFSent = false
    private var upstreamEOF = false
    private var upstreamClosed = false
    private var clientClosed = false
    private var exitStatus: Int32?
    private var exitSignal: String?
    private var stdoutMasker: SSHOutputMasker?
    private var stderrMasker: SSHOutputMasker?
    private var typed = TypedLine()
    private var recorded = 0
    private var recordCut = false
    private var failure: String?
    /// File transfers (sftp, scp) are binary protocols: relayed byte for byte (masking would
    /// corrupt them), allowed, blocked or reviewed by policy, and recorded by name and size only.
    private var transfer = false
    private var sftp = SFTPObserver()
    /// Forwarded TCP connections, and the decision per destination (asked once per session).
    private var forwards: [SSHForward] = []
    private var forwardDecisions: [String: Bool] = [:]
    static let forwardLimit = 64

    static let bufferLimit = 4 << 20

    // Callback tables must outlive the sessions that point at them.
    private let serverCallbacks = UnsafeMutablePointer<ssh_server_callbacks_struct>.allocate(capacity: 1)
    private let clientChannelCallbacks = UnsafeMutablePointer<ssh_channel_callbacks_struct>.allocate(capacity: 1)
    private let upstreamChannelCallbacks = UnsafeMutablePointer<ssh_channel_callbacks_struct>.allocate(capacity: 1)

    /// The client's `HOST:PORT`, recorded with the session and counted by login throttling.
    private let peer: String
    /// The source counted in `runtime.admission` until the login succeeds or the connection ends.
    private var admitted: String?

    /// `limits.startup_timeout`: for the key exchange, then again for the login.
    private let startupTimeout: Duration

    init(session: ssh_session, runtime: GatewayRuntime, logger: Logger, recordCap: Int, peer: String, admitted: String?,
         startupTimeout: Duration = .seconds(10)) {
        self.startupTimeout = startupTimeout
        self.client = session
        self.runtime = runtime
        self.logger = logger
        self.recordCap = recordCap
        self.peer = peer
        self.admitted = admitted
    }

    private func releaseAdmission() {
        if let admitted { runtime.admission.release(admitted) }
        admitted = nil
    }

    deinit {
        serverCallbacks.deallocate()
        clientChannelCallbacks.deallocate()
        upstreamChannelCallbacks.deallocate()
    }

    private var me: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    private static func from(_ pointer: UnsafeMutableRawPointer?) -> SSHBridgeSession {
        Unmanaged<SSHBridgeSession>.fromOpaque(pointer!).takeUnretainedValue()
    }

    // MARK: - Lifecycle

    func run() {
        defer { teardown() }
        serverCallbacks.initialize(to: ssh_server_callbacks_struct())
        serverCallbacks.pointee.size = MemoryLayout<ssh_server_callbacks_struct>.size
        serverCallbacks.pointee.userdata = me
        serverCallbacks.pointee.auth_password_function = { _, user, password, userdata in
            SSHBridgeSession.from(userdata).authenticate(user: user.map { String(cString: $0) } ?? "",
                                                         token: password.map { String(cString: $0) } ?? "")
        }
        serverCallbacks.pointee.channel_open_request_session_function = { _, userdata in
            SSHBridgeSession.from(userdata).openChannel()
        }
        ssh_set_server_callbacks(client, serverCallbacks)
        ssh_set_auth_methods(client, Int32(SSH_AUTH_METHOD_PASSWORD | SSH_AUTH_METHOD_INTERACTIVE))
        ssh_set_message_callback(client, { session, message, userdata in
            SSHBridgeSession.from(userdata).message(message, session: session)
        }, me)
        // An outsider who connects and stays silent holds this thread for at most the startup
        // timeout, once for the key exchange and once for the login.
        var timeout = Int(max(1, startupTimeout.components.seconds))
        ssh_options_set(client, SSH_OPTIONS_TIMEOUT, &timeout)
        let loginPolls = timeout * 20
        guard ssh_handle_key_exchange(client) == SSH_OK else {
            logger.info("ssh handshake failed", metadata: ["error": "\(String(cString: ssh_get_error(UnsafeMutableRawPointer(client))))"])
            return
        }
        guard let event = ssh_event_new() else { return }
        self.event = event
        ssh_event_add_session(event, client)
        var idle = 0
        while !finished {
            let status = ssh_event_dopoll(event, 50)
            if status == SSH_ERROR {
                if upstream == nil || clientClosed || ssh_is_connected(client) == 0 { break }
            }
            if governed == nil {
                idle += 1
                if idle > loginPolls || ssh_is_connected(client) == 0 { break }   // 50 ms polls
                continue
            }
            step()
        }
        tellTermination(client: client, event: event)
    }

    /// A session the gateway ended is told why on stderr (`sluice: session ended: REASON`), then
    /// its channel closes, as a blocked command is told; the client gets a moment to read it.
    private func tellTermination(client: ssh_session, event: ssh_event) {
        guard let reason = terminationReason.withLock({ $0 }), let channel = clientChannel, ssh_channel_is_open(channel) != 0 else { return }
        toClientStderr.append(contentsOf: Array("\r\nsluice: session ended: \(reason)\r\n".utf8))
        flushToClient()
        ssh_channel_request_send_exit_status(channel, 255)
        ssh_channel_send_eof(channel)
        ssh_channel_close(channel)
        for _ in 0..<50 where ssh_is_connected(client) != 0 {
            if ssh_event_dopoll(event, 20) == SSH_ERROR { break }
        }
    }

    private func teardown() {
        releaseAdmission()
        for forward in forwards { closeForward(forward) }
        forwards.removeAll()
        if let event {
            if let upstream { ssh_event_remove_session(event, upstream) }
            ssh_event_remove_session(event, client)
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
        finishInput()
        if transfer, let governed {
            governed.mark(sftp.summary(kind: request.map { if case .subsystem = $0 { "sftp" } else { "scp" } } ?? "transfer"))
        }
        if let governed {
            let reason = failure ?? "ssh session ended"
            let session = governed
            if !toClient.isEmpty || recorded > 0 { _ = session }
            Task { await session.close(reason: reason) }
        }
    }

    // MARK: - Authentication

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
            releaseAdmission()
            session.onTermination { [weak self] reason in
                guard let self else { return }
                self.terminationReason.withLock { $0 = reason }
                self.finished = true
            }
            return Int32(SSH_AUTH_SUCCESS.rawValue)
        } catch let error as GovernorError {
            logger.info("ssh login refused", metadata: ["code": "\(error.code)"])
            return Int32(SSH_AUTH_DENIED.rawValue)
        } catch {
            return Int32(SSH_AUTH_DENIED.rawValue)
        }
    }

    /// Keyboard-interactive: one prompt for the token.
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

    // MARK: - Client channel

    /// One request per channel (exec, shell or subsystem); a second is refused (-1).
    private func setRequest(_ request: Request) -> Int32 {
        guard self.request == nil else { return -1 }
        self.request = request
        return 0
    }

    private func openChannel() -> ssh_channel? {
        guard governed != nil, clientChannel == nil, let channel = ssh_channel_new(client) else { return nil }
        clientChannelCallbacks.initialize(to: ssh_channel_callbacks_struct())
        let callbacks = clientChannelCallbacks
        callbacks.pointee.size = MemoryLayout<ssh_channel_callbacks_struct>.size
        callbacks.pointee.userdata = me
        callbacks.pointee.channel_pty_request_function = { _, _, term, columns, rows, _, _, userdata in
            SSHBridgeSession.from(userdata).pty = (term.map { String(cString: $0) } ?? "xterm", columns, rows)
            return 0
        }
        callbacks.pointee.channel_env_request_function = { _, _, name, value, userdata in
            let bridge = SSHBridgeSession.from(userdata)
            let key = name.map { String(cString: $0) } ?? ""
            guard ["LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ"].contains(key) || key.hasPrefix("LC_") else { return -1 }
            bridge.environment.append((key, value.map { String(cString: $0) } ?? ""))
            return 0
        }
        callbacks.pointee.channel_exec_request_function = { _, _, command, userdata in
            SSHBridgeSession.from(userdata).setRequest(.exec(command.map { String(cString: $0) } ?? ""))
        }
        callbacks.pointee.channel_shell_request_function = { _, _, userdata in
            SSHBridgeSession.from(userdata).setRequest(.shell)
        }
        callbacks.pointee.channel_subsystem_request_function = { _, _, name, userdata in
            SSHBridgeSession.from(userdata).setRequest(.subsystem(name.map { String(cString: $0) } ?? ""))
        }
        callbacks.pointee.channel_pty_window_change_function = { _, _, columns, rows, _, _, userdata in
            SSHBridgeSession.from(userdata).resize(columns: columns, rows: rows)
            return 0
        }
        callbacks.pointee.channel_data_function = { _, _, data, length, _, userdata in
            SSHBridgeSession.from(userdata).clientData(data, Int(length))
        }
        callbacks.pointee.channel_eof_function = { _, _, userdata in
            SSHBridgeSession.from(userdata).clientEOF = true
        }
        callbacks.pointee.channel_close_function = { _, _, userdata in
            SSHBridgeSession.from(userdata).clientClosed = true
        }
        ssh_set_channel_callbacks(channel, callbacks)
        clientChannel = channel
        return channel
    }

    private func resize(columns: Int32, rows: Int32) {
        pty?.columns = columns
        pty?.rows = rows
        governed?.record(SessionEvent(.resize, text: "\(columns)x\(rows)"))
        if let upstreamChannel { ssh_channel_change_pty_size(upstreamChannel, columns, rows) }
    }

    /// Bytes the user typed or piped in: held while the command is not started; checked line by
    /// line in interactive shells.
    private func clientData(_ data: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        guard let data, length > 0 else { return 0 }
        if toUpstream.count >= Self.bufferLimit { return 0 }
        let bytes = UnsafeRawBufferPointer(start: data, count: length)
        var consumed = length
        if case .shell = request, pty != nil {
            if heldLine != nil { return 0 }   // input waits in libssh until the review is decided
            var forward: [UInt8] = []
            var lineStart = 0
            scan: for (index, byte) in bytes.enumerated() {
                for event in typed.feed(CollectionOfOne(byte)) {
                    guard case .line(let line) = event else { continue }
                    switch decideLine(line) {
                    case .allow:
                        continue
                    case .block(let message):
                        // Erase the typed line in the shell (Ctrl-U) instead of running it.
                        forward.append(contentsOf: bytes[lineStart..<index])
                        forward.append(0x15)
                        forward.append(0x0d)
                        toClient.append(contentsOf: Array("\r\nsluice: blocked: \(message)\r\n".utf8))
                        lineStart = index + 1
                    case .review(let ticket):
                        // Hold the line: everything before Enter goes up, Enter waits for the decision.
                        forward.append(contentsOf: bytes[lineStart..<index])
                        let box = OutcomeBox()
                        heldLine = (ticket.id, box)
                        Task {
                            let outcome = await ticket.outcome()
                            box.value.withLock { $0 = outcome }
                        }
                        toClient.append(contentsOf: Array("\r\nsluice: \(ReviewWording.held(ticket))\r\n".utf8))
                        lineStart = index + 1
                        consumed = index + 1
                        break scan
                    }
                }
            }
            if heldLine == nil { forward.append(contentsOf: bytes[lineStart...]) }
            toUpstream.append(contentsOf: forward)
        } else {
            toUpstream.append(contentsOf: bytes)
        }
        let taken = UnsafeRawBufferPointer(rebasing: bytes[..<consumed])
        if transfer {
            sftp.clientBytes(taken)
        } else {
            recordInput(taken)
        }
        return Int32(consumed)
    }

    /// Input is recorded masked with the recording profile (typed or piped secrets are not stored
    /// raw), through its own stream masker so values split across packets are still found.
    private var inputMasker: SSHOutputMasker?

    private func recordInput(_ bytes: UnsafeRawBufferPointer) {
        guard let governed else { return }
        if inputMasker == nil, let engine = governed.recordingEngine {
            inputMasker = try? SSHOutputMasker(choice: .masked(engine: engine, forced: nil), idleFlush: .milliseconds(200))
        }
        guard let inputMasker else { return }
        if let masked = try? inputMasker.write(bytes), !masked.isEmpty {
            governed.record(SessionEvent(.input, masked))
        }
    }

    private func finishInput() {
        guard let governed, let inputMasker else { return }
        if let rest = try? inputMasker.finish(), !rest.isEmpty { governed.record(SessionEvent(.input, rest)) }
        self.inputMasker = nil
    }

    private func decideLine(_ line: String) -> Decision {
        guard let governed, !line.trimmingCharacters(in: .whitespaces).isEmpty else { return .allow }
        return governed.decide(SSHCommands.shellLine(line))
    }

    /// A typed line waiting for its review: on approval its Enter is sent; on denial or timeout
    /// the line is erased (Ctrl-U) and the user told why.
    private var heldLine: (id: String, outcome: OutcomeBox)?
    private var clientBacklog: [UInt8] = []

    private func releaseHeldLine() {
        guard let held = heldLine, let outcome = held.outcome.value.withLock({ $0 }) else { return }
        heldLine = nil
        toClient.append(contentsOf: Array("sluice: \(ReviewWording.decided(outcome))\r\n".utf8))
        if case .approved = outcome {
            toUpstream.append(0x0d)
        } else {
            // Denied or timed out: the typed line is erased (Ctrl-U) instead of run.
            toUpstream.append(contentsOf: [0x15, 0x0d])
        }
    }

    // MARK: - Relay

    private func step() {
        if !started, let request, let governed {
            if let review {
                guard let outcome = review.outcome.value.withLock({ $0 }) else { return }
                self.review = nil
                if let refusal = ReviewWording.refusal(outcome) { refuse(refusal) } else { start(request) }
                return
            }
            let command: Command
            switch request {
            case .exec(let text): command = SSHCommands.exec(text)
            case .shell: command = Command(text: "shell", classes: ["shell_session"])
            case .subsystem(let name): command = SSHCommands.subsystem(name)
            }
            if case .exec(let text) = request { governed.record(SessionEvent(.input, text: text)) }
            switch governed.decide(command) {
            case .allow: start(request)
            case .block(let message): refuse(message)
            case .review(let ticket):
                toClientStderr.append(contentsOf: Array("sluice: \(ReviewWording.held(ticket))\r\n".utf8))
                let box = OutcomeBox()
                review = (ticket, box)
                Task {
                    let result = await ticket.outcome()
                    box.value.withLock { $0 = result }
                }
            }
            flushToClient()
            return
        }
        guard started || finished == false else { return }
        pump()
    }

    private func refuse(_ message: String) {
        started = true
        toClientStderr.append(contentsOf: Array("sluice: blocked: \(message)\r\n".utf8))
        exitStatus = 126
        upstreamEOF = true
        upstreamClosed = true
        pump()
    }

    private func start(_ request: Request) {
        started = true
        guard let governed else { return }
        switch request {
        case .subsystem: transfer = true
        case .exec(let text): transfer = SSHCommands.exec(text).classes.contains("scp")
        case .shell: transfer = false
        }
        do {
            let choice: MaskingChoice = transfer ? .unmasked : governed.masking(for: .stream)
            stdoutMasker = try SSHOutputMasker(choice: choice)
            stderrMasker = try SSHOutputMasker(choice: governed.masking(for: .stream))
            try connectUpstream(governed.connection, request: request)
        } catch {
            failure = "\(error)"
            logger.warning("ssh upstream failed", metadata: ["connection": "\(governed.connection.name)", "error": "\(error)"])
            governed.mark(.upstreamError(String(String(describing: error).prefix(200))))
            toClientStderr.append(contentsOf: Array("sluice: cannot reach \(governed.connection.name): \(error)\r\n".utf8))
            exitStatus = 255
            upstreamEOF = true
            upstreamClosed = true
        }
        pump()
    }

    /// The gateway's own SSH session to the target, connected (host key checked, key
    /// authenticated) on first use: by the session channel's request or by a port forward.
    private func upstreamSession(_ target: ConnectionTarget) throws -> ssh_session {
        if let upstream { return upstream }
        guard let address = HostPort(target.target) else { throw SSHBridgeError(reason: "target is not HOST:PORT") }
        guard let expected = target.hostKey?.split(separator: " ").prefix(2).joined(separator: " "), !expected.isEmpty else {
            throw SSHBridgeError(reason: "the connection has no host_key; the gateway will not trust an unknown host")
        }
        guard let keyText = target.credential.privateKey?.exposed else {
            throw SSHBridgeError(reason: "the connection has no private_key_file")
        }
        guard let session = ssh_new() else { throw SSHBridgeError(reason: "ssh_new failed") }
        var connected = false
        defer {
            if !connected { ssh_free(session) }
        }
        var port = Int32(address.port)
        var no: Int32 = 0
        var timeout: Int = 15
        ssh_options_set(session, SSH_OPTIONS_HOST, address.host)
        ssh_options_set(session, SSH_OPTIONS_PORT, &port)
        ssh_options_set(session, SSH_OPTIONS_USER, target.credential.username ?? "root")
        ssh_options_set(session, SSH_OPTIONS_STRICTHOSTKEYCHECK, &no)
        ssh_options_set(session, SSH_OPTIONS_KNOWNHOSTS, "/dev/null")
        ssh_options_set(session, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null")
        ssh_options_set(session, SSH_OPTIONS_PROCESS_CONFIG, &no)
        ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &timeout)
        ssh_options_set(session, SSH_OPTIONS_HOSTKEYS,
                        "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256")
        guard ssh_connect(session) == SSH_OK else {
            throw SSHBridgeError(reason: "connect failed: \(String(cString: ssh_get_error(UnsafeMutableRawPointer(session))))")
        }
        var serverKey: ssh_key?
        guard ssh_get_server_publickey(session, &serverKey) == SSH_OK, let serverKey else {
            throw SSHBridgeError(reason: "no server host key")
        }
        defer { ssh_key_free(serverKey) }
        var base64: UnsafeMutablePointer<CChar>?
        ssh_pki_export_pubkey_base64(serverKey, &base64)
        let typeName = ssh_key_type_to_char(ssh_key_type(serverKey)).map { String(cString: $0) } ?? "?"
        let presented = typeName + " " + (base64.map { String(cString: $0) } ?? "")
        ssh_string_free_char(base64)
        guard presented == expected else {
            governed?.mark(.hostKeyMismatch(presented: typeName))
            runtime.control.append("ssh.host_key_mismatch", actor: governed?.identity.user ?? "-", ["connection": target.name])
            throw SSHBridgeError(reason: "the host key of \(target.name) does not match host_key (\(typeName) presented)")
        }
        var key: ssh_key?
        guard ssh_pki_import_privkey_base64(keyText, nil, nil, nil, &key) == SSH_OK, let key else {
            throw SSHBridgeError(reason: "the private key cannot be read (unencrypted OpenSSH or PEM expected)")
        }
        defer { ssh_key_free(key) }
        guard ssh_userauth_publickey(session, nil, key) == Int32(SSH_AUTH_SUCCESS.rawValue) else {
            throw SSHBridgeError(reason: "the target refused the connection's key")
        }
        connected = true
        upstream = session
        ssh_set_blocking(session, 0)
        if let event { ssh_event_add_session(event, session) }
        return session
    }

    private func connectUpstream(_ target: ConnectionTarget, request: Request) throws {
        let session = try upstreamSession(target)
        ssh_set_blocking(session, 1)
        defer { ssh_set_blocking(session, 0) }
        guard let channel = ssh_channel_new(session), ssh_channel_open_session(channel) == SSH_OK else {
            throw SSHBridgeError(reason: "cannot open a session channel")
        }
        upstreamChannel = channel
        for (name, value) in environment { ssh_channel_request_env(channel, name, value) }
        if let pty {
            ssh_channel_request_pty_size(channel, pty.term, pty.columns, pty.rows)
            governed?.record(SessionEvent(.resize, text: "\(pty.columns)x\(pty.rows)"))
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
            SSHBridgeSession.from(userdata).upstreamData(data, Int(length), stderr: isStderr != 0)
        }
        callbacks.pointee.channel_eof_function = { _, _, userdata in
            SSHBridgeSession.from(userdata).upstreamEOF = true
        }
        callbacks.pointee.channel_close_function = { _, _, userdata in
            let bridge = SSHBridgeSession.from(userdata)
            bridge.upstreamEOF = true
            bridge.upstreamClosed = true
        }
        callbacks.pointee.channel_exit_status_function = { _, _, status, userdata in
            SSHBridgeSession.from(userdata).exitStatus = Int32(status)
        }
        callbacks.pointee.channel_exit_signal_function = { _, _, signal, _, _, _, userdata in
            SSHBridgeSession.from(userdata).exitSignal = signal.map { String(cString: $0) }
        }
        ssh_set_channel_callbacks(channel, callbacks)
    }

    /// Output from the target: masked, recorded, queued for the client (backpressure: nothing is
    /// consumed while the client's queue is full).
    private func upstreamData(_ data: UnsafeMutableRawPointer?, _ length: Int, stderr: Bool) -> Int32 {
        guard let data, length > 0 else { return 0 }
        if toClient.count + toClientStderr.count >= Self.bufferLimit { return 0 }
        let bytes = UnsafeRawBufferPointer(start: data, count: length)
        do {
            guard let masker = stderr ? stderrMasker : stdoutMasker else {
                // Output after the stream was finished (or before it started): never pass it unscanned.
                throw SSHBridgeError(reason: "output outside a masked stream")
            }
            deliver(try masker.write(bytes), stderr: stderr)
        } catch {
            // Fail closed: nothing unscanned goes out; the session ends with a clear message.
            failure = "output could not be masked (\(error))"
            toClientStderr.append(contentsOf: Array("\r\nsluice: output stopped: it could not be masked\r\n".utf8))
            exitStatus = 255
            upstreamEOF = true
            upstreamClosed = true
            if let upstreamChannel { ssh_channel_close(upstreamChannel) }
        }
        return Int32(length)
    }

    private func deliver(_ bytes: [UInt8], stderr: Bool) {
        guard !bytes.isEmpty else { return }
        if stderr { toClientStderr.append(contentsOf: bytes) } else { toClient.append(contentsOf: bytes) }
        if transfer && !stderr {
            sftp.serverBytes(bytes)
            return
        }
        if recorded < recordCap {
            let part = Array(bytes.prefix(recordCap - recorded))
            recorded += part.count
            governed?.record(SessionEvent(.output, part))
        } else if !recordCut {
            recordCut = true
            governed?.mark(.outputCut(atBytes: recordCap))
        }
    }

    private func flushToClient() {
        guard let channel = clientChannel, ssh_channel_is_open(channel) != 0 else { return }
        while !toClientStderr.isEmpty {
            let window = Int(ssh_channel_window_size(channel))
            guard window > 0 else { break }
            let count = min(window, toClientStderr.count, 32 * 1024)
            let written = toClientStderr.withUnsafeBytes { ssh_channel_write_stderr(channel, $0.baseAddress, UInt32(count)) }
            guard written > 0 else { break }
            toClientStderr.removeFirst(Int(written))
        }
        while !toClient.isEmpty {
            let window = Int(ssh_channel_window_size(channel))
            guard window > 0 else { break }
            let count = min(window, toClient.count, 32 * 1024)
            let written = toClient.withUnsafeBytes { ssh_channel_write(channel, $0.baseAddress, UInt32(count)) }
            guard written > 0 else { break }
            toClient.removeFirst(Int(written))
        }
    }

    /// libssh calls a data callback only when a packet arrives; bytes a callback left unconsumed
    /// (our queue was full) stay in the channel's buffer. Pull them once there is room again,
    /// or the peers would wait on each other's windows forever.
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
        while !clientBacklog.isEmpty, heldLine == nil, toUpstream.count < Self.bufferLimit {
            let taken = clientBacklog.withUnsafeMutableBytes { clientData($0.baseAddress, $0.count) }
            guard taken > 0 else { break }
            clientBacklog.removeFirst(Int(taken))
        }
        if let channel = clientChannel, clientBacklog.isEmpty {
            while toUpstream.count < Self.bufferLimit, heldLine == nil, ssh_channel_poll(channel, 0) > 0 {
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

    /// Client bytes not yet taken: in our backlog, or still in libssh's channel buffer (left
    /// there while the upstream queue was full). The client's EOF can arrive before them.
    private var clientHasBufferedData: Bool {
        guard clientBacklog.isEmpty else { return true }
        guard let channel = clientChannel else { return false }
        return ssh_channel_poll(channel, 0) > 0
    }

    private func pump() {
        pumpForwards()
        releaseHeldLine()
        pullBuffered()
        if let inputMasker, let bytes = try? inputMasker.idleBytes(), !bytes.isEmpty { governed?.record(SessionEvent(.input, bytes)) }
        if clientEOF { finishInput() }
        // Idle flush of held-back output (interactive latency bound).
        if let stdoutMasker, let bytes = try? stdoutMasker.idleBytes() { deliver(bytes, stderr: false) }
        if let stderrMasker, let bytes = try? stderrMasker.idleBytes() { deliver(bytes, stderr: true) }
        // Client → upstream.
        if let channel = upstreamChannel, ssh_channel_is_open(channel) != 0 {
            while !toUpstream.isEmpty {
                let window = Int(ssh_channel_window_size(channel))
                guard window > 0 else { break }
                let count = min(window, toUpstream.count, 32 * 1024)
                let written = toUpstream.withUnsafeBytes { ssh_channel_write(channel, $0.baseAddress, UInt32(count)) }
                guard written > 0 else { break }
                toUpstream.removeFirst(Int(written))
            }
            // EOF goes upstream only after the last client byte: libssh reports the client's EOF
            // even while bytes we could not take yet still wait in its buffer.
            if clientEOF && toUpstream.isEmpty && !upstreamEOFSent && !clientHasBufferedData {
                upstreamEOFSent = true
                ssh_channel_send_eof(channel)
            }
        }
        // End of output only once libssh holds no unread bytes of the channel either.
        if upstreamEOF && !upstreamHasBufferedData {
            if let masker = stdoutMasker {
                stdoutMasker = nil
                if !masker.failed, let bytes = try? masker.finish() { deliver(bytes, stderr: false) }
            }
            if let masker = stderrMasker {
                stderrMasker = nil
                if !masker.failed, let bytes = try? masker.finish() { deliver(bytes, stderr: true) }
            }
        }
        flushToClient()
        pullBuffered()
        if clientClosed {
            finished = true
            return
        }
        if upstreamClosed && toClient.isEmpty && toClientStderr.isEmpty && !upstreamHasBufferedData
            && stdoutMasker == nil && stderrMasker == nil, let channel = clientChannel {
            if let exitStatus { ssh_channel_request_send_exit_status(channel, exitStatus) }
            if let exitSignal { ssh_channel_request_send_exit_signal(channel, exitSignal, 0, "", "") }
            governed?.mark(.exitStatus(Int(exitStatus ?? -1)))
            ssh_channel_send_eof(channel)
            ssh_channel_close(channel)
            // Let the client close the connection itself (as with sshd), for up to two seconds.
            for _ in 0..<100 where ssh_is_connected(client) != 0 {
                if ssh_event_dopoll(event, 20) == SSH_ERROR { break }
            }
            finished = true
        }
    }

    // MARK: - Port forwarding

    /// A `direct-tcpip` channel (`ssh -L`, `ssh -D`): allowed only to destinations the
    /// connection's `port_forwarding` lists, then through the guardrails (class `port_forward`).
    /// A review holds the channel open request (this session's thread waits) until decided.
    /// Returns 0 when answered here, 1 for libssh's default refusal.
    private func openForward(_ message: ssh_message) -> Int32 {
        guard let governed else { return 1 }
        let host = ssh_message_channel_request_open_destination(message).map { String(cString: $0) } ?? ""
        let port = Int(ssh_message_channel_request_open_destination_port(message))
        let originator = ssh_message_channel_request_open_originator(message).map { String(cString: $0) } ?? "127.0.0.1"
        let originatorPort = ssh_message_channel_request_open_originator_port(message)
        let destination = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        guard !host.isEmpty, host.utf8.count <= 255, forwards.count < Self.forwardLimit else { return 1 }
        let allowed: Bool
        if let cached = forwardDecisions[destination] {
            allowed = cached
        } else {
            allowed = decideForward(host: host, port: port, destination: destination, governed: governed)
            forwardDecisions[destination] = allowed
        }
        guard allowed else { return 1 }
        do {
            let session = try upstreamSession(governed.connection)
            guard let upstreamChannel = ssh_channel_new(session) else { throw SSHBridgeError(reason: "ssh_channel_new failed") }
            ssh_set_blocking(session, 1)
            let status = ssh_channel_open_forward(upstreamChannel, host, Int32(port), originator, originatorPort)
            ssh_set_blocking(session, 0)
            guard status == SSH_OK else {
                ssh_channel_free(upstreamChannel)
                throw SSHBridgeError(reason: "the target refused to open \(destination)")
            }
            guard let clientChannel = ssh_message_channel_request_open_reply_accept(message) else {
                ssh_channel_close(upstreamChannel)
                ssh_channel_free(upstreamChannel)
                return 0
            }
            forwards.append(SSHForward(client: clientChannel, upstream: upstreamChannel, destination: destination))
            governed.mark(.forward(destination: destination, .opened))
            return 0
        } catch {
            governed.mark(.forward(destination: destination, .failed(String(String(describing: error).prefix(200)))))
            tell("sluice: forward to \(destination) failed: \(error)")
            return 1
        }
    }

    private func decideForward(host: String, port: Int, destination: String, governed: any GovernedSession) -> Bool {
        guard governed.connection.portForwarding.permits(host: host, port: port) else {
            governed.mark(.forward(destination: destination, .refused("not in port_forwarding")))
            tell("sluice: port forwarding to \(destination) is not allowed on \(governed.connection.name)")
            return false
        }
        switch governed.decide(SSHCommands.portForward(destination)) {
        case .allow:
            return true
        case .block(let message):
            tell("sluice: blocked: \(message)")
            return false
        case .review(let ticket):
            tell("sluice: forward to \(destination) \(ReviewWording.held(ticket))")
            flushToClient()
            let outcome = (try? blockingAwait { await ticket.outcome() }) ?? .timedOut
            tell("sluice: forward to \(destination) \(ReviewWording.decided(outcome))")
            if case .approved = outcome { return true }
            return false
        }
    }

    /// A line for the user on the session channel's stderr, when there is one (`ssh -N` has none;
    /// the client then only sees "administratively prohibited", and the record says why).
    private func tell(_ line: String) {
        guard clientChannel != nil else { return }
        toClientStderr.append(contentsOf: Array((line + "\r\n").utf8))
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
        governed?.mark(.forward(destination: forward.destination, .closed(bytesUp: Int(forward.bytesUp), bytesDown: Int(forward.bytesDown))))
    }
}
