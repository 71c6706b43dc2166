import Adapters
import Crypto
import Foundation
import Testing
@testable import Gateway

/// Two gateways on one store: what one holds, the other's approvers decide. On PostgreSQL the
/// decision reaches the holder through the store's feed (LISTEN/NOTIFY) without any polling;
/// on both stores the holder's once-a-second tick finds a decision whose notice was missed.
@Suite struct SharedStoreReviewTests {
    let configuration: GatewayConfiguration
    let key = Curve25519.Signing.PrivateKey()
    let clock = ManualClock(start: Int64(Date().timeIntervalSince1970) * 1_000_000)
    let alice = Identity(user: "alice", groups: ["eng"], issuer: "t")
    let lena = Identity(user: "lena", groups: ["dba-leads"], issuer: "t")
    let lars = Identity(user: "lars", groups: ["sre-leads"], issuer: "t")
    let lou = Identity(user: "lou", groups: ["sre-leads"], issuer: "t")

    init() throws {
        configuration = try GatewayConfiguration.parse(text: TestGateway.connections)
    }

    var appDB: GatewayConfiguration.Connection { configuration.connection(named: "app-db")! }
    var vault: GatewayConfiguration.Connection { configuration.connection(named: "vault")! }

    /// A gateway's review center on its own connection to the fixture's store.
    func gateway(_ fixture: StoreFixture) throws -> ReviewCenter {
        let store = try fixture.open()
        return ReviewCenter(store: store, control: try ControlLog(store: store, signer: AuditSigner(key: key), clock: clock), clock: clock)
    }

    func hold(on center: ReviewCenter) async throws -> ReviewRecord {
        try await center.requestCommandReview(identity: alice, connection: appDB, sessionID: "s-1",
                                              command: Command(text: "delete from customers", classes: ["delete_without_where"]),
                                              reason: "review required")
    }

    /// Waits for `task`, failing after 10 s instead of hanging the run.
    func outcome(_ task: Task<ReviewOutcome, Never>) async -> ReviewOutcome? {
        await withTaskGroup(of: ReviewOutcome?.self) { group in
            group.addTask { await task.value }
            group.addTask {
                try? await Task.sleep(for: .seconds(10))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    @Test(.enabled(if: StoreBackend.postgresURL != nil))
    func anApprovalOnOneGatewayReleasesTheCommandHeldOnAnotherThroughTheFeed() async throws {
        let fixture = try StoreFixture(.postgres)
        let holder = try gateway(fixture)
        let approver = try gateway(fixture)
        holder.followStore()
        let held = try await hold(on: holder)
        let waiter = Task { await holder.wait(id: held.id) }
        // The feed connects in the background: approve once the holder listens (a notice sent
        // before it listens is the tick's to find, tested below).
        try await Task.sleep(for: .milliseconds(500))
        try await approver.approve(id: held.id, by: lena)
        #expect(await outcome(waiter) == .approved(by: ["lena"]))

        let denied = try await hold(on: holder)
        let refused = Task { await holder.wait(id: denied.id) }
        try await approver.deny(id: denied.id, by: lena, reason: "not during the freeze")
        #expect(await outcome(refused) == .denied(by: "lena", reason: "not during the freeze"))
    }

    @Test(arguments: StoreBackend.available)
    func aDecisionWhoseNoticeWasMissedIsFoundByTheHoldersTick(_ backend: StoreBackend) async throws {
        let fixture = try StoreFixture(backend)
        let holder = try gateway(fixture)
        let approver = try gateway(fixture)
        let held = try await hold(on: holder)
        let waiter = Task { await holder.wait(id: held.id) }
        try await approver.deny(id: held.id, by: lena, reason: "no")
        await holder.tick()
        #expect(await outcome(waiter) == .denied(by: "lena", reason: "no"))
    }

    /// Two approvers on two gateways at once (min_approvals 2): both approvals count.
    @Test(arguments: StoreBackend.available)
    func approvalsGivenOnTwoGatewaysAtOnceBothCount(_ backend: StoreBackend) async throws {
        let fixture = try StoreFixture(backend)
        let first = try gateway(fixture)
        let second = try gateway(fixture)
        let request = try await first.requestAccess(identity: alice, connection: vault, duration: .seconds(3_600), reason: "incident")
        async let one = first.approve(id: request.id, by: lars)
        async let two = second.approve(id: request.id, by: lou)
        _ = try await (one, two)
        let stored = try #require(try await second.review(id: request.id))
        #expect(stored.status == .approved)
        #expect(Set(stored.approvals.map(\.user)) == ["lars", "lou"])
        // Both gateways know the grant: whichever approved last, the other learns it from the store.
        await first.changed(request.id)
        await second.changed(nil)
        #expect(await first.hasGrant(user: "alice", connection: "vault"))
        #expect(await second.hasGrant(user: "alice", connection: "vault"))
        // A second decision on either gateway is refused.
        await #expect(throws: ReviewError.self) { try await first.deny(id: request.id, by: lars, reason: "late") }

        // The grant ends on both; its end is recorded once, and the review says it expired.
        clock.advance(by: .seconds(3_601))
        await first.tick()
        await second.tick()
        #expect(!(await first.hasGrant(user: "alice", connection: "vault")))
        #expect(!(await second.hasGrant(user: "alice", connection: "vault")))
        let store = try fixture.open()
        #expect(try store.controlEvents(after: -1, limit: 1_000).filter { $0.kind == "access.expired" }.count == 1)
        #expect(try store.review(id: request.id)?.status == .expired)
    }
}
