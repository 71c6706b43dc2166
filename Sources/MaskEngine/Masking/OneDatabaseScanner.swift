import CHyperscan

/// The obvious design, kept as the benchmark baseline: every pattern of the selected detectors
/// in one Hyperscan stream database with `HS_FLAG_SOM_LEFTMOST`, no validation, no context, no
/// masking — it only counts matches. `Benchmarks/compare-engines.sh` measures the engine against it.
public final class OneDatabaseScanner {
    let database: HyperscanDatabase
    let scratch: ScratchPool
    private var stream: OpaquePointer?
    private let counter = EventCollector(limit: Int.max)
    public private(set) var matches = 0

    public init(detectors all: [Detector], profile: MaskingProfile = MaskingProfile(name: "default")) throws {
        try HS.checkPlatform()
        var expressions: [HyperscanExpression] = []
        for detector in all where profile.selects(detector) {
            for pattern in detector.patterns {
                expressions.append(HyperscanExpression(
                    pattern: pattern, flags: HS.multiline | HS.somLeftmost | (detector.caseless ? HS.caseless : 0),
                    id: UInt32(expressions.count), owner: detector.id))
            }
        }
        database = try HyperscanDatabase(expressions: expressions, mode: HS.modeStream | HS.somHorizonSmall)
        scratch = try ScratchPool(databases: [database])
        var stream: OpaquePointer?
        let status = hs_open_stream(database.raw, 0, &stream)
        guard status == HS.success else { throw MaskingError(code: .engine, reason: "hs_open_stream failed with \(status)") }
        self.stream = stream
    }

    deinit { _ = hs_close_stream(stream, nil, nil, nil) }

    public var streamStateSize: Int { database.streamStateSize }

    public func scan(_ bytes: UnsafeRawBufferPointer) throws {
        let collector = counter
        let status = try scratch.withScratch { scratch in
            hs_scan_stream(stream, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), UInt32(bytes.count), 0, scratch,
                           OneDatabaseScanner.onMatch, Unmanaged.passUnretained(collector).toOpaque())
        }
        guard status == HS.success else { throw MaskingError(code: .engine, reason: "hs_scan_stream failed with \(status)") }
        matches = collector.matchCount
    }

    /// Ends the stream (reporting end-of-stream matches) and readies it for the next.
    public func finish() throws {
        let collector = counter
        let status = try scratch.withScratch { scratch in
            hs_reset_stream(stream, 0, scratch, OneDatabaseScanner.onMatch, Unmanaged.passUnretained(collector).toOpaque())
        }
        guard status == HS.success else { throw MaskingError(code: .engine, reason: "hs_reset_stream failed with \(status)") }
        matches = collector.matchCount
    }

    /// Counts matches without storing them.
    static let onMatch: match_event_handler = { _, _, _, _, context in
        let collector = Unmanaged<EventCollector>.fromOpaque(context!).takeUnretainedValue()
        collector.matchCount += 1
        return 0
    }
}
