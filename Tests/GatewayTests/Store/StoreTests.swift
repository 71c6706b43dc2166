import Adapters
import Crypto
import Foundation
import NIOPosix
import Testing
@testable import Gateway

/// The two stores the gateway can run on. PostgreSQL is tested when `SLUICE_TEST_POSTGRES`
/// names a server (`make unit-test` starts one in a temporary folder and sets it).
enum StoreBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres

    var testDescription: String { rawValue }

    static var postgresURL: String? { ProcessInfo.processInfo.environment["SLUICE_TEST_POSTGRES"] }

    static var available: [StoreBackend] { postgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }
}

/// A fresh, empty store of one backend: an SQLite file in a temporary folder, or a new
/// database on the test server (dropped when the fixture goes away).
final class StoreFixture: Sendable {
    let backend: StoreBackend
    let directory = TemporaryDirectory()
    /// For PostgreSQL: the URL of this fixture's own database.
    let url: String
    let database: String?

    init(_ backend: StoreBackend) throws {
        self.backend = backend
        switch backend {
        case .sqlite:
            url = "sqlite:" + directory.file("store.db")
            database = nil
        case .postgres:
            guard let base = StoreBackend.postgresURL, var components = URLComponents(string: base) else {
                throw PostgresStoreError(code: .unreachable, reason: "SLUICE_TEST_POSTGRES is not set")
            }
            let name = "sluice_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
            try Self.admin().executeForTesting("CREATE DATABASE \(name)")
            components.path = "/" + name
            url = components.string!
            database = name
        }
    }

    /// A store on the server's own database, for creating and dropping the fixtures' ones.
    static func admin() throws -> PostgresStore {
        try PostgresStore.open(url: StoreBackend.postgresURL!)
    }

    /// Opens the fixture's store (again: a second gateway on the same database).
    func open() throws -> any Store {
        switch backend {
        case .sqlite: try SQLiteStore.open(url: url)
        case .postgres: try PostgresStore.open(url: url)
        }
    }

    func execute(_ sql: String, on store: any Store) throws {
        switch store {
        case let store as SQLiteStore: try store.executeForTesting(sql)
        case let store as PostgresStore: try store.executeForTesting(sql)
        default: Issue.record("unknown store")
        }
    }

    deinit {
        if let database {
            try? Self.admin().executeForTesting("DROP DATABASE IF EXISTS \(database) WITH (FORCE)")
        }
    }
}

@Suite struct StoreTests {
    let key = Curve25519.Signing.PrivateKey()

    func session(_ id: String, user: String = "alice", connection: String = "app-db", kind: String = "postgres", at: Int64) -> SessionRecord {
        SessionRecord(id: id, user: user, groups: ["eng", "dba"], connection: connection, kind: kind, peer: "127.0.0.1:5000", startedAt: at)
    }

    @Test(arguments: StoreBackend.available)
    func sessionsAndEventsReadBackAsWrittenAndFilter(_ backend: StoreBackend) throws {
        let fixture = try StoreFixture(backend)
        let store = try fixture.open()
        try store.createSession(session("s-1", at: 1_000))
        try store.createSession(session("s-2", user: "bob", connection: "box", kind: "ssh", at: 2_000))
        try store.createSession(session("s-3", at: 3_000))
        // Every byte value, and more events than one multi-row insert takes.
        let data = (0..<256).map { UInt8($0) }
        let events = (0..<1_203).map { seq in
            StoredEvent(sessionID: "s-1", seq: seq, offset: Int64(seq * 10), kind: seq % 2 == 0 ? "o" : "i",
                        data: seq == 7 ? [] : data.shuffled(), hash: Array(SHA256.hash(data: [UInt8(seq & 0xff)])))
        }
        try store.appendEvents(events)
        #expect(try store.events(session: "s-1", after: -1, limit: 5_000) == events)
        #expect(try store.events(session: "s-1", after: 1_199, limit: 10).map(\.seq) == [1_200, 1_201, 1_202])
        #expect(try store.events(session: "s-1", after: 10, limit: 2).map(\.seq) == [11, 12])
        #expect(try store.events(session: "s-2", after: -1, limit: 10).isEmpty)

        var ended = try #require(try store.session(id: "s-1"))
        #expect(ended == session("s-1", at: 1_000))
        ended.endedAt = 9_000
        ended.endReason = "client closed"
        ended.eventCount = events.count
        ended.lastHash = events.last?.hash
        ended.seal = "c2VhbA=="
        ended.counters = ["allowed": 3, "masked:email": 12]
        try store.updateSession(ended)
        #expect(try store.session(id: "s-1") == ended)
        #expect(try store.session(id: "nope") == nil)

        var filter = SessionFilter()
        #expect(try store.sessions(filter).map(\.id) == ["s-3", "s-2", "s-1"])
        filter.user = "alice"
        #expect(try store.sessions(filter).map(\.id) == ["s-3", "s-1"])
        filter.since = 1_500
        #expect(try store.sessions(filter).map(\.id) == ["s-3"])
        filter = SessionFilter()
        filter.kind = "ssh"
        filter.connection = "box"
        #expect(try store.sessions(filter).map(\.id) == ["s-2"])
        filter = SessionFilter()
        filter.until = 3_000
        filter.limit = 1
        filter.offset = 1
        #expect(try store.sessions(filter).map(\.id) == ["s-1"])
        #expect(try store.allSessionIDs() == ["s-1", "s-2", "s-3"])
    }

