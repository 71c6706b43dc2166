import MaskEngine
import NIOCore

/// Settings of the Postgres listener.
public struct PostgresAdapterConfiguration: Sendable {
    /// Largest protocol message accepted from either side; larger is a protocol error.
    public var maximumMessageSize = 64 << 20
    /// Whether an SSLRequest is answered `S` (TLS with the gateway's certificate) or `N`.
    public var clientTLS = false
    /// Result bytes recorded per statement; the rest is counted, not stored.
    public var recordOutputCap = 1 << 20
    /// Statements per simple query beyond which the query is refused.
    public var maximumStatements = 1000
    /// How long a client may take from connecting to sending its token (startup packet, TLS
    /// request, password): after it, an unauthenticated connection is closed (`limits.startup_timeout`).
    public var startupTimeout: Duration = .seconds(10)
    /// Logins (the token is the password) only over TLS: a startup packet on a plaintext
    /// connection is refused (`postgres.require_tls`, default on when the listener offers TLS).
    public var requireClientTLS = false

    public init() {}
}

/// The sans-IO heart of the Postgres adapter: bytes and events in, actions out. The NIO handler
/// performs the actions; tests drive the machine directly.
struct PostgresProxyMachine {
    enum Action {
        case sendToClient(ByteBuffer)
        case sendToUpstream(ByteBuffer)
        /// Write `S`, then put TLS in front of the client connection.
        case startClientTLS
        /// Authenticate the token for the connection (the database name); answer with
        /// `sessionOpened` or `sessionRefused`.
        case openSession(token: String, connection: String)
        /// Connect to the upstream server of the session's connection; answer with `upstreamConnected`.
        case connectUpstream(ConnectionTarget)
        /// Forward a cancel request to the upstream backend of another session.
        case cancel(processID: Int32, secretKey: Int32)
        /// Register this session's client-visible cancel key (pid, key) → upstream key.
        case registerCancelKey(client: CancelKey, upstream: CancelKey)
        /// Await the review, then call `reviewDecided`.
        case awaitReview(ReviewTicket)
        /// Close both connections after flushing what was sent.
        case close(reason: String)
    }

    struct CancelKey: Hashable, Sendable {
        var processID: Int32
        var secretKey: Int32
    }

    private enum State {
        case startup
        case awaitingPassword(parameters: [String: String])
        case authenticating
        case connecting
        case upstreamStartup(scram: PostgresClientAuth.SCRAM?)
        case loadingCatalog
        case relaying
        case closed
    }

    /// What the upstream's responses answer, in order.
    private enum Expectation {
        case simpleQuery
        case describeStatement(String)
        case describePortal(String)
        case execute(String)
        case sync
    }

    /// Client responses waiting behind upstream ones (ordering of locally generated replies).
    private enum Reply {
        case upstream
        case local(ByteBuffer)
    }

    let configuration: PostgresAdapterConfiguration
    private var state = State.startup
    private var clientDecoder: PostgresFrameDecoder
    private var upstreamDecoder: PostgresFrameDecoder
    private(set) var session: (any GovernedSession)?
    /// Whether the client connection was upgraded to TLS.
    private var clientTLSActive = false
    private var masker: PostgresResultMasker?
    private var clientParameters: [String: String] = [:]
    private var transactionStatus = UInt8(ascii: "I")

    // Relay state.
    private var batch: [PostgresMessage] = []
    private var batchBytes = 0
    private var held: [PostgresMessage]?
    private var discardUntilSync = false
    private var replies: [Reply] = []
    private var expectations: [Expectation] = []
    private var statements: [String: [ColumnDescription]] = [:]
    private var portals: [String: (statement: String, formats: [Int16], described: [ColumnDescription]?)] = [:]
    private var pendingBinds: [String: (statement: String, formats: [Int16])] = [:]
    private var currentPlan: RowPlan?
    private var copyOut: (refused: Bool, active: Bool) = (false, false)
    private var resultRecord: [UInt8] = []
    private var resultRows = 0
    private var resultCut = false
    private var catalog: [UInt32: String] = [:]
    private var catalogColumns = 0
    private var upstreamKey: CancelKey?
    private var serverParameters: [(String, String)] = []
    /// The server's `standard_conforming_strings`, from its ParameterStatus: how `'…'` is lexed.
    private(set) var standardConformingStrings = true
    /// Between the server's CopyInResponse and the end of that COPY: the client may send CopyData.
    private var copyInActive = false
    /// Named prepared statements (SQL PREPARE and protocol Parse) → the commands they run, so an
    /// `EXECUTE name` is decided by what it executes.
    private var prepared: [String: [Command]] = [:]
    /// Set when the prepared map overflowed and was emptied: an unknown name is then `unknown`.
    private var preparedForgotten = false
    static let maximumPreparedStatements = 4096
    let clientKey: CancelKey

