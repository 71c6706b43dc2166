import MaskEngine
import Adapters
import Synchronization

/// What a live feed carries: an item, or a heartbeat. Heartbeats make a page that went away
/// visible (the write to its closed connection fails and the feed ends) instead of leaving a
/// half-open connection that nothing ever writes to.
public enum ConsoleFeed<Item: Sendable>: Sendable {
    case item(Item)
    case heartbeat
}

/// Live feeds for the web console: new reviews, and the masked output of open sessions. Bounded:
/// at most ``maximumSubscribers`` listeners, each with a bounded buffer (slow listeners lose the
/// oldest events, never slow the gateway down). ``heartbeat()`` (every ``heartbeatInterval``,
/// from the gateway's service group) reaches every listener; ``shutdown()`` ends every feed and
/// refuses new ones, so a stopping gateway does not wait on open pages.
public final class ConsoleHub: Sendable {
    public static let maximumSubscribers = 1000
    public static let heartbeatInterval: Duration = .seconds(15)
    static let bufferPerSubscriber = 256

    private struct State {
        var reviews: [Int: AsyncStream<ConsoleFeed<ReviewRecord>>.Continuation] = [:]
        var sessions: [String: [Int: AsyncStream<ConsoleFeed<SessionEvent>>.Continuation]] = [:]
        var next = 0
        var count = 0
        var closed = false
    }

    private let state = Locked(State())
    /// Read without the lock on every recorded event: most of the time nobody watches.
    private let watchedSessions = Atomic<Int>(0)

    public init() {}

    /// A stream of new reviews; nil when there are too many listeners.
    public func reviews() -> AsyncStream<ConsoleFeed<ReviewRecord>>? {
        let (stream, continuation) = AsyncStream<ConsoleFeed<ReviewRecord>>.makeStream(bufferingPolicy: .bufferingNewest(Self.bufferPerSubscriber))
        let key = state.withLock { state -> Int? in
            guard !state.closed, state.count < Self.maximumSubscribers else { return nil }
            state.next += 1
            state.count += 1
            state.reviews[state.next] = continuation
            return state.next
        }
        guard let key else { return nil }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { state in
                if state.reviews.removeValue(forKey: key) != nil { state.count -= 1 }
            }
        }
        return stream
    }

    /// A stream of one session's recorded output (already masked), finished when it closes.
    public func session(_ id: String) -> AsyncStream<ConsoleFeed<SessionEvent>>? {
        let (stream, continuation) = AsyncStream<ConsoleFeed<SessionEvent>>.makeStream(bufferingPolicy: .bufferingNewest(Self.bufferPerSubscriber))
        let key = state.withLock { state -> Int? in
            guard !state.closed, state.count < Self.maximumSubscribers else { return nil }
            state.next += 1
            state.count += 1
            state.sessions[id, default: [:]][state.next] = continuation
            return state.next
        }
        guard let key else { return nil }
        watchedSessions.add(1, ordering: .relaxed)
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            let removed = self.state.withLock { state -> Bool in
                guard state.sessions[id]?.removeValue(forKey: key) != nil else { return false }
                if state.sessions[id]?.isEmpty == true { state.sessions[id] = nil }
                state.count -= 1
                return true
            }
            if removed { self.watchedSessions.subtract(1, ordering: .relaxed) }
        }
        return stream
    }

    /// How many pages watch a session (tests wait on it).
    func watchers(of id: String) -> Int {
        state.withLock { $0.sessions[id]?.count ?? 0 }
    }

    func reviewCreated(_ review: ReviewRecord) {
        let listeners = state.withLock { Array($0.reviews.values) }
        for listener in listeners { listener.yield(.item(review)) }
    }

    func recorded(_ event: SessionEvent, session id: String) {
        guard event.kind == .output || event.kind == .resize, watchedSessions.load(ordering: .relaxed) > 0 else { return }
        let listeners = state.withLock { $0.sessions[id].map { Array($0.values) } ?? [] }
        for listener in listeners { listener.yield(.item(event)) }
    }

    func sessionClosed(_ id: String) {
        guard watchedSessions.load(ordering: .relaxed) > 0 else { return }
        let listeners = state.withLock { $0.sessions[id].map { Array($0.values) } ?? [] }
        for listener in listeners { listener.finish() }
    }

    /// One heartbeat to every listener.
    public func heartbeat() {
        let (reviews, sessions) = state.withLock { state in
            (Array(state.reviews.values), state.sessions.values.flatMap { Array($0.values) })
        }
        for listener in reviews { listener.yield(.heartbeat) }
        for listener in sessions { listener.yield(.heartbeat) }
    }

    /// Ends every feed and refuses new ones (graceful shutdown).
    public func shutdown() {
        let (reviews, sessions) = state.withLock { state in
            state.closed = true
            return (Array(state.reviews.values), state.sessions.values.flatMap { Array($0.values) })
        }
        for listener in reviews { listener.finish() }
        for listener in sessions { listener.finish() }
    }

    /// How many feeds are open (tests).
    var subscribers: Int { state.withLock { $0.count } }
}
