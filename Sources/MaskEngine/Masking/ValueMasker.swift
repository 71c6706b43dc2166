import CHyperscan

/// What the value masker made of one value.
public enum MaskedValue: Equatable, Sendable {
    /// Nothing matched: the value is unchanged.
    case unchanged
    /// The masked bytes.
    case masked([UInt8])
    /// A detector with the `null` style matched: the whole value becomes SQL NULL.
    case null
}

/// Masks one field at a time (a database column value) with the block-mode databases; no state
/// carries from one value to the next. Reuse one per thread or connection.
public final class ValueMasker {
    public let engine: MaskingEngine
    private var resolver: Resolver
    private var output: [UInt8] = []

    init(engine: MaskingEngine) {
        self.engine = engine
        self.resolver = Resolver(engine: engine)
    }

    /// Matches masked in the last value, per detector id.
    public var lastCounts: [String: Int] {
        var result: [String: Int] = [:]
        for (index, count) in resolver.counts.enumerated() where count > 0 {
            result[engine.detectors[index].definition.id] = count
        }
        return result
    }

    /// Masks one value. Throws when the value cannot be scanned; callers fail closed.
    public func mask(_ value: UnsafeRawBufferPointer) throws -> MaskedValue {
        resolver.reset()
        guard !value.isEmpty else { return .unchanged }
        let collector = resolver.collector
        collector.base = 0
        let status = try engine.scratch.withScratch { scratch -> hs_error_t in
            let status = hs_scan(engine.blockDatabase.raw, value.baseAddress!.assumingMemoryBound(to: CChar.self),
                                 UInt32(value.count), 0, scratch, EventCollector.onEvent,
                                 Unmanaged.passUnretained(collector).toOpaque())
            guard status == HS.success else { return status }
            try resolver.distributeEvents()
            if var finder = engine.makeDigitRunFinder() {
                finder.scan(value, offset: 0, into: &resolver.runWindows)
                finder.finish(at: value.count, into: &resolver.runWindows)
            }
            try resolver.confirm(bytes: value, base: 0, limit: value.count, atEnd: true, scratch: scratch)
            return status
        }
        guard status == HS.success else {
            throw MaskingError(code: collector.overflow ? .tooManyCandidates : .engine, reason: "hs_scan failed with \(status)")
        }
        if resolver.pending.isEmpty { return .unchanged }
        output.removeAll(keepingCapacity: true)
        resolver.emit(bytes: value, base: 0, limit: value.count, upTo: value.count, atEnd: true) { output.append(contentsOf: $0) }
        guard resolver.counts.contains(where: { $0 > 0 }) else { return .unchanged }
        for (index, count) in resolver.counts.enumerated() where count > 0 && engine.detectors[index].style == .null {
            return .null
        }
        return .masked(output)
    }

    public func mask(_ value: [UInt8]) throws -> MaskedValue {
        try value.withUnsafeBytes { try mask($0) }
    }

    public func mask(_ value: String) throws -> MaskedValue {
        try mask(Array(value.utf8))
    }
}
