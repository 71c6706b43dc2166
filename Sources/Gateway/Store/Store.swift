import MaskEngine
import Foundation

/// A recorded session's metadata. Its events are chained from a genesis hash over these fields.
public struct SessionRecord: Sendable, Equatable, Codable {
    public var id: String
    public var user: String
    public var groups: [String]
    public var connection: String
    public var kind: String
    public var peer: String
    /// Microseconds since 1970.
    public var startedAt: Int64
    public var endedAt: Int64?
    public var endReason: String?
    public var eventCount: Int
    public var lastHash: [UInt8]?
    /// Base64 Ed25519 signature over the seal message; nil while open or after a crash.
    public var seal: String?
    /// Counts of masked values per detector, and of decisions (`allow`, `block`, `review`).
    public var counters: [String: Int]

    public init(id: String, user: String, groups: [String], connection: String, kind: String, peer: String,
                startedAt: Int64, endedAt: Int64? = nil, endReason: String? = nil, eventCount: Int = 0,
                lastHash: [UInt8]? = nil, seal: String? = nil, counters: [String: Int] = [:]) {
        self.id = id
        self.user = user
        self.groups = groups
        self.connection = connection
        self.kind = kind
        self.peer = peer
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.endReason = endReason
        self.eventCount = eventCount
        self.lastHash = lastHash
        self.seal = seal
        self.counters = counters
    }
}

/// One event of a session, with its chained hash.
public struct StoredEvent: Sendable, Equatable {
    public var sessionID: String
    public var seq: Int
    /// Microseconds since the session started.
    public var offset: Int64
    public var kind: String
    public var data: [UInt8]
    public var hash: [UInt8]
}

/// One control-plane event (login, denial, review change, reload), chained and signed.
public struct ControlEvent: Sendable, Equatable {
    public var seq: Int
    public var time: Int64
    public var kind: String
    public var actor: String
    /// JSON object with the event's fields (never secrets or payload).
    public var detail: String
    public var hash: [UInt8]
    public var signature: [UInt8]
}

/// A connection added at runtime (`sluice connections add`, `POST /api/connections`): its
/// definition as the JSON of one `connections:` entry of the configuration file, which names
/// credential sources (environment variables, files on the gateway's host) and never holds a
/// secret.
public struct StoredConnection: Sendable, Equatable, Codable {
    public var name: String
    public var spec: String
    public var updatedBy: String
    /// Microseconds since 1970.
    public var updatedAt: Int64

    public init(name: String, spec: String, updatedBy: String, updatedAt: Int64) {
        self.name = name
        self.spec = spec
        self.updatedBy = updatedBy
        self.updatedAt = updatedAt
    }
}

/// Filters for listing sessions.
public struct SessionFilter: Sendable {
    public var user: String?
    public var connection: String?
    public var kind: String?
    public var since: Int64?
    public var until: Int64?
    public var limit = 100
    public var offset = 0
    public init() {}
}

/// The record as readers see it (the admin API, the console, the audit verifier, exports):
/// sessions, their events and the control chain, never a write.
public protocol RecordReader: Sendable {
    func session(id: String) throws -> SessionRecord?
    func sessions(_ filter: SessionFilter) throws -> [SessionRecord]
    func allSessionIDs() throws -> [String]
    func events(session: String, after seq: Int, limit: Int) throws -> [StoredEvent]
    func controlEvents(after seq: Int, limit: Int) throws -> [ControlEvent]
}

/// Where sessions, events, reviews and the control chain live. SQLite is the embedded default;
/// a PostgreSQL store implements the same protocol for several gateway instances.
public protocol Store: RecordReader {
    func createSession(_ session: SessionRecord) throws
    func appendEvents(_ events: [StoredEvent]) throws
    func updateSession(_ session: SessionRecord) throws

    func appendControl(_ event: ControlEvent) throws
    /// Appends the event `next` makes from the chain's last record (nil: the chain is empty),
    /// with no other append in between — also from another gateway on the same store — and
    /// returns it. The control chain stays one chain whatever the number of writers.
    func appendControl(making next: @Sendable (ControlEvent?) throws -> ControlEvent) throws -> ControlEvent
    func lastControl() throws -> ControlEvent?

    func saveReview(_ review: ReviewRecord) throws
    /// Reads the review, applies `change` and writes the result, with no other change to it in
    /// between — also from another gateway on the same store. nil when there is no such review.
    func updateReview(id: String, _ change: @Sendable (ReviewRecord) throws -> ReviewRecord) throws -> ReviewRecord?
    func review(id: String) throws -> ReviewRecord?
    func reviews(status: String?, limit: Int) throws -> [ReviewRecord]

