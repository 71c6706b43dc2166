import CMaskKernel
import CHyperscan

/// The working memory of one masking call: what a Hyperscan scan or a software finder reports
/// (filled from inside the C callbacks), the confirm and sort buffers, and the piece buffer of a
/// stream. Nothing in it outlives the call, so stream maskers borrow one from the engine's
/// `WorkPool` per write instead of each holding its own (the per-stream memory target); a value
/// masker keeps one. Used by one thread at a time.
final class EventCollector: @unchecked Sendable {
    /// Prefilter events: expression id in the high 24 bits, absolute end offset in the low 40.
    var events: [UInt64] = []
    /// Confirm matches: (start, end) relative to the scanned window.
    var spans: [(start: Int, end: Int)] = []
    /// Confirm matches of the digit-run database: (expression id, start, end) in the window.
    var idSpans: [(id: Int, start: Int, end: Int)] = []
    /// Added to relative end offsets of prefilter events.
    var base = 0
    /// Matches counted by the benchmark baseline, which stores none.
    var matchCount = 0
    /// Set when the collector hit its limit; the caller fails closed.
    var overflow = false
    /// The event id (high bits) of ends found in software (`onNativeEnd`).
    var nativeEventID: UInt64 = 0
    let limit: Int
    /// Reused between confirms so that steady-state writes do not allocate.
    var keptEnds: [(end: Int, contiguous: Bool)] = []
    var foundStarts: [(start: Int, end: Int, contiguous: Bool)] = []
    /// The merge sort's second buffer and its run ends (see `Resolver.sortPending`).
    var sortScratch: [PendingMatch] = []
    var sortRuns: [Int] = []
    /// One replacement being built.
    var replacement: [UInt8] = []
    /// A stream's held-back bytes plus the piece being scanned, during one call (the stream keeps
    /// only the held-back bytes between calls).
    var piece: [UInt8] = []
    /// A stream's pending matches during one call: a long token files one per end, so the array
    /// grows to hundreds within a call, while only a few wait between calls.
    var pending: [PendingMatch] = []

    init(limit: Int) {
        self.limit = limit
        events.reserveCapacity(256)
        spans.reserveCapacity(64)
        replacement.reserveCapacity(256)
    }

    /// Clears what a failed call may have left behind.
    func clear() {
        // An empty array is left alone: `removeAll` still checks uniqueness and may release.
        if !events.isEmpty { events.removeAll(keepingCapacity: true) }
        if !spans.isEmpty { spans.removeAll(keepingCapacity: true) }
        if !idSpans.isEmpty { idSpans.removeAll(keepingCapacity: true) }
        overflow = false
        base = 0
    }

    static let onEvent: match_event_handler = { id, _, to, _, context in
        let collector = Unmanaged<EventCollector>.fromOpaque(context!).takeUnretainedValue()
        guard collector.events.count < collector.limit else {
            collector.overflow = true
            return 1
        }
        collector.events.append(UInt64(id) << 40 | UInt64(collector.base + Int(to)))
        return 0
    }

    static let onIDSpan: match_event_handler = { id, from, to, _, context in
        let collector = Unmanaged<EventCollector>.fromOpaque(context!).takeUnretainedValue()
        guard collector.idSpans.count < collector.limit else {
            collector.overflow = true
            return 1
        }
        collector.idSpans.append((Int(id), Int(from), Int(to)))
        return 0
    }

    static let onSpan: match_event_handler = { _, from, to, _, context in
        let collector = Unmanaged<EventCollector>.fromOpaque(context!).takeUnretainedValue()
        guard collector.spans.count < collector.limit else {
            collector.overflow = true
            return 1
        }
        collector.spans.append((Int(from), Int(to)))
        return 0
    }
}

/// The engine's spare working memories (`EventCollector`), lent to stream maskers one call at a
/// time: per-stream memory stays the stream's own state, and threads share the buffers.
final class WorkPool: Sendable {
    private let free = Locked<[EventCollector]>([])
    /// Spare work areas kept (about one per thread that masks at once).
    let limit: Int

    init(limit: Int = 64) {
        self.limit = limit
    }

    /// A work area no other call holds, with no events left in it.
    func take() -> EventCollector {
        free.withLock { $0.popLast() } ?? EventCollector(limit: 1 << 20)
    }

    func give(_ collector: EventCollector) {
        collector.clear()
        free.withLock { list in
            if list.count < limit { list.append(collector) }
        }
    }
}

/// A context word (or breaker) seen in the stream.
struct ContextHit {
    var end: Int
    var slot: Int
    var breaker: Bool
}

/// A candidate with its start found, waiting to be validated and emitted.
struct PendingMatch {
    var start: Int
    var end: Int
    var detector: Int
    /// The end of a match that is longer than `max_width`, reported one byte after a previous
    /// end of the same detector: it widens that match if that match was masked.
    var continuation = false
    /// Already accepted and cut down to its secret span: bytes of the match outside the span are
    /// output like any others (other detectors still see them, and a newline the pattern took as
    /// a terminator is kept).
    var narrowed = false
}

/// An error from masking: the data could not be scanned, so it must not be forwarded.
public struct MaskingError: Error, CustomStringConvertible, Equatable, Sendable {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let engine = Code(rawValue: "MASK_ENGINE_ERROR")
        public static let tooManyCandidates = Code(rawValue: "MASK_TOO_MANY_CANDIDATES")
        public static let finished = Code(rawValue: "MASK_STREAM_FINISHED")
        public var description: String { rawValue }
    }

    public let code: Code
    public let reason: String

    public init(code: Code, reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code): \(reason)" }
}

