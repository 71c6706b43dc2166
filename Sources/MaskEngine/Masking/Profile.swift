/// Which detectors a masking profile turns on, and how their matches are replaced.
///
/// Detector selectors are detector ids, `category:NAME` (e.g. `category:secret`), or `*`.
public struct MaskingProfile: Sendable, Equatable {
    public var name: String
    /// Selectors of the detectors to run; `["*"]` runs every detector.
    public var detectors: [String]
    /// Selectors of detectors to leave out after `detectors` was applied.
    public var exclude: [String]
    /// One style for every detector of the profile; `nil` keeps each detector's own style.
    public var style: MaskStyle?
    /// Per-detector styles, which win over `style`.
    public var styles: [String: MaskStyle]

    public init(name: String, detectors: [String] = ["*"], exclude: [String] = [], style: MaskStyle? = nil,
                styles: [String: MaskStyle] = [:]) {
        self.name = name
        self.detectors = detectors
        self.exclude = exclude
        self.style = style
        self.styles = styles
    }

    /// The built-in profiles: `default` (each detector's own style), `redact`, `partial`, `hash`.
    public static let builtIn: [String: MaskingProfile] = [
        "default": MaskingProfile(name: "default"),
        "redact": MaskingProfile(name: "redact", style: .redact),
        "partial": MaskingProfile(name: "partial", style: .partial),
        "hash": MaskingProfile(name: "hash", style: .hash),
    ]

    func selects(_ detector: Detector) -> Bool {
        func matches(_ selector: String) -> Bool {
            if selector == "*" { return true }
            if selector.hasPrefix("category:") { return detector.category == selector.dropFirst("category:".count) }
            return detector.id == selector
        }
        return detectors.contains(where: matches) && !exclude.contains(where: matches)
    }

    /// The selectors of this profile (in `detectors`, `exclude` and `styles`) that name no detector
    /// of `detectors` and no category one of them has: a misspelt name would otherwise select
    /// nothing, silently (a detector left out of `detectors` is a value left unmasked).
    public func unknownSelectors(among detectors: [Detector]) -> [String] {
        let ids = Set(detectors.map(\.id))
        let categories = Set(detectors.map(\.category))
        func known(_ selector: String) -> Bool {
            if selector == "*" { return true }
            if selector.hasPrefix("category:") { return categories.contains(String(selector.dropFirst("category:".count))) }
            return ids.contains(selector)
        }
        var unknown: [String] = []
        for selector in self.detectors + exclude + styles.keys.sorted() where !known(selector) && !unknown.contains(selector) {
            unknown.append(selector)
        }
        return unknown
    }

    func style(for detector: Detector) -> MaskStyle {
        styles[detector.id] ?? style ?? detector.style
    }
}
