import NIOCore

/// A fault that ends the connection: the client gets a FATAL error with `sqlState` and
/// `message` (no payload bytes), the record gets `reason`.
struct PostgresSessionFailure: Error {
    var sqlState: String
    var message: String
    var reason: String
}

/// The relaying state of a Postgres session, once both logins are done: decides each batch the
/// client sends (forward, refuse, or hold for review), and masks and records what the server
/// answers (``relayUpstream(_:out:)``).
struct PostgresRelay {
    typealias Action = PostgresProxyMachine.Action

    /// Client responses waiting behind upstream ones (ordering of locally generated replies).
    private enum Reply {
        case upstream
        case local(ByteBuffer)
    }

    /// A COPY TO STDOUT in progress.
    enum CopyOut {
        case none
        case relaying
        /// Binary COPY under masking: refused, its data dropped until it ends.
        case refused
    }

    let configuration: PostgresAdapterConfiguration
    let session: any GovernedSession
    let masker: PostgresResultMasker
    /// The status of the last ReadyForQuery ('I', 'T' or 'E'), for locally made ones.
    private(set) var transactionStatus: UInt8
    /// The server's `standard_conforming_strings`, from its ParameterStatus: how `'…'` is lexed.
    private(set) var standardConformingStrings: Bool

    // Client side.
    private var batch: [PostgresMessage] = []
    private var batchBytes = 0
    private var held: [PostgresMessage]?
    private var discardUntilSync = false
    private var replies = CircularBuffer<Reply>()
    private var prepared = PreparedCommands()
    /// Between the server's CopyInResponse and the end of that COPY: the client may send CopyData.
    private var copyInActive = false

    // Upstream side.
    private var tracker = ExtendedQueryTracker()
    private var recorder: ResultRecorder
    private var copyOut = CopyOut.none

    init(configuration: PostgresAdapterConfiguration, session: any GovernedSession, masker: PostgresResultMasker,
         transactionStatus: UInt8, standardConformingStrings: Bool) {
        self.configuration = configuration
        self.session = session
        self.masker = masker
        self.transactionStatus = transactionStatus
        self.standardConformingStrings = standardConformingStrings
        recorder = ResultRecorder(cap: configuration.recordOutputCap)
    }

    /// A batch waits for its review: the client's next messages stay unread until it is decided.
    var isHolding: Bool { held != nil }

    // MARK: - Client side

    /// Frontend message types the relay accepts; any other type ends the session (fail closed).
    private static let batchedTypes: Set<UInt8> = [UInt8(ascii: "P"), UInt8(ascii: "B"), UInt8(ascii: "D"),
                                                   UInt8(ascii: "E"), UInt8(ascii: "C")]
    private static let batchEndingTypes: Set<UInt8> = [UInt8(ascii: "Q"), UInt8(ascii: "S"), UInt8(ascii: "H")]

    /// A client message (Terminate is the machine's).
    mutating func clientMessage(_ message: PostgresMessage) throws(PostgresSessionFailure) -> [Action] {
        switch message.type {
        case UInt8(ascii: "d"), UInt8(ascii: "c"), UInt8(ascii: "f"):
            // COPY FROM STDIN data: recorded by size, forwarded as it comes. Outside a COPY the
            // server ignores these messages; the gateway drops them.
            guard copyInActive else { return [] }
            if message.type == UInt8(ascii: "c") || message.type == UInt8(ascii: "f") {
                copyInActive = false
                session.mark(.copyIn(done: message.type == UInt8(ascii: "c")))
            }
            return [.sendToUpstream(message.framed)]
        case UInt8(ascii: "F"):
            return refuseFunctionCall(message)
        default:
            guard Self.batchedTypes.contains(message.type) || Self.batchEndingTypes.contains(message.type) else {
                throw PostgresSessionFailure(sqlState: "08P01",
                                             message: "protocol violation: message type \(message.type) is not allowed through Sluice",
                                             reason: "client message type \(message.type) of \(message.body.readableBytes) bytes")
            }
        }
        if discardUntilSync {
            if message.type == UInt8(ascii: "S") {
                discardUntilSync = false
                return replyBuffer(PostgresMessages.readyForQuery(transactionStatus).framed)
            }
            return []
        }
        batch.append(message)
        batchBytes += message.body.readableBytes
        if Self.batchEndingTypes.contains(message.type) { return try completeBatch() }
        if batchBytes > configuration.maximumMessageSize {
            throw PostgresSessionFailure(sqlState: "54000", message: "pipeline too large without Sync",
                                         reason: "batch of \(batchBytes) bytes")
        }
        return []
    }

