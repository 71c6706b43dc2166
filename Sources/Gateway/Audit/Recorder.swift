import MaskEngine
import Adapters
import Crypto
import Foundation
import Logging

/// Wall-clock time in microseconds, injectable so reviews and grants can be tested without waiting.
public protocol GatewayClock: Sendable {
    func nowMicros() -> Int64
}

public struct SystemClock: GatewayClock {
    public init() {}
    public func nowMicros() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }
}

/// A clock that moves only when told to.
public final class ManualClock: GatewayClock {
    private let now: Locked<Int64>
    public init(start: Int64 = 1_800_000_000_000_000) { now = Locked(start) }
    public func nowMicros() -> Int64 { now.withLock { $0 } }
    public func advance(by duration: Duration) {
        let micros = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
        now.withLock { $0 += micros }
    }
}

/// The control-plane chain: logins, denials, review changes, reloads. Each record is hashed onto
/// the previous one and signed, so any prefix of the chain verifies on its own. Each append
/// extends the chain's last stored record (``Store/appendControl(making:)``), so gateways that
/// share a store write one chain between them.
public final class ControlLog: Sendable {
    private let store: any Store
    private let signer: AuditSigner
    private let clock: any GatewayClock
    private let logger: Logger

    public init(store: any Store, signer: AuditSigner, clock: any GatewayClock = SystemClock(),
                logger: Logger = Logger(label: "sluice.audit")) throws {
        self.store = store
        self.signer = signer
        self.clock = clock
        self.logger = logger
        // The store answers now, or the gateway does not start.
        _ = try store.lastControl()
    }

    /// Appends an event. `detail` values must be metadata (ids, names, codes), never secrets or payload.
    public func append(_ kind: String, actor: String, _ detail: [String: String] = [:]) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let detailText = (try? String(decoding: encoder.encode(detail), as: UTF8.self)) ?? "{}"
        let time = clock.nowMicros()
        let genesis = AuditChain.controlGenesis(publicKey: signer.publicKey)
        do {
            _ = try store.appendControl { last in
                let seq = last.map { $0.seq + 1 } ?? 0
                let hash = AuditChain.controlHash(previous: last?.hash ?? genesis, seq: seq, time: time, kind: kind,
                                                  actor: actor, detail: detailText)
                let signature = signer.signature(for: hash).map { Array($0) } ?? []
                return ControlEvent(seq: seq, time: time, kind: kind, actor: actor, detail: detailText, hash: hash, signature: signature)
            }
        } catch {
            logger.error("control event not stored", metadata: ["kind": "\(kind)", "error": "\(error)"])
        }
    }
}

/// Records one session: chains every event onto the previous one and seals the chain at the end.
public final class SessionRecorder: Sendable {
    private struct State {
        var record: SessionRecord
        var previous: [UInt8]
        var sealed = false
        var failed: String?
        /// Where the stored chain ends when this session's own append was refused.
        var loss: RecordWriter.Loss?
    }

    public let id: String
    private let writer: RecordWriter
    private let signer: AuditSigner
    private let clock: any GatewayClock
    private let state: Locked<State>
    /// Longest data of one stored event; longer data is split into several events.
    public static let maximumEventBytes = 64 * 1024

    public init(session: SessionRecord, writer: RecordWriter, signer: AuditSigner, clock: any GatewayClock) throws {
        self.id = session.id
        self.writer = writer
        self.signer = signer
        self.clock = clock
        try writer.store.createSession(session)
        state = Locked(State(record: session, previous: AuditChain.genesis(session)))
    }

    /// Why recording failed, if it did: the session must then stop (no unrecorded activity).
    public var failure: String? { state.withLock { $0.failed } ?? writer.failure }

    public var record: SessionRecord { state.withLock { $0.record } }

    public func count(_ counter: String, by amount: Int = 1) {
        state.withLock { $0.record.counters[counter, default: 0] += amount }
    }

    /// Appends an event now. Returns false when the store refused it (the caller ends the session).
    @discardableResult
    public func append(_ event: SessionEvent) -> Bool {
        append(contentsOf: CollectionOfOne(event))
    }

