import MaskEngine

/// Bounds the connections that have not logged in yet, per source address and in all (issue 14,
/// finding 3: 320 idle sockets to one port took the descriptors of every listener). A listener
/// asks `admit` when it accepts and calls `release` once the connection logged in or closed;
/// a refused connection is told and closed at once, before it costs a thread or a buffer.
public final class ConnectionAdmission: Sendable {
    public struct Limits: Sendable, Equatable {
        /// Connections from one source address that have not logged in yet.
        public var perSource: Int
        /// Such connections across all sources, on all listeners that share this value.
        public var total: Int

        public init(perSource: Int = 32, total: Int = 512) {
            self.perSource = perSource
            self.total = total
        }
    }

    public enum Refusal: Sendable, Equatable {
        case source, total

        public var message: String {
            switch self {
            case .source: "too many connections from this address are still logging in; try again shortly"
            case .total: "too many connections are still logging in; try again shortly"
            }
        }
    }

    public let limits: Limits
    private let state = Locked<(bySource: [String: Int], total: Int, refused: Int)>(([:], 0, 0))

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Counts a new unauthenticated connection from `source`, or says why it is refused.
    public func admit(_ source: String) -> Refusal? {
        state.withLock { state in
            if state.total >= limits.total {
                state.refused += 1
                return .total
            }
            let current = state.bySource[source, default: 0]
            if current >= limits.perSource {
                state.refused += 1
                return .source
            }
            state.bySource[source] = current + 1
            state.total += 1
            return nil
        }
    }

    /// The connection from `source` logged in or closed (call once per admitted connection).
    public func release(_ source: String) {
        state.withLock { state in
            guard let current = state.bySource[source] else { return }
            if current <= 1 { state.bySource[source] = nil } else { state.bySource[source] = current - 1 }
            state.total -= 1
        }
    }

    /// Unauthenticated connections now, and refusals so far.
    public var counts: (waiting: Int, refused: Int) { state.withLock { ($0.total, $0.refused) } }
}
