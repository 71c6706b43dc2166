import CHyperscan

/// Masks one byte stream as it flows: chunks of any size in, masked chunks out.
///
/// Bytes that could still belong to an unfinished match are held back (at most
/// ``MaskingEngine/holdback`` bytes); everything before them is released by the same `write`.
/// The output is byte-identical for every chunking of the same input. Not thread-safe: one
/// stream masker belongs to one stream, which may move between threads but is written by one
/// at a time.
public final class StreamMasker {
    public let engine: MaskingEngine
    private var stream: OpaquePointer?
    private var resolver: Resolver
    private var runFinder: RunFinder?
    private var classFinders: [ClassRunFinder]
    /// Held-back bytes, from `base` to `scanned`, plus small writes not scanned yet. During a
    /// call that scans (``withWork(_:)``) it is the borrowed work area's larger piece buffer, and
    /// the stream's own (small) array waits in the work area.
    private var buffer: [UInt8]
    private var base = 0
    private var scanned = 0
    private var finished = false
    /// Where the last idle flush released output up to.
    private var flushedAt: Int?
    /// Bytes written after `scanned`, at the end of `buffer`, not scanned yet.
    private var pendingCount = 0

    /// Writes larger than this are scanned in pieces, so the held-back buffer stays small.
    public static let pieceSize = 4096

    /// Small writes are gathered until this many bytes are pending, so a stream written 64 bytes
    /// at a time does not pay the whole pipeline per write. Output is the same; at most this many
    /// more bytes wait for the next write, ``flush(_:)`` or ``finish(_:)``.
    public static let batchSize = 1024

    init(engine: MaskingEngine) throws {
        self.engine = engine
        var stream: OpaquePointer?
        let status = hs_open_stream(engine.streamDatabase.raw, 0, &stream)
        guard status == HS.success, stream != nil else {
            throw MaskingError(code: .engine, reason: "hs_open_stream failed with \(status)")
        }
        self.stream = stream
        self.resolver = Resolver(engine: engine, collector: nil)
        self.runFinder = engine.makeDigitRunFinder()
        self.classFinders = engine.makeClassRunFinders()
        self.buffer = []
    }

    deinit {
        if let stream { _ = hs_close_stream(stream, nil, nil, nil) }
    }

    /// Bytes written so far.
    public var bytesIn: Int { scanned + pendingCount }

    /// Bytes currently held back (written but not released yet).
    public var heldBack: Int { bytesIn - resolver.cursor }

    /// Matches masked so far, per detector id.
    public var counts: [String: Int] {
        var result: [String: Int] = [:]
        for (index, count) in resolver.counts.enumerated() where count > 0 {
            result[engine.detectors[index].definition.id] = count
        }
        return result
    }

    /// Approximate bytes this stream holds: Hyperscan stream state plus the held-back buffer.
    public var memoryFootprint: Int { engine.streamStateSize + buffer.capacity }

    /// Runs `body` with a work area borrowed from the engine: the resolver's working memory, and
    /// a piece buffer that holds the held-back bytes while pieces are appended and scanned. The
    /// bytes still held back afterwards go back to the stream's own array.
    private func withWork<R>(_ body: () throws -> R) rethrows -> R {
        let work = engine.workPool.take()
        resolver.collector = work
        // `buffer` becomes the work area's piece buffer, with the held-back bytes copied in.
        swap(&buffer, &work.piece)
        buffer.removeAll(keepingCapacity: true)
        buffer.append(contentsOf: work.piece)
        // The same for the pending matches.
        swap(&resolver.pending, &work.pending)
        resolver.pending.removeAll(keepingCapacity: true)
        resolver.pending.append(contentsOf: work.pending)
        defer {
            work.piece.removeAll(keepingCapacity: true)
            work.piece.append(contentsOf: buffer)
            swap(&buffer, &work.piece)
            work.pending.removeAll(keepingCapacity: true)
            work.pending.append(contentsOf: resolver.pending)
            swap(&resolver.pending, &work.pending)
            resolver.collector = nil
            engine.workPool.give(work)
        }
        return try body()
    }

