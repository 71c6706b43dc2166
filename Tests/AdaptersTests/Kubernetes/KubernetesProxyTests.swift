import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import Adapters

private let cluster = ConnectionTarget(name: "prod", kind: .kubernetes, target: "https://127.0.0.1:6443", credential: Credential(token: Secret("sa")))

private func kubeGovernor(rules: [@Sendable (Command) -> Decision?] = []) -> InMemoryGovernor {
    InMemoryGovernor(tokens: ["tok-alice": Identity(user: "alice", groups: ["sre", "eng"], issuer: "test"),
                              "tok-dora": Identity(user: "dora", groups: ["dpo"], issuer: "test")],
                     connections: [cluster], engine: testEngine, rules: rules, unmaskedGroups: ["dpo"])
}

private func request(_ method: HTTPMethod = .GET, _ uri: String, _ extra: HTTPHeaders = [:]) -> HTTPRequestHead {
    var headers: HTTPHeaders = ["Host": "gw", "Authorization": "Bearer tok-alice"]
    headers.add(contentsOf: extra)
    return HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)
}

@Suite struct KubernetesProfileTests {
    let profile = HTTPProxyProfile.kubernetes()

    @Test func execIsDecidedAsAnAPIRequestAndAsACommandLine() {
        let commands = profile.commands(request(.GET, "/api/v1/namespaces/prod/pods/db-0/exec?command=sh&command=-c&command=cat%20%2Fetc%2Fpasswd"), "/api/v1/namespaces/prod/pods/db-0/exec?command=sh&command=-c&command=cat%20%2Fetc%2Fpasswd")
        #expect(commands.map(\.text) == ["create pods/exec prod/db-0", "sh -c 'cat /etc/passwd'"])
        #expect(commands[1].classes.contains("kubernetes_exec"))
        #expect(profile.commands(request(.DELETE, "/api/v1/namespaces/prod"), "/api/v1/namespaces/prod").map(\.text) == ["delete namespaces prod"])
    }

    @Test func execCommandsCarryTheShellWordFormsSoRespelledCommandsMeetTheRules() {
        let uri = "/api/v1/namespaces/prod/pods/db-0/exec?command=sh&command=-c&command=r%27%27m%20-r%20-f%20%2Fdata"
        let exec = profile.commands(request(.GET, uri), uri)[1]
        let rule = try! Regex(#"\brm\s+-rf\b"#)
        #expect(exec.forms.contains { $0.contains(rule) }, "forms: \(exec.forms)")
        let dynamic = "/api/v1/namespaces/prod/pods/db-0/exec?command=sh&command=-c&command=x%3Drm%3B%24x%20-rf%20%2F"
        #expect(profile.commands(request(.GET, dynamic), dynamic)[1].classes.contains("dynamic"))
    }

    @Test func clientImpersonationMalformedPathsAndUnreadableSubprotocolsAreRefused() {
        #expect(profile.precheck(request(.GET, "/api/v1/pods", ["Impersonate-User": "bob"]), "/api/v1/pods")?.code == "impersonation_refused")
        #expect(profile.precheck(request(.GET, "/api/v1/namespaces/a/pods/%2e%2e"), "/api/v1/namespaces/a/pods/%2e%2e")?.code == "malformed_path")
        let base64 = request(.GET, "/api/v1/namespaces/a/pods/p/exec", ["Upgrade": "websocket", "Sec-WebSocket-Protocol": "base64.channel.k8s.io"])
        #expect(profile.precheck(base64, "/api/v1/namespaces/a/pods/p/exec")?.code == "subprotocol_unsupported")
        #expect(profile.precheck(request(.GET, "/api/v1/pods"), "/api/v1/pods") == nil)
    }

    @Test func spdyAndPortForwardAreRefusedAfterTheGuardrails() {
        let spdy = request(.POST, "/api/v1/namespaces/a/pods/p/exec", ["Upgrade": "SPDY/3.1"])
        #expect(profile.allowsUpgrade(spdy, "/api/v1/namespaces/a/pods/p/exec"))
        #expect(profile.postcheck(spdy, "/api/v1/namespaces/a/pods/p/exec")?.code == "spdy_unsupported")
        #expect(profile.postcheck(request(.GET, "/api/v1/namespaces/a/pods/p/portforward"), "/api/v1/namespaces/a/pods/p/portforward")?.code == "portforward_unsupported")
        #expect(!profile.allowsUpgrade(request(.GET, "/api/v1/pods", ["Upgrade": "websocket"]), "/api/v1/pods"))
    }

    @Test func upstreamRequestsCarryThePersonAndAskForJSON() async throws {
        let session = try await kubeGovernor().openSession(token: "tok-alice", connection: "prod", kind: .kubernetes, peer: "t")
        var headers: HTTPHeaders = ["Accept": "application/vnd.kubernetes.protobuf, application/json", "impersonate-group": "admins",
                                    "Sec-WebSocket-Protocol": "v5.channel.k8s.io, base64.channel.k8s.io"]
        profile.upstreamHeaders(&headers, session)
        #expect(headers["impersonate-user"] == ["alice"])
        #expect(headers["impersonate-group"] == ["sre", "eng"])
        #expect(headers["accept"] == ["application/json"])
        #expect(headers["sec-websocket-protocol"] == ["v5.channel.k8s.io"])
    }

    static let secret = Array(#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","annotations":{"owner":"jane.doe@example.com"}},"data":{"password":"aHVudGVyMg==","contact":"amFuZS5kb2VAZXhhbXBsZS5jb20="}}"#.utf8)

    func filtered(_ policy: SecretValuePolicy) async throws -> [String: String] {
        let profile = HTTPProxyProfile.kubernetes(secretValues: { _ in policy })
        let session = try await kubeGovernor().openSession(token: "tok-alice", connection: "prod", kind: .kubernetes, peer: "t")
        let uri = "/api/v1/namespaces/default/secrets/db"
        let factory = try #require(profile.documentFilter(request(.GET, uri), uri, session))
        let filter = try #require(factory(testEngine))
        let out = try filter.transform(Self.secret)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(out)) as? [String: Any])
        let data = try #require(json["data"] as? [String: String])
        return data.mapValues { String(decoding: Data(base64Encoded: $0) ?? Data(), as: UTF8.self) }
    }

