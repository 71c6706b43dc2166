import Adapters
import Foundation
import Logging

/// A review: a held command, or a just-in-time access request.
public struct ReviewRecord: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable { case command, access }
    public enum Status: String, Sendable, Codable { case pending, approved, denied, timedOut = "timed_out", expired }

    public struct Approval: Sendable, Codable, Equatable {
        public var user: String
        public var at: Int64
    }

    public struct Denial: Sendable, Codable, Equatable {
        public var user: String
        public var reason: String
        public var at: Int64
    }

    public var id: String
    public var kind: Kind
    public var requester: String
    public var requesterGroups: [String]
    public var connection: String
    public var sessionID: String?
    /// The exact command held (for `command` reviews).
    public var command: String?
    public var classes: [String]
    /// Why it needs review (the rule's message) or why access is requested.
    public var reason: String
    public var status: Status
    public var createdAt: Int64
    /// When a pending review times out.
    public var deadline: Int64
    public var approvers: [String]
    public var minApprovals: Int
    public var approvals: [Approval] = []
    public var denial: Denial?
    public var decidedAt: Int64?
    /// Requested grant length in seconds (access reviews).
    public var grantSeconds: Int64?
    public var grantStart: Int64?
    public var grantEnd: Int64?
}

/// Why a review action was refused.
public struct ReviewError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case notFound = "review_not_found"
        case notPending = "review_not_pending"
        case selfApproval = "review_self_approval"
        case notApprover = "review_not_approver"
        case alreadyApproved = "review_already_approved"
        case invalidRequest = "review_invalid_request"
    }

    public var code: Code
    public var message: String

    public var description: String { "\(code.rawValue): \(message)" }
}

/// Notifications of new reviews: a log line always, a webhook POST when configured.
public protocol ReviewNotifier: Sendable {
    func reviewCreated(_ review: ReviewRecord)
}