/// The match bookkeeping shared by the stream and value maskers: candidate ends per detector,
/// their confirmed starts, context and terminator hits, and the emission of masked output.
///
/// Positions are absolute offsets into the logical stream. `bytes` passed to the methods holds the
/// stream from `base` to the end of what has been scanned.
struct Resolver {
    let engine: MaskingEngine
    /// Candidate match ends per detector, not yet confirmed.
    var candidates: [[Int]]
    /// The last candidate end seen per detector, to recognise contiguous reports of one long match.
    var lastEnd: [Int]
    var dirty: [Int] = []
    /// Digit runs waiting to be searched: the run's first digit, where the window ends, and the
    /// first end this window is responsible for (later windows of a cut run start earlier).
    var runWindows: [(start: Int, end: Int, acceptFrom: Int)] = []
    /// Class-run windows waiting to be searched, per `engine.classRunFamilies` entry.
    var classWindows: [RunFinder.Windows]
    var pending: [PendingMatch] = []
    /// Context hits per detector: (end offset, slot, is-breaker).
    var contextHits: [[ContextHit]]
    var terminatorHits: [[Int]]
    /// Output has been produced (or dropped as masked) for every byte before `cursor`.
    var cursor = 0
    /// The end of the last masked region; a later match overlapping it widens it silently.
    var lastMaskEnd = -1
    /// An open extension of a masked match: (detector, byte limit for `until`).
    var extending: (detector: Int, limit: Int)?
    /// Where the last class extension stopped at a byte outside its class, and whose it was: a
    /// match of the same detector inside the masked region cannot extend past that byte, so it is
    /// not validated again (a long token has one match per end, all ending inside its mask).
    var classStop: (detector: Int, at: Int) = (-1, -1)
    /// Per detector with a gated trigger (in `gatedDetectors` order): trigger ends up to here have
    /// been searched.
    var gateScanned: [Int]
    /// The detectors with a gated trigger.
    let gatedDetectors: [Int]
    /// Matches masked per detector.
    var counts: [Int]
    /// Detectors with hits, candidate ends or counts since the last reset.
    var touched: [Int] = []
    var isTouched: [Bool]
    /// The working memory of the current call: a value masker's own, a stream masker's borrowed
    /// from the engine's pool for the length of one write (nil in between).
    var collector: EventCollector!
    /// The e-mail end finder's state, when the engine finds e-mail ends in software.
    var emailState = mk_email_state()

    init(engine: MaskingEngine, collector: EventCollector?) {
        self.engine = engine
        self.collector = collector
        let n = engine.detectors.count
        candidates = Array(repeating: [], count: n)
        lastEnd = Array(repeating: -2, count: n)
        contextHits = Array(repeating: [], count: n)
        terminatorHits = Array(repeating: [], count: n)
        counts = Array(repeating: 0, count: n)
        isTouched = Array(repeating: false, count: n)
        classWindows = Array(repeating: [], count: engine.classRunFamilies.count)
        gatedDetectors = engine.detectors.filter { $0.gatedTrigger != nil }.map(\.index)
        gateScanned = Array(repeating: 0, count: gatedDetectors.count)
    }

    mutating func reset() {
        mk_email_reset(&emailState)
        // Empty arrays are left alone (a value masker resets per value, and most values leave
        // most of them empty): `removeAll` still checks uniqueness.
        if !dirty.isEmpty {
            for index in dirty { candidates[index].removeAll(keepingCapacity: true) }
            dirty.removeAll(keepingCapacity: true)
        }
        if !runWindows.isEmpty { runWindows.removeAll(keepingCapacity: true) }
        for index in classWindows.indices where !classWindows[index].isEmpty { classWindows[index].removeAll(keepingCapacity: true) }
        if !pending.isEmpty { pending.removeAll(keepingCapacity: true) }
        // Only detectors with an event or a masked match have state to clear.
        if !touched.isEmpty {
            for index in touched {
                if !contextHits[index].isEmpty { contextHits[index].removeAll(keepingCapacity: true) }
                if !terminatorHits[index].isEmpty { terminatorHits[index].removeAll(keepingCapacity: true) }
                counts[index] = 0
                lastEnd[index] = -2
                isTouched[index] = false
            }
            touched.removeAll(keepingCapacity: true)
        }
        cursor = 0
        lastMaskEnd = -1
        extending = nil
        classStop = (-1, -1)
        for slot in gateScanned.indices { gateScanned[slot] = 0 }
        collector?.clear()
    }

    /// Finds the match ends of detectors that are not in the prefilter (e-mail addresses) in the
    /// next bytes of the stream and files them as prefilter events.
    mutating func findNativeEnds(_ bytes: UnsafeRawBufferPointer) {
        guard let detector = engine.emailEndDetector, let base = bytes.baseAddress, !bytes.isEmpty else { return }
        collector.nativeEventID = UInt64(EventKind.id(.match, detector: detector)) << 40
        mk_email_ends(&emailState, base.assumingMemoryBound(to: UInt8.self), bytes.count, EventCollector.onNativeEnd,
                      Unmanaged.passUnretained(collector).toOpaque())
    }

    /// Sorts the collector's prefilter events into candidates and hits.
    mutating func distributeEvents() throws {
        if collector.overflow {
            throw MaskingError(code: .tooManyCandidates, reason: "more than \(collector.limit) candidates in one write")
        }
        for event in collector.events {
            let id = UInt32(event >> 40)
            let end = Int(event & 0xFF_FFFF_FFFF)
            let detector = Int(id & 0xFFFF)
            guard detector < candidates.count else { continue }
            let slot = Int((id >> 16) & 0xF)
            if !isTouched[detector] {
                isTouched[detector] = true
                touched.append(detector)
            }
            switch EventKind(rawValue: id >> 20) {
            case .match:
                if candidates[detector].isEmpty { dirty.append(detector) }
                candidates[detector].append(end)
            case .context:
                contextHits[detector].append(ContextHit(end: end, slot: slot, breaker: false))
            case .breaker:
                contextHits[detector].append(ContextHit(end: end, slot: slot, breaker: true))
            case .terminator:
                terminatorHits[detector].append(end)
            case nil:
                break
            }
        }
        collector.events.removeAll(keepingCapacity: true)
    }