    init(configuration: PostgresAdapterConfiguration, clientKey: CancelKey) {
        self.configuration = configuration
        self.clientKey = clientKey
        clientDecoder = PostgresFrameDecoder(maximumMessageSize: configuration.maximumMessageSize, expectsStartup: true)
        upstreamDecoder = PostgresFrameDecoder(maximumMessageSize: configuration.maximumMessageSize, expectsStartup: false)
    }

    var isRelaying: Bool { if case .relaying = state { return true } else { return false } }
    var isHolding: Bool { held != nil }

    // MARK: - Client input

    mutating func clientBytes(_ bytes: inout ByteBuffer) -> [Action] {
        clientDecoder.append(&bytes)
        var actions: [Action] = []
        do {
            while true {
                if case .closed = state { break }
                if held != nil { break }
                if case .authenticating = state { break }
                if case .connecting = state { break }
                if case .upstreamStartup = state { break }
                if case .loadingCatalog = state { break }
                if clientDecoder.expectsStartup {
                    guard let packet = try clientDecoder.nextStartup() else { break }
                    actions += startupPacket(packet)
                    continue
                }
                guard let message = try clientDecoder.next() else { break }
                actions += clientMessage(message)
            }
            if clientDecoder.bufferedBytes > configuration.maximumMessageSize * 2 {
                throw PostgresProtocolError(.messageTooLarge, "client sent \(clientDecoder.bufferedBytes) bytes while a command was held")
            }
        } catch let error as PostgresProtocolError {
            actions += fail(sqlState: "08P01", message: "protocol violation (\(error.code.rawValue))", reason: error.description)
        } catch {
            actions += fail(sqlState: "08P01", message: "protocol violation", reason: "\(type(of: error))")
        }
        return actions
    }

    private mutating func fail(sqlState: String, message: String, reason: String) -> [Action] {
        var out = ByteBuffer()
        PostgresMessages.error(sqlState: sqlState, message: message, severity: "FATAL").write(into: &out)
        state = .closed
        session?.mark(.error(String(reason.prefix(200))))
        return [.sendToClient(out), .close(reason: reason)]
    }

    private mutating func startupPacket(_ packet: StartupPacket) -> [Action] {
        switch packet {
        case .ssl:
            if configuration.clientTLS {
                clientTLSActive = true
                return [.startClientTLS]
            }
            return [.sendToClient(ByteBuffer(string: "N"))]
        case .gssEncryption:
            return [.sendToClient(ByteBuffer(string: "N"))]
        case .cancel(let processID, let secretKey):
            state = .closed
            return [.cancel(processID: processID, secretKey: secretKey), .close(reason: "cancel request")]
        case .startup(let parameters):
            if configuration.requireClientTLS && !clientTLSActive {
                return fail(sqlState: "28000", message: "the gateway requires TLS for logins (the token is a password): "
                                + "connect with sslmode=require or verify-full", reason: "plaintext login refused")
            }
            guard let database = parameters["database"] ?? parameters["user"], !database.isEmpty else {
                return fail(sqlState: "28000", message: "name the connection as the database: dbname=CONNECTION", reason: "no database")
            }
            if parameters["replication"].map({ $0 != "false" && $0 != "0" && $0 != "off" }) ?? false {
                return fail(sqlState: "28000", message: "replication connections are not allowed through Sluice", reason: "replication")
            }
            var parameters = parameters
            parameters["database"] = database
            state = .awaitingPassword(parameters: parameters)
            var out = ByteBuffer()
            PostgresMessages.authentication(3).write(into: &out)
            return [.sendToClient(out)]
        }
    }

    private mutating func clientMessage(_ message: PostgresMessage) -> [Action] {
        switch state {
        case .awaitingPassword(let parameters):
            guard message.type == UInt8(ascii: "p") else {
                return fail(sqlState: "08P01", message: "expected a password message", reason: "unexpected message before auth")
            }
            var body = message.body
            guard let token = body.readNullTerminatedString(), !token.isEmpty else {
                return fail(sqlState: "28P01", message: "send your Sluice token as the password", reason: "empty password")
            }
            clientParameters = parameters
            state = .authenticating
            return [.openSession(token: token, connection: parameters["database"] ?? "")]
        case .relaying:
            return relayClient(message)
        default:
            return fail(sqlState: "08P01", message: "unexpected message", reason: "client message in state \(state)")
        }
    }

    // MARK: - Session and upstream setup

    mutating func sessionOpened(_ session: any GovernedSession) -> [Action] {
        guard case .authenticating = state else { return [] }
        self.session = session
        state = .connecting
        return [.connectUpstream(session.connection)]
    }

