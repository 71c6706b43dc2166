import Crypto
import Foundation
import MaskEngine
import NIOCore
import NIOHTTP1

/// A request the gateway answers itself, with why.
public struct HTTPRefusal: Sendable, Equatable {
    public var status: HTTPResponseStatus
    public var code: String
    public var message: String

    public init(_ status: HTTPResponseStatus, code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }
}

/// What differs between the plain HTTP listener and the Kubernetes one: how a request is
/// described to the guardrails, what is refused before or after them, what is added upstream,
/// which responses are rewritten as documents, and how the gateway's own errors look.
public struct HTTPProxyProfile: Sendable {
    public var kind: ConnectionKind
    /// The guardrail commands of a request (`uri` is the upstream URI, prefix removed), decided in
    /// order: the first that is not allowed decides.
    public var commands: @Sendable (_ head: HTTPRequestHead, _ uri: String) -> [Command]
    /// Refused before the guardrails (malformed requests, forbidden headers).
    public var precheck: @Sendable (_ head: HTTPRequestHead, _ uri: String) -> HTTPRefusal? = { _, _ in nil }
    /// Refused after the guardrails allowed it (what the gateway cannot proxy), so a blocked
    /// request gets the rule's message whatever the transport.
    public var postcheck: @Sendable (_ head: HTTPRequestHead, _ uri: String) -> HTTPRefusal? = { _, _ in nil }
    /// Whether a request with `Upgrade` may be proxied (else 501).
    public var allowsUpgrade: @Sendable (_ head: HTTPRequestHead, _ uri: String) -> Bool = { _, _ in false }
    /// Extra upstream headers for a session (Kubernetes: impersonation).
    public var upstreamHeaders: @Sendable (_ headers: inout HTTPHeaders, _ session: any GovernedSession) -> Void = { _, _ in }
    /// A document rewrite for responses to this request, made with a masking engine.
    public var documentFilter: @Sendable (_ head: HTTPRequestHead, _ uri: String, _ session: any GovernedSession)
        -> ((MaskingEngine) -> HTTPDocumentFilter?)? = { _, _, _ in nil }
    /// The body of an error the gateway answers itself: content type and bytes.
    public var errorBody: @Sendable (_ status: HTTPResponseStatus, _ code: String, _ message: String) -> (String, [UInt8])

    public init(kind: ConnectionKind,
                commands: @escaping @Sendable (HTTPRequestHead, String) -> [Command],
                errorBody: @escaping @Sendable (HTTPResponseStatus, String, String) -> (String, [UInt8])) {
        self.kind = kind
        self.commands = commands
        self.errorBody = errorBody
    }