/// Holds reviews, their waiters and just-in-time grants. Time comes from an injected clock and
/// moves forward only through ``tick()`` (called every second by the service, by hand in tests).
public actor ReviewCenter {
    private let store: any Store
    private let control: ControlLog
    private let clock: any GatewayClock
    private let notifier: (any ReviewNotifier)?
    private var waiters: [String: [CheckedContinuation<ReviewOutcome, Never>]] = [:]
    private var pending: [String: ReviewRecord] = [:]
    /// Withdrawals that arrived before their review was filed (bounded like `pending`).
    private var withdrawnBeforeFiling: [String: String] = [:]
    private var grants: [String: ReviewRecord] = [:]
    /// At most this many pending reviews at once; more are refused (each holds a command).
    public static let maximumPending = 10_000

    public init(store: any Store, control: ControlLog, clock: any GatewayClock, notifier: (any ReviewNotifier)? = nil) {
        self.store = store
        self.control = control
        self.clock = clock
        self.notifier = notifier
    }

    /// Reloads pending reviews and active grants after a restart. Pending command reviews whose
    /// sessions are gone can no longer run; they are marked expired.
    public func restore() throws {
        let now = clock.nowMicros()
        for var review in try store.reviews(status: "pending", limit: 100_000) {
            if review.kind == .command {
                review.status = .expired
                review.decidedAt = now
                try store.saveReview(review)
                control.append("review.expired", actor: "sluice", ["id": review.id, "why": "gateway restarted"])
            } else {
                pending[review.id] = review
            }
        }
        for review in try store.reviews(status: "approved", limit: 100_000) where review.kind == .access {
            if let end = review.grantEnd, end > now { grants[review.id] = review }
        }
    }

    private func newID() -> String { Self.newID() }

    /// A fresh review id (`r-` and 10 hex digits); callers may reserve one before filing.
    public nonisolated static func newID() -> String {
        "r-" + Hex.random(bytes: 5)
    }

    /// Holds a command for review; returns its record. Await ``wait(id:)`` for the outcome.
    public func requestCommandReview(identity: Identity, connection: GatewayConfiguration.Connection, sessionID: String,
                                     command: Command, reason: String, id: String? = nil) throws -> ReviewRecord {
        guard pending.count < Self.maximumPending else {
            throw ReviewError(code: .invalidRequest, message: "too many pending reviews")
        }
        let now = clock.nowMicros()
        let review = ReviewRecord(
            id: id ?? newID(), kind: .command, requester: identity.user, requesterGroups: identity.groups, connection: connection.name,
            sessionID: sessionID, command: command.text, classes: command.classes, reason: reason, status: .pending,
            createdAt: now, deadline: now + Self.micros(connection.reviews.timeout), approvers: connection.reviews.approvers,
            minApprovals: connection.reviews.minApprovals)
        try store.saveReview(review)
        pending[review.id] = review
        control.append("review.created", actor: identity.user,
                       ["id": review.id, "kind": "command", "connection": connection.name, "session": sessionID])
        notifier?.reviewCreated(review)
        if let why = withdrawnBeforeFiling.removeValue(forKey: review.id) {
            // The client left between the decision and the filing.
            withdraw(id: review.id, reason: why)
            return (try? store.review(id: review.id)) ?? nil ?? review
        }
        return review
    }

    /// Closes a pending command review that nobody waits for any more (its client went away):
    /// denied by `sluice` with `reason`, recorded as `review.withdrawn`. A review not filed yet
    /// is withdrawn as soon as it is; a decided one is left alone.
    public func withdraw(id: String, reason: String) {
        guard var review = pending[id] else {
            if (try? store.review(id: id)) ?? nil == nil, withdrawnBeforeFiling.count < Self.maximumPending {
                withdrawnBeforeFiling[id] = reason
            }
            return
        }
        let now = clock.nowMicros()
        let why = "withdrawn: " + String(reason.prefix(200))
        review.status = .denied
        review.decidedAt = now
        review.denial = .init(user: "sluice", reason: why, at: now)
        // Decided meanwhile (on another gateway)? Then that decision stands.
        let stored = (try? store.updateReview(id: id) { current in
            guard current.status == .pending else { return current }
            var withdrawn = current
            withdrawn.status = .denied
            withdrawn.decidedAt = now
            withdrawn.denial = .init(user: "sluice", reason: why, at: now)
            return withdrawn
        }) ?? nil
        if stored?.denial?.user == "sluice" || stored == nil {
            control.append("review.withdrawn", actor: "sluice", ["id": id, "why": String(reason.prefix(200))])
        }
        resolve(stored ?? review)
    }

    /// A just-in-time access request: when approved, `identity` may open `connection` for `duration`.
    public func requestAccess(identity: Identity, connection: GatewayConfiguration.Connection, duration: Duration,
                              reason: String) throws -> ReviewRecord {
        let seconds = duration.components.seconds
        guard seconds > 0, seconds <= connection.reviews.maxGrant.components.seconds else {
            throw ReviewError(code: .invalidRequest,
                              message: "duration must be between 1s and \(connection.reviews.maxGrant.components.seconds)s")
        }
        guard pending.count < Self.maximumPending else {
            throw ReviewError(code: .invalidRequest, message: "too many pending reviews")
        }
        let now = clock.nowMicros()
        let review = ReviewRecord(
            id: newID(), kind: .access, requester: identity.user, requesterGroups: identity.groups, connection: connection.name,
            sessionID: nil, command: nil, classes: [], reason: String(reason.prefix(500)), status: .pending, createdAt: now,
            deadline: now + Self.micros(connection.reviews.timeout), approvers: connection.reviews.approvers,
            minApprovals: connection.reviews.minApprovals, grantSeconds: seconds)
        try store.saveReview(review)
        pending[review.id] = review
        control.append("access.requested", actor: identity.user,
                       ["id": review.id, "connection": connection.name, "seconds": String(seconds)])
        notifier?.reviewCreated(review)
        return review
    }

    /// Suspends until the review is decided or times out.
    public func wait(id: String) async -> ReviewOutcome {
        if let outcome = outcome(of: id) { return outcome }
        return await withCheckedContinuation { continuation in
            waiters[id, default: []].append(continuation)
        }
    }

    private func outcome(of id: String) -> ReviewOutcome? {
        if pending[id] != nil { return nil }
        guard let review = try? store.review(id: id) else { return .timedOut }
        return Self.outcome(review)
    }

    static func outcome(_ review: ReviewRecord) -> ReviewOutcome? {
        switch review.status {
        case .pending: return nil
        case .approved: return .approved(by: review.approvals.map(\.user))
        case .denied: return .denied(by: review.denial?.user ?? "?", reason: review.denial?.reason ?? "")
        case .timedOut, .expired: return .timedOut
        }
    }

    private func resolve(_ review: ReviewRecord) {
        pending[review.id] = nil
        guard let outcome = Self.outcome(review) else { return }
        for waiter in waiters.removeValue(forKey: review.id) ?? [] { waiter.resume(returning: outcome) }
    }

    /// May `identity` decide reviews of this connection? Approver groups, or `admin`.
    static func canDecide(_ identity: Identity, _ review: ReviewRecord) -> Bool {
        identity.isMember(of: review.approvers) || identity.groups.contains("admin")
    }

    /// Records an approval; the review passes once `min_approvals` distinct approvers agreed.
    /// The store is the reference: the review is read and written in one step, so approvals
    /// given on two gateways at once both count, and one given on another gateway is seen.
    @discardableResult
    public func approve(id: String, by identity: Identity) throws -> ReviewRecord {
        let now = clock.nowMicros()
        let review: ReviewRecord
        do {
            guard let updated = try store.updateReview(id: id, { try Self.approving($0, by: identity, at: now) }) else {
                throw ReviewError(code: .notFound, message: "no review \(id)")
            }
            review = updated
        } catch let error as ReviewError {
            if error.code == .selfApproval { control.append("review.self_approval_refused", actor: identity.user, ["id": id]) }
            throw error
        }
        control.append("review.approval", actor: identity.user,
                       ["id": id, "count": String(review.approvals.count), "needed": String(review.minApprovals)])
        if review.status == .approved {
            if review.kind == .access, let end = review.grantEnd {
                grants[review.id] = review
                control.append("access.granted", actor: identity.user,
                               ["id": id, "user": review.requester, "connection": review.connection, "until": String(end)])
            }
            control.append("review.approved", actor: identity.user, ["id": id])
            resolve(review)
        } else if pending[id] != nil {
            pending[id] = review
        }
        return review
    }

    /// The review with `identity`'s approval added, or why it cannot be.
    static func approving(_ review: ReviewRecord, by identity: Identity, at now: Int64) throws -> ReviewRecord {
        guard review.status == .pending else {
            throw ReviewError(code: .notPending, message: "review \(review.id) is already decided")
        }
        guard review.requester != identity.user else {
            throw ReviewError(code: .selfApproval, message: "you cannot approve your own request")
        }
        guard canDecide(identity, review) else {
            throw ReviewError(code: .notApprover, message: "approvers of \(review.connection) are \(review.approvers.joined(separator: ", "))")
        }
        guard !review.approvals.contains(where: { $0.user == identity.user }) else {
            throw ReviewError(code: .alreadyApproved, message: "you already approved review \(review.id)")
        }
        var review = review
        review.approvals.append(.init(user: identity.user, at: now))
        if review.approvals.count >= review.minApprovals {
            review.status = .approved
            review.decidedAt = now
            if review.kind == .access, let seconds = review.grantSeconds {
                review.grantStart = now
                review.grantEnd = now + seconds * 1_000_000
            }
        }
        return review
    }

    @discardableResult
    public func deny(id: String, by identity: Identity, reason: String) throws -> ReviewRecord {
        let now = clock.nowMicros()
        let why = String(reason.prefix(500))
        guard let review = try store.updateReview(id: id, { review in
            guard review.status == .pending else {
                throw ReviewError(code: .notPending, message: "review \(review.id) is already decided")
            }
            guard Self.canDecide(identity, review) || review.requester == identity.user else {
                throw ReviewError(code: .notApprover, message: "approvers of \(review.connection) are \(review.approvers.joined(separator: ", "))")
            }
            var denied = review
            denied.status = .denied
            denied.decidedAt = now
            denied.denial = .init(user: identity.user, reason: why, at: now)
            return denied
        }) else {
            throw ReviewError(code: .notFound, message: "no review \(id)")
        }
        control.append("review.denied", actor: identity.user, ["id": id])
        resolve(review)
        return review
    }

    /// A review saved by any gateway on the store changed (nil: the store's feed was
    /// interrupted, so look at everything this gateway waits on): a decision releases or
    /// refuses what this gateway holds, and an approved access request becomes a grant here.
    public func changed(_ id: String?) {
        guard let id else {
            resync()
            return
        }
        guard let review = (try? store.review(id: id)) ?? nil else { return }
        adopt(review)
    }

    /// Takes in a stored review's state: a decision resolves local waiters; an approved,
    /// unexpired access request is a grant.
    private func adopt(_ review: ReviewRecord) {
        if review.status != .pending, pending[review.id] != nil || waiters[review.id] != nil { resolve(review) }
        if review.status == .approved, review.kind == .access, let end = review.grantEnd, end > clock.nowMicros() {
            grants[review.id] = review
        }
    }

    /// Looks again at every review this gateway holds and at the grants in force.
    private func resync() {
        let stillPending = Set(((try? store.reviews(status: "pending", limit: Self.maximumPending)) ?? []).map(\.id))
        for id in Set(pending.keys).union(waiters.keys) where !stillPending.contains(id) {
            if let review = (try? store.review(id: id)) ?? nil { adopt(review) }
        }
        let now = clock.nowMicros()
        for review in (try? store.reviews(status: "approved", limit: 100_000)) ?? [] where review.kind == .access {
            if let end = review.grantEnd, end > now { grants[review.id] = review }
        }
    }

    /// Follows the store's review feed (PostgreSQL: decisions made on other gateways).
    public nonisolated func followStore() {
        store.watchReviews { [weak self] id in
            guard let self else { return }
            Task { await self.changed(id) }
        }
    }

    /// Times out overdue reviews and ends expired grants.
    public func tick() {
        let now = clock.nowMicros()
        // Decisions made on another gateway whose notice was missed.
        if !pending.isEmpty {
            let stillPending = Set(((try? store.reviews(status: "pending", limit: Self.maximumPending)) ?? []).map(\.id))
            for id in pending.keys where !stillPending.contains(id) {
                if let review = (try? store.review(id: id)) ?? nil, review.status != .pending { adopt(review) }
            }
        }
        for review in pending.values where review.deadline <= now {
            let stored = (try? store.updateReview(id: review.id) { current in
                guard current.status == .pending else { return current }
                var timedOut = current
                timedOut.status = .timedOut
                timedOut.decidedAt = now
                return timedOut
            }) ?? nil
            var timedOut = stored ?? review
            if stored == nil {
                timedOut.status = .timedOut
                timedOut.decidedAt = now
            }
            if timedOut.status == .timedOut { control.append("review.timed_out", actor: "sluice", ["id": review.id]) }
            resolve(timedOut)
        }
        for grant in grants.values where (grant.grantEnd ?? 0) <= now {
            grants[grant.id] = nil
            // The grant's review becomes `expired`; the gateway that makes that change records
            // the end, so gateways sharing a store record it once.
            let ended = Locked(false)
            _ = try? store.updateReview(id: grant.id) { current in
                guard current.status == .approved else { return current }
                var expired = current
                expired.status = .expired
                ended.withLock { $0 = true }
                return expired
            }
            if ended.withLock({ $0 }) {
                control.append("access.expired", actor: "sluice", ["id": grant.id, "user": grant.requester, "connection": grant.connection])
            }
        }
    }

    /// Whether `user` holds an approved, unexpired grant for `connection`.
    public func hasGrant(user: String, connection: String) -> Bool {
        let now = clock.nowMicros()
        return grants.values.contains { $0.requester == user && $0.connection == connection && ($0.grantEnd ?? 0) > now }
    }

    public func review(id: String) throws -> ReviewRecord? {
        try store.review(id: id)
    }

    public func list(status: String?, limit: Int = 200) throws -> [ReviewRecord] {
        try store.reviews(status: status, limit: limit)
    }

    static func micros(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    }
}