    /// Decides every statement of a finished batch (a simple query, or extended-protocol
    /// messages up to Sync/Flush): all allowed → forward; any blocked → refuse the batch;
    /// any held for review → hold the batch until it is decided.
    private mutating func completeBatch() throws(PostgresSessionFailure) -> [Action] {
        let messages = batch
        batch = []
        batchBytes = 0
        var commands: [Command] = []
        for message in messages {
            var body = message.body
            switch message.type {
            case UInt8(ascii: "Q"):
                guard let text = body.readNullTerminatedString() else {
                    throw PostgresSessionFailure(sqlState: "08P01", message: "protocol violation: malformed Query",
                                                 reason: "unterminated query")
                }
                session.record(SessionEvent(.input, masker.recordable(Array(text.utf8))))
                guard let found = sqlCommands(text, statementName: nil) else {
                    return refuse(messages, message: "too many statements in one query")
                }
                commands += found
            case UInt8(ascii: "P"):
                guard let name = body.readNullTerminatedString(), let text = body.readNullTerminatedString() else {
                    throw PostgresSessionFailure(sqlState: "08P01", message: "protocol violation: malformed Parse",
                                                 reason: "unterminated Parse")
                }
                session.record(SessionEvent(.input, masker.recordable(Array(text.utf8))))
                guard let found = sqlCommands(text, statementName: name.isEmpty ? nil : name) else {
                    return refuse(messages, message: "too many statements in one query")
                }
                commands += found
            case UInt8(ascii: "B"):
                if let text = Self.bindRecord(message.body) {
                    session.record(SessionEvent(.input, masker.recordable(Array(text.utf8))))
                }
            default:
                continue
            }
        }
        var review: ReviewTicket?
        for command in commands {
            switch session.decide(command) {
            case .allow: continue
            case .block(let message): return refuse(messages, message: message)
            case .review(let ticket): if review == nil { review = ticket }
            }
        }
        if let review {
            held = messages
            var notice = ByteBuffer()
            PostgresMessages.notice(sqlState: "01000",
                                    message: "Sluice: this statement is held for review \(review.id); it runs once approved",
                                    hint: "an approver runs: \(review.approveHint)").write(into: &notice)
            return [.sendToClient(notice), .awaitReview(review)]
        }
        return forward(messages)
    }

    /// The commands a query string runs, for the guardrails: each statement, each statement
    /// inside it (CTE bodies, PREPARE bodies, …), what an `EXECUTE name` executes, and — when the
    /// text has a backslash, so the two settings of `standard_conforming_strings` read it
    /// differently — the statements of the other reading too (a pipelined `SET` may change the
    /// setting before the server reads this text). Nil when there are too many statements.
    private mutating func sqlCommands(_ text: String, statementName: String?) -> [Command]? {
        var statements = SQLStatements.split(text, standardConformingStrings: standardConformingStrings)
        if text.utf8.contains(UInt8(ascii: "\\")) {
            let seen = Set(statements.map(\.code))
            statements += SQLStatements.split(text, standardConformingStrings: !standardConformingStrings)
                .filter { !seen.contains($0.code) }
        }
        guard statements.count <= configuration.maximumStatements else { return nil }
        var commands: [Command] = []
        for statement in statements {
            var own = [Command(text: statement.code, classes: statement.classes)]
            own += statement.nested.map { Command(text: $0.code, classes: $0.classes) }
            switch (statement.preparedRole, statement.preparedName) {
            case (.prepare?, let name?):
                prepared.remember(name, Array(own.dropFirst()))
            case (.execute?, let name?):
                own += prepared.commands(executing: name)
            case (.deallocate?, let name?):
                prepared.forget(name)
            default:
                break
            }
            commands += own
        }
        if let statementName { prepared.remember(statementName, commands) }
        return commands
    }