    /// Finds the leftmost start of every candidate end and moves them to `pending`.
    ///
    /// - Parameters:
    ///   - bytes: the stream from `base` to `limit`.
    ///   - limit: the end of the scanned bytes.
    ///   - scratch: a scratch that fits the confirm databases.
    mutating func confirm(bytes: UnsafeRawBufferPointer, base: Int, limit: Int, atEnd: Bool, scratch: OpaquePointer) throws {
        if !runWindows.isEmpty {
            try confirmRuns(bytes: bytes, base: base, limit: limit, atEnd: atEnd, scratch: scratch)
        }
        for family in classWindows.indices where !classWindows[family].isEmpty {
            try confirmClassRuns(family, bytes: bytes, base: base, limit: limit, atEnd: atEnd, scratch: scratch)
        }
        for (slot, detector) in gatedDetectors.enumerated() {
            findGatedTriggers(engine.detectors[detector], slot: slot, bytes: bytes, base: base, limit: limit, atEnd: atEnd)
        }
        guard !dirty.isEmpty else {
            if !pending.isEmpty { sortPending() }
            return
        }
        let context = Unmanaged.passUnretained(collector).toOpaque()
        for detectorIndex in dirty {
            let detector = engine.detectors[detectorIndex]
            InPlaceSort.sort(&candidates[detectorIndex], by: <)
            if detector.triggered {
                try confirmTriggered(detector, bytes: bytes, base: base, limit: limit, atEnd: atEnd, scratch: scratch, context: context)
                continue
            }
            // Contiguity is judged on every reported end, before any is dropped.
            var kept = collector.keptEnds
            collector.keptEnds = []  // `kept` is now the only owner: no copy on write
            kept.removeAll(keepingCapacity: true)
            defer { collector.keptEnds = kept }
            var previousEnd = -1
            for end in candidates[detectorIndex] where end != previousEnd {
                previousEnd = end
                let contiguous = lastEnd[detectorIndex] == end - 1
                lastEnd[detectorIndex] = end
                if detector.contextPrecheck, end < limit - 1, !contextPossible(detector, end: end) { continue }
                kept.append((end, contiguous))
            }
            candidates[detectorIndex].removeAll(keepingCapacity: true)
            // Ends further apart than a match width are confirmed in separate windows.
            var clusterStart = 0
            for index in kept.indices {
                let isLast = index == kept.count - 1
                if isLast || kept[index + 1].end - kept[index].end > detector.maxWidth + 2 {
                    try confirmCluster(kept[clusterStart...index], detector: detector, bytes: bytes, base: base, limit: limit,
                                       scratch: scratch, context: context)
                    clusterStart = index + 1
                }
            }
        }
        // Triggers whose window is not complete yet wait for the next write.
        dirty.removeAll { candidates[$0].isEmpty }
        sortPending()
    }

    /// Puts `pending` in order: a stable natural merge sort through `sortScratch` and `sortRuns`,
    /// which grow only when `pending` outgrows them (no allocation per write in the steady
    /// state). Pending matches arrive in runs — the leftovers of the last call in order, then
    /// each family's and each cluster's matches, where a long token files one match per end with
    /// the same start in the reverse of the wanted order — so the runs are found first (a strictly
    /// descending run is reversed in place) and merged pairwise, O(n log runs).
    mutating func sortPending() {
        let count = pending.count
        guard count > 1 else { return }
        var inOrder = true
        for index in 1..<count where Self.precedes(pending[index], pending[index - 1]) {
            inOrder = false
            break
        }
        if inOrder { return }
        if collector.sortScratch.count < count {
            collector.sortScratch = Array(repeating: PendingMatch(start: 0, end: 0, detector: 0),
                                          count: max(count, 2 * collector.sortScratch.count))
        }
        var scratch = collector.sortScratch
        collector.sortScratch = []
        defer { collector.sortScratch = scratch }
        var runs = collector.sortRuns
        collector.sortRuns = []
        runs.removeAll(keepingCapacity: true)
        defer { collector.sortRuns = runs }
        var resultInScratch = false
        pending.withUnsafeMutableBufferPointer { items in
            // The runs, by their end offsets.
            var start = 0
            while start < count {
                var end = start + 1
                if end < count, Self.precedes(items[end], items[end - 1]) {
                    while end < count, Self.precedes(items[end], items[end - 1]) { end += 1 }
                    var low = start, high = end - 1
                    while low < high {
                        items.swapAt(low, high)
                        low += 1
                        high -= 1
                    }
                } else {
                    while end < count, !Self.precedes(items[end], items[end - 1]) { end += 1 }
                }
                runs.append(end)
                start = end
            }
            scratch.withUnsafeMutableBufferPointer { other in
                var source = items.baseAddress!
                var target = other.baseAddress!
                while runs.count > 1 {
                    var merged = 0  // runs kept so far in this pass (their ends overwrite `runs`)
                    var low = 0
                    var index = 0
                    while index < runs.count {
                        let middle = runs[index]
                        let high = index + 1 < runs.count ? runs[index + 1] : middle
                        var left = low, right = middle, out = low
                        while left < middle, right < high {
                            if Self.precedes(source[right], source[left]) {
                                target[out] = source[right]
                                right += 1
                            } else {
                                target[out] = source[left]
                                left += 1
                            }
                            out += 1
                        }
                        while left < middle { target[out] = source[left]; left += 1; out += 1 }
                        while right < high { target[out] = source[right]; right += 1; out += 1 }
                        runs[merged] = high
                        merged += 1
                        low = high
                        index += 2
                    }
                    runs.removeLast(runs.count - merged)
                    swap(&source, &target)
                    resultInScratch.toggle()
                }
            }
        }
        if resultInScratch {
            for index in 0..<count { pending[index] = scratch[index] }
        }
    }

