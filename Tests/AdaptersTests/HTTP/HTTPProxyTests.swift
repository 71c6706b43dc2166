import MaskEngine
import Foundation
import NIOCore
import NIOEmbedded
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
    @Test func everyBodyIsScannedUnlessItsTypeIsOnThePassThroughList() {
        for type in ["application/json; charset=utf-8", "application/octet-stream", "application/x-json", "multipart/mixed; boundary=x",
                     "text/x-sql", "application/toml", "application/json, application/octet-stream", "image/png"] {
            let plan = HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Type": type])
            #expect(plan.scan && !plan.passThrough && plan.refusal == nil, "\(type)")
        }
        #expect(HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: [:]).scan)
        let list = ["image/*", "application/zip"]
        for type in ["image/png", "IMAGE/jpeg; q=1", "application/zip"] {
            #expect(HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Type": type], passThrough: list).passThrough, "\(type)")
        }
        for type in ["application/zip, text/plain", "application/zipx", "imagex/png", "text/plain"] {
            #expect(!HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Type": type], passThrough: list).passThrough, "\(type)")
        }
        #expect(!HTTPResponsePlan.isPassThrough("image/png", list: ["*/*"]))
    }

    @Test func charsetsThatHideASCIIAreRefused() {
        for type in ["text/plain; charset=utf-16", "application/json;charset=\"UTF-16LE\"", "text/csv; charset=utf-32", "text/plain; charset=shift_jis"] {
            #expect(HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Type": type]).refusal != nil, "\(type)")
        }
        for type in ["text/plain; charset=utf-8", "application/json; charset=ISO-8859-1", "text/html;charset=us-ascii"] {
            #expect(HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Type": type]).refusal == nil, "\(type)")
        }
    }

    @Test func aConnectionsPlanCacheGivesEachResponseThePlanItsOwnHeadersMake() {
        var cache = HTTPResponsePlanCache()
        let list = ["image/*"]
        // Alternating types, codings, charsets, lists and statuses: the cached answer is always
        // the one made from scratch.
        let responses: [(HTTPMethod, HTTPResponseStatus, HTTPHeaders, [String])] = [
            (.GET, .ok, ["Content-Type": "application/json"], list),
            (.GET, .ok, ["Content-Type": "application/json"], list),
            (.GET, .ok, ["Content-Type": "image/png"], list),
            (.GET, .ok, ["Content-Type": "image/png"], []),
            (.GET, .ok, ["Content-Type": "image/png", "Content-Encoding": "gzip"], list),
            (.GET, .ok, ["Content-Type": "text/plain; charset=utf-16"], list),
            (.GET, .ok, ["Content-Type": "application/json", "Content-Encoding": "br"], list),
            (.GET, .ok, ["Content-Type": "application/json", "Content-Encoding": "gzip"], list),
            (.HEAD, .ok, ["Content-Type": "application/json", "Content-Encoding": "gzip"], list),
            (.GET, .noContent, ["Content-Type": "application/json"], list),
            (.GET, .ok, ["Content-Type": "application/json"], list),
            (.GET, .ok, ["Content-Type": "application/json", "content-type": "image/png"], list),
        ]
        for (method, status, headers, passThrough) in responses {
            let expected = HTTPResponsePlan.make(requestMethod: method, status: status, headers: headers, passThrough: passThrough)
            let cached = cache.plan(requestMethod: method, status: status, headers: headers, passThrough: passThrough)
            #expect(cached == expected, "\(method) \(status) \(headers) \(passThrough)")
        }
    }

    @Test func binarySniffingFindsNULsByteOrderMarksAndControls() {
        func binary(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { HTTPBodyTransformer.looksBinary($0) } }
        #expect(binary([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D]))
        #expect(binary([0xFF, 0xFE, 0x7B, 0x00]) && binary([0xFE, 0xFF, 0x00, 0x7B]))
        #expect(binary(Array("{\"a\":1}".utf8) + [0]))
        #expect(binary([1, 2, 3, 4, 5, 65, 66]))
        #expect(!binary(Array("{\"email\":\"jane@example.com\"}\r\n\tok".utf8)) && !binary(Array("caf\u{e9} \u{FF11}".utf8)))
    }

    @Test func codingsTheGatewayCannotDecodeAreRefused() {
        let gzip = HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Type": "application/json", "Content-Encoding": "gzip"])
        #expect(gzip.coding == .gzip && gzip.refusal == nil)
        let brotli = HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Type": "text/plain", "Content-Encoding": "br"])
        #expect(brotli.refusal != nil)
        let stacked = HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Encoding": "gzip, gzip"])
        #expect(stacked.refusal != nil)
        let binary = HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Type": "image/png", "Content-Encoding": "br"],
                                           passThrough: ["image/*"])
        #expect(binary.refusal == nil && !binary.scan)
        let unlisted = HTTPResponsePlan.make(requestMethod: .GET, status: .ok, headers: ["Content-Type": "image/png", "Content-Encoding": "br"])
        #expect(unlisted.refusal != nil)
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

