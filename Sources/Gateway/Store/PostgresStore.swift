import Foundation
import Logging
import MaskEngine
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// Where the PostgreSQL store is and how to reach it: `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`
/// with libpq's `sslmode` (`disable`, `prefer` — the default —, `require`, `verify-ca`,
/// `verify-full`) and `sslrootcert` (the CA file for the two `verify-` modes). The password
/// comes from the configuration's `password_env` / `password_file` rather than the URL; it is
/// never printed (``redactedURL``).
public struct PostgresStoreSettings: Sendable, Equatable {
    public enum TLSMode: String, Sendable, Equatable, CaseIterable {
        case disable, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    public var caFile: String?
    /// Connections the store keeps open at most (the record writer, sessions opening, readers).
    public var poolSize: Int

    public static func parse(_ url: String) throws -> PostgresStoreSettings {
        guard let components = URLComponents(string: url), components.scheme == "postgres" || components.scheme == "postgresql",
              let host = components.host, !host.isEmpty else {
            throw ConfigurationError(key: "store", reason: "expected postgres://USER@HOST[:PORT]/DB")
        }
        guard let user = components.user.flatMap({ $0.removingPercentEncoding }), !user.isEmpty else {
            throw ConfigurationError(key: "store", reason: "the PostgreSQL store URL names no user (postgres://USER@HOST/DB)")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else {
            throw ConfigurationError(key: "store", reason: "the PostgreSQL store URL names no database (postgres://USER@HOST/DB)")
        }
        var settings = PostgresStoreSettings(host: host, port: components.port ?? 5432, user: user,
                                             password: components.password.flatMap { $0.removingPercentEncoding },
                                             database: database, tls: .prefer, caFile: nil, poolSize: 4)
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else {
                    throw ConfigurationError(key: "store", reason: "sslmode must be one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                settings.tls = mode
            case "sslrootcert":
                settings.caFile = value
            case "pool":
                guard let size = Int(value), (1...64).contains(size) else {
                    throw ConfigurationError(key: "store", reason: "pool must be a number of connections from 1 to 64")
                }
                settings.poolSize = size
            default:
                throw ConfigurationError(key: "store", reason: "unknown parameter \(item.name.prefix(40)) (known: sslmode, sslrootcert, pool)")
            }
        }
        if (settings.tls == .verifyCA || settings.tls == .verifyFull), settings.caFile == nil {
            throw ConfigurationError(key: "store", reason: "sslmode=\(settings.tls.rawValue) needs sslrootcert=CA_FILE")
        }
        return settings
    }

    /// The URL without its password, for logs and status pages.
    public static func redactedURL(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? "postgres://***"
    }
}

/// A store error with a code; the reason names the operation and PostgreSQL's SQLSTATE, never
/// a value that was written or read.
public struct PostgresStoreError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case unreachable, timedOut, queryFailed, schemaTooNew, badRow
    }

    public var code: Code
    public var reason: String

    public var description: String { "PostgreSQL store \(code.rawValue): \(reason)" }
}

/// The PostgreSQL store, for several gateway instances on one database (docs/deploy.md).
///
/// The store protocol is synchronous (the record writer's thread, session set-up and the
/// admin API call it, as they call SQLite); this store runs each call on a small pool of
/// connections served by its own event loop thread and waits for the answer, at most
/// `timeout`. A lost connection is dropped and a new one opened at the next call, so the
/// store comes back by itself when the database does.
///
/// Durability: every write is a committed transaction (the record writer's batches are one
/// multi-row insert each). What the database acknowledges is as durable as its own settings
/// (`synchronous_commit`) make it.
public final class PostgresStore: Store {
    public let settings: PostgresStoreSettings
    private let group: MultiThreadedEventLoopGroup
    private let pool: Pool
    private let configuration: PostgresConnection.Configuration
    private let feed: ReviewFeed
    /// The channel gateways NOTIFY when they save a review (the payload is its id).
    static let reviewChannel = "sluice_reviews"
    private let logger: Logger
    /// The longest a single store call waits for PostgreSQL.
    public let timeout: TimeAmount

