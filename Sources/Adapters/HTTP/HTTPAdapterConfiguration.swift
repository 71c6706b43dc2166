import Crypto
import Foundation
import MaskEngine
import NIOCore
import NIOHTTP1

/// A request the gateway answers itself, with why.
package struct HTTPRefusal: Sendable, Equatable {
    package var status: HTTPResponseStatus
    package var code: String
    package var message: String

    package init(_ status: HTTPResponseStatus, code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }
}

/// What differs between the plain HTTP listener and the Kubernetes one: how a request is
/// described to the guardrails, what is refused before or after them, what is added upstream,
/// which responses are rewritten as documents, and how the gateway's own errors look.
package struct HTTPProxyProfile: Sendable {
    package var kind: ConnectionKind
    /// The guardrail commands of a request (`uri` is the upstream URI, prefix removed), decided in
    /// order: the first that is not allowed decides.
    package var commands: @Sendable (_ head: HTTPRequestHead, _ uri: String) -> [Command]
    /// Refused before the guardrails (malformed requests, forbidden headers).
    package var precheck: @Sendable (_ head: HTTPRequestHead, _ uri: String) -> HTTPRefusal? = { _, _ in nil }
    /// Refused after the guardrails allowed it (what the gateway cannot proxy), so a blocked
    /// request gets the rule's message whatever the transport.
    package var postcheck: @Sendable (_ head: HTTPRequestHead, _ uri: String) -> HTTPRefusal? = { _, _ in nil }
    /// Whether a request with `Upgrade` may be proxied (else 501).
    package var allowsUpgrade: @Sendable (_ head: HTTPRequestHead, _ uri: String) -> Bool = { _, _ in false }
    /// Extra upstream headers for a session (Kubernetes: impersonation).
    package var upstreamHeaders: @Sendable (_ headers: inout HTTPHeaders, _ session: any GovernedSession) -> Void = { _, _ in }
    /// A document rewrite for responses to this request, made with a masking engine.
    package var documentFilter: @Sendable (_ head: HTTPRequestHead, _ uri: String, _ session: any GovernedSession)
        -> ((MaskingEngine) -> HTTPDocumentFilter?)? = { _, _, _ in nil }
    /// The body of an error the gateway answers itself: content type and bytes.
    package var errorBody: @Sendable (_ status: HTTPResponseStatus, _ code: String, _ message: String) -> (String, [UInt8])

    package init(kind: ConnectionKind,
                commands: @escaping @Sendable (HTTPRequestHead, String) -> [Command],
                errorBody: @escaping @Sendable (HTTPResponseStatus, String, String) -> (String, [UInt8])) {
        self.kind = kind
        self.commands = commands
        self.errorBody = errorBody
    }

    /// Plain HTTP: `METHOD /path?query`; errors as `{"error": CODE, "message": TEXT}`.
    package static let http = HTTPProxyProfile(kind: .http, commands: { head, uri in HTTPCommands.requests(method: head.method, uri: uri) }) { _, code, message in
        ("application/json", Array(#"{"error":"\#(JSONText.escaped(code))","message":"\#(JSONText.escaped(message))"}"#.utf8) + [10])
    }
}

/// Refusals that came out of a review (denied, timed out), remembered briefly per token and
/// request: kubectl retries a refused WebSocket exec at once over SPDY, and that retry must get
/// the same answer rather than file a second review.
package final class HTTPRefusalMemory: Sendable {
    private struct Entry { var refusal: HTTPRefusal; var until: ContinuousClock.Instant }
    private let entries = Locked<[String: Entry]>([:])
    package let lifetime: Duration
    package static let maximumEntries = 10_000

    package init(lifetime: Duration = .seconds(15)) {
        self.lifetime = lifetime
    }

    func remember(_ key: String, _ refusal: HTTPRefusal, now: ContinuousClock.Instant = .now) {
        entries.withLock { entries in
            if entries.count >= Self.maximumEntries { entries = entries.filter { $0.value.until > now } }
            guard entries.count < Self.maximumEntries else { return }
            entries[key] = Entry(refusal: refusal, until: now + lifetime)
        }
    }

    func recall(_ key: String, now: ContinuousClock.Instant = .now) -> HTTPRefusal? {
        entries.withLock { entries in
            guard let entry = entries[key] else { return nil }
            guard entry.until > now else {
                entries[key] = nil
                return nil
            }
            return entry.refusal
        }
    }

    /// The key: a hash of the token (never the token itself) and the request's commands.
    static func key(token: String, commands: [Command]) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(token.utf8))
        for command in commands { hasher.update(data: Array(("\u{0}" + command.text).utf8)) }
        return hasher.finalize().map { String($0, radix: 16) }.joined()
    }
}

package struct HTTPAdapterConfiguration: Sendable {
    package var routing: HTTPRouting = .path
    /// The scheme clients use to reach the listener (`X-Forwarded-Proto`).
    package var clientScheme = "http"
    /// Recorded body bytes per request and per response; beyond it the record says it was cut.
    package var recordCap = 64 * 1024
    /// A request head must arrive complete within this (slow-loris), also between keep-alive requests.
    package var headerTimeout: TimeAmount = .seconds(15)
    /// A request body that stalls this long is abandoned (408 when no response has started).
    package var bodyIdleTimeout: TimeAmount = .seconds(30)
    /// Shared by the listener's connections (see ``HTTPRefusalMemory``).
    package var refusals = HTTPRefusalMemory()
    /// Unix time in seconds, compared with ``GovernedSession/expiresAt`` on every request.
    package var now: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    /// The monotonic clock exchanges are timed with (injected by tests).
    package var clock: @Sendable () -> ContinuousClock.Instant = { .now }

    package init() {}
}