    /// What the record keeps of a Bind with parameters: the statement name and each value (text
    /// values as sent, then masked for the record; binary ones by length), at most 4 KiB.
    static func bindRecord(_ body: ByteBuffer) -> String? {
        var body = body
        guard body.readNullTerminatedString() != nil, let statement = body.readNullTerminatedString(),
              let formatCount = body.readInteger(as: Int16.self), formatCount >= 0 else { return nil }
        var formats: [Int16] = []
        for _ in 0..<formatCount { formats.append(body.readInteger(as: Int16.self) ?? 0) }
        guard let count = body.readInteger(as: Int16.self), count > 0 else { return nil }
        var parts: [String] = []
        var size = 0
        for index in 0..<Int(count) {
            guard let length = body.readInteger(as: Int32.self) else { break }
            let format = formats.count == 1 ? formats[0] : (index < formats.count ? formats[index] : 0)
            var part: String
            if length < 0 {
                part = "NULL"
            } else if format != 0 {
                part = "<binary \(length) bytes>"
                body.moveReaderIndex(forwardBy: min(Int(length), body.readableBytes))
            } else {
                guard let value = body.readSlice(length: Int(length)) else { break }
                part = "'" + String(decoding: value.readableBytesView.prefix(1024), as: UTF8.self) + "'"
            }
            part = "$\(index + 1)=" + part
            size += part.utf8.count
            if size > 4096 { parts.append("…"); break }
            parts.append(part)
        }
        return "BIND \(statement.isEmpty ? "(unnamed)" : statement.prefix(64)) (" + parts.joined(separator: ", ") + ")"
    }

    /// FunctionCall (the fast path libpq uses for large objects) names a function by OID with
    /// binary arguments: no guardrail can read it and its result bypasses result masking, so it
    /// is refused, recorded, and the session goes on.
    private mutating func refuseFunctionCall(_ message: PostgresMessage) -> [Action] {
        var body = message.body
        let oid = body.readInteger(as: UInt32.self) ?? 0
        session.record(SessionEvent(.input, Array("FUNCTION CALL \(oid)".utf8)))
        session.mark(.refusedFunctionCall(oid: Int(oid)))
        let messages = batch + [message]
        batch = []
        batchBytes = 0
        return refuse(messages, message: "fast-path function calls are not allowed through Sluice",
                      hint: "use SQL instead: SELECT lo_get(oid) to read a large object, lo_from_bytea(0, data) to write one")
    }

    private mutating func forward(_ messages: [PostgresMessage]) -> [Action] {
        var out = ByteBuffer()
        for message in messages {
            if tracker.forwarded(message) { replies.append(.upstream) }
            message.write(into: &out)
        }
        return [.sendToUpstream(out)]
    }

    /// Refuses a batch: the error (and for Sync/Query batches ReadyForQuery) in order after the
    /// replies still due from upstream. The statements never reach the server.
    private mutating func refuse(_ messages: [PostgresMessage], message: String,
                                 hint: String = "Sluice refused this statement") -> [Action] {
        var out = ByteBuffer()
        PostgresMessages.error(sqlState: "42501", message: message, hint: hint).write(into: &out)
        let last = messages.last?.type
        if last == UInt8(ascii: "Q") || last == UInt8(ascii: "S") || last == UInt8(ascii: "F") {
            PostgresMessages.readyForQuery(transactionStatus).write(into: &out)
        } else {
            discardUntilSync = true
        }
        return replyBuffer(out)
    }

    private mutating func replyBuffer(_ buffer: ByteBuffer) -> [Action] {
        if replies.isEmpty { return [.sendToClient(buffer)] }
        replies.append(.local(buffer))
        return []
    }