    /// Calls `handler` with the id of each review saved by any gateway on this store (nil: the
    /// feed was interrupted and is back; changes may have been missed, so look again). A store
    /// that only one gateway uses (SQLite) has no feed: the gateway's own changes are all there is.
    func watchReviews(_ handler: @escaping @Sendable (String?) -> Void)

    /// Proves the store takes writes again after a failure: writes (and removes) 64 KiB.
    func probeWrite() throws

    /// Proves the store answers now (a round trip, no write): `/healthz` asks it.
    func ping() throws

    /// Short-lived state every gateway on the store must see (console sign-ins, sign-ins in
    /// progress): `value` under (`kind`, `key`) until `expires` (Unix microseconds). Keys are
    /// digests, never the secret a browser holds. Expired entries are removed as new ones come.
    func putShared(kind: String, key: String, value: String, expires: Int64, now: Int64) throws
    /// The unexpired value, if any; `take` removes it in the same step (one use only).
    func shared(kind: String, key: String, now: Int64, take: Bool) throws -> String?
    func removeShared(kind: String, key: String) throws

    /// Connections added at runtime, by name (every gateway on the store serves them).
    func runtimeConnections() throws -> [StoredConnection]
    /// Adds or replaces one; `create` refuses a name already stored (`StoreConflict`).
    func putRuntimeConnection(_ connection: StoredConnection, create: Bool) throws
    /// Removes one; false when there was none of that name.
    func removeRuntimeConnection(name: String) throws -> Bool

    /// Makes everything written so far durable in the store's own files (on shutdown): for
    /// SQLite, the write-ahead log folded into the database file.
    func checkpoint() throws
}

/// The embedded store: one SQLite file in WAL mode.
///
/// Durability: `synchronous=NORMAL` under WAL. Every event is its own committed transaction, so a
/// killed process (SIGKILL) loses nothing it had acknowledged; a power loss may lose the last
/// transactions since the most recent WAL sync, and never corrupts earlier ones. Set
/// `SLUICE_SQLITE_SYNC=FULL` to fsync every commit.
public final class SQLiteStore: Store {
    let connection: Locked<SQLiteConnection>
    public let path: String

    public init(path: String, readOnly: Bool = false) throws {
        self.path = path
        let database = try SQLiteConnection(path: path, readOnly: readOnly)
        if !readOnly {
            try database.execute("PRAGMA journal_mode=WAL")
            let sync = ProcessInfo.processInfo.environment["SLUICE_SQLITE_SYNC"] == "FULL" ? "FULL" : "NORMAL"
            try database.execute("PRAGMA synchronous=\(sync)")
            try database.execute(Self.schema)
        }
        connection = Locked(database)
    }

    /// Opens `sqlite:PATH`.
    public static func open(url: String, readOnly: Bool = false) throws -> SQLiteStore {
        guard url.hasPrefix("sqlite:") else {
            throw ConfigurationError(key: "store", reason: "only sqlite:PATH stores are supported here")
        }
        let path = String(url.dropFirst("sqlite:".count))
        if !readOnly {
            let folder = (path as NSString).deletingLastPathComponent
            if !folder.isEmpty {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            }
        } else if !FileManager.default.fileExists(atPath: path) {
            throw ConfigurationError(file: path, key: "store", reason: "no store at this path")
        }
        return try SQLiteStore(path: path, readOnly: readOnly)
    }

    static let schema = """
    CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY, user TEXT NOT NULL, groups TEXT NOT NULL, connection TEXT NOT NULL,
        kind TEXT NOT NULL, peer TEXT NOT NULL, started_at INTEGER NOT NULL, ended_at INTEGER,
        end_reason TEXT, event_count INTEGER NOT NULL DEFAULT 0, last_hash BLOB, seal TEXT,
        counters TEXT NOT NULL DEFAULT '{}');
    CREATE INDEX IF NOT EXISTS sessions_started ON sessions(started_at);
    CREATE TABLE IF NOT EXISTS events (
        session_id TEXT NOT NULL, seq INTEGER NOT NULL, t INTEGER NOT NULL, kind TEXT NOT NULL,
        data BLOB NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (session_id, seq)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS control_events (
        seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL,
        detail TEXT NOT NULL, hash BLOB NOT NULL, signature BLOB NOT NULL);
    CREATE TABLE IF NOT EXISTS reviews (
        id TEXT PRIMARY KEY, status TEXT NOT NULL, requester TEXT NOT NULL, connection TEXT NOT NULL,
        created_at INTEGER NOT NULL, body TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS reviews_status ON reviews(status, created_at);
    CREATE TABLE IF NOT EXISTS write_probe (data BLOB NOT NULL);
    CREATE TABLE IF NOT EXISTS shared_state (
        kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY (kind, key));
    CREATE TABLE IF NOT EXISTS runtime_connections (
        name TEXT PRIMARY KEY, spec TEXT NOT NULL, updated_by TEXT NOT NULL, updated_at INTEGER NOT NULL);
    """

