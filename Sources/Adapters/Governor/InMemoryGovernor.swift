import MaskEngine

/// A governor for adapter tests: fixed tokens, rules as closures, events kept in memory.
///
/// Tokens map to identities; `decide` runs `rules` in order (first non-nil wins, else allow);
/// `review` decisions resolve with ``reviewOutcome``, or as the rule's own ticket says when it is nil.
public final class InMemoryGovernor: Governor {
    public struct Recorded: Sendable, Equatable {
        public var session: String
        public var event: SessionEvent
    }

    public let tokens: [String: Identity]
    public let connections: [String: ConnectionTarget]
    public let engine: MaskingEngine?
    public let rules: [@Sendable (Command) -> Decision?]
    public let reviewOutcome: ReviewOutcome?
    public let unmaskedGroups: [String]
    /// Per token: the Unix time its sessions expire (``GovernedSession/expiresAt``).
    public let expiries: [String: Int64]
    private let state = Locked<(events: [Recorded], closed: [String], counter: Int)>(([], [], 0))

    public init(tokens: [String: Identity], connections: [ConnectionTarget], engine: MaskingEngine?,
                rules: [@Sendable (Command) -> Decision?] = [], reviewOutcome: ReviewOutcome? = .approved(by: ["approver"]),
                unmaskedGroups: [String] = [], expiries: [String: Int64] = [:]) {
        self.expiries = expiries
        self.tokens = tokens
        self.connections = Dictionary(uniqueKeysWithValues: connections.map { ($0.name, $0) })
        self.engine = engine
        self.rules = rules
        self.reviewOutcome = reviewOutcome
        self.unmaskedGroups = unmaskedGroups
    }

    public var events: [Recorded] { state.withLock { $0.events } }
    public var closedSessions: [String] { state.withLock { $0.closed } }

    public func openSession(token: String, connection: String, kind: ConnectionKind, peer: String) async throws -> any GovernedSession {
        guard let identity = tokens[token] else { throw GovernorError(.unauthenticated, "authentication failed") }
        guard let target = connections[connection] else { throw GovernorError(.unknownConnection, "no connection named \(connection)") }
        guard target.kind == kind else { throw GovernorError(.wrongProtocol, "\(connection) is a \(target.kind.rawValue) connection") }
        let id = state.withLock { state -> String in
            state.counter += 1
            return "mem-\(state.counter)"
        }
        return Session(id: id, identity: identity, connection: target, governor: self, expiresAt: expiries[token])
    }

    fileprivate func append(_ event: SessionEvent, session: String) {
        state.withLock { $0.events.append(Recorded(session: session, event: event)) }
    }

    fileprivate func closed(_ session: String) {
        state.withLock { $0.closed.append(session) }
    }

    final class Session: GovernedSession {
        let id: String
        let identity: Identity
        let connection: ConnectionTarget
        let governor: InMemoryGovernor
        let expiresAt: Int64?

        init(id: String, identity: Identity, connection: ConnectionTarget, governor: InMemoryGovernor, expiresAt: Int64? = nil) {
            self.expiresAt = expiresAt
            self.id = id
            self.identity = identity
            self.connection = connection
            self.governor = governor
        }

        func decide(_ command: Command) -> Decision {
            for rule in governor.rules {
                if let decision = rule(command) {
                    if case .review(let ticket) = decision, let outcome = governor.reviewOutcome {
                        return .review(ReviewTicket(id: ticket.id, approveHint: ticket.approveHint) { outcome })
                    }
                    return decision
                }
            }
            return .allow
        }

        var recordingEngine: MaskingEngine? { governor.engine }

        func masking(for target: MaskTarget) -> MaskingChoice {
            guard let engine = governor.engine, !identity.isMember(of: governor.unmaskedGroups) else { return .unmasked }
            return .masked(engine: engine, forced: nil)
        }

        func record(_ event: SessionEvent) { governor.append(event, session: id) }

        func reportMasking(bytes: Int, counts: [String: Int], latency: Duration) {}

        func close(reason: String) async { governor.closed(id) }

        func onTermination(_ handler: @escaping @Sendable (String) -> Void) {}
    }
}
