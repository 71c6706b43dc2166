import MaskEngine
import Crypto
import Dispatch
import Foundation
import Logging

/// Writes session events to the store off the event loops, in batches (group commit).
///
/// `append` only enqueues (the hash was already computed by the recorder, so the chain does not
/// depend on when the write happens); one serial queue commits everything enqueued within
/// `commitInterval` (5 ms) in one transaction. A killed gateway loses at most the events of the
/// last interval — the "unacknowledged tail" — and nothing before them. The queue is bounded: past `maximumBytes`
/// of pending data, `append` refuses and the session stops (fail closed).
///
/// When the store refuses a write (a full disk, a lost file), the events of that batch are lost:
/// the writer remembers, per session, the first lost record and the hash of the last one stored
/// (``loss(for:)``), tells the `loss` handler of ``onFailure(loss:recovery:)`` which sessions lost
/// records (the gateway stops them), and refuses every append until the store takes writes
/// again. Forced items (the gap markers and seals of the stopped sessions) are kept and retried
/// every `retryInterval`; once they are written and a 64 KiB probe write goes in too, the writer
/// takes appends again and calls the `recovery` handler — no restart.
public final class RecordWriter: Sendable {
    private enum Item {
        /// A forced event (a gap marker) is kept for the retry like a seal, never counted as lost.
        case event(StoredEvent, forced: Bool)
        case update(SessionRecord)
    }

    /// Where a session's stored chain ends after a failed write.
    public struct Loss: Sendable, Equatable {
        /// The first record that did not reach the store.
        public var firstSeq: Int
        /// The hash of the record before it (the session's genesis when it is the first).
        public var previousHash: [UInt8]?
        public var reason: String
    }

    private struct Pending {
        var items: [Item] = []
        var bytes = 0
        var scheduled = false
        var failure: String?
        /// The last record stored per open session: where its chain ends if a later write fails.
        var written: [String: (seq: Int, hash: [UInt8])] = [:]
        var losses: [String: Loss] = [:]
        /// Forced items that failed, written first once the store takes writes again.
        var retry: [Item] = []
        var retryScheduled = false
    }

    public let store: any Store
    public let maximumBytes: Int
    /// Group commit: events enqueued within this interval share one transaction.
    public let commitInterval: DispatchTimeInterval
    public let retryInterval: DispatchTimeInterval
    private let pending = Locked(Pending())
    private let queue = DispatchQueue(label: "sluice.record-writer")
    private let logger: Logger
    /// Re-seals a session whose seal was written in the same failed batch as its lost records.
    private let signer: AuditSigner?
    private let handlers = Locked<(loss: (@Sendable (Set<String>, String) -> Void)?, recovery: (@Sendable (String) -> Void)?)>((nil, nil))

    public init(store: any Store, maximumBytes: Int = 256 << 20, commitInterval: DispatchTimeInterval = .milliseconds(5),
                retryInterval: DispatchTimeInterval = .seconds(1), signer: AuditSigner? = nil,
                logger: Logger = Logger(label: "sluice.recorder")) {
        self.store = store
        self.signer = signer
        self.maximumBytes = maximumBytes
        self.commitInterval = commitInterval
        self.retryInterval = retryInterval
        self.logger = logger
    }

    /// `loss` hears which sessions lost records and why (called once per failed write, off the
    /// event loops); `recovery` hears that the store takes writes again, with the failure it ended.
    public func onFailure(loss: @escaping @Sendable (Set<String>, String) -> Void, recovery: @escaping @Sendable (String) -> Void) {
        handlers.withLock { $0 = (loss, recovery) }
    }

    /// Why writing fails now, while it does (every append is refused meanwhile).
    public var failure: String? { pending.withLock { $0.failure } }

    /// Where `session`'s stored chain ends, if a failed write lost some of its records.
    public func loss(for session: String) -> Loss? { pending.withLock { $0.losses[session] } }

    func append(_ events: [StoredEvent]) -> Bool {
        enqueue(events.map { .event($0, forced: false) }, bytes: events.reduce(0) { $0 + $1.data.count + 64 })
    }

    /// Writes even while appends are refused (kept and retried until the store takes it).
    func update(_ session: SessionRecord) {
        _ = enqueue([.update(session)], bytes: 256, force: true)
    }

    /// Events that close a gap (the "recording failed" marker), written even while appends are refused.
    func appendForced(_ events: [StoredEvent]) {
        _ = enqueue(events.map { .event($0, forced: true) }, bytes: 0, force: true)
    }

    private func enqueue(_ items: [Item], bytes: Int, force: Bool = false) -> Bool {
        let schedule = pending.withLock { state -> Bool? in
            if state.failure != nil {
                guard force else { return nil }
                state.retry.append(contentsOf: items)
                return false
            }
            guard force || state.bytes + bytes <= maximumBytes else { return nil }
            state.items.append(contentsOf: items)
            state.bytes += bytes
            defer { state.scheduled = true }
            return !state.scheduled
        }
        guard let schedule else { return false }
        if schedule { queue.asyncAfter(deadline: .now() + commitInterval) { self.flush() } }
        return true
    }