    /// The startup deadline passed. A client that has not sent its token yet (still in the
    /// startup packet or the password exchange) is told and closed, as PostgreSQL does with
    /// `authentication_timeout`; once the token is in, the gateway's own steps are not timed here.
    mutating func startupDeadlinePassed() -> [Action] {
        switch state {
        case .startup, .awaitingPassword:
            return fail(sqlState: "57014", message: "canceling authentication due to timeout (the token must arrive within "
                            + "\(configuration.startupTimeout.components.seconds) s)", reason: "startup timeout")
        default:
            return []
        }
    }

    mutating func sessionRefused(_ error: GovernorError) -> [Action] {
        let sqlState: String
        switch error.code {
        case .unauthenticated: sqlState = "28P01"
        case .forbidden, .unknownConnection, .wrongProtocol: sqlState = "28000"
        case .throttled: sqlState = "08004"
        default: sqlState = "08006"
        }
        return fail(sqlState: sqlState, message: error.message, reason: error.code.rawValue)
    }

    mutating func upstreamConnected() -> [Action] {
        guard case .connecting = state, let session else { return [] }
        let target = session.connection
        var parameters: [(String, String)] = [
            ("user", target.credential.username ?? "postgres"),
            ("database", target.database ?? target.name),
            ("application_name", "sluice:" + (clientParameters["application_name"] ?? "client").prefix(40)),
        ]
        for key in ["client_encoding", "DateStyle", "TimeZone", "extra_float_digits", "IntervalStyle", "search_path"] {
            if let value = clientParameters[key] { parameters.append((key, value)) }
        }
        state = .upstreamStartup(scram: nil)
        return [.sendToUpstream(PostgresMessages.startup(parameters))]
    }

    mutating func upstreamFailed(_ reason: String) -> [Action] {
        session?.reportUpstreamFailure(reason)
        return fail(sqlState: "08006", message: "the gateway could not reach the database", reason: reason)
    }

    // MARK: - Upstream input

    mutating func upstreamBytes(_ bytes: inout ByteBuffer) -> [Action] {
        upstreamDecoder.append(&bytes)
        var actions: [Action] = []
        var toClient = ByteBuffer()
        do {
            while let message = try upstreamDecoder.next() {
                if case .closed = state { break }
                actions += try upstreamMessage(message, out: &toClient)
            }
        } catch let error as PostgresProtocolError {
            if toClient.readableBytes > 0 { actions.insert(.sendToClient(toClient), at: 0) }
            return actions + fail(sqlState: error.code == .upstreamAuthentication ? "08006" : "XX000",
                                  message: error.code == .upstreamAuthentication
                                      ? "the gateway could not log in to the database (\(error.code.rawValue))"
                                      : "the gateway stopped this result: it could not be masked (\(error.code.rawValue))",
                                  reason: error.description)
        } catch {
            return actions + fail(sqlState: "XX000", message: "the gateway stopped this result: it could not be masked",
                                  reason: "masking failed: \(error)")
        }
        if toClient.readableBytes > 0 { actions.insert(.sendToClient(toClient), at: 0) }
        return actions
    }

    private mutating func upstreamMessage(_ message: PostgresMessage, out: inout ByteBuffer) throws -> [Action] {
        switch state {
        case .upstreamStartup:
            return try upstreamStartupMessage(message, out: &out)
        case .loadingCatalog:
            return try catalogMessage(message, out: &out)
        case .relaying:
            return try relayUpstream(message, out: &out)
        default:
            return []
        }
    }