/// Logs each new review (id, requester, connection — never the command) and POSTs it to a webhook.
public struct LoggingReviewNotifier: ReviewNotifier {
    let logger: Logger
    let webhook: String?
    let publicURL: String

    let hub: ConsoleHub?

    public init(logger: Logger, webhook: String?, publicURL: String, hub: ConsoleHub? = nil) {
        self.hub = hub
        self.logger = logger
        self.webhook = webhook
        self.publicURL = publicURL
    }

    public func reviewCreated(_ review: ReviewRecord) {
        hub?.reviewCreated(review)
        logger.notice("review pending", metadata: [
            "review": "\(review.id)", "kind": "\(review.kind.rawValue)", "requester": "\(review.requester)",
            "connection": "\(review.connection)",
        ])
        guard let webhook else { return }
        let body: [String: Any] = [
            "event": "review.created", "id": review.id, "kind": review.kind.rawValue, "requester": review.requester,
            "connection": review.connection, "classes": review.classes, "approvers": review.approvers,
            "url": publicURL.trimmingSuffix("/") + "/api/reviews/" + review.id,
        ]
        guard let data = try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]) else { return }
        let logger = self.logger
        Task {
            do {
                try await WebhookPoster.post(url: webhook, body: data)
            } catch {
                logger.warning("review webhook failed", metadata: ["review": "\(review.id)", "error": "\(type(of: error))"])
            }
        }
    }
}
