import Foundation
import NIOCore
import NIOHTTP1
import Testing
@testable import Adapters

@Suite struct HTTPRoutingTests {
    @Test func pathRoutingTakesTheFirstSegmentAndKeepsTheRest() {
        #expect(HTTPRoute.resolve(uri: "/api/v1/users?x=1", host: nil, routing: .path) == HTTPRoute(connection: "api", uri: "/v1/users?x=1"))
        #expect(HTTPRoute.resolve(uri: "/api", host: nil, routing: .path) == HTTPRoute(connection: "api", uri: "/"))
        #expect(HTTPRoute.resolve(uri: "/api?q", host: nil, routing: .path) == HTTPRoute(connection: "api", uri: "/?q"))
    }

    @Test func requestsWithoutAConnectionAreNotRouted() {
        for uri in ["/", "*", "http://evil/x", "/../etc", "/a b/x", "/%2e%2e/x"] {
            #expect(HTTPRoute.resolve(uri: uri, host: nil, routing: .path) == nil, "\(uri)")
        }
    }

    @Test func hostRoutingUsesTheSubdomainAndFallsBackToThePath() {
        let routing = HTTPRouting.host(suffix: "gw.example.com")
        #expect(HTTPRoute.resolve(uri: "/v1", host: "billing.GW.example.com:18080", routing: routing) == HTTPRoute(connection: "billing", uri: "/v1"))
        #expect(HTTPRoute.resolve(uri: "/billing/v1", host: "127.0.0.1:18080", routing: routing) == HTTPRoute(connection: "billing", uri: "/v1"))
        // Connection names may hold dots, so deeper subdomains name such connections.
        #expect(HTTPRoute.resolve(uri: "/v1", host: "a.b.gw.example.com", routing: routing) == HTTPRoute(connection: "a.b", uri: "/v1"))
        #expect(HTTPRoute.resolve(uri: "/v1", host: "x y.gw.example.com", routing: routing) == nil)
    }

    @Test func targetsParseWithDefaultsAndBasePath() {
        #expect(HTTPTarget("http://127.0.0.1:9000") == HTTPTarget("http://127.0.0.1:9000/"))
        let target = HTTPTarget("https://api.internal/base/")
        #expect(target?.tls == true && target?.port == 443 && target?.basePath == "/base" && target?.hostHeader == "api.internal")
        #expect(HTTPTarget("ftp://x") == nil && HTTPTarget("http://") == nil && HTTPTarget("http://user@host/") == nil)
        #expect(HTTPTarget("http://[::1]:8080")?.hostHeader == "[::1]:8080")
    }
}

@Suite struct HTTPHeaderRulesTests {
    @Test func theUsersTokenComesFromBearerOrBasic() {
        #expect(HTTPHeaderRules.token(from: ["Authorization": "Bearer abc.def"]) == "abc.def")
        let basic = "Basic " + Data("alice:tok-1".utf8).base64EncodedString()
        #expect(HTTPHeaderRules.token(from: ["authorization": basic]) == "tok-1")
        #expect(HTTPHeaderRules.token(from: ["Authorization": "Bearer "]) == nil)
        #expect(HTTPHeaderRules.token(from: ["Authorization": "Digest x"]) == nil)
        #expect(HTTPHeaderRules.token(from: [:]) == nil)
    }

    @Test func upstreamHeadersReplaceTheTokenAndDropHopByHopFields() {
        let client: HTTPHeaders = [
            "Host": "127.0.0.1:18080", "Authorization": "Bearer user-token", "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "1", "Keep-Alive": "timeout=5", "TE": "trailers", "Accept-Encoding": "br, gzip;q=0.8, zstd",
            "X-Forwarded-For": "10.0.0.1", "Accept": "application/json",
        ]
        let headers = HTTPHeaderRules.upstreamHeaders(client, clientAddress: "127.0.0.1", clientScheme: "https", upstreamHost: "api:9000",
                                                      credential: .bearer(Secret("svc-token")), scanning: true)
        #expect(headers["authorization"] == ["Bearer svc-token"])
        #expect(headers["host"] == ["api:9000"])
        #expect(headers["x-secret-hop"].isEmpty && headers["keep-alive"].isEmpty && headers["te"].isEmpty && headers["connection"].isEmpty)
        #expect(headers["x-forwarded-for"] == ["10.0.0.1, 127.0.0.1"])
        #expect(headers["x-forwarded-proto"] == ["https"] && headers["x-forwarded-host"] == ["127.0.0.1:18080"])
        #expect(headers["accept-encoding"] == ["gzip;q=0.8"])
        #expect(headers["accept"] == ["application/json"])
    }

