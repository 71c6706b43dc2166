import Dispatch
import Foundation
import Logging
import Synchronization

/// Writes session events to the store off the event loops, in batches (group commit).
///
/// `append` only enqueues (the hash was already computed by the recorder, so the chain does not
/// depend on when the write happens); one serial queue commits everything enqueued within
/// `commitInterval` (5 ms) in one transaction. A killed gateway loses at most the events of the
/// last interval — the "unacknowledged tail" — and nothing before them. The queue is bounded: past `maximumBytes`
/// of pending data, `append` refuses and the session stops (fail closed).
public final class RecordWriter: Sendable {
    private enum Item {
        case event(StoredEvent)
        case update(SessionRecord)
    }

    private struct Pending {
        var items: [Item] = []
        var bytes = 0
        var scheduled = false
        var failure: String?
    }

    public let store: any Store
    public let maximumBytes: Int
    /// Group commit: events enqueued within this interval share one transaction.
    public let commitInterval: DispatchTimeInterval
    private let pending = Mutex(Pending())
    private let queue = DispatchQueue(label: "sluice.record-writer")
    private let logger: Logger

    public init(store: any Store, maximumBytes: Int = 256 << 20, commitInterval: DispatchTimeInterval = .milliseconds(5),
                logger: Logger = Logger(label: "sluice.recorder")) {
        self.store = store
        self.maximumBytes = maximumBytes
        self.commitInterval = commitInterval
        self.logger = logger
    }

    /// Why writing failed, once it has (every later append is refused).
    public var failure: String? { pending.withLock { $0.failure } }

    func append(_ events: [StoredEvent]) -> Bool {
        enqueue(events.map(Item.event), bytes: events.reduce(0) { $0 + $1.data.count + 64 })
    }

    func update(_ session: SessionRecord) {
        _ = enqueue([.update(session)], bytes: 256, force: true)
    }

    private func enqueue(_ items: [Item], bytes: Int, force: Bool = false) -> Bool {
        let schedule = pending.withLock { state -> Bool? in
            guard state.failure == nil || force else { return nil }
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
        var events: [StoredEvent] = []
        do {
            for item in items {
                switch item {
                case .event(let event): events.append(event)
                case .update(let session):
                    try store.appendEvents(events)
                    events.removeAll()
                    try store.updateSession(session)
                }
            }
            try store.appendEvents(events)
        } catch {
            logger.error("recording failed; sessions will be stopped", metadata: ["error": "\(error)"])
            pending.withLock { $0.failure = "store write failed (\(error))" }
        }
    }

    /// Waits until everything enqueued so far is committed.
    public func drain() {
        queue.sync {}
        queue.sync { self.flush() }
    }
}
