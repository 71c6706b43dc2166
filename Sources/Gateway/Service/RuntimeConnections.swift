import Adapters
import Crypto
import Foundation
import Yams

/// The configuration file's connections with the store's runtime connections merged in.
struct MergedConnections: Sendable {
    var configuration: GatewayConfiguration
    var stored: [StoredConnection]
    /// Runtime connections not served, by name, with why (shadowed by the file, or invalid).
    var skipped: [String: String]
}

/// Why a change to the runtime connections was refused.
public struct ConnectionChangeError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// The definition is not a valid connection (the reason says which key and why).
        case invalid = "invalid_connection"
        /// A runtime connection of that name exists (add), or the file defines it.
        case conflict = "connection_exists"
        case notFound = "connection_not_found"
        /// Defined in the configuration file: change it there.
        case fromFile = "connection_in_file"
        case storeUnavailable = "store_unavailable"
    }

    public var code: Code
    public var reason: String
    public var description: String { "\(code.rawValue): \(reason)" }

    init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }
}

/// Where a served connection comes from, for listings.
public struct ConnectionOrigin: Sendable, Equatable {
    /// `file` or `runtime`.
    public var source: String
    public var updatedBy: String?
    public var updatedAt: Int64?
}

extension GatewayRuntime {
    /// The largest runtime connection definition accepted (JSON bytes).
    static let maximumConnectionSpecBytes = 64 << 10
    /// Runtime connections at most (every gateway compiles each).
    static let maximumRuntimeConnections = 1_000

    /// Merges `stored` into `file`: the file wins on a name clash (the runtime one is skipped and
    /// the gateway says so); a stored definition that no longer checks (a masking profile the file
    /// dropped, say) is skipped with why, never fatal.
    static func merge(_ file: GatewayConfiguration, stored: [StoredConnection]) -> MergedConnections {
        var configuration = file
        var skipped: [String: String] = [:]
        let fileNames = Set(file.connections.map(\.name))
        for entry in stored {
            if fileNames.contains(entry.name) {
                skipped[entry.name] = "shadowed: the configuration file defines a connection of this name, and the file wins"
                continue
            }
            do {
                let connection = try GatewayConfiguration.parseRuntimeConnection(entry.spec, profiles: file.masking.profiles)
                guard connection.name == entry.name else {
                    skipped[entry.name] = "invalid: the stored definition names \(connection.name.prefix(64))"
                    continue
                }
                _ = try CompiledConnection(connection)
                configuration.connections.append(connection)
            } catch {
                skipped[entry.name] = "invalid: \(String(describing: error).prefix(300))"
            }
        }
        return MergedConnections(configuration: configuration, stored: stored, skipped: skipped)
    }

    func warnAboutSkipped(_ skipped: [String: String]) {
        for (name, why) in skipped.sorted(by: { $0.key < $1.key }) {
            logger.warning("runtime connection not served", metadata: ["connection": "\(name)", "why": "\(why)"])
        }
    }

    /// Runtime connections not served now, with why.
    public var skippedConnections: [String: String] { snapshot.withLock { $0.skipped } }

    /// Where each served connection comes from.
    public func connectionOrigins() -> [String: ConnectionOrigin] {
        snapshot.withLock { snapshot in
            var origins: [String: ConnectionOrigin] = [:]
            for connection in snapshot.file.connections { origins[connection.name] = ConnectionOrigin(source: "file") }
            for entry in snapshot.stored where origins[entry.name] == nil && snapshot.skipped[entry.name] == nil {
                origins[entry.name] = ConnectionOrigin(source: "runtime", updatedBy: entry.updatedBy, updatedAt: entry.updatedAt)
            }
            return origins
        }
    }

    /// The stored definition of a runtime connection (JSON), nil for file connections and unknown names.
    public func runtimeSpec(_ name: String) -> String? {
        snapshot.withLock { $0.stored.first { $0.name == name }?.spec }
    }

    /// Re-reads the runtime connections and, when they changed (here or on another gateway on the
    /// same store), swaps in a policy with them. Open sessions keep their connection as it was.
    /// Returns whether anything changed; a store that cannot be read changes nothing.
    @discardableResult
    public func refreshRuntimeConnections() -> Bool {
        guard let stored = try? store.runtimeConnections() else { return false }
        let (current, file) = snapshot.withLock { ($0.stored, $0.file) }
        guard stored != current else { return false }
        let merged = Self.merge(file, stored: stored)
        guard let policy = try? CompiledPolicy(configuration: merged.configuration) else {
            logger.error("runtime connections refused: the merged configuration does not compile")
            return false
        }
        snapshot.withLock { snapshot in
            // A reload in between replaced the file: merge again against it next time.
            guard snapshot.file.connections == file.connections else { return }
            snapshot.policy = policy
            snapshot.stored = merged.stored
            snapshot.skipped = merged.skipped
        }
        warnAboutSkipped(merged.skipped)
        for connection in merged.configuration.connections {
            if let problem = CredentialResolver.problem(connection.credential), stored.contains(where: { $0.name == connection.name }) {
                logger.warning("credential unavailable", metadata: ["connection": "\(connection.name)", "problem": "\(problem)"])
            }
        }
        return true
    }

