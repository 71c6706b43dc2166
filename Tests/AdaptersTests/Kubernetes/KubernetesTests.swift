import Foundation
import Testing
@testable import Adapters

@Suite struct KubernetesRequestTests {
    func request(_ method: String, _ target: String) -> KubernetesRequest {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        return KubernetesRequest.parse(method: method, path: String(parts[0]), query: parts.count > 1 ? String(parts[1]) : nil)
    }

    func text(_ method: String, _ target: String) -> String {
        request(method, target).command.text
    }

    @Test func coreGroupPathsName() {
        let get = request("GET", "/api/v1/namespaces/prod/pods/web-1")
        #expect(get.isResourceRequest)
        #expect(!get.malformed)
        #expect(get.verb == "get")
        #expect(get.apiGroup == "")
        #expect(get.apiVersion == "v1")
        #expect(get.resource == "pods")
        #expect(get.subresource == nil)
        #expect(get.namespace == "prod")
        #expect(get.name == "web-1")
        #expect(get.path == "/api/v1/namespaces/prod/pods/web-1")
        #expect(get.command == Command(text: "get pods prod/web-1", classes: ["get", "pods", "resource:pods", "read"]))
        #expect(text("PUT", "/api/v1/namespaces/prod/configmaps/app") == "update configmaps prod/app")
        #expect(text("POST", "/api/v1/namespaces/prod/pods") == "create pods prod/")
    }

    @Test func namedGroupsKeepTheResourcePlainAndClassTheGroup() {
        let get = request("GET", "/apis/apps/v1/namespaces/prod/deployments/api")
        #expect(get.apiGroup == "apps")
        #expect(get.apiVersion == "v1")
        #expect(get.command.text == "get deployments prod/api")
        #expect(get.command.classes == ["get", "deployments", "resource:deployments", "read", "group:apps"])
        let scale = request("PATCH", "/apis/apps/v1/namespaces/prod/deployments/api/scale")
        #expect(scale.command.text == "patch deployments/scale prod/api")
        #expect(scale.command.classes == ["patch", "deployments", "resource:deployments", "deployments/scale", "resource:deployments/scale", "write", "group:apps"])
        #expect(text("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles") == "list clusterroles ")
    }

    @Test func namespacedListAndWatch() {
        #expect(text("GET", "/api/v1/namespaces/default/pods") == "list pods default/")
        #expect(text("GET", "/api/v1/namespaces/default/pods?watch=true") == "watch pods default/")
        #expect(text("GET", "/api/v1/namespaces/default/pods?watch=1&resourceVersion=10") == "watch pods default/")
        #expect(text("GET", "/api/v1/namespaces/default/pods?watch=false") == "list pods default/")
        #expect(text("GET", "/api/v1/namespaces/default/pods?watch=0") == "list pods default/")
        #expect(text("GET", "/api/v1/watch/namespaces/default/pods") == "watch pods default/")
        #expect(text("GET", "/apis/apps/v1/watch/namespaces/prod/deployments/api") == "watch deployments prod/api")
        #expect(request("GET", "/api/v1/namespaces/default/pods?watch=true").command.classes.contains("read"))
    }

    @Test func clusterScopedRequestsHaveNoNamespacePrefix() {
        #expect(text("GET", "/api/v1/nodes") == "list nodes ")
        #expect(text("GET", "/api/v1/nodes/node-1") == "get nodes node-1")
        #expect(text("GET", "/api/v1/pods") == "list pods ")
        #expect(request("GET", "/api/v1/nodes").namespace == nil)
    }

    @Test func namespacesAreClusterScopedInTheText() {
        let delete = request("DELETE", "/api/v1/namespaces/prod")
        #expect(delete.command.text == "delete namespaces prod")
        #expect(delete.command.text.hasPrefix("delete namespaces "))
        #expect(delete.resource == "namespaces")
        #expect(delete.name == "prod")
        #expect(delete.namespace == "prod")
        #expect(text("GET", "/api/v1/namespaces") == "list namespaces ")
        #expect(text("POST", "/api/v1/namespaces") == "create namespaces ")
        #expect(text("PUT", "/api/v1/namespaces/prod/finalize") == "update namespaces/finalize prod")
        #expect(text("PATCH", "/api/v1/namespaces/prod/status") == "patch namespaces/status prod")
        #expect(text("DELETE", "/api/v1/namespaces/prod/pods") == "deletecollection pods prod/")
        #expect(text("DELETE", "/api/v1/namespaces/prod/pods/web-1") == "delete pods prod/web-1")
    }

