import Adapters
import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import MaskEngine
import NIOCore

/// One governed session.
final class GatewaySession: GovernedSession {
    let runtime: GatewayRuntime
    let identity: Identity
    let connection: ConnectionTarget
    let recorder: SessionRecorder
    let expiresAt: Int64?
    private let closed = Locked(false)
    /// The adapter's termination handler, and the reason once the gateway ended the session (a
    /// handler registered after that is called at once). `closed` drops the handler: it captures
    /// the adapter's handler, which holds this session, and the cycle would keep both (and every
    /// buffer of the connection) alive after the session ends.
    private let termination = Locked<(handler: (@Sendable (String) -> Void)?, reason: String?, closed: Bool)>((nil, nil, false))
    private let expiryWatch = Locked<Task<Void, Never>?>(nil)
    private let cleanups = Locked<[@Sendable () async -> Void]>([])
    /// The metric series this session adds to per command and per response, resolved once.
    private let allowedCommands: Metrics.Counter
    private let bytesScanned: Metrics.Counter
    private let maskedByDetector = Locked<[String: Metrics.Counter]>([:])

    var id: String { recorder.id }

    init(runtime: GatewayRuntime, identity: Identity, target: ConnectionTarget, recorder: SessionRecorder, expiresAt: Int64? = nil) {
        self.expiresAt = expiresAt
        self.runtime = runtime
        self.identity = identity
        self.connection = target
        self.recorder = recorder
        allowedCommands = runtime.metrics.counter("sluice_commands_total", labels: ["outcome": "allowed", "protocol": target.kind.rawValue])
        bytesScanned = runtime.metrics.counter("sluice_bytes_scanned_total", labels: ["protocol": target.kind.rawValue])
    }


    func decide(_ command: Command) -> Decision {
        if let failure = recorder.failure {
            runtime.logger.error("recording failed; command refused", metadata: ["session": "\(id)", "error": "\(failure)"])
            return .block(message: "recording is unavailable, so nothing may run (session \(id))")
        }
        guard let compiled = runtime.policy.connection(connection.name) else {
            return .block(message: "connection \(connection.name) was removed from the configuration")
        }
        let decision = compiled.decide(command, for: identity)
        switch decision.action {
        case .allow:
            allowedCommands.add(1)
            recorder.count("allowed")
            return .allow
        case .block:
            let message = decision.message ?? "blocked by policy"
            recorder.append(SessionMarker.decision(.block, rule: decision.rule.map { $0 + 1 }, classes: command.classes, message: message).event)
            recorder.count("blocked")
            runtime.metrics.increment("sluice_commands_total", labels: ["outcome": "blocked", "protocol": connection.kind.rawValue])
            runtime.control.append("command.blocked", actor: identity.user,
                                   ["session": id, "connection": connection.name, "rule": decision.rule.map { String($0 + 1) } ?? ""])
            return .block(message: message)
        case .review:
            runtime.metrics.increment("sluice_commands_total", labels: ["outcome": "reviewed", "protocol": connection.kind.rawValue])
            recorder.count("reviewed")
            let id = ReviewCenter.newID()
            recorder.append(SessionMarker.decision(.review, rule: decision.rule.map { $0 + 1 }, classes: command.classes, review: id).event)
            let reviews = runtime.reviews
            let recorder = self.recorder
            let identity = self.identity
            let sessionID = self.id
            let config = compiled.config
            let reason = decision.message ?? "review required"
            return .review(ReviewTicket(id: id, approveHint: "sluice reviews approve \(id)",
                                        withdraw: { why in await reviews.withdraw(id: id, reason: why) }) {
                var failure: String?
                let outcome: ReviewOutcome
                do {
                    _ = try await reviews.requestCommandReview(identity: identity, connection: config, sessionID: sessionID,
                                                               command: command, reason: reason, id: id)
                    outcome = await reviews.wait(id: id)
                } catch {
                    failure = "\(error)"
                    outcome = .denied(by: "sluice", reason: "the review could not be filed")
                }
                let marker: SessionMarker = switch outcome {
                case .approved(let by): .reviewOutcome(review: id, .approved, by: by, error: failure)
                case .denied(let by, _): .reviewOutcome(review: id, .denied, by: [by], error: failure)
                case .timedOut: .reviewOutcome(review: id, .timedOut, by: [], error: failure)
                }
                recorder.append(marker.event)
                return outcome
            })
        }
    }

    var recordingEngine: MaskingEngine? { runtime.policy.engines["default"] }

    func masking(for target: MaskTarget) -> MaskingChoice {
        let policy = runtime.policy
        guard let compiled = policy.connection(connection.name) else {
            // Removed by a reload: mask with the default profile rather than nothing.
            return policy.engines["default"].map { .masked(engine: $0, forced: nil) } ?? .unmasked
        }
        guard let profile = compiled.profileName(for: identity) else { return .unmasked }
        guard let engine = policy.engines[profile] ?? policy.engines["default"] else { return .unmasked }
        switch target {
        case .stream: return .masked(engine: engine, forced: nil)
        case .column(let table, let name): return .masked(engine: engine, forced: compiled.columnStyle(table: table, column: name))
        }
    }