    /// Schema versions, applied in order under an advisory lock (two instances starting at once
    /// migrate once). Never edit a shipped step: add one.
    static let migrations: [String] = [
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY, "user" TEXT NOT NULL, groups TEXT NOT NULL, connection TEXT NOT NULL,
            kind TEXT NOT NULL, peer TEXT NOT NULL, started_at BIGINT NOT NULL, ended_at BIGINT,
            end_reason TEXT, event_count BIGINT NOT NULL DEFAULT 0, last_hash BYTEA, seal TEXT,
            counters TEXT NOT NULL DEFAULT '{}');
        CREATE INDEX sessions_started ON sessions (started_at);
        CREATE TABLE events (
            session_id TEXT NOT NULL, seq BIGINT NOT NULL, t BIGINT NOT NULL, kind TEXT NOT NULL,
            data BYTEA NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (session_id, seq));
        CREATE TABLE control_events (
            seq BIGINT PRIMARY KEY, time BIGINT NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL,
            detail TEXT NOT NULL, hash BYTEA NOT NULL, signature BYTEA NOT NULL);
        CREATE TABLE reviews (
            id TEXT PRIMARY KEY, status TEXT NOT NULL, requester TEXT NOT NULL, connection TEXT NOT NULL,
            created_at BIGINT NOT NULL, body TEXT NOT NULL);
        CREATE INDEX reviews_status ON reviews (status, created_at);
        CREATE TABLE write_probe (data BYTEA NOT NULL);
        """,
        """
        CREATE TABLE shared_state (
            kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires BIGINT NOT NULL, PRIMARY KEY (kind, key));
        """,
        """
        CREATE TABLE runtime_connections (
            name TEXT PRIMARY KEY, spec TEXT NOT NULL, updated_by TEXT NOT NULL, updated_at BIGINT NOT NULL);
        """,
    ]

    /// The advisory lock keys: schema migrations, and appends to the control chain.
    static let migrationLock: Int64 = 0x51_75_1C_E0_01
    static let controlLock: Int64 = 0x51_75_1C_E0_02

    public init(settings: PostgresStoreSettings, timeout: TimeAmount = .seconds(10),
                logger: Logger = Logger(label: "sluice.store")) throws {
        self.settings = settings
        self.timeout = timeout
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let configuration: PostgresConnection.Configuration
        do {
            configuration = try Self.connectionConfiguration(settings)
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        self.configuration = configuration
        feed = ReviewFeed(configuration: configuration, eventLoop: group.next(), logger: logger)
        pool = Pool(configuration: configuration, size: settings.poolSize, eventLoop: group.next(), timeout: timeout, logger: logger)
        // Fully initialised from here: if the migration fails, deinit closes the pool and the loop.
        try migrate()
    }

    /// Opens `postgres://…`; `password` (from `password_env` / `password_file`) wins over one in the URL.
    public static func open(url: String, password: String? = nil) throws -> PostgresStore {
        var settings = try PostgresStoreSettings.parse(url)
        if let password { settings.password = password }
        return try PostgresStore(settings: settings)
    }

    deinit {
        if let listener = feed.stop() {
            // Held until closed: a connection released while closing trips postgres-nio's assertion.
            _ = Self.block(on: listener.close(), timeout: .seconds(5))
            withExtendedLifetime(listener) {}
        }
        pool.closeAll()
        try? group.syncShutdownGracefully()
    }

    static func connectionConfiguration(_ settings: PostgresStoreSettings) throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        switch settings.tls {
        case .disable:
            tls = .disable
        case .prefer, .require:
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            let context = try NIOSSLContext(configuration: configuration)
            tls = settings.tls == .prefer ? .prefer(context) : .require(context)
        case .verifyCA, .verifyFull:
            var configuration = TLSConfiguration.makeClientConfiguration()
            guard let caFile = settings.caFile else {
                throw ConfigurationError(key: "store", reason: "sslmode=\(settings.tls.rawValue) needs sslrootcert=CA_FILE")
            }
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            } catch {
                throw ConfigurationError(file: caFile, key: "store", reason: "sslrootcert is not a readable PEM certificate file")
            }
            configuration.certificateVerification = settings.tls == .verifyFull ? .fullVerification : .noHostnameVerification
            tls = .require(try NIOSSLContext(configuration: configuration))
        }
        var configuration = PostgresConnection.Configuration(host: settings.host, port: settings.port, username: settings.user,
                                                             password: settings.password, database: settings.database, tls: tls)
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    /// Blocks the calling thread until `future` completes, at most `timeout` (nil past it).
    /// Not `EventLoopFuture.wait()`: that refuses to run on any event loop thread, and the
    /// store is called from the gateway's loops (a blocked command's control record) as SQLite
    /// is. The store's own loop never calls this, so the wait cannot deadlock.
    static func block<T: Sendable>(on future: EventLoopFuture<T>, timeout: TimeAmount) -> Result<T, any Error>? {
        let outcome = Locked<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        future.whenComplete { result in
            outcome.withLock { $0 = result }
            done.signal()
        }
        guard done.wait(timeout: .now() + .nanoseconds(Int(timeout.nanoseconds))) == .success else { return nil }
        return outcome.withLock { $0 }
    }

    // MARK: Schema

    private func migrate() throws {
        try pool.withConnection { connection in
            try connection.run("SELECT pg_advisory_lock(\(Self.migrationLock))")
            defer { _ = try? connection.run("SELECT pg_advisory_unlock(\(Self.migrationLock))") }
            try connection.run("CREATE TABLE IF NOT EXISTS sluice_schema (version INTEGER NOT NULL)")
            let current = try connection.query("SELECT coalesce(max(version), 0) AS version FROM sluice_schema")
                .first.map { try $0.int("version") } ?? 0
            guard current <= Int64(Self.migrations.count) else {
                throw PostgresStoreError(code: .schemaTooNew, reason: "the store's schema is version \(current); this gateway knows up to \(Self.migrations.count) (upgrade the gateway)")
            }
            for (index, step) in Self.migrations.enumerated() where Int64(index + 1) > current {
                try connection.transaction {
                    for statement in step.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) }) where !statement.isEmpty {
                        try connection.run(statement)
                    }
                    try connection.run("INSERT INTO sluice_schema (version) VALUES ($1)", [.int(Int64(index + 1))])
                }
                logger.notice("store schema migrated", metadata: ["version": "\(index + 1)"])
            }
        }
    }

    /// The schema version the store is at.
    public func schemaVersion() throws -> Int {
        try pool.withConnection { connection in
            Int(try connection.query("SELECT coalesce(max(version), 0) AS version FROM sluice_schema").first.map { try $0.int("version") } ?? 0)
        }
    }

    // MARK: Sessions and events

    public func createSession(_ session: SessionRecord) throws {
        try pool.withConnection { connection in
            try connection.run("""
                INSERT INTO sessions (id, "user", groups, connection, kind, peer, started_at, counters)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                """, [.text(session.id), .text(session.user), .text(StoreJSON.encode(session.groups)), .text(session.connection),
                      .text(session.kind), .text(session.peer), .int(session.startedAt), .text(StoreJSON.encode(session.counters))])
        }
    }

    /// One multi-row insert per 500 events, in one transaction.
    public func appendEvents(_ events: [StoredEvent]) throws {
        guard !events.isEmpty else { return }
        try pool.withConnection { connection in
            try connection.transaction {
                for start in stride(from: 0, to: events.count, by: 500) {
                    let slice = events[start..<min(events.count, start + 500)]
                    var values: [SQLParameter] = []
                    var tuples: [String] = []
                    values.reserveCapacity(slice.count * 6)
                    for event in slice {
                        let base = values.count
                        tuples.append("($\(base + 1), $\(base + 2), $\(base + 3), $\(base + 4), $\(base + 5), $\(base + 6))")
                        values += [.text(event.sessionID), .int(Int64(event.seq)), .int(event.offset), .text(event.kind),
                                   .bytes(event.data), .bytes(event.hash)]
                    }
                    try connection.run("INSERT INTO events (session_id, seq, t, kind, data, hash) VALUES " + tuples.joined(separator: ", "), values)
                }
            }
        }
    }

    public func updateSession(_ session: SessionRecord) throws {
        try pool.withConnection { connection in
            try connection.run("""
                UPDATE sessions SET ended_at = $1, end_reason = $2, event_count = $3, last_hash = $4, seal = $5, counters = $6
                WHERE id = $7
                """, [session.endedAt.map { .int($0) } ?? .null, session.endReason.map { .text($0) } ?? .null,
                      .int(Int64(session.eventCount)), session.lastHash.map { .bytes($0) } ?? .null,
                      session.seal.map { .text($0) } ?? .null, .text(StoreJSON.encode(session.counters)), .text(session.id)])
        }
    }

    private static func sessionRecord(_ row: StoreRow) throws -> SessionRecord {
        SessionRecord(
            id: try row.text("id"), user: try row.text("user"), groups: StoreJSON.decode([String].self, try row.text("groups")) ?? [],
            connection: try row.text("connection"), kind: try row.text("kind"), peer: try row.text("peer"),
            startedAt: try row.int("started_at"), endedAt: try row.optionalInt("ended_at"), endReason: try row.optionalText("end_reason"),
            eventCount: Int(try row.int("event_count")), lastHash: try row.optionalBytes("last_hash"), seal: try row.optionalText("seal"),
            counters: StoreJSON.decode([String: Int].self, try row.text("counters")) ?? [:])
    }

    public func session(id: String) throws -> SessionRecord? {
        try pool.withConnection { connection in
            try connection.query("SELECT * FROM sessions WHERE id = $1", [.text(id)]).first.map(Self.sessionRecord)
        }
    }

    public func sessions(_ filter: SessionFilter) throws -> [SessionRecord] {
        var clauses: [String] = []
        var values: [SQLParameter] = []
        func add(_ clause: String, _ value: SQLParameter) {
            values.append(value)
            clauses.append(clause.replacingOccurrences(of: "?", with: "$\(values.count)"))
        }
        if let user = filter.user { add("\"user\" = ?", .text(user)) }
        if let name = filter.connection { add("connection = ?", .text(name)) }
        if let kind = filter.kind { add("kind = ?", .text(kind)) }
        if let since = filter.since { add("started_at >= ?", .int(since)) }
        if let until = filter.until { add("started_at < ?", .int(until)) }
        let whereClause = clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")
        values.append(.int(Int64(max(0, min(filter.limit, 1000)))))
        values.append(.int(Int64(max(0, filter.offset))))
        let sql = "SELECT * FROM sessions\(whereClause) ORDER BY started_at DESC, id LIMIT $\(values.count - 1) OFFSET $\(values.count)"
        return try pool.withConnection { connection in
            try connection.query(sql, values).map(Self.sessionRecord)
        }
    }

    public func allSessionIDs() throws -> [String] {
        try pool.withConnection { connection in
            try connection.query("SELECT id FROM sessions ORDER BY started_at, id").map { try $0.text("id") }
        }
    }

    public func events(session: String, after seq: Int, limit: Int) throws -> [StoredEvent] {
        try pool.withConnection { connection in
            try connection.query("SELECT * FROM events WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                                 [.text(session), .int(Int64(seq)), .int(Int64(limit))]).map { row in
                StoredEvent(sessionID: session, seq: Int(try row.int("seq")), offset: try row.int("t"), kind: try row.text("kind"),
                            data: try row.bytes("data"), hash: try row.bytes("hash"))
            }
        }
    }

    // MARK: The control chain

    public func appendControl(_ event: ControlEvent) throws {
        try pool.withConnection { connection in try Self.insertControl(event, on: connection) }
    }

    private static func insertControl(_ event: ControlEvent, on connection: Connection) throws {
        try connection.run("INSERT INTO control_events (seq, time, kind, actor, detail, hash, signature) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                           [.int(Int64(event.seq)), .int(event.time), .text(event.kind), .text(event.actor), .text(event.detail),
                            .bytes(event.hash), .bytes(event.signature)])
    }

    /// Serialised across instances: the last record is read and the next one written under a
    /// transaction-scoped advisory lock, so every gateway on the store extends one chain.
    public func appendControl(making next: @Sendable (ControlEvent?) throws -> ControlEvent) throws -> ControlEvent {
        try pool.withConnection { connection in
            try connection.transaction {
                try connection.run("SELECT pg_advisory_xact_lock(\(Self.controlLock))")
                let last = try connection.query("SELECT * FROM control_events ORDER BY seq DESC LIMIT 1").first.map(Self.controlEvent)
                let event = try next(last)
                try Self.insertControl(event, on: connection)
                return event
            }
        }
    }

    private static func controlEvent(_ row: StoreRow) throws -> ControlEvent {
        ControlEvent(seq: Int(try row.int("seq")), time: try row.int("time"), kind: try row.text("kind"), actor: try row.text("actor"),
                     detail: try row.text("detail"), hash: try row.bytes("hash"), signature: try row.bytes("signature"))
    }

    public func lastControl() throws -> ControlEvent? {
        try pool.withConnection { connection in
            try connection.query("SELECT * FROM control_events ORDER BY seq DESC LIMIT 1").first.map(Self.controlEvent)
        }
    }

    public func controlEvents(after seq: Int, limit: Int) throws -> [ControlEvent] {
        try pool.withConnection { connection in
            try connection.query("SELECT * FROM control_events WHERE seq > $1 ORDER BY seq LIMIT $2",
                                 [.int(Int64(seq)), .int(Int64(limit))]).map(Self.controlEvent)
        }
    }

    // MARK: Reviews

    /// Saved and announced on ``reviewChannel`` in one transaction (the notice goes out at commit).
    public func saveReview(_ review: ReviewRecord) throws {
        try pool.withConnection { connection in
            try connection.transaction {
                try connection.run("""
                    INSERT INTO reviews (id, status, requester, connection, created_at, body) VALUES ($1, $2, $3, $4, $5, $6)
                    ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body
                    """, [.text(review.id), .text(review.status.rawValue), .text(review.requester), .text(review.connection),
                          .int(review.createdAt), .text(StoreJSON.encode(review))])
                try connection.run("SELECT pg_notify($1, $2)", [.text(Self.reviewChannel), .text(review.id)])
            }
        }
    }

    /// The row is locked (`FOR UPDATE`) from the read to the write: two gateways approving at
    /// once both count.
    public func updateReview(id: String, _ change: @Sendable (ReviewRecord) throws -> ReviewRecord) throws -> ReviewRecord? {
        try pool.withConnection { connection in
            try connection.transaction { () throws -> ReviewRecord? in
                guard let review = try connection.query("SELECT body FROM reviews WHERE id = $1 FOR UPDATE", [.text(id)]).first
                    .flatMap({ StoreJSON.decode(ReviewRecord.self, try $0.text("body")) }) else { return nil }
                let changed = try change(review)
                try connection.run("UPDATE reviews SET status = $1, body = $2 WHERE id = $3",
                                   [.text(changed.status.rawValue), .text(StoreJSON.encode(changed)), .text(id)])
                try connection.run("SELECT pg_notify($1, $2)", [.text(Self.reviewChannel), .text(id)])
                return changed
            }
        }
    }

    /// LISTEN on ``reviewChannel`` on a connection of its own (``ReviewFeed``).
    public func watchReviews(_ handler: @escaping @Sendable (String?) -> Void) {
        feed.add(handler)
    }

    public func review(id: String) throws -> ReviewRecord? {
        try pool.withConnection { connection in
            try connection.query("SELECT body FROM reviews WHERE id = $1", [.text(id)]).first
                .flatMap { StoreJSON.decode(ReviewRecord.self, try $0.text("body")) }
        }
    }

    public func reviews(status: String?, limit: Int) throws -> [ReviewRecord] {
        try pool.withConnection { connection in
            let rows = if let status {
                try connection.query("SELECT body FROM reviews WHERE status = $1 ORDER BY created_at DESC LIMIT $2",
                                     [.text(status), .int(Int64(limit))])
            } else {
                try connection.query("""
                    SELECT body FROM reviews ORDER BY CASE status WHEN 'pending' THEN 0 ELSE 1 END, created_at DESC LIMIT $1
                    """, [.int(Int64(limit))])
            }
            return try rows.compactMap { StoreJSON.decode(ReviewRecord.self, try $0.text("body")) }
        }
    }

    // MARK: Health

    public func ping() throws {
        try pool.withConnection { try $0.run("SELECT 1") }
    }

    public func putShared(kind: String, key: String, value: String, expires: Int64, now: Int64) throws {
        try pool.withConnection { connection in
            try connection.transaction {
                try connection.run("DELETE FROM shared_state WHERE kind = $1 AND expires <= $2", [.text(kind), .int(now)])
                try connection.run("""
                    INSERT INTO shared_state (kind, key, value, expires) VALUES ($1, $2, $3, $4)
                    ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, expires = excluded.expires
                    """, [.text(kind), .text(key), .text(value), .int(expires)])
            }
        }
    }

    public func shared(kind: String, key: String, now: Int64, take: Bool) throws -> String? {
        try pool.withConnection { connection in
            let sql = take
                ? "DELETE FROM shared_state WHERE kind = $1 AND key = $2 RETURNING value, expires"
                : "SELECT value, expires FROM shared_state WHERE kind = $1 AND key = $2"
            guard let row = try connection.query(sql, [.text(kind), .text(key)]).first, try row.int("expires") > now else { return nil }
            return try row.text("value")
        }
    }

    public func removeShared(kind: String, key: String) throws {
        try pool.withConnection { try $0.run("DELETE FROM shared_state WHERE kind = $1 AND key = $2", [.text(kind), .text(key)]) }
    }

    // MARK: Runtime connections

    public func runtimeConnections() throws -> [StoredConnection] {
        try pool.withConnection { connection in
            try connection.query("SELECT name, spec, updated_by, updated_at FROM runtime_connections ORDER BY name").map { row in
                StoredConnection(name: try row.text("name"), spec: try row.text("spec"), updatedBy: try row.text("updated_by"),
                                 updatedAt: try row.int("updated_at"))
            }
        }
    }

    public func putRuntimeConnection(_ stored: StoredConnection, create: Bool) throws {
        let parameters: [SQLParameter] = [.text(stored.name), .text(stored.spec), .text(stored.updatedBy), .int(stored.updatedAt)]
        try pool.withConnection { connection in
            if create {
                let inserted = try connection.query("""
                    INSERT INTO runtime_connections (name, spec, updated_by, updated_at) VALUES ($1, $2, $3, $4)
                    ON CONFLICT (name) DO NOTHING RETURNING name
                    """, parameters)
                if inserted.isEmpty { throw StoreConflict(reason: "a connection named \(stored.name) already exists") }
            } else {
                try connection.run("""
                    INSERT INTO runtime_connections (name, spec, updated_by, updated_at) VALUES ($1, $2, $3, $4)
                    ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_by = excluded.updated_by, updated_at = excluded.updated_at
                    """, parameters)
            }
        }
    }

    public func removeRuntimeConnection(name: String) throws -> Bool {
        try pool.withConnection { connection in
            try !connection.query("DELETE FROM runtime_connections WHERE name = $1 RETURNING name", [.text(name)]).isEmpty
        }
    }

    public func probeWrite() throws {
        try pool.withConnection { connection in
            try connection.transaction {
                try connection.run("INSERT INTO write_probe (data) VALUES ($1)", [.bytes([UInt8](repeating: 0, count: 64 << 10))])
                try connection.run("DELETE FROM write_probe")
            }
        }
    }

    /// Nothing to fold: PostgreSQL's own log makes commits durable.
    public func checkpoint() throws {}

    /// Runs raw SQL (tests tamper with the record, or drop their database, through it).
    package func executeForTesting(_ sql: String) throws {
        try pool.withConnection { try $0.run(sql) }
    }
}

/// A value bound to a query parameter.
enum SQLParameter: Sendable {
    case text(String)
    case int(Int64)
    case bytes([UInt8])
    case null
}

/// JSON columns (groups, counters, review bodies): the same text both stores write.
enum StoreJSON {
    static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "{}"
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String) -> T? {
        try? JSONDecoder().decode(type, from: Data(text.utf8))
    }
}

/// One row of a result, by column name.
struct StoreRow {
    let row: PostgresRandomAccessRow

    private func cell(_ name: String) throws -> PostgresCell {
        guard row.contains(name) else { throw PostgresStoreError(code: .badRow, reason: "no column \(name)") }
        return row[name]
    }

    func text(_ name: String) throws -> String {
        guard let value = try optionalText(name) else { throw PostgresStoreError(code: .badRow, reason: "column \(name) is null") }
        return value
    }

    func optionalText(_ name: String) throws -> String? {
        do { return try cell(name).decode(String?.self) } catch let error as PostgresStoreError { throw error } catch {
            throw PostgresStoreError(code: .badRow, reason: "column \(name) is not text")
        }
    }

    func int(_ name: String) throws -> Int64 {
        guard let value = try optionalInt(name) else { throw PostgresStoreError(code: .badRow, reason: "column \(name) is null") }
        return value
    }

    func optionalInt(_ name: String) throws -> Int64? {
        do { return try cell(name).decode(Int64?.self) } catch let error as PostgresStoreError { throw error } catch {
            throw PostgresStoreError(code: .badRow, reason: "column \(name) is not an integer")
        }
    }

    func bytes(_ name: String) throws -> [UInt8] {
        guard let value = try optionalBytes(name) else { throw PostgresStoreError(code: .badRow, reason: "column \(name) is null") }
        return value
    }

    func optionalBytes(_ name: String) throws -> [UInt8]? {
        do { return try cell(name).decode(ByteBuffer?.self).map { Array($0.readableBytesView) } } catch let error as PostgresStoreError { throw error } catch {
            throw PostgresStoreError(code: .badRow, reason: "column \(name) is not bytes")
        }
    }
}

extension PostgresStore {
    /// A connection of the pool, used by one store call at a time.
    final class Connection: @unchecked Sendable {
        let raw: PostgresConnection
        private let timeout: TimeAmount
        private let logger: Logger

        init(raw: PostgresConnection, timeout: TimeAmount, logger: Logger) {
            self.raw = raw
            self.timeout = timeout
            self.logger = logger
        }

        var isClosed: Bool { raw.isClosed }

        /// Waits for `future` at most `timeout`; past it the connection is closed (the pool
        /// drops it) and the call fails.
        private func wait<T: Sendable>(_ future: EventLoopFuture<T>, what: String) throws -> T {
            guard let result = PostgresStore.block(on: future, timeout: timeout) else {
                let raw = self.raw
                raw.close().whenComplete { _ in withExtendedLifetime(raw) {} }
                throw PostgresStoreError(code: .timedOut, reason: "\(what) took longer than \(timeout.nanoseconds / 1_000_000_000) s")
            }
            do {
                return try result.get()
            } catch let error as PSQLError {
                throw PostgresStoreError(code: raw.isClosed ? .unreachable : .queryFailed, reason: Self.describe(error, what: what))
            } catch {
                throw PostgresStoreError(code: .queryFailed, reason: "\(what) failed (\(type(of: error)))")
            }
        }

        /// PostgreSQL's SQLSTATE and the kind of failure: never the query's values.
        static func describe(_ error: PSQLError, what: String) -> String {
            // The server's message can quote a value; the state and constraint cannot.
            if let state = error.serverInfo?[.sqlState] {
                let constraint = error.serverInfo?[.constraintName].map { " (constraint \($0.prefix(80)))" } ?? ""
                return "\(what) failed: SQLSTATE \(state)\(constraint)"
            }
            // The network or TLS error under it (refused, timed out, an unknown CA): no values.
            let cause = error.underlying.map { ": \(String(describing: $0).prefix(160))" } ?? ""
            return "\(what) failed: \(error.code)\(cause)"
        }

        func query(_ sql: String, _ parameters: [SQLParameter] = []) throws -> [StoreRow] {
            var bindings = PostgresBindings(capacity: parameters.count)
            for parameter in parameters {
                switch parameter {
                case .text(let value): bindings.append(value)
                case .int(let value): bindings.append(value)
                case .bytes(let value): bindings.append(ByteBuffer(bytes: value))
                case .null: bindings.appendNull()
                }
            }
            let what = String(sql.prefix(while: { $0 != " " && $0 != "\n" })).uppercased()
            let result = try wait(raw.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger), what: what)
            return result.rows.map { StoreRow(row: $0.makeRandomAccess()) }
        }

        func run(_ sql: String, _ parameters: [SQLParameter] = []) throws {
            _ = try query(sql, parameters)
        }

        func transaction<T>(_ body: () throws -> T) throws -> T {
            try run("BEGIN")
            do {
                let value = try body()
                try run("COMMIT")
                return value
            } catch {
                _ = try? run("ROLLBACK")
                throw error
            }
        }
    }

    /// At most `size` connections, each lent to one call at a time; closed ones are replaced.
    final class Pool: Sendable {
        private let configuration: PostgresConnection.Configuration
        private let eventLoop: any EventLoop
        private let timeout: TimeAmount
        private let logger: Logger
        private let permits: DispatchSemaphore
        private let idle = Locked<(connections: [Connection], nextID: Int)>(([], 0))

        init(configuration: PostgresConnection.Configuration, size: Int, eventLoop: any EventLoop, timeout: TimeAmount, logger: Logger) {
            self.configuration = configuration
            self.eventLoop = eventLoop
            self.timeout = timeout
            self.logger = logger
            permits = DispatchSemaphore(value: size)
        }

        func withConnection<T>(_ body: (Connection) throws -> T) throws -> T {
            permits.wait()
            defer { permits.signal() }
            let connection = try take()
            do {
                let value = try body(connection)
                give(connection)
                return value
            } catch {
                give(connection)
                throw error
            }
        }

        private func take() throws -> Connection {
            let (reused, id) = idle.withLock { state -> (Connection?, Int) in
                while let connection = state.connections.popLast() {
                    if !connection.isClosed { return (connection, 0) }
                }
                state.nextID += 1
                return (nil, state.nextID)
            }
            if let reused { return reused }
            do {
                let connecting = PostgresConnection.connect(on: eventLoop, configuration: configuration, id: id, logger: logger)
                guard let result = PostgresStore.block(on: connecting, timeout: timeout) else {
                    connecting.whenSuccess { connection in connection.close().whenComplete { _ in withExtendedLifetime(connection) {} } }
                    throw PostgresStoreError(code: .unreachable, reason: "connecting to the store took longer than \(timeout.nanoseconds / 1_000_000_000) s")
                }
                return Connection(raw: try result.get(), timeout: timeout, logger: logger)
            } catch let error as PostgresStoreError {
                throw error
            } catch let error as PSQLError {
                throw PostgresStoreError(code: .unreachable, reason: Connection.describe(error, what: "connecting to the store"))
            } catch {
                throw PostgresStoreError(code: .unreachable, reason: "connecting to the store failed (\(type(of: error)))")
            }
        }

        private func give(_ connection: Connection) {
            guard !connection.isClosed else { return }
            idle.withLock { $0.connections.append(connection) }
        }

        func closeAll() {
            let connections = idle.withLock { state in
                defer { state.connections = [] }
                return state.connections
            }
            for connection in connections {
                _ = PostgresStore.block(on: connection.raw.close(), timeout: .seconds(5))
                withExtendedLifetime(connection) {}
            }
        }
    }
}

extension PostgresStore {
    /// LISTENs on ``PostgresStore/reviewChannel`` on a connection of its own, opened again every
    /// second until it works when it is lost; each reopening is announced with nil (notices
    /// may have been missed meanwhile). Its closures hold the feed, never the store, so the
    /// store can go away on any thread.
    final class ReviewFeed: Sendable {
        private let configuration: PostgresConnection.Configuration
        private let eventLoop: any EventLoop
        private let logger: Logger
        private let state = Locked<(handlers: [@Sendable (String?) -> Void], connection: PostgresConnection?, stopped: Bool)>(([], nil, false))

        init(configuration: PostgresConnection.Configuration, eventLoop: any EventLoop, logger: Logger) {
            self.configuration = configuration
            self.eventLoop = eventLoop
            self.logger = logger
        }

        func add(_ handler: @escaping @Sendable (String?) -> Void) {
            let first = state.withLock { state in
                state.handlers.append(handler)
                return state.handlers.count == 1 && !state.stopped
            }
            if first { listen(again: false) }
        }

        /// Stops reconnecting; the open connection, for the caller to close.
        func stop() -> PostgresConnection? {
            state.withLock { state in
                state.stopped = true
                defer { state.connection = nil }
                return state.connection
            }
        }

        private func listen(again: Bool) {
            PostgresConnection.connect(on: eventLoop, configuration: configuration, id: 0, logger: logger).whenComplete { result in
                switch result {
                case .success(let connection):
                    let stopped = self.state.withLock { state in
                        if !state.stopped { state.connection = connection }
                        return state.stopped
                    }
                    if stopped {
                        connection.close().whenComplete { _ in withExtendedLifetime(connection) {} }
                        return
                    }
                    connection.addListener(channel: PostgresStore.reviewChannel) { _, notice in self.deliver(notice.payload) }
                    if again {
                        self.logger.notice("store review feed is back")
                        self.deliver(nil)
                    }
                    connection.closeFuture.whenComplete { _ in self.retry() }
                case .failure:
                    self.retry()
                }
            }
        }

        private func retry() {
            let stopped = state.withLock { state in
                state.connection = nil
                return state.stopped
            }
            guard !stopped else { return }
            eventLoop.scheduleTask(in: .seconds(1)) { self.listen(again: true) }
        }

        private func deliver(_ id: String?) {
            let handlers = state.withLock { $0.handlers }
            for handler in handlers { handler(id) }
        }
    }
}