    @Test func execIsCreateWhateverTheMethod() {
        let query = "command=sh&command=-c&command=echo%20hi&stdin=true&stdout=true&stderr=true&tty=false&container=db"
        for method in ["GET", "POST"] {
            let exec = request(method, "/api/v1/namespaces/prod/pods/db-0/exec?" + query)
            #expect(exec.verb == "create")
            #expect(exec.subresource == "exec")
            #expect(exec.command.text == "create pods/exec prod/db-0")
            #expect(exec.command.text.hasPrefix("create pods/exec prod/"))
            #expect(exec.command.classes == ["create", "pods", "resource:pods", "pods/exec", "resource:pods/exec", "write", "exec"])
            #expect(exec.execCommand == ["sh", "-c", "echo hi"])
            #expect(exec.queryFlags == .init(stdin: true, stdout: true, stderr: true, tty: false, container: "db"))
        }
        let attach = request("GET", "/api/v1/namespaces/prod/pods/db-0/attach?stdin=true&tty")
        #expect(attach.command.text == "create pods/attach prod/db-0")
        #expect(attach.command.classes.contains("exec"))
        #expect(attach.queryFlags.tty)
        #expect(attach.execCommand.isEmpty)
        let forward = request("GET", "/api/v1/namespaces/prod/pods/db-0/portforward?ports=5432")
        #expect(forward.command.text == "create pods/portforward prod/db-0")
        #expect(forward.command.classes.contains("port_forward"))
    }

    @Test func podLogIsGet() {
        let log = request("GET", "/api/v1/namespaces/prod/pods/db-0/log?container=db&follow=true")
        #expect(log.command.text == "get pods/log prod/db-0")
        #expect(log.command.classes == ["get", "pods", "resource:pods", "pods/log", "resource:pods/log", "read"])
        #expect(log.queryFlags.container == "db")
    }

    @Test func secretsAreClassed() {
        #expect(request("GET", "/api/v1/namespaces/prod/secrets/db").command.classes == ["get", "secrets", "resource:secrets", "read", "secrets"])
        #expect(request("GET", "/api/v1/secrets").command.text == "list secrets ")
    }

    @Test func nonResourceRequests() {
        let version = request("GET", "/version")
        #expect(!version.isResourceRequest)
        #expect(!version.malformed)
        #expect(version.command == Command(text: "get /version", classes: ["get", "nonresource"]))
        #expect(text("GET", "/api") == "get /api")
        #expect(text("GET", "/api/v1") == "get /api/v1")
        #expect(text("GET", "/apis") == "get /apis")
        #expect(text("GET", "/apis/apps") == "get /apis/apps")
        #expect(text("GET", "/apis/apps/v1") == "get /apis/apps/v1")
        #expect(text("GET", "/openapi/v3/apis/apps/v1?hash=abc") == "get /openapi/v3/apis/apps/v1")
        #expect(text("POST", "/healthz") == "post /healthz")
        #expect(text("GET", "/") == "get /")
        #expect(!request("GET", "/apis/apps").isResourceRequest)
    }

    @Test func malformedPathsAreRefused() {
        let paths = [
            "/api/v1/namespaces/../pods",
            "/api/v1/namespaces/prod/pods/%2e%2e",
            "/api/v1/namespaces/prod/pods/a%2Fb",
            "/api/v1/namespaces/prod/pods/a%00b",
            "/api/v1/namespaces/prod/pods/a%0Ab",
            "/api/v1//pods",
            "/api/v1/namespaces/prod/pods/%zz",
            "/api/v1/namespaces/prod/pods/%ff",
            "/api/v1/watch",
            "/api/v1/namespaces/prod/pods/" + String(repeating: "a", count: KubernetesRequest.maximumPathLength),
        ]
        for path in paths {
            let parsed = KubernetesRequest.parse(method: "GET", path: path, query: nil)
            #expect(parsed.malformed, "\(path.prefix(80))")
            #expect(!parsed.isResourceRequest)
            #expect(parsed.command.classes == ["get", "nonresource", "malformed"])
        }
        let many = Array(repeating: "a=1", count: KubernetesRequest.maximumQueryParameters + 1).joined(separator: "&")
        #expect(KubernetesRequest.parse(method: "GET", path: "/api/v1/pods", query: many).malformed)
        #expect(!KubernetesRequest.parse(method: "GET", path: "/api/v1/pods/", query: nil).malformed)
    }