    @Test(arguments: StoreBackend.available)
    func aSecondWriteOfTheSameRecordIsRefused(_ backend: StoreBackend) throws {
        let fixture = try StoreFixture(backend)
        let store = try fixture.open()
        try store.createSession(session("s-1", at: 1))
        let event = StoredEvent(sessionID: "s-1", seq: 0, offset: 0, kind: "o", data: [1], hash: [2])
        try store.appendEvents([event])
        #expect(throws: (any Error).self) { try store.appendEvents([event]) }
        #expect(throws: (any Error).self) { try store.createSession(session("s-1", at: 1)) }
        // The failed batch left nothing behind.
        #expect(try store.events(session: "s-1", after: -1, limit: 10) == [event])
    }

    @Test(arguments: StoreBackend.available)
    func reviewsAreUpdatedInPlaceAndListedPendingFirst(_ backend: StoreBackend) throws {
        let fixture = try StoreFixture(backend)
        let store = try fixture.open()
        func review(_ id: String, _ status: ReviewRecord.Status, at: Int64) -> ReviewRecord {
            ReviewRecord(id: id, kind: .command, requester: "alice", requesterGroups: ["eng"], connection: "app-db", sessionID: "s-1",
                         command: "DELETE FROM t", classes: ["delete_without_where"], reason: "review required", status: status,
                         createdAt: at, deadline: at + 600_000_000, approvers: ["dba-leads"], minApprovals: 1)
        }
        try store.saveReview(review("r-1", .pending, at: 1))
        try store.saveReview(review("r-2", .pending, at: 2))
        try store.saveReview(review("r-3", .denied, at: 3))
        var approved = review("r-1", .approved, at: 1)
        approved.approvals = [.init(user: "dana", at: 5)]
        try store.saveReview(approved)
        #expect(try store.review(id: "r-1") == approved)
        #expect(try store.review(id: "r-9") == nil)
        #expect(try store.reviews(status: "pending", limit: 10).map(\.id) == ["r-2"])
        #expect(try store.reviews(status: nil, limit: 10).map(\.id) == ["r-2", "r-3", "r-1"])
        #expect(try store.reviews(status: nil, limit: 1).map(\.id) == ["r-2"])
    }

    /// Two gateways on one store append to the control chain at once: one chain, no gap, no
    /// fork, and it verifies.
    @Test(arguments: StoreBackend.available)
    func controlEventsFromTwoGatewaysAtOnceMakeOneVerifiableChain(_ backend: StoreBackend) async throws {
        let fixture = try StoreFixture(backend)
        let first = try fixture.open()
        let second = try fixture.open()
        let logs = try [ControlLog(store: first, signer: AuditSigner(key: key)), ControlLog(store: second, signer: AuditSigner(key: key))]
        await withTaskGroup(of: Void.self) { group in
            for (index, log) in logs.enumerated() {
                group.addTask {
                    for round in 0..<40 { log.append("review.created", actor: "gateway-\(index)", ["round": String(round)]) }
                }
            }
        }
        let chain = try first.controlEvents(after: -1, limit: 1_000)
        #expect(chain.map(\.seq) == Array(0..<80))
        #expect(Set(chain.map(\.actor)) == ["gateway-0", "gateway-1"])
        let report = try AuditVerifier(store: second, publicKey: key.publicKey).verify()
        #expect(report.ok)
        #expect(report.controlEventsChecked == 80)
        #expect(try second.lastControl() == chain.last)
    }

