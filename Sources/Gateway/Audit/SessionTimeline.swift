import Adapters

/// What happened in one session, read back from its record: the statements (Postgres) with the
/// results the user saw, the requests (HTTP, Kubernetes) with their status and sizes, the
/// decisions (blocked, held, who decided the review) and the other markers (exit status,
/// forwards, transfers, errors). The console's session page and `sluice sessions replay` both
/// read records through it.
///
/// Bounded whatever the record holds: at most ``Limits/entries`` of each list, texts cut at
/// ``Limits/text`` characters and result previews at ``Limits/preview``.
public struct SessionTimeline: Sendable {
    public struct Limits: Sendable {
        public var entries = 5000
        public var text = 2000
        public var preview = 1500
        public var markersPerStatement = 5
        public init() {}
    }

    /// A statement a user sent and what came back (the masked rows, capped, and the footer).
    public struct Statement: Sendable, Equatable {
        /// Microseconds since the session started.
        public var at: Int64
        public var text: String
        public var result: String = ""
        public var markers: [SessionMarker] = []
    }

    /// An HTTP or Kubernetes API request and its answer.
    public struct Request: Sendable, Equatable {
        public var at: Int64
        public var line: String
        public var status: Int?
        /// Bytes of the request body and of the (masked) response body, when relayed.
        public var sizes: (request: Int, response: Int)?

        public static func == (lhs: Request, rhs: Request) -> Bool {
            lhs.at == rhs.at && lhs.line == rhs.line && lhs.status == rhs.status
                && lhs.sizes?.request == rhs.sizes?.request && lhs.sizes?.response == rhs.sizes?.response
        }
    }

    /// A decision marker and the command it was about (the last input before it).
    public struct Decision: Sendable, Equatable {
        public var at: Int64
        public var marker: SessionMarker
        public var command: String
    }

    /// Any other marker, in order.
    public struct Note: Sendable, Equatable {
        public var at: Int64
        public var marker: SessionMarker
    }

    public let kind: String
    public let limits: Limits
    public private(set) var statements: [Statement] = []
    public private(set) var requests: [Request] = []
    public private(set) var decisions: [Decision] = []
    public private(set) var notes: [Note] = []
    /// Markers that could not be read (a damaged record): shown as text, counted here.
    public private(set) var unreadableMarkers = 0
    private var lastInput: String?

    /// `kind` is the session's protocol (`postgres`, `ssh`, `http`, `kubernetes`).
    public init(kind: String, limits: Limits = Limits()) {
        self.kind = kind
        self.limits = limits
    }

    public init(kind: String, events: some Sequence<StoredEvent>, limits: Limits = Limits()) {
        self.init(kind: kind, limits: limits)
        for event in events { add(event) }
    }

    private var isPostgres: Bool { kind == ConnectionKind.postgres.rawValue }
    private var isRequests: Bool { kind == ConnectionKind.http.rawValue || kind == ConnectionKind.kubernetes.rawValue }

    /// Adds the next event of the record.
    public mutating func add(_ event: StoredEvent) {
        switch event.kind {
        case SessionEvent.Kind.input.rawValue:
            let text = String(String(decoding: event.data, as: UTF8.self).prefix(limits.text))
            lastInput = text
            if isPostgres {
                append(Statement(at: event.offset, text: text), to: &statements)
            } else if isRequests, let request = Self.requestLine(text) {
                append(Request(at: event.offset, line: request), to: &requests)
            }
        case SessionEvent.Kind.output.rawValue:
            guard isPostgres, !statements.isEmpty else { return }
            let room = limits.preview - statements[statements.count - 1].result.count
            if room > 0 { statements[statements.count - 1].result += String(decoding: event.data, as: UTF8.self).prefix(room) }
        case SessionEvent.Kind.marker.rawValue:
            guard let marker = SessionMarker(json: event.data) else {
                unreadableMarkers += 1
                return
            }
            add(marker, at: event.offset)
        default:
            break
        }
    }

    private mutating func add(_ marker: SessionMarker, at: Int64) {
        switch marker {
        case .decision:
            append(Decision(at: at, marker: marker, command: lastInput ?? ""), to: &decisions)
        case .reviewOutcome(let review, _, _, _):
            append(Decision(at: at, marker: marker, command: "review " + review), to: &decisions)
        case .exchange(let status, let requestBytes, let responseBytes, _, _) where !requests.isEmpty:
            requests[requests.count - 1].status = status
            requests[requests.count - 1].sizes = (requestBytes, responseBytes)
        case .answered(let status, _) where !requests.isEmpty:
            requests[requests.count - 1].status = status
        default:
            if isPostgres, !statements.isEmpty {
                if statements[statements.count - 1].markers.count < limits.markersPerStatement {
                    statements[statements.count - 1].markers.append(marker)
                }
            } else {
                append(Note(at: at, marker: marker), to: &notes)
            }
        }
    }

    private func append<Entry>(_ entry: Entry, to list: inout [Entry]) {
        if list.count < limits.entries { list.append(entry) }
    }

    /// `GET /path`: the request line an HTTP or Kubernetes session records as input (its other
    /// inputs are request bodies and exec keystrokes).
    static func requestLine(_ text: String) -> String? {
        guard let space = text.firstIndex(of: " "), text[..<space].allSatisfy({ $0.isUppercase }),
              text[text.index(after: space)...].hasPrefix("/") else { return nil }
        return text
    }

    // MARK: Replay

    /// Whether a session is a terminal (its output is a byte stream to replay as it was sent):
    /// every SSH session, and a Kubernetes session whose output is not JSON (an exec or attach).
    public static func isTerminal(kind: String, events: some Sequence<StoredEvent>) -> Bool {
        kind == ConnectionKind.ssh.rawValue
            || (kind == ConnectionKind.kubernetes.rawValue
                && events.contains { $0.kind == SessionEvent.Kind.output.rawValue && $0.data.first != UInt8(ascii: "{") })
    }

    /// What `sluice sessions replay` writes for one event: a terminal session's output as it was
    /// sent; a statement or request line and its result on lines of their own; markers as dim
    /// comment lines. Empty for events that show nothing (keystrokes echoed by the terminal,
    /// resizes). `terminal` says whether the session is a terminal (SSH, Kubernetes exec).
    public static func replay(_ event: StoredEvent, kind: String, terminal: Bool) -> [UInt8] {
        let newline: [UInt8] = terminal ? [13, 10] : [10]
        switch event.kind {
        case SessionEvent.Kind.output.rawValue:
            if terminal { return event.data }
            var out = event.data
            if out.last != 10 { out += newline }
            return out
        case SessionEvent.Kind.input.rawValue:
            guard !terminal else { return [] }
            let text = String(decoding: event.data, as: UTF8.self)
            if kind == ConnectionKind.postgres.rawValue {
                return Array("\u{1B}[1m=> \(text)\u{1B}[0m".utf8) + newline
            }
            return requestLine(text).map { Array("\u{1B}[1m\($0)\u{1B}[0m".utf8) + newline } ?? []
        case SessionEvent.Kind.marker.rawValue:
            let line = SessionMarker(json: event.data)?.summary ?? "unreadable marker (\(event.data.count) bytes)"
            return newline + Array("\u{1B}[2m# \(line)\u{1B}[0m".utf8) + newline
        default:
            return []
        }
    }
}