    @Test func queryParsingFollowsGo() {
        let pairs = KubernetesRequest.parseQuery("a=1+2&b=%2B&c&d=x%3Dy&e;f=1&g=%zz&&h=&a=3")
        #expect(pairs.map { "\($0.0)=\($0.1)" } == ["a=1 2", "b=+", "c=", "d=x=y", "h=", "a=3"])
        let plus = request("GET", "/api/v1/namespaces/prod/pods/db-0/exec?command=echo+a%2Bb")
        #expect(plus.execCommand == ["echo a+b"])
        let many = Array(repeating: "k=v", count: 1500).joined(separator: "&")
        #expect(KubernetesRequest.parseQuery(many).count == KubernetesRequest.maximumQueryParameters)
    }
}

@Suite struct KubernetesStreamTests {
    @Test func messagesRoundTrip() throws {
        let common: [ExecStreamMessage] = [
            .stdin(Array("ls\n".utf8)), .stdout(Array("a b".utf8)), .stderr([0xff, 0x00]), .status(Array("{}".utf8)),
            .resize(width: 120, height: 40), .stdout([]), .unknown(stream: 9, [1, 2]),
        ]
        for message in common + [.close(stream: 0)] {
            #expect(try ExecStreamMessage(message: message.encoded(protocol: .v5), protocol: .v5) == message)
        }
        for message in common {
            #expect(try ExecStreamMessage(message: message.encoded(protocol: .v4), protocol: .v4) == message)
        }
        #expect(ExecStreamMessage.stdin([7]).encoded(protocol: .v4) == [0, 7])
        #expect(ExecStreamMessage.resize(width: 80, height: 24).encoded(protocol: .v5) == [4] + Array("{\"Width\":80,\"Height\":24}".utf8))
    }

    @Test func closeMessages() throws {
        #expect(try ExecStreamMessage(message: [255, 0], protocol: .v5) == .close(stream: 0))
        #expect(try ExecStreamMessage(message: [255, 0], protocol: .v4) == .unknown(stream: 255, [0]))
        #expect(ExecStreamMessage.close(stream: 0).encoded(protocol: .v4) == [])
        #expect(throws: KubernetesProtocolError.self) { try ExecStreamMessage(message: [255], protocol: .v5) }
        #expect(throws: KubernetesProtocolError.self) { try ExecStreamMessage(message: [255, 0, 1], protocol: .v5) }
    }

    @Test func resizeMessages() throws {
        #expect(try ExecStreamMessage(message: [4] + Array("{\"Width\":80,\"Height\":24}".utf8), protocol: .v5) == .resize(width: 80, height: 24))
        #expect(try ExecStreamMessage(message: [4] + Array(" { \"height\" : 5 , \"WIDTH\":0 } ".utf8), protocol: .v4) == .resize(width: 0, height: 5))
        for bad in ["{\"Width\":\"80\",\"Height\":24}", "{\"Width\":80}", "{\"Width\":70000,\"Height\":1}",
                    "{\"Width\":-1,\"Height\":1}", "{\"Width\":01,\"Height\":1}", "{\"Width\":1,\"Height\":1} x", ""] {
            #expect(throws: KubernetesProtocolError.self) { try ExecStreamMessage(message: [4] + Array(bad.utf8), protocol: .v5) }
        }
    }

