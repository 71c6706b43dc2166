import CHyperscan

/// Regular expressions matched together in one Hyperscan block scan: which of them match
/// somewhere in a text. Guardrail rules use it, so a statement costs one scan whatever the
/// number of rules. Patterns Hyperscan cannot compile (backreferences, lookaround) are reported
/// by ``unsupported`` so the caller can fall back to another engine for those.
public final class PatternSet: Sendable {
    private let database: HyperscanDatabase?
    private let scratch: ScratchPool?
    /// Pattern count, including unsupported ones.
    public let count: Int
    /// Indices of patterns that are not in the database.
    public let unsupported: Set<Int>

    /// - Parameter cache: where compiled databases are kept between runs (nil: always compile).
    public init(patterns: [String], cache: HyperscanDatabaseCache? = HyperscanDatabaseCache.default) {
        count = patterns.count
        var excluded = Set<Int>()
        var database: HyperscanDatabase?
        while true {
            let expressions = patterns.enumerated().filter { !excluded.contains($0.offset) }.map {
                HyperscanExpression(pattern: $0.element, flags: HS.singlematch | HS.allowEmpty, id: UInt32($0.offset),
                                    owner: String($0.offset))
            }
            if expressions.isEmpty { break }
            do {
                database = try HyperscanDatabase(expressions: expressions, mode: HS.modeBlock, cache: cache)
                break
            } catch let error as HyperscanError {
                guard let owner = error.detector, let index = Int(owner), !excluded.contains(index) else {
                    excluded.formUnion(0..<patterns.count)
                    database = nil
                    break
                }
                excluded.insert(index)
            } catch {
                excluded.formUnion(0..<patterns.count)
                break
            }
        }
        self.database = database
        self.scratch = database.flatMap { try? ScratchPool(databases: [$0], limit: 64) }
        self.unsupported = self.scratch == nil ? Set(0..<patterns.count) : excluded
    }

    private final class Hits {
        var matched: [Bool]
        init(count: Int) { matched = Array(repeating: false, count: count) }
    }

    private static let onMatch: match_event_handler = { id, _, _, _, context in
        let hits = Unmanaged<Hits>.fromOpaque(context!).takeUnretainedValue()
        if Int(id) < hits.matched.count { hits.matched[Int(id)] = true }
        return 0
    }

    /// For each pattern, whether it matches somewhere in `text` (false for unsupported ones).
    public func matches(_ text: String) throws -> [Bool] {
        let hits = Hits(count: count)
        guard let database, let scratch else { return hits.matched }
        var text = text
        let status = try text.withUTF8 { bytes -> hs_error_t in
            try scratch.withScratch { raw in
                var empty: CChar = 0
                return withUnsafePointer(to: &empty) { fallback in
                    let base = bytes.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) } ?? fallback
                    return hs_scan(database.raw, base, UInt32(bytes.count), 0, raw, PatternSet.onMatch,
                                   Unmanaged.passUnretained(hits).toOpaque())
                }
            }
        }
        guard status == HS.success else {
            throw HyperscanError(code: .scanFailed, reason: "hs_scan failed", status: status)
        }
        return hits.matched
    }
}
