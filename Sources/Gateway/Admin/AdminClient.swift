import AsyncHTTPClient
import Foundation
import NIOCore

/// Talks to a running gateway's admin API (the CLI's `reviews approve`, `access request`).
public struct AdminClient: Sendable {
    public var baseURL: String
    public var token: String

    public init(baseURL: String, token: String) {
        self.baseURL = baseURL
        self.token = token
    }

    public struct Reply: Sendable {
        public var status: Int
        public var body: Data

        /// The `error.message` of an error document, or the status.
        public var errorMessage: String {
            if let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any],
               let error = object["error"] as? [String: Any] {
                return "\(error["code"] as? String ?? "error"): \(error["message"] as? String ?? "")"
            }
            return "HTTP \(status)"
        }
    }

    public func send(_ method: String, _ path: String, json: [String: String]? = nil) async throws -> Reply {
        try await send(method, path, body: try json.map { try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]) })
    }

    /// Sends `body` (JSON) as is.
    public func send(_ method: String, _ path: String, body: Data?) async throws -> Reply {
        var request = HTTPClientRequest(url: baseURL.trimmingSuffix("/") + path)
        request.method = .init(rawValue: method)
        if !token.isEmpty { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        return Reply(status: Int(response.status.code), body: Data(buffer: body))
    }
}
