import Foundation
import MaskEngine
import NIOCore
import NIOHTTP1

/// How Secret values reach users who see masked data (`options: { secret_values: … }`).
package enum SecretValuePolicy: String, Sendable {
    /// Every value is replaced with the profile's style applied to the whole value (`[SECRET]`,
    /// or a stable `tok_…` hash under `hash`): secrets are secrets, whatever they contain.
    case replace
    /// Values are decoded, scanned and masked like any text; the rest stays readable.
    case scan
}

extension HTTPProxyProfile {
    /// The Kubernetes listener: guardrails on `VERB RESOURCE[/SUB] NS/NAME` (and on the command of
    /// an exec), the person's identity as impersonation headers, Secret values masked, errors as
    /// `Status` objects kubectl prints.
    package static func kubernetes(secretValues: @escaping @Sendable (ConnectionTarget) -> SecretValuePolicy = { _ in .replace },
                                  secretDocumentLimit: Int = 16 << 20) -> HTTPProxyProfile {
        var profile = HTTPProxyProfile(kind: .kubernetes, commands: { head, uri in
            let request = KubernetesProxyRules.parse(head.method, uri)
            var commands = [request.command]
            if request.resource == "pods", request.subresource == "exec" {
                commands.append(KubernetesProxyRules.execCommand(request.execCommand))
            }
            return commands
        }, errorBody: { status, code, message in
            ("application/json", ExecStatus.failureStatus(message: message, code: Int(status.code), reason: KubernetesProxyRules.reason(status, code)))
        })
        profile.precheck = { head, uri in
            if head.headers.contains(where: { $0.name.lowercased().hasPrefix("impersonate-") }) {
                return HTTPRefusal(.forbidden, code: "impersonation_refused",
                                   "the gateway sets impersonation from your token; --as and --as-group are refused")
            }
            let request = KubernetesProxyRules.parse(head.method, uri)
            if request.malformed { return HTTPRefusal(.badRequest, code: "malformed_path", "the request path is malformed") }
            if KubernetesProxyRules.isWebSocket(head),
               ExecSubprotocol.choose(offered: head.headers[canonicalForm: "sec-websocket-protocol"].joined(separator: ",")) == nil {
                return HTTPRefusal(.badRequest, code: "subprotocol_unsupported",
                                   "the gateway reads exec streams as v5.channel.k8s.io or v4.channel.k8s.io only")
            }
            return nil
        }
        profile.postcheck = { head, uri in
            let request = KubernetesProxyRules.parse(head.method, uri)
            if request.subresource == "portforward" {
                return HTTPRefusal(.notImplemented, code: "portforward_unsupported", "port-forward is not supported through the gateway")
            }
            if KubernetesProxyRules.isUpgrade(head), !KubernetesProxyRules.isWebSocket(head) {
                return HTTPRefusal(.forbidden, code: "spdy_unsupported",
                                   "the gateway streams exec and attach over WebSocket only (kubectl 1.30 or later)")
            }
            return nil
        }
        profile.allowsUpgrade = { head, uri in
            let request = KubernetesProxyRules.parse(head.method, uri)
            return request.resource == "pods" && ["exec", "attach", "portforward"].contains(request.subresource ?? "")
        }
        profile.upstreamHeaders = { headers, session in
            for name in Set(headers.map { $0.name.lowercased() }) where name.hasPrefix("impersonate-") { headers.remove(name: name) }
            headers.add(name: "Impersonate-User", value: session.identity.user)
            for group in session.identity.groups { headers.add(name: "Impersonate-Group", value: group) }
            // Only channel protocols the gateway reads may be chosen upstream.
            let offered = headers[canonicalForm: "sec-websocket-protocol"]
            if !offered.isEmpty {
                headers.remove(name: "sec-websocket-protocol")
                let kept = offered.map { $0.trimmingCharacters(in: .whitespaces) }.filter { ExecSubprotocol(rawValue: $0) != nil }
                headers.add(name: "Sec-WebSocket-Protocol", value: kept.joined(separator: ", "))
            }
            // Protobuf bodies cannot be scanned: ask for JSON.
            let accepted = headers[canonicalForm: "accept"].filter { !$0.lowercased().contains("application/vnd.kubernetes.protobuf") }
            headers.remove(name: "accept")
            headers.add(name: "Accept", value: accepted.isEmpty ? "application/json" : accepted.joined(separator: ", "))
        }
        profile.documentFilter = { head, uri, session in
            let request = KubernetesProxyRules.parse(head.method, uri)
            // Every answer about Secrets (get, list, watch, and writes, which echo the object).
            guard request.isResourceRequest, request.resource == "secrets", request.apiGroup.isEmpty else { return nil }
            let policy = secretValues(session.connection)
            let watch = request.verb == "watch"
            return { engine in
                let masker = engine.makeValueMasker()
                // Secrets never keep a part of themselves: `partial` becomes `redact`; `hash` stays.
                let style: MaskStyle = engine.profile.style == .hash ? .hash : .redact
                return HTTPDocumentFilter(maxBytes: secretDocumentLimit, lineDelimited: watch) { body in
                    try SecretMasking.maskSecretJSON(body, maxBytes: secretDocumentLimit) { text in
                        try KubernetesProxyRules.maskSecretValue(text, policy: policy, masker: masker, style: style)
                    } ?? body
                }
            }
        }
        return profile
    }
}

