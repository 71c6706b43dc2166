import Adapters
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// Everything `sluice serve` starts, as services in one group with graceful shutdown on
/// SIGTERM/SIGINT (open sessions are told and their records sealed) and reload on SIGHUP.
public struct GatewayServer {
    public let configuration: GatewayConfiguration
    public let configurationPath: String?
    public let logger: Logger

    public init(configuration: GatewayConfiguration, configurationPath: String?, logger: Logger) {
        self.configuration = configuration
        self.configurationPath = configurationPath
        self.logger = logger
    }

    /// Builds the runtime (state dir, store, compiled policy) without opening any socket.
    public static func makeRuntime(_ configuration: GatewayConfiguration, logger: Logger,
                                   clock: any GatewayClock = SystemClock(),
                                   fetch: @escaping HTTPFetcher = HTTPFetch.live) throws -> GatewayRuntime {
        let state = StateDirectory(path: configuration.stateDir)
        try state.prepare()
        let store = try openStore(configuration)
        let policy = try CompiledPolicy(configuration: configuration)
        let runtime = try GatewayRuntime(policy: policy, store: store, signingKey: try state.signingKey(), clock: clock,
                                         fetch: fetch, logger: logger, gatewayID: try state.gatewayID())
        runtime.refreshRuntimeConnections()
        return runtime
    }

    public func run() async throws {
        let exposed = try configuration.checkDevIssuerExposure()
        try ListenerProbe.check(configuration)
        let runtime = try Self.makeRuntime(configuration, logger: logger)
        try await runtime.reviews.restore()
        await runtime.sweepEphemeralRoles()
        runtime.reviews.followStore()
        runtime.warnAboutCredentials()
        if !exposed.isEmpty {
            let warning = "sluice: WARNING: the dev issuer is on and listeners face the network (\(exposed.joined(separator: ", "))): "
                + "anyone with the state directory's signing key can mint any identity. Never do this in production.\n"
            FileHandle.standardError.write(Data(warning.utf8))
            logger.warning("the dev issuer is on with public listeners", metadata: ["listeners": "\(exposed.joined(separator: ", "))"])
            runtime.control.append("gateway.dev_issuer_public", actor: "sluice", ["listeners": exposed.joined(separator: ", ")])
        }
        let path = configurationPath
        let reloadSource: @Sendable () throws -> GatewayConfiguration = {
            let configuration = try GatewayConfiguration.load(path: path)
            try configuration.checkDevIssuerExposure()
            return configuration
        }
        let pidFile = (configuration.stateDir as NSString).appendingPathComponent("sluice.pid")
        try? "\(getpid())\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: pidFile) }

        var services: [any Service] = [
            ReviewTicker(reviews: runtime.reviews),
            RuntimeConnectionWatcher(runtime: runtime),
            ReloadOnHangup(runtime: runtime, source: reloadSource, logger: logger),
        ]
        if let admin = configuration.listen.admin {
            let api = AdminAPI(runtime: runtime, reloadSource: reloadSource)
            let logger = self.logger
            let router = api.router()
            try await Console(runtime: runtime).register(on: router)
            // A connection that sends no request for `limits.startup_timeout` (none at all, or
            // none after the last, or a head that never ends) is closed: it holds a descriptor.
            let (seconds, attoseconds) = configuration.startupTimeout.components
            let idle = TimeAmount.nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
            let application = Application(
                router: router,
                server: .http1(configuration: .init(idleTimeout: idle)),
                configuration: .init(address: .hostname(admin.host, port: admin.port), serverName: "sluice"),
                onServerRunning: { channel in
                    logger.notice("admin listening", metadata: ["address": "\(channel.localAddress?.description ?? "?")"])
                },
                logger: logger)
            services.append(application)
        }
        if let postgres = try PostgresListener.make(configuration: configuration, runtime: runtime, logger: logger) {
            services.append(postgres)
        }
        if let ssh = try SSHListener.make(configuration: configuration, runtime: runtime, logger: logger) {
            services.append(ssh)
        }
        if let http = HTTPListener.make(configuration: configuration, runtime: runtime, logger: logger) {
            services.append(http)
        }
        if let kubernetes = try KubernetesListener.make(configuration: configuration, runtime: runtime, logger: logger) {
            services.append(kubernetes)
        }
        services.append(SessionCloser(runtime: runtime, timeout: configuration.shutdownTimeout, logger: logger))
        services.append(ConsoleHeartbeat(hub: runtime.hub))

        runtime.control.append("gateway.started", actor: "sluice", ["connections": String(configuration.connections.count),
                                                                   "config": configuration.file ?? "(embedded defaults)"])
        logger.notice("sluice serving", metadata: [
            "config": "\(configuration.file ?? "(embedded defaults)")", "state_dir": "\(configuration.stateDir)",
            "store": "\(displayedStoreURL(configuration.storeURL))", "connections": "\(configuration.connections.count)",
            "dev_issuer": "\(configuration.identity.devIssuer)",
        ])
        var groupConfiguration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // Services still running when the bound passes are cancelled; SessionCloser's watchdog
        // ends the process if cancellation does not finish either.
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownTimeout
        let group = ServiceGroup(configuration: groupConfiguration)
        try await group.run()
        runtime.control.append("gateway.stopped", actor: "sluice")
        logger.notice("sluice stopped")
    }
}

