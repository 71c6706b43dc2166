/// A marker in a session's record: what the gateway decided or saw at one point of a session —
/// never payload (no row values, no command output; names, codes, counts and sizes only).
///
/// Stored as the body of a ``SessionEvent/Kind/marker`` event: one flat JSON object whose first
/// key names the kind (`{"decision":"block","rule":2,…}`). ``SessionMarker/init(json:)`` reads
/// every shape this gateway has written, including those of earlier releases (a rule number or a
/// class list as a string); an object it does not know stays readable as ``other(_:)``.
public enum SessionMarker: Sendable, Equatable {
    public enum Verdict: String, Sendable, Equatable, CaseIterable {
        case block, review
    }

    public enum ReviewResult: String, Sendable, Equatable, CaseIterable {
        case approved, denied
        case timedOut = "timed_out"
    }

    public enum ForwardEvent: Sendable, Equatable {
        case opened
        case closed(bytesUp: Int, bytesDown: Int)
        case failed(String)
        case refused(String)
    }

    /// The policy blocked a command or held it for review (`rule` counts from 1).
    case decision(Verdict, rule: Int?, classes: [String], message: String? = nil, review: String? = nil)
    /// A held command's review was decided (or could not be filed: `error`).
    case reviewOutcome(review: String, ReviewResult, by: [String], error: String? = nil)
    /// One HTTP exchange relayed: the status and the sizes (`recordCut` when its record was capped).
    case exchange(status: Int, requestBytes: Int, responseBytes: Int, upstreamBytes: Int, recordCut: Bool)
    /// The gateway answered an HTTP request itself with an error status and code.
    case answered(status: Int, code: String)
    /// A remote command or shell ended with this status.
    case exitStatus(Int)
    /// The recorded output was cut at this many bytes (the user still received all of it, masked).
    case outputCut(atBytes: Int)
    /// Something failed in the session; `reason` is an error code or description, never payload.
    case error(String, reason: String? = nil, bytes: Int? = nil)
    /// The upstream could not be reached or failed.
    case upstreamError(String)
    /// The gateway refused to relay something (a message type, a body it cannot scan).
    case refused(String)
    /// A PostgreSQL fast-path function call was refused.
    case refusedFunctionCall(oid: Int)
    /// The upstream SSH host presented a key that does not match `host_key`.
    case hostKeyMismatch(presented: String)
    /// A COPY FROM STDIN ended.
    case copyIn(done: Bool)
    /// An HTTP connection was upgraded (WebSocket): the subprotocol, or `?`.
    case upgraded(String)
    /// A forwarded TCP connection (SSH `-L`) opened, closed, failed or was refused.
    case forward(destination: String, ForwardEvent)
    /// A file transfer (SFTP, SCP): file names and sizes, never contents.
    case transfer(kind: String, files: [String], bytesUp: Int, bytesDown: Int)
    /// The gateway ended the session (token expired, …).
    case ended(String)
    /// The session logs in to the target with a credential made for it (`ephemeral_role`: the
    /// role's name and validity; `certificate`: serial, key id, principals and validity). Never
    /// the secret itself.
    case credential(mode: String, details: [String: Value])
    /// Records of the session never reached the store from `lostRecords` on; the gateway stopped
    /// the session. Written by the gateway to close the gap, so `audit verify` reports it as a
    /// recording failure, not as tampering.
    case recordingFailed(reason: String, lostRecords: Int)
    /// A marker of a shape this version does not know, kept as its fields.
    case other([String: Value])

    /// A JSON value in a marker: markers are flat, so strings, integers, booleans and lists of strings.
    public enum Value: Sendable, Equatable {
        case string(String)
        case int(Int)
        case bool(Bool)
        case strings([String])

        var string: String? { if case .string(let value) = self { value } else { nil } }
        var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
        /// An integer, or a string that holds one (older records wrote rule numbers as strings).
        var int: Int? {
            switch self {
            case .int(let value): value
            case .string(let text): Int(text)
            default: nil
            }
        }
        /// A list, or a comma-separated string (older records).
        var strings: [String]? {
            switch self {
            case .strings(let values): values
            case .string(let text): text.isEmpty ? [] : text.split(separator: ",").map(String.init)
            default: nil
            }
        }
    }