enum KubernetesProxyRules {
    static func parse(_ method: HTTPMethod, _ uri: String) -> KubernetesRequest {
        let question = uri.firstIndex(of: "?")
        let path = question.map { String(uri[..<$0]) } ?? uri
        let query = question.map { String(uri[uri.index(after: $0)...]) }
        return KubernetesRequest.parse(method: method.rawValue, path: path, query: query)
    }

    static func isUpgrade(_ head: HTTPRequestHead) -> Bool { !head.headers["upgrade"].isEmpty }

    static func isWebSocket(_ head: HTTPRequestHead) -> Bool {
        head.headers["upgrade"].contains { $0.lowercased().contains("websocket") }
    }

    /// The `reason` of a Status the gateway answers.
    static func reason(_ status: HTTPResponseStatus, _ code: String) -> String {
        switch status {
        case .unauthorized: "Unauthorized"
        case .forbidden: "Forbidden"
        case .notFound: "NotFound"
        case .badRequest: "BadRequest"
        case .requestTimeout: "Timeout"
        case .badGateway, .serviceUnavailable: "ServiceUnavailable"
        default: code == "blocked" ? "Forbidden" : "InternalError"
        }
    }

    /// The command of `kubectl exec`, for the guardrails: the arguments as one quoted line, plus the
    /// canonical forms of its shell-word parse (so `sh -c "r''m -r -f /"` meets an `rm -rf` rule
    /// as an SSH command does) and the classes `dynamic` and `expansion` it finds.
    static func execCommand(_ arguments: [String]) -> Command {
        let line = arguments.map(shellQuoted).joined(separator: " ")
        let parsed = ShellCommandLine.parse(line)
        return Command(text: line, classes: ["exec", "kubernetes_exec"] + parsed.classes, forms: parsed.forms)
    }

    /// An exec command line as the guardrails see it: arguments joined, quoted when needed.
    static func shellQuoted(_ argument: String) -> String {
        let plain = !argument.isEmpty && argument.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
        return plain ? argument : "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    static func maskSecretValue(_ text: String, policy: SecretValuePolicy, masker: ValueMasker, style: MaskStyle) throws -> String? {
        switch policy {
        case .scan:
            switch try masker.mask(text) {
            case .unchanged: return nil
            case .masked(let bytes): return String(decoding: bytes, as: UTF8.self)
            case .null: return ""
            }
        case .replace:
            let whole = Array(text.utf8).withUnsafeBytes { masker.engine.maskWhole($0, style: style, label: "secret") }
            switch whole {
            case .masked(let bytes): return String(decoding: bytes, as: UTF8.self)
            case .unchanged, .null: return "[SECRET]"
            }
        }
    }
}
