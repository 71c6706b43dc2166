import Foundation

/// A Kubernetes protocol violation or limit: a code and lengths, never payload.
package typealias KubernetesProtocolError = ProtocolViolation<KubernetesViolation>

package enum KubernetesViolation: String, Sendable {
    /// A stream message without even its stream byte.
    case empty = "k8s_empty_message"
    /// A resize message that is not `{"Width":W,"Height":H}` with sizes in 0…65535.
    case malformedResize = "k8s_malformed_resize"
    /// A v5 close message that is not exactly `[255, STREAM]`.
    case malformedClose = "k8s_malformed_close"
    /// A status message over ``ExecStatus/maximumLength``.
    case statusTooLarge = "k8s_status_too_large"
    /// A status message that is not a JSON object.
    case malformedStatus = "k8s_malformed_status"
    /// A body over the caller's limit.
    case bodyTooLarge = "k8s_body_too_large"
    /// A body that is not JSON.
    case notJSON = "k8s_not_json"
}

/// The WebSocket subprotocols of `kubectl exec` / `attach` the gateway speaks.
package enum ExecSubprotocol: String, Sendable, CaseIterable {
    /// v4 plus the close message `[255, STREAM]` (Kubernetes 1.29+).
    case v5 = "v5.channel.k8s.io"
    case v4 = "v4.channel.k8s.io"

    /// The protocol to accept from a `Sec-WebSocket-Protocol` header (comma-separated; several
    /// header lines joined with commas): v5 when offered, else v4, else nil.
    package static func choose(offered: String) -> ExecSubprotocol? {
        var sawV4 = false
        for token in offered.split(separator: ",") {
            let name = token.trimmingCharacters(in: .whitespaces)
            if name == v5.rawValue { return .v5 }
            if name == v4.rawValue { sawV4 = true }
        }
        return sawV4 ? .v4 : nil
    }
}

/// One binary WebSocket message of the exec/attach channel protocol: the first byte names the
/// stream (0 stdin, 1 stdout, 2 stderr, 3 error status, 4 resize), the rest is its data. In v5,
/// `[255, STREAM]` closes a stream (kubectl sends `[255, 0]` at the end of stdin).
package enum ExecStreamMessage: Equatable, Sendable {
    case stdin([UInt8])
    case stdout([UInt8])
    case stderr([UInt8])
    /// A v1 `Status` JSON, sent once at the end (see ``ExecStatus``).
    case status([UInt8])
    case resize(width: Int, height: Int)
    /// v5 only: the stream is done.
    case close(stream: UInt8)
    case unknown(stream: UInt8, [UInt8])

    package static let stdinStream: UInt8 = 0
    package static let stdoutStream: UInt8 = 1
    package static let stderrStream: UInt8 = 2
    package static let statusStream: UInt8 = 3
    package static let resizeStream: UInt8 = 4
    package static let closeMarker: UInt8 = 255
    /// The longest resize message read (`{"Width":65535,"Height":65535}` is 30 bytes).
    package static let maximumResizeLength = 1024

    /// Decodes one message.
    ///
    /// - Throws: ``KubernetesProtocolError`` `empty` for an empty message, `malformedResize` or
    ///   `malformedClose` (the error carries lengths only).
    package init(message: [UInt8], protocol subprotocol: ExecSubprotocol) throws(KubernetesProtocolError) {
        guard let stream = message.first else { throw KubernetesProtocolError(.empty, "empty stream message") }
        let data = message.dropFirst()
        switch stream {
        case Self.stdinStream: self = .stdin(Array(data))
        case Self.stdoutStream: self = .stdout(Array(data))
        case Self.stderrStream: self = .stderr(Array(data))
        case Self.statusStream: self = .status(Array(data))
        case Self.resizeStream:
            guard let (width, height) = Self.parseResize(data) else {
                throw KubernetesProtocolError(.malformedResize, "resize message of \(data.count) bytes")
            }
            self = .resize(width: width, height: height)
        case Self.closeMarker where subprotocol == .v5:
            guard data.count == 1, let closed = data.first else {
                throw KubernetesProtocolError(.malformedClose, "close message of \(message.count) bytes")
            }
            self = .close(stream: closed)
        default:
            self = .unknown(stream: stream, Array(data))
        }
    }

    /// The message's bytes. v4 has no close message: `.close` encodes to `[]` there (send nothing).
    package func encoded(protocol subprotocol: ExecSubprotocol) -> [UInt8] {
        switch self {
        case .stdin(let data): [Self.stdinStream] + data
        case .stdout(let data): [Self.stdoutStream] + data
        case .stderr(let data): [Self.stderrStream] + data
        case .status(let data): [Self.statusStream] + data
        case .resize(let width, let height): [Self.resizeStream] + Array("{\"Width\":\(width),\"Height\":\(height)}".utf8)
        case .close(let stream): subprotocol == .v5 ? [Self.closeMarker, stream] : []
        case .unknown(let stream, let data): [stream] + data
        }
    }

    /// `{"Width":W,"Height":H}` as Go's `encoding/json` reads it into `TerminalSize` (keys
    /// case-insensitive, the last duplicate wins), restricted to integer members; both sizes are
    /// required and must fit in 16 bits.
    static func parseResize(_ bytes: ArraySlice<UInt8>) -> (Int, Int)? {
        guard bytes.count <= maximumResizeLength else { return nil }
        var index = bytes.startIndex
        func skipSpace() {
            while index < bytes.endIndex, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[index]) { index += 1 }
        }
        func take(_ byte: UInt8) -> Bool {
            skipSpace()
            guard index < bytes.endIndex, bytes[index] == byte else { return false }
            index += 1
            return true
        }
        var width: Int?
        var height: Int?
        guard take(UInt8(ascii: "{")) else { return nil }
        if !take(UInt8(ascii: "}")) {
            while true {
                guard take(UInt8(ascii: "\"")) else { return nil }
                let keyStart = index
                while index < bytes.endIndex, bytes[index] != UInt8(ascii: "\"") {
                    guard bytes[index] != UInt8(ascii: "\\"), bytes[index] >= 0x20 else { return nil }
                    index += 1
                }
                guard index < bytes.endIndex else { return nil }
                let key = String(decoding: bytes[keyStart..<index], as: UTF8.self).lowercased()
                index += 1
                guard take(UInt8(ascii: ":")) else { return nil }
                skipSpace()
                let digitsStart = index
                var value = 0
                while index < bytes.endIndex, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                    value = value * 10 + Int(bytes[index] - UInt8(ascii: "0"))
                    guard value <= Int(UInt16.max) else { return nil }
                    index += 1
                }
                let digits = index - digitsStart
                guard digits > 0, digits == 1 || bytes[digitsStart] != UInt8(ascii: "0") else { return nil }
                if key == "width" { width = value } else if key == "height" { height = value }
                if take(UInt8(ascii: ",")) { continue }
                guard take(UInt8(ascii: "}")) else { return nil }
                break
            }
        }
        skipSpace()
        guard index == bytes.endIndex, let width, let height else { return nil }
        return (width, height)
    }
}

