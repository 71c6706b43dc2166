import NIOCore

/// How an adapter wants an upstream connection made.
public struct UpstreamRequest: Sendable {
    public var target: ConnectionTarget
    public var host: String
    public var port: Int
    /// For Postgres: negotiate TLS with an SSLRequest first, per the target's `sslmode` option.
    /// False for cancel requests, which go in clear.
    public var negotiateTLS: Bool
    /// HTTPS and Kubernetes: TLS from the first byte, verified against the target's `ca_file`
    /// (or the system roots) and host name.
    public var directTLS: Bool

    public init(target: ConnectionTarget, host: String, port: Int, negotiateTLS: Bool, directTLS: Bool = false) {
        self.target = target
        self.host = host
        self.port = port
        self.negotiateTLS = negotiateTLS
        self.directTLS = directTLS
    }
}

/// Opens a connection to an upstream server on `eventLoop` (the client's loop, so both legs of a
/// session share one thread), with TLS when the target asks for it, and runs `initializer` on the
/// new channel. Provided by the Gateway, which alone bootstraps sockets.
public typealias UpstreamConnector = @Sendable (
    _ eventLoop: any EventLoop, _ request: UpstreamRequest, _ initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
) -> EventLoopFuture<any Channel>

extension Governor {
    /// Opens a session off the event loop (token checks are async) and hands the outcome back on
    /// `eventLoop`, where the adapter's handler lives. Errors other than ``GovernorError`` become
    /// `unavailable`.
    public func openSession(token: String, connection: String, kind: ConnectionKind, peer: String, on eventLoop: any EventLoop,
                            _ completion: @escaping @Sendable (Result<any GovernedSession, GovernorError>) -> Void) {
        Task {
            let result: Result<any GovernedSession, GovernorError>
            do {
                result = .success(try await openSession(token: token, connection: connection, kind: kind, peer: peer))
            } catch let error as GovernorError {
                result = .failure(error)
            } catch {
                result = .failure(GovernorError(.unavailable, "login failed"))
            }
            eventLoop.execute { completion(result) }
        }
    }
}
