import Foundation
import Adapters

/// JSON shapes of the admin API and the CLI (snake_case, times in ISO 8601 UTC).
public enum Views {
    static func iso(_ micros: Int64?) -> String? {
        guard let micros else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(micros) / 1_000_000))
    }

    public struct Session: Codable, Sendable {
        public var id: String
        public var user: String
        public var groups: [String]
        public var connection: String
        public var `protocol`: String
        public var peer: String
        public var started_at: String
        public var ended_at: String?
        public var end_reason: String?
        public var event_count: Int
        public var sealed: Bool
        public var counters: [String: Int]

        public init(_ record: SessionRecord) {
            id = record.id
            user = record.user
            groups = record.groups
            connection = record.connection
            self.protocol = record.kind
            peer = record.peer
            started_at = Views.iso(record.startedAt) ?? ""
            ended_at = Views.iso(record.endedAt)
            end_reason = record.endReason
            event_count = record.eventCount
            sealed = record.seal != nil
            counters = record.counters
        }
    }

    public struct Event: Codable, Sendable {
        public var seq: Int
        /// Seconds since the session started.
        public var t: Double
        public var kind: String
        public var data: String
        /// `utf8`, or `base64` for bytes that are not valid UTF-8.
        public var encoding: String

        public init(_ event: StoredEvent) {
            seq = event.seq
            t = Double(event.offset) / 1_000_000
            kind = event.kind
            if let text = String(validating: event.data, as: UTF8.self) {
                data = text
                encoding = "utf8"
            } else {
                data = Data(event.data).base64EncodedString()
                encoding = "base64"
            }
        }
    }

    public struct Review: Codable, Sendable {
        public var id: String
        public var kind: String
        public var status: String
        public var requester: String
        public var connection: String
        public var session: String?
        public var command: String?
        public var classes: [String]
        public var reason: String
        public var created_at: String
        public var deadline: String
        public var approvers: [String]
        public var min_approvals: Int
        public var approvals: [String]
        public var denied_by: String?
        public var deny_reason: String?
        public var grant_seconds: Int64?
        public var grant_end: String?

        public init(_ record: ReviewRecord) {
            id = record.id
            kind = record.kind.rawValue
            status = record.status.rawValue
            requester = record.requester
            connection = record.connection
            session = record.sessionID
            command = record.command
            classes = record.classes
            reason = record.reason
            created_at = Views.iso(record.createdAt) ?? ""
            deadline = Views.iso(record.deadline) ?? ""
            approvers = record.approvers
            min_approvals = record.minApprovals
            approvals = record.approvals.map(\.user)
            denied_by = record.denial?.user
            deny_reason = record.denial?.reason
            grant_seconds = record.grantSeconds
            grant_end = Views.iso(record.grantEnd)
        }
    }

    /// `GET /api/client-config`: how clients sign in and where they connect (no secret).
    public struct ClientConfig: Codable, Sendable {
        public struct Provider: Codable, Sendable {
            public var issuer: String
            public var client_id: String
            public var discovery_url: String?
            public var audience: String
            /// Sent by `sluice login` when the provider demands a secret from native apps (not a secret).
            public var cli_client_secret: String?
        }
        public var oidc: [Provider]
        public var dev_issuer: Bool
        /// Listener addresses by protocol (`postgres`, `ssh`, `http`, `kubernetes`, `admin`) as
        /// configured; a wildcard host (0.0.0.0, ::) means "the host you reached the admin API on".
        public var listeners: [String: String]
        public var public_url: String?
        public var http_host_suffix: String?
        /// The gateway's SSH host key (`ssh-ed25519 AAAA…`), for the client's known_hosts.
        public var ssh_host_key: String?
        /// The gateway's TLS certificate (PEM), for kubeconfig's certificate-authority-data.
        public var tls_certificate: String?

        init(_ configuration: GatewayConfiguration) {
            let state = StateDirectory(path: configuration.stateDir)
            if let data = FileManager.default.contents(atPath: state.file("ssh_host_ed25519_key")),
               let key = try? OpenSSHKey.parsePrivate(String(decoding: data, as: UTF8.self)) {
                ssh_host_key = OpenSSHKey.publicLine(key.publicKey)
            }
            if let data = FileManager.default.contents(atPath: configuration.tls?.cert ?? state.certificatePath) {
                tls_certificate = String(decoding: data, as: UTF8.self)
            }
            oidc = configuration.identity.oidc.map {
                Provider(issuer: $0.issuer, client_id: $0.clientID ?? $0.audience, discovery_url: $0.discoveryURL, audience: $0.audience,
                         cli_client_secret: $0.cliClientSecret)
            }
            dev_issuer = configuration.identity.devIssuer
            var listeners: [String: String] = [:]
            let listen = configuration.listen
            for (name, address) in [("admin", listen.admin), ("postgres", listen.postgres), ("ssh", listen.ssh), ("http", listen.http),
                                    ("kubernetes", listen.kubernetes)] {
                if let address { listeners[name] = address.description }
            }
            self.listeners = listeners
            public_url = configuration.publicURL
            http_host_suffix = configuration.http.hostSuffix
        }
    }

    public struct Connection: Codable, Sendable {
        public var name: String
        public var type: String
        public var target: String
        public var access_groups: [String]
        public var requires_grant: Bool
        public var profile: String
        public var group_profiles: [String: String]
        public var unmasked_groups: [String]
        public var columns: [String: String]
        public var guardrails: [[String: String]]
        public var approvers: [String]
        public var min_approvals: Int
        public var database: String?
        /// `file` or `runtime` (added through the admin API).
        public var source: String?
        public var updated_by: String?
        public var updated_at: String?
        /// `static`, `ephemeral_role` or `certificate`.
        public var credential_mode: String
        /// Runtime connections, to admins: the stored definition (JSON; credential sources only).
        public var spec: String?
    }

    static func connection(_ config: GatewayConfiguration.Connection) -> Connection {
        Connection(
            name: config.name, type: config.kind.rawValue, target: config.target, access_groups: config.accessGroups,
            requires_grant: config.requiresGrant, profile: config.masking.profile, group_profiles: config.masking.groups,
            unmasked_groups: config.masking.unmaskedGroups, columns: config.masking.columns.mapValues(\.rawValue),
            guardrails: config.guardrails.map { rule in
                var entry = ["action": rule.action.rawValue]
                entry["match"] = rule.match
                entry["class"] = rule.commandClass
                entry["message"] = rule.message
                if !rule.groups.isEmpty { entry["groups"] = rule.groups.joined(separator: ",") }
                return entry
            },
            approvers: config.reviews.approvers, min_approvals: config.reviews.minApprovals, database: config.database,
            credential_mode: config.credential.justInTime?.mode ?? "static")
    }

    static func connection(_ config: GatewayConfiguration.Connection, origin: ConnectionOrigin?, spec: String?) -> Connection {
        var view = connection(config)
        view.source = origin?.source
        view.updated_by = origin?.updatedBy
        view.updated_at = iso(origin?.updatedAt)
        view.spec = spec
        return view
    }
}

