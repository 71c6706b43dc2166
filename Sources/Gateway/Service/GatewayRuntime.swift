import Adapters
import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import MaskEngine
import NIOCore

/// Everything a running gateway shares: the current policy snapshot, identity, reviews, the store,
/// the control chain and metrics. It is the ``Governor`` the adapters talk to.
public final class GatewayRuntime: Governor {
    struct Snapshot: Sendable {
        var policy: CompiledPolicy
        var verifier: TokenVerifier
        /// The configuration as its source gave it, before runtime connections were merged in.
        var file: GatewayConfiguration
        /// The runtime connections merged into `policy` (as the store held them then).
        var stored: [StoredConnection] = []
        /// Runtime connections not served: shadowed by the file (name → why), or invalid.
        var skipped: [String: String] = [:]
    }

    package let store: any Store
    package let writer: RecordWriter
    package let control: ControlLog
    package let reviews: ReviewCenter
    package let metrics: Metrics
    package let clock: any GatewayClock
    /// Holds the signing key; the runtime hands out only its public half.
    package let signer: AuditSigner
    package let logger: Logger
    /// Live feeds for the web console (new reviews, output of open sessions).
    package let hub: ConsoleHub
    let fetch: HTTPFetcher
    let snapshot: Locked<Snapshot>
    private let openSessions = Locked<[String: GatewaySession]>([:])
    /// Failed logins per source address and per claimed user (`limits.failed_logins_per_*`).
    private let throttle: Locked<LoginThrottle>
    /// Postgres and SSH connections that have not logged in yet (`limits.unauthenticated_*`).
    package let admission: ConnectionAdmission

    /// This gateway's lasting id (the state directory's `gateway-id`): the ephemeral roles it
    /// makes carry it.
    public let gatewayID: String

    public init(policy: CompiledPolicy, store: any Store, signingKey: Curve25519.Signing.PrivateKey,
                clock: any GatewayClock = SystemClock(), fetch: @escaping HTTPFetcher = HTTPFetch.live,
                logger: Logger = Logger(label: "sluice"), gatewayID: String? = nil) throws {
        self.store = store
        self.gatewayID = gatewayID ?? JustInTime.randomHex(6)
        let signer = AuditSigner(key: signingKey)
        self.signer = signer
        self.writer = RecordWriter(store: store, signer: signer, logger: logger)
        self.clock = clock
        self.logger = logger
        self.fetch = fetch
        self.metrics = Metrics()
        self.control = try ControlLog(store: store, signer: signer, clock: clock, logger: logger)
        let configuration = policy.configuration
        let hub = ConsoleHub()
        self.hub = hub
        let notifier = LoggingReviewNotifier(logger: logger, webhook: configuration.reviewWebhook,
                                             publicURL: configuration.publicURL ?? "http://\(configuration.listen.admin?.description ?? "127.0.0.1:8080")",
                                             hub: hub)
        self.reviews = ReviewCenter(store: store, control: control, clock: clock, notifier: notifier)
        let verifier = TokenVerifier(identity: configuration.identity, devKey: signer.publicKey, fetch: fetch,
                                     now: { Date(timeIntervalSince1970: Double(clock.nowMicros()) / 1_000_000) })
        snapshot = Locked(Snapshot(policy: policy, verifier: verifier, file: configuration))
        throttle = Locked(LoginThrottle(limits: configuration.loginThrottle))
        admission = ConnectionAdmission(limits: configuration.admission)
        let stopped = Locked(0)
        writer.onFailure(loss: { [weak self] sessions, reason in
            guard let self else { return }
            let open = openSessions.withLock { all in sessions.compactMap { all[$0] } }
            stopped.withLock { $0 += open.count }
            for session in open { session.stopUnrecorded(reason) }
        }, recovery: { [weak self] failure in
            guard let self else { return }
            let count = stopped.withLock { count in
                defer { count = 0 }
                return count
            }
            control.append("recording.recovered", actor: "sluice", ["failure": String(failure.prefix(200)), "sessions_stopped": String(count)])
        })
    }

    public var policy: CompiledPolicy { snapshot.withLock { $0.policy } }

    /// Connections whose credential cannot be resolved now, with why (no secret in it).
    public func credentialProblems() -> [String: String] {
        var problems: [String: String] = [:]
        for connection in policy.configuration.connections {
            if let problem = CredentialResolver.problem(connection.credential) { problems[connection.name] = problem }
        }
        return problems
    }

    /// Logs every credential problem (at start and after a reload): a session on such a
    /// connection would fail when it opens, so the operator hears of it first.
    public func warnAboutCredentials() {
        for (name, problem) in credentialProblems().sorted(by: { $0.key < $1.key }) {
            logger.warning("credential unavailable", metadata: ["connection": "\(name)", "problem": "\(problem)"])
        }
    }
    public var verifier: TokenVerifier { snapshot.withLock { $0.verifier } }

    /// Swaps in a new configuration atomically. Open sessions keep running and use the new policy
    /// for their next decision; a configuration that fails to compile is refused and the old stays.
    public func reload(_ configuration: GatewayConfiguration, actor: String) throws {
        try reload(actor: actor) { configuration }
    }

