import NIOCore

/// The gateway's own login to the upstream server with the connection's credential (cleartext,
/// MD5 or SCRAM-SHA-256), and what the server says while it lasts: its parameters, its cancel
/// key and its first transaction status. The client sees none of it; the machine replays the
/// parameters (masked) and hands the client the gateway's own cancel key.
struct UpstreamLogin {
    enum Step {
        /// Send this to the server and keep reading.
        case send(ByteBuffer)
        /// Keep reading.
        case waiting
        /// The server is ready for queries.
        case ready
    }

    /// Parameters kept from the server's ParameterStatus messages, at most this many.
    static let maximumParameters = 256

    private let credential: Credential
    private var scram: PostgresClientAuth.SCRAM?
    private(set) var serverParameters: [(String, String)] = []
    private(set) var upstreamKey: PostgresProxyMachine.CancelKey?
    private(set) var transactionStatus = UInt8(ascii: "I")
    /// The server's `standard_conforming_strings`: how `'…'` is lexed.
    private(set) var standardConformingStrings = true

    init(credential: Credential) {
        self.credential = credential
    }

    mutating func receive(_ message: PostgresMessage) throws -> Step {
        var body = message.body
        switch message.type {
        case UInt8(ascii: "R"):
            guard let code = body.readInteger(as: Int32.self) else {
                throw PostgresProtocolError(.malformedMessage, "authentication request without a code")
            }
            return try authenticationRequest(code, body: &body)
        case UInt8(ascii: "E"):
            let fields = try PostgresMessages.parseFields(message.body)
            throw PostgresProtocolError(.upstreamAuthentication, "server refused the login (SQLSTATE \(fields["C"] ?? "?"))")
        case UInt8(ascii: "S"):
            if let name = body.readNullTerminatedString(), let value = body.readNullTerminatedString(),
               serverParameters.count < Self.maximumParameters {
                serverParameters.append((name, value))
                if name == "standard_conforming_strings" { standardConformingStrings = value != "off" }
            }
            return .waiting
        case UInt8(ascii: "K"):
            if let pid = body.readInteger(as: Int32.self), let key = body.readInteger(as: Int32.self) {
                upstreamKey = .init(processID: pid, secretKey: key)
            }
            return .waiting
        case UInt8(ascii: "N"), UInt8(ascii: "v"):
            return .waiting
        case UInt8(ascii: "Z"):
            if let status = body.readInteger(as: UInt8.self) { transactionStatus = status }
            return .ready
        default:
            throw PostgresProtocolError(.unexpectedMessage, "message \(message.type) during upstream startup")
        }
    }

    private mutating func authenticationRequest(_ code: Int32, body: inout ByteBuffer) throws -> Step {
        switch code {
        case 0:
            return .waiting
        case 3:
            guard let password = credential.password else {
                throw PostgresProtocolError(.upstreamAuthentication, "server asks for a password; the connection has none")
            }
            return .send(PostgresMessages.password(password.withBytes { $0 }).framed)
        case 5:
            guard let password = credential.password, let salt = body.readBytes(length: 4) else {
                throw PostgresProtocolError(.upstreamAuthentication, "md5 requested without a password or salt")
            }
            let response = PostgresClientAuth.md5Response(user: credential.username ?? "postgres", password: password, salt: salt)
            return .send(PostgresMessages.password(response).framed)
        case 10:
            var mechanisms: [String] = []
            while let name = body.readNullTerminatedString(), !name.isEmpty, mechanisms.count < 16 { mechanisms.append(name) }
            guard mechanisms.contains("SCRAM-SHA-256"), let password = credential.password else {
                throw PostgresProtocolError(.unsupportedAuthentication, "SASL mechanisms \(mechanisms.joined(separator: ","))")
            }
            var exchange = PostgresClientAuth.SCRAM(password: password)
            let first = exchange.clientFirst()
            scram = exchange
            return .send(PostgresMessages.saslInitialResponse(mechanism: "SCRAM-SHA-256", data: first).framed)
        case 11:
            guard var exchange = scram else { throw PostgresProtocolError(.upstreamAuthentication, "SASL continue without a start") }
            let final = try exchange.clientFinal(serverFirst: body.readBytes(length: body.readableBytes) ?? [])
            scram = exchange
            return .send(PostgresMessages.saslResponse(final).framed)
        case 12:
            guard let scram else { throw PostgresProtocolError(.upstreamAuthentication, "SASL final without a start") }
            try scram.verifyServerFinal(body.readBytes(length: body.readableBytes) ?? [])
            return .waiting
        default:
            throw PostgresProtocolError(.unsupportedAuthentication, "authentication method \(code)")
        }
    }
}

/// The table names of the upstream database (oid → name), read once after login when a column
/// rule names a table, so a RowDescription's table OIDs can be matched to the rules.
struct TableCatalog {
    static let query = """
        SELECT c.oid::int8, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
        WHERE c.relkind IN ('r','p','v','m','f') AND n.nspname NOT IN ('pg_catalog','information_schema') LIMIT 50000
        """
    /// The most names kept (the query's own limit, enforced here as well).
    static let maximumTables = 50_000

    private(set) var names: [UInt32: String] = [:]

    /// Reads one answer to ``query``; the transaction status once the server is ready again.
    mutating func receive(_ message: PostgresMessage) -> UInt8? {
        var body = message.body
        switch message.type {
        case UInt8(ascii: "D"):
            guard names.count < Self.maximumTables,
                  body.readInteger(as: Int16.self) == 2,
                  let oidLength = body.readInteger(as: Int32.self), oidLength > 0,
                  let oidText = body.readString(length: Int(oidLength)),
                  let nameLength = body.readInteger(as: Int32.self), nameLength > 0,
                  let name = body.readString(length: Int(nameLength)),
                  let oid = UInt32(oidText) else { return nil }
            names[oid] = name
            return nil
        case UInt8(ascii: "Z"):
            return body.readInteger(as: UInt8.self) ?? UInt8(ascii: "I")
        default:
            return nil
        }
    }
}

extension PostgresMessage {
    /// The message with its type and length, ready to send.
    var framed: ByteBuffer {
        var buffer = ByteBuffer()
        write(into: &buffer)
        return buffer
    }
}