    /// The review of the held batch was decided: it is forwarded or refused.
    mutating func reviewDecided(_ outcome: ReviewOutcome) -> [Action] {
        guard let messages = held else { return [] }
        held = nil
        if let refusal = ReviewWording.refusal(outcome) {
            var message = refusal
            if case .timedOut = outcome { message += "; the statement did not run" }
            return refuse(messages, message: message)
        }
        return forward(messages)
    }
}

/// Named prepared statements (SQL PREPARE and protocol Parse) → the commands they run, so an
/// `EXECUTE name` is decided by what it executes.
struct PreparedCommands {
    static let maximumStatements = 4096
    private var commands: [String: [Command]] = [:]
    /// Set when the map overflowed and was emptied: an unknown name is then `unknown`.
    private var forgotten = false

    mutating func remember(_ name: String, _ statementCommands: [Command]) {
        if commands[name] == nil && commands.count >= Self.maximumStatements {
            commands.removeAll()
            forgotten = true
        }
        commands[name] = Array(statementCommands.prefix(64))
    }

    mutating func forget(_ name: String) {
        if name == "*" { commands.removeAll() } else { commands[name] = nil }
    }

    /// What `EXECUTE name` runs; an `unknown` command when the name may have been forgotten.
    func commands(executing name: String) -> [Command] {
        if let executed = commands[name] { return executed }
        return forgotten ? [Command(text: "EXECUTE \(name.prefix(64))", classes: ["unknown"])] : []
    }
}

// MARK: - Upstream side