    /// Plain HTTP: `METHOD /path?query`; errors as `{"error": CODE, "message": TEXT}`.
    public static let http = HTTPProxyProfile(kind: .http, commands: { head, uri in HTTPCommands.requests(method: head.method, uri: uri) }) { _, code, message in
        ("application/json", Array(#"{"error":"\#(JSONText.escaped(code))","message":"\#(JSONText.escaped(message))"}"#.utf8) + [10])
    }
}

/// Refusals that came out of a review (denied, timed out), remembered briefly per token and
/// request: kubectl retries a refused WebSocket exec at once over SPDY, and that retry must get
/// the same answer rather than file a second review.
public final class HTTPRefusalMemory: Sendable {
    private struct Entry { var refusal: HTTPRefusal; var until: ContinuousClock.Instant }
    private let entries = Locked<[String: Entry]>([:])
    public let lifetime: Duration
    public static let maximumEntries = 10_000

    public init(lifetime: Duration = .seconds(15)) {
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

public struct HTTPAdapterConfiguration: Sendable {
    public var routing: HTTPRouting = .path
    /// The scheme clients use to reach the listener (`X-Forwarded-Proto`).
    public var clientScheme = "http"
    /// Recorded body bytes per request and per response; beyond it the record says it was cut.
    public var recordCap = 64 * 1024
    /// A request head must arrive complete within this (slow-loris), also between keep-alive requests.
    public var headerTimeout: TimeAmount = .seconds(15)
    /// A request body that stalls this long is abandoned (408 when no response has started).
    public var bodyIdleTimeout: TimeAmount = .seconds(30)
    /// Shared by the listener's connections (see ``HTTPRefusalMemory``).
    public var refusals = HTTPRefusalMemory()
    /// Unix time in seconds, compared with ``GovernedSession/expiresAt`` on every request.
    public var now: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }

    public init() {}
}

/// The sans-IO core of one client connection of the HTTP proxy: routing, authentication, the
/// guardrail decision (block, review hold), the upstream request head, and the response plan.
/// Requests are handled one at a time (the pipelining handler in front delivers the next only
/// after the previous response ended). The handler performs the returned actions.
public struct HTTPProxyMachine {
    public enum Action {
        case openSession(token: String, connection: String)
        case closeSession(any GovernedSession)
        case awaitReview(ReviewTicket)
        /// Connect (or reuse an idle connection to the same target).
        case connectUpstream(ConnectionTarget, HTTPTarget)
        case sendUpstream(HTTPClientRequestPart)
        case sendClient(HTTPServerResponsePart)
        /// Stop or resume reading the client (while waiting, the request body stays in the socket).
        case readClient(Bool)
        /// The exchange with the upstream is over: keep its connection for the next request or close it.
        case releaseUpstream(reusable: Bool)
        /// Close the client connection (after what was written).
        case closeClient(reason: String)
        /// The upstream accepted a protocol upgrade (WebSocket): send `response` to the client,
        /// then both connections leave HTTP and the handler hands them to the upgraded protocol.
        case upgrade(response: HTTPResponseHead, request: HTTPRequestHead, uri: String, session: any GovernedSession)
    }

    enum State {
        case idle
        case awaitingSession
        case awaitingReview
        case awaitingUpstream
        /// The request went upstream; the response is awaited or streaming.
        case forwarding
        /// The gateway answered itself; the rest of the request body is read and dropped.
        case answered
        case upgraded
        case closed
    }

    public let configuration: HTTPAdapterConfiguration
    public let profile: HTTPProxyProfile
    private(set) var state = State.idle
    public private(set) var session: (any GovernedSession)?
    private var sessionToken: String?

    // The current exchange.
    private var head: HTTPRequestHead?
    private var route: HTTPRoute?
    private var target: HTTPTarget?
    private var clientAddress: String?
    private var pendingBody: [ByteBuffer] = []
    private var requestEnded = false
    private var requestBytes = 0
    private var requestRecorder: HTTPBodyTransformer?
    private var reviewID: String?
    private var responseStatus: HTTPResponseStatus?
    private var responseStarted = false
    private var transformer: HTTPBodyTransformer?
    private var upstreamKeepAlive = true
    private var upgrading = false
    private var started = ContinuousClock.now
    /// A response head kept back until the body's first bytes say whether it is text or binary.
    private var heldHead: HTTPResponseHead?
    private var heldPlan: HTTPResponsePlan?

    public init(configuration: HTTPAdapterConfiguration, profile: HTTPProxyProfile) {
        self.configuration = configuration
        self.profile = profile
    }

    public var isIdle: Bool { if case .idle = state { true } else { false } }
    /// Whether the response head went out (after that an error can only cut the connection).
    public var hasStartedResponse: Bool { responseStarted }

    // MARK: - Client events

    public mutating func requestHead(_ head: HTTPRequestHead, clientAddress: String?) -> [Action] {
        guard case .idle = state else { return fail("a request arrived while another was in progress") }
        self.head = head
        self.clientAddress = clientAddress
        pendingBody = []
        requestEnded = false
        requestBytes = 0
        reviewID = nil
        responseStatus = nil
        responseStarted = false
        transformer = nil
        heldHead = nil
        heldPlan = nil
        requestRecorder = nil
        upstreamKeepAlive = true
        upgrading = false
        started = .now
        guard var route = HTTPRoute.resolve(uri: head.uri, host: head.headers.first(name: "host"), routing: configuration.routing) else {
            return answer(.notFound, code: "no_connection", "no connection in the request (use /CONNECTION/path)")
        }
        // One normalised path: what the rules match, what is recorded, what goes upstream.
        switch HTTPPath.normalise(route.uri) {
        case .success(let uri): route.uri = uri
        case .failure(let refusal): return answer(refusal.status, code: refusal.code, refusal.message)
        }
        self.route = route
        if head.headers[canonicalForm: "upgrade"].isEmpty == false {
            guard profile.allowsUpgrade(head, route.uri) else {
                return answer(.notImplemented, code: "upgrade_unsupported", "protocol upgrades are not proxied here")
            }
            upgrading = true
        }
        if let refusal = profile.precheck(head, route.uri) {
            return answer(refusal.status, code: refusal.code, refusal.message)
        }
        guard let token = HTTPHeaderRules.token(from: head.headers) else {
            var actions = answer(.unauthorized, code: "unauthenticated", "send your Sluice token as Authorization: Bearer TOKEN")
            if case .sendClient(.head(var response)) = actions.first {
                response.headers.add(name: "WWW-Authenticate", value: #"Bearer realm="sluice""#)
                actions[0] = .sendClient(.head(response))
            }
            return actions
        }
        if let session, sessionToken == token, session.connection.name == route.connection {
            if let expiry = session.expiresAt, configuration.now() > expiry {
                // Keep-alive must not outlive the token: 401, and the connection closes.
                var actions = answer(.unauthorized, code: "token_expired", "your Sluice token expired; get a new one", close: true)
                actions.append(.closeSession(session))
                self.session = nil
                sessionToken = nil
                return actions
            }
            return decide(session)
        }
        var actions: [Action] = [.readClient(false)]
        if let session { actions.append(.closeSession(session)) }
        session = nil
        sessionToken = token
        state = .awaitingSession
        actions.append(.openSession(token: token, connection: route.connection))
        return actions
    }

    public mutating func requestBody(_ buffer: ByteBuffer) -> [Action] {
        requestBytes += buffer.readableBytes
        switch state {
        case .forwarding:
            if let requestRecorder { _ = try? requestRecorder.write(buffer) }
            return [.sendUpstream(.body(.byteBuffer(buffer)))]
        case .awaitingSession, .awaitingReview, .awaitingUpstream:
            pendingBody.append(buffer)
            return [.readClient(false)]
        case .answered, .idle, .closed, .upgraded:
            return []
        }
    }

    public mutating func requestEnd() -> [Action] {
        requestEnded = true
        switch state {
        case .forwarding:
            finishRequestRecord()
            return [.sendUpstream(.end(nil))]
        case .answered:
            return finishLocalAnswer()
        default:
            return []
        }
    }

    // MARK: - Governor events

    public mutating func sessionOpened(_ session: any GovernedSession) -> [Action] {
        guard case .awaitingSession = state else { return [.closeSession(session)] }
        self.session = session
        guard session.connection.kind == profile.kind else {
            return answer(.notFound, code: "wrong_listener", "\(session.connection.name) is a \(session.connection.kind.rawValue) connection")
        }
        return decide(session)
    }

    public mutating func sessionRefused(_ error: GovernorError) -> [Action] {
        guard case .awaitingSession = state else { return [] }
        sessionToken = nil
        let status: HTTPResponseStatus
        switch error.code {
        case .unauthenticated: status = .unauthorized
        case .forbidden: status = .forbidden
        case .unknownConnection: status = .notFound
        case .throttled: status = .tooManyRequests
        default: status = .serviceUnavailable
        }
        return answer(status, code: error.code.rawValue, error.message)
    }

    /// The gateway ended the session (shutdown, revoked access). A request still waiting — for
    /// its review, its session or its upstream — is answered 503 with why (the connection then
    /// closes); otherwise there is nothing to say and the handler just closes.
    public mutating func terminated(_ reason: String) -> [Action] {
        switch state {
        case .awaitingSession, .awaitingReview, .awaitingUpstream:
            return answer(.serviceUnavailable, code: "session_ended", "the gateway ended this session: \(reason)", close: true)
        default:
            return []
        }
    }

    public mutating func reviewDecided(_ outcome: ReviewOutcome) -> [Action] {
        guard case .awaitingReview = state, let session else { return [] }
        switch outcome {
        case .approved:
            if let head, let route, let refusal = profile.postcheck(head, route.uri) {
                return answer(refusal.status, code: refusal.code, refusal.message)
            }
            return forward(session)
        case .denied:
            return refuseAfterReview(HTTPRefusal(.forbidden, code: "review_denied", ReviewWording.refusal(outcome) ?? ""))
        case .timedOut:
            return refuseAfterReview(HTTPRefusal(.forbidden, code: "review_timed_out", ReviewWording.refusal(outcome) ?? ""))
        }
    }

    private mutating func refuseAfterReview(_ refusal: HTTPRefusal) -> [Action] {
        if let head, let route, let token = sessionToken {
            configuration.refusals.remember(HTTPRefusalMemory.key(token: token, commands: profile.commands(head, route.uri)), refusal)
        }
        return answer(refusal.status, code: refusal.code, refusal.message)
    }

    // MARK: - Upstream events

    public mutating func upstreamConnected() -> [Action] {
        guard case .awaitingUpstream = state, let head, let route, let target, let session else { return [] }
        state = .forwarding
        let scanning = session.masking(for: .stream).isMasked || session.recordingEngine != nil
        var headers = HTTPHeaderRules.upstreamHeaders(head.headers, clientAddress: clientAddress, clientScheme: configuration.clientScheme,
                                                      upstreamHost: target.hostHeader, credential: HTTPCredential(session.connection.credential),
                                                      scanning: scanning)
        if session.masking(for: .stream).isMasked {
            // A masked body is a rewritten body: byte ranges of it would let pieces be rebuilt.
            headers.remove(name: "range")
            headers.remove(name: "if-range")
        }
        profile.upstreamHeaders(&headers, session)
        if head.headers.first(name: "content-length") == nil, head.headers.first(name: "transfer-encoding") == nil, requestEnded,
           pendingBody.isEmpty, head.method == .POST || head.method == .PUT || head.method == .PATCH {
            headers.add(name: "Content-Length", value: "0")
        }
        var upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: target.basePath + route.uri, headers: headers)
        if upgrading {
            // Upgrade and Connection are hop-by-hop: this hop asks for the same upgrade again.
            upstreamHead.headers.replaceOrAdd(name: "Connection", value: "Upgrade")
            for value in head.headers["upgrade"] { upstreamHead.headers.add(name: "Upgrade", value: value) }
        } else {
            upstreamHead.headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        var actions: [Action] = [.sendUpstream(.head(upstreamHead))]
        requestRecorder = try? HTTPBodyTransformer(
            plan: HTTPResponsePlan(scan: true, coding: .identity, refusal: nil, hasBody: true),
            choice: .unmasked, recordingEngine: session.recordingEngine, recordCap: configuration.recordCap, kind: .input,
            record: { [weak session] in session?.record($0) })
        for buffer in pendingBody {
            if let requestRecorder { _ = try? requestRecorder.write(buffer) }
            actions.append(.sendUpstream(.body(.byteBuffer(buffer))))
        }
        pendingBody = []
        if requestEnded {
            finishRequestRecord()
            actions.append(.sendUpstream(.end(nil)))
        } else {
            actions.append(.readClient(true))
        }
        return actions
    }

    /// The network error goes to the operator's log and the record; the client's 502 names the
    /// connection and a code only (the error text carries the internal target address).
    public mutating func upstreamFailed(_ reason: String) -> [Action] {
        switch state {
        case .awaitingUpstream:
            reportUpstreamFailure(reason)
            return answer(.badGateway, code: "upstream_unreachable", "cannot reach \(route?.connection ?? "the upstream")")
        case .forwarding where !responseStarted:
            reportUpstreamFailure(reason)
            var actions: [Action] = [.releaseUpstream(reusable: false)]
            actions += answer(.badGateway, code: "upstream_failed", "the connection to \(route?.connection ?? "the upstream") failed")
            return actions
        case .forwarding:
            reportUpstreamFailure(reason)
            session?.mark(.error("upstream failed mid-response"))
            return fail("the upstream failed mid-response")
        default:
            return []
        }
    }

    public mutating func responseHead(_ response: HTTPResponseHead) -> [Action] {
        guard case .forwarding = state, let head, let session else { return [] }
        if upgrading && response.status == .switchingProtocols {
            state = .upgraded
            var out = HTTPResponseHead(version: head.version, status: .switchingProtocols, headers: HTTPHeaderRules.removingHopByHop(response.headers))
            out.headers.add(name: "Connection", value: "Upgrade")
            for value in response.headers["upgrade"] { out.headers.add(name: "Upgrade", value: value) }
            session.mark(.upgraded(response.headers.first(name: "sec-websocket-protocol") ?? "?"))
            return [.upgrade(response: out, request: head, uri: route?.uri ?? head.uri, session: session)]
        }
        if response.status.code < 200 {
            // 100 Continue and other interim answers are not relayed (the final answer follows).
            return []
        }
        upstreamKeepAlive = response.isKeepAlive
        let choice = session.masking(for: .stream)
        if choice.isMasked, response.status == .partialContent {
            session.mark(.refused("206 partial content on a masked connection"))
            var actions: [Action] = [.releaseUpstream(reusable: false)]
            actions += answer(.badGateway, code: "unscannable_response", "partial content (206) is not served on a masked connection")
            return actions
        }
        let passThrough = session.connection.options["http.pass_through_types"].map { $0.split(separator: ",").map(String.init) } ?? []
        let plan = HTTPResponsePlan.make(requestMethod: head.method, status: response.status, headers: response.headers, passThrough: passThrough)
        if let refusal = plan.refusal {
            // Fail closed: the body is never forwarded unscanned.
            session.mark(.refused(refusal))
            var actions: [Action] = [.releaseUpstream(reusable: false)]
            actions += answer(.badGateway, code: "unscannable_response", refusal)
            return actions
        }
        do {
            let filter = profile.documentFilter(head, route?.uri ?? head.uri, session)
            transformer = try HTTPBodyTransformer(plan: plan, choice: choice, recordingEngine: session.recordingEngine,
                                                  recordCap: configuration.recordCap, documentFilter: filter,
                                                  record: { [weak session] in session?.record($0) })
        } catch {
            var actions: [Action] = [.releaseUpstream(reusable: false)]
            actions += answer(.badGateway, code: "masking_unavailable", "the response cannot be masked")
            return actions
        }
        var headers = response.headers
        if case .masked(let engine, _) = choice {
            // Headers leak like bodies (Location, Set-Cookie, custom fields): masked on every status.
            do {
                headers = try HTTPHeaderMasking.mask(headers, with: engine.makeValueMasker())
            } catch {
                var actions: [Action] = [.releaseUpstream(reusable: false)]
                actions += answer(.badGateway, code: "masking_failed", "the response headers could not be masked")
                return actions
            }
        }
        responseStatus = response.status
        var out = HTTPResponseHead(version: head.version, status: response.status, headers: headers)
        if let reviewID { out.headers.add(name: "Sluice-Review", value: reviewID) }
        if plan.hasBody, !plan.knownText, transformer?.mode == .pending {
            // Text or binary is decided on the first body bytes; until then the head waits.
            heldHead = out
            heldPlan = plan
            return []
        }
        return [sendHead(out, plan: plan)]
    }

    /// The response head as it goes to the client, once the body's mode is known.
    private mutating func sendHead(_ response: HTTPResponseHead, plan: HTTPResponsePlan) -> Action {
        guard let head else { return .sendClient(.head(response)) }
        responseStarted = true
        let raw = transformer?.mode == .raw
        var out = response
        out.headers = plan.clientHeaders(response.headers, raw: raw)
        if !head.isKeepAlive || head.version.minor == 0 && plan.scan && !raw && plan.hasBody {
            out.headers.replaceOrAdd(name: "Connection", value: "close")
        }
        return .sendClient(.head(out))
    }

    /// Sends the held head once the transformer decided (or the body ended).
    private mutating func releaseHeldHead(into actions: inout [Action]) {
        guard let held = heldHead, let plan = heldPlan, transformer?.mode != .pending else { return }
        heldHead = nil
        heldPlan = nil
        actions.append(sendHead(held, plan: plan))
    }

    public mutating func responseBody(_ buffer: ByteBuffer) -> [Action] {
        guard case .forwarding = state, let transformer else { return [] }
        do {
            let out = try transformer.write(buffer)
            var actions: [Action] = []
            releaseHeldHead(into: &actions)
            if let out { actions.append(.sendClient(.body(.byteBuffer(out)))) }
            return actions
        } catch {
            return failResponse(error)
        }
    }

    public mutating func responseEnd() -> [Action] {
        guard case .forwarding = state, let head else { return [] }
        var actions: [Action] = []
        if let transformer {
            do {
                let out = try transformer.finish()
                releaseHeldHead(into: &actions)
                if let out { actions.append(.sendClient(.body(.byteBuffer(out)))) }
            } catch {
                return failResponse(error)
            }
            session?.reportMasking(bytes: transformer.bytesIn, counts: transformer.counts, latency: .now - started)
        }
        recordExchangeEnd()
        actions.append(.sendClient(.end(nil)))
        actions.append(.releaseUpstream(reusable: upstreamKeepAlive && requestEnded))
        state = .idle
        if !head.isKeepAlive || (head.version.minor == 0 && transformer.map { $0.mode != .raw && $0.bytesOut != $0.bytesIn } ?? false) {
            actions.append(.closeClient(reason: "client asked to close"))
            state = .closed
        } else if !requestEnded {
            // The response came before the request body ended: the connection cannot be reused.
            actions.append(.closeClient(reason: "response before the request body ended"))
            state = .closed
        } else {
            actions.append(.readClient(true))
        }
        return actions
    }

    /// The upstream connection closed (not at a response boundary).
    public mutating func upstreamClosed() -> [Action] {
        guard case .forwarding = state else { return [] }
        return upstreamFailed("connection closed")
    }

    /// The head of a request did not arrive in time, or its body stalled.
    public mutating func timedOut() -> [Action] {
        switch state {
        case .idle:
            state = .closed
            return [.closeClient(reason: "idle")]
        case .forwarding where !responseStarted && !requestEnded:
            var actions: [Action] = [.releaseUpstream(reusable: false)]
            actions += answer(.requestTimeout, code: "request_timeout", "the request body stalled")
            return actions
        default:
            return []
        }
    }

    public mutating func clientClosed() -> [Action] {
        let previous = state
        state = .closed
        var actions: [Action] = []
        if case .forwarding = previous {
            session?.mark(.error("client left mid-exchange"))
            actions.append(.releaseUpstream(reusable: false))
        }
        if let session { actions.append(.closeSession(session)) }
        session = nil
        return actions
    }

    // MARK: - Internals

    private mutating func decide(_ session: any GovernedSession) -> [Action] {
        guard let head, let route else { return [] }
        session.record(SessionEvent(.input, text: "\(head.method.rawValue) \(route.uri)"))
        let commands = profile.commands(head, route.uri)
        // Only a retry over another transport (kubectl's SPDY after a refused WebSocket) reuses a
        // refusal; asking again the same way files a new review.
        let upgrade = head.headers[canonicalForm: "upgrade"]
        if !upgrade.isEmpty, !upgrade.contains(where: { $0.lowercased().contains("websocket") }), let token = sessionToken,
           let refusal = configuration.refusals.recall(HTTPRefusalMemory.key(token: token, commands: commands)) {
            return answer(refusal.status, code: refusal.code, refusal.message)
        }
        var decision = Decision.allow
        for command in commands {
            decision = session.decide(command)
            if case .allow = decision { continue }
            break
        }
        switch decision {
        case .allow:
            if let refusal = profile.postcheck(head, route.uri) {
                return answer(refusal.status, code: refusal.code, refusal.message)
            }
            return forward(session)
        case .block(let message):
            return answer(.forbidden, code: "blocked", message)
        case .review(let ticket):
            state = .awaitingReview
            reviewID = ticket.id
            return [.readClient(false), .awaitReview(ticket)]
        }
    }

    private mutating func forward(_ session: any GovernedSession) -> [Action] {
        guard let target = HTTPTarget(session.connection.target) else {
            return answer(.badGateway, code: "bad_target", "the connection's target is not an http(s) URL")
        }
        self.target = target
        state = .awaitingUpstream
        return [.connectUpstream(session.connection, target)]
    }

    /// The gateway answers itself (an error): a complete response with a JSON body.
    private func reportUpstreamFailure(_ reason: String) {
        session?.reportUpstreamFailure(reason)
        session?.mark(.upstreamError(String(reason.prefix(200))))
    }

    private mutating func answer(_ status: HTTPResponseStatus, code: String, _ message: String, close: Bool = false) -> [Action] {
        session?.mark(.answered(status: Int(status.code), code: code))
        let (type, body) = profile.errorBody(status, code, message)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        if let reviewID { headers.add(name: "Sluice-Review", value: reviewID) }
        let keepAlive = (head?.isKeepAlive ?? false) && !close
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let version = head?.version ?? .http1_1
        var actions: [Action] = [
            .sendClient(.head(HTTPResponseHead(version: version, status: status, headers: headers))),
            .sendClient(.body(.byteBuffer(ByteBuffer(bytes: body)))),
            .sendClient(.end(nil)),
        ]
        responseStarted = true
        state = .answered
        if !keepAlive || status == .requestTimeout || status == .notImplemented {
            state = .closed
            actions.append(.closeClient(reason: "answered \(status.code)"))
            return actions
        }
        if requestEnded {
            actions += finishLocalAnswer()
        } else {
            actions.append(.readClient(true))   // read and drop the rest of the body
        }
        return actions
    }

    private mutating func finishLocalAnswer() -> [Action] {
        guard case .answered = state else { return [] }
        state = .idle
        return [.readClient(true)]
    }

    private mutating func failResponse(_ error: any Error) -> [Action] {
        // Fail closed: what could not be masked is not sent; the client sees a cut response.
        session?.mark(.error("response could not be masked", reason: String(String(describing: error).prefix(120))))
        if !responseStarted {
            heldHead = nil
            heldPlan = nil
            var actions: [Action] = [.releaseUpstream(reusable: false)]
            if (error as? HTTPBodyError)?.code == "binary_body" {
                session?.mark(.refused("binary body of a type not on the pass-through list"))
                actions += answer(.badGateway, code: "unscannable_response",
                                  "the response is binary and its type is not on the connection's pass-through list")
            } else {
                actions += answer(.badGateway, code: "masking_failed", "the response could not be masked")
            }
            return actions
        }
        return fail("the response could not be masked")
    }

    private mutating func fail(_ reason: String) -> [Action] {
        state = .closed
        return [.releaseUpstream(reusable: false), .closeClient(reason: reason)]
    }

    private mutating func finishRequestRecord() {
        if let requestRecorder { _ = try? requestRecorder.finish() }
    }

    private func recordExchangeEnd() {
        let status = responseStatus?.code ?? 0
        let cut = (transformer?.recordCut ?? false) || (requestRecorder?.recordCut ?? false)
        session?.mark(.exchange(status: Int(status), requestBytes: requestBytes, responseBytes: transformer?.bytesOut ?? 0,
                                 upstreamBytes: transformer?.bytesIn ?? 0, recordCut: cut))
    }
}

extension MaskingChoice {
    var isMasked: Bool { if case .masked = self { true } else { false } }
}