    @Test func credentialsBecomeBasicOrANamedHeader() {
        var headers = HTTPHeaders()
        HTTPCredential(Credential(username: "svc", password: Secret("pw")))?.apply(to: &headers)
        #expect(headers["authorization"] == ["Basic " + Data("svc:pw".utf8).base64EncodedString()])
        headers = HTTPHeaders()
        HTTPCredential(Credential(token: Secret("k-1"), headerName: "X-Api-Key"))?.apply(to: &headers)
        #expect(headers["x-api-key"] == ["k-1"] && headers["authorization"].isEmpty)
        #expect(HTTPCredential(Credential()) == nil)
    }

    @Test func nothingScannableMeansIdentityIsAsked() {
        let headers = HTTPHeaderRules.upstreamHeaders(["Accept-Encoding": "br"], clientAddress: nil, clientScheme: "http",
                                                      upstreamHost: "h", credential: nil, scanning: true)
        #expect(headers["accept-encoding"] == ["identity"])
    }
}

@Suite struct HTTPResponsePlanTests {
    @Test func textLikeTypesAreScannedAndBinaryOnesPass() {
        for type in ["application/json; charset=utf-8", "text/html", "application/vnd.api+json", "application/x-ndjson", "text/event-stream", "application/xml"] {
            #expect(HTTPResponsePlan.isScanned(contentType: type), "\(type)")
        }
        #expect(HTTPResponsePlan.isScanned(contentType: nil))
        for type in ["image/png", "application/octet-stream", "application/pdf", "video/mp4"] {
            #expect(!HTTPResponsePlan.isScanned(contentType: type), "\(type)")
        }
    }

    @Test func codingsTheGatewayCannotDecodeAreRefused() {
        let gzip = HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Type": "application/json", "Content-Encoding": "gzip"])
        #expect(gzip.coding == .gzip && gzip.refusal == nil)
        let brotli = HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Type": "text/plain", "Content-Encoding": "br"])
        #expect(brotli.refusal != nil)
        let stacked = HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Encoding": "gzip, gzip"])
        #expect(stacked.refusal != nil)
        let binary = HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Type": "image/png", "Content-Encoding": "br"])
        #expect(binary.refusal == nil && !binary.scan)
    }

    @Test func headAndNoContentResponsesHaveNoBody() {
        #expect(!HTTPResponsePlan.make(requestMethod: .HEAD, status: .ok, headers: [:]).hasBody)
        #expect(!HTTPResponsePlan.make(requestMethod: .GET, status: .noContent, headers: [:]).hasBody)
        #expect(!HTTPResponsePlan.make(requestMethod: .GET, status: .notModified, headers: [:]).hasBody)
    }

    @Test func rewrittenBodiesLoseTheirLengthAndStrongValidators() {
        let plan = HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Type": "application/json"])
        let headers = plan.clientHeaders(["Content-Length": "120", "Content-Encoding": "gzip", "ETag": "\"abc\"", "Accept-Ranges": "bytes",
                                          "Transfer-Encoding": "chunked", "Cache-Control": "no-cache"])
        #expect(headers["content-length"].isEmpty && headers["content-encoding"].isEmpty && headers["accept-ranges"].isEmpty)
        #expect(headers["transfer-encoding"].isEmpty)
        #expect(headers["etag"] == ["W/\"abc\""] && headers["cache-control"] == ["no-cache"])
    }
}

@Suite struct InflaterTests {
    static let text = String(repeating: #"{"email":"jane.doe@example.com","n":1}"# + "\n", count: 3)
    static let gzip = Array(Data(base64Encoded: "H4sIAAAAAAACA6tWSs1NzMxRslLKSsxL1UvJT3VIrUjMLchJ1UvOz1XSUcpTsjKs5aqmqjIA66mEnnUAAAA=")!)
    static let zlib = Array(Data(base64Encoded: "eJyrVkrNTczMUbJSykrMS9VLyU91SK1IzC3ISdVLzs9V0lHKU7IyrOWqpqoyAPAoJhc=")!)

    func inflate(_ format: Inflater.Format, _ bytes: [UInt8], split: Int, maximumOutput: Int = 1 << 20) throws -> String {
        let inflater = Inflater(format: format, maximumOutput: maximumOutput)
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let end = min(index + split, bytes.count)
            try bytes[index..<end].withUnsafeBytes { try inflater.write($0) { out += $0 } }
            index = end
        }
        try inflater.finish()
        return String(decoding: out, as: UTF8.self)
    }

