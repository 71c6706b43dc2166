import MaskEngine
import Testing
@testable import Adapters

/// The SSH session logic without sockets or threads (issue 15, point 1): requests, typed-line
/// guardrails, review hold and release, masking, EOF and exit ordering, port-forward decisions.
@Suite struct SSHSessionMachineTests {
    static let forwardable: ConnectionTarget = {
        var target = ConnectionTarget(name: "box", kind: .ssh, target: "127.0.0.1:22")
        target.portForwarding = try! ForwardPermission(["db.internal:5432", "127.0.0.1:*"])
        return target
    }()

    /// Blocks `rm -rf`, holds `deploy` and `drop` for review (decided `outcome`).
    func machine(outcome: ReviewOutcome = .approved(by: ["bob"]), unmasked: Bool = false)
        async throws -> (SSHSessionMachine, InMemoryGovernor) {
        let rules: [@Sendable (Command) -> Decision?] = [
            { $0.text.contains("rm -rf") ? .block(message: "no recursive deletes") : nil },
            { command in
                let id = command.text.contains("deploy") ? "r-deploy" : (command.classes.contains("port_forward") ? "r-forward" : nil)
                return id.map { .review(ReviewTicket(id: $0, approveHint: "sluice reviews approve \($0)") { .timedOut }) }
            },
        ]
        let governor = InMemoryGovernor(tokens: ["t": Identity(user: "alice", groups: unmasked ? ["dba"] : [], issuer: "test")],
                                        connections: [Self.forwardable], engine: testEngine, rules: rules,
                                        reviewOutcome: outcome, unmaskedGroups: ["dba"])
        let session = try await governor.openSession(token: "t", connection: "box", kind: .ssh, peer: "test")
        return (SSHSessionMachine(session: session, configuration: .init(recordCap: 1 << 20, idleFlush: .milliseconds(50))), governor)
    }

    let now = ContinuousClock.now

    func text(_ actions: [SSHSessionMachine.Action], _ pick: (SSHSessionMachine.Action) -> [UInt8]?) -> String {
        String(decoding: actions.compactMap(pick).joined(), as: UTF8.self)
    }
    func client(_ actions: [SSHSessionMachine.Action]) -> String { text(actions) { if case .toClient(let b) = $0 { b } else { nil } } }
    func stderr(_ actions: [SSHSessionMachine.Action]) -> String { text(actions) { if case .toClientStderr(let b) = $0 { b } else { nil } } }
    func upstream(_ actions: [SSHSessionMachine.Action]) -> String { text(actions) { if case .toUpstream(let b) = $0 { b } else { nil } } }
    func markers(_ governor: InMemoryGovernor) -> [SessionMarker] {
        governor.events.filter { $0.event.kind == .marker }.compactMap { SessionMarker(json: $0.event.data) }
    }
    func heldTicket(_ actions: [SSHSessionMachine.Action]) -> ReviewTicket? {
        actions.lazy.compactMap { if case .awaitReview(let ticket) = $0 { ticket } else { nil } }.first
    }

