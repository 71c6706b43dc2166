import CHyperscan
import CMaskKernel
import Crypto

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
    private var classFinders: [ClassRunFinder]

    init(engine: MaskingEngine) {
        self.engine = engine
        self.resolver = Resolver(engine: engine, collector: EventCollector(limit: 1 << 20))
        self.classFinders = engine.makeClassRunFinders()
    }

    /// Whether the last value had anything masked (cheap; ``lastCounts`` builds a dictionary).
    public private(set) var matchedLast = false

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
        matchedLast = false
        // The engine's cheap check first: most database values (ids, counts, flags) are too short
        // to hold any match, and skip the scan.
        guard !value.isEmpty, !engine.cannotMatch(byteCount: value.count) else { return .unchanged }
        let collector: EventCollector = resolver.collector
        collector.base = 0
        let status = try engine.scratch.withScratch { scratch -> hs_error_t in
            let status = hs_scan(engine.blockDatabase.raw, value.baseAddress!.assumingMemoryBound(to: CChar.self),
                                 UInt32(value.count), 0, scratch, EventCollector.onEvent,
                                 Unmanaged.passUnretained(collector).toOpaque())
            guard status == HS.success else { return status }
            // The software finders run only when the value has the bytes their candidates need
            // (most database values have none): one pass instead of four calls.
            let anchors = Anchors(value)
            if anchors.emailSigns { resolver.findNativeEnds(value) }
            try resolver.distributeEvents()
            if anchors.digits >= engine.digitRunMinAnchorDigits, var finder = engine.makeDigitRunFinder() {
                finder.scan(value, offset: 0, into: &resolver.runWindows)
                finder.finish(at: value.count, into: &resolver.runWindows)
            }
            for index in classFinders.indices where anchors.mayHold(engine.classRunFamilies[index].kind, length: value.count) {
                classFinders[index].reset()
                classFinders[index].scan(value, offset: 0, into: &resolver.classWindows[index])
                classFinders[index].finish(at: value.count, into: &resolver.classWindows[index])
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
        // Only touched detectors can have masked something: no pass over every detector.
        var masked = false
        var null = false
        for index in resolver.touched where resolver.counts[index] > 0 {
            masked = true
            if engine.detectors[index].style == .null { null = true }
        }
        guard masked else { return .unchanged }
        matchedLast = true
        return null ? .null : .masked(output)
    }

    public func mask(_ value: [UInt8]) throws -> MaskedValue {
        try value.withUnsafeBytes { try mask($0) }
    }

    public func mask(_ value: String) throws -> MaskedValue {
        try mask(Array(value.utf8))
    }
}

/// What one pass over a value tells about the software finders' candidates: a digit run needs
/// digits, an IPv6 run two colons, an IBAN run two digits in 15 bytes, an e-mail end `@`, `%` or
/// `&`. Each test is necessary, never sufficient: a value that fails it has no candidate there.
struct Anchors {
    var digits = 0
    var colons = 0
    var emailSigns = false

    init(_ value: UnsafeRawBufferPointer) {
        guard let base = value.baseAddress, !value.isEmpty else { return }
        var counts = mk_anchor_counts()
        mk_count_anchors(base.assumingMemoryBound(to: UInt8.self), value.count, &counts)
        self.digits = Int(counts.digits)
        self.colons = Int(counts.colons)
        self.emailSigns = counts.email_signs != 0
    }

    func mayHold(_ kind: ClassRunFinder.Kind, length: Int) -> Bool {
        switch kind {
        case .ipv6: colons >= 2
        case .iban: digits >= 2 && length >= 15
        }
    }
}

extension MaskingEngine {
    /// Fewer digits than this in a value: the digit-run finder cannot report a window.
    var digitRunMinAnchorDigits: Int {
        min(Self.digitRunMinDigits, digitRunDottedMinDigits ?? Self.digitRunMinDigits)
    }

    /// Masks a whole value in `style`, whatever its content (column rules such as
    /// `customers.ssn: redact`). `label` names the redaction: `[LABEL]`.
    public func maskWhole(_ value: UnsafeRawBufferPointer, style: MaskStyle, label: String) -> MaskedValue {
        var out: [UInt8] = []
        switch style {
        case .null:
            return .null
        case .redact:
            out.append(UInt8(ascii: "["))
            out.append(contentsOf: label.uppercased().utf8.prefix(64))
            out.append(UInt8(ascii: "]"))
        case .hash:
            let code = HMAC<SHA256>.authenticationCode(for: value, using: hashKey)
            out.append(contentsOf: "tok_".utf8)
            let hex: [UInt8] = Array("0123456789abcdef".utf8)
            for byte in code.prefix(8) {
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 15)])
            }
        case .partial:
            let alnumCount = value.reduce(0) { $0 + (Validators.isAlnum($1) ? 1 : 0) }
            if alnumCount < 8 {
                out = Array(repeating: UInt8(ascii: "*"), count: min(value.count, 8))
            } else {
                var remaining = alnumCount
                for byte in value {
                    if Validators.isAlnum(byte) {
                        out.append(remaining <= 4 ? byte : UInt8(ascii: "*"))
                        remaining -= 1
                    } else {
                        out.append(byte)
                    }
                }
            }
        }
        return .masked(out)
    }
}