    /// A session recorded through the writer verifies; one edited record is found and named.
    @Test(arguments: StoreBackend.available)
    func aRecordedSessionVerifiesAndAnEditedRecordIsNamed(_ backend: StoreBackend) throws {
        let fixture = try StoreFixture(backend)
        let store = try fixture.open()
        let clock = ManualClock()
        let writer = RecordWriter(store: store, signer: AuditSigner(key: key))
        let recorder = try SessionRecorder(session: session("s-1", at: clock.nowMicros()), writer: writer,
                                           signer: AuditSigner(key: key), clock: clock)
        recorder.append(SessionEvent(.input, text: "select * from customers"))
        for index in 0..<4 {
            clock.advance(by: .milliseconds(5))
            recorder.append(contentsOf: [SessionEvent(.output, text: "row \(index) [EMAIL]"),
                                         SessionMarker.exchange(status: 200, requestBytes: 0, responseBytes: 12, upstreamBytes: 12,
                                                                recordCut: false).event])
        }
        recorder.seal(reason: "client closed")
        writer.drain()
        let intact = try AuditVerifier(store: store, publicKey: key.publicKey).verify()
        #expect(intact.ok)
        #expect(intact.sessionsSealed == 1)
        #expect(intact.eventsChecked == 9)

        try fixture.execute("UPDATE events SET kind = 'i' WHERE session_id = 's-1' AND seq = 4", on: store)
        let edited = try AuditVerifier(store: try fixture.open(), publicKey: key.publicKey).verify()
        #expect(!edited.ok)
        #expect(edited.problems.first?.session == "s-1")
        #expect(edited.problems.first?.seq == 4)
    }

    @Test(arguments: StoreBackend.available)
    func theWriteProbeLeavesNothingBehind(_ backend: StoreBackend) throws {
        let fixture = try StoreFixture(backend)
        let store = try fixture.open()
        try store.probeWrite()
        try store.probeWrite()
        try store.checkpoint()
        #expect(try store.allSessionIDs().isEmpty)
    }
}

extension StoreTests {
    /// `sluice store migrate`: an SQLite record copied into the other backend verifies there
    /// and reads back the same; a target that already holds a record is refused.
    @Test(arguments: StoreBackend.available)
    func aRecordCopiedIntoAnotherStoreVerifiesThereAndReadsTheSame(_ backend: StoreBackend) throws {
        let origin = try StoreFixture(.sqlite)
        let source = try origin.open()
        let clock = ManualClock()
        let writer = RecordWriter(store: source, signer: AuditSigner(key: key))
        let control = try ControlLog(store: source, signer: AuditSigner(key: key), clock: clock)
        for index in 0..<3 {
            control.append("session.opened", actor: "alice", ["session": "s-\(index)"])
            let recorder = try SessionRecorder(session: session("s-\(index)", at: clock.nowMicros()), writer: writer,
                                               signer: AuditSigner(key: key), clock: clock)
            for line in 0..<(index * 700) {
                clock.advance(by: .microseconds(50))
                recorder.append(SessionEvent(.output, text: "line \(line) [EMAIL]"))
            }
            recorder.count("allowed", by: index)
            if index < 2 { recorder.seal(reason: "client closed") }
        }
        try source.saveReview(ReviewRecord(id: "r-1", kind: .access, requester: "alice", requesterGroups: ["eng"], connection: "app-db",
                                           classes: [], reason: "incident 42", status: .approved, createdAt: 5, deadline: 10,
                                           approvers: ["leads"], minApprovals: 1, grantSeconds: 3_600))
        try source.putRuntimeConnection(StoredConnection(name: "extra", spec: "{}", updatedBy: "ann", updatedAt: 7), create: true)
        writer.drain()

        let copy = try StoreFixture(backend)
        let target = try copy.open()
        let report = try StoreMigration.copy(from: source, to: target)
        #expect(report == StoreMigration.Report(sessions: 3, events: 2_100, controlEvents: 3, reviews: 1, connections: 1))
        #expect(try target.runtimeConnections() == source.runtimeConnections())
        let verified = try AuditVerifier(store: target, publicKey: key.publicKey).verify()
        #expect(verified.ok)
        #expect(verified.sessionsSealed == 2 && verified.unsealed == ["s-2"] && verified.eventsChecked == 2_100)
        for id in try source.allSessionIDs() {
            #expect(try target.session(id: id) == source.session(id: id))
            #expect(try target.events(session: id, after: -1, limit: 5_000) == source.events(session: id, after: -1, limit: 5_000))
        }
        #expect(try target.controlEvents(after: -1, limit: 10) == source.controlEvents(after: -1, limit: 10))
        #expect(try target.review(id: "r-1") == source.review(id: "r-1"))

        #expect(throws: StoreMigration.Refusal.self) { try StoreMigration.copy(from: source, to: target) }
    }
}