/// Times out reviews and ends grants once a second.
struct ReviewTicker: Service {
    let reviews: ReviewCenter

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: .seconds(1))
            await reviews.tick()
        }
    }
}

/// Picks up runtime connections added, changed or removed through another gateway on the same
/// store, every two seconds (this gateway's own changes apply at once), and sweeps stale
/// ephemeral roles every five minutes.
struct RuntimeConnectionWatcher: Service {
    let runtime: GatewayRuntime

    func run() async throws {
        var ticks = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: .seconds(2))
            runtime.refreshRuntimeConnections()
            ticks += 1
            // Ephemeral roles past their VALID UNTIL (a gateway that died) go every five minutes.
            if ticks % 150 == 0 { await runtime.sweepEphemeralRoles() }
        }
    }
}

/// On graceful shutdown, tells and seals every open session, and bounds the whole stop: the
/// service group cancels what still runs after `timeout` (`limits.shutdown_timeout`), and a
/// watchdog ends the process five seconds later if something ignores cancellation too (a
/// connection a library keeps waiting on), recording why.
struct SessionCloser: Service {
    let runtime: GatewayRuntime
    let timeout: Duration
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        let runtime = self.runtime
        let logger = self.logger
        let limit = Double(timeout.components.seconds) + 5
        let watchdog = Thread {
            Thread.sleep(forTimeInterval: limit)
            logger.error("shutdown took longer than allowed; ending the process", metadata: ["limit_seconds": "\(limit)"])
            runtime.control.append("gateway.stopped", actor: "sluice", ["forced": "true", "after_seconds": String(Int(limit))])
            exit(0)
        }
        watchdog.start()
        // Open console pages first: their feeds would otherwise keep the admin server waiting.
        runtime.hub.shutdown()
        await runtime.closeAll(reason: "gateway shutting down")
    }
}

/// Sends the console's live feeds a heartbeat every ``ConsoleHub/heartbeatInterval``, so a page
/// that went away is noticed (its connection closed) within one interval.
struct ConsoleHeartbeat: Service {
    let hub: ConsoleHub

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while true {
                do { try await Task.sleep(for: ConsoleHub.heartbeatInterval) } catch { return }
                hub.heartbeat()
            }
        }
    }
}

/// SIGHUP re-reads the configuration; a bad one is refused and the running one stays.
struct ReloadOnHangup: Service {
    let runtime: GatewayRuntime
    let source: @Sendable () throws -> GatewayConfiguration
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                do {
                    try runtime.reload(actor: "SIGHUP", source: source)
                } catch {
                    logger.error("reload refused; the running configuration stays", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

/// POSTs JSON to a webhook (review notifications).
enum WebhookPoster {
    static func post(url: String, body: Data) async throws {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        _ = try await response.body.collect(upTo: 64 * 1024)
    }
}