    private func flush() {
        let items = pending.withLock { state -> [Item] in
            defer {
                state.items.removeAll(keepingCapacity: true)
                state.bytes = 0
                state.scheduled = false
            }
            return state.items
        }
        guard !items.isEmpty else { return }
        if let (failedAt, error) = write(items) {
            failed(items[failedAt...], error: error)
        }
    }

    /// Writes `items` in order (consecutive events in one transaction); on an error, the index
    /// of the first item not written and the error.
    private func write(_ items: [Item]) -> (Int, any Error)? {
        var start = 0
        var events: [StoredEvent] = []
        func commitEvents(upTo index: Int) throws {
            guard !events.isEmpty else { return }
            try store.appendEvents(events)
            pending.withLock { state in
                for event in events { state.written[event.sessionID] = (event.seq, event.hash) }
            }
            events.removeAll()
            start = index
        }
        do {
            for (index, item) in items.enumerated() {
                switch item {
                case .event(let event, _): events.append(event)
                case .update(let session):
                    try commitEvents(upTo: index)
                    try store.updateSession(session)
                    start = index + 1
                    if session.endedAt != nil { pending.withLock { _ = $0.written.removeValue(forKey: session.id) } }
                }
            }
            try commitEvents(upTo: items.count)
            return nil
        } catch {
            return (start, error)
        }
    }

    /// A write failed: every event from `lost` on is gone; seals and markers are kept for the retry.
    private func failed(_ lost: ArraySlice<Item>, error: any Error) {
        let reason = "store write failed (\(type(of: error)): \(String(describing: error).prefix(120)))"
        logger.error("recording failed; the sessions that lost records are stopped", metadata: ["error": "\(reason)"])
        let (sessions, scheduleRetry) = pending.withLock { state -> (Set<String>, Bool) in
            var sessions = Set<String>()
            // What was enqueued meanwhile is written after the retried items, or lost with them.
            for item in Array(lost) + state.items {
                switch item {
                case .event(let event, forced: false):
                    sessions.insert(event.sessionID)
                    if state.losses[event.sessionID] == nil {
                        state.losses[event.sessionID] = Loss(firstSeq: event.seq, previousHash: state.written[event.sessionID]?.hash, reason: reason)
                    }
                case .update(let session) where session.endedAt != nil && state.losses[session.id] != nil:
                    // Sealed in the same batch that lost its records: the seal covers records
                    // that are not stored; close the gap with a marker and seal again.
                    if let signer, let loss = state.losses.removeValue(forKey: session.id) {
                        let (marker, sealed) = SessionRecorder.closeGap(session, loss: loss, signer: signer)
                        state.retry.append(.event(marker, forced: true))
                        state.retry.append(.update(sealed))
                    } else {
                        state.retry.append(item)
                    }
                default:
                    state.retry.append(item)
                }
            }
            state.items.removeAll()
            state.bytes = 0
            state.failure = state.failure ?? reason
            defer { state.retryScheduled = true }
            return (sessions, !state.retryScheduled)
        }
        if !sessions.isEmpty, let handler = handlers.withLock({ $0.loss }) { handler(sessions, reason) }
        if scheduleRetry { queue.asyncAfter(deadline: .now() + retryInterval) { self.retry() } }
    }

    /// Writes the kept items; when they all go in, appends are taken again.
    private func retry() {
        let items = pending.withLock { state -> [Item] in
            defer { state.retry.removeAll() }
            return state.retry
        }
        if let (failedAt, _) = write(items) {
            pending.withLock { state in
                state.retry.insert(contentsOf: items[failedAt...], at: 0)
                // Bounded: a retry list past 100,000 items keeps the newest (seals of later sessions).
                if state.retry.count > 100_000 { state.retry.removeFirst(state.retry.count - 100_000) }
            }
            queue.asyncAfter(deadline: .now() + retryInterval) { self.retry() }
            return
        }
        // Written retries may have fitted in free pages: 64 KiB more must go in too.
        do {
            try store.probeWrite()
        } catch {
            queue.asyncAfter(deadline: .now() + retryInterval) { self.retry() }
            return
        }
        let ended = pending.withLock { state -> String? in
            // Items forced in while the retry ran go on the next round.
            if !state.retry.isEmpty { return nil }
            defer {
                state.failure = nil
                state.retryScheduled = false
            }
            return state.failure
        }
        guard let ended else {
            queue.asyncAfter(deadline: .now() + retryInterval) { self.retry() }
            return
        }
        logger.notice("recording works again", metadata: ["after": "\(ended)"])
        if let handler = handlers.withLock({ $0.recovery }) { handler(ended) }
    }

    /// Waits until everything enqueued so far is committed (or has failed).
    public func drain() {
        queue.sync {}
        queue.sync { self.flush() }
    }

    /// Forgets a sealed session's loss once its marker and seal are written.
    func forgetLoss(_ session: String) {
        pending.withLock { _ = $0.losses.removeValue(forKey: session) }
    }
}
