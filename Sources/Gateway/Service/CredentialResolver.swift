import Adapters
import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import MaskEngine
import NIOCore

/// Reads a connection's credential from the environment or files named in the configuration.
enum CredentialResolver {
    struct Missing: Error, CustomStringConvertible {
        var source: String
        var description: String { "credential source \(source) is empty or unreadable" }
    }

    /// Why `source` cannot be resolved now (an unset or empty variable, a missing, empty or
    /// unreadable file), without reading any secret; nil when it can. Checked at start and on
    /// reload, and shown in `/healthz` and the console's Connections page.
    static func problem(_ source: GatewayConfiguration.CredentialSource) -> String? {
        switch source.justInTime {
        case .ephemeralRole(let admin, _, _):
            var login = GatewayConfiguration.CredentialSource()
            login.passwordEnv = admin.passwordEnv
            login.passwordFile = admin.passwordFile
            return problem(login).map { "admin credential: " + $0 }
        case .certificate(let caKeyFile, _, _):
            var ca = GatewayConfiguration.CredentialSource()
            ca.privateKeyFile = caKeyFile
            return problem(ca).map { "certificate authority: " + $0 }
        case nil:
            break
        }
        for name in [source.passwordEnv, source.tokenEnv].compactMap({ $0 }) {
            if ProcessInfo.processInfo.environment[name]?.isEmpty ?? true { return "environment variable \(name) is not set" }
        }
        for path in [source.passwordFile, source.privateKeyFile, source.tokenFile].compactMap({ $0 }) {
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
            guard let size else { return "file \(path) does not exist" }
            if size == 0 { return "file \(path) is empty" }
            if !FileManager.default.isReadableFile(atPath: path) { return "file \(path) is not readable by the gateway" }
        }
        return nil
    }

    static func resolve(_ source: GatewayConfiguration.CredentialSource) throws -> Credential {
        func environment(_ name: String?) throws -> Secret? {
            guard let name else { return nil }
            guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { throw Missing(source: "env \(name)") }
            return Secret(value)
        }
        func file(_ path: String?, trim: Bool) throws -> Secret? {
            guard let path else { return nil }
            guard let data = FileManager.default.contents(atPath: path), !data.isEmpty else { throw Missing(source: "file \(path)") }
            var bytes = Array(data)
            if trim { while let last = bytes.last, last == 10 || last == 13 { bytes.removeLast() } }
            return Secret(bytes: bytes)
        }
        return Credential(username: source.username,
                          password: try environment(source.passwordEnv) ?? file(source.passwordFile, trim: true),
                          privateKey: try file(source.privateKeyFile, trim: false),
                          token: try environment(source.tokenEnv) ?? file(source.tokenFile, trim: true),
                          headerName: source.header)
    }
}