    @Test func secretValuesAreReplacedByDefault() async throws {
        #expect(try await filtered(.replace) == ["password": "[SECRET]", "contact": "[SECRET]"])
    }

    @Test func secretValuesCanBeScannedInstead() async throws {
        #expect(try await filtered(.scan) == ["password": "hunter2", "contact": "[EMAIL]"])
    }

    @Test func onlySecretsAreRewrittenAsDocuments() async throws {
        let session = try await kubeGovernor().openSession(token: "tok-alice", connection: "prod", kind: .kubernetes, peer: "t")
        #expect(profile.documentFilter(request(.GET, "/api/v1/pods"), "/api/v1/pods", session) == nil)
        #expect(profile.documentFilter(request(.GET, "/api/v1/secrets?watch=1"), "/api/v1/secrets?watch=1", session) != nil)
    }
}

@Suite struct KubernetesMachineTests {
    func open(_ machine: inout HTTPProxyMachine, _ governor: InMemoryGovernor, _ head: HTTPRequestHead) async throws -> [HTTPProxyMachine.Action] {
        let actions = machine.requestHead(head, clientAddress: "10.0.0.1")
        guard case .openSession(let token, let connection)? = actions.last else { return actions }
        let session = try await governor.openSession(token: token, connection: connection, kind: .kubernetes, peer: "t")
        return machine.sessionOpened(session)
    }

    /// Performs the refusal-memory actions as the handler does, with the listener's memory.
    func settle(_ machine: inout HTTPProxyMachine, _ actions: [HTTPProxyMachine.Action],
                _ memory: HTTPRefusalMemory) -> [HTTPProxyMachine.Action] {
        var out: [HTTPProxyMachine.Action] = []
        for action in actions {
            switch action {
            case .rememberRefusal(let key, let refusal): memory.remember(key, refusal)
            case .recallRefusal(let key): out += settle(&machine, machine.refusalRecalled(memory.recall(key)), memory)
            default: out.append(action)
            }
        }
        return out
    }

