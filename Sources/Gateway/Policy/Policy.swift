import Adapters
import Foundation
import MaskEngine

/// A guardrail rule compiled at load.
struct CompiledRule: @unchecked Sendable {
    // Regex is immutable after construction; it is only read here.
    let rule: GatewayConfiguration.Rule
    let index: Int
    let regex: Regex<AnyRegexOutput>?

    init(_ rule: GatewayConfiguration.Rule, index: Int) throws {
        self.rule = rule
        self.index = index
        self.regex = try rule.match.map { try Regex($0) }
    }

    /// `matched`: the rule's regex result from the connection's pattern set (nil: evaluate here).
    func applies(to command: Command, identity: Identity, matched: Bool?) -> Bool {
        if !rule.groups.isEmpty && !identity.isMember(of: rule.groups) { return false }
        if let commandClass = rule.commandClass, !command.classes.contains(commandClass) { return false }
        if let matched { return matched }
        if let regex {
            let texts = rule.action == .allow ? [command.text] : [command.text] + command.forms
            guard texts.contains(where: { (try? regex.firstMatch(in: $0)) != nil }) else { return false }
        }
        return true
    }
}

/// What the policy says about one command.
public struct PolicyDecision: Sendable, Equatable {
    public var action: GatewayConfiguration.Rule.Action
    public var message: String?
    /// The index of the rule that decided, nil when no rule matched (allow).
    public var rule: Int?
}

/// One connection with its rules compiled.
public final class CompiledConnection: Sendable {
    public let config: GatewayConfiguration.Connection
    let rules: [CompiledRule]
    /// Every rule's `match` in one Hyperscan database; rules it cannot compile use Swift Regex.
    let patterns: PatternSet
    /// Rule index → index in `patterns`.
    let patternIndex: [Int: Int]

    init(_ config: GatewayConfiguration.Connection, cache: HyperscanDatabaseCache? = HyperscanDatabaseCache.default) throws {
        self.config = config
        self.rules = try config.guardrails.enumerated().map { try CompiledRule($1, index: $0) }
        var index: [Int: Int] = [:]
        var texts: [String] = []
        for (ruleIndex, rule) in config.guardrails.enumerated() {
            if let match = rule.match {
                index[ruleIndex] = texts.count
                texts.append(match)
            }
        }
        self.patterns = PatternSet(patterns: texts, cache: cache)
        self.patternIndex = index
    }

    /// Rules are tried in order; the first that applies decides; none means allow.
    public func decide(_ command: Command, for identity: Identity) -> PolicyDecision {
        let raw = patterns.count == 0 ? [] : ((try? patterns.matches(command.text)) ?? [])
        // `block` and `review` rules match the text or any of the adapter's canonical forms (a
        // shell line's simple commands); `allow` rules only the text, so a form of one command
        // in a line can never allow the whole line.
        var any = raw
        if patterns.count > 0 {
            for form in command.forms {
                // A failed scan falls back to Swift Regex over every text, below.
                guard let more = try? patterns.matches(form), more.count == any.count else { any = []; break }
                any = zip(any, more).map { $0 || $1 }
            }
        }
        for rule in rules {
            var hit: Bool?
            let matched = rule.rule.action == .allow ? raw : any
            if let position = patternIndex[rule.index], position < matched.count, !patterns.unsupported.contains(position) {
                hit = matched[position]
            }
            guard rule.applies(to: command, identity: identity, matched: hit) else { continue }
            let message = rule.rule.message ?? {
                switch rule.rule.action {
                case .block: return "blocked by policy on \(config.name) (rule \(rule.index + 1))"
                case .review: return "held for review by policy on \(config.name) (rule \(rule.index + 1))"
                case .allow: return nil
                }
            }()
            return PolicyDecision(action: rule.rule.action, message: message, rule: rule.index)
        }
        return PolicyDecision(action: .allow, message: nil, rule: nil)
    }