    /// Adds (`create`) or replaces a runtime connection from its JSON definition, records the
    /// change in the control chain (who, which connection, which keys changed, the definition's
    /// digest — never a value of its credential) and serves it at once.
    public func saveConnection(json: Data, actor: String, create: Bool, name expectedName: String? = nil) throws
        -> GatewayConfiguration.Connection {
        guard json.count <= Self.maximumConnectionSpecBytes else {
            throw ConnectionChangeError(.invalid, "the definition is larger than \(Self.maximumConnectionSpecBytes) bytes")
        }
        guard let object = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else {
            throw ConnectionChangeError(.invalid, "expected a JSON object with the keys of a connections: entry")
        }
        let canonical = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        let spec = String(decoding: canonical, as: UTF8.self)
        let file = snapshot.withLock { $0.file }
        let connection: GatewayConfiguration.Connection
        do {
            connection = try GatewayConfiguration.parseRuntimeConnection(spec, profiles: file.masking.profiles)
            _ = try CompiledConnection(connection)
        } catch let error as ConfigurationError {
            throw ConnectionChangeError(.invalid, "\(error.key): \(error.reason)")
        } catch {
            throw ConnectionChangeError(.invalid, "the connection does not compile")
        }
        if let expectedName, expectedName != connection.name {
            throw ConnectionChangeError(.invalid, "the definition names \(connection.name), the request \(expectedName.prefix(64)) (rename = remove + add)")
        }
        if file.connections.contains(where: { $0.name == connection.name }) {
            throw ConnectionChangeError(.fromFile, "\(connection.name) is defined in the configuration file; change it there")
        }
        let previous: StoredConnection?
        do {
            let all = try store.runtimeConnections()
            previous = all.first { $0.name == connection.name }
            if !create && previous == nil { throw ConnectionChangeError(.notFound, "no runtime connection \(connection.name)") }
            if create && previous != nil { throw ConnectionChangeError(.conflict, "a connection named \(connection.name) already exists") }
            if create && all.count >= Self.maximumRuntimeConnections {
                throw ConnectionChangeError(.invalid, "at most \(Self.maximumRuntimeConnections) runtime connections")
            }
            try store.putRuntimeConnection(StoredConnection(name: connection.name, spec: spec, updatedBy: actor, updatedAt: clock.nowMicros()),
                                           create: create)
        } catch let error as ConnectionChangeError {
            throw error
        } catch let error as StoreConflict {
            throw ConnectionChangeError(.conflict, error.reason)
        } catch {
            throw ConnectionChangeError(.storeUnavailable, "the store refused the change (\(String(describing: error).prefix(200)))")
        }
        var detail = ["connection": connection.name, "type": connection.kind.rawValue, "target": connection.target,
                      "spec_sha256": Self.hex(SHA256.hash(data: canonical))]
        if let previous {
            detail["changed"] = Self.changedKeys(previous.spec, spec).joined(separator: ",")
        } else {
            detail["keys"] = object.keys.sorted().joined(separator: ",")
        }
        if let mode = connection.credential.justInTime?.mode { detail["credential_mode"] = mode }
        control.append(create ? "connection.added" : "connection.changed", actor: actor, detail)
        refreshRuntimeConnections()
        return connection
    }

    /// Removes a runtime connection (recorded in the control chain). Open sessions on it run on.
    public func removeConnection(name: String, actor: String) throws {
        if snapshot.withLock({ $0.file.connections.contains { $0.name == name } }) {
            throw ConnectionChangeError(.fromFile, "\(name) is defined in the configuration file; remove it there")
        }
        let removed: Bool
        do {
            removed = try store.removeRuntimeConnection(name: name)
        } catch {
            throw ConnectionChangeError(.storeUnavailable, "the store refused the change (\(String(describing: error).prefix(200)))")
        }
        guard removed else { throw ConnectionChangeError(.notFound, "no runtime connection \(name.prefix(64))") }
        control.append("connection.removed", actor: actor, ["connection": name])
        refreshRuntimeConnections()
    }

    /// The top-level keys whose values differ between two definitions (names only).
    static func changedKeys(_ before: String, _ after: String) -> [String] {
        func object(_ text: String) -> [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
        }
        let old = object(before)
        let new = object(after)
        return Set(old.keys).union(new.keys).sorted().filter { key in
            let left = old[key].flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys, .fragmentsAllowed]) }
            let right = new[key].flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys, .fragmentsAllowed]) }
            return left != right
        }
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        Hex.string(digest)
    }
}

extension GatewayConfiguration {
    /// A connection definition in YAML (or JSON) as the JSON object the admin API takes
    /// (`sluice connections add --file`).
    public static func connectionSpecJSON(_ text: String) throws -> Data {
        guard let root = try ConfigNode.parse(text, file: "connection file"), root.isMapping else {
            throw ConfigurationError(file: "connection file", key: "(top level)", reason: "expected one connection as a mapping")
        }
        return try JSONSerialization.data(withJSONObject: ConfigNode.plain(root.node), options: [.sortedKeys, .withoutEscapingSlashes])
    }
}

extension ConfigNode {
    /// A YAML node as JSON-ready values: mappings, lists and scalars as text (the configuration's
    /// own readers parse numbers, booleans and durations from text).
    static func plain(_ node: Node) -> Any {
        switch node {
        case .scalar(let scalar): return scalar.string
        case .sequence(let sequence): return sequence.map { plain($0) }
        case .mapping(let mapping):
            var object: [String: Any] = [:]
            for (key, value) in mapping { object[key.string ?? "\(key)"] = plain(value) }
            return object
        case .alias: return ""
        }
    }
}