    func body(_ actions: [HTTPProxyMachine.Action]) -> String {
        var out = ""
        for case .sendClient(.body(.byteBuffer(let buffer))) in actions { out += String(buffer: buffer) }
        return out
    }

    @Test func aBlockedRequestIsAStatusKubectlPrints() async throws {
        let governor = kubeGovernor(rules: [{ $0.text.hasPrefix("delete namespaces ") ? .block(message: "platform team only") : nil }])
        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: .kubernetes())
        let actions = try await open(&machine, governor, request(.DELETE, "/prod/api/v1/namespaces/prod"))
        let status = try #require(try JSONSerialization.jsonObject(with: Data(body(actions).utf8)) as? [String: Any])
        #expect(status["kind"] as? String == "Status" && status["code"] as? Int == 403 && status["message"] as? String == "platform team only")
    }

    @Test func aRefusedExecRetriedOverSPDYGetsTheSameAnswerWithoutASecondReview() async throws {
        let counter = Counter()
        let governor = kubeGovernor(rules: [{ command in
            guard command.text.hasPrefix("create pods/exec prod/") else { return nil }
            counter.increment()
            return .review(ReviewTicket(id: "r-\(counter.value)", approveHint: "") { .timedOut })
        }])
        let configuration = HTTPAdapterConfiguration()
        let uri = "/prod/api/v1/namespaces/prod/pods/db-0/exec?command=true"
        var websocket = HTTPProxyMachine(configuration: configuration, profile: .kubernetes())
        _ = try await open(&websocket, governor, request(.GET, uri, ["Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Protocol": "v5.channel.k8s.io"]))
        let memory = configuration.refusals
        #expect(body(settle(&websocket, websocket.reviewDecided(.denied(by: "lena", reason: "no")), memory)).contains("denied by lena: no"))
        var spdy = HTTPProxyMachine(configuration: configuration, profile: .kubernetes())
        let asked = try await open(&spdy, governor, request(.POST, uri, ["Upgrade": "SPDY/3.1", "Connection": "Upgrade"]))
        let retry = settle(&spdy, asked, memory)
        #expect(body(retry).contains("denied by lena: no"))
        #expect(counter.value == 1)
        var again = HTTPProxyMachine(configuration: configuration, profile: .kubernetes())
        let reviewed = try await open(&again, governor, request(.GET, uri, ["Upgrade": "websocket", "Sec-WebSocket-Protocol": "v5.channel.k8s.io"]))
        #expect(reviewed.contains { if case .awaitReview = $0 { true } else { false } })
        #expect(counter.value == 2)
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func increment() { lock.withLock { count += 1 } }
}

/// The exec bridge between two embedded channels, fed with real WebSocket frames.
@Suite struct KubernetesExecBridgeTests {
    /// One WebSocket frame on the wire (masked when `mask`, as a client's frames are).
    static func frame(_ opcode: UInt8, _ payload: [UInt8], mask: Bool) -> ByteBuffer {
        var out = ByteBuffer()
        out.writeInteger(UInt8(0x80 | opcode))
        let maskBit: UInt8 = mask ? 0x80 : 0
        if payload.count < 126 {
            out.writeInteger(UInt8(payload.count) | maskBit)
        } else {
            out.writeInteger(126 | maskBit)
            out.writeInteger(UInt16(payload.count))
        }
        if mask {
            let key: [UInt8] = [1, 2, 3, 4]
            out.writeBytes(key)
            out.writeBytes(payload.enumerated().map { $0.element ^ key[$0.offset % 4] })
        } else {
            out.writeBytes(payload)
        }
        return out
    }

    /// Frames written to a channel: (opcode, unmasked payload).
    static func frames(_ channel: EmbeddedChannel) throws -> [(UInt8, [UInt8])] {
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
        var result: [(UInt8, [UInt8])] = []
        var index = 0
        while index + 2 <= bytes.count {
            let opcode = bytes[index] & 0x0f
            let masked = bytes[index + 1] & 0x80 != 0
            var length = Int(bytes[index + 1] & 0x7f)
            index += 2
            if length == 126 {
                length = Int(bytes[index]) << 8 | Int(bytes[index + 1])
                index += 2
            }
            var key: [UInt8] = [0, 0, 0, 0]
            if masked {
                key = Array(bytes[index..<index + 4])
                index += 4
            }
            let payload = bytes[index..<index + length].enumerated().map { $0.element ^ key[$0.offset % 4] }
            result.append((opcode, payload))
            index += length
        }
        return result
    }