    private static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "{}"
    }

    public func createSession(_ session: SessionRecord) throws {
        try connection.withLock { database in
            try database.run("""
                INSERT INTO sessions (id, user, groups, connection, kind, peer, started_at, counters)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(session.id), .text(session.user), .text(Self.encode(session.groups)), .text(session.connection),
                      .text(session.kind), .text(session.peer), .integer(session.startedAt), .text(Self.encode(session.counters))])
        }
    }

    public func appendEvents(_ events: [StoredEvent]) throws {
        guard !events.isEmpty else { return }
        try connection.withLock { database in
            try database.transaction {
                for event in events {
                    try database.run("INSERT INTO events (session_id, seq, t, kind, data, hash) VALUES (?, ?, ?, ?, ?, ?)",
                                     [.text(event.sessionID), .integer(Int64(event.seq)), .integer(event.offset),
                                      .text(event.kind), .blob(event.data), .blob(event.hash)])
                }
            }
        }
    }

    public func updateSession(_ session: SessionRecord) throws {
        try connection.withLock { database in
            try database.run("""
                UPDATE sessions SET ended_at = ?, end_reason = ?, event_count = ?, last_hash = ?, seal = ?, counters = ?
                WHERE id = ?
                """, [session.endedAt.map { .integer($0) } ?? .null, session.endReason.map { .text($0) } ?? .null,
                      .integer(Int64(session.eventCount)), session.lastHash.map { .blob($0) } ?? .null,
                      session.seal.map { .text($0) } ?? .null, .text(Self.encode(session.counters)), .text(session.id)])
        }
    }

    private static func sessionRecord(_ row: SQLRow) -> SessionRecord {
        let decoder = JSONDecoder()
        let groups = (try? decoder.decode([String].self, from: Data((row.text("groups") ?? "[]").utf8))) ?? []
        let counters = (try? decoder.decode([String: Int].self, from: Data((row.text("counters") ?? "{}").utf8))) ?? [:]
        return SessionRecord(
            id: row.text("id") ?? "", user: row.text("user") ?? "", groups: groups, connection: row.text("connection") ?? "",
            kind: row.text("kind") ?? "", peer: row.text("peer") ?? "", startedAt: row.int("started_at") ?? 0,
            endedAt: row.int("ended_at"), endReason: row.text("end_reason"), eventCount: Int(row.int("event_count") ?? 0),
            lastHash: row.blob("last_hash"), seal: row.text("seal"), counters: counters)
    }

    public func session(id: String) throws -> SessionRecord? {
        try connection.withLock { database in
            try database.query("SELECT * FROM sessions WHERE id = ?", [.text(id)]).first.map(Self.sessionRecord)
        }
    }

    public func sessions(_ filter: SessionFilter) throws -> [SessionRecord] {
        var clauses: [String] = []
        var values: [SQLValue] = []
        if let user = filter.user { clauses.append("user = ?"); values.append(.text(user)) }
        if let name = filter.connection { clauses.append("connection = ?"); values.append(.text(name)) }
        if let kind = filter.kind { clauses.append("kind = ?"); values.append(.text(kind)) }
        if let since = filter.since { clauses.append("started_at >= ?"); values.append(.integer(since)) }
        if let until = filter.until { clauses.append("started_at < ?"); values.append(.integer(until)) }
        let whereClause = clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")
        values.append(.integer(Int64(max(0, min(filter.limit, 1000)))))
        values.append(.integer(Int64(max(0, filter.offset))))
        return try connection.withLock { database in
            try database.query("SELECT * FROM sessions\(whereClause) ORDER BY started_at DESC, id LIMIT ? OFFSET ?", values)
                .map(Self.sessionRecord)
        }
    }

    public func allSessionIDs() throws -> [String] {
        try connection.withLock { database in
            try database.query("SELECT id FROM sessions ORDER BY started_at, id").compactMap { $0.text("id") }
        }
    }

    public func events(session: String, after seq: Int, limit: Int) throws -> [StoredEvent] {
        try connection.withLock { database in
            try database.query("SELECT * FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                               [.text(session), .integer(Int64(seq)), .integer(Int64(limit))]).map { row in
                StoredEvent(sessionID: session, seq: Int(row.int("seq") ?? -1), offset: row.int("t") ?? 0,
                            kind: row.text("kind") ?? "", data: row.blob("data") ?? [], hash: row.blob("hash") ?? [])
            }
        }
    }

    public func appendControl(_ event: ControlEvent) throws {
        try connection.withLock { database in
            try database.run("INSERT INTO control_events (seq, time, kind, actor, detail, hash, signature) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [.integer(Int64(event.seq)), .integer(event.time), .text(event.kind), .text(event.actor),
                              .text(event.detail), .blob(event.hash), .blob(event.signature)])
        }
    }

    private static func controlEvent(_ row: SQLRow) -> ControlEvent {
        ControlEvent(seq: Int(row.int("seq") ?? -1), time: row.int("time") ?? 0, kind: row.text("kind") ?? "",
                     actor: row.text("actor") ?? "", detail: row.text("detail") ?? "", hash: row.blob("hash") ?? [],
                     signature: row.blob("signature") ?? [])
    }

    public func appendControl(making next: @Sendable (ControlEvent?) throws -> ControlEvent) throws -> ControlEvent {
        try connection.withLock { database in
            try database.transaction {
                let last = try database.query("SELECT * FROM control_events ORDER BY seq DESC LIMIT 1").first.map(Self.controlEvent)
                let event = try next(last)
                try database.run("INSERT INTO control_events (seq, time, kind, actor, detail, hash, signature) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 [.integer(Int64(event.seq)), .integer(event.time), .text(event.kind), .text(event.actor),
                                  .text(event.detail), .blob(event.hash), .blob(event.signature)])
                return event
            }
        }
    }

    public func lastControl() throws -> ControlEvent? {
        try connection.withLock { database in
            try database.query("SELECT * FROM control_events ORDER BY seq DESC LIMIT 1").first.map(Self.controlEvent)
        }
    }

    public func controlEvents(after seq: Int, limit: Int) throws -> [ControlEvent] {
        try connection.withLock { database in
            try database.query("SELECT * FROM control_events WHERE seq > ? ORDER BY seq LIMIT ?",
                               [.integer(Int64(seq)), .integer(Int64(limit))]).map(Self.controlEvent)
        }
    }

    public func saveReview(_ review: ReviewRecord) throws {
        try connection.withLock { database in
            try database.run("""
                INSERT INTO reviews (id, status, requester, connection, created_at, body) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET status = excluded.status, body = excluded.body
                """, [.text(review.id), .text(review.status.rawValue), .text(review.requester), .text(review.connection),
                      .integer(review.createdAt), .text(Self.encode(review))])
        }
    }

    private static func reviewRecord(_ row: SQLRow) -> ReviewRecord? {
        guard let body = row.text("body") else { return nil }
        return try? JSONDecoder().decode(ReviewRecord.self, from: Data(body.utf8))
    }

    public func review(id: String) throws -> ReviewRecord? {
        try connection.withLock { database in
            try database.query("SELECT body FROM reviews WHERE id = ?", [.text(id)]).first.flatMap(Self.reviewRecord)
        }
    }

    public func updateReview(id: String, _ change: @Sendable (ReviewRecord) throws -> ReviewRecord) throws -> ReviewRecord? {
        try connection.withLock { database in
            try database.transaction { () throws -> ReviewRecord? in
                guard let review = try database.query("SELECT body FROM reviews WHERE id = ?", [.text(id)]).first.flatMap(Self.reviewRecord) else {
                    return nil
                }
                let changed = try change(review)
                try database.run("UPDATE reviews SET status = ?, body = ? WHERE id = ?",
                                 [.text(changed.status.rawValue), .text(Self.encode(changed)), .text(id)])
                return changed
            }
        }
    }

    public func watchReviews(_ handler: @escaping @Sendable (String?) -> Void) {}

    public func reviews(status: String?, limit: Int) throws -> [ReviewRecord] {
        try connection.withLock { database in
            if let status {
                return try database.query("SELECT body FROM reviews WHERE status = ? ORDER BY created_at DESC LIMIT ?",
                                          [.text(status), .integer(Int64(limit))]).compactMap(Self.reviewRecord)
            }
            return try database.query("""
                SELECT body FROM reviews ORDER BY CASE status WHEN 'pending' THEN 0 ELSE 1 END, created_at DESC LIMIT ?
                """, [.integer(Int64(limit))]).compactMap(Self.reviewRecord)
        }
    }
}

extension SQLiteStore {
    /// Moves everything from the WAL into the database file (on shutdown, and for tests that
    /// inspect the file).
    public func checkpoint() throws {
        try connection.withLock { try $0.execute("PRAGMA wal_checkpoint(TRUNCATE)") }
    }

    public func ping() throws {
        _ = try connection.withLock { try $0.query("SELECT 1 AS one") }
    }

    public func putShared(kind: String, key: String, value: String, expires: Int64, now: Int64) throws {
        try connection.withLock { database in
            try database.transaction {
                try database.run("DELETE FROM shared_state WHERE kind = ? AND expires <= ?", [.text(kind), .integer(now)])
                try database.run("INSERT OR REPLACE INTO shared_state (kind, key, value, expires) VALUES (?, ?, ?, ?)",
                                 [.text(kind), .text(key), .text(value), .integer(expires)])
            }
        }
    }

    public func shared(kind: String, key: String, now: Int64, take: Bool) throws -> String? {
        try connection.withLock { database in
            try database.transaction { () throws -> String? in
                let value = try database.query("SELECT value FROM shared_state WHERE kind = ? AND key = ? AND expires > ?",
                                               [.text(kind), .text(key), .integer(now)]).first?.text("value")
                if take { try database.run("DELETE FROM shared_state WHERE kind = ? AND key = ?", [.text(kind), .text(key)]) }
                return value
            }
        }
    }

    public func removeShared(kind: String, key: String) throws {
        try connection.withLock { try $0.run("DELETE FROM shared_state WHERE kind = ? AND key = ?", [.text(kind), .text(key)]) }
    }

    public func runtimeConnections() throws -> [StoredConnection] {
        try connection.withLock { database in
            try database.query("SELECT name, spec, updated_by, updated_at FROM runtime_connections ORDER BY name").map { row in
                StoredConnection(name: row.text("name") ?? "", spec: row.text("spec") ?? "{}", updatedBy: row.text("updated_by") ?? "",
                                 updatedAt: row.int("updated_at") ?? 0)
            }
        }
    }

    public func putRuntimeConnection(_ stored: StoredConnection, create: Bool) throws {
        try connection.withLock { database in
            try database.transaction {
                if create, try !database.query("SELECT name FROM runtime_connections WHERE name = ?", [.text(stored.name)]).isEmpty {
                    throw StoreConflict(reason: "a connection named \(stored.name) already exists")
                }
                try database.run("""
                    INSERT INTO runtime_connections (name, spec, updated_by, updated_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, updated_by = excluded.updated_by, updated_at = excluded.updated_at
                    """, [.text(stored.name), .text(stored.spec), .text(stored.updatedBy), .integer(stored.updatedAt)])
            }
        }
    }

    public func removeRuntimeConnection(name: String) throws -> Bool {
        try connection.withLock { database in
            try database.transaction { () throws -> Bool in
                let found = try !database.query("SELECT name FROM runtime_connections WHERE name = ?", [.text(name)]).isEmpty
                if found { try database.run("DELETE FROM runtime_connections WHERE name = ?", [.text(name)]) }
                return found
            }
        }
    }

    public func probeWrite() throws {
        try connection.withLock { database in
            try database.run("INSERT INTO write_probe (data) VALUES (?)", [.blob([UInt8](repeating: 0, count: 64 << 10))])
            try database.run("DELETE FROM write_probe")
        }
    }

    /// Runs raw SQL (tests tamper with the record through it).
    package func executeForTesting(_ sql: String) throws {
        try connection.withLock { try $0.execute(sql) }
    }
}

/// A write that contradicts what the store holds (a name already taken).
public struct StoreConflict: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public var description: String { reason }
}

/// Opens the store a configuration names: `sqlite:PATH` (read-only for the commands that only
/// read it: they never create one) or `postgres://…` with the password from the configuration's
/// `store.password_env` / `store.password_file`.
public func openStore(_ configuration: GatewayConfiguration, url: String? = nil, readOnly: Bool = false) throws -> any Store {
    let url = url ?? configuration.storeURL
    if url.hasPrefix("sqlite:") { return try SQLiteStore.open(url: url, readOnly: readOnly) }
    let credential = configuration.storeCredential
    let password = credential == GatewayConfiguration.CredentialSource() ? nil : try CredentialResolver.resolve(credential).password?.exposed
    return try PostgresStore.open(url: url, password: password)
}

/// A store URL as it may be shown (logs, status): without a password.
public func displayedStoreURL(_ url: String) -> String {
    url.hasPrefix("sqlite:") ? url : PostgresStoreSettings.redactedURL(url)
}
