import MaskEngine

/// The seam between protocol adapters and the control plane (see DESIGN.md).
///
/// Adapters never decide policy; the governor never parses a protocol. An adapter asks the
/// governor to open a session for a bearer token, then for each command asks ``GovernedSession/decide(_:)``,
/// masks what the session's ``GovernedSession/masking(for:)`` says, and records what happened.
public protocol Governor: Sendable {
    /// Authenticates `token` and checks that its user may open `connection` over `kind`.
    ///
    /// - Throws: ``GovernorError`` with ``GovernorError/Code/unauthenticated`` (bad token),
    ///   ``GovernorError/Code/forbidden`` (no access) or ``GovernorError/Code/unknownConnection``.
    func openSession(token: String, connection: String, kind: ConnectionKind, peer: String) async throws -> any GovernedSession
}

/// One authenticated user on one connection: policy, masking and recording for its lifetime.
public protocol GovernedSession: AnyObject, Sendable {
    var id: String { get }
    var identity: Identity { get }
    var connection: ConnectionTarget { get }

    /// The decision for one command, synchronously (it runs for every query on the event loop).
    /// A `.review` decision carries a ticket: the adapter tells the user its id and hint, then
    /// awaits ``ReviewTicket/outcome()``, which files the review and waits for its decision.
    func decide(_ command: Command) -> Decision

    /// The engine that masks what is *recorded* for users who see data unmasked (raw data is never
    /// written to the record); nil when no detectors are loaded.
    var recordingEngine: MaskingEngine? { get }

    /// How a stream (terminal output, an HTTP body) or a column is masked for this user.
    func masking(for target: MaskTarget) -> MaskingChoice

    /// Appends one event to the session record (already masked output only).
    func record(_ event: SessionEvent)

    /// Appends several events at once, in order (an exchange's body and its closing marker):
    /// one timestamp and one handoff to the writer instead of one per event.
    func record(_ events: [SessionEvent])

    /// Records a typed marker. The governor decides what else a marker means (a host-key
    /// mismatch also goes to the control chain); adapters only mark.
    func mark(_ marker: SessionMarker)

    /// Reports what masking did: bytes scanned, values masked per detector, time spent.
    func reportMasking(bytes: Int, counts: [String: Int], latency: Duration)

    /// The upstream could not be reached or failed before answering: the gateway logs it for the
    /// operator at the default level (the reason is the network error and the target, never
    /// payload), while the client gets only a code and the connection's name.
    func reportUpstreamFailure(_ reason: String)

    /// Ends the session and seals its record.
    func close(reason: String) async

    /// Called once if the gateway ends the session itself (shutdown, revoked access): the adapter
    /// tells the user `reason` in its protocol and closes the connection.
    func onTermination(_ handler: @escaping @Sendable (_ reason: String) -> Void)

    /// Unix time (seconds) after which the session's token is no longer valid: its `exp` plus the
    /// allowed clock skew. nil when unknown. Adapters that serve many requests on one session
    /// (HTTP keep-alive) check it per request.
    var expiresAt: Int64? { get }
}

extension GovernedSession {
    public var expiresAt: Int64? { nil }
    public func record(_ events: [SessionEvent]) {
        for event in events { record(event) }
    }
    public func reportUpstreamFailure(_ reason: String) {}
}

/// The protocols Sluice speaks.
public enum ConnectionKind: String, Sendable, Codable, CaseIterable {
    case postgres, ssh, http, kubernetes
}

/// Who the caller is, as the identity provider says.
public struct Identity: Sendable, Equatable, Codable {
    public var user: String
    public var groups: [String]
    /// The issuer that vouched for the token (an OIDC issuer URL or `sluice-dev`).
    public var issuer: String

    public init(user: String, groups: [String], issuer: String) {
        self.user = user
        self.groups = groups
        self.issuer = issuer
    }

    public func isMember(of anyOf: [String]) -> Bool {
        groups.contains { anyOf.contains($0) }
    }
}

/// A secret that never prints. Its bytes are only reachable through ``withBytes(_:)`` or ``exposed``.
public struct Secret: Sendable, CustomStringConvertible, CustomDebugStringConvertible, Equatable {
    private let bytes: [UInt8]

    public init(_ text: String) { bytes = Array(text.utf8) }
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// The secret as text, for handing it to a protocol handshake.
    public var exposed: String { String(decoding: bytes, as: UTF8.self) }
    public var count: Int { bytes.count }
    public func withBytes<R>(_ body: ([UInt8]) throws -> R) rethrows -> R { try body(bytes) }

    public var description: String { "<secret \(bytes.count) bytes>" }
    public var debugDescription: String { description }
}

/// The long-lived credential the gateway holds for a target. Users never see it.
public struct Credential: Sendable, Equatable {
    public var username: String?
    public var password: Secret?
    public var privateKey: Secret?
    public var token: Secret?
    /// HTTP: send the token in this header instead of `Authorization: Bearer`.
    public var headerName: String?
    /// SSH: an OpenSSH user certificate (base64 of its blob) for `privateKey`, made for this session.
    public var certificate: Secret?

    public init(username: String? = nil, password: Secret? = nil, privateKey: Secret? = nil, token: Secret? = nil,
                headerName: String? = nil) {
        self.username = username
        self.password = password
        self.privateKey = privateKey
        self.token = token
        self.headerName = headerName
    }
}

