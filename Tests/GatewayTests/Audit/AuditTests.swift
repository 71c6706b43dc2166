import Adapters
import Crypto
import Foundation
import Testing
@testable import Gateway

@Suite struct AuditTests {
    let directory = TemporaryDirectory()
    let key = Curve25519.Signing.PrivateKey()
    let clock = ManualClock()
    var path: String { directory.file("audit.db") }

    /// Records one sealed session of `count` output events and closes the store (checkpointing the WAL).
    func recordSession(id: String = "s-1", count: Int = 5, seal: Bool = true) throws {
        let store = try SQLiteStore(path: path)
        let control = try ControlLog(store: store, signer: AuditSigner(key: key), clock: clock)
        control.append("session.opened", actor: "alice", ["session": id])
        let writer = RecordWriter(store: store)
        defer {
            writer.drain()
            try? store.checkpoint()
        }
        let recorder = try SessionRecorder(
            session: SessionRecord(id: id, user: "alice", groups: ["eng"], connection: "app-db", kind: "postgres", peer: "127.0.0.1",
                                   startedAt: clock.nowMicros()),
            writer: writer, signer: AuditSigner(key: key), clock: clock)
        recorder.append(SessionEvent(.input, text: "select * from customers"))
        for index in 0..<count {
            clock.advance(by: .milliseconds(10))
            recorder.append(SessionEvent(.output, text: "ROW-MARKER-\(id)-\(index) [EMAIL] ****-1111"))
        }
        if seal { recorder.seal(reason: "client closed") }
        control.append("session.closed", actor: "alice", ["session": id])
    }

    func verify() throws -> AuditReport {
        try AuditVerifier(store: try SQLiteStore(path: path, readOnly: true), publicKey: key.publicKey).verify()
    }

    func sql(_ statement: String) throws {
        let store = try SQLiteStore(path: path)
        try store.executeForTesting(statement)
    }

    @Test func intactRecordVerifies() throws {
        try recordSession()
        try recordSession(id: "s-2", count: 0)
        let report = try verify()
        #expect(report.ok)
        #expect(report.sessionsSealed == 2)
        #expect(report.eventsChecked == 7)
        #expect(report.controlEventsChecked == 4)
    }

    @Test func oneEditedByteInTheFileIsFoundAndNamed() throws {
        try recordSession()
        var bytes = try #require(FileManager.default.contents(atPath: path))
        let needle = Data("ROW-MARKER-s-1-3".utf8)
        let range = try #require(bytes.range(of: needle))
        bytes[range.lowerBound + 4] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: path))
        let report = try verify()
        #expect(!report.ok)
        #expect(report.problems.first?.session == "s-1")
        #expect(report.problems.first?.seq == 4)
    }

    @Test func deletedEventIsFound() throws {
        try recordSession()
        try sql("DELETE FROM events WHERE session_id = 's-1' AND seq = 2")
        let problem = try #require(try verify().problems.first)
        #expect(problem.seq == 2)
        #expect(problem.reason.contains("missing"))
    }

    @Test func swappedEventsAreFound() throws {
        try recordSession()
        try sql("UPDATE events SET seq = -1 WHERE session_id = 's-1' AND seq = 2")
        try sql("UPDATE events SET seq = 2 WHERE session_id = 's-1' AND seq = 3")
        try sql("UPDATE events SET seq = 3 WHERE session_id = 's-1' AND seq = -1")
        let problem = try #require(try verify().problems.first)
        #expect(problem.seq == 2)
    }

    @Test func truncatedSealedSessionIsFound() throws {
        try recordSession()
        try sql("DELETE FROM events WHERE session_id = 's-1' AND seq = 5")
        let problem = try #require(try verify().problems.first)
        #expect(problem.reason.contains("seal covers 6"))
    }

    @Test func editedMetadataBreaksTheChainFromItsFirstRecord() throws {
        try recordSession()
        try sql("UPDATE sessions SET user = 'mallory' WHERE id = 's-1'")
        let problem = try #require(try verify().problems.first)
        #expect(problem.seq == 0)
    }

    @Test func editedCountersBreakTheSeal() throws {
        try recordSession()
        try sql("UPDATE sessions SET counters = '{}' , end_reason = 'x' WHERE id = 's-1'")
        let problem = try #require(try verify().problems.first)
        #expect(problem.reason.contains("seal signature"))
    }

    @Test func editedControlEventIsFound() throws {
        try recordSession()
        try sql("UPDATE control_events SET actor = 'bob' WHERE seq = 1")
        let problem = try #require(try verify().problems.first)
        #expect(problem.chain == "control")
        #expect(problem.seq == 1)
    }

    @Test func anotherKeyCannotVerify() throws {
        try recordSession()
        let report = try AuditVerifier(store: try SQLiteStore(path: path, readOnly: true),
                                       publicKey: Curve25519.Signing.PrivateKey().publicKey).verify()
        #expect(!report.ok)
    }

    @Test func unsealedSessionIsReportedButPasses() throws {
        try recordSession(seal: false)
        let report = try verify()
        #expect(report.ok)
        #expect(report.unsealed == ["s-1"])
    }

    @Test func largeOutputIsSplitIntoBoundedEvents() throws {
        let store = try SQLiteStore(path: path)
        let writer = RecordWriter(store: store)
        let recorder = try SessionRecorder(
            session: SessionRecord(id: "big", user: "a", groups: [], connection: "c", kind: "ssh", peer: "p", startedAt: 0),
            writer: writer, signer: AuditSigner(key: key), clock: clock)
        recorder.append(SessionEvent(.output, [UInt8](repeating: 65, count: SessionRecorder.maximumEventBytes * 2 + 10)))
        recorder.seal(reason: "done")
        writer.drain()
        #expect(try store.events(session: "big", after: -1, limit: 10).map(\.data.count)
                == [SessionRecorder.maximumEventBytes, SessionRecorder.maximumEventBytes, 10])
        #expect(try AuditVerifier(store: store, publicKey: key.publicKey).verify().ok)
    }

    @Test func eventsAppendedTogetherAreChainedInOrderAndVerify() throws {
        let store = try SQLiteStore(path: path)
        let writer = RecordWriter(store: store)
        let recorder = try SessionRecorder(
            session: SessionRecord(id: "batch", user: "a", groups: [], connection: "c", kind: "http", peer: "p",
                                   startedAt: clock.nowMicros()),
            writer: writer, signer: AuditSigner(key: key), clock: clock)
        recorder.append(SessionEvent(.input, text: "GET /people"))
        clock.advance(by: .milliseconds(3))
        let long = [UInt8](repeating: 66, count: SessionRecorder.maximumEventBytes + 5)
        #expect(recorder.append(contentsOf: [SessionEvent(.output, long), SessionMarker.exchange(
            status: 200, requestBytes: 0, responseBytes: long.count, upstreamBytes: long.count, recordCut: false).event]))
        #expect(recorder.append(contentsOf: [SessionEvent]()))
        recorder.seal(reason: "done")
        writer.drain()
        let events = try store.events(session: "batch", after: -1, limit: 10)
        #expect(events.map(\.kind) == ["i", "o", "o", "m"])
        #expect(events.map(\.seq) == [0, 1, 2, 3])
        #expect(events.map(\.data.count).prefix(3) == [11, SessionRecorder.maximumEventBytes, 5])
        // One timestamp for the batch.
        #expect(events.dropFirst().allSatisfy { $0.offset == 3000 })
        #expect(try AuditVerifier(store: store, publicKey: key.publicKey).verify().ok)
        #expect(try store.session(id: "batch")?.eventCount == 4)
    }
}
