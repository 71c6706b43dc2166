import CMaskKernel

/// Stage 1 of the engine: one pass over the bytes that finds where the numeric and `@`-anchored
/// detectors could match — runs of digits and separators, `@` signs, and `:` next to a hex digit.
///
/// A thin owner of the C kernel's state and of preallocated anchor arrays: `scan` consumes a
/// chunk and fills the arrays; the caller drains them (``runs``, ``ats``, ``colons``) before the
/// next call. The anchors are a function of the bytes alone: runs come out identical however
/// the stream is cut into calls; `@` and `:` anchors may repeat a position only if the caller
/// rescans, never miss one.
struct AnchorFinder {
    /// Runs with fewer digits than this are not reported.
    let minDigits: UInt32
    private var state = mk_finder_state()
    private(set) var runs: [mk_run]
    private(set) var ats: [UInt64]
    private(set) var colons: [UInt64]
    private var runCount = 0
    private var atCount = 0
    private var colonCount = 0

    /// Anchors kept per drain; a chunk with more is scanned in several calls.
    static let capacity = 4096

    init(minDigits: Int) {
        self.minDigits = UInt32(clamping: max(1, minDigits))
        runs = Array(repeating: mk_run(), count: Self.capacity)
        ats = Array(repeating: 0, count: Self.capacity)
        colons = Array(repeating: 0, count: Self.capacity)
        mk_finder_reset(&state)
    }

    /// The implementation the classification pass runs on this CPU.
    static var kernelName: String { String(cString: mk_kernel_name()) }

    /// Absolute offset of the next byte to scan.
    var offset: Int { Int(state.offset) }

    /// The first digit of the run still open at the end of the scanned bytes, if any: bytes from
    /// there on may still belong to a run that is not reported yet.
    var openRunStart: Int? { state.in_run != 0 ? Int(state.run_start) : nil }

    mutating func reset() {
        mk_finder_reset(&state)
        runCount = 0
        atCount = 0
        colonCount = 0
    }

    /// Scans `bytes` (the next bytes of the stream) and calls `drain` whenever the anchor arrays
    /// are full and once at the end, with the anchors found since the last drain.
    mutating func scan(_ bytes: UnsafeRawBufferPointer, drain: (ArraySlice<mk_run>, ArraySlice<UInt64>, ArraySlice<UInt64>) throws -> Void) rethrows {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        var done = 0
        while done < bytes.count {
            let minDigits = self.minDigits
            let consumed = withAnchors { anchors, state in
                mk_find(&state, base + done, bytes.count - done, minDigits, &anchors)
            }
            done += consumed
            if consumed == 0 || done < bytes.count {
                try drainAll(drain)
            }
        }
        try drainAll(drain)
    }

    /// Closes the run open at the end of the stream (or at an idle flush) and drains.
    mutating func finish(drain: (ArraySlice<mk_run>, ArraySlice<UInt64>, ArraySlice<UInt64>) throws -> Void) rethrows {
        let minDigits = self.minDigits
        _ = withAnchors { anchors, state in mk_finder_finish(&state, minDigits, &anchors) }
        try drainAll(drain)
    }

    private mutating func drainAll(_ drain: (ArraySlice<mk_run>, ArraySlice<UInt64>, ArraySlice<UInt64>) throws -> Void) rethrows {
        guard runCount + atCount + colonCount > 0 else { return }
        try drain(runs[..<runCount], ats[..<atCount], colons[..<colonCount])
        runCount = 0
        atCount = 0
        colonCount = 0
    }

    private mutating func withAnchors<R>(_ body: (inout mk_anchors, inout mk_finder_state) -> R) -> R {
        let runCount = self.runCount, atCount = self.atCount, colonCount = self.colonCount
        let capacity = Self.capacity
        var counts = (0, 0, 0)
        var state = self.state
        defer { self.state = state }
        let result = runs.withUnsafeMutableBufferPointer { runs in
            ats.withUnsafeMutableBufferPointer { ats in
                colons.withUnsafeMutableBufferPointer { colons in
                    var anchors = mk_anchors(
                        runs: runs.baseAddress, runs_capacity: capacity, runs_count: runCount,
                        ats: ats.baseAddress, ats_capacity: capacity, ats_count: atCount,
                        colons: colons.baseAddress, colons_capacity: capacity, colons_count: colonCount)
                    let result = body(&anchors, &state)
                    counts = (anchors.runs_count, anchors.ats_count, anchors.colons_count)
                    return result
                }
            }
        }
        (self.runCount, self.atCount, self.colonCount) = counts
        return result
    }
}

/// The classification masks of whole 64-byte blocks (for tests and benchmarks of the kernel).
enum ClassificationKernel {
    static func classify(_ bytes: UnsafeRawBufferPointer, into masks: inout [mk_block_masks]) {
        let blocks = bytes.count / 64
        if masks.count < blocks { masks = Array(repeating: mk_block_masks(), count: blocks) }
        guard blocks > 0, let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        masks.withUnsafeMutableBufferPointer { out in mk_classify(base, blocks, out.baseAddress) }
    }

    /// Forces an implementation ("portable", "sse4.2", "avx2", "avx512bw"); false when this CPU
    /// cannot run it.
    @discardableResult
    static func force(_ name: String) -> Bool { mk_force_kernel(name) != 0 }
}

/// Stage 1 alone, for benchmarks: the classification pass and anchor finder over a stream,
/// counting anchors (runs, `@`, `:`), so its cost can be set beside memcpy and Hyperscan.
public struct ClassificationPassProbe {
    private var finder: AnchorFinder

    public init(minDigits: Int = 7) {
        finder = AnchorFinder(minDigits: minDigits)
    }

    /// The implementation this CPU runs ("avx512bw", "avx2", "sse4.2" or "portable").
    public static var kernelName: String { AnchorFinder.kernelName }

    /// Scans the next bytes of the stream; returns how many anchors they produced.
    public mutating func scan(_ bytes: UnsafeRawBufferPointer) -> Int {
        var count = 0
        finder.scan(bytes) { runs, ats, colons in count += runs.count + ats.count + colons.count }
        return count
    }

    /// Ends the stream; returns the anchors the end produced.
    public mutating func finish() -> Int {
        var count = 0
        finder.finish { runs, ats, colons in count += runs.count + ats.count + colons.count }
        finder.reset()
        return count
    }
}