@Suite struct HTTPPathTests {
    func normalised(_ uri: String) -> String? {
        if case .success(let path) = HTTPPath.normalise(uri) { return path }
        return nil
    }

    func refusal(_ uri: String) -> HTTPRefusal? {
        if case .failure(let refusal) = HTTPPath.normalise(uri) { return refusal }
        return nil
    }

    @Test func everySpellingOfAPathNormalisesToOne() {
        for uri in ["/admin", "//admin", "/./admin", "/%61dmin", "/x/../admin", "/x/./y/../../admin", "/%61%64%6D%69%6E"] {
            #expect(normalised(uri) == "/admin", "\(uri)")
        }
        #expect(normalised("/a/b/") == "/a/b/")
        #expect(normalised("/a/.") == "/a/")
        #expect(normalised("/a/%7e%20b%3f") == "/a/~%20b%3F")
        #expect(normalised("/a?next=../../x//y") == "/a?next=../../x//y")
        #expect(normalised("/") == "/")
    }

    @Test func escapesThatChangeTheStructureAreRefused() {
        for uri in ["/%2e%2e/admin", "/x/%2E./admin", "/..%2fadmin", "/a%2Fb", "/a%5cb", "/a\\b", "/a%zz", "/a%4", "/a#frag", "/a\u{1}b"] {
            #expect(refusal(uri)?.status == .badRequest, "\(uri)")
        }
    }

    @Test func climbingAboveTheBaseIsForbidden() {
        for uri in ["/../admin", "/x/../../admin", "/..", "/./../admin"] {
            #expect(refusal(uri)?.code == "path_escapes", "\(uri)")
        }
    }

    @Test func headIsDecidedLikeGetToo() {
        #expect(HTTPCommands.requests(method: .HEAD, uri: "/admin").map(\.text) == ["HEAD /admin", "GET /admin"])
        #expect(HTTPCommands.requests(method: .GET, uri: "/admin").map(\.text) == ["GET /admin"])
    }
}