    /// Reads the configuration with `source` and swaps it in; a read or compile error is refused,
    /// logged and recorded as a control event, and the running configuration stays.
    public func reload(actor: String, source: () throws -> GatewayConfiguration) throws {
        let policy: CompiledPolicy
        let configuration: GatewayConfiguration
        let merged: MergedConnections
        do {
            configuration = try source()
            let stored = (try? store.runtimeConnections()) ?? snapshot.withLock { $0.stored }
            merged = Self.merge(configuration, stored: stored)
            policy = try CompiledPolicy(configuration: merged.configuration)
        } catch {
            control.append("config.reload_refused", actor: actor, ["reason": "\(error)".prefix(300).description])
            throw error
        }
        let clock = self.clock
        let verifier = TokenVerifier(identity: configuration.identity, devKey: signer.publicKey, fetch: fetch,
                                     now: { Date(timeIntervalSince1970: Double(clock.nowMicros()) / 1_000_000) })
        snapshot.withLock {
            $0 = Snapshot(policy: policy, verifier: verifier, file: configuration, stored: merged.stored, skipped: merged.skipped)
        }
        warnAboutSkipped(merged.skipped)
        control.append("config.reloaded", actor: actor, ["connections": String(configuration.connections.count),
                                                         "detectors": String(policy.detectorCount)])
        logger.notice("configuration reloaded", metadata: ["connections": "\(configuration.connections.count)"])
        warnAboutCredentials()
    }

    /// Verifies a bearer token (admin API and adapters alike). Failures go to the control chain
    /// as counts (``LoginThrottle``): the first of a window and each lockout are events, the rest
    /// are counted in them. A source address or claimed user that is locked out is refused before
    /// its token is checked (`GovernorError.throttled`).
    public func authenticate(token: String, purpose: String, source: String? = nil) async throws -> Identity {
        try await authenticateWithExpiry(token: token, purpose: purpose, source: source).identity
    }

    /// ``authenticate(token:purpose:source:)``, also giving the Unix time the token stops being valid (skew included).
    public func authenticateWithExpiry(token: String, purpose: String, source: String? = nil) async throws
        -> (identity: Identity, validUntil: Int64) {
        var keys: [LoginThrottle.Key] = []
        if let source { keys.append(.source(source, admin: purpose == "admin" || purpose == "console")) }
        if let user = LoginThrottle.claimedUser(token) { keys.append(.user(user)) }
        if keys.isEmpty { keys.append(.unattributed(purpose)) }
        let sources = keys.filter { if case .source = $0 { true } else { false } }
        let now = clock.nowMicros()
        if let wait = throttle.withLock({ $0.lockedOut(sources, now: now) }) {
            metrics.increment("sluice_logins_throttled_total", labels: ["purpose": purpose])
            throw GovernorError(.throttled, "too many failed logins from this address; try again in \(wait) s")
        }
        do {
            let verified = try await verifier.verifyWithExpiry(token)
            throttle.withLock { $0.succeeded(keys) }
            return verified
        } catch let error as TokenError {
            metrics.increment("sluice_logins_failed_total", labels: ["code": error.code.rawValue])
            // A claimed user already locked out: this failure is only counted, and refused as throttled.
            let (events, userWait) = throttle.withLock { throttle in
                let wait = keys.compactMap { key -> Int64? in
                    if case .user = key { return throttle.remainingLockout(key, now: now) }
                    return nil
                }.max()
                return (throttle.failed(keys, now: now), wait)
            }
            for event in events {
                var fields = ["code": error.code.rawValue, "purpose": purpose, "failures": String(event.failures),
                              "unrecorded": String(event.unrecorded)]
                let (name, value) = event.key.field
                fields[name] = value
                switch event.kind {
                case .failed:
                    control.append("login.failed", actor: "-", fields)
                case .lockedOut(let seconds):
                    fields["locked_seconds"] = String(seconds)
                    control.append("login.throttled", actor: "-", fields)
                    logger.warning("failed logins throttled", metadata: [name: "\(value)", "seconds": "\(seconds)", "purpose": "\(purpose)"])
                }
            }
            if let userWait {
                metrics.increment("sluice_logins_throttled_total", labels: ["purpose": purpose])
                throw GovernorError(.throttled, "too many failed logins for this user; try again in \(userWait) s")
            }
            throw error
        }
    }