    func bridge(token: String = "tok-alice") async throws -> (client: EmbeddedChannel, upstream: EmbeddedChannel, governor: InMemoryGovernor) {
        let governor = kubeGovernor()
        let session = try await governor.openSession(token: token, connection: "prod", kind: .kubernetes, peer: "t")
        let loop = EmbeddedEventLoop()
        let client = EmbeddedChannel(loop: loop)
        let upstream = EmbeddedChannel(loop: loop)
        let response = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: ["Sec-WebSocket-Protocol": "v5.channel.k8s.io"])
        try KubernetesExec.installer(recordCap: 1 << 20)(client, upstream, request(.GET, "/x"), response, "/x", session)
        return (client, upstream, governor)
    }

    @Test func outputSplitAcrossMessagesIsMaskedAndTheStatusEndsTheStream() async throws {
        let (client, upstream, governor) = try await bridge()
        try upstream.writeInbound(Self.frame(2, [1], mask: false))
        try upstream.writeInbound(Self.frame(2, [1] + Array("mail jane.d".utf8), mask: false))
        try upstream.writeInbound(Self.frame(2, [1] + Array("oe@example.com ok\n".utf8), mask: false))
        try upstream.writeInbound(Self.frame(2, [3] + Array(#"{"metadata":{},"status":"Success"}"#.utf8), mask: false))
        try upstream.writeInbound(Self.frame(8, [0x03, 0xe8], mask: false))
        let frames = try Self.frames(client)
        let stdout = frames.filter { $0.0 == 2 && $0.1.first == 1 }.map { String(decoding: $0.1.dropFirst(), as: UTF8.self) }.joined()
        #expect(stdout == "mail [EMAIL] ok\n")
        #expect(frames.contains { $0.0 == 2 && $0.1.first == 3 })
        #expect(frames.last?.0 == 8 && frames.last?.1 == [0x03, 0xe8])
        let recorded = governor.events.map { String(decoding: $0.event.data, as: UTF8.self) }.joined()
        #expect(recorded.contains(#""exit_status":0"#) && !recorded.contains("jane.doe"))
    }

    @Test func stdinIsRelayedMaskedForTheServerAndRecordedMasked() async throws {
        let (client, upstream, governor) = try await bridge()
        try client.writeInbound(Self.frame(2, [0] + Array("secret jane.doe@example.com\n".utf8), mask: true))
        try client.writeInbound(Self.frame(2, [4] + Array(#"{"Width":120,"Height":40}"#.utf8), mask: true))
        try client.writeInbound(Self.frame(2, [255, 0], mask: true))
        let frames = try Self.frames(upstream)
        #expect(frames.count == 3)
        #expect(frames[0].1 == [0] + Array("secret jane.doe@example.com\n".utf8))
        #expect(frames[2].1 == [255, 0])
        let recorded = governor.events.map { "\($0.event.kind.rawValue):" + String(decoding: $0.event.data, as: UTF8.self) }
        #expect(recorded.contains("r:120x40"))
        #expect(!recorded.joined().contains("jane.doe"))
    }

    @Test func pingsAreAnsweredOnTheirOwnLeg() async throws {
        let (client, upstream, _) = try await bridge()
        try client.writeInbound(Self.frame(9, Array("p".utf8), mask: true))
        #expect(try Self.frames(client).map(\.0) == [10])
        #expect(try Self.frames(upstream).isEmpty)
    }

    @Test func unreadableOutputEndsTheStreamWithAStatusNotWithData() async throws {
        let (client, upstream, _) = try await bridge()
        try upstream.writeInbound(Self.frame(1, Array("text frames are not v5".utf8), mask: false))
        let frames = try Self.frames(client)
        #expect(frames.contains { $0.0 == 2 && $0.1.first == 3 && String(decoding: $0.1, as: UTF8.self).contains("sluice:") })
        #expect(!frames.contains { String(decoding: $0.1, as: UTF8.self).contains("text frames are not") })
    }
}
