import MaskEngine
import Adapters
import Crypto
import Foundation
import Testing
@testable import Gateway

/// A store that stops taking writes (issue 14, finding 4), simulated with SQLite's own "database
/// or disk is full" (`PRAGMA max_page_count`): the same error a full disk gives.
@Suite struct RecordingFailureTests {
    let directory = TemporaryDirectory()
    let key = Curve25519.Signing.PrivateKey()
    let clock = ManualClock()

    func session(_ id: String) -> SessionRecord {
        SessionRecord(id: id, user: "alice", groups: ["eng"], connection: "app-db", kind: "ssh", peer: "127.0.0.1:1",
                      startedAt: clock.nowMicros())
    }

    /// Fills the store: it keeps its current pages and takes no more.
    func fill(_ store: SQLiteStore) throws { try store.executeForTesting("PRAGMA max_page_count = 1") }
    func free(_ store: SQLiteStore) throws { try store.executeForTesting("PRAGMA max_page_count = 1073741823") }

    func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<200 where !condition() { try await Task.sleep(for: .milliseconds(20)) }
        #expect(condition())
    }

    @Test func aFailedWriteStopsTheSessionMarksTheGapAndRecoversWhenSpaceReturns() async throws {
        let store = try SQLiteStore(path: directory.file("audit.db"))
        let writer = RecordWriter(store: store, retryInterval: .milliseconds(50))
        let lost = Locked<Set<String>>([])
        let recovered = Locked<String?>(nil)
        writer.onFailure(loss: { sessions, _ in lost.withLock { $0.formUnion(sessions) } },
                         recovery: { failure in recovered.withLock { $0 = failure } })
        let recorder = try SessionRecorder(session: session("s-full"), writer: writer, signer: AuditSigner(key: key), clock: clock)
        for line in 0..<5 { #expect(recorder.append(SessionEvent(.output, text: "line \(line)"))) }
        writer.drain()

        try fill(store)
        let big = SessionEvent(.output, Array(repeating: UInt8(ascii: "x"), count: 60_000))
        for _ in 0..<20 { recorder.append(big) }
        writer.drain()
        #expect(writer.failure?.contains("store write failed") == true)
        #expect(lost.withLock { $0 } == ["s-full"])
        #expect(writer.loss(for: "s-full")?.firstSeq == 5)
        // While the store refuses writes, the session's appends are refused: it must stop.
        #expect(!recorder.append(SessionEvent(.output, text: "after")))
        #expect(recorder.failure != nil)
        recorder.seal(reason: "recording failed, so the session was stopped")

        try free(store)
        try await waitUntil { recovered.withLock { $0 } != nil }
        #expect(writer.failure == nil)
        writer.drain()

        let report = try AuditVerifier(store: store, publicKey: key.publicKey).verify(sessionIDs: ["s-full"])
        #expect(report.ok, "\(report.problems)")
        #expect(report.recordingFailed == ["s-full"])
        #expect(report.sessionsSealed == 1)
        let events = try store.events(session: "s-full", after: -1, limit: 100)
        #expect(events.count == 6)
        let marker = String(decoding: events[5].data, as: UTF8.self)
        #expect(marker.hasPrefix(#"{"recording_failed":"store write failed"#))
        #expect(marker.hasSuffix(#""lost_records":20}"#))

        // Recovered without a restart: a new session records and verifies.
        let next = try SessionRecorder(session: session("s-next"), writer: writer, signer: AuditSigner(key: key), clock: clock)
        #expect(next.append(SessionEvent(.output, text: "fine again")))
        next.seal(reason: "client closed")
        writer.drain()
        let again = try AuditVerifier(store: store, publicKey: key.publicKey).verify(sessionIDs: ["s-next"])
        #expect(again.ok && again.recordingFailed.isEmpty && again.sessionsSealed == 1)
    }

    @Test func aSessionSealedInTheBatchThatFailedIsSealedAgainAfterItsMarker() async throws {
        let store = try SQLiteStore(path: directory.file("audit.db"))
        // One long commit interval: the events and the seal share the batch that fails.
        let writer = RecordWriter(store: store, commitInterval: .seconds(30), retryInterval: .milliseconds(50), signer: AuditSigner(key: key))
        let recorder = try SessionRecorder(session: session("s-batch"), writer: writer, signer: AuditSigner(key: key), clock: clock)
        try fill(store)
        for _ in 0..<20 { recorder.append(SessionEvent(.output, Array(repeating: UInt8(ascii: "z"), count: 60_000))) }
        recorder.seal(reason: "client closed")
        writer.drain()
        #expect(writer.failure != nil)
        try free(store)
        try await waitUntil { writer.failure == nil }
        writer.drain()
        let report = try AuditVerifier(store: store, publicKey: key.publicKey).verify(sessionIDs: ["s-batch"])
        #expect(report.ok, "\(report.problems)")
        #expect(report.recordingFailed == ["s-batch"])
        #expect(report.sessionsSealed == 1)
    }

    @Test func removingRecordsIsStillTamperingWhenNoMarkerClosesTheGap() throws {
        let store = try SQLiteStore(path: directory.file("audit.db"))
        let writer = RecordWriter(store: store)
        let recorder = try SessionRecorder(session: session("s-cut"), writer: writer, signer: AuditSigner(key: key), clock: clock)
        for line in 0..<5 { recorder.append(SessionEvent(.output, text: "line \(line)")) }
        recorder.seal(reason: "client closed")
        writer.drain()
        try store.executeForTesting("DELETE FROM events WHERE session_id = 's-cut' AND seq = 4")
        let report = try AuditVerifier(store: store, publicKey: key.publicKey).verify(sessionIDs: ["s-cut"])
        #expect(!report.ok)
        #expect(report.recordingFailed.isEmpty)
    }

    @Test func aSessionWhoseRecordFailsIsEndedAndTheGatewayRecordsTheRecovery() async throws {
        let gateway = try TestGateway()
        let store = try #require(gateway.runtime.store as? SQLiteStore)
        let token = try gateway.token("alice", ["eng"])
        let session = try await gateway.runtime.openSession(token: token, connection: "app-db", kind: .postgres, peer: "127.0.0.1:5")
        let ended = Locked<String?>(nil)
        session.onTermination { reason in ended.withLock { $0 = reason } }
        session.record(SessionEvent(.input, text: "select 1"))
        gateway.runtime.writer.drain()

        try fill(store)
        for _ in 0..<20 { session.record(SessionEvent(.output, Array(repeating: UInt8(ascii: "y"), count: 60_000))) }
        gateway.runtime.writer.drain()
        try await waitUntil { ended.withLock { $0 } != nil }
        #expect(ended.withLock { $0 }?.hasPrefix("recording failed") == true)
        // New sessions are refused while the store takes no writes.
        await #expect(throws: GovernorError.self) {
            _ = try await gateway.runtime.openSession(token: token, connection: "app-db", kind: .postgres, peer: "127.0.0.1:6")
        }

        try free(store)
        try await waitUntil { gateway.runtime.writer.failure == nil }
        let reopened = try await gateway.runtime.openSession(token: token, connection: "app-db", kind: .postgres, peer: "127.0.0.1:7")
        if case .allow = reopened.decide(Command(text: "select 1")) {} else { Issue.record("a command after recovery was not allowed") }
        await reopened.close(reason: "done")
        gateway.runtime.writer.drain()
        let kinds = try store.controlEvents(after: -1, limit: 1000).map(\.kind)
        #expect(kinds.contains("recording.recovered"))
        let report = try gateway.runtime.signer.verifier(for: store).verify()
        #expect(report.ok, "\(report.problems)")
        #expect(report.recordingFailed == [session.id])
    }
}