    /// Searches the digit-run detectors in every run window whose bytes are complete: one scan of
    /// `[first digit − 3, run end + 2)` with all their patterns.
    private mutating func confirmRuns(bytes: UnsafeRawBufferPointer, base: Int, limit: Int, atEnd: Bool,
                                      scratch: OpaquePointer) throws {
        guard let database = engine.digitRunDatabase else { runWindows.removeAll(); return }
        let context = Unmanaged.passUnretained(collector).toOpaque()
        var ready = 0
        while ready < runWindows.count, atEnd || runWindows[ready].end + 2 <= limit {
            let window = runWindows[ready]
            ready += 1
            let scanStart = max(base, window.start - 3)
            let scanEnd = min(limit, window.end + 2)
            guard scanEnd > scanStart else { continue }
            let region = UnsafeRawBufferPointer(rebasing: bytes[(scanStart - base)..<(scanEnd - base)])
            if let slots = engine.nativeDigitSlots,
               NativeConfirmers.confirm(region, slots: slots, slotCount: engine.digitRunDetectors.count, withSlots: true,
                                        into: collector) {
                // Already one leftmost start per (detector, end), in that order.
            } else {
                collector.idSpans.removeAll(keepingCapacity: true)
                let pointer = region.baseAddress!.assumingMemoryBound(to: CChar.self)
                let status = hs_scan(database.raw, pointer, UInt32(region.count), 0, scratch, EventCollector.onIDSpan, context)
                if collector.overflow {
                    throw MaskingError(code: .tooManyCandidates, reason: "more than \(collector.limit) confirm matches")
                }
                guard status == HS.success else { throw MaskingError(code: .engine, reason: "hs_scan failed with \(status)") }
                // Leftmost start per (detector, end): sort so the first of each group is the leftmost.
                InPlaceSort.sort(&collector.idSpans) { ($0.id, $0.end, $0.start) < ($1.id, $1.end, $1.start) }
            }
            var previous = (id: -1, end: -1)
            for span in collector.idSpans {
                let end = scanStart + span.end
                guard span.id != previous.id || end != previous.end else { continue }
                previous = (span.id, end)
                guard end >= window.acceptFrom, end <= window.end else { continue }
                let detector = engine.detectors[engine.digitRunDetectors[span.id]]
                var start = scanStart + span.start
                if (start == scanStart && scanStart > 0) || end - start > detector.maxWidth {
                    guard let narrow = try narrowStart(detector: detector, end: end, bytes: bytes, base: base, limit: limit,
                                                       scratch: scratch, context: context) else { continue }
                    start = narrow
                }
                pending.append(PendingMatch(start: start, end: end, detector: detector.index))
            }
            collector.idSpans.removeAll(keepingCapacity: true)
        }
        runWindows.removeFirstKeepingCapacity(ready)
    }

    /// Searches the class-run windows of one family whose bytes are complete: one confirm of
    /// `[window start − margin, window end + 2)`; every match lies inside the run but for its
    /// left margin (`IPv6:`), so ends past the window are not this window's.
    private mutating func confirmClassRuns(_ family: Int, bytes: UnsafeRawBufferPointer, base: Int, limit: Int, atEnd: Bool,
                                           scratch: OpaquePointer) throws {
        let info = engine.classRunFamilies[family]
        let detector = engine.detectors[info.detector]
        let context = Unmanaged.passUnretained(collector).toOpaque()
        var ready = 0
        while ready < classWindows[family].count, atEnd || classWindows[family][ready].end + 2 <= limit {
            let window = classWindows[family][ready]
            ready += 1
            let scanStart = max(base, window.start - info.marginLeft)
            let scanEnd = min(limit, window.end + 2)
            guard scanEnd > scanStart else { continue }
            if info.kind == .ipv6, !Self.mayHoldIPv6(UnsafeRawBufferPointer(rebasing: bytes[(scanStart - base)..<(scanEnd - base)])) {
                continue
            }
            try confirmScan(detector, bytes: bytes, from: scanStart - base, to: scanEnd - base, scratch: scratch, context: context)
            InPlaceSort.sort(&collector.spans) { $0.end < $1.end || ($0.end == $1.end && $0.start < $1.start) }
            var previousEnd = -1
            var found = collector.foundStarts
            collector.foundStarts = []
            found.removeAll(keepingCapacity: true)
            for span in collector.spans {
                let end = scanStart + span.end
                guard end != previousEnd else { continue }
                previousEnd = end
                guard end >= window.acceptFrom, end <= window.end else { continue }
                found.append((scanStart + span.start, end, false))
            }
            collector.spans.removeAll(keepingCapacity: true)
            for (foundStart, end, _) in found {
                var start = foundStart
                if (start == scanStart && scanStart > 0) || end - start > detector.maxWidth {
                    guard let narrow = try narrowStart(detector: detector, end: end, bytes: bytes, base: base, limit: limit,
                                                       scratch: scratch, context: context) else { continue }
                    start = narrow
                }
                pending.append(PendingMatch(start: start, end: end, detector: detector.index))
            }
            collector.foundStarts = found
        }
        classWindows[family].removeFirstKeepingCapacity(ready)
    }

    /// Every IPv6 pattern needs `::` or at least six colons: a run of times (`12:19:20`) or MAC
    /// addresses (`00:1a:2b:3c:4d:5e`, five) is not searched.
    static func mayHoldIPv6(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var colons = 0
        var previousColon = false
        for byte in bytes {
            if byte == UInt8(ascii: ":") {
                if previousColon { return true }
                colons += 1
                previousColon = true
            } else {
                previousColon = false
            }
        }
        return colons >= 6
    }

    /// Searches the matches of a triggered detector around its trigger ends. A trigger at `t` is
    /// searched once the stream reaches `t + reach + 2` (or ends), where reach is `max_width +
    /// trigger_before`: its matches end in `[t, t + reach]` and start after `t - max_width - 1`.
    private mutating func confirmTriggered(_ detector: CompiledDetector, bytes: UnsafeRawBufferPointer, base: Int, limit: Int,
                                           atEnd: Bool, scratch: OpaquePointer, context: UnsafeMutableRawPointer) throws {
        let reach = detector.triggerReach
        var ready = 0
        while ready < candidates[detector.index].count, atEnd || candidates[detector.index][ready] + reach + 2 <= limit { ready += 1 }
        guard ready > 0 else { return }
        // A trigger with no context word in reach of any match around it is not searched: every
        // match its window could hold would fail the context check.
        // A gated trigger's ends passed the check when `findGatedTriggers` filed them.
        let precheck = engine.shortcuts && detector.triggerContextPrecheck && detector.gatedTrigger == nil
        var first = -1
        var last = -1
        for index in 0..<ready {
            let trigger = candidates[detector.index][index]
            if precheck, !triggerContextPossible(detector, trigger: trigger) { continue }
            if first >= 0, trigger - last > detector.maxWidth + reach + 4 {
                try confirmTriggerCluster(detector, first: first, last: last, bytes: bytes, base: base, limit: limit,
                                          atEnd: atEnd, scratch: scratch, context: context)
                first = -1
            }
            if first < 0 { first = trigger }
            last = trigger
        }
        if first >= 0 {
            try confirmTriggerCluster(detector, first: first, last: last, bytes: bytes, base: base, limit: limit,
                                      atEnd: atEnd, scratch: scratch, context: context)
        }
        candidates[detector.index].removeFirstKeepingCapacity(ready)
    }