@Suite struct TextNormaliserTests {
    func normalise(_ text: String, split: Int) -> String {
        let normaliser = TextNormaliser()
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let end = min(index + split, bytes.count)
            bytes[index..<end].withUnsafeBytes { normaliser.write($0) { out += $0 } }
            index = end
        }
        normaliser.finish { out += $0 }
        return String(decoding: out, as: UTF8.self)
    }

    @Test func jsonEscapesAreDecodedButStructuralOnesStay() {
        let cases: [(String, String)] = [
            (#"{"e":"jane.doe\u0040example.com"}"#, #"{"e":"jane.doe@example.com"}"#),
            (#""\u006a\u0061ne""#, #""jane""#),
            (#""a\/b""#, #""a/b""#),
            (#""\ud83d\ude00""#, "\"\u{1F600}\""),
            (#""caf\u00e9 \u65e5 \uff10""#, "\"caf\u{E9} \u{65E5} 0\""),
            (#""q\u0022\u005c\u000a""#, #""q\u0022\u005c\u000a""#),
            (#""\\u0040""#, #""\\u0040""#),
            (#""\ud83d x""#, #""\ud83d x""#),
            (#""\u00zz""#, #""\u00zz""#),
            (#"tail \u00"#, #"tail \u00"#),
        ]
        for (input, expected) in cases {
            for split in [1, 2, 3, 5, 7, 1000] {
                #expect(normalise(input, split: split) == expected, "\(input) split \(split)")
            }
        }
    }

    @Test func fullwidthFormsDigitsAndInvisibleCharactersNormalise() {
        for split in [1, 2, 4, 1000] {
            #expect(normalise("\u{FF12}\u{FF16}\u{FF18}-45-8731", split: split) == "268-45-8731")
            #expect(normalise("jane.doe\u{FF20}example\u{FF0E}com", split: split) == "jane.doe@example.com")
            #expect(normalise("jane\u{200B}.doe@exa\u{2060}mple.\u{FEFF}com\u{200D}", split: split) == "jane.doe@example.com")
            #expect(normalise("\u{0662}\u{0666}\u{0668} \u{1D7D0}", split: split) == "268 2")
            #expect(normalise("caf\u{E9} \u{65E5}\u{672C}", split: split) == "caf\u{E9} \u{65E5}\u{672C}")
        }
        // Bytes that are not UTF-8 pass unchanged.
        let latin1: [UInt8] = [0x63, 0x61, 0x66, 0xE9, 0x21]
        #expect(TextNormaliser.normalise(latin1) == latin1)
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

    @Test func aConnectionsExchangesReuseItsMaskersAndRecordEachBodyOnce() async throws {
        let governor = governor()
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        for round in 1...3 {
            _ = try await respond(&machine, governor, uri: "/api/users/\(round)", headers: ["Content-Type": "application/json"])
            var out = body(machine.responseBody(ByteBuffer(string: #"{"email":"jane.doe@exa"#)))
            out += body(machine.responseBody(ByteBuffer(string: #"mple.com","n":"#)))
            out += body(machine.responseBody(ByteBuffer(string: "\(round)}")))
            out += body(machine.responseEnd())
            #expect(out == #"{"email":"[EMAIL]","n":"# + "\(round)}")
            // The response's stream masker went back to the connection's pool: one, reused.
            #expect(machine.idleStreamMaskers == 1)
        }
        let events = governor.events.map(\.event)
        // A GET without a body records its request line only (no body recorder, no stream opened);
        // each body, written in three chunks, is one output event.
        #expect(events.filter { $0.kind == .input }.map { String(decoding: $0.data, as: UTF8.self) }
                == ["GET /users/1", "GET /users/2", "GET /users/3"])
        let outputs = events.filter { $0.kind == .output }.map { String(decoding: $0.data, as: UTF8.self) }
        #expect(outputs == (1...3).map { #"{"email":"[EMAIL]","n":"# + "\($0)}" })
    }

    @Test func anAbandonedResponseKeepsWhatTheClientGotInTheRecord() async throws {
        let governor = governor()
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        _ = try await respond(&machine, governor, headers: ["Content-Type": "text/plain"])
        let sent = body(machine.responseBody(ByteBuffer(string: String(repeating: "line of text ", count: 200))))
        #expect(!sent.isEmpty)
        _ = machine.clientClosed()
        let recorded = governor.events.filter { $0.event.kind == .output }.map { String(decoding: $0.event.data, as: UTF8.self) }.joined()
        #expect(recorded == sent)
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

    @Test func aReviewRefusalIsKeptForTheSameRequestRetriedOverAnotherTransport() async throws {
        let review: @Sendable (Command) -> Decision? = {
            $0.text.hasPrefix("POST ") ? .review(ReviewTicket(id: "r-7", approveHint: "sluice reviews approve r-7") { .timedOut }) : nil
        }
        var profile = HTTPProxyProfile.http
        profile.allowsUpgrade = { _, _ in true }
        func upgrade(_ name: String) -> HTTPRequestHead {
            var request = head(.POST, "/api/exec")
            request.headers.add(name: "Connection", value: "Upgrade")
            request.headers.add(name: "Upgrade", value: name)
            return request
        }
        // The first try (WebSocket) is reviewed and denied: the machine asks to remember it.
        var first = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: profile)
        let held = try await open(&first, governor(rules: [review]), upgrade("websocket"))
        #expect(held.contains { if case .awaitReview = $0 { true } else { false } })
        let denied = first.reviewDecided(.denied(by: "lena", reason: "not now"))
        var remembered: (String, HTTPRefusal)?
        for case .rememberRefusal(let key, let refusal) in denied { remembered = (key, refusal) }
        #expect(remembered?.1.code == "review_denied" && status(denied) == .forbidden)

        // The retry over SPDY asks for that key and gets the same answer, without a new review.
        var retry = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: profile)
        let asked = try await open(&retry, governor(rules: [review]), upgrade("SPDY/3.1"))
        guard case .recallRefusal(let key)? = asked.last else { Issue.record("\(asked)"); return }
        #expect(key == remembered?.0)
        let answered = retry.refusalRecalled(remembered?.1)
        #expect(status(answered) == .forbidden && body(answered).contains("denied by lena"))
        #expect(!answered.contains { if case .awaitReview = $0 { true } else { false } })

        // Nothing remembered: the retry is decided as usual (a review of its own).
        var fresh = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: profile)
        _ = try await open(&fresh, governor(rules: [review]), upgrade("SPDY/3.1"))
        #expect(fresh.refusalRecalled(nil).contains { if case .awaitReview = $0 { true } else { false } })
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

    @Test func aRequestWaitingWhenTheGatewayEndsTheSessionIsToldWhy() async throws {
        let review: @Sendable (Command) -> Decision? = {
            $0.classes.contains("write") ? .review(ReviewTicket(id: "r-9", approveHint: "sluice reviews approve r-9") { .timedOut }) : nil
        }
        var held = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        _ = try await open(&held, governor(rules: [review]), head(.POST, "/api/refunds"))
        let actions = held.terminated("gateway shutting down")
        #expect(status(actions) == .serviceUnavailable)
        #expect(body(actions).contains("session_ended") && body(actions).contains("gateway shutting down"))
        #expect(actions.contains { if case .closeClient = $0 { true } else { false } })
        // An idle kept-alive connection has nothing to be told.
        var idle = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        #expect(idle.terminated("gateway shutting down").isEmpty)
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

    /// Runs a GET to the point where the response head arrives; returns the head's actions.
    func respond(_ machine: inout HTTPProxyMachine, _ governor: InMemoryGovernor, token: String = "tok-alice", uri: String = "/api/x",
                 method: HTTPMethod = .GET, status: HTTPResponseStatus = .ok, headers: HTTPHeaders) async throws -> [HTTPProxyMachine.Action] {
        _ = try await open(&machine, governor, head(method, uri, token: token))
        _ = machine.upstreamConnected()
        _ = machine.requestEnd()
        return machine.responseHead(HTTPResponseHead(version: .http1_1, status: status, headers: headers))
    }

    func headers(_ actions: [HTTPProxyMachine.Action]) -> HTTPHeaders? {
        for case .sendClient(.head(let head)) in actions { return head.headers }
        return nil
    }

    func exchange(_ machine: inout HTTPProxyMachine, _ governor: InMemoryGovernor, contentType: String?, body: [UInt8],
                  connection: ConnectionTarget? = nil, token: String = "tok-alice") async throws -> (HTTPResponseStatus?, HTTPHeaders?, [UInt8]) {
        var response: HTTPHeaders = ["Content-Length": String(body.count)]
        if let contentType { response.add(name: "Content-Type", value: contentType) }
        var actions = try await respond(&machine, governor, token: token, headers: response)
        actions += machine.responseBody(ByteBuffer(bytes: body))
        actions += machine.responseEnd()
        var out: [UInt8] = []
        for case .sendClient(.body(.byteBuffer(let buffer))) in actions { out += Array(buffer.readableBytesView) }
        return (status(actions), headers(actions), out)
    }

    @Test func bodiesOfUnlistedTypesAreScannedAsText() async throws {
        let pii = #"{"email":"jane.doe@example.com"}"#
        for type in ["application/octet-stream", "application/x-json", "multipart/mixed; boundary=b", "text/x-sql", "application/toml",
                     "application/json, application/octet-stream", nil] as [String?] {
            var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
            let (status, _, out) = try await exchange(&machine, governor(), contentType: type, body: Array(pii.utf8))
            #expect(status == .ok && String(decoding: out, as: UTF8.self) == #"{"email":"[EMAIL]"}"#, "\(type ?? "none")")
        }
    }

    @Test func encodedValuesAreNormalisedAndMasked() async throws {
        for text in [#"{"e":"jane.doe\u0040example.com"}"#, "{\"e\":\"jane\u{200B}.doe@example.com\"}", "{\"e\":\"jane.doe\u{FF20}example.com\"}",
                     "{\"ssn\":\"\u{FF12}\u{FF16}\u{FF18}-\u{FF14}\u{FF15}-\u{FF18}\u{FF17}\u{FF13}\u{FF11}\"}"] {
            var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
            let governor = governor()
            let (_, _, out) = try await exchange(&machine, governor, contentType: "application/json", body: Array(text.utf8))
            let shown = String(decoding: out, as: UTF8.self)
            #expect(!shown.contains("jane") && !shown.contains("268-45") && shown.contains("["), "\(text) -> \(shown)")
            let recorded = governor.events.map { String(decoding: $0.event.data, as: UTF8.self) }.joined()
            #expect(!recorded.contains("jane") && !recorded.contains("268-45"))
        }
    }

    @Test func binaryBodiesAreRefusedUnlessTheirTypePassesThrough() async throws {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D] + Array("jane.doe@example.com".utf8)
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        let (refused, _, refusedBody) = try await exchange(&machine, governor(), contentType: "application/octet-stream", body: png)
        #expect(refused == .badGateway && String(decoding: refusedBody, as: UTF8.self).contains("pass-through"))

        var listed = Self.target
        listed.options["http.pass_through_types"] = "image/*,application/zip"
        let passing = InMemoryGovernor(tokens: ["tok-alice": Identity(user: "alice", groups: ["eng"], issuer: "test")], connections: [listed],
                                       engine: testEngine)
        machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        let (passed, passedHeaders, out) = try await exchange(&machine, passing, contentType: "image/png", body: png)
        #expect(passed == .ok && out == png && passedHeaders?["content-length"] == [String(png.count)])

        // Text under a pass-through type (SVG under image/*) is scanned all the same.
        machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        let (_, _, svg) = try await exchange(&machine, passing, contentType: "image/svg+xml", body: Array("<svg>jane.doe@example.com</svg>".utf8))
        #expect(String(decoding: svg, as: UTF8.self) == "<svg>[EMAIL]</svg>")

        // UTF-16 (BOM, or NULs between ASCII) is not text the detectors can read: refused when the
        // head is still held (a generic type), cut when it went out (a known text type).
        let utf16: [UInt8] = [0xFF, 0xFE] + Array("jane.doe@example.com".utf16).flatMap { unit -> [UInt8] in [UInt8(unit & 0xff), UInt8(unit >> 8)] }
        machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        #expect(try await exchange(&machine, governor(), contentType: nil, body: utf16).0 == .badGateway)
        machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        let jsonHead = try await respond(&machine, governor(), headers: ["Content-Type": "application/json"])
        #expect(status(jsonHead) == .ok)
        let cut = machine.responseBody(ByteBuffer(bytes: utf16))
        #expect(cut.contains { if case .closeClient = $0 { true } else { false } } && body(cut).isEmpty)
    }

    @Test func aNULAfterTheFirstBytesCutsTheResponse() async throws {
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        let head = try await respond(&machine, governor(), headers: ["Content-Type": "application/octet-stream"])
        #expect(head.isEmpty)   // held until the first bytes say text or binary
        let first = machine.responseBody(ByteBuffer(string: "hello "))
        #expect(status(first) == .ok)
        let second = machine.responseBody(ByteBuffer(bytes: Array("j\0a\0n\0e\0".utf8)))
        #expect(second.contains { if case .closeClient = $0 { true } else { false } })
        #expect(body(second).isEmpty)
    }

    @Test func responseHeadersAreMaskedOnEveryStatus() async throws {
        for status in [HTTPResponseStatus.ok, .found, .notModified] {
            var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
            let actions = try await respond(&machine, governor(), status: status, headers: [
                "Content-Type": "application/json", "X-Customer-Email": "jane.doe@example.com", "Location": "/users/jane.doe%40example.com",
                "Set-Cookie": "who=jane.doe@example.com; Path=/", "X-Ssn": "\u{FF12}68-45-8731", "ETag": "\"v1\"", "Content-Length": "0",
            ])
            let sent: HTTPHeaders?
            if let direct = headers(actions) { sent = direct } else { sent = headers(machine.responseEnd()) }
            let all = sent.map { $0.map { "\($0.name): \($0.value)" }.joined(separator: "\n") } ?? ""
            #expect(!all.contains("jane") && !all.contains("268-45") && all.contains("[EMAIL]"), "\(status.code): \(all)")
            #expect(sent?["content-type"] == ["application/json"])
        }
        // An unmasked user sees the headers as they are.
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        let actions = try await respond(&machine, governor(), token: "tok-dora", status: .notModified, headers: ["X-Customer-Email": "jane.doe@example.com"])
        #expect(headers(actions)?["x-customer-email"] == ["jane.doe@example.com"])
    }

    @Test func rangesAreStrippedAndPartialAnswersRefusedWhenMasked() async throws {
        var request = head(.GET, "/api/file")
        request.headers.add(name: "Range", value: "bytes=0-3")
        request.headers.add(name: "If-Range", value: "\"v1\"")
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        _ = try await open(&machine, governor(), request)
        var upstream: HTTPRequestHead?
        for case .sendUpstream(.head(let sent)) in machine.upstreamConnected() { upstream = sent }
        #expect(upstream?.headers["range"].isEmpty == true && upstream?.headers["if-range"].isEmpty == true)
        _ = machine.requestEnd()
        let partial = machine.responseHead(HTTPResponseHead(version: .http1_1, status: .partialContent, headers: ["Content-Type": "text/plain"]))
        #expect(status(partial) == .badGateway)

        var dora = head(.GET, "/api/file", token: "tok-dora")
        dora.headers.add(name: "Range", value: "bytes=0-3")
        machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        _ = try await open(&machine, governor(), dora)
        upstream = nil
        for case .sendUpstream(.head(let sent)) in machine.upstreamConnected() { upstream = sent }
        #expect(upstream?.headers["range"] == ["bytes=0-3"])
    }

    @Test func blockRulesHoldForEverySpellingOfThePathAndForHead() async throws {
        let rules: [@Sendable (Command) -> Decision?] = [{ $0.text.hasPrefix("GET /admin") ? .block(message: "no admin") : nil }]
        for (method, uri) in [(HTTPMethod.GET, "/api//admin"), (.GET, "/api/./admin"), (.GET, "/api/%61dmin"), (.GET, "/api/x/../admin"),
                              (.HEAD, "/api/admin"), (.GET, "/api/admin/")] {
            var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
            let actions = try await open(&machine, governor(rules: rules), head(method, uri))
            #expect(status(actions) == .forbidden, "\(method) \(uri)")
            #expect(!actions.contains { if case .connectUpstream = $0 { true } else { false } })
        }
        for uri in ["/api/../admin", "/api/%2e%2e/admin", "/api/..%2fadmin"] {
            var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
            let actions = machine.requestHead(head(.GET, uri), clientAddress: nil)
            #expect(status(actions) == .badRequest || status(actions) == .forbidden, "\(uri)")
            #expect(!actions.contains { if case .openSession = $0 { true } else { false } })
        }
    }

    @Test func theNormalisedPathIsRecordedAndForwardedInsideTheBase() async throws {
        let governor = governor()
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .http)
        _ = try await open(&machine, governor, head(.GET, "/api/x/..//v1/%75sers?q=%41"))
        var upstream: HTTPRequestHead?
        for case .sendUpstream(.head(let sent)) in machine.upstreamConnected() { upstream = sent }
        #expect(upstream?.uri == "/base/v1/users?q=%41")
        let inputs = governor.events.filter { $0.event.kind == .input }.map { String(decoding: $0.event.data, as: UTF8.self) }
        #expect(inputs == ["GET /v1/users?q=%41"])
    }

    @Test func anExpiredTokenIsRefusedOnAKeptAliveConnection() async throws {
        let clock = Locked<Int64>(1_000)
        var configuration = HTTPAdapterConfiguration()
        configuration.now = { clock.withLock { $0 } }
        let governor = InMemoryGovernor(tokens: ["tok-alice": Identity(user: "alice", groups: ["eng"], issuer: "test")],
                                        connections: [Self.target], engine: testEngine, expiries: ["tok-alice": 1_060])
        var machine = HTTPProxyMachine(configuration: configuration, profile: .http)
        _ = try await open(&machine, governor, head(.GET, "/api/x"))
        _ = machine.upstreamConnected()
        _ = machine.requestEnd()
        _ = machine.responseHead(HTTPResponseHead(version: .http1_1, status: .noContent, headers: [:]))
        _ = machine.responseEnd()
        #expect(machine.isIdle)
        // Still valid at its expiry (which includes the skew): served on the same session.
        clock.withLock { $0 = 1_060 }
        let again = machine.requestHead(head(.GET, "/api/y"), clientAddress: nil)
        #expect(again.contains { if case .connectUpstream = $0 { true } else { false } })
        _ = machine.upstreamConnected()
        _ = machine.requestEnd()
        _ = machine.responseHead(HTTPResponseHead(version: .http1_1, status: .noContent, headers: [:]))
        _ = machine.responseEnd()
        clock.withLock { $0 = 1_061 }
        let expired = machine.requestHead(head(.GET, "/api/z"), clientAddress: nil)
        #expect(status(expired) == .unauthorized && body(expired).contains("token_expired"))
        #expect(expired.contains { if case .closeClient = $0 { true } else { false } })
        #expect(expired.contains { if case .closeSession = $0 { true } else { false } })
        #expect(!expired.contains { if case .connectUpstream = $0 { true } else { false } })
    }
}

/// The HTTP handler with in-memory channels: a finished connection must release the handler
/// and everything it holds (issue 14: the soak's RSS grew with every HTTP connection).
@Suite struct HTTPProxyHandlerTests {
    @Test func aClosedConnectionReleasesItsHandler() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let upstream = NIOAsyncTestingChannel(loop: loop)
        let governor = InMemoryGovernor(tokens: ["tok-alice": Identity(user: "alice", groups: ["eng"], issuer: "test")],
                                        connections: [HTTPProxyMachineTests.target], engine: testEngine)
        let adapter = HTTPAdapter(governor: governor, configuration: HTTPAdapterConfiguration(),
                                  connector: { _, _, initializer in initializer(upstream).map { upstream } })
        let released = WeakHTTPHandler()
        let client = try await NIOAsyncTestingChannel(loop: loop) { channel in
            try adapter.configure(channel)
            released.handler = try channel.pipeline.syncOperations.handler(type: HTTPFrontendHandler.self)
        }
        try await client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        try await upstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).get()
        try await client.writeInbound(ByteBuffer(string: "GET /api/users HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer tok-alice\r\n\r\n"))
        let sent = try await upstream.waitForOutboundWrite(as: ByteBuffer.self)
        #expect(String(buffer: sent).hasPrefix("GET /base/users HTTP/1.1"))
        try await upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 26\r\n\r\nmail jane.doe@example.com\n"))
        var answer = ""
        while !answer.contains("[EMAIL]") {
            answer += String(buffer: try await client.waitForOutboundWrite(as: ByteBuffer.self))
        }
        #expect(answer.hasPrefix("HTTP/1.1 200 OK"))
        #expect(released.handler != nil)

        try await client.close()
        await loop.run()
        #expect(released.handler == nil)
    }
}

/// Watches a handler without keeping it: set once on the test's event loop, read after it ran.
private final class WeakHTTPHandler: @unchecked Sendable {
    weak var handler: HTTPFrontendHandler?
}
