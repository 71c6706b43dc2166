import MaskEngine
import NIOCore

/// Settings of the Postgres listener.
package struct PostgresAdapterConfiguration: Sendable {
    /// Largest protocol message accepted from either side; larger is a protocol error.
    package var maximumMessageSize = 64 << 20
    /// Whether an SSLRequest is answered `S` (TLS with the gateway's certificate) or `N`.
    package var clientTLS = false
    /// Result bytes recorded per statement; the rest is counted, not stored.
    package var recordOutputCap = 1 << 20
    /// Statements per simple query beyond which the query is refused.
    package var maximumStatements = 1000
    /// How long a client may take from connecting to sending its token (startup packet, TLS
    /// request, password): after it, an unauthenticated connection is closed (`limits.startup_timeout`).
    package var startupTimeout: Duration = .seconds(10)
    /// Logins (the token is the password) only over TLS: a startup packet on a plaintext
    /// connection is refused (`postgres.require_tls`, default on when the listener offers TLS).
    package var requireClientTLS = false

    package init() {}
}

/// The sans-IO heart of the Postgres adapter: bytes and events in, actions out. The NIO handler
/// performs the actions; tests drive the machine directly.
///
/// Each state carries the data only it needs: the client's startup parameters until the
/// upstream startup packet is sent, the ``UpstreamLogin`` while the gateway logs in, the
/// ``TableCatalog`` while table names load, and the ``PostgresRelay`` (with its
/// ``ExtendedQueryTracker`` and ``ResultRecorder``) once queries flow.
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
        /// Before the startup packet (SSL and GSS requests are answered here).
        case startup
        /// Asked for the password, which is the user's token.
        case awaitingPassword(parameters: [String: String])
        /// The token is with the governor.
        case authenticating(parameters: [String: String])
        /// The session is open; the upstream connection is being made.
        case connecting(parameters: [String: String])
        /// The gateway logs in to the server with the connection's credential.
        case loggingIn(UpstreamLogin)
        /// Table names load for column rules that name a table.
        case loadingCatalog(UpstreamLogin, TableCatalog)
        case relaying(PostgresRelay)
        case closed
    }

    let configuration: PostgresAdapterConfiguration
    let clientKey: CancelKey
    private var state = State.startup
    private var clientDecoder: PostgresFrameDecoder
    private var upstreamDecoder: PostgresFrameDecoder
    private(set) var session: (any GovernedSession)?
    /// Whether the client connection was upgraded to TLS.
    private var clientTLSActive = false
    /// The relay's `isHolding`, mirrored: it is read before every client message, and reading it
    /// through the state would copy the relay (a retain per field) each time.
    private var holding = false

    init(configuration: PostgresAdapterConfiguration, clientKey: CancelKey) {
        self.configuration = configuration
        self.clientKey = clientKey
        clientDecoder = PostgresFrameDecoder(maximumMessageSize: configuration.maximumMessageSize, expectsStartup: true)
        upstreamDecoder = PostgresFrameDecoder(maximumMessageSize: configuration.maximumMessageSize, expectsStartup: false)
    }

    var isRelaying: Bool { if case .relaying = state { return true } else { return false } }

    var isHolding: Bool { holding }

    /// The server's `standard_conforming_strings` as last reported: how `'…'` is lexed.
    var standardConformingStrings: Bool {
        switch state {
        case .loggingIn(let login), .loadingCatalog(let login, _): return login.standardConformingStrings
        case .relaying(let relay): return relay.standardConformingStrings
        default: return true
        }
    }

    /// Whether the next client message is read now (not while the gateway logs in, or while a
    /// batch waits for its review: those bytes stay buffered, within the limit).
    private var readsClient: Bool {
        switch state {
        case .startup, .awaitingPassword: return true
        case .relaying: return !holding
        default: return false
        }
    }

    // MARK: - Client input

    mutating func clientBytes(_ bytes: inout ByteBuffer) -> [Action] {
        clientDecoder.append(&bytes)
        var actions: [Action] = []
        do {
            while readsClient {
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

    private mutating func fail(_ failure: PostgresSessionFailure) -> [Action] {
        fail(sqlState: failure.sqlState, message: failure.message, reason: failure.reason)
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
            state = .authenticating(parameters: parameters)
            return [.openSession(token: token, connection: parameters["database"] ?? "")]
        case .relaying:
            if message.type == UInt8(ascii: "X") {
                state = .closed
                return [.sendToUpstream(message.framed), .close(reason: "client terminated")]
            }
            return withRelay { relay throws(PostgresSessionFailure) in try relay.clientMessage(message) }
        default:
            return fail(sqlState: "08P01", message: "unexpected message", reason: "client message before the session is ready")
        }
    }

    /// Runs `body` on the relay in place (the state holds a placeholder meanwhile, so the
    /// relay's storage is not copied); a failure ends the connection.
    private mutating func withRelay(_ body: (inout PostgresRelay) throws(PostgresSessionFailure) -> [Action]) -> [Action] {
        guard case .relaying(var relay) = state else { return [] }
        state = .closed
        do {
            let actions = try body(&relay)
            holding = relay.isHolding
            state = .relaying(relay)
            return actions
        } catch {
            holding = false
            return fail(error)
        }
    }

    // MARK: - Session and upstream setup

    mutating func sessionOpened(_ session: any GovernedSession) -> [Action] {
        guard case .authenticating(let parameters) = state else { return [] }
        self.session = session
        state = .connecting(parameters: parameters)
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
        guard case .connecting(let client) = state, let session else { return [] }
        let target = session.connection
        var parameters: [(String, String)] = [
            ("user", target.credential.username ?? "postgres"),
            ("database", target.database ?? target.name),
            ("application_name", "sluice:" + (client["application_name"] ?? "client").prefix(40)),
        ]
        for key in ["client_encoding", "DateStyle", "TimeZone", "extra_float_digits", "IntervalStyle", "search_path"] {
            if let value = client[key] { parameters.append((key, value)) }
        }
        state = .loggingIn(UpstreamLogin(credential: target.credential))
        return [.sendToUpstream(PostgresMessages.startup(parameters))]
    }

    mutating func upstreamFailed(_ reason: String) -> [Action] {
        session?.reportUpstreamFailure(reason)
        return fail(sqlState: "08006", message: "the gateway could not reach the database", reason: reason)
    }

    /// The review of the held batch was decided; the client's waiting messages are read next.
    mutating func reviewDecided(_ outcome: ReviewOutcome) -> [Action] {
        guard isHolding else { return [] }
        let actions = withRelay { relay in relay.reviewDecided(outcome) }
        var empty = ByteBuffer()
        return actions + clientBytes(&empty)
    }

    // MARK: - Upstream input

    mutating func upstreamBytes(_ bytes: inout ByteBuffer) -> [Action] {
        upstreamDecoder.append(&bytes)
        var actions: [Action] = []
        var toClient = ByteBuffer()
        do {
            while let message = try upstreamDecoder.next() {
                guard try upstreamMessage(message, actions: &actions, out: &toClient) else { break }
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

    /// One server message in the current state; false when the machine reads no more (closed).
    /// While it runs, the state holds a placeholder (`closed`): a throw leaves it closed.
    private mutating func upstreamMessage(_ message: PostgresMessage, actions: inout [Action],
                                          out: inout ByteBuffer) throws -> Bool {
        switch state {
        case .relaying(var relay):
            state = .closed
            try relay.relayUpstream(message, out: &out)
            state = .relaying(relay)
        case .loggingIn(var login):
            state = .closed
            switch try login.receive(message) {
            case .send(let buffer):
                state = .loggingIn(login)
                actions.append(.sendToUpstream(buffer))
            case .waiting:
                state = .loggingIn(login)
            case .ready where session?.connection.needsTableNames ?? false:
                // Table names are only needed when a column rule names a table.
                state = .loadingCatalog(login, TableCatalog())
                actions.append(.sendToUpstream(PostgresMessages.query(TableCatalog.query).framed))
            case .ready:
                actions += try startRelay(login, tables: [:], transactionStatus: login.transactionStatus, out: &out)
            }
        case .loadingCatalog(let login, var catalog):
            state = .closed
            if let status = catalog.receive(message) {
                actions += try startRelay(login, tables: catalog.names, transactionStatus: status, out: &out)
            } else {
                state = .loadingCatalog(login, catalog)
            }
        case .closed:
            return false
        case .startup, .awaitingPassword, .authenticating, .connecting:
            break
        }
        return true
    }

    /// Both logins are done: the client gets AuthenticationOk, the server's parameters
    /// (masked), the gateway's cancel key and ReadyForQuery, and the relay starts.
    private mutating func startRelay(_ login: UpstreamLogin, tables: [UInt32: String], transactionStatus: UInt8,
                                     out: inout ByteBuffer) throws -> [Action] {
        guard let session else { return [] }
        let masker = PostgresResultMasker(session: session, tableNames: tables)
        PostgresMessages.authentication(0).write(into: &out)
        for (name, value) in login.serverParameters {
            PostgresMessages.parameterStatus(name, try masker.maskString(value)).write(into: &out)
        }
        PostgresMessages.backendKeyData(processID: clientKey.processID, secretKey: clientKey.secretKey).write(into: &out)
        PostgresMessages.readyForQuery(transactionStatus).write(into: &out)
        state = .relaying(PostgresRelay(configuration: configuration, session: session, masker: masker,
                                        transactionStatus: transactionStatus,
                                        standardConformingStrings: login.standardConformingStrings))
        return login.upstreamKey.map { [.registerCancelKey(client: clientKey, upstream: $0)] } ?? []
    }
}