    @Test func gzipAndZlibDecodeWhateverTheChunking() throws {
        for split in [1, 2, 3, 7, 64, 1000] {
            #expect(try inflate(.gzip, Self.gzip, split: split) == Self.text, "split \(split)")
            #expect(try inflate(.deflate, Self.zlib, split: split) == Self.text, "split \(split)")
        }
    }

    @Test func rawDeflateIsAcceptedForDeflate() throws {
        // zlib minus its 2-byte header and 4-byte checksum is raw deflate.
        let raw = Array(Self.zlib.dropFirst(2).dropLast(4))
        #expect(try inflate(.deflate, raw, split: 5) == Self.text)
    }

    @Test func corruptTruncatedAndOversizeBodiesFail() {
        var corrupt = Self.gzip
        corrupt[12] ^= 0xff
        corrupt[13] ^= 0xff
        #expect(throws: Inflater.Failure.self) { try inflate(.gzip, corrupt, split: 100) }
        #expect(throws: Inflater.Failure.self) { try inflate(.gzip, Array(Self.gzip.dropLast(10)), split: 100) }
        #expect(throws: Inflater.Failure.self) { try inflate(.gzip, Self.gzip, split: 100, maximumOutput: 50) }
    }
}

@Suite struct HTTPProxyMachineTests {
    static let target = ConnectionTarget(name: "api", kind: .http, target: "http://127.0.0.1:9000/base",
                                         credential: Credential(token: Secret("svc-token")))

    func governor(rules: [@Sendable (Command) -> Decision?] = [], outcome: ReviewOutcome = .approved(by: ["lead"])) -> InMemoryGovernor {
        InMemoryGovernor(tokens: ["tok-alice": Identity(user: "alice", groups: ["eng"], issuer: "test"),
                                  "tok-dora": Identity(user: "dora", groups: ["dpo"], issuer: "test")],
                         connections: [Self.target], engine: testEngine, rules: rules, reviewOutcome: outcome, unmaskedGroups: ["dpo"])
    }