    /// Scans `bytes` and passes every byte that can no longer be part of a match to `sink`,
    /// masked. `sink` may be called several times per write, or not at all: writes are gathered
    /// until ``batchSize`` bytes are pending (``flush(_:)`` and ``finish(_:)`` scan what is left).
    public func write(_ bytes: UnsafeRawBufferPointer, _ sink: (UnsafeRawBufferPointer) -> Void) throws {
        guard !finished else { throw MaskingError(code: .finished, reason: "write after finish") }
        guard pendingCount + bytes.count >= Self.batchSize else {
            // Gathered in the stream's own array until a batch is pending.
            buffer.append(contentsOf: bytes)
            pendingCount += bytes.count
            return
        }
        try withWork {
            var offset = 0
            while offset < bytes.count {
                let count = min(Self.pieceSize - pendingCount, bytes.count - offset)
                buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]))
                pendingCount += count
                offset += count
                if pendingCount >= Self.batchSize { try scanPending(sink) }
            }
        }
    }

    /// Convenience for tests and small callers: the masked output of this write.
    public func write(_ bytes: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        try bytes.withUnsafeBytes { raw in try write(raw) { out.append(contentsOf: $0) } }
        return out
    }

    /// Scans the pending bytes at the end of the buffer (at most ``pieceSize``) and releases what
    /// can no longer be part of a match.
    private func scanPending(_ sink: (UnsafeRawBufferPointer) -> Void) throws {
        guard pendingCount > 0 else { return }
        let count = pendingCount
        let collector: EventCollector = resolver.collector
        collector.base = 0  // stream mode reports offsets from the start of the stream
        // One scratch serves the prefilter scan and the confirm scans of this piece.
        try engine.scratch.withScratch { scratch in
            let status = buffer.withUnsafeBytes { all -> hs_error_t in
                let piece = UnsafeRawBufferPointer(rebasing: all[(all.count - count)...])
                let status = hs_scan_stream(stream, piece.baseAddress?.assumingMemoryBound(to: CChar.self), UInt32(piece.count), 0,
                                            scratch, EventCollector.onEvent, Unmanaged.passUnretained(collector).toOpaque())
                guard status == HS.success else { return status }
                runFinder?.scan(piece, offset: scanned, into: &resolver.runWindows)
                for index in classFinders.indices { classFinders[index].scan(piece, offset: scanned, into: &resolver.classWindows[index]) }
                resolver.findNativeEnds(piece)
                return status
            }
            guard status == HS.success else {
                throw MaskingError(code: collector.overflow ? .tooManyCandidates : .engine, reason: "hs_scan_stream failed with \(status)")
            }
            scanned += count
            pendingCount = 0
            try resolver.distributeEvents()
            try release(upTo: scanned - engine.holdback, atEnd: false, scratch: scratch, sink)
        }
    }

    /// Confirms candidates and releases output up to `upTo`, then drops buffered bytes that are
    /// no longer needed.
    private func release(upTo: Int, atEnd: Bool, scratch: OpaquePointer, _ sink: (UnsafeRawBufferPointer) -> Void) throws {
        let base = self.base
        let scanned = self.scanned
        try buffer.withUnsafeBytes { bytes in
            try resolver.confirm(bytes: bytes, base: base, limit: scanned, atEnd: atEnd, scratch: scratch)
            if upTo > resolver.cursor {
                resolver.emit(bytes: bytes, base: base, limit: scanned, upTo: upTo, atEnd: atEnd, sink)
            }
        }
        resolver.prune()
        // Keep the left context validators see (`CandidateView.precedingLimit` bytes, which also
        // covers the two bytes `\b` needs in confirm windows) before the release point, and every
        // byte of matches still pending (an open extension can leave some behind).
        let earliestPending = resolver.pending.first.map { $0.start } ?? Int.max
        // After an idle flush, matches can start before the released bytes: keep a match width of
        // them so the rest of such a match is still found.
        let history = flushedAt.map { resolver.cursor < $0 + engine.maxMatchWidth ? engine.maxMatchWidth : 0 } ?? 0
        let keepFrom = max(base, min(resolver.cursor, max(upTo, 0), earliestPending) - CandidateView.precedingLimit - history)
        if keepFrom > base {
            buffer.removeSubrange(0..<(keepFrom - base))
            self.base = keepFrom
        }
    }

    /// Releases everything still held back, as if the stream ended here, without ending it.
    ///
    /// For interactive streams after an idle interval: a value that continues after the flush
    /// may have its beginning released unmasked (the rest of it is masked). Breaks chunk
    /// invariance by design: output then depends on timing.
    public func flush(_ sink: (UnsafeRawBufferPointer) -> Void) throws {
        guard !finished else { throw MaskingError(code: .finished, reason: "flush after finish") }
        try withWork { try flushWithWork(sink) }
    }

    private func flushWithWork(_ sink: (UnsafeRawBufferPointer) -> Void) throws {
        try scanPending(sink)
        guard scanned > resolver.cursor else { return }
        let collector: EventCollector = resolver.collector
        let from = max(base, resolver.cursor - 2)
        collector.base = from
        try engine.scratch.withScratch { scratch in
            let status = buffer.withUnsafeBytes { bytes in
                hs_scan(engine.blockDatabase.raw, bytes.baseAddress!.advanced(by: from - base).assumingMemoryBound(to: CChar.self),
                        UInt32(scanned - from), 0, scratch, EventCollector.onEvent, Unmanaged.passUnretained(collector).toOpaque())
            }
            guard status == HS.success else {
                throw MaskingError(code: .engine, reason: "hs_scan failed with \(status)")
            }
            try resolver.distributeEvents()
            runFinder?.peek(at: scanned, into: &resolver.runWindows)
            for index in classFinders.indices { classFinders[index].peek(at: scanned, into: &resolver.classWindows[index]) }
            flushedAt = scanned
            try release(upTo: scanned, atEnd: true, scratch: scratch, sink)
        }
    }

    /// Ends the stream: reports matches that end with it and releases every held-back byte.
    /// The masker can be used again for a new stream after ``reset()``.
    public func finish(_ sink: (UnsafeRawBufferPointer) -> Void) throws {
        guard !finished else { throw MaskingError(code: .finished, reason: "finish called twice") }
        try withWork { try finishWithWork(sink) }
    }

    private func finishWithWork(_ sink: (UnsafeRawBufferPointer) -> Void) throws {
        try scanPending(sink)
        finished = true
        let collector: EventCollector = resolver.collector
        collector.base = 0
        try engine.scratch.withScratch { scratch in
            let status = hs_reset_stream(stream, 0, scratch, EventCollector.onEvent, Unmanaged.passUnretained(collector).toOpaque())
            guard status == HS.success else {
                throw MaskingError(code: .engine, reason: "hs_reset_stream failed with \(status)")
            }
            runFinder?.finish(at: scanned, into: &resolver.runWindows)
            for index in classFinders.indices { classFinders[index].finish(at: scanned, into: &resolver.classWindows[index]) }
            try resolver.distributeEvents()
            try release(upTo: scanned, atEnd: true, scratch: scratch, sink)
        }
    }

    /// Convenience: the rest of the masked output.
    public func finish() throws -> [UInt8] {
        var out: [UInt8] = []
        try finish { out.append(contentsOf: $0) }
        return out
    }

    /// Prepares the masker for a new stream (after ``finish(_:)``, or to abandon the current one).
    public func reset() throws {
        if !finished {
            let status = hs_reset_stream(stream, 0, nil, nil, nil)
            guard status == HS.success else {
                throw MaskingError(code: .engine, reason: "hs_reset_stream failed with \(status)")
            }
        }
        finished = false
        resolver.reset()
        runFinder?.reset()
        for index in classFinders.indices { classFinders[index].reset() }
        buffer.removeAll(keepingCapacity: true)
        base = 0
        scanned = 0
        pendingCount = 0
        flushedAt = nil
    }
}