    func record(_ event: SessionEvent) {
        guard recorder.append(event) else {
            stopUnrecorded(recorder.failure ?? "recording failed")
            return
        }
        runtime.hub.recorded(event, session: id)
    }

    func record(_ events: [SessionEvent]) {
        guard recorder.append(contentsOf: events) else {
            stopUnrecorded(recorder.failure ?? "recording failed")
            return
        }
        for event in events { runtime.hub.recorded(event, session: id) }
    }

    private let recordingStopped = Locked(false)

    /// Fail closed: a session whose record cannot be written stops relaying. Its client is told
    /// why; the gap is closed with a marker when the session is sealed.
    func stopUnrecorded(_ why: String) {
        let first = recordingStopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        runtime.logger.error("recording failed; session stopped", metadata: ["session": "\(id)", "error": "\(why.prefix(200))"])
        runtime.metrics.increment("sluice_sessions_stopped_unrecorded_total", labels: ["protocol": connection.kind.rawValue])
        Task { await self.terminate(reason: "recording failed, so the session was stopped (nothing may run unrecorded)") }
    }

    /// Records the marker; those that concern the gateway's operators, not only this session,
    /// also go to the control chain.
    func mark(_ marker: SessionMarker) {
        record(marker.event)
        if case .hostKeyMismatch = marker {
            runtime.control.append("ssh.host_key_mismatch", actor: identity.user, ["connection": connection.name])
        }
    }

    func reportUpstreamFailure(_ reason: String) {
        runtime.logger.warning("upstream unreachable", metadata: [
            "session": "\(id)", "connection": "\(connection.name)", "protocol": "\(connection.kind.rawValue)",
            "target": "\(connection.target)", "error": "\(reason.prefix(300))",
        ])
        runtime.metrics.add("sluice_upstream_failures_total", 1, labels: ["protocol": connection.kind.rawValue])
    }

    func reportMasking(bytes: Int, counts: [String: Int], latency: Duration) {
        bytesScanned.add(bytes)
        for (detector, count) in counts where count > 0 {
            let series = maskedByDetector.withLock { known in
                if let series = known[detector] { return series }
                let series = runtime.metrics.counter("sluice_values_masked_total", labels: ["detector": detector])
                // Bounded: detectors are a profile's names, a few dozen at most.
                if known.count < 1024 { known[detector] = series }
                return series
            }
            series.add(count)
            recorder.count("masked:" + detector, by: count)
        }
        runtime.metrics.observe("sluice_masking_latency_seconds", latency)
    }

    func onTermination(_ handler: @escaping @Sendable (String) -> Void) {
        let ended = termination.withLock { state -> String? in
            if let reason = state.reason { return reason }
            if !state.closed { state.handler = handler }
            return nil
        }
        if let ended { handler(ended) }
    }

    /// The gateway ends the session: the adapter is told first, then the record is sealed.
    func terminate(reason: String) async {
        let handler = termination.withLock { state -> (@Sendable (String) -> Void)? in
            if state.reason == nil { state.reason = reason }
            defer { state.handler = nil }
            return state.handler
        }
        handler?(reason)
        await close(reason: reason)
    }

    /// Runs `cleanup` once the session is closed and sealed (dropping its ephemeral role).
    func onClose(_ cleanup: @escaping @Sendable () async -> Void) {
        cleanups.withLock { $0.append(cleanup) }
    }

    /// Ends the session once the gateway's clock passes `validUntil` (Unix seconds: the token's
    /// `exp` plus the skew). Sleeps at most 5 minutes at a time and checks the clock again.
    func endAtExpiry(_ validUntil: Int64) {
        endAt(validUntil, marker: "token expired", message: "your token expired; sign in again")
    }

    /// Ends the session once the gateway's clock passes `validUntil` (Unix seconds), recording
    /// `marker` and telling the user `message`.
    func endAt(_ validUntil: Int64, marker: String, message: String) {
        let clock = runtime.clock
        let task = Task { [weak self] in
            while !Task.isCancelled {
                // Valid through the second `validUntil`, as the verifier counts.
                let left = (validUntil + 1) * 1_000_000 - clock.nowMicros()
                if left <= 0 {
                    self?.recorder.append(SessionMarker.ended(marker).event)
                    await self?.terminate(reason: message)
                    return
                }
                try? await Task.sleep(for: .microseconds(min(left, 300_000_000)))
            }
        }
        expiryWatch.withLock { $0 = task }
    }

    func close(reason: String) async {
        let first = closed.withLock { closed -> Bool in
            defer { closed = true }
            return !closed
        }
        guard first else { return }
        termination.withLock { state in
            state.handler = nil
            state.closed = true
        }
        expiryWatch.withLock { task in
            task?.cancel()
            task = nil
        }
        recorder.seal(reason: reason)
        runtime.sessionClosed(id)
        runtime.hub.sessionClosed(id)
        runtime.control.append("session.closed", actor: identity.user, ["session": id, "reason": String(reason.prefix(200))])
        let pending = cleanups.withLock { list in
            defer { list.removeAll() }
            return list
        }
        // In a task of its own: the expiry watch that may have called this is cancelled above,
        // and a cancelled task cannot talk to the database any more.
        if !pending.isEmpty {
            await Task { for cleanup in pending { await cleanup() } }.value
        }
    }
}