    func head(_ method: HTTPMethod = .GET, _ uri: String, token: String? = "tok-alice") -> HTTPRequestHead {
        var headers: HTTPHeaders = ["Host": "gw"]
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        return HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)
    }

    /// Runs a request to the point where it goes upstream; returns the upstream head.
    func open(_ machine: inout HTTPProxyMachine, _ governor: InMemoryGovernor, _ request: HTTPRequestHead) async throws -> [HTTPProxyMachine.Action] {
        let actions = machine.requestHead(request, clientAddress: "10.1.1.1")
        guard case .openSession(let token, let connection)? = actions.last else { return actions }
        let session = try await governor.openSession(token: token, connection: connection, kind: .http, peer: "t")
        return machine.sessionOpened(session)
    }

    func status(_ actions: [HTTPProxyMachine.Action]) -> HTTPResponseStatus? {
        for case .sendClient(.head(let head)) in actions { return head.status }
        return nil
    }

    func body(_ actions: [HTTPProxyMachine.Action]) -> String {
        var out = ""
        for case .sendClient(.body(.byteBuffer(let buffer))) in actions { out += String(buffer: buffer) }
        return out
    }

    @Test func anAllowedRequestGoesUpstreamWithTheConnectionsCredential() async throws {
        let governor = governor()
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        let actions = try await open(&machine, governor, head(.GET, "/api/v1/users?page=2"))
        guard case .connectUpstream(_, let target)? = actions.first else { Issue.record("\(actions)"); return }
        #expect(target.port == 9000)
        var upstreamHead: HTTPRequestHead?
        for case .sendUpstream(.head(let head)) in machine.upstreamConnected() { upstreamHead = head }
        #expect(upstreamHead?.uri == "/base/v1/users?page=2")
        #expect(upstreamHead?.headers["authorization"] == ["Bearer svc-token"])
        #expect(upstreamHead?.headers["x-forwarded-for"] == ["10.1.1.1"])
    }

    @Test func responseBodiesAreMaskedAndRecordedMasked() async throws {
        let governor = governor()
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        _ = try await open(&machine, governor, head(.GET, "/api/users"))
        _ = machine.upstreamConnected()
        _ = machine.requestEnd()
        let head = machine.responseHead(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Type": "application/json", "Content-Length": "40"]))
        var headers: HTTPHeaders?
        for case .sendClient(.head(let response)) in head { headers = response.headers }
        #expect(headers?["content-length"].isEmpty == true)
        var out = body(machine.responseBody(ByteBuffer(string: #"{"email":"jane.doe@exa"#)))
        out += body(machine.responseBody(ByteBuffer(string: #"mple.com"}"#)))
        let end = machine.responseEnd()
        out += body(end)
        #expect(out == #"{"email":"[EMAIL]"}"#)
        #expect(end.contains { if case .releaseUpstream(reusable: true) = $0 { true } else { false } })
        let recorded = governor.events.map { String(decoding: $0.event.data, as: UTF8.self) }.joined()
        #expect(!recorded.contains("jane.doe") && recorded.contains("[EMAIL]") && recorded.contains(#""status":200"#))
    }

    @Test func unscannableEncodingsAreRefusedNeverForwarded() async throws {
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        _ = try await open(&machine, governor(), head(.GET, "/api/x"))
        _ = machine.upstreamConnected()
        _ = machine.requestEnd()
        let actions = machine.responseHead(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Type": "text/plain", "Content-Encoding": "zstd"]))
        #expect(status(actions) == .badGateway)
        #expect(actions.contains { if case .releaseUpstream(reusable: false) = $0 { true } else { false } })
        #expect(machine.responseBody(ByteBuffer(string: "jane.doe@example.com")).isEmpty)
    }

    @Test func blockedRequestsGet403AndNeverGoUpstream() async throws {
        let governor = governor(rules: [{ $0.text.hasPrefix("DELETE ") ? .block(message: "no deletes") : nil }])
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        let actions = try await open(&machine, governor, head(.DELETE, "/api/items/1"))
        #expect(status(actions) == .forbidden)
        #expect(body(actions).contains("no deletes"))
        #expect(!actions.contains { if case .connectUpstream = $0 { true } else { false } })
        #expect(machine.requestEnd().contains { if case .readClient(true) = $0 { true } else { false } })
        #expect(machine.isIdle)
    }

    @Test func reviewedRequestsWaitThenRunOrFail() async throws {
        let review: @Sendable (Command) -> Decision? = {
            $0.classes.contains("write") ? .review(ReviewTicket(id: "r-9", approveHint: "sluice reviews approve r-9") { .timedOut }) : nil
        }
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        let held = try await open(&machine, governor(rules: [review]), head(.POST, "/api/refunds"))
        #expect(held.contains { if case .awaitReview = $0 { true } else { false } })
        #expect(machine.requestBody(ByteBuffer(string: "{}")).contains { if case .readClient(false) = $0 { true } else { false } })
        #expect(machine.reviewDecided(.approved(by: ["lead"])).contains { if case .connectUpstream = $0 { true } else { false } })
        let sent = machine.upstreamConnected()
        #expect(sent.contains { if case .sendUpstream(.body) = $0 { true } else { false } })

        var denied = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        _ = try await open(&denied, governor(rules: [review]), head(.POST, "/api/refunds"))
        let actions = denied.reviewDecided(.denied(by: "lena", reason: "not today"))
        #expect(status(actions) == .forbidden && body(actions).contains("denied by lena: not today"))
    }

    @Test func missingOrBadTokensAndUnknownConnectionsAreAnswered() async throws {
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        let noToken = machine.requestHead(head(.GET, "/api/x", token: nil), clientAddress: nil)
        #expect(status(noToken) == .unauthorized)
        _ = machine.requestEnd()
        _ = machine.requestHead(head(.GET, "/api/x", token: "wrong"), clientAddress: nil)
        #expect(status(machine.sessionRefused(GovernorError(.unauthenticated, "bad token"))) == .unauthorized)
        _ = machine.requestEnd()
        #expect(status(machine.requestHead(head(.GET, "/"), clientAddress: nil)) == .notFound)
    }

    @Test func aMaskingFailureMidStreamCutsTheConnection() async throws {
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        _ = try await open(&machine, governor(), head(.GET, "/api/x"))
        _ = machine.upstreamConnected()
        _ = machine.requestEnd()
        _ = machine.responseHead(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Type": "text/plain", "Content-Encoding": "gzip"]))
        let actions = machine.responseBody(ByteBuffer(bytes: [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff]))
        #expect(actions.contains { if case .closeClient = $0 { true } else { false } })
        #expect(body(actions).isEmpty)
    }
}