    /// Members of `access.groups` may connect (unless the connection requires a just-in-time grant).
    public func groupAllows(_ identity: Identity) -> Bool {
        !config.requiresGrant && identity.isMember(of: config.accessGroups)
    }

    /// The masking profile name for this user, or nil when the user sees data unmasked.
    public func profileName(for identity: Identity) -> String? {
        if identity.isMember(of: config.masking.unmaskedGroups) { return nil }
        for group in identity.groups {
            if let profile = config.masking.groups[group] { return profile }
        }
        return config.masking.profile
    }

    /// A style forced on a whole column by `columns:` rules (`table.column` wins over `*.column`).
    public func columnStyle(table: String?, column: String) -> MaskStyle? {
        let name = column.lowercased()
        if let table, let style = config.masking.columns["\(table.lowercased()).\(name)"] { return style }
        return config.masking.columns["*.\(name)"]
    }
}

/// An immutable snapshot of configuration, compiled rules and masking engines. Reload builds a
/// new one and swaps it in; sessions pick it up on their next decision.
public final class CompiledPolicy: Sendable {
    public let configuration: GatewayConfiguration
    public let connections: [String: CompiledConnection]
    /// One compiled engine per profile in use.
    public let engines: [String: MaskingEngine]
    public let detectorCount: Int

    public init(configuration: GatewayConfiguration) throws {
        self.configuration = configuration
        // Compiled Hyperscan databases are kept in STATE_DIR/cache/hs (or $SLUICE_CACHE_DIR).
        let cache = HyperscanDatabaseCache.fromEnvironment(stateDirectory: configuration.stateDir)
        var connections: [String: CompiledConnection] = [:]
        for connection in configuration.connections {
            do {
                connections[connection.name] = try CompiledConnection(connection, cache: cache)
            } catch {
                throw ConfigurationError(file: configuration.file, key: "connections.\(connection.name).guardrails",
                                         reason: "invalid regular expression")
            }
        }
        self.connections = connections
        let setup = MaskingSetup(corpora: configuration.detectors, profiles: configuration.masking.profiles,
                                 hashKeyEnvironment: configuration.masking.hashKeyEnv)
        let detectors: [Detector]
        do {
            detectors = try setup.loadDetectors()
        } catch {
            throw ConfigurationError(file: configuration.file, key: "detectors", reason: "\(error)")
        }
        self.detectorCount = detectors.count
        for (name, profile) in configuration.masking.profiles.sorted(by: { $0.key < $1.key }) {
            let unknown = profile.unknownSelectors(among: detectors)
            guard let first = unknown.first else { continue }
            let categories = Set(detectors.map(\.category)).sorted().map { "category:" + $0 }
            throw ConfigurationError(file: configuration.file, key: "masking.profiles.\(name)",
                                     reason: "unknown detector '\(first.prefix(64))'"
                                         + (unknown.count > 1 ? " (and \(unknown.count - 1) more)" : "")
                                         + "; known: " + (detectors.map(\.id) + categories + ["*"]).joined(separator: ", "))
        }
        var needed: Set<String> = ["default"]
        for connection in configuration.connections {
            needed.insert(connection.masking.profile)
            needed.formUnion(connection.masking.groups.values)
        }
        let key = ProcessInfo.processInfo.environment[configuration.masking.hashKeyEnv].map { Array($0.utf8) }
        var engines: [String: MaskingEngine] = [:]
        for name in needed.sorted() {
            guard let profile = configuration.masking.profiles[name] else {
                throw ConfigurationError(file: configuration.file, key: "masking.profiles", reason: "unknown profile '\(name)'")
            }
            do {
                engines[name] = try MaskingEngine(detectors: detectors, profile: profile, hashKey: key, cache: cache)
            } catch {
                throw ConfigurationError(file: configuration.file, key: "masking.profiles.\(name)", reason: "\(error)")
            }
        }
        self.engines = engines
    }

    public func connection(_ name: String) -> CompiledConnection? { connections[name] }
}