    /// Files the ends of a gated trigger (a literal searched in software instead of the
    /// prefilter) that `confirmTriggered` would keep: those whose window is complete (`t + reach
    /// + 2 <= limit`, or the stream ended) and that pass `triggerContextPossible`. Only the zones
    /// of the first rule's words are searched (`[word end - reach, word end + max_width + 1 +
    /// before]`); every hit that can matter has been scanned by then, as in the prefilter route.
    private mutating func findGatedTriggers(_ detector: CompiledDetector, slot: Int, bytes: UnsafeRawBufferPointer, base: Int,
                                            limit: Int, atEnd: Bool) {
        guard let needle = detector.gatedTrigger, !needle.isEmpty else { return }
        let index = detector.index
        let ready = atEnd ? limit : limit - detector.triggerReach - 2
        let from = gateScanned[slot]
        guard ready > from else { return }
        gateScanned[slot] = ready
        let rule = detector.context[0]
        let length = needle.count
        // Trigger ends in (low, high] are searched; `searched` keeps zones from overlapping.
        var searched = from
        let found = candidates[index].count
        for hit in contextHits[index] where hit.slot == 0 && !hit.breaker {
            let low = max(searched, hit.end - detector.triggerReach - 1)
            let high = min(ready, hit.end + detector.maxWidth + 1 + rule.before)
            guard high > low else { continue }
            searched = high
            // A trigger ending at t occupies [t - length, t): starts in [low + 1 - length, high - length].
            var position = max(base, low + 1 - length)
            let end = high  // the bytes searched end here
            guard end - position >= length else { continue }
            needle.withUnsafeBufferPointer { literal in
                while end - position >= length {
                    let offset = mk_find_literal(bytes.baseAddress!.advanced(by: position - base).assumingMemoryBound(to: UInt8.self),
                                         end - position, literal.baseAddress, length)
                    guard offset >= 0 else { break }
                    let trigger = position + offset + length
                    if triggerContextPossible(detector, trigger: trigger) { candidates[index].append(trigger) }
                    position += offset + 1
                }
            }
        }
        if candidates[index].count > found, found == 0 {
            dirty.append(index)
            if !isTouched[index] {
                isTouched[index] = true
                touched.append(index)
            }
        }
    }

    /// Whether a match around the trigger ending at `trigger` could pass every context rule: its
    /// start lies in `[trigger - max_width - 1, trigger + reach]` and its end at most at
    /// `trigger + reach`, so each rule needs a word (not a breaker) ending in
    /// `[trigger - max_width - 1 - before, trigger + reach]`. Rules that look after the match
    /// disable this check (their words may not be scanned yet).
    private func triggerContextPossible(_ detector: CompiledDetector, trigger: Int) -> Bool {
        let hits = contextHits[detector.index]
        for (slot, rule) in detector.context.enumerated() {
            let low = trigger - detector.maxWidth - 1 - rule.before
            let high = trigger + detector.triggerReach
            var found = false
            for hit in hits.reversed() {
                // Hits arrive in end order, give or take the one byte of a late `\b` report.
                if hit.end < low - 2 { break }
                if hit.slot == slot, !hit.breaker, hit.end >= low, hit.end <= high { found = true; break }
            }
            if !found { return false }
        }
        return true
    }

    private mutating func confirmTriggerCluster(_ detector: CompiledDetector, first: Int, last: Int, bytes: UnsafeRawBufferPointer,
                                                base: Int, limit: Int, atEnd: Bool, scratch: OpaquePointer,
                                                context: UnsafeMutableRawPointer) throws {
        let width = detector.maxWidth
        let windowStart = max(base, first - width - 1)
        let windowEnd = min(limit, last + detector.triggerReach + 2)
        // Ends need two bytes of right context, except at the end of the stream.
        let lastEnd = min(last + detector.triggerReach, windowEnd == limit && atEnd ? limit : windowEnd - 2)
        if let needles = detector.windowNeedles, windowEnd > windowStart,
           !WindowPrecheck.mayMatch(slice(bytes, base: base, from: windowStart, to: windowEnd), needles: needles) {
            return
        }
        try confirmScan(detector, bytes: bytes, from: windowStart - base, to: windowEnd - base, scratch: scratch, context: context)
        InPlaceSort.sort(&collector.spans) { $0.end < $1.end || ($0.end == $1.end && $0.start < $1.start) }
        var found = collector.foundStarts
        collector.foundStarts = []
        found.removeAll(keepingCapacity: true)
        defer { collector.foundStarts = found }
        var previousEnd = -1
        for span in collector.spans {
            let end = windowStart + span.end
            guard end != previousEnd, end >= first, end <= lastEnd else { continue }
            previousEnd = end
            found.append((windowStart + span.start, end, false))
        }
        collector.spans.removeAll(keepingCapacity: true)
        for (foundStart, end, _) in found {
            var start = foundStart
            if (start == windowStart && windowStart > 0) || end - start > width {
                guard let narrow = try narrowStart(detector: detector, end: end, bytes: bytes, base: base, limit: limit,
                                                   scratch: scratch, context: context) else { continue }
                start = narrow
            }
            pending.append(PendingMatch(start: start, end: end, detector: detector.index))
        }
    }

    /// Whether a before-only context rule can still hold for a candidate ending at `end`: every
    /// rule needs a word ending in `[end - max_width - before, end]`.
    private func contextPossible(_ detector: CompiledDetector, end: Int) -> Bool {
        let hits = contextHits[detector.index]
        for (slot, rule) in detector.context.enumerated() {
            let low = end - detector.maxWidth - rule.before
            var found = false
            for hit in hits.reversed() {
                // Hits arrive in end order, give or take the one byte of a late `\b` report.
                if hit.end < low - 2 { break }
                if hit.slot == slot, hit.end <= end + 1 { found = true; break }
            }
            if !found { return false }
        }
        return true
    }

