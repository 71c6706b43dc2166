import CMaskKernel

/// Finds runs that start with a digit and go on through digits and number separators
/// (`0-9`, space, `.`, `-`, `/`, `(`, `)`, `+`) and hold at least `minDigits` digits: the candidates of the numeric detectors (cards, SSNs, phone
/// numbers), found by a byte loop instead of class-led Hyperscan patterns, which cost far more.
///
/// Every match of a `finder: digit_run` detector consists of run bytes only and has a digit within
/// its first two bytes, so it lies inside one run widened by two bytes on the left. A run is reported as a window `(start, end)` when it ends; a run longer than `maxRun`
/// is reported in overlapping windows (each starts `overlap` bytes before the previous one ended),
/// so a window never holds more than `maxRun` bytes and the stream's holdback stays bounded. The
/// windows depend on the bytes alone, not on how they were written.
struct DigitRunFinder {
    static let table: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 256)
        for byte in UInt8(ascii: "0")...UInt8(ascii: "9") { table[Int(byte)] = 1 }
        for byte in " .-/()+".utf8 { table[Int(byte)] = 2 }
        return table
    }()

    let minDigits: Int
    let maxRun: Int
    let overlap: Int
    /// Also report runs with fewer digits (at least `dottedMinDigits`) when they hold three dots
    /// or more: the candidates of IPv4 addresses. Nil: no such runs.
    let dottedMinDigits: Int?
    /// Start of the open run (or of its current window), or -1.
    private(set) var windowStart = -1
    /// The first match end the open window is responsible for.
    private var acceptFrom = -1
    private var digits = 0
    private var dots = 0

    init(minDigits: Int, maxRun: Int, overlap: Int, dottedMinDigits: Int? = nil) {
        precondition(overlap < maxRun)
        self.minDigits = minDigits
        self.maxRun = maxRun
        self.overlap = overlap
        self.dottedMinDigits = dottedMinDigits
    }

    /// Whether the open run (or window) holds enough to be searched.
    private var qualifies: Bool {
        digits >= minDigits || (dottedMinDigits.map { digits >= $0 && dots >= 3 } ?? false)
    }

    mutating func reset() {
        windowStart = -1
        acceptFrom = -1
        digits = 0
        dots = 0
    }

    /// Scans `bytes`, which start at absolute offset `offset`, appending finished windows.
    mutating func scan(_ bytes: UnsafeRawBufferPointer, offset: Int, into windows: inout [(start: Int, end: Int, acceptFrom: Int)]) {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        Self.table.withUnsafeBufferPointer { table in
            var index = 0
            let count = bytes.count
            while index < count {
                let kind = table[Int(base[index])]
                if windowStart < 0 {
                    // Outside a run: a run starts at a digit (a `+` or `(` just before it is
                    // covered by the confirm window's left margin).
                    if kind == 1 {
                        windowStart = offset + index
                        acceptFrom = windowStart
                        digits = 1
                        dots = 0
                    }
                    index += 1
                    continue
                }
                let position = offset + index
                if kind == 0 {
                    finish(at: position, into: &windows)
                } else {
                    if kind == 1 { digits += 1 } else if base[index] == UInt8(ascii: ".") { dots += 1 }
                    if position - windowStart >= maxRun {
                        // Cut a long run into overlapping windows.
                        if qualifies { windows.append((windowStart, position, acceptFrom)) }
                        windowStart = position - overlap
                        acceptFrom = position + 1
                        digits = minDigits  // the next window may hold a match across the cut
                    }
                }
                index += 1
            }
        }
    }

    /// Ends the open run at `position` (the end of the stream, or an idle flush).
    mutating func finish(at position: Int, into windows: inout [(start: Int, end: Int, acceptFrom: Int)]) {
        if windowStart >= 0, qualifies { windows.append((windowStart, position, acceptFrom)) }
        windowStart = -1
        digits = 0
        dots = 0
    }

    /// Reports the open run up to `position` without ending it (an idle flush).
    func peek(at position: Int, into windows: inout [(start: Int, end: Int, acceptFrom: Int)]) {
        if windowStart >= 0, qualifies { windows.append((windowStart, position, acceptFrom)) }
    }
}