    public func openSession(token: String, connection name: String, kind: ConnectionKind, peer: String) async throws -> any GovernedSession {
        let identity: Identity
        let validUntil: Int64
        do {
            (identity, validUntil) = try await authenticateWithExpiry(token: token, purpose: kind.rawValue,
                                                                      source: LoginThrottle.source(ofPeer: peer))
        } catch let error as TokenError {
            throw GovernorError(.unauthenticated, "authentication failed (\(error.code.rawValue))")
        }
        let policy = self.policy
        guard let connection = policy.connection(name) else {
            control.append("access.denied", actor: identity.user, ["connection": String(name.prefix(100)), "why": "unknown connection"])
            throw GovernorError(.unknownConnection, "no connection named \(name.prefix(100))")
        }
        guard connection.config.kind == kind else {
            throw GovernorError(.wrongProtocol, "\(name) is a \(connection.config.kind.rawValue) connection")
        }
        var allowed = connection.groupAllows(identity)
        if !allowed { allowed = await reviews.hasGrant(user: identity.user, connection: name) }
        guard allowed else {
            control.append("access.denied", actor: identity.user, ["connection": name, "why": "not in access groups and no grant"])
            metrics.increment("sluice_access_denied_total", labels: ["connection": name])
            throw GovernorError(.forbidden, "\(identity.user) may not use \(name); request access with `sluice access request \(name)`")
        }
        let sessionID = Self.newSessionID()
        var credential: Credential
        var issued: IssuedCredential?
        do {
            if let mode = connection.config.credential.justInTime {
                let made = try await JustInTime.issue(mode, connection: connection.config, user: identity.user, session: sessionID,
                                                      gatewayID: gatewayID, now: Date(timeIntervalSince1970: Double(clock.nowMicros()) / 1_000_000),
                                                      logger: logger)
                credential = made.credential
                issued = made
            } else {
                credential = try CredentialResolver.resolve(connection.config.credential)
            }
        } catch {
            logger.error("credential unavailable", metadata: ["connection": "\(name)", "error": "\(error)"])
            control.append("credential.failed", actor: identity.user, ["connection": name, "reason": String(describing: error).prefix(300).description])
            throw GovernorError(.unavailable, "the gateway has no credential for \(name)")
        }
        // Run whatever the issued credential needs undone if the session never opens.
        var opened = false
        defer {
            if !opened, let cleanup = issued?.cleanup { Task { await cleanup() } }
        }
        var target = ConnectionTarget(name: name, kind: kind, target: connection.config.target, database: connection.config.database,
                                      credential: credential, hostKey: connection.config.hostKey, caFile: connection.config.caFile,
                                      options: connection.config.options)
        target.needsTableNames = connection.config.masking.columns.keys.contains { !$0.hasPrefix("*.") }
        target.portForwarding = connection.config.portForwarding
        let record = SessionRecord(id: sessionID, user: identity.user, groups: identity.groups, connection: name,
                                   kind: kind.rawValue, peer: String(peer.prefix(100)), startedAt: clock.nowMicros())
        let recorder: SessionRecorder
        if let failure = writer.failure {
            logger.error("session not recorded", metadata: ["error": "\(failure)"])
            throw GovernorError(.unavailable, "recording is unavailable; sessions are refused until it is back")
        }
        do {
            recorder = try SessionRecorder(session: record, writer: writer, signer: signer, clock: clock)
        } catch {
            logger.error("session not recorded", metadata: ["error": "\(error)"])
            throw GovernorError(.unavailable, "recording is unavailable; sessions are refused until it is back")
        }
        let session = GatewaySession(runtime: self, identity: identity, target: target, recorder: recorder, expiresAt: validUntil)
        openSessions.withLock { $0[record.id] = session }
        opened = true
        if let issued {
            session.mark(issued.marker)
            if let cleanup = issued.cleanup { session.onClose(cleanup) }
        }
        // A session ends when its token expires (unless the connection says otherwise), and
        // always when its just-in-time credential does.
        if let endsAt = issued?.endsAt, !connection.config.endOnTokenExpiry || endsAt < validUntil {
            session.endAt(endsAt, marker: "credential expired", message: "the session's database role expired (credential.ttl); connect again")
        } else if connection.config.endOnTokenExpiry {
            session.endAtExpiry(validUntil)
        }
        metrics.add("sluice_sessions_open", 1, labels: [:])
        metrics.increment("sluice_sessions_total", labels: ["protocol": kind.rawValue])
        control.append("session.opened", actor: identity.user, ["session": record.id, "connection": name, "protocol": kind.rawValue])
        return session
    }

    public func isOpen(_ id: String) -> Bool {
        openSessions.withLock { $0[id] != nil }
    }

    func sessionClosed(_ id: String) {
        openSessions.withLock { _ = $0.removeValue(forKey: id) }
        metrics.add("sluice_sessions_open", -1, labels: [:])
    }

    /// Ends every open session (graceful shutdown): each is told and its record sealed.
    public func closeAll(reason: String) async {
        let sessions = openSessions.withLock { Array($0.values) }
        for session in sessions { await session.terminate(reason: reason) }
        writer.drain()
        try? store.checkpoint()
    }

    public var openSessionCount: Int { openSessions.withLock { $0.count } }

    /// The ephemeral roles open sessions log in with (never swept).
    func openRoleNames() -> Set<String> {
        openSessions.withLock { sessions in
            Set(sessions.values.compactMap { session in
                session.connection.credential.username.flatMap { $0.hasPrefix(EphemeralRoles.prefix) ? $0 : nil }
            })
        }
    }

    static func newSessionID() -> String {
        "s-" + Hex.random(bytes: 8)
    }
}
