import MaskEngine
import Testing
@testable import Adapters

/// The session plumbing adapters share (issue 15, point 3): the record budget, the terminal
/// relay (SSH and Kubernetes exec) and the review wording.
@Suite struct SessionPlumbingTests {
    func session(unmasked: Bool = false) async throws -> (InMemoryGovernor, any GovernedSession) {
        let governor = InMemoryGovernor(tokens: ["t": Identity(user: "alice", groups: unmasked ? ["dba"] : [], issuer: "test")],
                                        connections: [ConnectionTarget(name: "box", kind: .ssh, target: "127.0.0.1:22")],
                                        engine: testEngine, unmaskedGroups: ["dba"])
        return (governor, try await governor.openSession(token: "t", connection: "box", kind: .ssh, peer: "test"))
    }

    func recorded(_ governor: InMemoryGovernor, _ kind: SessionEvent.Kind) -> [UInt8] {
        governor.events.filter { $0.event.kind == kind }.flatMap(\.event.data)
    }

    @Test func theRecordBudgetCutsOnceAndSaysWhere() async throws {
        let (governor, session) = try await session()
        var budget = RecordBudget(cap: 10)
        session.recordOutput(Array("0123456".utf8), within: &budget)
        session.recordOutput(Array("789abc".utf8), within: &budget)
        session.recordOutput(Array("def".utf8), within: &budget)
        #expect(String(decoding: recorded(governor, .output), as: UTF8.self) == "0123456789")
        #expect(governor.events.filter { $0.event.kind == .marker }.map(\.event.data) == [SessionMarker.outputCut(atBytes: 10).json])
        #expect(budget.cut && budget.used == 10)
    }

    @Test func relayedOutputIsMaskedAcrossChunksAndRecordedMasked() async throws {
        let (governor, session) = try await session()
        let relay = try TerminalRelay(session: session, stdout: session.masking(for: .stream), stderr: session.masking(for: .stream),
                                      recordCap: 1 << 20, idleFlush: .milliseconds(50))
        let start = ContinuousClock.now
        var out: [UInt8] = []
        for part in ["mail jane.d", "oe@example", ".com now\n"] {
            out += try relay.output(Array(part.utf8), on: .stdout, now: start)
        }
        out += try relay.finish(.stdout)
        let text = String(decoding: out, as: UTF8.self)
        #expect(!text.contains("jane.doe") && text.contains("now\n"))
        #expect(recorded(governor, .output) == out)
    }

    @Test func heldBytesWaitForTheIdleDeadlineThenGoOut() async throws {
        let (_, session) = try await session()
        let relay = try TerminalRelay(session: session, stdout: session.masking(for: .stream), stderr: session.masking(for: .stream),
                                      recordCap: 1 << 20, idleFlush: .milliseconds(50))
        let start = ContinuousClock.now
        let first = try relay.output(Array("prompt$ jane".utf8), on: .stdout, now: start)
        let deadline = try #require(relay.nextIdleDeadline())
        #expect(deadline == start + .milliseconds(50))
        #expect(try relay.idle(now: start + .milliseconds(10)).isEmpty)
        let released = try relay.idle(now: deadline)
        #expect(released.count == 1 && released[0].0 == .stdout)
        #expect(String(decoding: first + released[0].1, as: UTF8.self) == "prompt$ jane")
        #expect(relay.nextIdleDeadline() == nil)
    }

    @Test func outputAfterItsStreamEndedFailsClosed() async throws {
        let (_, session) = try await session()
        let relay = try TerminalRelay(session: session, stdout: session.masking(for: .stream), stderr: session.masking(for: .stream),
                                      recordCap: 100, idleFlush: .milliseconds(50))
        _ = try relay.finish(.stderr)
        #expect(try relay.finish(.stderr).isEmpty)
        #expect(throws: TerminalRelayError.self) { try relay.output(Array("late".utf8), on: .stderr, now: .now) }
        #expect(relay.failed)
    }

    @Test func aTransfersStdoutIsRelayedAsItIsAndNotRecorded() async throws {
        let (governor, session) = try await session()
        let relay = try TerminalRelay(session: session, stdout: .unmasked, stderr: session.masking(for: .stream),
                                      recordCap: 100, idleFlush: .milliseconds(50), recordsStdout: false)
        let bytes = Array("jane.doe@example.com".utf8)
        #expect(try relay.output(bytes, on: .stdout, now: .now) == bytes)
        #expect(recorded(governor, .output).isEmpty)
    }

    @Test func typedInputIsRecordedMaskedEvenForUnmaskedUsers() async throws {
        let (governor, session) = try await session(unmasked: true)
        let relay = try TerminalRelay(session: session, stdout: session.masking(for: .stream), stderr: session.masking(for: .stream),
                                      recordCap: 100, idleFlush: .milliseconds(50))
        let start = ContinuousClock.now
        relay.recordInput(Array("echo jane.doe@exa".utf8), now: start)
        relay.recordInput(Array("mple.com\r".utf8), now: start)
        _ = try relay.idle(now: start + TerminalRelay.inputIdleFlush)
        relay.finishInput()
        let input = String(decoding: recorded(governor, .input), as: UTF8.self)
        #expect(input.hasPrefix("echo ") && !input.contains("jane.doe"))
    }

    @Test func reviewOutcomesAreWordedOnceForEveryProtocol() {
        let ticket = ReviewTicket(id: "r-1", approveHint: "sluice reviews approve r-1") { .timedOut }
        #expect(ReviewWording.held(ticket) == "held for review r-1; waiting for an approver (sluice reviews approve r-1)")
        #expect(ReviewWording.refusal(.approved(by: ["bob"])) == nil)
        #expect(ReviewWording.refusal(.denied(by: "bob", reason: "")) == "denied by bob")
        #expect(ReviewWording.refusal(.denied(by: "bob", reason: "not now")) == "denied by bob: not now")
        #expect(ReviewWording.refusal(.timedOut) == "the review timed out")
        #expect(ReviewWording.decided(.approved(by: ["bob", "carol"])) == "approved by bob, carol")
    }
}
