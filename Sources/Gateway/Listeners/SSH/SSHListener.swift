import MaskEngine
import Adapters
import CLibSSH
import Dispatch
import Foundation
import Logging
import ServiceLifecycle

/// An SSH failure: a code and names, never payload or secrets.
struct SSHBridgeError: Error, CustomStringConvertible {
    var reason: String
    var description: String { "ssh: \(reason)" }
}

/// The SSH listener (`listen.ssh`), on libssh: one thread accepts, one thread per session runs
/// both legs (the client's session and the upstream one) in one `ssh_event` loop. libssh brings
/// what the gateway needs and swift-nio-ssh lacks (RSA host and user keys, aes-ctr, chacha20,
/// keyboard-interactive on the server, and re-keying that never drops channel data).
final class SSHListener: Service, @unchecked Sendable {
    let address: HostPort
    let runtime: GatewayRuntime
    let hostKeyPath: String
    let logger: Logger
    let recordCap: Int
    /// `limits.startup_timeout`: the key exchange and the login must be done within it.
    let startupTimeout: Duration
    /// A libssh handle shared with the accept thread (libssh objects are not Sendable).
    private struct Handle: @unchecked Sendable { let raw: OpaquePointer }
    private let bind = Locked<Handle?>(nil)
    private let stopped = Locked(false)

    init(address: HostPort, runtime: GatewayRuntime, hostKeyPath: String, recordCap: Int, startupTimeout: Duration = .seconds(10),
         logger: Logger) {
        self.startupTimeout = startupTimeout
        self.address = address
        self.runtime = runtime
        self.hostKeyPath = hostKeyPath
        self.recordCap = recordCap
        self.logger = logger
    }

    static func make(configuration: GatewayConfiguration, runtime: GatewayRuntime, logger: Logger) throws -> SSHListener? {
        guard let address = configuration.listen.ssh else { return nil }
        let path = (configuration.stateDir as NSString).appendingPathComponent("ssh_host_ed25519_key")
        try ensureHostKey(path)
        return SSHListener(address: address, runtime: runtime, hostKeyPath: path, recordCap: configuration.recordOutputCap * 16,
                           startupTimeout: configuration.startupTimeout, logger: logger)
    }

    /// The gateway's SSH host key, generated once and kept in the state dir.
    static func ensureHostKey(_ path: String) throws {
        if FileManager.default.fileExists(atPath: path) { return }
        var key: ssh_key?
        guard ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) == SSH_OK, let key else {
            throw SSHBridgeError(reason: "cannot generate the host key")
        }
        defer { ssh_key_free(key) }
        guard ssh_pki_export_privkey_file(key, nil, nil, nil, path) == SSH_OK else {
            throw ConfigurationError(file: path, key: "state_dir", reason: "cannot write the SSH host key")
        }
        chmod(path, 0o600)
    }

    func run() async throws {
        guard let bind = ssh_bind_new() else { throw SSHBridgeError(reason: "ssh_bind_new failed") }
        var port = UInt32(address.port)
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_BINDADDR, address.host)
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_BINDPORT, &port)
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HOSTKEY, hostKeyPath)
        guard ssh_bind_listen(bind) == SSH_OK else {
            let message = String(cString: ssh_get_error(UnsafeMutableRawPointer(bind)))
            ssh_bind_free(bind)
            throw SSHBridgeError(reason: "cannot listen on \(address): \(message)")
        }
        let handle = Handle(raw: bind)
        self.bind.withLock { $0 = handle }
        logger.notice("ssh listening", metadata: ["address": "\(address)"])
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "sluice-ssh-accept"
        thread.start()
        try? await gracefulShutdown()
        stopped.withLock { $0 = true }
        // Closing the listening socket ends the accept loop.
        let fd = ssh_bind_get_fd(bind)
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private func acceptLoop() {
        guard let bind = self.bind.withLock({ $0 })?.raw else { return }
        while !stopped.withLock({ $0 }) {
            guard let session = ssh_new() else { continue }
            if ssh_bind_accept(bind, session) != SSH_OK {
                ssh_free(session)
                if stopped.withLock({ $0 }) { break }
                continue
            }
            // A source over its share of connections still logging in costs no thread.
            let peer = Self.peer(ofDescriptor: ssh_get_fd(session))
            let source = HostPort(peer)?.host ?? "?"
            if let refusal = runtime.admission.admit(source) {
                logger.info("ssh connection refused", metadata: ["why": "\(refusal)", "source": "\(source)"])
                ssh_disconnect(session)
                ssh_free(session)
                continue
            }
            let driver = SSHSessionDriver(session: session, runtime: runtime, logger: logger, recordCap: recordCap,
                                          peer: peer, admitted: source, startupTimeout: startupTimeout)
            let thread = Thread { driver.run() }
            thread.name = "sluice-ssh-session"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }
}

extension SSHListener {
    /// `HOST:PORT` of a connected socket's peer, as ``HostPort/peer(_:)`` writes it.
    static func peer(ofDescriptor fd: Int32) -> String {
        guard fd >= 0 else { return "?" }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let found = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard found == 0 else { return "?" }
        // One numeric lookup for IPv4 and IPv6 alike.
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let named = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard named == 0 else { return "?" }
        func text(_ chars: [CChar]) -> String { String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return HostPort(host: text(host), port: Int(text(service)) ?? 0).description
    }
}

/// Runs an async call from a session thread, blocking that thread (never an event loop).
func blockingAwait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let semaphore = DispatchSemaphore(value: 0)
    let result = Locked<Result<T, any Error>?>(nil)
    Task {
        do {
            let value = try await body()
            result.withLock { $0 = .success(value) }
        } catch {
            result.withLock { $0 = .failure(error) }
        }
        semaphore.signal()
    }
    semaphore.wait()
    return try result.withLock { $0! }.get()
}
