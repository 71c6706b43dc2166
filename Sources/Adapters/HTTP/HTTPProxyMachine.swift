import MaskEngine
import NIOCore
import NIOHTTP1

/// One request and its response, as the HTTP machine follows them.
struct HTTPExchange {
    var head: HTTPRequestHead?
    var route: HTTPRoute?
    var target: HTTPTarget?
    var clientAddress: String?
    /// Body parts that arrived before the upstream connection (reading stops meanwhile).
    var pendingBody: [ByteBuffer] = []
    var requestEnded = false
    var requestBytes = 0
    var requestRecorder: HTTPBodyTransformer?
    var reviewID: String?
    var responseStatus: HTTPResponseStatus?
    var responseStarted = false
    var transformer: HTTPBodyTransformer?
    var upstreamKeepAlive = true
    var upgrading = false
    var started: ContinuousClock.Instant?
    /// A response head kept back until the body's first bytes say whether it is text or binary.
    var heldHead: HTTPResponseHead?
    var heldPlan: HTTPResponsePlan?

    init() {}

    init(head: HTTPRequestHead, clientAddress: String?, started: ContinuousClock.Instant) {
        self.head = head
        self.clientAddress = clientAddress
        self.started = started
    }
}

/// The sans-IO core of one client connection of the HTTP proxy: routing, authentication, the
/// guardrail decision (block, review hold), the upstream request head, and the response plan.
/// Requests are handled one at a time (the pipelining handler in front delivers the next only
/// after the previous response ended). The handler performs the returned actions.
package struct HTTPProxyMachine {
    typealias Exchange = HTTPExchange

    package enum Action {
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
        /// Look the key up in the listener's ``HTTPRefusalMemory`` and answer with ``refusalRecalled(_:)``.
        case recallRefusal(key: String)
        /// Keep a refusal from a review for a retry over another transport (``HTTPRefusalMemory``).
        case rememberRefusal(key: String, HTTPRefusal)
    }

    enum State {
        case idle
        case awaitingSession
        /// Looking up a refusal remembered for a retry over another transport.
        case recallingRefusal
        case awaitingReview
        case awaitingUpstream
        /// The request went upstream; the response is awaited or streaming.
        case forwarding
        /// The gateway answered itself; the rest of the request body is read and dropped.
        case answered
        case upgraded
        case closed
    }

    package let configuration: HTTPAdapterConfiguration
    package let profile: HTTPProxyProfile
    private(set) var state = State.idle
    package private(set) var session: (any GovernedSession)?
    private var sessionToken: String?

    /// The request in progress and its response: a fresh value at each request head.
    private var exchange = Exchange()
    /// The connection's maskers, reused by its exchanges.
    private let maskers = HTTPMaskerPool()
    /// The last connection target parsed (its text and the result), and the last pass-through
    /// list read: a keep-alive connection asks for the same ones at every request.
    private var parsedTarget: (text: String, target: HTTPTarget?)?
    private var parsedPassThrough: (text: String?, types: [String])?
    private var plans = HTTPResponsePlanCache()

    package init(configuration: HTTPAdapterConfiguration, profile: HTTPProxyProfile) {
        self.configuration = configuration
        self.profile = profile
    }

    package var isIdle: Bool { if case .idle = state { true } else { false } }
    /// Stream maskers waiting in the connection's pool for its next exchange.
    package var idleStreamMaskers: Int { maskers.idleStreams }
    /// Whether the response head went out (after that an error can only cut the connection).
    package var hasStartedResponse: Bool { exchange.responseStarted }

    // MARK: - Client events

    package mutating func requestHead(_ head: HTTPRequestHead, clientAddress: String?) -> [Action] {
        guard case .idle = state else { return fail("a request arrived while another was in progress") }
        retireExchange()
        exchange = Exchange(head: head, clientAddress: clientAddress, started: configuration.clock())
        guard var route = HTTPRoute.resolve(uri: head.uri, host: head.headers.first(name: "host"), routing: configuration.routing) else {
            return answer(.notFound, code: "no_connection", "no connection in the request (use /CONNECTION/path)")
        }
        // One normalised path: what the rules match, what is recorded, what goes upstream.
        switch HTTPPath.normalise(route.uri) {
        case .success(let uri): route.uri = uri
        case .failure(let refusal): return answer(refusal.status, code: refusal.code, refusal.message)
        }
        exchange.route = route
        if head.headers[canonicalForm: "upgrade"].isEmpty == false {
            guard profile.allowsUpgrade(head, route.uri) else {
                return answer(.notImplemented, code: "upgrade_unsupported", "protocol upgrades are not proxied here")
            }
            exchange.upgrading = true
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

    package mutating func requestBody(_ buffer: ByteBuffer) -> [Action] {
        exchange.requestBytes += buffer.readableBytes
        switch state {
        case .forwarding:
            recordRequestBody(buffer)
            return [.sendUpstream(.body(.byteBuffer(buffer)))]
        case .awaitingSession, .recallingRefusal, .awaitingReview, .awaitingUpstream:
            exchange.pendingBody.append(buffer)
            return [.readClient(false)]
        case .answered, .idle, .closed, .upgraded:
            return []
        }
    }

    package mutating func requestEnd() -> [Action] {
        exchange.requestEnded = true
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

    package mutating func sessionOpened(_ session: any GovernedSession) -> [Action] {
        guard case .awaitingSession = state else { return [.closeSession(session)] }
        self.session = session
        guard session.connection.kind == profile.kind else {
            return answer(.notFound, code: "wrong_listener", "\(session.connection.name) is a \(session.connection.kind.rawValue) connection")
        }
        return decide(session)
    }

    package mutating func sessionRefused(_ error: GovernorError) -> [Action] {
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
    package mutating func terminated(_ reason: String) -> [Action] {
        switch state {
        case .awaitingSession, .recallingRefusal, .awaitingReview, .awaitingUpstream:
            return answer(.serviceUnavailable, code: "session_ended", "the gateway ended this session: \(reason)", close: true)
        default:
            return []
        }
    }

    package mutating func reviewDecided(_ outcome: ReviewOutcome) -> [Action] {
        guard case .awaitingReview = state, let session else { return [] }
        switch outcome {
        case .approved:
            if let head = exchange.head, let route = exchange.route, let refusal = profile.postcheck(head, route.uri) {
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
        if let head = exchange.head, let route = exchange.route, let token = sessionToken {
            let key = HTTPRefusalMemory.key(token: token, commands: profile.commands(head, route.uri))
            return [.rememberRefusal(key: key, refusal)] + answer(refusal.status, code: refusal.code, refusal.message)
        }
        return answer(refusal.status, code: refusal.code, refusal.message)
    }

    /// The answer to ``Action/recallRefusal(key:)``: the refusal a review gave the same request
    /// over another transport moments ago, or nil (the request is decided as usual).
    package mutating func refusalRecalled(_ refusal: HTTPRefusal?) -> [Action] {
        guard case .recallingRefusal = state, let session, let head = exchange.head, let route = exchange.route else { return [] }
        if let refusal { return answer(refusal.status, code: refusal.code, refusal.message) }
        return decide(session, commands: profile.commands(head, route.uri))
    }

    // MARK: - Upstream events

    package mutating func upstreamConnected() -> [Action] {
        guard case .awaitingUpstream = state, let head = exchange.head, let route = exchange.route, let target = exchange.target, let session else { return [] }
        state = .forwarding
        let scanning = session.masking(for: .stream).isMasked || session.recordingEngine != nil
        var headers = HTTPHeaderRules.upstreamHeaders(head.headers, clientAddress: exchange.clientAddress, clientScheme: configuration.clientScheme,
                                                      upstreamHost: target.hostHeader, credential: HTTPCredential(session.connection.credential),
                                                      scanning: scanning)
        if session.masking(for: .stream).isMasked {
            // A masked body is a rewritten body: byte ranges of it would let pieces be rebuilt.
            headers.remove(name: "range")
            headers.remove(name: "if-range")
        }
        profile.upstreamHeaders(&headers, session)
        if head.headers.first(name: "content-length") == nil, head.headers.first(name: "transfer-encoding") == nil, exchange.requestEnded,
           exchange.pendingBody.isEmpty, head.method == .POST || head.method == .PUT || head.method == .PATCH {
            headers.add(name: "Content-Length", value: "0")
        }
        var upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: target.basePath + route.uri, headers: headers)
        if exchange.upgrading {
            // Upgrade and Connection are hop-by-hop: this hop asks for the same upgrade again.
            upstreamHead.headers.replaceOrAdd(name: "Connection", value: "Upgrade")
            for value in head.headers["upgrade"] { upstreamHead.headers.add(name: "Upgrade", value: value) }
        } else {
            upstreamHead.headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        var actions: [Action] = [.sendUpstream(.head(upstreamHead))]
        for buffer in exchange.pendingBody {
            recordRequestBody(buffer)
            actions.append(.sendUpstream(.body(.byteBuffer(buffer))))
        }
        exchange.pendingBody = []
        if exchange.requestEnded {
            finishRequestRecord()
            actions.append(.sendUpstream(.end(nil)))
        } else {
            actions.append(.readClient(true))
        }
        return actions
    }

    /// The network error goes to the operator's log and the record; the client's 502 names the
    /// connection and a code only (the error text carries the internal target address).
    package mutating func upstreamFailed(_ reason: String) -> [Action] {
        switch state {
        case .awaitingUpstream:
            reportUpstreamFailure(reason)
            return answer(.badGateway, code: "upstream_unreachable", "cannot reach \(exchange.route?.connection ?? "the upstream")")
        case .forwarding where !exchange.responseStarted:
            retireExchange()
            reportUpstreamFailure(reason)
            var actions: [Action] = [.releaseUpstream(reusable: false)]
            actions += answer(.badGateway, code: "upstream_failed", "the connection to \(exchange.route?.connection ?? "the upstream") failed")
            return actions
        case .forwarding:
            retireExchange()
            reportUpstreamFailure(reason)
            session?.mark(.error("upstream failed mid-response"))
            return fail("the upstream failed mid-response")
        default:
            return []
        }
    }

    package mutating func responseHead(_ response: HTTPResponseHead) -> [Action] {
        guard case .forwarding = state, let head = exchange.head, let session else { return [] }
        if exchange.upgrading && response.status == .switchingProtocols {
            state = .upgraded
            var out = HTTPResponseHead(version: head.version, status: .switchingProtocols, headers: HTTPHeaderRules.removingHopByHop(response.headers))
            out.headers.add(name: "Connection", value: "Upgrade")
            for value in response.headers["upgrade"] { out.headers.add(name: "Upgrade", value: value) }
            session.mark(.upgraded(response.headers.first(name: "sec-websocket-protocol") ?? "?"))
            return [.upgrade(response: out, request: head, uri: exchange.route?.uri ?? head.uri, session: session)]
        }
        if response.status.code < 200 {
            // 100 Continue and other interim answers are not relayed (the final answer follows).
            return []
        }
        exchange.upstreamKeepAlive = response.isKeepAlive
        let choice = session.masking(for: .stream)
        if choice.isMasked, response.status == .partialContent {
            session.mark(.refused("206 partial content on a masked connection"))
            var actions: [Action] = [.releaseUpstream(reusable: false)]
            actions += answer(.badGateway, code: "unscannable_response", "partial content (206) is not served on a masked connection")
            return actions
        }
        let passThroughText = session.connection.options["http.pass_through_types"]
        if parsedPassThrough == nil || parsedPassThrough?.text != passThroughText {
            parsedPassThrough = (passThroughText, passThroughText.map { $0.split(separator: ",").map(String.init) } ?? [])
        }
        let passThrough = parsedPassThrough?.types ?? []
        let plan = plans.plan(requestMethod: head.method, status: response.status, headers: response.headers, passThrough: passThrough)
        if let refusal = plan.refusal {
            // Fail closed: the body is never forwarded unscanned.
            session.mark(.refused(refusal))
            var actions: [Action] = [.releaseUpstream(reusable: false)]
            actions += answer(.badGateway, code: "unscannable_response", refusal)
            return actions
        }
        do {
            let filter = profile.documentFilter(head, exchange.route?.uri ?? head.uri, session)
            exchange.transformer = try HTTPBodyTransformer(plan: plan, choice: choice, recordingEngine: session.recordingEngine,
                                                  recordCap: configuration.recordCap, documentFilter: filter, pool: maskers,
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
                headers = try HTTPHeaderMasking.mask(headers, with: maskers.valueMasker(for: engine))
            } catch {
                var actions: [Action] = [.releaseUpstream(reusable: false)]
                actions += answer(.badGateway, code: "masking_failed", "the response headers could not be masked")
                return actions
            }
        }
        exchange.responseStatus = response.status
        var out = HTTPResponseHead(version: head.version, status: response.status, headers: headers)
        if let reviewID = exchange.reviewID { out.headers.add(name: "Sluice-Review", value: reviewID) }
        if plan.hasBody, !plan.knownText, exchange.transformer?.mode == .pending {
            // Text or binary is decided on the first body bytes; until then the head waits.
            exchange.heldHead = out
            exchange.heldPlan = plan
            return []
        }
        return [sendHead(out, plan: plan)]
    }

    /// The response head as it goes to the client, once the body's mode is known.
    private mutating func sendHead(_ response: HTTPResponseHead, plan: HTTPResponsePlan) -> Action {
        guard let head = exchange.head else { return .sendClient(.head(response)) }
        exchange.responseStarted = true
        let raw = exchange.transformer?.mode == .raw
        var out = response
        out.headers = plan.clientHeaders(response.headers, raw: raw)
        if !head.isKeepAlive || head.version.minor == 0 && plan.scan && !raw && plan.hasBody {
            out.headers.replaceOrAdd(name: "Connection", value: "close")
        }
        return .sendClient(.head(out))
    }

    /// Sends the held head once the exchange.transformer decided (or the body ended).
    private mutating func releaseHeldHead(into actions: inout [Action]) {
        guard let held = exchange.heldHead, let plan = exchange.heldPlan, exchange.transformer?.mode != .pending else { return }
        exchange.heldHead = nil
        exchange.heldPlan = nil
        actions.append(sendHead(held, plan: plan))
    }

    package mutating func responseBody(_ buffer: ByteBuffer) -> [Action] {
        guard case .forwarding = state, let transformer = exchange.transformer else { return [] }
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

    package mutating func responseEnd() -> [Action] {
        guard case .forwarding = state, let head = exchange.head else { return [] }
        var actions: [Action] = []
        if let transformer = exchange.transformer {
            do {
                let out = try transformer.finish()
                releaseHeldHead(into: &actions)
                if let out { actions.append(.sendClient(.body(.byteBuffer(out)))) }
            } catch {
                return failResponse(error)
            }
            session?.reportMasking(bytes: transformer.bytesIn, counts: transformer.counts, latency: exchange.started.map { configuration.clock() - $0 } ?? .zero)
        }
        recordExchangeEnd()
        let rewritten = exchange.transformer.map { $0.mode != .raw && $0.bytesOut != $0.bytesIn } ?? false
        retireExchange()
        actions.append(.sendClient(.end(nil)))
        actions.append(.releaseUpstream(reusable: exchange.upstreamKeepAlive && exchange.requestEnded))
        state = .idle
        if !head.isKeepAlive || (head.version.minor == 0 && rewritten) {
            actions.append(.closeClient(reason: "client asked to close"))
            state = .closed
        } else if !exchange.requestEnded {
            // The response came before the request body ended: the connection cannot be reused.
            actions.append(.closeClient(reason: "response before the request body ended"))
            state = .closed
        } else {
            actions.append(.readClient(true))
        }
        return actions
    }

    /// The upstream connection closed (not at a response boundary).
    package mutating func upstreamClosed() -> [Action] {
        guard case .forwarding = state else { return [] }
        return upstreamFailed("connection closed")
    }

    /// The exchange.head of a request did not arrive in time, or its body stalled.
    package mutating func timedOut() -> [Action] {
        switch state {
        case .idle:
            state = .closed
            return [.closeClient(reason: "idle")]
        case .forwarding where !exchange.responseStarted && !exchange.requestEnded:
            retireExchange()
            var actions: [Action] = [.releaseUpstream(reusable: false)]
            actions += answer(.requestTimeout, code: "request_timeout", "the request body stalled")
            return actions
        default:
            return []
        }
    }

    package mutating func clientClosed() -> [Action] {
        let previous = state
        state = .closed
        var actions: [Action] = []
        if case .forwarding = previous {
            retireExchange()
            session?.mark(.error("client left mid-exchange"))
            actions.append(.releaseUpstream(reusable: false))
        }
        if let session { actions.append(.closeSession(session)) }
        session = nil
        return actions
    }

    // MARK: - Internals

    private mutating func decide(_ session: any GovernedSession) -> [Action] {
        guard let head = exchange.head, let route = exchange.route else { return [] }
        session.record(SessionEvent(.input, text: "\(head.method.rawValue) \(route.uri)"))
        let commands = profile.commands(head, route.uri)
        // Only a retry over another transport (kubectl's SPDY after a refused WebSocket) reuses a
        // refusal; asking again the same way files a new review.
        let upgrade = head.headers[canonicalForm: "upgrade"]
        if !upgrade.isEmpty, !upgrade.contains(where: { $0.lowercased().contains("websocket") }), let token = sessionToken {
            state = .recallingRefusal
            return [.recallRefusal(key: HTTPRefusalMemory.key(token: token, commands: commands))]
        }
        return decide(session, commands: commands)
    }

    /// The guardrail decision on a request's commands: the first that is not allowed decides.
    private mutating func decide(_ session: any GovernedSession, commands: [Command]) -> [Action] {
        guard let head = exchange.head, let route = exchange.route else { return [] }
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
            exchange.reviewID = ticket.id
            return [.readClient(false), .awaitReview(ticket)]
        }
    }

    private mutating func forward(_ session: any GovernedSession) -> [Action] {
        let text = session.connection.target
        if parsedTarget?.text != text { parsedTarget = (text, HTTPTarget(text)) }
        guard let target = parsedTarget?.target else {
            return answer(.badGateway, code: "bad_target", "the connection's target is not an http(s) URL")
        }
        exchange.target = target
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
        if let reviewID = exchange.reviewID { headers.add(name: "Sluice-Review", value: reviewID) }
        let keepAlive = (exchange.head?.isKeepAlive ?? false) && !close
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let version = exchange.head?.version ?? .http1_1
        var actions: [Action] = [
            .sendClient(.head(HTTPResponseHead(version: version, status: status, headers: headers))),
            .sendClient(.body(.byteBuffer(ByteBuffer(bytes: body)))),
            .sendClient(.end(nil)),
        ]
        exchange.responseStarted = true
        state = .answered
        if !keepAlive || status == .requestTimeout || status == .notImplemented {
            state = .closed
            actions.append(.closeClient(reason: "answered \(status.code)"))
            return actions
        }
        if exchange.requestEnded {
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
        // Fail closed: what could not be masked is not sent; the client sees a cut response. The
        // record keeps what the client got before.
        retireExchange()
        session?.mark(.error("response could not be masked", reason: String(String(describing: error).prefix(120))))
        if !exchange.responseStarted {
            exchange.heldHead = nil
            exchange.heldPlan = nil
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
        if let requestRecorder = exchange.requestRecorder {
            _ = try? requestRecorder.finish()
            requestRecorder.flushRecord()
        }
    }

    /// Records a request body part (masked with the recording engine); the recorder is made at
    /// the first part, so a request without a body opens no stream.
    private mutating func recordRequestBody(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0, let session else { return }
        if exchange.requestRecorder == nil {
            exchange.requestRecorder = try? HTTPBodyTransformer(
                plan: HTTPResponsePlan(scan: true, coding: .identity, refusal: nil, hasBody: true),
                choice: .unmasked, recordingEngine: session.recordingEngine, recordCap: configuration.recordCap, kind: .input,
                pool: maskers, record: { [weak session] in session?.record($0) })
        }
        _ = try? exchange.requestRecorder?.write(buffer)
    }

    /// The exchange's bodies are done with: what their records kept is written, and their
    /// maskers go back to the connection's pool. Idempotent.
    private mutating func retireExchange() {
        exchange.requestRecorder?.recycle()
        exchange.requestRecorder = nil
        exchange.transformer?.recycle()
        exchange.transformer = nil
    }

    /// The exchange's record: what is left of its bodies and the closing marker (status, sizes),
    /// handed to the recorder in one append.
    private func recordExchangeEnd() {
        let status = exchange.responseStatus?.code ?? 0
        let cut = (exchange.transformer?.recordCut ?? false) || (exchange.requestRecorder?.recordCut ?? false)
        var events: [SessionEvent] = []
        if let event = exchange.requestRecorder?.takeRecord() { events.append(event) }
        if let event = exchange.transformer?.takeRecord() { events.append(event) }
        events.append(SessionMarker.exchange(status: Int(status), requestBytes: exchange.requestBytes,
                                             responseBytes: exchange.transformer?.bytesOut ?? 0,
                                             upstreamBytes: exchange.transformer?.bytesIn ?? 0, recordCut: cut).event)
        session?.record(events)
    }
}

extension MaskingChoice {
    var isMasked: Bool { if case .masked = self { true } else { false } }
}