    @Test func errorsCarryNoPayload() {
        do {
            _ = try ExecStreamMessage(message: [4] + Array("{\"Width\":\"hunter2\"}".utf8), protocol: .v5)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .malformedResize)
            #expect(!error.description.contains("hunter2"))
        }
    }

    @Test func anEmptyMessageIsAnError() {
        do {
            _ = try ExecStreamMessage(message: [], protocol: .v5)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .empty)
        }
    }

    @Test func subprotocolPrefersV5() {
        #expect(ExecSubprotocol.choose(offered: "v4.channel.k8s.io, v5.channel.k8s.io") == .v5)
        #expect(ExecSubprotocol.choose(offered: "channel.k8s.io,v4.channel.k8s.io") == .v4)
        #expect(ExecSubprotocol.choose(offered: "base64.channel.k8s.io") == nil)
        #expect(ExecSubprotocol.choose(offered: "") == nil)
    }

    @Test func statusParsing() throws {
        let success = try ExecStatus(json: Array("{\"metadata\":{},\"status\":\"Success\"}".utf8))
        #expect(success == ExecStatus(success: true, exitCode: 0))
        let exit = """
        {"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code","reason":"NonZeroExitCode",\
        "details":{"causes":[{"reason":"ExitCode","message":"3"}]}}
        """
        let failure = try ExecStatus(json: Array(exit.utf8))
        #expect(!failure.success)
        #expect(failure.exitCode == 3)
        #expect(failure.reason == "NonZeroExitCode")
        #expect(failure.message == "command terminated with non-zero exit code")
        let other = try ExecStatus(json: Array("{\"status\":\"Failure\",\"message\":\"pod not found\"}".utf8))
        #expect(other.exitCode == nil)
        #expect(throws: KubernetesProtocolError.self) { try ExecStatus(json: Array("not json".utf8)) }
        #expect(throws: KubernetesProtocolError.self) { try ExecStatus(json: Array(repeating: 0x20, count: ExecStatus.maximumLength + 1)) }
    }

    @Test func failureStatusEscapesItsMessage() throws {
        let message = "say \"no\"\nthen \\ stop\t\u{1}"
        let body = ExecStatus.failureStatus(message: message)
        let text = String(decoding: body, as: UTF8.self)
        #expect(text.contains("say \\\"no\\\"\\nthen \\\\ stop\\t\\u0001"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        #expect(object["kind"] as? String == "Status")
        #expect(object["apiVersion"] as? String == "v1")
        #expect(object["status"] as? String == "Failure")
        #expect(object["message"] as? String == message)
        #expect(object["reason"] as? String == "Forbidden")
        #expect(object["code"] as? Int == 403)
        let parsed = try ExecStatus(json: ExecStatus.failureStatus(message: "blocked", code: 400, reason: "BadRequest"))
        #expect(parsed == ExecStatus(success: false, message: "blocked", reason: "BadRequest"))
    }
}

@Suite struct SecretMaskingTests {
    func b64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    func json(_ bytes: [UInt8]?) throws -> [String: Any] {
        let bytes = try #require(bytes)
        return try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    func data(_ object: [String: Any]) -> [String: String] {
        object["data"] as? [String: String] ?? [:]
    }

    func secret(_ values: [String: String], extra: String = "") -> String {
        let data = values.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",")
        return "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"db\",\"namespace\":\"prod\"\(extra)},\"type\":\"Opaque\",\"data\":{\(data)}}"
    }

    func maskPassword(_ text: String) -> String? {
        text.contains("hunter2") ? text.replacingOccurrences(of: "hunter2", with: "[PASSWORD]") : nil
    }

    @Test func dataValuesAreDecodedMaskedAndEncodedAgain() throws {
        let body = Array(secret(["password": b64("pw=hunter2"), "user": b64("alice")]).utf8)
        var seen: [String] = []
        let masked = try json(SecretMasking.maskSecretJSON(body, maxBytes: 1 << 20) { seen.append($0); return maskPassword($0) })
        #expect(seen.sorted() == ["alice", "pw=hunter2"])
        #expect(data(masked) == ["password": b64("pw=[PASSWORD]"), "user": b64("alice")])
        #expect((masked["metadata"] as? [String: Any])?["name"] as? String == "db")
        #expect(masked["type"] as? String == "Opaque")
    }

    @Test func anUnchangedSecretComesBackByteForByte() throws {
        let body = Array((secret(["user": b64("alice")]) + "\n").utf8)
        #expect(try SecretMasking.maskSecretJSON(body, maxBytes: 1 << 20) { _ in nil } == body)
    }

    @Test func documentsWithoutSecretsReturnNil() throws {
        let configMap = Array("{\"kind\":\"ConfigMap\",\"data\":{\"a\":\"hunter2\"}}".utf8)
        #expect(try SecretMasking.maskSecretJSON(configMap, maxBytes: 1 << 20, mask: maskPassword) == nil)
        let status = ExecStatus.failureStatus(message: "no")
        #expect(try SecretMasking.maskSecretJSON(status, maxBytes: 1 << 20, mask: maskPassword) == nil)
        let podList = Array("{\"kind\":\"List\",\"items\":[{\"kind\":\"Pod\"}]}".utf8)
        #expect(try SecretMasking.maskSecretJSON(podList, maxBytes: 1 << 20, mask: maskPassword) == nil)
        #expect(try SecretMasking.maskSecretJSON(Array("[1,2]".utf8), maxBytes: 1 << 20, mask: maskPassword) == nil)
    }