/// asciicast v2: a header line, then `[seconds, code, data]` lines (`o`, `i`, `r`, `m`).
public enum Asciicast {
    public static func export(session: SessionRecord, store: any RecordReader, width: Int = 80, height: Int = 24) throws -> String {
        var header: [String: Any] = [
            "version": 2, "width": width, "height": height, "timestamp": session.startedAt / 1_000_000,
            "title": "\(session.user)@\(session.connection) (\(session.kind)) \(session.id)",
        ]
        header["env"] = ["TERM": "xterm-256color", "SHELL": "/bin/sh"]
        var lines = [String(decoding: try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]), as: UTF8.self)]
        var after = -1
        var sawSize = false
        while true {
            let page = try store.events(session: session.id, after: after, limit: 1000)
            if page.isEmpty { break }
            for event in page {
                after = event.seq
                // A marker is an asciicast label: its one-line summary.
                let text = event.kind == SessionEvent.Kind.marker.rawValue
                    ? (SessionMarker(json: event.data)?.summary ?? String(decoding: event.data, as: UTF8.self))
                    : String(decoding: event.data, as: UTF8.self)
                if event.kind == "r", !sawSize, let size = Self.size(text) {
                    sawSize = true
                    if lines.count == 1 && event.offset == 0 {
                        header["width"] = size.0
                        header["height"] = size.1
                        lines[0] = String(decoding: try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]), as: UTF8.self)
                        continue
                    }
                }
                let entry: [Any] = [Double(event.offset) / 1_000_000, event.kind, text]
                lines.append(String(decoding: try JSONSerialization.data(withJSONObject: entry, options: [.withoutEscapingSlashes]), as: UTF8.self))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func size(_ text: String) -> (Int, Int)? {
        let parts = text.split(separator: "x")
        guard parts.count == 2, let columns = Int(parts[0]), let rows = Int(parts[1]) else { return nil }
        return (columns, rows)
    }
}