/// Where a session goes and with which credential.
public struct ConnectionTarget: Sendable {
    public var name: String
    public var kind: ConnectionKind
    /// `host:port`, or a base URL for HTTP.
    public var target: String
    public var database: String?
    public var credential: Credential
    /// The target's public SSH host key (`ssh-ed25519 AAAA…`), checked on connect.
    public var hostKey: String?
    /// CA bundle to trust for the target (Kubernetes, TLS upstreams).
    public var caFile: String?
    /// Free-form options of the connection's config block that an adapter understands.
    public var options: [String: String]
    /// Whether masking rules name tables (`customers.ssn`), so the adapter must map table ids to names.
    public var needsTableNames = false
    /// Where SSH users may forward ports (empty: nowhere).
    public var portForwarding = ForwardPermission()

    public init(name: String, kind: ConnectionKind, target: String, database: String? = nil,
                credential: Credential = Credential(), hostKey: String? = nil, caFile: String? = nil,
                options: [String: String] = [:]) {
        self.name = name
        self.kind = kind
        self.target = target
        self.database = database
        self.credential = credential
        self.hostKey = hostKey
        self.caFile = caFile
        self.options = options
    }
}

/// What an adapter reports for a command, so rules can match it.
public struct Command: Sendable, Equatable {
    /// The text rules' `match` patterns run over: a SQL statement, a command line,
    /// `METHOD /path?query`, or `VERB RESOURCE[/SUB] NAMESPACE/NAME`.
    public var text: String
    /// Classes the adapter derived (`drop`, `delete_without_where`, `read`, `exec`, …).
    public var classes: [String]
    /// Other texts rules' `match` patterns also run over (a rule matches when it finds any of
    /// `text` and these): the canonical forms of a parsed shell line (see `ShellCommandLine`).
    public var forms: [String]

    public init(text: String, classes: [String] = [], forms: [String] = []) {
        self.text = text
        self.classes = classes
        self.forms = forms
    }
}

/// The outcome of ``GovernedSession/decide(_:)``.
public enum Decision: Sendable {
    case allow
    /// Refused; `message` is what the user sees.
    case block(message: String)
    /// Held until approvers decide; await the ticket's outcome.
    case review(ReviewTicket)
}

/// A held command: its review id, where to approve it, and its outcome when decided.
public struct ReviewTicket: Sendable {
    public var id: String
    /// A human hint such as `sluice reviews approve r-1a2b` or a console URL.
    public var approveHint: String
    private let wait: @Sendable () async -> ReviewOutcome
    private let withdrawal: @Sendable (String) async -> Void

    public init(id: String, approveHint: String, withdraw: @escaping @Sendable (String) async -> Void = { _ in },
                wait: @escaping @Sendable () async -> ReviewOutcome) {
        self.id = id
        self.approveHint = approveHint
        self.withdrawal = withdraw
        self.wait = wait
    }

    /// Files the review and suspends until it is approved, denied or times out.
    public func outcome() async -> ReviewOutcome { await wait() }

    /// Nobody waits for the decision any more (the client went away): the review is closed with
    /// `reason`, so approvers are not asked to decide a request that can no longer run.
    public func withdraw(reason: String) async { await withdrawal(reason) }
}

public enum ReviewOutcome: Sendable, Equatable {
    case approved(by: [String])
    case denied(by: String, reason: String)
    case timedOut
}

/// What is being masked.
public enum MaskTarget: Sendable, Hashable {
    /// A byte stream: terminal output, an HTTP body, exec output.
    case stream
    /// A database column (`table` may be nil for computed columns).
    case column(table: String?, name: String)
}

/// How to mask one target for this user.
public enum MaskingChoice: Sendable {
    /// The user's groups see this unmasked (e.g. `dpo`).
    case unmasked
    /// Scan with `engine`; for columns, `forced` masks the whole value with a style regardless of content.
    case masked(engine: MaskingEngine, forced: MaskStyle?)
}

/// One event of a session record (DESIGN.md: `i`, `o`, `m`, `r`).
public struct SessionEvent: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        /// Input the user sent.
        case input = "i"
        /// Output the user received — already masked.
        case output = "o"
        /// A marker: decisions, approvals, errors, masking counts.
        case marker = "m"
        /// A terminal resize: `COLSxROWS`.
        case resize = "r"
    }

    public var kind: Kind
    public var data: [UInt8]

    public init(_ kind: Kind, _ data: [UInt8]) {
        self.kind = kind
        self.data = data
    }

    public init(_ kind: Kind, text: String) {
        self.init(kind, Array(text.utf8))
    }
}

/// An error of the governor: a code and a message that is safe to show the user.
public struct GovernorError: Error, Sendable, CustomStringConvertible, Equatable {
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let unauthenticated = Code(rawValue: "unauthenticated")
        public static let forbidden = Code(rawValue: "forbidden")
        public static let unknownConnection = Code(rawValue: "unknown_connection")
        public static let wrongProtocol = Code(rawValue: "wrong_protocol")
        public static let unavailable = Code(rawValue: "unavailable")
        /// Too many failed logins from the source address or for the claimed user: try later.
        public static let throttled = Code(rawValue: "throttled")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