    /// Finds the leftmost start of each end of one cluster with one scan of its window.
    private mutating func confirmCluster(_ ends: ArraySlice<(end: Int, contiguous: Bool)>, detector: CompiledDetector,
                                         bytes: UnsafeRawBufferPointer, base: Int, limit: Int, scratch: OpaquePointer,
                                         context: UnsafeMutableRawPointer) throws {
        guard let first = ends.first?.end, let last = ends.last?.end else { return }
        let windowStart = max(base, first - detector.maxWidth - 1)
        let windowEnd = min(limit, last + 2)
        try confirmScan(detector, bytes: bytes, from: windowStart - base, to: windowEnd - base, scratch: scratch, context: context)
        // For each reported end keep the leftmost start; ends the prefilter did not report are
        // artefacts of the window edge and are dropped.
        InPlaceSort.sort(&collector.spans) { $0.end < $1.end || ($0.end == $1.end && $0.start < $1.start) }
        var spanIndex = 0
        var found = collector.foundStarts
        collector.foundStarts = []
        found.removeAll(keepingCapacity: true)
        defer { collector.foundStarts = found }
        for (end, contiguous) in ends {
            let relativeEnd = end - windowStart
            while spanIndex < collector.spans.count, collector.spans[spanIndex].end < relativeEnd { spanIndex += 1 }
            guard spanIndex < collector.spans.count, collector.spans[spanIndex].end == relativeEnd else { continue }
            found.append((windowStart + collector.spans[spanIndex].start, end, contiguous))
        }
        collector.spans.removeAll(keepingCapacity: true)
        for (foundStart, end, contiguous) in found {
            var start = foundStart
            // A start at the window's left edge lacks its left context (`\b`), and a match longer
            // than max_width has no start within reach: look again with this end's own window.
            if (start == windowStart && windowStart > 0) || end - start > detector.maxWidth {
                if contiguous {
                    pending.append(PendingMatch(start: end - 1, end: end, detector: detector.index, continuation: true))
                    continue
                }
                guard let narrow = try narrowStart(detector: detector, end: end, bytes: bytes, base: base, limit: limit,
                                                   scratch: scratch, context: context) else { continue }
                start = narrow
            }
            pending.append(PendingMatch(start: start, end: end, detector: detector.index))
        }
    }

    /// The start for `end` found in `[end - maxWidth - 1, end + 2)`; a match longer than
    /// `maxWidth` is cut to its last `maxWidth` bytes.
    private mutating func narrowStart(detector: CompiledDetector, end: Int, bytes: UnsafeRawBufferPointer, base: Int,
                                      limit: Int, scratch: OpaquePointer, context: UnsafeMutableRawPointer) throws -> Int? {
        let windowStart = max(base, end - detector.maxWidth - 1)
        let windowEnd = min(limit, end + 2)
        try confirmScan(detector, bytes: bytes, from: windowStart - base, to: windowEnd - base, scratch: scratch, context: context)
        defer { collector.spans.removeAll(keepingCapacity: true) }
        var best: Int?
        for span in collector.spans where windowStart + span.end == end {
            let start = windowStart + span.start
            best = min(best ?? start, start)
        }
        guard let best else { return nil }
        if best == windowStart && windowStart > 0 { return max(best + 1, end - detector.maxWidth) }
        return best
    }

    /// The matches of `detector` in `bytes[from..<to]` into `collector.spans` (relative to `from`):
    /// from its software confirmer when it has one, else from a Hyperscan scan of its patterns.
    private func confirmScan(_ detector: CompiledDetector, bytes: UnsafeRawBufferPointer, from: Int, to: Int,
                             scratch: OpaquePointer, context: UnsafeMutableRawPointer) throws {
        if let slots = detector.nativeSlots, to > from {
            if NativeConfirmers.confirm(UnsafeRawBufferPointer(rebasing: bytes[from..<to]), slots: slots, slotCount: 1,
                                        withSlots: false, into: collector) { return }
        }
        try scan(database: engine.confirmDatabases[detector.index], bytes: bytes, from: from, to: to, scratch: scratch, context: context)
    }

    private func scan(database: HyperscanDatabase, bytes: UnsafeRawBufferPointer, from: Int, to: Int,
                      scratch: OpaquePointer, context: UnsafeMutableRawPointer) throws {
        guard to > from else { return }
        let pointer = bytes.baseAddress!.advanced(by: from).assumingMemoryBound(to: CChar.self)
        let status = hs_scan(database.raw, pointer, UInt32(to - from), 0, scratch, EventCollector.onSpan, context)
        if collector.overflow {
            throw MaskingError(code: .tooManyCandidates, reason: "more than \(collector.limit) confirm matches")
        }
        guard status == HS.success else {
            throw MaskingError(code: .engine, reason: "hs_scan failed with \(status)")
        }
    }

    /// Produces output for every byte before `upTo`.
    ///
    /// - Parameters:
    ///   - bytes: the stream from `base`; must reach at least two bytes past every match that starts
    ///     before `upTo`, or the end of the stream when `atEnd`.
    ///   - limit: the end of the scanned bytes.
    ///   - atEnd: `limit` is the end of the stream (bytes past it are treated as absent).
    mutating func emit(bytes: UnsafeRawBufferPointer, base: Int, limit: Int, upTo: Int, atEnd: Bool,
                       _ sink: (UnsafeRawBufferPointer) -> Void) {
        var consumed = 0
        defer { pending.removeFirstKeepingCapacity(consumed) }
        while cursor < upTo {
            if let open = extending {
                if !extend(open, bytes: bytes, base: base, upTo: upTo, limit: limit) { return }
                continue
            }
            // The next pending match that starts before `upTo` and still reaches past the cursor.
            var next: PendingMatch?
            while consumed < pending.count, pending[consumed].start < upTo {
                let candidate = pending[consumed]
                consumed += 1
                if candidate.continuation {
                    // Widens the masked match it continues, and nothing else.
                    if lastMaskEnd >= candidate.end - 1, candidate.end > cursor {
                        cursor = candidate.end
                        lastMaskEnd = candidate.end
                    }
                    continue
                }
                if candidate.end <= cursor {
                    // Inside the masked region that ends at the cursor: its extension may reach past it.
                    if classStop.at == cursor, classStop.detector == candidate.detector { continue }
                    let detector = engine.detectors[candidate.detector]
                    if lastMaskEnd == cursor, extending == nil,
                       detector.extendClass != nil || detector.extendUntilMax != nil,
                       candidate.narrowed || accept(candidate, bytes: bytes, base: base, limit: limit) {
                        openExtension(after: candidate, bytes: bytes, base: base)
                        if extending != nil { break }
                    }
                    continue
                }
                if !candidate.narrowed {
                    if !accept(candidate, bytes: bytes, base: base, limit: limit) { continue }
                    if narrow(candidate, bytes: bytes, base: base, after: consumed) { continue }
                }
                next = candidate
                break
            }
            if extending != nil { continue }
            guard let match = next else {
                sink(slice(bytes, base: base, from: cursor, to: upTo))
                cursor = upTo
                return
            }
            let detector = engine.detectors[match.detector]
            if match.start < cursor {
                if match.start >= lastMaskEnd {
                    // Its beginning was released by an idle flush: mask what is left of it.
                    detector.redaction.withUnsafeBytes { sink($0) }
                    count(match.detector)
                }
                cursor = match.end
                lastMaskEnd = match.end
            } else {
                if match.start > cursor { sink(slice(bytes, base: base, from: cursor, to: match.start)) }
                writeReplacement(match, detector: detector, bytes: bytes, base: base, sink)
                count(match.detector)
                cursor = match.end
                lastMaskEnd = match.end
            }
            if detector.extendClass != nil || detector.extendUntilMax != nil {
                extending = (match.detector, match.start + (detector.extendUntilMax ?? 0))
            }
        }
    }