    @Test func anAllowedExecOpensUpstreamWithTheTerminalAndEnvironment() async throws {
        var (machine, governor) = try await machine()
        let terminal = machine.terminalRequested(SSHTerminal(term: "xterm", columns: 80, rows: 24))
        let lang = machine.environmentRequested(name: "LANG", value: "C.UTF-8")
        let preload = machine.environmentRequested(name: "LD_PRELOAD", value: "/tmp/x.so")
        #expect(terminal && lang && !preload)
        let (accepted, actions) = machine.requested(.exec("uptime"), now: now)
        #expect(accepted)
        guard case .openUpstream(.exec("uptime"), let opened, let environment) = try #require(actions.first) else {
            Issue.record("expected openUpstream, got \(actions)")
            return
        }
        #expect(opened?.columns == 80 && environment.map(\.0) == ["LANG"])
        let second = machine.requested(.shell, now: now)
        #expect(!second.accepted)   // one request per channel
        #expect(governor.events.first?.event == SessionEvent(.input, text: "uptime"))
    }

    @Test func aBlockedExecIsToldAndExitsWith126WithoutAnUpstream() async throws {
        var (machine, governor) = try await machine()
        let actions = machine.requested(.exec("rm -rf /"), now: now).actions
        #expect(stderr(actions) == "sluice: blocked: no recursive deletes\r\n")
        guard case .exit(126, nil) = try #require(actions.last) else { Issue.record("\(actions)"); return }
        #expect(!actions.contains { if case .openUpstream = $0 { true } else { false } })
        #expect(markers(governor) == [.exitStatus(126)])
        #expect(machine.isDone)
    }

    @Test func aHeldExecWaitsWithoutBlockingAndRunsOnceApproved() async throws {
        var (machine, _) = try await machine()
        let held = machine.requested(.exec("deploy prod"), now: now).actions
        #expect(stderr(held).contains("held for review r-deploy; waiting for an approver (sluice reviews approve r-deploy)"))
        let ticket = try #require(heldTicket(held))
        // Input typed meanwhile is queued for the upstream, not lost.
        let typed = Array("yes\n".utf8).withUnsafeBytes { machine.clientData($0, now: now) }
        #expect(typed.taken == 4 && upstream(typed.actions) == "yes\n")
        let other = machine.reviewDecided("r-other", .approved(by: ["x"]), now: now)
        #expect(other.isEmpty)
        let approved = machine.reviewDecided(ticket.id, .approved(by: ["bob"]), now: now)
        guard case .openUpstream(.exec("deploy prod"), _, _) = try #require(approved.first) else { Issue.record("\(approved)"); return }
    }

    @Test(arguments: [ReviewOutcome.denied(by: "bob", reason: "not today"), .timedOut])
    func aDeniedOrTimedOutExecIsToldWhy(_ outcome: ReviewOutcome) async throws {
        var (machine, _) = try await machine()
        _ = machine.requested(.exec("deploy prod"), now: now)
        let actions = machine.reviewDecided("r-deploy", outcome, now: now)
        #expect(stderr(actions) == "sluice: \(ReviewWording.refusal(outcome)!)\r\n")
        guard case .exit(126, nil) = try #require(actions.last) else { Issue.record("\(actions)"); return }
    }

    @Test func outputIsMaskedAcrossPacketsRecordedAndFinishedBeforeTheExit() async throws {
        var (machine, governor) = try await machine()
        _ = machine.requested(.exec("cat users"), now: now)
        _ = machine.upstreamOpened(now: now)
        var shown = ""
        for part in ["mail: jane.d", "oe@example.com\nnext: ann"] {
            shown += client(Array(part.utf8).withUnsafeBytes { machine.upstreamData($0, stderr: false, now: now) })
        }
        machine.upstreamExit(status: 0)
        let end = machine.upstreamClosed(now: now)
        shown += client(end)
        #expect(!shown.contains("jane.doe") && shown.hasPrefix("mail: ") && shown.hasSuffix("next: ann"))
        guard case .exit(0, nil) = try #require(end.last) else { Issue.record("\(end)"); return }
        let recorded = String(decoding: governor.events.filter { $0.event.kind == .output }.flatMap(\.event.data), as: UTF8.self)
        #expect(recorded == shown)
        #expect(markers(governor).last == .exitStatus(0))
    }

    @Test func heldOutputGoesOutWhenTheStreamIsIdle() async throws {
        var (machine, _) = try await machine()
        _ = machine.requested(.shell, now: now)
        _ = machine.upstreamOpened(now: now)
        let first = client(Array("$ jane".utf8).withUnsafeBytes { machine.upstreamData($0, stderr: false, now: now) })
        let deadline = try #require(machine.nextDeadline)
        let early = machine.tick(now: now)
        let late = machine.tick(now: deadline)
        #expect(early.isEmpty && first + client(late) == "$ jane")
    }

    @Test func clientEOFGoesUpstreamOnceAndAfterTheUpstreamOpened() async throws {
        var (machine, _) = try await machine()
        _ = machine.requested(.exec("deploy prod"), now: now)
        let early = machine.clientEOF(now: now)
        #expect(early.isEmpty)   // nothing to send it to yet
        _ = machine.reviewDecided("r-deploy", .approved(by: ["bob"]), now: now)
        let opened = machine.upstreamOpened(now: now)
        let again = machine.clientEOF(now: now)
        #expect(opened.contains { if case .sendUpstreamEOF = $0 { true } else { false } } && again.isEmpty)
    }

    @Test func aBlockedTypedLineIsErasedInTheShellAndTheRestGoesUp() async throws {
        var (machine, _) = try await machine()
        _ = machine.terminalRequested(SSHTerminal(term: "xterm", columns: 80, rows: 24))
        _ = machine.requested(.shell, now: now)
        _ = machine.upstreamOpened(now: now)
        let result = Array("ls\rrm -rf /\rpwd\r".utf8).withUnsafeBytes { machine.clientData($0, now: now) }
        #expect(result.taken == 16)
        #expect(upstream(result.actions) == "ls\rrm -rf /\u{15}\rpwd\r")
        #expect(client(result.actions).contains("sluice: blocked: no recursive deletes"))
    }

    @Test func aHeldTypedLineHoldsItsEnterUntilDecided() async throws {
        for outcome in [ReviewOutcome.approved(by: ["bob"]), .denied(by: "bob", reason: "")] {
            var (machine, _) = try await machine()
            _ = machine.terminalRequested(SSHTerminal(term: "xterm", columns: 80, rows: 24))
            _ = machine.requested(.shell, now: now)
            _ = machine.upstreamOpened(now: now)
            let bytes = Array("deploy prod\rls\r".utf8)
            let held = bytes.withUnsafeBytes { machine.clientData($0, now: now) }
            #expect(held.taken == 12)                       // up to and including the held Enter
            #expect(upstream(held.actions) == "deploy prod")
            #expect(client(held.actions).contains("held for review r-deploy"))
            // The rest waits in the driver while the line is held.
            let waiting = Array(bytes[12...]).withUnsafeBytes { machine.clientData($0, now: now) }
            #expect(waiting.taken == 0)
            let decided = machine.reviewDecided("r-deploy", outcome, now: now)
            if case .approved = outcome {
                #expect(upstream(decided) == "\r" && client(decided) == "sluice: approved by bob\r\n")
            } else {
                #expect(upstream(decided) == "\u{15}\r" && client(decided) == "sluice: denied by bob\r\n")
            }
            let rest = Array(bytes[12...]).withUnsafeBytes { machine.clientData($0, now: now) }
            #expect(rest.taken == 3)
        }
    }

    @Test func typedInputIsRecordedMasked() async throws {
        var (machine, governor) = try await machine(unmasked: true)
        _ = machine.requested(.exec("cat"), now: now)
        _ = machine.upstreamOpened(now: now)
        _ = Array("jane.doe@example.com\n".utf8).withUnsafeBytes { machine.clientData($0, now: now) }
        _ = machine.clientEOF(now: now)
        let input = String(decoding: governor.events.filter { $0.event.kind == .input }.flatMap(\.event.data), as: UTF8.self)
        #expect(input.hasPrefix("cat") && !input.contains("jane.doe"))
    }

    @Test func inputPipedWhileTheCommandIsHeldIsRecordedMasked() async throws {
        var (machine, governor) = try await machine(unmasked: true)
        _ = machine.requested(.exec("deploy prod"), now: now)
        let typed = Array("jane.doe@example.com\n".utf8).withUnsafeBytes { machine.clientData($0, now: now) }
        #expect(upstream(typed.actions) == "jane.doe@example.com\n")   // the command gets it as sent
        _ = machine.reviewDecided("r-deploy", .denied(by: "bob", reason: ""), now: now)
        let recorded = governor.events.filter { $0.event.kind == .input }.map { String(decoding: $0.event.data, as: UTF8.self) }
        #expect(recorded.first == "deploy prod" && !recorded.joined().contains("jane.doe"))
    }

    @Test func aFileTransferIsRelayedAsItIsAndRecordedByNameAndSize() async throws {
        var (machine, governor) = try await machine()
        _ = machine.requested(.subsystem("sftp"), now: now)
        _ = machine.upstreamOpened(now: now)
        let bytes = Array("jane.doe@example.com".utf8)
        let relayed = bytes.withUnsafeBytes { machine.upstreamData($0, stderr: false, now: now) }
        #expect(client(relayed) == "jane.doe@example.com")
        _ = machine.upstreamClosed(now: now)
        #expect(governor.events.filter { $0.event.kind == .output }.isEmpty)
        #expect(markers(governor).contains { if case .transfer(kind: "sftp", _, _, _) = $0 { true } else { false } })
    }

    @Test func outputThatCannotBeScannedStopsTheSessionWithoutSendingIt() async throws {
        var (machine, governor) = try await machine()
        _ = machine.requested(.exec("cat"), now: now)
        _ = machine.upstreamOpened(now: now)
        _ = machine.upstreamEOF(now: now)
        // Output after the end of its stream cannot be scanned in order: fail closed.
        let actions = Array("jane.doe@example.com".utf8).withUnsafeBytes { machine.upstreamData($0, stderr: false, now: now) }
        #expect(client(actions).isEmpty)
        #expect(stderr(actions) == "\r\nsluice: output stopped: it could not be masked\r\n")
        #expect(actions.filter { if case .closeUpstream = $0 { true } else { false } }.count == 1)
        guard case .exit(255, nil) = try #require(actions.last) else { Issue.record("\(actions)"); return }
        #expect(machine.endReason == "output could not be masked")
        #expect(markers(governor).last == .exitStatus(255))
        let after = machine.terminate(reason: "gateway shutting down")
        #expect(after.isEmpty)
    }

    @Test func aSessionTheGatewayEndsIsToldWhy() async throws {
        var (machine, _) = try await machine()
        _ = machine.requested(.shell, now: now)
        _ = machine.upstreamOpened(now: now)
        let actions = machine.terminate(reason: "gateway shutting down")
        #expect(stderr(actions) == "\r\nsluice: session ended: gateway shutting down\r\n")
        #expect(actions.contains { if case .closeUpstream = $0 { true } else { false } })
        guard case .exit(255, nil) = try #require(actions.last) else { Issue.record("\(actions)"); return }
        #expect(machine.endReason == "gateway shutting down" && machine.isDone)
    }

    @Test func forwardsAreCheckedAgainstTheListThenTheRulesOncePerDestination() async throws {
        var (machine, governor) = try await machine()
        let refused = machine.forwardRequested(host: "evil.example", port: 25)
        guard case .refuse = refused.answer else { Issue.record("\(refused.answer)"); return }
        #expect(markers(governor) == [.forward(destination: "evil.example:25", .refused("not in port_forwarding"))])
        guard case .hold(let ticket) = machine.forwardRequested(host: "db.internal", port: 5432).answer else { Issue.record("no hold"); return }
        let decided = machine.forwardReviewDecided(ticket.id, .approved(by: ["bob"]))
        #expect(decided.relay && stderr(decided.actions) == "sluice: forward to db.internal:5432 approved by bob\r\n")
        guard case .accept = machine.forwardRequested(host: "db.internal", port: 5432).answer else { Issue.record("not cached"); return }
        machine.forwardOpened(host: "::1", port: 80)
        machine.forwardClosed(host: "::1", port: 80, bytesUp: 3, bytesDown: 4)
        #expect(markers(governor).suffix(2) == [.forward(destination: "[::1]:80", .opened),
                                                 .forward(destination: "[::1]:80", .closed(bytesUp: 3, bytesDown: 4))])
    }
}
