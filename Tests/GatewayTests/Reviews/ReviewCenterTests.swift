import Adapters
import Foundation
import Testing
@testable import Gateway

@Suite struct ReviewCenterTests {
    let gateway: TestGateway
    let alice = Identity(user: "alice", groups: ["eng"], issuer: "t")
    let lead = Identity(user: "lena", groups: ["dba-leads"], issuer: "t")
    let lead2 = Identity(user: "lars", groups: ["sre-leads"], issuer: "t")
    let lead3 = Identity(user: "lou", groups: ["sre-leads"], issuer: "t")

    init() throws { gateway = try TestGateway() }

    var reviews: ReviewCenter { gateway.runtime.reviews }
    var appDB: GatewayConfiguration.Connection { gateway.runtime.policy.configuration.connection(named: "app-db")! }
    var vault: GatewayConfiguration.Connection { gateway.runtime.policy.configuration.connection(named: "vault")! }

    func hold(_ text: String = "delete from customers") async throws -> ReviewRecord {
        try await reviews.requestCommandReview(identity: alice, connection: appDB, sessionID: "s-1",
                                               command: Command(text: text, classes: ["delete_without_where"]), reason: "r")
    }

    @Test func heldCommandRunsAfterASecondUserApproves() async throws {
        let review = try await hold()
        let waiter = Task { await reviews.wait(id: review.id) }
        try await reviews.approve(id: review.id, by: lead)
        #expect(await waiter.value == .approved(by: ["lena"]))
        #expect(try await reviews.review(id: review.id)?.status == .approved)
    }

    @Test func aReviewNobodyWaitsForIsWithdrawn() async throws {
        let review = try await hold()
        let waiter = Task { await reviews.wait(id: review.id) }
        await reviews.withdraw(id: review.id, reason: "the client closed the connection before a decision")
        #expect(await waiter.value == .denied(by: "sluice", reason: "withdrawn: the client closed the connection before a decision"))
        let stored = try #require(try await reviews.review(id: review.id))
        #expect(stored.status == .denied && stored.denial?.user == "sluice")
        // An approver can no longer decide it.
        await #expect(throws: ReviewError.self) { try await reviews.approve(id: review.id, by: lead) }
        // A withdrawal that arrives before the review is filed closes it as soon as it is.
        let early = ReviewCenter.newID()
        await reviews.withdraw(id: early, reason: "gone")
        let filed = try await reviews.requestCommandReview(identity: alice, connection: appDB, sessionID: "s-1",
                                                           command: Command(text: "delete from t", classes: ["delete_without_where"]),
                                                           reason: "r", id: early)
        #expect(filed.status == .denied)
        #expect(try await reviews.list(status: "pending").isEmpty)
        // A decided review is left alone.
        let decided = try await hold()
        try await reviews.approve(id: decided.id, by: lead)
        await reviews.withdraw(id: decided.id, reason: "late")
        #expect(try await reviews.review(id: decided.id)?.status == .approved)
    }

    @Test func selfApprovalIsRefused() async throws {
        var review = try await hold()
        let error = await #expect(throws: ReviewError.self) { try await reviews.approve(id: review.id, by: alice) }
        #expect(error?.code == .selfApproval)
        // Even an admin cannot approve their own request.
        let admin = Identity(user: "root", groups: ["admin"], issuer: "t")
        review = try await reviews.requestCommandReview(identity: admin, connection: appDB, sessionID: "s", command: Command(text: "x"), reason: "r")
        let again = await #expect(throws: ReviewError.self) { try await reviews.approve(id: review.id, by: admin) }
        #expect(again?.code == .selfApproval)
    }

    @Test func onlyApproverGroupsOrAdminsDecide() async throws {
        let review = try await hold()
        let error = await #expect(throws: ReviewError.self) {
            try await reviews.approve(id: review.id, by: Identity(user: "eve", groups: ["eng"], issuer: "t"))
        }
        #expect(error?.code == .notApprover)
        try await reviews.approve(id: review.id, by: Identity(user: "root", groups: ["admin"], issuer: "t"))
    }

    @Test func minApprovalsTwoNeedsTwoDistinctApprovers() async throws {
        let review = try await reviews.requestAccess(identity: alice, connection: vault, duration: .seconds(3600), reason: "incident 42")
        try await reviews.approve(id: review.id, by: lead2)
        #expect(try await reviews.review(id: review.id)?.status == .pending)
        let twice = await #expect(throws: ReviewError.self) { try await reviews.approve(id: review.id, by: lead2) }
        #expect(twice?.code == .alreadyApproved)
        try await reviews.approve(id: review.id, by: lead3)
        #expect(try await reviews.review(id: review.id)?.status == .approved)
    }

    @Test func denialEndsTheWaitWithTheReason() async throws {
        let review = try await hold()
        let waiter = Task { await reviews.wait(id: review.id) }
        try await reviews.deny(id: review.id, by: lead, reason: "not during business hours")
        #expect(await waiter.value == .denied(by: "lena", reason: "not during business hours"))
        let late = await #expect(throws: ReviewError.self) { try await reviews.approve(id: review.id, by: lead) }
        #expect(late?.code == .notPending)
    }

    @Test func undecidedReviewTimesOut() async throws {
        let review = try await hold()
        let waiter = Task { await reviews.wait(id: review.id) }
        gateway.clock.advance(by: .seconds(599))
        await reviews.tick()
        #expect(try await reviews.review(id: review.id)?.status == .pending)
        gateway.clock.advance(by: .seconds(2))
        await reviews.tick()
        #expect(await waiter.value == .timedOut)
        #expect(try await reviews.review(id: review.id)?.status == .timedOut)
    }

    @Test func justInTimeGrantStartsOnApprovalAndEndsOnTime() async throws {
        let token = try gateway.token("alice", ["eng"])
        // requires_grant: group membership alone is not enough.
        await #expect(throws: GovernorError.self) {
            try await gateway.runtime.openSession(token: token, connection: "vault", kind: .ssh, peer: "t")
        }
        let review = try await reviews.requestAccess(identity: alice, connection: vault, duration: .seconds(1800), reason: "deploy")
        gateway.clock.advance(by: .seconds(60))
        try await reviews.approve(id: review.id, by: lead2)
        try await reviews.approve(id: review.id, by: lead3)
        #expect(await reviews.hasGrant(user: "alice", connection: "vault"))
        let session = try await gateway.runtime.openSession(token: token, connection: "vault", kind: .ssh, peer: "t")
        await session.close(reason: "done")
        // The grant runs from approval, not from the request.
        gateway.clock.advance(by: .seconds(1799))
        #expect(await reviews.hasGrant(user: "alice", connection: "vault"))
        gateway.clock.advance(by: .seconds(2))
        await reviews.tick()
        #expect(!(await reviews.hasGrant(user: "alice", connection: "vault")))
        #expect(!(await reviews.hasGrant(user: "bob", connection: "vault")))
    }

    @Test func grantLongerThanTheMaximumIsRefused() async throws {
        let error = await #expect(throws: ReviewError.self) {
            try await reviews.requestAccess(identity: alice, connection: vault, duration: .seconds(3 * 3600), reason: "")
        }
        #expect(error?.code == .invalidRequest)
    }

    @Test func everyStateChangeIsAControlEvent() async throws {
        let review = try await hold()
        try await reviews.approve(id: review.id, by: lead)
        let kinds = try gateway.runtime.store.controlEvents(after: -1, limit: 100).map(\.kind)
        #expect(kinds.contains("review.created"))
        #expect(kinds.contains("review.approval"))
        #expect(kinds.contains("review.approved"))
    }
}
