@_exported import MaskEngine
import Foundation

/// Where the gateway finds its detector corpora when none is configured.
public enum CorpusLocation {
    /// `./corpora` when it exists; else the `corpora` folder of the source tree the binary was
    /// built from (so `.build/release/sluice` works from anywhere inside a checkout).
    public static func defaultDirectories() -> [String] {
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: "corpora") { return ["corpora"] }
        var url = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            let candidate = url.appendingPathComponent("corpora")
            if fileManager.fileExists(atPath: candidate.appendingPathComponent("pii.yaml").path) { return [candidate.path] }
            url.deleteLastPathComponent()
        }
        return ["corpora"]
    }
}

/// Builds masking engines from corpora and profile names, as the command line and (later) the
/// gateway's configuration do.
public struct MaskingSetup: Sendable {
    public var corpora: [String]
    public var profiles: [String: MaskingProfile]
    /// Environment variable that holds the HMAC key of the `hash` style (hex or raw text).
    public var hashKeyEnvironment: String

    public init(corpora: [String]? = nil, profiles: [String: MaskingProfile] = MaskingProfile.builtIn,
                hashKeyEnvironment: String = "SLUICE_HASH_KEY") {
        self.corpora = corpora ?? CorpusLocation.defaultDirectories()
        self.profiles = profiles
        self.hashKeyEnvironment = hashKeyEnvironment
    }

    public func loadDetectors() throws -> [Detector] {
        try CorpusLoader.load(directories: corpora)
    }

    public func engine(profile name: String) throws -> MaskingEngine {
        guard let profile = profiles[name] else {
            throw ConfigurationError(key: "masking.profiles", reason: "unknown profile '\(name)' (known: \(profiles.keys.sorted().joined(separator: ", ")))")
        }
        let environment = ProcessInfo.processInfo.environment
        let key = environment[hashKeyEnvironment].map { Array($0.utf8) }
        // SLUICE_MASK_REFERENCE=1: the reference engine (every candidate confirmed by Hyperscan),
        // for differential checks of the software confirmers on any text (docs/masking-engine.md).
        let reference = environment["SLUICE_MASK_REFERENCE"] == "1"
        return try MaskingEngine(detectors: try loadDetectors(), profile: profile, hashKey: key, softwareConfirmers: !reference)
    }
}