    /// The key that starts a ``recordingFailed(reason:lostRecords:)`` marker.
    public static let recordingFailedKey = "recording_failed"

    // MARK: Fields

    /// The marker as ordered JSON fields: the first names the kind.
    public var fields: [(String, Value)] {
        switch self {
        case .decision(let verdict, let rule, let classes, let message, let review):
            var fields: [(String, Value)] = [("decision", .string(verdict.rawValue))]
            if let review { fields.append(("review", .string(review))) }
            if let rule { fields.append(("rule", .int(rule))) }
            fields.append(("classes", .strings(classes)))
            if let message { fields.append(("message", .string(message))) }
            return fields
        case .reviewOutcome(let review, let result, let by, let error):
            var fields: [(String, Value)] = [("outcome", .string(result.rawValue)), ("review", .string(review)), ("by", .strings(by))]
            if let error { fields.append(("error", .string(error))) }
            return fields
        case .exchange(let status, let requestBytes, let responseBytes, let upstreamBytes, let recordCut):
            var fields: [(String, Value)] = [("status", .int(status)), ("request_bytes", .int(requestBytes)),
                                             ("response_bytes", .int(responseBytes)), ("upstream_bytes", .int(upstreamBytes))]
            if recordCut { fields.append(("recorded", .string("cut"))) }
            return fields
        case .answered(let status, let code):
            return [("status", .int(status)), ("error", .string(code))]
        case .exitStatus(let status):
            return [("exit_status", .int(status))]
        case .outputCut(let bytes):
            return [("output_cut_at", .int(bytes))]
        case .error(let error, let reason, let bytes):
            var fields: [(String, Value)] = [("error", .string(error))]
            if let reason { fields.append(("reason", .string(reason))) }
            if let bytes { fields.append(("bytes", .int(bytes))) }
            return fields
        case .upstreamError(let reason):
            return [("upstream_error", .string(reason))]
        case .refused(let what):
            return [("refused", .string(what))]
        case .refusedFunctionCall(let oid):
            return [("refused", .string("function_call")), ("oid", .int(oid))]
        case .hostKeyMismatch(let presented):
            return [("refused", .string("host key mismatch")), ("presented", .string(presented))]
        case .copyIn(let done):
            return [("copy_in", .string(done ? "done" : "failed"))]
        case .upgraded(let subprotocol):
            return [("upgraded", .string(subprotocol))]
        case .forward(let destination, let event):
            var fields: [(String, Value)] = [("forward", .string(destination))]
            switch event {
            case .opened: fields.append(("opened", .bool(true)))
            case .closed(let up, let down): fields += [("closed", .bool(true)), ("bytes_up", .int(up)), ("bytes_down", .int(down))]
            case .failed(let reason): fields.append(("error", .string(reason)))
            case .refused(let reason): fields.append(("refused", .string(reason)))
            }
            return fields
        case .transfer(let kind, let files, let up, let down):
            return [("transfer", .string(kind)), ("files", .strings(files)), ("bytes_up", .int(up)), ("bytes_down", .int(down))]
        case .ended(let reason):
            return [("ended", .string(reason))]
        case .credential(let mode, let details):
            return [("credential", .string(mode))] + details.filter { $0.key != "credential" }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        case .recordingFailed(let reason, let lost):
            return [(Self.recordingFailedKey, .string(reason)), ("lost_records", .int(lost))]
        case .other(let values):
            return values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
    }

    /// The marker read back from its fields (any order).
    public init(fields values: [String: Value]) {
        func string(_ key: String) -> String? { values[key]?.string }
        func int(_ key: String) -> Int? { values[key]?.int }
        if let decision = string("decision"), let verdict = Verdict(rawValue: decision) {
            self = .decision(verdict, rule: int("rule"), classes: values["classes"]?.strings ?? [],
                             message: string("message"), review: string("review"))
        } else if let outcome = string("outcome"), let result = ReviewResult(rawValue: outcome) {
            self = .reviewOutcome(review: string("review") ?? "", result, by: values["by"]?.strings ?? [], error: string("error"))
        } else if let destination = string("forward") {
            if values["opened"]?.bool == true {
                self = .forward(destination: destination, .opened)
            } else if values["closed"]?.bool == true {
                self = .forward(destination: destination, .closed(bytesUp: int("bytes_up") ?? 0, bytesDown: int("bytes_down") ?? 0))
            } else if let reason = string("refused") {
                self = .forward(destination: destination, .refused(reason))
            } else {
                self = .forward(destination: destination, .failed(string("error") ?? ""))
            }
        } else if let status = int("status") {
            if let code = string("error") {
                self = .answered(status: status, code: code)
            } else {
                self = .exchange(status: status, requestBytes: int("request_bytes") ?? 0, responseBytes: int("response_bytes") ?? 0,
                                 upstreamBytes: int("upstream_bytes") ?? 0, recordCut: values["recorded"] != nil)
            }
        } else if let status = int("exit_status") {
            self = .exitStatus(status)
        } else if let bytes = int("output_cut_at") {
            self = .outputCut(atBytes: bytes)
        } else if let recorded = string("recorded"), recorded.hasPrefix("output cut at "),
                  let bytes = Int(recorded.dropFirst("output cut at ".count).prefix { $0.isNumber }) {
            self = .outputCut(atBytes: bytes)
        } else if let reason = string(Self.recordingFailedKey) {
            self = .recordingFailed(reason: reason, lostRecords: int("lost_records") ?? 0)
        } else if let error = string("error") {
            self = .error(error, reason: string("reason"), bytes: int("bytes"))
        } else if let reason = string("upstream_error") {
            self = .upstreamError(reason)
        } else if let refused = string("refused") {
            if refused == "function_call", let oid = int("oid") {
                self = .refusedFunctionCall(oid: oid)
            } else if refused == "host key mismatch", let presented = string("presented") {
                self = .hostKeyMismatch(presented: presented)
            } else {
                self = .refused(refused)
            }
        } else if let copy = string("copy_in") {
            self = .copyIn(done: copy == "done")
        } else if let subprotocol = string("upgraded") {
            self = .upgraded(subprotocol)
        } else if let kind = string("transfer") {
            self = .transfer(kind: kind, files: values["files"]?.strings ?? [], bytesUp: int("bytes_up") ?? 0, bytesDown: int("bytes_down") ?? 0)
        } else if let reason = string("ended") {
            self = .ended(reason)
        } else if let mode = string("credential") {
            self = .credential(mode: mode, details: values.filter { $0.key != "credential" })
        } else {
            self = .other(values)
        }
    }

    // MARK: JSON

    /// The marker as the compact JSON object stored in the record.
    public var json: [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (index, (key, value)) in fields.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            Self.appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            switch value {
            case .string(let text): Self.appendString(text, to: &out)
            case .int(let number): out += Array(String(number).utf8)
            case .bool(let flag): out += Array((flag ? "true" : "false").utf8)
            case .strings(let list):
                out.append(UInt8(ascii: "["))
                for (position, item) in list.enumerated() {
                    if position > 0 { out.append(UInt8(ascii: ",")) }
                    Self.appendString(item, to: &out)
                }
                out.append(UInt8(ascii: "]"))
            }
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    private static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        out += Array(JSONText.escaped(text).utf8)
        out.append(UInt8(ascii: "\""))
    }

    /// Reads a stored marker; nil when `json` is not one flat JSON object of strings, integers,
    /// booleans and lists of strings (a damaged record: the console shows it as text).
    public init?(json: [UInt8]) {
        var parser = FlatJSONParser(json)
        guard let values = parser.object() else { return nil }
        self.init(fields: values)
    }

    /// The event that records this marker.
    public var event: SessionEvent { SessionEvent(.marker, json) }

    // MARK: Wording

    /// One line for people: the console's timelines and `sessions replay`.
    public var summary: String {
        switch self {
        case .decision(let verdict, let rule, let classes, let message, let review):
            var line = verdict == .block ? "blocked" : "held for review \(review ?? "")"
            if let rule { line += " by rule \(rule)" }
            if !classes.isEmpty { line += " (\(classes.joined(separator: ", ")))" }
            if let message, verdict == .block { line += ": \(message)" }
            return line
        case .reviewOutcome(let review, let result, let by, let error):
            var line = "review \(review) \(result.rawValue.replacingOccurrences(of: "_", with: " "))"
            if !by.isEmpty { line += " by \(by.joined(separator: ", "))" }
            if let error { line += " (\(error))" }
            return line
        case .exchange(let status, let requestBytes, let responseBytes, _, let cut):
            return "\(status): \(requestBytes) B in, \(responseBytes) B out" + (cut ? " (record cut)" : "")
        case .answered(let status, let code):
            return "\(status) from the gateway: \(code)"
        case .exitStatus(let status):
            return "exit status \(status)"
        case .outputCut(let bytes):
            return "recorded output cut at \(bytes) bytes"
        case .error(let error, let reason, let bytes):
            return "error: \(error)" + (reason.map { " (\($0))" } ?? "") + (bytes.map { ", \($0) bytes" } ?? "")
        case .upstreamError(let reason):
            return "upstream error: \(reason)"
        case .refused(let what):
            return "refused: \(what)"
        case .refusedFunctionCall(let oid):
            return "refused: function call (oid \(oid))"
        case .hostKeyMismatch(let presented):
            return "refused: the upstream host key (\(presented)) does not match host_key"
        case .copyIn(let done):
            return "copy in " + (done ? "done" : "failed")
        case .upgraded(let subprotocol):
            return "upgraded (\(subprotocol))"
        case .forward(let destination, let event):
            switch event {
            case .opened: return "forward to \(destination) opened"
            case .closed(let up, let down): return "forward to \(destination) closed: \(up) B up, \(down) B down"
            case .failed(let reason): return "forward to \(destination) failed: \(reason)"
            case .refused(let reason): return "forward to \(destination) refused: \(reason)"
            }
        case .transfer(let kind, let files, let up, let down):
            let names = files.prefix(5).joined(separator: ", ") + (files.count > 5 ? ", …" : "")
            return "\(kind): \(files.count) file\(files.count == 1 ? "" : "s") (\(names)), \(up) B up, \(down) B down"
        case .ended(let reason):
            return "ended: \(reason)"
        case .credential(let mode, let details):
            let shown = details.sorted { $0.key < $1.key }.map { key, value -> String in
                switch value {
                case .string(let text): "\(key) \(text)"
                case .int(let number): "\(key) \(number)"
                case .bool(let flag): "\(key) \(flag)"
                case .strings(let list): "\(key) \(list.joined(separator: ","))"
                }
            }
            return "credential \(mode.replacingOccurrences(of: "_", with: " ")): " + shown.joined(separator: ", ")
        case .recordingFailed(let reason, let lost):
            return "recording failed (\(reason)): \(lost) record\(lost == 1 ? "" : "s") lost; the session was stopped"
        case .other(let values):
            return String(decoding: SessionMarker.other(values).json, as: UTF8.self)
        }
    }
}

extension GovernedSession {
    /// Records a marker (the default: the marker's event, nothing else).
    public func mark(_ marker: SessionMarker) {
        record(marker.event)
    }
}

/// A parser for the one JSON shape markers use: a flat object of strings, integers, booleans and
/// lists of strings. Bounded: depth one, at most 256 keys, 64 KiB.
struct FlatJSONParser {
    private let bytes: [UInt8]
    private var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func object() -> [String: SessionMarker.Value]? {
        guard bytes.count <= 65_536 else { return nil }
        skipSpace()
        guard take(UInt8(ascii: "{")) else { return nil }
        var values: [String: SessionMarker.Value] = [:]
        skipSpace()
        if take(UInt8(ascii: "}")) { return finished(values) }
        while values.count < 256 {
            skipSpace()
            guard let key = string() else { return nil }
            skipSpace()
            guard take(UInt8(ascii: ":")) else { return nil }
            skipSpace()
            guard let value = value() else { return nil }
            values[key] = value
            skipSpace()
            if take(UInt8(ascii: "}")) { return finished(values) }
            guard take(UInt8(ascii: ",")) else { return nil }
        }
        return nil
    }