    @Test func secretListsAndWatchEventsAreMasked() throws {
        let item = "{\"metadata\":{\"name\":\"a\"},\"data\":{\"p\":\"\(b64("hunter2"))\"}}"
        let list = Array("{\"kind\":\"SecretList\",\"apiVersion\":\"v1\",\"metadata\":{},\"items\":[\(item),\(item)]}".utf8)
        let maskedList = try json(SecretMasking.maskSecretJSON(list, maxBytes: 1 << 20, mask: maskPassword))
        let items = try #require(maskedList["items"] as? [[String: Any]])
        #expect(items.count == 2)
        #expect(items.allSatisfy { data($0) == ["p": b64("[PASSWORD]")] })

        let event = Array("{\"type\":\"ADDED\",\"object\":\(secret(["p": b64("hunter2")]))}\n".utf8)
        let maskedEvent = try #require(try SecretMasking.maskSecretJSON(event, maxBytes: 1 << 20, mask: maskPassword))
        #expect(maskedEvent.last == UInt8(ascii: "\n"))
        let object = try #require(try json(maskedEvent)["object"] as? [String: Any])
        #expect(data(object) == ["p": b64("[PASSWORD]")])
    }

    @Test func binaryValuesFollowThePolicy() throws {
        let binary = Data([0xff, 0xfe, 0x00, 0x01]).base64EncodedString()
        let body = Array(secret(["keystore": binary, "broken": "not base64!"]).utf8)
        var calls = 0
        let redacted = try json(SecretMasking.maskSecretJSON(body, maxBytes: 1 << 20) { _ in calls += 1; return nil })
        #expect(calls == 0)
        #expect(data(redacted) == ["keystore": b64(SecretMasking.redactedText), "broken": b64(SecretMasking.redactedText)])
        let kept = try SecretMasking.maskSecretJSON(body, maxBytes: 1 << 20, binaryPolicy: .keep) { _ in nil }
        #expect(kept == body)
    }

    @Test func stringDataAndLastAppliedAreMasked() throws {
        let applied = "{\\\"kind\\\":\\\"Secret\\\",\\\"data\\\":{\\\"p\\\":\\\"\(b64("hunter2"))\\\"}}"
        let body = Array(("{\"kind\":\"Secret\",\"metadata\":{\"name\":\"db\",\"annotations\":{\"\(SecretMasking.lastAppliedAnnotation)\":\"\(applied)\"}},"
            + "\"stringData\":{\"url\":\"postgres://u:hunter2@db\"}}").utf8)
        let masked = try json(SecretMasking.maskSecretJSON(body, maxBytes: 1 << 20, mask: maskPassword))
        #expect(masked["stringData"] as? [String: String] == ["url": "postgres://u:[PASSWORD]@db"])
        let annotations = try #require((masked["metadata"] as? [String: Any])?["annotations"] as? [String: String])
        let copy = try #require(annotations[SecretMasking.lastAppliedAnnotation])
        #expect(!copy.contains(b64("hunter2")))
        #expect(copy.contains(b64("[PASSWORD]")))
    }

    @Test func limitsAndErrors() throws {
        let body = Array(secret(["p": b64("hunter2")]).utf8)
        do {
            _ = try SecretMasking.maskSecretJSON(body, maxBytes: body.count - 1, mask: maskPassword)
            Issue.record("expected an error")
        } catch let error as KubernetesProtocolError {
            #expect(error.code == .bodyTooLarge)
        }
        #expect(throws: KubernetesProtocolError.self) {
            try SecretMasking.maskSecretJSON(Array("{\"kind\":\"Secret\",".utf8), maxBytes: 1 << 20, mask: maskPassword)
        }
        struct Refused: Error {}
        #expect(throws: Refused.self) {
            try SecretMasking.maskSecretJSON(body, maxBytes: 1 << 20) { _ in throw Refused() }
        }
    }
}