    private mutating func count(_ detector: Int) {
        counts[detector] += 1
        if !isTouched[detector] {
            isTouched[detector] = true
            touched.append(detector)
        }
    }

    /// An accepted match whose secret span is shorter than the match is put back into `pending`
    /// (from index `after`, in order) as its span alone, so the bytes around the secret are emitted
    /// like any others. Returns false when the secret is the whole match.
    private mutating func narrow(_ match: PendingMatch, bytes: UnsafeRawBufferPointer, base: Int, after: Int) -> Bool {
        guard let span = engine.detectors[match.detector].span else { return false }
        let secret = SpanFinder.secret(in: slice(bytes, base: base, from: match.start, to: match.end), span: span)
        guard secret.count < match.end - match.start else { return false }
        let cut = PendingMatch(start: match.start + secret.lowerBound, end: match.start + secret.upperBound,
                               detector: match.detector, narrowed: true)
        var index = after
        while index < pending.count, Self.precedes(pending[index], cut) { index += 1 }
        pending.insert(cut, at: index)
        return true
    }

    static func precedes(_ a: PendingMatch, _ b: PendingMatch) -> Bool {
        if a.start != b.start { return a.start < b.start }
        if a.end != b.end { return a.end > b.end }
        return a.detector < b.detector
    }

    /// Opens the extension of a match that lies inside the masked region ending at `cursor`, if
    /// its extension reaches the cursor (its class covers every byte in between, or no
    /// terminator ended it before).
    private mutating func openExtension(after match: PendingMatch, bytes: UnsafeRawBufferPointer, base: Int) {
        let detector = engine.detectors[match.detector]
        if let set = detector.extendClass {
            var position = match.end
            while position < cursor, set.contains(bytes[position - base]) { position += 1 }
            if position == cursor { extending = (match.detector, 0) }
        } else if let max = detector.extendUntilMax {
            let ended = terminatorHits[match.detector].contains { $0 > match.end && $0 <= cursor }
            if !ended, match.start + max > cursor { extending = (match.detector, match.start + max) }
        }
    }

    /// Drops bytes that continue the open extension. Returns false when it stopped at `upTo`
    /// with the extension still open.
    private mutating func extend(_ open: (detector: Int, limit: Int), bytes: UnsafeRawBufferPointer, base: Int,
                                 upTo: Int, limit: Int) -> Bool {
        let detector = engine.detectors[open.detector]
        if let set = detector.extendClass {
            var position = cursor
            while position < upTo, set.contains(bytes[position - base]) { position += 1 }
            cursor = position
            lastMaskEnd = position
            if position < upTo {
                extending = nil
                classStop = (open.detector, position)
                return true
            }
            return false
        }
        // `until`: through the first terminator that ends after the cursor, within the limit.
        var stop = open.limit
        for hit in terminatorHits[open.detector] where hit > cursor {
            stop = min(stop, hit)
            break
        }
        if stop <= upTo {
            cursor = max(cursor, stop)
            lastMaskEnd = cursor
            extending = nil
            return true
        }
        cursor = upTo
        lastMaskEnd = upTo
        return false
    }

    /// Validator, context and span checks of one candidate.
    private func accept(_ match: PendingMatch, bytes: UnsafeRawBufferPointer, base: Int, limit: Int) -> Bool {
        let detector = engine.detectors[match.detector]
        for (slot, rule) in detector.context.enumerated() {
            guard contextHolds(rule, slot: slot, hits: contextHits[match.detector], match: match) else { return false }
        }
        guard let validator = detector.validator else { return true }
        let view = candidateView(match, bytes: bytes, base: base, limit: limit)
        return Validators.validate(validator, view)
    }

    /// A rule holds when one of its words ends within `[start - before, end + after]`; with
    /// breakers, the nearest word before the match must not be followed by a breaker before it.
    private func contextHolds(_ rule: ContextRule, slot: Int, hits: [ContextHit], match: PendingMatch) -> Bool {
        let low = match.start - rule.before
        let high = match.end + rule.after
        if rule.breakers.isEmpty {
            return hits.contains { $0.slot == slot && !$0.breaker && $0.end >= low && $0.end <= high }
        }
        // Hits are in stream order: find the last word or breaker that ends before the match.
        var open = false
        for hit in hits where hit.slot == slot {
            if hit.end > match.start { break }
            if hit.end < low { continue }
            open = !hit.breaker
        }
        return open
    }

    func candidateView(_ match: PendingMatch, bytes: UnsafeRawBufferPointer, base: Int, limit: Int) -> CandidateView {
        let value = slice(bytes, base: base, from: match.start, to: match.end)
        func byte(_ position: Int) -> UInt8? {
            guard position >= base, position < limit, position - base < bytes.count else { return nil }
            return bytes[position - base]
        }
        let detector = engine.detectors[match.detector]
        let secret = detector.span.map { SpanFinder.secret(in: value, span: $0) } ?? 0..<value.count
        var view = CandidateView(bytes: value, secret: secret, before: (byte(match.start - 1), byte(match.start - 2)),
                                 after: (byte(match.end), byte(match.end + 1)))
        // Wider left context (the stream keeps `precedingLimit` bytes before every undecided match).
        while view.precedingCount < CandidateView.precedingLimit, let next = byte(match.start - 1 - view.precedingCount) {
            view.preceding |= UInt64(next) << UInt64(8 * view.precedingCount)
            view.precedingCount += 1
        }
        return view
    }

