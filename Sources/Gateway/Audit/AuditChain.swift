import Adapters
import Crypto
import Foundation

/// The hash chain and seal formats (version 1). Every field is length-prefixed so no two
/// different records encode to the same bytes.
public enum AuditChain {
    private struct Encoder {
        var bytes: [UInt8] = []
        mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }
        mutating func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }
        mutating func field(_ data: [UInt8]) { u64(UInt64(data.count)); bytes.append(contentsOf: data) }
        mutating func field(_ text: String) { field(Array(text.utf8)) }
    }

    static func sha256(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }

    /// The hash a session's first event chains from: binds the chain to the session's metadata,
    /// so editing who, where or when breaks every event after it.
    public static func genesis(_ session: SessionRecord) -> [UInt8] {
        var encoder = Encoder()
        encoder.field("sluice/session/v1")
        encoder.field(session.id)
        encoder.field(session.user)
        encoder.field(session.groups.joined(separator: ","))
        encoder.field(session.connection)
        encoder.field(session.kind)
        encoder.field(session.peer)
        encoder.i64(session.startedAt)
        return sha256(encoder.bytes)
    }

    /// SHA-256(previous hash ‖ record).
    public static func eventHash(previous: [UInt8], seq: Int, offset: Int64, kind: String, data: [UInt8]) -> [UInt8] {
        var encoder = Encoder()
        encoder.bytes.reserveCapacity(previous.count + data.count + 48)
        encoder.bytes.append(contentsOf: previous)
        encoder.u64(UInt64(seq))
        encoder.i64(offset)
        encoder.field(kind)
        encoder.field(data)
        return sha256(encoder.bytes)
    }

    /// What the seal signs: the session, how many events, the last hash, the end and its reason.
    public static func sealMessage(_ session: SessionRecord) -> [UInt8] {
        var encoder = Encoder()
        encoder.field("sluice/seal/v1")
        encoder.field(genesis(session))
        encoder.field(session.id)
        encoder.u64(UInt64(session.eventCount))
        encoder.field(session.lastHash ?? [])
        encoder.i64(session.endedAt ?? 0)
        encoder.field(session.endReason ?? "")
        encoder.field(countersText(session.counters))
        return encoder.bytes
    }

    static func countersText(_ counters: [String: Int]) -> String {
        counters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    /// The first hash of the control chain, bound to the gateway's public key.
    public static func controlGenesis(publicKey: Curve25519.Signing.PublicKey) -> [UInt8] {
        var encoder = Encoder()
        encoder.field("sluice/control/v1")
        encoder.field(Array(publicKey.rawRepresentation))
        return sha256(encoder.bytes)
    }

    public static func controlHash(previous: [UInt8], seq: Int, time: Int64, kind: String, actor: String, detail: String) -> [UInt8] {
        var encoder = Encoder()
        encoder.bytes.append(contentsOf: previous)
        encoder.u64(UInt64(seq))
        encoder.i64(time)
        encoder.field(kind)
        encoder.field(actor)
        encoder.field(detail)
        return sha256(encoder.bytes)
    }
}

/// What `sluice audit verify` found.
public struct AuditReport: Sendable, Codable, Equatable {
    public struct Problem: Sendable, Codable, Equatable, CustomStringConvertible {
        /// `session` or `control`.
        public var chain: String
        public var session: String?
        /// The first broken record's sequence number.
        public var seq: Int?
        public var reason: String

        public var description: String {
            var location = chain == "control" ? "control chain" : "session \(session ?? "?")"
            if let seq { location += " record #\(seq)" }
            return "\(location): \(reason)"
        }
    }

    public var sessionsChecked = 0
    public var sessionsSealed = 0
    /// Sessions whose chain is intact but that never got a seal (the gateway stopped abruptly, or still open).
    public var unsealed: [String] = []
    /// Sessions whose record has a gap the gateway recorded itself: a write failed (full disk,
    /// lost store), the session was stopped, and a `recording_failed` marker closes the gap. Not
    /// tampering: the marker and the seal after it verify.
    public var recordingFailed: [String] = []
    public var eventsChecked = 0
    public var controlEventsChecked = 0
    public var problems: [Problem] = []

    public var ok: Bool { problems.isEmpty }

    enum CodingKeys: String, CodingKey {
        case sessionsChecked = "sessions_checked", sessionsSealed = "sessions_sealed", unsealed
        case recordingFailed = "recording_failed"
        case eventsChecked = "events_checked", controlEventsChecked = "control_events_checked", problems, ok
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        sessionsChecked = try container.decode(Int.self, forKey: .sessionsChecked)
        sessionsSealed = try container.decode(Int.self, forKey: .sessionsSealed)
        unsealed = try container.decode([String].self, forKey: .unsealed)
        recordingFailed = try container.decodeIfPresent([String].self, forKey: .recordingFailed) ?? []
        eventsChecked = try container.decode(Int.self, forKey: .eventsChecked)
        controlEventsChecked = try container.decode(Int.self, forKey: .controlEventsChecked)
        problems = try container.decode([Problem].self, forKey: .problems)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ok, forKey: .ok)
        try container.encode(sessionsChecked, forKey: .sessionsChecked)
        try container.encode(sessionsSealed, forKey: .sessionsSealed)
        try container.encode(unsealed, forKey: .unsealed)
        try container.encode(recordingFailed, forKey: .recordingFailed)
        try container.encode(eventsChecked, forKey: .eventsChecked)
        try container.encode(controlEventsChecked, forKey: .controlEventsChecked)
        try container.encode(problems, forKey: .problems)
    }
}

