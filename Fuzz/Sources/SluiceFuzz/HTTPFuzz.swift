import Dispatch
import Foundation
import MaskEngine
import NIOCore
import NIOHTTP1
@testable import Adapters

/// The HTTP proxy machine (request head to masked response) and the body decoders.
enum HTTPFuzz {
    static let target = ConnectionTarget(name: "api", kind: .http, target: "http://127.0.0.1:9000/base",
                                         credential: Credential(token: Secret("svc-token")))
    static let kube = ConnectionTarget(name: "k8s", kind: .kubernetes, target: "https://127.0.0.1:6443",
                                       credential: Credential(token: Secret("svc-token")))
    static let governor = InMemoryGovernor(
        tokens: ["tok": Identity(user: "alice", groups: ["eng"], issuer: "fuzz")],
        connections: [target, kube], engine: MaskerFuzz.engine,
        rules: [{ $0.text.contains("DELETE") ? .block(message: "no DELETE") : nil }])

    static func open(_ connection: String, kind: ConnectionKind) -> any GovernedSession {
        let semaphore = DispatchSemaphore(value: 0)
        let result = Locked<(any GovernedSession)?>(nil)
        Task {
            let opened = try? await governor.openSession(token: "tok", connection: connection, kind: kind, peer: "127.0.0.1:1")
            result.withLock { $0 = opened }
            semaphore.signal()
        }
        semaphore.wait()
        return result.withLock { $0 }!
    }

    static let httpSession = open("api", kind: .http)
    static let kubeSession = open("k8s", kind: .kubernetes)
    static let kubernetesProfile = HTTPProxyProfile.kubernetes()

    static let contentTypes = ["application/json", "text/plain; charset=utf-8", "text/html", "application/x-ndjson",
                               "application/octet-stream", "text/csv; charset=latin1", "application/xml", "image/png", ""]
    static let encodings = ["", "gzip", "deflate", "br", "identity", "gzip, gzip"]

    /// Lines of the input: method, URI, then `Name: value` headers of the request; after an
    /// empty line, the response body, sent in chunks. Content type and encoding come from the
    /// choices, so every decoder path is reached.
    static func exchange(_ input: [UInt8]) {
        var rest = input[...]
        var choices = Choices(&rest)
        let kubernetes = choices.below(2) == 0
        let text = String(decoding: rest.prefix(2048), as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).makeIterator()
        let method = HTTPMethod(rawValue: String(lines.next() ?? "GET").uppercased())
        let uri = String(lines.next() ?? "/")
        guard uri.hasPrefix("/") else { return }
        var headers: HTTPHeaders = ["Host": "gw", "Authorization": "Bearer tok"]
        while let line = lines.next(), !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else { continue }
            headers.add(name: name, value: String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
        }
        let bodyStart = min(rest.count, text.utf8.count)
        let body = Array(rest.dropFirst(bodyStart)) + Array(rest.dropFirst(2048))

        var machine = HTTPProxyMachine(configuration: HTTPAdapterConfiguration(), profile: kubernetes ? kubernetesProfile : .http)
        var actions = machine.requestHead(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers),
                                          clientAddress: "10.0.0.1")
        guard case .openSession? = actions.last else { return }
        actions = machine.sessionOpened(kubernetes ? kubeSession : httpSession)
        if actions.contains(where: { if case .awaitReview = $0 { true } else { false } }) {
            actions = machine.reviewDecided(.approved(by: ["lead"]))
        }
        guard actions.contains(where: { if case .connectUpstream = $0 { true } else { false } }) else { return }
        _ = machine.upstreamConnected()
        _ = machine.requestEnd()

        var response: HTTPHeaders = [:]
        let type = contentTypes[choices.below(contentTypes.count)]
        if !type.isEmpty { response.add(name: "Content-Type", value: type) }
        let encoding = encodings[choices.below(encodings.count)]
        if !encoding.isEmpty { response.add(name: "Content-Encoding", value: encoding) }
        let status = [200, 201, 404, 500, 101, 204, 304][choices.below(7)]
        _ = machine.responseHead(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: response))
        for chunk in choices.chunks(body, largest: 512) {
            for action in machine.responseBody(ByteBuffer(bytes: chunk)) {
                if case .closeClient = action { return }
            }
        }
        _ = machine.responseEnd()
    }

    /// gzip/deflate with random chunking and a small output limit, and the binary sniffing.
    static func bodyDecoders(_ input: [UInt8]) {
        var rest = input[...]
        var choices = Choices(&rest)
        let inflater = Inflater(format: choices.below(2) == 0 ? .gzip : .deflate, maximumOutput: 1 << 20)
        var produced = 0
        do {
            for chunk in choices.chunks(Array(rest), largest: 256) {
                try chunk.withUnsafeBytes { raw in
                    try inflater.write(raw) { out in produced += out.count }
                }
            }
            try inflater.finish()
        } catch {}
        guard produced <= 1 << 20 else { fatalError("inflater produced \(produced) bytes past its limit") }
        Array(rest).withUnsafeBytes { _ = HTTPBodyTransformer.looksBinary($0) }
    }
}