    private mutating func upstreamStartupMessage(_ message: PostgresMessage, out: inout ByteBuffer) throws -> [Action] {
        guard case .upstreamStartup(var scram) = state, let session else { return [] }
        var body = message.body
        switch message.type {
        case UInt8(ascii: "R"):
            guard let code = body.readInteger(as: Int32.self) else {
                throw PostgresProtocolError(.malformedMessage, "authentication request without a code")
            }
            let credential = session.connection.credential
            switch code {
            case 0:
                return []
            case 3:
                guard let password = credential.password else {
                    throw PostgresProtocolError(.upstreamAuthentication, "server asks for a password; the connection has none")
                }
                return [.sendToUpstream(frame(PostgresMessages.password(password.withBytes { $0 })))]
            case 5:
                guard let password = credential.password, let salt = body.readBytes(length: 4) else {
                    throw PostgresProtocolError(.upstreamAuthentication, "md5 requested without a password or salt")
                }
                let response = PostgresClientAuth.md5Response(user: credential.username ?? "postgres", password: password, salt: salt)
                return [.sendToUpstream(frame(PostgresMessages.password(response)))]
            case 10:
                var mechanisms: [String] = []
                while let name = body.readNullTerminatedString(), !name.isEmpty { mechanisms.append(name) }
                guard mechanisms.contains("SCRAM-SHA-256"), let password = credential.password else {
                    throw PostgresProtocolError(.unsupportedAuthentication, "SASL mechanisms \(mechanisms.joined(separator: ","))")
                }
                var exchange = PostgresClientAuth.SCRAM(password: password)
                let first = exchange.clientFirst()
                state = .upstreamStartup(scram: exchange)
                return [.sendToUpstream(frame(PostgresMessages.saslInitialResponse(mechanism: "SCRAM-SHA-256", data: first)))]
            case 11:
                guard scram != nil else { throw PostgresProtocolError(.upstreamAuthentication, "SASL continue without a start") }
                let final = try scram!.clientFinal(serverFirst: body.readBytes(length: body.readableBytes) ?? [])
                state = .upstreamStartup(scram: scram)
                return [.sendToUpstream(frame(PostgresMessages.saslResponse(final)))]
            case 12:
                guard let scram else { throw PostgresProtocolError(.upstreamAuthentication, "SASL final without a start") }
                try scram.verifyServerFinal(body.readBytes(length: body.readableBytes) ?? [])
                return []
            default:
                throw PostgresProtocolError(.unsupportedAuthentication, "authentication method \(code)")
            }
        case UInt8(ascii: "E"):
            let fields = try PostgresMessages.parseFields(message.body)
            throw PostgresProtocolError(.upstreamAuthentication, "server refused the login (SQLSTATE \(fields["C"] ?? "?"))")
        case UInt8(ascii: "S"):
            if let name = body.readNullTerminatedString(), let value = body.readNullTerminatedString() {
                guard serverParameters.count < 256 else { return [] }
                serverParameters.append((name, value))
                noteParameter(name, value)
            }
            return []
        case UInt8(ascii: "K"):
            if let pid = body.readInteger(as: Int32.self), let key = body.readInteger(as: Int32.self) {
                upstreamKey = CancelKey(processID: pid, secretKey: key)
            }
            return []
        case UInt8(ascii: "N"), UInt8(ascii: "v"):
            return []
        case UInt8(ascii: "Z"):
            if let status = body.readInteger(as: UInt8.self) { transactionStatus = status }
            if needsCatalog {
                state = .loadingCatalog
                return [.sendToUpstream(frame(PostgresMessages.query(Self.catalogQuery)))]
            }
            return try finishStartup(out: &out)
        default:
            throw PostgresProtocolError(.unexpectedMessage, "message \(message.type) during upstream startup")
        }
    }

    /// Table names are only needed when a column rule names a table.
    private var needsCatalog: Bool {
        session?.connection.needsTableNames ?? false
    }

    static let catalogQuery = """
        SELECT c.oid::int8, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
        WHERE c.relkind IN ('r','p','v','m','f') AND n.nspname NOT IN ('pg_catalog','information_schema') LIMIT 50000
        """

    private mutating func catalogMessage(_ message: PostgresMessage, out: inout ByteBuffer) throws -> [Action] {
        switch message.type {
        case UInt8(ascii: "D"):
            var body = message.body
            guard body.readInteger(as: Int16.self) == 2,
                  let oidLength = body.readInteger(as: Int32.self), oidLength > 0,
                  let oidText = body.readString(length: Int(oidLength)),
                  let nameLength = body.readInteger(as: Int32.self), nameLength > 0,
                  let name = body.readString(length: Int(nameLength)),
                  let oid = UInt32(oidText) else { return [] }
            catalog[oid] = name
        case UInt8(ascii: "Z"):
            if var body = Optional(message.body), let status = body.readInteger(as: UInt8.self) { transactionStatus = status }
            return try finishStartup(out: &out)
        default:
            break
        }
        return []
    }

    private mutating func finishStartup(out: inout ByteBuffer) throws -> [Action] {
        guard let session else { return [] }
        let masker = PostgresResultMasker(session: session, tableNames: catalog)
        self.masker = masker
        state = .relaying
        PostgresMessages.authentication(0).write(into: &out)
        for (name, value) in serverParameters {
            PostgresMessages.parameterStatus(name, try masker.maskString(value)).write(into: &out)
        }
        PostgresMessages.backendKeyData(processID: clientKey.processID, secretKey: clientKey.secretKey).write(into: &out)
        PostgresMessages.readyForQuery(transactionStatus).write(into: &out)
        var actions: [Action] = []
        if let upstreamKey { actions.append(.registerCancelKey(client: clientKey, upstream: upstreamKey)) }
        return actions
    }

    /// Follows the server settings that change how the gateway reads queries.
    private mutating func noteParameter(_ name: String, _ value: String) {
        if name == "standard_conforming_strings" { standardConformingStrings = value != "off" }
    }