/// The v1 `Status` the API server sends on the error stream when an exec ends.
package struct ExecStatus: Sendable, Equatable {
    /// `status` is `Success`.
    package var success: Bool
    /// The command's exit code: 0 on success, the `ExitCode` cause on a non-zero exit, nil when
    /// the status says nothing about it (the exec itself failed).
    package var exitCode: Int?
    package var message: String?
    package var reason: String?

    /// The longest status read.
    package static let maximumLength = 64 * 1024

    package init(success: Bool, exitCode: Int? = nil, message: String? = nil, reason: String? = nil) {
        self.success = success
        self.exitCode = exitCode
        self.message = message
        self.reason = reason
    }

    /// Parses the data of a ``ExecStreamMessage/status(_:)`` message.
    ///
    /// - Throws: ``KubernetesProtocolError`` `statusTooLarge` or `malformedStatus`.
    package init(json: [UInt8]) throws(KubernetesProtocolError) {
        guard json.count <= Self.maximumLength else {
            throw KubernetesProtocolError(.statusTooLarge, "status of \(json.count) bytes")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(json))) as? [String: Any] else {
            throw KubernetesProtocolError(.malformedStatus, "status of \(json.count) bytes is not a JSON object")
        }
        success = object["status"] as? String == "Success"
        message = object["message"] as? String
        reason = object["reason"] as? String
        if success {
            exitCode = 0
        } else {
            let details = object["details"] as? [String: Any]
            let causes = details?["causes"] as? [Any] ?? []
            exitCode = causes.lazy
                .compactMap { $0 as? [String: Any] }
                .first { $0["reason"] as? String == "ExitCode" }
                .flatMap { ($0["message"] as? String).flatMap { Int($0) } }
        }
    }

    /// A v1 `Status` failure body: what the gateway sends on the error stream when it ends an
    /// exec, and the body of the HTTP errors it answers kubectl with.
    package static func failureStatus(message: String, code: Int = 403, reason: String = "Forbidden") -> [UInt8] {
        let json = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
            + "\"message\":\"\(JSONText.escaped(message))\",\"reason\":\"\(JSONText.escaped(reason))\",\"code\":\(code)}"
        return Array(json.utf8)
    }
}