    private mutating func finished(_ values: [String: SessionMarker.Value]) -> [String: SessionMarker.Value]? {
        skipSpace()
        return index == bytes.count ? values : nil
    }

    private mutating func value() -> SessionMarker.Value? {
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "\""):
            return string().map { .string($0) }
        case UInt8(ascii: "["):
            index += 1
            var list: [String] = []
            skipSpace()
            if take(UInt8(ascii: "]")) { return .strings(list) }
            while list.count < 10_000 {
                skipSpace()
                guard let item = string() else { return nil }
                list.append(item)
                skipSpace()
                if take(UInt8(ascii: "]")) { return .strings(list) }
                guard take(UInt8(ascii: ",")) else { return nil }
            }
            return nil
        case UInt8(ascii: "t"):
            return literal("true") ? .bool(true) : nil
        case UInt8(ascii: "f"):
            return literal("false") ? .bool(false) : nil
        default:
            let start = index
            if take(UInt8(ascii: "-")) {}
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9"), index - start < 20 { index += 1 }
            return Int(String(decoding: bytes[start..<index], as: UTF8.self)).map { .int($0) }
        }
    }

    private mutating func string() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        var out: [UInt8] = []
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(validating: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { return nil }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "n"): out.append(10)
                case UInt8(ascii: "r"): out.append(13)
                case UInt8(ascii: "t"): out.append(9)
                case UInt8(ascii: "b"): out.append(8)
                case UInt8(ascii: "f"): out.append(12)
                case UInt8(ascii: "u"):
                    guard let unit = hex4() else { return nil }
                    var scalarValue = unit
                    if (0xD800..<0xDC00).contains(unit) {
                        guard take(UInt8(ascii: "\\")), take(UInt8(ascii: "u")), let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                        scalarValue = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(scalarValue) else { return nil }
                    out += Array(String(Character(scalar)).utf8)
                default:
                    return nil
                }
            default:
                guard byte >= 0x20 else { return nil }
                out.append(byte)
            }
        }
        return nil
    }

    private mutating func hex4() -> UInt32? {
        guard index + 4 <= bytes.count, let value = UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16) else { return nil }
        index += 4
        return value
    }

    private mutating func literal(_ word: String) -> Bool {
        let expected = Array(word.utf8)
        guard bytes.count - index >= expected.count, Array(bytes[index..<index + expected.count]) == expected else { return false }
        index += expected.count
        return true
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private mutating func skipSpace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }
}

extension SessionMarker: Codable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Encodes the same flat object as ``json`` (for JSON views of a session).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (key, value) in fields {
            switch value {
            case .string(let text): try container.encode(text, forKey: Key(stringValue: key))
            case .int(let number): try container.encode(number, forKey: Key(stringValue: key))
            case .bool(let flag): try container.encode(flag, forKey: Key(stringValue: key))
            case .strings(let list): try container.encode(list, forKey: Key(stringValue: key))
            }
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        var values: [String: Value] = [:]
        for key in container.allKeys {
            if let flag = try? container.decode(Bool.self, forKey: key) {
                values[key.stringValue] = .bool(flag)
            } else if let number = try? container.decode(Int.self, forKey: key) {
                values[key.stringValue] = .int(number)
            } else if let text = try? container.decode(String.self, forKey: key) {
                values[key.stringValue] = .string(text)
            } else {
                values[key.stringValue] = .strings(try container.decode([String].self, forKey: key))
            }
        }
        self.init(fields: values)
    }
}