    private func frame(_ message: PostgresMessage) -> ByteBuffer {
        var buffer = ByteBuffer()
        message.write(into: &buffer)
        return buffer
    }
}

// MARK: - Relay: client side

extension PostgresProxyMachine {
    /// Frontend message types the relay accepts; any other type ends the session (fail closed).
    private static let batchedTypes: Set<UInt8> = [UInt8(ascii: "P"), UInt8(ascii: "B"), UInt8(ascii: "D"),
                                                   UInt8(ascii: "E"), UInt8(ascii: "C")]
    private static let batchEndingTypes: Set<UInt8> = [UInt8(ascii: "Q"), UInt8(ascii: "S"), UInt8(ascii: "H")]

    private mutating func relayClient(_ message: PostgresMessage) -> [Action] {
        switch message.type {
        case UInt8(ascii: "X"):
            state = .closed
            return [.sendToUpstream(frame(message)), .close(reason: "client terminated")]
        case UInt8(ascii: "d"), UInt8(ascii: "c"), UInt8(ascii: "f"):
            // COPY FROM STDIN data: recorded by size, forwarded as it comes. Outside a COPY the
            // server ignores these messages; the gateway drops them.
            guard copyInActive else { return [] }
            if message.type == UInt8(ascii: "c") || message.type == UInt8(ascii: "f") {
                copyInActive = false
                session?.mark(.copyIn(done: message.type == UInt8(ascii: "c")))
            }
            return [.sendToUpstream(frame(message))]
        case UInt8(ascii: "F"):
            return refuseFunctionCall(message)
        default:
            guard Self.batchedTypes.contains(message.type) || Self.batchEndingTypes.contains(message.type) else {
                return fail(sqlState: "08P01", message: "protocol violation: message type \(message.type) is not allowed through Sluice",
                            reason: "client message type \(message.type) of \(message.body.readableBytes) bytes")
            }
        }
        if discardUntilSync {
            if message.type == UInt8(ascii: "S") {
                discardUntilSync = false
                return reply(PostgresMessages.readyForQuery(transactionStatus))
            }
            return []
        }
        batch.append(message)
        batchBytes += message.body.readableBytes
        switch message.type {
        case UInt8(ascii: "Q"), UInt8(ascii: "S"), UInt8(ascii: "H"):
            return completeBatch()
        default:
            if batchBytes > configuration.maximumMessageSize {
                return fail(sqlState: "54000", message: "pipeline too large without Sync", reason: "batch of \(batchBytes) bytes")
            }
            return []
        }
    }

