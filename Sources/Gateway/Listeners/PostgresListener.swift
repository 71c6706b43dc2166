import Adapters
import Logging
import NIOCore
import NIOSSL

/// The Postgres listener (`listen.postgres`): TLS offered with the gateway's certificate.
enum PostgresListener {
    static func make(configuration: GatewayConfiguration, runtime: GatewayRuntime, logger: Logger) throws -> TCPListener? {
        guard let address = configuration.listen.postgres else { return nil }
        var settings = PostgresAdapterConfiguration()
        settings.clientTLS = true
        settings.recordOutputCap = configuration.recordOutputCap
        settings.startupTimeout = configuration.startupTimeout
        settings.maximumMessageSize = configuration.maxMessageBytes
        settings.requireClientTLS = configuration.postgresRequireTLS
        let context = try Sockets.serverTLS(configuration)
        let upgrade: ClientTLSUpgrade = { channel in
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context), position: .first)
        }
        let adapter = PostgresAdapter(governor: runtime, configuration: settings, connector: Sockets.connector, tlsUpgrade: upgrade,
                                      admission: runtime.admission)
        return TCPListener(name: "postgres", address: address, logger: logger) { channel in
            try channel.pipeline.syncOperations.addHandler(adapter.makeHandler())
        }
    }
}
