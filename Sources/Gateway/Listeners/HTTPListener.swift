import Adapters
import Logging

/// The HTTP listener (`listen.http`): the reverse proxy for `type: http` connections.
enum HTTPListener {
    static func make(configuration: GatewayConfiguration, runtime: GatewayRuntime, logger: Logger) -> TCPListener? {
        guard let address = configuration.listen.http else { return nil }
        var settings = HTTPAdapterConfiguration()
        if let suffix = configuration.http.hostSuffix { settings.routing = .host(suffix: suffix) }
        settings.recordCap = min(configuration.recordOutputCap, 1 << 20)
        settings.headerTimeout = .nanoseconds(configuration.http.headerTimeout.nanoseconds)
        settings.bodyIdleTimeout = .nanoseconds(configuration.http.bodyIdleTimeout.nanoseconds)
        let adapter = HTTPAdapter(governor: runtime, configuration: settings, profile: .http, connector: Sockets.connector)
        return TCPListener(name: "http", address: address, logger: logger) { channel in try adapter.configure(channel) }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