    /// Decides every statement of a finished batch (a simple query, or extended-protocol
    /// messages up to Sync/Flush): all allowed → forward; any blocked → refuse the batch;
    /// any review → hold the batch until decided.
    private mutating func completeBatch() -> [Action] {
        guard let session else { return [] }
        let messages = batch
        batch = []
        batchBytes = 0
        var commands: [Command] = []
        for message in messages {
            var body = message.body
            switch message.type {
            case UInt8(ascii: "Q"):
                guard let text = body.readNullTerminatedString() else {
                    return fail(sqlState: "08P01", message: "protocol violation: malformed Query", reason: "unterminated query")
                }
                session.record(SessionEvent(.input, masker?.recordable(Array(text.utf8)) ?? []))
                guard let found = sqlCommands(text, statementName: nil) else {
                    return refuse(messages, message: "too many statements in one query")
                }
                commands += found
            case UInt8(ascii: "P"):
                guard let name = body.readNullTerminatedString(), let text = body.readNullTerminatedString() else {
                    return fail(sqlState: "08P01", message: "protocol violation: malformed Parse", reason: "unterminated Parse")
                }
                session.record(SessionEvent(.input, masker?.recordable(Array(text.utf8)) ?? []))
                guard let found = sqlCommands(text, statementName: name.isEmpty ? nil : name) else {
                    return refuse(messages, message: "too many statements in one query")
                }
                commands += found
            case UInt8(ascii: "B"):
                if let text = Self.bindRecord(message.body) {
                    session.record(SessionEvent(.input, masker?.recordable(Array(text.utf8)) ?? []))
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
                remember(prepared: name, Array(own.dropFirst()))
            case (.execute?, let name?):
                if let executed = prepared[name] {
                    own += executed
                } else if preparedForgotten {
                    own.append(Command(text: "EXECUTE \(name.prefix(64))", classes: ["unknown"]))
                }
            case (.deallocate?, let name?):
                if name == "*" { prepared.removeAll() } else { prepared[name] = nil }
            default:
                break
            }
            commands += own
        }
        if let statementName { remember(prepared: statementName, commands) }
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

    private mutating func remember(prepared name: String, _ commands: [Command]) {
        if prepared[name] == nil && prepared.count >= Self.maximumPreparedStatements {
            prepared.removeAll()
            preparedForgotten = true
        }
        prepared[name] = Array(commands.prefix(64))
    }

    /// FunctionCall (the fast path libpq uses for large objects) names a function by OID with
    /// binary arguments: no guardrail can read it and its result bypasses result masking, so it
    /// is refused, recorded, and the session goes on.
    private mutating func refuseFunctionCall(_ message: PostgresMessage) -> [Action] {
        var body = message.body
        let oid = body.readInteger(as: UInt32.self) ?? 0
        session?.record(SessionEvent(.input, Array("FUNCTION CALL \(oid)".utf8)))
        session?.mark(.refusedFunctionCall(oid: Int(oid)))
        let messages = batch + [message]
        batch = []
        batchBytes = 0
        return refuse(messages, message: "fast-path function calls are not allowed through Sluice",
                      hint: "use SQL instead: SELECT lo_get(oid) to read a large object, lo_from_bytea(0, data) to write one")
    }

    private mutating func forward(_ messages: [PostgresMessage]) -> [Action] {
        var out = ByteBuffer()
        for message in messages {
            track(message)
            message.write(into: &out)
        }
        return [.sendToUpstream(out)]
    }

    /// Remembers what the upstream will answer, to know which description each DataRow has.
    private mutating func track(_ message: PostgresMessage) {
        var body = message.body
        switch message.type {
        case UInt8(ascii: "Q"), UInt8(ascii: "F"):
            expectations.append(.simpleQuery)
            replies.append(.upstream)
        case UInt8(ascii: "S"):
            expectations.append(.sync)
            replies.append(.upstream)
        case UInt8(ascii: "B"):
            guard let portal = body.readNullTerminatedString(), let statement = body.readNullTerminatedString(),
                  let formatCount = body.readInteger(as: Int16.self), formatCount >= 0 else { return }
            for _ in 0..<formatCount { _ = body.readInteger(as: Int16.self) }
            guard let parameterCount = body.readInteger(as: Int16.self), parameterCount >= 0 else { return }
            for _ in 0..<parameterCount {
                guard let length = body.readInteger(as: Int32.self) else { return }
                if length > 0 { body.moveReaderIndex(forwardBy: min(Int(length), body.readableBytes)) }
            }
            var formats: [Int16] = []
            if let count = body.readInteger(as: Int16.self), count > 0 {
                for _ in 0..<count { formats.append(body.readInteger(as: Int16.self) ?? 0) }
            }
            portals[portal] = (statement, formats, nil)
        case UInt8(ascii: "D"):
            guard let kind = body.readInteger(as: UInt8.self), let name = body.readNullTerminatedString() else { return }
            expectations.append(kind == UInt8(ascii: "S") ? .describeStatement(name) : .describePortal(name))
        case UInt8(ascii: "E"):
            guard let portal = body.readNullTerminatedString() else { return }
            expectations.append(.execute(portal))
        case UInt8(ascii: "C"):
            guard let kind = body.readInteger(as: UInt8.self), let name = body.readNullTerminatedString() else { return }
            if kind == UInt8(ascii: "S") { statements[name] = nil } else { portals[name] = nil }
        default:
            break
        }
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

    private mutating func reply(_ message: PostgresMessage) -> [Action] {
        replyBuffer(frame(message))
    }

    private mutating func replyBuffer(_ buffer: ByteBuffer) -> [Action] {
        if replies.isEmpty { return [.sendToClient(buffer)] }
        replies.append(.local(buffer))
        return []
    }

    /// The review of the held batch was decided.
    mutating func reviewDecided(_ outcome: ReviewOutcome) -> [Action] {
        guard let messages = held else { return [] }
        held = nil
        var actions: [Action]
        if let refusal = ReviewWording.refusal(outcome) {
            var message = refusal
            if case .timedOut = outcome { message += "; the statement did not run" }
            actions = refuse(messages, message: message)
        } else {
            actions = forward(messages)
        }
        var empty = ByteBuffer()
        return actions + clientBytes(&empty)
    }
}

// MARK: - Relay: upstream side

extension PostgresProxyMachine {
    private mutating func relayUpstream(_ message: PostgresMessage, out: inout ByteBuffer) throws -> [Action] {
        guard let masker else { return [] }
        switch message.type {
        case UInt8(ascii: "D"):
            if copyOut.refused { return [] }
            if currentPlan == nil { currentPlan = planForExecute() }
            guard let plan = currentPlan else {
                throw PostgresProtocolError(.unexpectedMessage, "DataRow without a description")
            }
            if let masked = try masker.maskDataRow(message.body, plan: plan) {
                let rewritten = PostgresMessage(type: message.type, body: masked)
                rewritten.write(into: &out)
                recordRow(masked, plan: plan)
            } else {
                message.write(into: &out)
                recordRow(message.body, plan: plan)
            }
            return []
        case UInt8(ascii: "T"):
            let columns = try ColumnDescription.parseRowDescription(message.body)
            // Column names can carry data (`EXECUTE format('create table t(%I int)', email)`).
            var shown = columns
            for index in shown.indices { shown[index].name = try masker.maskString(shown[index].name) }
            let rewritten = shown == columns ? message : ColumnDescription.rowDescription(shown)
            switch expectations.first {
            case .describeStatement(let name):
                statements[name] = columns
            case .describePortal(let name):
                if var portal = portals[name] {
                    portal.described = columns
                    portals[name] = portal
                }
                currentPlan = masker.plan(columns)
            default:
                currentPlan = masker.plan(columns)
                startResult(shown)
            }
            if case .describeStatement = expectations.first { expectations.removeFirst() }
            else if case .describePortal = expectations.first { expectations.removeFirst() }
            rewritten.write(into: &out)
            return []
        case UInt8(ascii: "n"):
            if case .describeStatement(let name) = expectations.first { statements[name] = []; expectations.removeFirst() }
            else if case .describePortal = expectations.first { expectations.removeFirst() }
            message.write(into: &out)
            return []
        case UInt8(ascii: "C"), UInt8(ascii: "I"), UInt8(ascii: "s"):
            var message = message
            if message.type == UInt8(ascii: "C") {
                copyInActive = false
                var body = message.body
                guard let tag = body.readNullTerminatedString() else {
                    throw PostgresProtocolError(.malformedMessage, "CommandComplete without a tag")
                }
                let shown = try masker.maskString(tag)
                if shown != tag { message = PostgresMessages.make(message.type) { $0.writeNullTerminatedString(shown) } }
            }
            finishResult(message)
            currentPlan = nil
            if case .execute = expectations.first { expectations.removeFirst() }
            if copyOut.active {
                let refused = copyOut.refused
                copyOut = (false, false)
                if refused { return [] }
            }
            message.write(into: &out)
            return []
        case UInt8(ascii: "E"), UInt8(ascii: "N"):
            if message.type == UInt8(ascii: "E") {
                currentPlan = nil
                copyOut = (false, false)
                copyInActive = false
                // In the extended protocol the server skips to the next Sync after an error.
                while let first = expectations.first {
                    if case .sync = first { break }
                    if case .simpleQuery = first { break }
                    expectations.removeFirst()
                }
            }
            if let masked = try masker.maskFields(message.body, type: message.type) {
                masked.write(into: &out)
            } else {
                message.write(into: &out)
            }
            return []
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
            return []
        case UInt8(ascii: "S"):
            // ParameterStatus: `set_config('application_name', <a value>, false)` reports the value.
            var body = message.body
            guard let name = body.readNullTerminatedString(), let value = body.readNullTerminatedString() else {
                throw PostgresProtocolError(.malformedMessage, "ParameterStatus")
            }
            noteParameter(name, value)
            let shown = try masker.maskString(value)
            if shown == value { message.write(into: &out) } else { PostgresMessages.parameterStatus(name, shown).write(into: &out) }
            return []
        case UInt8(ascii: "G"):
            copyInActive = true
            message.write(into: &out)
            return []
        case UInt8(ascii: "1"), UInt8(ascii: "2"), UInt8(ascii: "3"), UInt8(ascii: "t"):
            // ParseComplete, BindComplete, CloseComplete, ParameterDescription: no text.
            message.write(into: &out)
            return []
        case UInt8(ascii: "H"), UInt8(ascii: "W"):
            var body = message.body
            let format = body.readInteger(as: UInt8.self) ?? 0
            let masked: Bool
            if case .masked = masker.session.masking(for: .stream) { masked = true } else { masked = false }
            if masked && (format != 0 || message.type == UInt8(ascii: "W")) {
                // Binary COPY cannot be scanned per value: refuse it (fail closed).
                copyOut = (true, true)
                PostgresMessages.error(sqlState: "42501", message: "binary COPY output cannot be masked; use text format").write(into: &out)
                masker.session.mark(.refused("binary copy out"))
                return []
            }
            copyOut = (false, true)
            startResult([])
            message.write(into: &out)
            return []
        case UInt8(ascii: "d"):
            if copyOut.refused { return [] }
            if let masked = try masker.maskText(message.body) {
                PostgresMessage(type: message.type, body: masked).write(into: &out)
                recordCopyRow(masked)
            } else {
                message.write(into: &out)
                recordCopyRow(message.body)
            }
            return []
        case UInt8(ascii: "c"):
            if copyOut.refused { return [] }
            message.write(into: &out)
            return []
        case UInt8(ascii: "Z"):
            var body = message.body
            if let status = body.readInteger(as: UInt8.self) { transactionStatus = status }
            currentPlan = nil
            copyOut = (false, false)
            copyInActive = false
            if let first = expectations.first {
                switch first {
                case .sync, .simpleQuery: expectations.removeFirst()
                default: expectations.removeAll()
                }
            }
            message.write(into: &out)
            if case .upstream = replies.first { replies.removeFirst() }
            while case .local(var buffer) = replies.first {
                replies.removeFirst()
                out.writeBuffer(&buffer)
            }
            reportMasking()
            masker.refresh()
            return []
        default:
            // FunctionCallResponse (its call was refused), a second BackendKeyData or
            // authentication request, or a type this gateway does not know: nothing unread leaves.
            throw PostgresProtocolError(.unexpectedMessage, "server message type \(message.type) of \(message.body.readableBytes) bytes")
        }
    }

    /// DataRows of an Execute use the portal's description, or its statement's with the Bind formats.
    private mutating func planForExecute() -> RowPlan? {
        guard let masker else { return nil }
        if case .execute(let name) = expectations.first, let portal = portals[name] {
            if let described = portal.described { return masker.plan(described) }
            if let columns = statements[portal.statement] { return masker.plan(columns, formats: portal.formats) }
        }
        return nil
    }

    private mutating func startResult(_ columns: [ColumnDescription]) {
        resultRecord.removeAll(keepingCapacity: true)
        resultRows = 0
        resultCut = false
        if !columns.isEmpty {
            resultRecord.append(contentsOf: columns.map(\.name).joined(separator: "\t").utf8)
            resultRecord.append(10)
        }
    }

    private mutating func recordRow(_ body: ByteBuffer, plan: RowPlan) {
        resultRows += 1
        guard !resultCut else { return }
        guard resultRecord.count < configuration.recordOutputCap else { resultCut = true; return }
        var reader = body
        guard let count = reader.readInteger(as: Int16.self) else { return }
        var line: [UInt8] = []
        for index in 0..<Int(max(0, count)) {
            if index > 0 { line.append(9) }
            guard let length = reader.readInteger(as: Int32.self) else { return }
            if length < 0 { line.append(contentsOf: "NULL".utf8); continue }
            guard let value = reader.readSlice(length: Int(length)) else { return }
            let format = index < plan.formats.count ? plan.formats[index] : 0
            let type = index < plan.types.count ? plan.types[index] : 25
            if format == 1 && !RowPlan.textLike.contains(type) {
                line.append(contentsOf: "<binary \(length) bytes>".utf8)
            } else {
                let bytes = Array(value.readableBytesView)
                if index < plan.columns.count, case .pass = plan.columns[index] {
                    line.append(contentsOf: masker?.recordable(bytes) ?? [])
                } else {
                    line.append(contentsOf: bytes)
                }
            }
        }
        line.append(10)
        resultRecord.append(contentsOf: line.prefix(configuration.recordOutputCap - resultRecord.count))
    }

    private mutating func recordCopyRow(_ body: ByteBuffer) {
        resultRows += 1
        guard !resultCut else { return }
        guard resultRecord.count < configuration.recordOutputCap else { resultCut = true; return }
        let bytes = Array(body.readableBytesView)
        let recorded: [UInt8]
        if case .masked = session?.masking(for: .stream) { recorded = bytes } else { recorded = masker?.recordable(bytes) ?? [] }
        resultRecord.append(contentsOf: recorded.prefix(configuration.recordOutputCap - resultRecord.count))
    }

    /// One `o` event per result: the header, the rows as the user saw them (capped), and a
    /// footer with the command tag and row count, like psql's `(3 rows)`.
    private mutating func finishResult(_ message: PostgresMessage) {
        guard let session else { return }
        var body = message.body
        let tag = message.type == UInt8(ascii: "C") ? (body.readNullTerminatedString() ?? "") : (message.type == UInt8(ascii: "s") ? "SUSPENDED" : "EMPTY")
        var footer = "(\(tag.prefix(64)); \(resultRows) row\(resultRows == 1 ? "" : "s")"
        if resultCut { footer += "; record cut at \(configuration.recordOutputCap) bytes" }
        footer += ")"
        resultRecord.append(contentsOf: footer.utf8)
        session.record(SessionEvent(.output, resultRecord))
        resultRecord.removeAll(keepingCapacity: true)
        resultRows = 0
        resultCut = false
    }

    private mutating func reportMasking() {
        guard let masker, let session else { return }
        let counts = masker.takeCounts()
        if !counts.isEmpty { session.reportMasking(bytes: 0, counts: counts, latency: .zero) }
    }
}
