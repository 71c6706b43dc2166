import NIOCore

/// Follows the extended query protocol across the relay: which statements and portals the
/// client prepared (with their descriptions and result formats), and what each upstream
/// response answers, so every DataRow is read with the description it belongs to.
struct ExtendedQueryTracker {
    /// What the upstream's responses answer, in order.
    enum Expectation: Equatable {
        case simpleQuery
        case describeStatement(String)
        case describePortal(String)
        case execute(String)
        case sync
    }

    struct Portal {
        var statement: String
        var formats: [Int16]
        var described: [ColumnDescription]?
    }

    /// What a RowDescription was an answer to.
    enum Described {
        /// A Describe of a prepared statement: remembered, no rows follow yet.
        case statement
        /// A Describe of a portal: its Execute's rows follow.
        case portal
        /// A query's result set starts.
        case result
    }

    private var expectations = CircularBuffer<Expectation>()
    private var statements: [String: [ColumnDescription]] = [:]
    private var portals: [String: Portal] = [:]
    /// The plan of the result set being relayed.
    private(set) var currentPlan: RowPlan?

    /// Statements and portals kept per connection; beyond, the oldest names are forgotten (a
    /// DataRow without a known description fails closed).
    static let maximumNames = 4096

    // MARK: Client messages forwarded upstream

    /// Notes a client message that is forwarded; true when the server answers it with a
    /// ReadyForQuery (Query, FunctionCall, Sync).
    mutating func forwarded(_ message: PostgresMessage) -> Bool {
        var body = message.body
        switch message.type {
        case UInt8(ascii: "Q"), UInt8(ascii: "F"):
            expectations.append(.simpleQuery)
            return true
        case UInt8(ascii: "S"):
            expectations.append(.sync)
            return true
        case UInt8(ascii: "B"):
            guard let portal = body.readNullTerminatedString(), let statement = body.readNullTerminatedString(),
                  let formatCount = body.readInteger(as: Int16.self), formatCount >= 0 else { return false }
            for _ in 0..<formatCount { _ = body.readInteger(as: Int16.self) }
            guard let parameterCount = body.readInteger(as: Int16.self), parameterCount >= 0 else { return false }
            for _ in 0..<parameterCount {
                guard let length = body.readInteger(as: Int32.self) else { return false }
                if length > 0 { body.moveReaderIndex(forwardBy: min(Int(length), body.readableBytes)) }
            }
            var formats: [Int16] = []
            if let count = body.readInteger(as: Int16.self), count > 0 {
                for _ in 0..<count { formats.append(body.readInteger(as: Int16.self) ?? 0) }
            }
            if portals[portal] == nil && portals.count >= Self.maximumNames { portals.removeAll() }
            portals[portal] = Portal(statement: statement, formats: formats, described: nil)
        case UInt8(ascii: "D"):
            guard let kind = body.readInteger(as: UInt8.self), let name = body.readNullTerminatedString() else { return false }
            expectations.append(kind == UInt8(ascii: "S") ? .describeStatement(name) : .describePortal(name))
        case UInt8(ascii: "E"):
            guard let portal = body.readNullTerminatedString() else { return false }
            expectations.append(.execute(portal))
        case UInt8(ascii: "C"):
            guard let kind = body.readInteger(as: UInt8.self), let name = body.readNullTerminatedString() else { return false }
            if kind == UInt8(ascii: "S") { statements[name] = nil } else { portals[name] = nil }
        default:
            break
        }
        return false
    }

    // MARK: Server messages

    /// The plan for a DataRow: the current result's, or for an Execute without a Describe, the
    /// portal's description or its statement's with the Bind formats.
    mutating func planForRow(_ masker: PostgresResultMasker) -> RowPlan? {
        if let currentPlan { return currentPlan }
        if case .execute(let name) = expectations.first, let portal = portals[name] {
            if let described = portal.described {
                currentPlan = masker.plan(described)
            } else if let columns = statements[portal.statement] {
                currentPlan = masker.plan(columns, formats: portal.formats)
            }
        }
        return currentPlan
    }

    /// A RowDescription arrived.
    mutating func rowDescription(_ columns: [ColumnDescription], masker: PostgresResultMasker) -> Described {
        switch expectations.first {
        case .describeStatement(let name):
            if statements[name] == nil && statements.count >= Self.maximumNames { statements.removeAll() }
            statements[name] = columns
            expectations.removeFirst()
            return .statement
        case .describePortal(let name):
            portals[name]?.described = columns
            currentPlan = masker.plan(columns)
            expectations.removeFirst()
            return .portal
        default:
            currentPlan = masker.plan(columns)
            return .result
        }
    }

    /// A NoData arrived.
    mutating func noData() {
        switch expectations.first {
        case .describeStatement(let name):
            statements[name] = []
            expectations.removeFirst()
        case .describePortal:
            expectations.removeFirst()
        default:
            break
        }
    }

    /// CommandComplete, EmptyQueryResponse or PortalSuspended ended a result.
    mutating func resultEnded() {
        currentPlan = nil
        if case .execute = expectations.first { expectations.removeFirst() }
    }

    /// An ErrorResponse: in the extended protocol the server skips to the next Sync.
    mutating func errorReceived() {
        currentPlan = nil
        while let first = expectations.first {
            if case .sync = first { break }
            if case .simpleQuery = first { break }
            expectations.removeFirst()
        }
    }

    /// A ReadyForQuery ends a Query or a Sync.
    mutating func readyForQuery() {
        currentPlan = nil
        switch expectations.first {
        case .sync?, .simpleQuery?: expectations.removeFirst()
        case nil: break
        default: expectations.removeAll()
        }
    }
}