extension PostgresRelay {
    /// One server message: masked into `out` for the client, recorded, or refused. A message
    /// that cannot be read or masked throws, and the connection ends (fail closed).
    mutating func relayUpstream(_ message: PostgresMessage, out: inout ByteBuffer) throws {
        switch message.type {
        case UInt8(ascii: "D"):
            if case .refused = copyOut { return }
            guard let plan = tracker.planForRow(masker) else {
                throw PostgresProtocolError(.unexpectedMessage, "DataRow without a description")
            }
            if let masked = try masker.maskDataRow(message.body, plan: plan) {
                PostgresMessage(type: message.type, body: masked).write(into: &out)
                recorder.row(masked, plan: plan, masker: masker)
            } else {
                message.write(into: &out)
                recorder.row(message.body, plan: plan, masker: masker)
            }
        case UInt8(ascii: "T"):
            let columns = try ColumnDescription.parseRowDescription(message.body)
            // Column names can carry data (`EXECUTE format('create table t(%I int)', email)`).
            var shown = columns
            for index in shown.indices { shown[index].name = try masker.maskName(shown[index].name) }
            if case .result = tracker.rowDescription(columns, masker: masker) { recorder.start(columns: shown) }
            (shown == columns ? message : ColumnDescription.rowDescription(shown)).write(into: &out)
        case UInt8(ascii: "n"):
            tracker.noData()
            message.write(into: &out)
        case UInt8(ascii: "C"), UInt8(ascii: "I"), UInt8(ascii: "s"):
            var message = message
            if message.type == UInt8(ascii: "C") {
                copyInActive = false
                var body = message.body
                guard let tag = body.readNullTerminatedString() else {
                    throw PostgresProtocolError(.malformedMessage, "CommandComplete without a tag")
                }
                let shown = PostgresResultMasker.isPlainTag(tag) ? tag : try masker.maskString(tag)
                if shown != tag { message = PostgresMessages.make(message.type) { $0.writeNullTerminatedString(shown) } }
            }
            session.record(recorder.finish(message))
            tracker.resultEnded()
            let wasRefused: Bool
            if case .refused = copyOut { wasRefused = true } else { wasRefused = false }
            copyOut = .none
            if !wasRefused { message.write(into: &out) }
        case UInt8(ascii: "E"), UInt8(ascii: "N"):
            if message.type == UInt8(ascii: "E") {
                tracker.errorReceived()
                copyOut = .none
                copyInActive = false
            }
            if let masked = try masker.maskFields(message.body, type: message.type) {
                masked.write(into: &out)
            } else {
                message.write(into: &out)
            }
        case UInt8(ascii: "A"):
            var body = message.body
            guard let pid = body.readInteger(as: Int32.self), let channel = body.readNullTerminatedString(),
                  let payload = body.readNullTerminatedString() else {
                throw PostgresProtocolError(.malformedMessage, "NotificationResponse")
            }
            let shownChannel = try masker.maskString(channel)
            let shownPayload = try masker.maskString(payload)
            if shownChannel != channel || shownPayload != payload {
                PostgresMessages.make(UInt8(ascii: "A")) { out in
                    out.writeInteger(pid)
                    out.writeNullTerminatedString(shownChannel)
                    out.writeNullTerminatedString(shownPayload)
                }.write(into: &out)
            } else {
                message.write(into: &out)
            }
        case UInt8(ascii: "S"):
            // ParameterStatus: `set_config('application_name', <a value>, false)` reports the value.
            var body = message.body
            guard let name = body.readNullTerminatedString(), let value = body.readNullTerminatedString() else {
                throw PostgresProtocolError(.malformedMessage, "ParameterStatus")
            }
            if name == "standard_conforming_strings" { standardConformingStrings = value != "off" }
            let shown = try masker.maskString(value)
            if shown == value { message.write(into: &out) } else { PostgresMessages.parameterStatus(name, shown).write(into: &out) }
        case UInt8(ascii: "G"):
            copyInActive = true
            message.write(into: &out)
        case UInt8(ascii: "1"), UInt8(ascii: "2"), UInt8(ascii: "3"), UInt8(ascii: "t"):
            // ParseComplete, BindComplete, CloseComplete, ParameterDescription: no text.
            message.write(into: &out)
        case UInt8(ascii: "H"), UInt8(ascii: "W"):
            var body = message.body
            let format = body.readInteger(as: UInt8.self) ?? 0
            if outputMasked && (format != 0 || message.type == UInt8(ascii: "W")) {
                // Binary COPY cannot be scanned per value: refuse it (fail closed).
                copyOut = .refused
                PostgresMessages.error(sqlState: "42501", message: "binary COPY output cannot be masked; use text format").write(into: &out)
                session.mark(.refused("binary copy out"))
                return
            }
            copyOut = .relaying
            recorder.start(columns: [])
            message.write(into: &out)
        case UInt8(ascii: "d"):
            if case .refused = copyOut { return }
            if let masked = try masker.maskText(message.body) {
                PostgresMessage(type: message.type, body: masked).write(into: &out)
                recorder.copyRow(masked, masked: true, masker: masker)
            } else {
                message.write(into: &out)
                recorder.copyRow(message.body, masked: outputMasked, masker: masker)
            }
        case UInt8(ascii: "c"):
            if case .refused = copyOut { return }
            message.write(into: &out)
        case UInt8(ascii: "Z"):
            var body = message.body
            if let status = body.readInteger(as: UInt8.self) { transactionStatus = status }
            tracker.readyForQuery()
            copyOut = .none
            copyInActive = false
            message.write(into: &out)
            if case .upstream = replies.first { replies.removeFirst() }
            while case .local(var buffer) = replies.first {
                replies.removeFirst()
                out.writeBuffer(&buffer)
            }
            let counts = masker.takeCounts()
            if !counts.isEmpty { session.reportMasking(bytes: 0, counts: counts, latency: .zero) }
            masker.refresh()
        default:
            // FunctionCallResponse (its call was refused), a second BackendKeyData or
            // authentication request, or a type this gateway does not know: nothing unread leaves.
            throw PostgresProtocolError(.unexpectedMessage, "server message type \(message.type) of \(message.body.readableBytes) bytes")
        }
    }

    /// Whether the user's output is masked (else it is recorded masked, shown raw).
    private var outputMasked: Bool {
        if case .masked = session.masking(for: .stream) { return true }
        return false
    }
}