    private mutating func writeReplacement(_ match: PendingMatch, detector: CompiledDetector, bytes: UnsafeRawBufferPointer,
                                           base: Int, _ sink: (UnsafeRawBufferPointer) -> Void) {
        let value = slice(bytes, base: base, from: match.start, to: match.end)
        let secret = match.narrowed ? 0..<value.count
            : detector.span.map { SpanFinder.secret(in: value, span: $0) } ?? 0..<value.count
        if secret.lowerBound > 0 { sink(UnsafeRawBufferPointer(rebasing: value[0..<secret.lowerBound])) }
        var replacement = collector.replacement
        collector.replacement = []
        replacement.removeAll(keepingCapacity: true)
        engine.replacement(for: detector, value: UnsafeRawBufferPointer(rebasing: value[secret]), into: &replacement)
        replacement.withUnsafeBytes { sink($0) }
        collector.replacement = replacement
        if secret.upperBound < value.count { sink(UnsafeRawBufferPointer(rebasing: value[secret.upperBound...])) }
    }

    @inline(__always)
    func slice(_ bytes: UnsafeRawBufferPointer, base: Int, from: Int, to: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[(from - base)..<(to - base)])
    }

    /// Forgets hits and matches that can no longer matter once output reached `cursor`.
    mutating func prune() {
        let horizon = cursor - engine.maxContextBefore - 8
        // Only detectors with an event since the last reset can hold hits.
        for index in touched {
            if let first = contextHits[index].first, first.end < horizon {
                contextHits[index].removeAll { $0.end < horizon }
            }
            if let first = terminatorHits[index].first, first < cursor {
                terminatorHits[index].removeAll { $0 < cursor }
            }
        }
    }
}

/// A detector's `span`, parsed once: the literals as bytes, the trimmed bytes as a set.
struct CompiledSpan: Sendable {
    /// Each step: the literals (`a|b`) after the first occurrence of any of which the secret starts.
    let after: [[[UInt8]]]
    let beforeLast: [UInt8]?
    let trim: ByteSet
    let trims: Bool

    init(_ span: SecretSpan) {
        after = span.after.map { step in step.split(separator: "|", omittingEmptySubsequences: true).map { Array($0.utf8) } }
        beforeLast = span.beforeLast.map { Array($0.utf8) }
        var set = ByteSet()
        for byte in span.trim.utf8 { set.insert(byte) }
        trim = set
        trims = !span.trim.isEmpty
    }
}

/// Locates the secret part of a match from a detector's `span` literals.
enum SpanFinder {
    static func secret(in value: UnsafeRawBufferPointer, span: SecretSpan) -> Range<Int> {
        secret(in: value, span: CompiledSpan(span))
    }

    static func secret(in value: UnsafeRawBufferPointer, span: CompiledSpan) -> Range<Int> {
        var start = 0
        for step in span.after {
            // `a|b`: after the first occurrence of either literal.
            var best: (Int, Int)?
            for needle in step {
                if let found = find(needle, in: value, from: start), found < (best?.0 ?? Int.max) { best = (found, needle.count) }
            }
            guard let best else { break }
            start = best.0 + best.1
        }
        var end = value.count
        if let before = span.beforeLast, let found = findLast(before, in: value, from: start) {
            end = found
        }
        if span.trims {
            while start < end, span.trim.contains(value[start]) { start += 1 }
            while end > start, span.trim.contains(value[end - 1]) { end -= 1 }
        }
        return start < end ? start..<end : 0..<value.count
    }

    static func find(_ needle: [UInt8], in haystack: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        var index = from
        while index + needle.count <= haystack.count {
            if haystack[index] == needle[0], needle.indices.allSatisfy({ haystack[index + $0] == needle[$0] }) { return index }
            index += 1
        }
        return nil
    }

    static func findLast(_ needle: [UInt8], in haystack: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        var index = haystack.count - needle.count
        while index >= from {
            if needle.indices.allSatisfy({ haystack[index + $0] == needle[$0] }) { return index }
            index -= 1
        }
        return nil
    }
}

extension Array {
    /// `removeFirst(n)`, keeping the capacity when everything goes (the common case: every window
    /// or pending match of a call is done), so the array is not reallocated on the next append.
    @inline(__always)
    mutating func removeFirstKeepingCapacity(_ n: Int) {
        if n >= count {
            removeAll(keepingCapacity: true)
        } else if n > 0 {
            removeFirst(n)
        }
    }
}

/// Sorting without allocating: the standard library's sort takes a buffer of half the elements
/// for more than 20 of them, on every call. Insertion sort for short arrays, one pass for arrays
/// already in order (the common case), heapsort otherwise. Not stable: callers sort by keys
/// that are whole elements, so equal keys are equal elements.
enum InPlaceSort {
    static func sort<T>(_ array: inout [T], by less: (T, T) -> Bool) {
        let count = array.count
        guard count > 1 else { return }
        array.withUnsafeMutableBufferPointer { buffer in
            var inOrder = true
            for index in 1..<count where less(buffer[index], buffer[index - 1]) {
                inOrder = false
                break
            }
            if inOrder { return }
            if count <= 32 {
                for index in 1..<count {
                    let element = buffer[index]
                    var hole = index
                    while hole > 0, less(element, buffer[hole - 1]) {
                        buffer[hole] = buffer[hole - 1]
                        hole -= 1
                    }
                    buffer[hole] = element
                }
                return
            }
            func siftDown(_ start: Int, _ end: Int) {
                var root = start
                while true {
                    var child = 2 * root + 1
                    guard child < end else { return }
                    if child + 1 < end, less(buffer[child], buffer[child + 1]) { child += 1 }
                    guard less(buffer[root], buffer[child]) else { return }
                    buffer.swapAt(root, child)
                    root = child
                }
            }
            for start in stride(from: count / 2 - 1, through: 0, by: -1) { siftDown(start, count) }
            for end in stride(from: count - 1, to: 0, by: -1) {
                buffer.swapAt(0, end)
                siftDown(0, end)
            }
        }
    }
}
