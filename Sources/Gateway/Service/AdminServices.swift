import Adapters
import Foundation
import Logging

/// Which sessions are live right now (the record says what happened; this says what is open).
public protocol LiveSessions: Sendable {
    func isOpen(_ id: String) -> Bool
    var openSessionCount: Int { get }
}

/// Who a bearer token belongs to (admin API calls, console sign-in), throttled per source.
public protocol CallerAuthentication: Sendable {
    func authenticate(token: String, purpose: String, source: String?) async throws -> Identity
}

/// The proof that the record was not altered, and the control chain operators' actions go to.
public protocol AuditTrail: Sendable {
    /// A verifier of the whole record against the gateway's public key.
    func auditVerifier() -> AuditVerifier
    /// Appends an operator's action (`audit.verified`, `console.signin`, …) to the control chain.
    func note(_ kind: String, actor: String, _ detail: [String: String])
}

/// The configuration in force and the gateway's health, as operators see and change them.
public protocol GatewayOperations: Sendable {
    var policy: CompiledPolicy { get }
    /// Connections whose credential cannot be read, with why (no secret in the text).
    func credentialProblems() -> [String: String]
    func reload(actor: String, source: () throws -> GatewayConfiguration) throws
    /// The metrics in the Prometheus text format.
    func metricsText() -> String
    /// Why the store cannot record now (unreachable, or refusing writes), nil when it can. New
    /// sessions are refused meanwhile; the gateway takes them again when the store is back.
    func storeProblem() -> String?
    /// Where each served connection comes from (`file` or `runtime`).
    func connectionOrigins() -> [String: ConnectionOrigin]
    /// Runtime connections not served, with why (shadowed by the file, or invalid).
    var skippedConnections: [String: String] { get }
    /// A runtime connection's stored definition (JSON), nil for file connections.
    func runtimeSpec(_ name: String) -> String?
    /// Adds or replaces a runtime connection (recorded in the control chain with `actor`).
    func saveConnection(json: Data, actor: String, create: Bool, name: String?) throws -> GatewayConfiguration.Connection
    func removeConnection(name: String, actor: String) throws
}

/// What the admin API and the console may use of the gateway, and nothing more: the record
/// (read only), live sessions, reviews, the audit trail, caller authentication and operations.
/// The runtime provides each; tests may provide any of them alone.
public struct AdminServices: Sendable {
    public var records: any RecordReader
    public var live: any LiveSessions
    public var reviews: ReviewCenter
    public var audit: any AuditTrail
    public var callers: any CallerAuthentication
    public var operations: any GatewayOperations
    public var hub: ConsoleHub
    public var clock: any GatewayClock
    public var logger: Logger
    /// HTTP for the console's OIDC sign-in (discovery and token exchange).
    var fetch: HTTPFetcher

    public init(runtime: GatewayRuntime) {
        records = runtime.store
        live = runtime
        reviews = runtime.reviews
        audit = runtime
        callers = runtime
        operations = runtime
        hub = runtime.hub
        clock = runtime.clock
        logger = runtime.logger
        fetch = runtime.fetch
    }
}

extension GatewayRuntime: LiveSessions, CallerAuthentication, AuditTrail, GatewayOperations {
    public func auditVerifier() -> AuditVerifier {
        signer.verifier(for: store)
    }

    public func note(_ kind: String, actor: String, _ detail: [String: String]) {
        control.append(kind, actor: actor, detail)
    }

    public func metricsText() -> String {
        metrics.render()
    }

    public func storeProblem() -> String? {
        if let failure = writer.failure { return "recording failed: \(failure.prefix(200))" }
        do {
            try store.ping()
            return nil
        } catch {
            return "unreachable: \(String(describing: error).prefix(200))"
        }
    }
}
