#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Adapters

/// Checks, before anything starts, that each configured listener's address can be bound, so a
/// port in use or an address this host does not have is reported with the listener's name and
/// address (`listen.postgres: cannot listen on 127.0.0.1:15432: Address already in use`) rather
/// than as a bare system call error from inside the server. The listeners still bind for real
/// afterwards; a port taken in between fails there.
enum ListenerProbe {
    /// nil when `address` can be bound and listened on now; otherwise the system's reason.
    static func problem(_ address: HostPort) -> String? {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(address.host, String(address.port), &hints, &result)
        guard status == 0, let info = result else {
            return "cannot resolve \(address.host) (\(String(cString: gai_strerror(status))))"
        }
        defer { freeaddrinfo(result) }
        let descriptor = socket(info.pointee.ai_family, info.pointee.ai_socktype, 0)
        guard descriptor >= 0 else { return String(cString: strerror(errno)) }
        defer { close(descriptor) }
        var one: Int32 = 1
        _ = setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(descriptor, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else { return String(cString: strerror(errno)) }
        guard listen(descriptor, 1) == 0 else { return String(cString: strerror(errno)) }
        return nil
    }

    /// Throws a configuration error naming the first listener that cannot be bound.
    static func check(_ configuration: GatewayConfiguration) throws {
        let listeners: [(String, HostPort?)] = [
            ("admin", configuration.listen.admin), ("postgres", configuration.listen.postgres), ("ssh", configuration.listen.ssh),
            ("http", configuration.listen.http), ("kubernetes", configuration.listen.kubernetes),
        ]
        for case let (name, address?) in listeners {
            if let problem = problem(address) {
                throw ConfigurationError(file: configuration.file, key: "listen.\(name)",
                                         reason: "cannot listen on \(address): \(problem)")
            }
        }
    }
}
