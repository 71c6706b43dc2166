import Adapters
import Hummingbird
import NIOCore

/// The admin listener's request context (API and console): Hummingbird's basic context plus the
/// client's address, so failed sign-ins are throttled per source address like the protocol
/// listeners' logins (docs/operations.md). Behind a proxy the address is the proxy's.
public struct AdminRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The address failed sign-ins are counted against; nil when unknown (tests).
    var source: String? {
        guard let remoteAddress, remoteAddress.ipAddress != nil else { return nil }
        return HostPort(HostPort.peer(remoteAddress))?.host
    }
}