extension StoreTests {
    @Test(arguments: StoreBackend.available)
    func runtimeConnectionsAreAddedOnceReplacedAndRemoved(_ backend: StoreBackend) throws {
        let fixture = try StoreFixture(backend)
        let store = try fixture.open()
        try store.putRuntimeConnection(StoredConnection(name: "b", spec: "{\"v\":1}", updatedBy: "ann", updatedAt: 1), create: true)
        try store.putRuntimeConnection(StoredConnection(name: "a", spec: "{}", updatedBy: "ann", updatedAt: 2), create: true)
        #expect(throws: StoreConflict.self) {
            try store.putRuntimeConnection(StoredConnection(name: "b", spec: "{}", updatedBy: "bo", updatedAt: 3), create: true)
        }
        try store.putRuntimeConnection(StoredConnection(name: "b", spec: "{\"v\":2}", updatedBy: "bo", updatedAt: 4), create: false)
        #expect(try store.runtimeConnections() == [StoredConnection(name: "a", spec: "{}", updatedBy: "ann", updatedAt: 2),
                                                    StoredConnection(name: "b", spec: "{\"v\":2}", updatedBy: "bo", updatedAt: 4)])
        // Another gateway on the same store sees them.
        #expect(try fixture.open().runtimeConnections().count == 2)
        #expect(try store.removeRuntimeConnection(name: "a"))
        #expect(try !store.removeRuntimeConnection(name: "a"))
        #expect(try store.runtimeConnections().map(\.name) == ["b"])
    }

    @Test(arguments: StoreBackend.available)
    func sharedStateExpiresAndATakenValueIsGone(_ backend: StoreBackend) throws {
        let fixture = try StoreFixture(backend)
        let store = try fixture.open()
        try store.putShared(kind: "k", key: "a", value: "one", expires: 100, now: 10)
        try store.putShared(kind: "k", key: "b", value: "two", expires: 100, now: 10)
        try store.putShared(kind: "other", key: "a", value: "else", expires: 100, now: 10)
        #expect(try store.shared(kind: "k", key: "a", now: 50, take: false) == "one")
        #expect(try store.shared(kind: "k", key: "a", now: 100, take: false) == nil)
        #expect(try store.shared(kind: "k", key: "b", now: 50, take: true) == "two")
        #expect(try store.shared(kind: "k", key: "b", now: 50, take: true) == nil)
        try store.removeShared(kind: "k", key: "a")
        #expect(try store.shared(kind: "k", key: "a", now: 50, take: false) == nil)
        #expect(try store.shared(kind: "other", key: "a", now: 50, take: false) == "else")
        // Replacing keeps one entry.
        try store.putShared(kind: "k", key: "c", value: "first", expires: 100, now: 10)
        try store.putShared(kind: "k", key: "c", value: "second", expires: 200, now: 10)
        #expect(try store.shared(kind: "k", key: "c", now: 150, take: false) == "second")
    }

    /// A browser signed in on one gateway is signed in on another of the same store; signing
    /// out on either ends it on both; an OIDC redirect may come back to either, once.
    @Test(arguments: StoreBackend.available)
    func consoleSignInsAreSharedByTheGatewaysOfAStore(_ backend: StoreBackend) throws {
        let fixture = try StoreFixture(backend)
        let first = ConsoleLogins(store: try fixture.open())
        let second = ConsoleLogins(store: try fixture.open())
        let alice = Identity(user: "alice", groups: ["eng"], issuer: "t")
        let login = first.create(alice)
        let seen = try #require(second.lookup(login.id))
        #expect(seen.identity == alice && seen.csrf == login.csrf)
        #expect(second.lookup("not-a-login") == nil)
        second.remove(login.id)
        #expect(first.lookup(login.id) == nil)
        // The store holds digests, not the cookie.
        let store = try fixture.open()
        #expect(try store.shared(kind: "console.login", key: login.id, now: 0, take: false) == nil)

        let (state, pending) = first.beginOIDC(redirect: "https://gw/console/callback")
        let finished = try #require(second.finishOIDC(state: state))
        #expect(finished.verifier == pending.verifier && finished.nonce == pending.nonce)
        #expect(first.finishOIDC(state: state) == nil)
    }
}