/// Recomputes every chain and signature with only the public key.
public struct AuditVerifier: Sendable {
    public let store: any RecordReader
    public let publicKey: Curve25519.Signing.PublicKey

    public init(store: any RecordReader, publicKey: Curve25519.Signing.PublicKey) {
        self.store = store
        self.publicKey = publicKey
    }

    /// How a ``SessionMarker/recordingFailed(reason:lostRecords:)`` marker starts: a cheap test
    /// before the marker is read.
    private static let recordingFailedPrefix = Array(#"{""#.utf8) + Array(SessionMarker.recordingFailedKey.utf8)

    public func verify(sessionIDs: [String]? = nil) throws -> AuditReport {
        var report = AuditReport()
        for id in try sessionIDs ?? store.allSessionIDs() {
            try verifySession(id: id, into: &report)
        }
        if sessionIDs == nil { try verifyControl(into: &report) }
        return report
    }

    public func verifySession(id: String, into report: inout AuditReport) throws {
        guard let session = try store.session(id: id) else {
            report.problems.append(.init(chain: "session", session: id, seq: nil, reason: "session is missing"))
            return
        }
        report.sessionsChecked += 1
        var previous = AuditChain.genesis(session)
        var expectedSeq = 0
        var problem: AuditReport.Problem?
        while problem == nil {
            let page = try store.events(session: id, after: expectedSeq - 1, limit: 1000)
            if page.isEmpty { break }
            for event in page {
                if event.seq != expectedSeq {
                    problem = .init(chain: "session", session: id, seq: expectedSeq,
                                    reason: "record missing (next stored record is #\(event.seq))")
                    break
                }
                let hash = AuditChain.eventHash(previous: previous, seq: event.seq, offset: event.offset, kind: event.kind, data: event.data)
                if hash != event.hash {
                    problem = .init(chain: "session", session: id, seq: event.seq,
                                    reason: expectedSeq == 0
                                        ? "hash mismatch: the record or the session's metadata was altered"
                                        : "hash mismatch: the record was altered, reordered or one before it was removed")
                    break
                }
                previous = hash
                expectedSeq += 1
                report.eventsChecked += 1
                if event.kind == SessionEvent.Kind.marker.rawValue,
                   event.data.starts(with: Self.recordingFailedPrefix),
                   case .recordingFailed = SessionMarker(json: event.data),
                   report.recordingFailed.last != id {
                    report.recordingFailed.append(id)
                }
            }
        }
        if let problem {
            report.problems.append(problem)
            return
        }
        guard let seal = session.seal else {
            report.unsealed.append(id)
            return
        }
        if session.eventCount != expectedSeq {
            report.problems.append(.init(chain: "session", session: id, seq: expectedSeq,
                                         reason: "seal covers \(session.eventCount) records but \(expectedSeq) are stored"))
            return
        }
        if session.lastHash != previous {
            report.problems.append(.init(chain: "session", session: id, seq: max(0, expectedSeq - 1),
                                         reason: "last hash differs from the sealed one"))
            return
        }
        guard let signature = Data(base64Encoded: seal),
              publicKey.isValidSignature(signature, for: AuditChain.sealMessage(session)) else {
            report.problems.append(.init(chain: "session", session: id, seq: nil,
                                         reason: "seal signature invalid (metadata, counts or end altered, or another key)"))
            return
        }
        report.sessionsSealed += 1
    }

    func verifyControl(into report: inout AuditReport) throws {
        var previous = AuditChain.controlGenesis(publicKey: publicKey)
        var expectedSeq = 0
        while true {
            let page = try store.controlEvents(after: expectedSeq - 1, limit: 1000)
            if page.isEmpty { return }
            for event in page {
                if event.seq != expectedSeq {
                    report.problems.append(.init(chain: "control", session: nil, seq: expectedSeq,
                                                 reason: "record missing (next stored record is #\(event.seq))"))
                    return
                }
                let hash = AuditChain.controlHash(previous: previous, seq: event.seq, time: event.time, kind: event.kind,
                                                  actor: event.actor, detail: event.detail)
                if hash != event.hash {
                    report.problems.append(.init(chain: "control", session: nil, seq: event.seq,
                                                 reason: "hash mismatch: the record was altered, reordered or one before it was removed"))
                    return
                }
                if !publicKey.isValidSignature(event.signature, for: hash) {
                    report.problems.append(.init(chain: "control", session: nil, seq: event.seq, reason: "signature invalid"))
                    return
                }
                previous = hash
                expectedSeq += 1
                report.controlEventsChecked += 1
            }
        }
    }
}
