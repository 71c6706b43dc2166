import Foundation

/// The tokens `sluice login` keeps, per gateway, in the user's config folder
/// (`$SLUICE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/sluice`, else `~/.config/sluice`):
/// `credentials.json`, mode 0600 in a 0700 folder. Commands that need a token and were given
/// none use it; an OIDC token about to expire is refreshed with its refresh token.
public struct TokenCache: Sendable {
    public struct Entry: Codable, Sendable, Equatable {
        public var token: String
        public var refreshToken: String?
        /// Unix seconds (the token's `exp`).
        public var expiresAt: Int64
        /// `oidc` or `dev`.
        public var kind: String
        public var issuer: String?
        public var tokenEndpoint: String?
        public var clientID: String?
        /// The provider's non-secret "installed app" secret, when it demands one for refresh.
        public var clientSecret: String?
        public var user: String
        public var groups: [String]

        public init(token: String, refreshToken: String? = nil, expiresAt: Int64, kind: String, issuer: String? = nil,
                    tokenEndpoint: String? = nil, clientID: String? = nil, user: String, groups: [String]) {
            self.token = token
            self.refreshToken = refreshToken
            self.expiresAt = expiresAt
            self.kind = kind
            self.issuer = issuer
            self.tokenEndpoint = tokenEndpoint
            self.clientID = clientID
            self.user = user
            self.groups = groups
        }

        enum CodingKeys: String, CodingKey {
            case token, kind, issuer, user, groups
            case refreshToken = "refresh_token"
            case expiresAt = "expires_at"
            case tokenEndpoint = "token_endpoint"
            case clientID = "client_id"
            case clientSecret = "client_secret"
        }
    }

    public struct Document: Codable, Sendable, Equatable {
        /// The gateway `sluice login` signed in to last (commands default to it).
        public var current: String?
        public var gateways: [String: Entry] = [:]
        public init() {}
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var reason: String
        public var description: String { reason }
    }

    public let folder: String
    public var path: String { (folder as NSString).appendingPathComponent("credentials.json") }

    public init(folder: String) { self.folder = folder }

    /// The folder from the environment (see the type's comment).
    public static func standard(environment: [String: String] = ProcessInfo.processInfo.environment) -> TokenCache {
        if let folder = environment["SLUICE_CONFIG_DIR"], !folder.isEmpty { return TokenCache(folder: folder) }
        if let base = environment["XDG_CONFIG_HOME"], !base.isEmpty {
            return TokenCache(folder: (base as NSString).appendingPathComponent("sluice"))
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return TokenCache(folder: ((home as NSString).appendingPathComponent(".config") as NSString).appendingPathComponent("sluice"))
    }

    /// A gateway URL as the cache keys it: no trailing slash.
    public static func key(_ gateway: String) -> String {
        gateway.hasSuffix("/") ? String(gateway.dropLast()) : gateway
    }

    public func load() throws -> Document {
        guard let data = FileManager.default.contents(atPath: path) else { return Document() }
        // Refuse a cache others can read: its tokens are as good as the user's sign-in.
        if let mode = (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions]) as? Int, mode & 0o077 != 0 {
            throw Failure(reason: "\(path) is readable by others (mode \(String(mode, radix: 8))); run `chmod 600 \(path)` or `sluice logout`")
        }
        do {
            return try JSONDecoder().decode(Document.self, from: data)
        } catch {
            throw Failure(reason: "\(path) is not a sluice credentials file; remove it and sign in again")
        }
    }

    public func save(_ document: Document) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(document)
        let temporary = (folder as NSString).appendingPathComponent(".credentials.json.\(getpid()).tmp")
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw Failure(reason: "cannot write \(temporary)")
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw Failure(reason: "cannot replace \(path) (errno \(errno))")
        }
    }

    public func entry(for gateway: String) throws -> Entry? {
        try load().gateways[Self.key(gateway)]
    }

    public func store(_ entry: Entry, for gateway: String, makeCurrent: Bool = true) throws {
        var document = try load()
        document.gateways[Self.key(gateway)] = entry
        if makeCurrent || document.current == nil { document.current = Self.key(gateway) }
        try save(document)
    }

    /// Forgets one gateway's tokens (or all); true when something was removed.
    @discardableResult
    public func remove(gateway: String?) throws -> Bool {
        var document = try load()
        let removed: Bool
        if let gateway {
            removed = document.gateways.removeValue(forKey: Self.key(gateway)) != nil
            if document.current == Self.key(gateway) { document.current = document.gateways.keys.sorted().first }
        } else {
            removed = !document.gateways.isEmpty
            document = Document()
        }
        if document.gateways.isEmpty {
            try? FileManager.default.removeItem(atPath: path)
        } else {
            try save(document)
        }
        return removed
    }
}

extension TokenCache {
    /// The cached sign-in for `gateway`, refreshed (and saved) when it expires within `margin`
    /// seconds: an OIDC sign-in with its refresh token, silently; a dev token cannot be refreshed.
    public func validEntry(gateway: String, now: Date = Date(), margin: Int64 = 60,
                           post: @escaping FormPoster = FormPost.live) async throws -> Entry {
        guard let entry = try entry(for: gateway) else {
            throw Failure(reason: "not signed in to \(Self.key(gateway)); run `sluice login --gateway \(Self.key(gateway))`")
        }
        let seconds = Int64(now.timeIntervalSince1970)
        if entry.expiresAt - margin > seconds { return entry }
        guard entry.kind == "oidc", let refreshToken = entry.refreshToken, let endpoint = entry.tokenEndpoint,
              let issuer = entry.issuer, let clientID = entry.clientID else {
            throw Failure(reason: "your sign-in to \(Self.key(gateway)) expired; run `sluice login` again")
        }
        let login = OIDCLogin(issuer: issuer, clientID: clientID, clientSecret: entry.clientSecret, post: post)
        let tokens: OIDCLogin.Tokens
        do {
            tokens = try await login.refresh(refreshToken, tokenEndpoint: endpoint)
        } catch {
            throw Failure(reason: "your sign-in to \(Self.key(gateway)) expired and could not be refreshed (\(error)); run `sluice login` again")
        }
        var refreshed = entry
        refreshed.token = tokens.idToken
        refreshed.refreshToken = tokens.refreshToken
        let claims = OIDCLogin.claims(tokens.idToken)
        refreshed.expiresAt = (claims["exp"] as? NSNumber)?.int64Value ?? seconds + 300
        try store(refreshed, for: gateway, makeCurrent: false)
        return refreshed
    }
}