/// What only the PostgreSQL store has: its URL, its schema migrations, its failures.
@Suite struct PostgresStoreTests {
    @Test func theURLNamesUserHostDatabaseAndTLS() throws {
        let plain = try PostgresStoreSettings.parse("postgres://sluice@db.internal/audit")
        #expect(plain.host == "db.internal" && plain.port == 5432 && plain.user == "sluice" && plain.database == "audit")
        #expect(plain.tls == .prefer && plain.password == nil && plain.poolSize == 4)
        let full = try PostgresStoreSettings.parse("postgresql://sluice:p%40ss@10.0.0.5:6432/audit?sslmode=verify-full&sslrootcert=/etc/ca.pem&pool=8")
        #expect(full.password == "p@ss" && full.port == 6432 && full.tls == .verifyFull && full.caFile == "/etc/ca.pem" && full.poolSize == 8)
        for bad in ["postgres://db/audit", "postgres://u@db/", "postgres://u@/audit", "mysql://u@db/a", "postgres://u@db/a?sslmode=maybe",
                    "postgres://u@db/a?sslmode=verify-full", "postgres://u@db/a?pool=0", "postgres://u@db/a?application_name=x"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try PostgresStoreSettings.parse(bad) }
        }
    }

    @Test func theURLIsPrintedWithoutItsPassword() {
        let shown = PostgresStoreSettings.redactedURL("postgres://sluice:Hunter2-secret@db/audit?sslmode=require")
        #expect(!shown.contains("Hunter2"))
        #expect(shown.contains("sluice") && shown.contains("db/audit"))
        #expect(PostgresStoreSettings.redactedURL("postgres://sluice@db/audit") == "postgres://sluice@db/audit")
    }

    @Test func aStoreThatCannotBeReachedFailsWithACodeAndNoPassword() throws {
        // A port nothing listens on (bound, then closed).
        let socket = try ListeningProbe()
        let port = socket.port
        socket.close()
        let started = ContinuousClock.now
        do {
            _ = try PostgresStore.open(url: "postgres://sluice@127.0.0.1:\(port)/audit?sslmode=disable", password: "Hunter2-secret")
            Issue.record("opened a store nobody serves")
        } catch let error as PostgresStoreError {
            #expect(error.code == .unreachable)
            #expect(!error.description.contains("Hunter2"))
        }
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    /// The gateway's event loops call the store (a blocked command's control record), as they
    /// call SQLite: the store must answer there, not trap.
    @Test(.enabled(if: StoreBackend.postgresURL != nil))
    func theStoreAnswersCallsMadeOnAnEventLoopThread() async throws {
        let fixture = try StoreFixture(.postgres)
        let store = try fixture.open()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let ids = try await group.next().submit {
            try store.ping()
            try store.createSession(SessionRecord(id: "on-loop", user: "a", groups: [], connection: "c", kind: "http", peer: "p", startedAt: 1))
            return try store.allSessionIDs()
        }.get()
        try await group.shutdownGracefully()
        #expect(ids == ["on-loop"])
    }

    @Test(.enabled(if: StoreBackend.postgresURL != nil))
    func twoGatewaysStartingAtOnceMigrateTheSchemaOnce() async throws {
        let fixture = try StoreFixture(.postgres)
        let url = fixture.url
        let versions = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<3 { group.addTask { try PostgresStore.open(url: url).schemaVersion() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(versions == Array(repeating: PostgresStore.migrations.count, count: 3))
        let store = try PostgresStore.open(url: url)
        try store.executeForTesting("DO $$ BEGIN IF (SELECT count(*) FROM sluice_schema) <> \(PostgresStore.migrations.count) THEN RAISE EXCEPTION 'migrated twice'; END IF; END $$")
    }

    @Test(.enabled(if: StoreBackend.postgresURL != nil))
    func aStoreWithANewerSchemaIsRefused() throws {
        let fixture = try StoreFixture(.postgres)
        let store = try PostgresStore.open(url: fixture.url)
        try store.executeForTesting("INSERT INTO sluice_schema (version) VALUES (\(PostgresStore.migrations.count + 1))")
        #expect {
            _ = try PostgresStore.open(url: fixture.url)
        } throws: { error in
            (error as? PostgresStoreError)?.code == .schemaTooNew
        }
    }

    /// The test runner sets `SLUICE_TEST_REQUIRE_POSTGRES` so that a missing server fails the
    /// run instead of leaving the PostgreSQL half of the store tests out.
    @Test func thePostgresBackendIsTestedWhenTheRunnerAsksForIt() {
        if ProcessInfo.processInfo.environment["SLUICE_TEST_REQUIRE_POSTGRES"] == "1" {
            #expect(StoreBackend.available.contains(.postgres))
        }
    }
}

/// A loopback port that was free a moment ago.
struct ListeningProbe {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        self.descriptor = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { _ = Glibc.close(descriptor) }
}