    /// Appends several events now, in order, with one timestamp and one handoff to the writer.
    /// Returns false when the store refused them (the caller ends the session).
    @discardableResult
    public func append(contentsOf batch: some Collection<SessionEvent>) -> Bool {
        let now = clock.nowMicros()
        return state.withLock { state in
            guard !state.sealed, state.failed == nil else { return false }
            let offset = max(0, now - state.record.startedAt)
            var events: [StoredEvent] = []
            events.reserveCapacity(batch.count)
            for event in batch {
                var start = 0
                repeat {
                    let end = min(event.data.count, start + Self.maximumEventBytes)
                    // One stored event per event, as nearly always: its bytes, not a copy of them.
                    let data = start == 0 && end == event.data.count ? event.data : Array(event.data[start..<end])
                    let seq = state.record.eventCount + events.count
                    let hash = AuditChain.eventHash(previous: events.last?.hash ?? state.previous, seq: seq, offset: offset,
                                                    kind: event.kind.rawValue, data: data)
                    events.append(StoredEvent(sessionID: id, seq: seq, offset: offset, kind: event.kind.rawValue, data: data, hash: hash))
                    start = end
                } while start < event.data.count
            }
            guard !events.isEmpty else { return true }
            guard writer.append(events) else {
                let reason = writer.failure ?? "recording backlog over \(writer.maximumBytes) bytes"
                state.failed = reason
                state.loss = Self.loss(firstSeq: state.record.eventCount, previous: state.previous, genesis: AuditChain.genesis(state.record), reason: reason)
                return false
            }
            state.record.eventCount += events.count
            state.previous = events[events.count - 1].hash
            return true
        }
    }

    static func loss(firstSeq: Int, previous: [UInt8], genesis: [UInt8], reason: String) -> RecordWriter.Loss {
        RecordWriter.Loss(firstSeq: firstSeq, previousHash: firstSeq == 0 ? nil : previous, reason: reason)
    }

    /// Ends the session: writes the end, the last hash and the Ed25519 seal. Idempotent.
    ///
    /// When records of the session never reached the store (a failed write, a refused append),
    /// the chain is taken back to the last stored record and continued with one marker event,
    /// `{"recording_failed": REASON, "lost_records": N}`, before the seal: the record stays one
    /// verifiable chain, and `audit verify` reports the gap as a recording failure, not as
    /// tampering.
    public func seal(reason: String) {
        let now = clock.nowMicros()
        state.withLock { state in
            guard !state.sealed else { return }
            state.sealed = true
            state.record.endedAt = now
            state.record.endReason = reason
            state.record.lastHash = state.previous
            if let loss = writer.loss(for: id) ?? state.loss {
                let (marker, sealed) = Self.closeGap(state.record, loss: loss, signer: signer)
                writer.appendForced([marker])
                writer.forgetLoss(id)
                state.record = sealed
                state.previous = marker.hash
            } else if let signature = signer.signature(for: AuditChain.sealMessage(state.record)) {
                state.record.seal = Data(signature).base64EncodedString()
            }
            writer.update(state.record)
        }
    }

    /// The marker that closes a gap and the record sealed after it: the chain goes back to the
    /// last stored record (`loss`) and continues with the marker. `record` is the ended session
    /// as it would have been sealed (its `eventCount` counts the lost records).
    static func closeGap(_ record: SessionRecord, loss: RecordWriter.Loss, signer: AuditSigner)
        -> (marker: StoredEvent, sealed: SessionRecord) {
        var sealed = record
        let lost = max(0, record.eventCount - loss.firstSeq)
        let previous = loss.previousHash ?? AuditChain.genesis(record)
        let data = SessionMarker.recordingFailed(reason: loss.reason, lostRecords: lost).json
        let offset = max(0, (record.endedAt ?? record.startedAt) - record.startedAt)
        let hash = AuditChain.eventHash(previous: previous, seq: loss.firstSeq, offset: offset,
                                        kind: SessionEvent.Kind.marker.rawValue, data: data)
        let marker = StoredEvent(sessionID: record.id, seq: loss.firstSeq, offset: offset,
                                 kind: SessionEvent.Kind.marker.rawValue, data: data, hash: hash)
        sealed.eventCount = loss.firstSeq + 1
        sealed.lastHash = hash
        sealed.seal = signer.signature(for: AuditChain.sealMessage(sealed)).map { $0.base64EncodedString() }
        return (marker, sealed)
    }
}