/// The digit-run finder the engine runs: the SIMD one in C (`Sources/CMaskKernel/runs.c`, the same
/// windows at several GB/s) or, in the reference engine, the byte loop above.
struct RunFinder {
    private var reference: DigitRunFinder?
    private var state = runs_state()

    init(minDigits: Int, maxRun: Int, overlap: Int, dottedMinDigits: Int?, native: Bool) {
        if native {
            // The C finder cannot tell "off" from a minimum of 0; a minimum of 0 behaves like 1.
            let initialized = runs_init(&state, UInt64(minDigits), UInt64(maxRun), UInt64(overlap),
                                        UInt64(dottedMinDigits.map { max($0, 1) } ?? 0))
            precondition(initialized == 1, "run finder parameters")
        } else {
            reference = DigitRunFinder(minDigits: minDigits, maxRun: maxRun, overlap: overlap, dottedMinDigits: dottedMinDigits)
        }
    }

    typealias Windows = [(start: Int, end: Int, acceptFrom: Int)]

    static let append: runs_window_fn = { context, start, end, acceptFrom in
        context!.assumingMemoryBound(to: Windows.self).pointee.append((Int(start), Int(end), Int(acceptFrom)))
    }

    mutating func scan(_ bytes: UnsafeRawBufferPointer, offset: Int, into windows: inout Windows) {
        if reference != nil { reference!.scan(bytes, offset: offset, into: &windows); return }
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        withUnsafeMutablePointer(to: &windows) { pointer in
            runs_scan(&state, base.assumingMemoryBound(to: UInt8.self), bytes.count, UInt64(offset), Self.append, pointer)
        }
    }

    mutating func finish(at position: Int, into windows: inout Windows) {
        if reference != nil { reference!.finish(at: position, into: &windows); return }
        withUnsafeMutablePointer(to: &windows) { pointer in _ = runs_finish(&state, UInt64(position), Self.append, pointer) }
    }

    func peek(at position: Int, into windows: inout Windows) {
        if let reference { reference.peek(at: position, into: &windows); return }
        var copy = state
        withUnsafeMutablePointer(to: &windows) { pointer in _ = runs_peek(&copy, UInt64(position), Self.append, pointer) }
    }

    mutating func reset() {
        if reference != nil { reference!.reset(); return }
        runs_reset(&state)
    }
}

/// A run finder of another byte class (`Sources/CMaskKernel/classruns.c`): runs of hex digits,
/// colons and dots for IPv6 addresses, of upper-case letters, digits and spaces for IBANs.
struct ClassRunFinder {
    enum Kind: Sendable { case ipv6, iban }

    private var state = classruns_state()

    init(kind: Kind, maxRun: Int, overlap: Int) {
        let initialized = switch kind {
        case .ipv6: classruns_init_ipv6(&state, UInt64(maxRun), UInt64(overlap))
        case .iban: classruns_init_iban(&state, UInt64(maxRun), UInt64(overlap))
        }
        precondition(initialized == 1, "class run finder parameters")
    }

    static let append: classruns_window_fn = { context, start, end, acceptFrom in
        context!.assumingMemoryBound(to: RunFinder.Windows.self).pointee.append((Int(start), Int(end), Int(acceptFrom)))
    }

    mutating func scan(_ bytes: UnsafeRawBufferPointer, offset: Int, into windows: inout RunFinder.Windows) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        withUnsafeMutablePointer(to: &windows) { pointer in
            classruns_scan(&state, base.assumingMemoryBound(to: UInt8.self), bytes.count, UInt64(offset), Self.append, pointer)
        }
    }

    mutating func finish(at position: Int, into windows: inout RunFinder.Windows) {
        withUnsafeMutablePointer(to: &windows) { pointer in _ = classruns_finish(&state, UInt64(position), Self.append, pointer) }
    }

    func peek(at position: Int, into windows: inout RunFinder.Windows) {
        var copy = state
        withUnsafeMutablePointer(to: &windows) { pointer in _ = classruns_peek(&copy, UInt64(position), Self.append, pointer) }
    }

    mutating func reset() {
        classruns_reset(&state)
    }
}
