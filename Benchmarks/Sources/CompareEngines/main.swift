// Side-by-side measurements of the masking engine on one text, in one run:
// memcpy, the one-database SOM baseline, the stream masker (16 KiB and 64-byte writes), the value
// masker and memory per open stream. Prints a Markdown table. (Allocations per write come from
// the ordo-one benchmarks, which count every malloc of the process.)
//
//   CompareEngines --text FILE --corpora DIR [--runs 3] [--presidio-mbps X --presidio-bytes N] [--stream-only | --value-only | --memory-only]
import Foundation
import MaskEngine

struct Options {
    var text = ""
    var corpora = "corpora"
    var runs = 3
    var presidioMBps: Double?
    var presidioBytes: Int?
    /// Only the stream masker at 16 KiB writes (for profiling and quick comparisons).
    var streamOnly = false
    /// Only the value masker, one value per line.
    var valueOnly = false
    /// Only the memory per open stream: created, and after one 4 KiB write.
    var memoryOnly = false

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--text": text = iterator.next() ?? ""
            case "--corpora": corpora = iterator.next() ?? corpora
            case "--runs": runs = Int(iterator.next() ?? "") ?? runs
            case "--presidio-mbps": presidioMBps = Double(iterator.next() ?? "")
            case "--presidio-bytes": presidioBytes = Int(iterator.next() ?? "")
            case "--stream-only": streamOnly = true
            case "--value-only": valueOnly = true
            case "--memory-only": memoryOnly = true
            default: FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8)); exit(2)
            }
        }
    }
}

func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

/// Runs `body` `runs` times and returns the median seconds.
func measure(_ runs: Int, _ body: () throws -> Void) rethrows -> Double {
    var times: [Double] = []
    for _ in 0..<runs {
        let start = now()
        try body()
        times.append(now() - start)
    }
    return median(times)
}

func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
}

let options = Options(CommandLine.arguments)
guard let data = FileManager.default.contents(atPath: options.text) else {
    FileHandle.standardError.write(Data("cannot read --text \(options.text)\n".utf8))
    exit(2)
}
let text = [UInt8](data)
let detectors = try CorpusLoader.load(directories: [options.corpora])
let engine = try MaskingEngine(detectors: detectors, hashKey: Array("benchmark".utf8))
let mib = Double(text.count) / 1_048_576
/// A realistic consumer copies the output somewhere: here, around a 1 MiB buffer.
final class OutputSink {
    private var buffer = [UInt8](repeating: 0, count: 1 << 20)
    private var used = 0

    func take(_ bytes: UnsafeRawBufferPointer) {
        if used + bytes.count > buffer.count { used = 0 }
        guard bytes.count <= buffer.count, let source = bytes.baseAddress else { return }
        let offset = used
        buffer.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: offset).copyMemory(from: source, byteCount: bytes.count) }
        used += bytes.count
    }
}

func streamMask(writeSize: Int) throws -> Int {
    let masker = try engine.makeStreamMasker()
    let output = OutputSink()
    let sink = output.take
    try text.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let end = min(raw.count, offset + writeSize)
            try masker.write(UnsafeRawBufferPointer(rebasing: raw[offset..<end]), sink)
            offset = end
        }
        try masker.finish(sink)
    }
    return masker.counts.values.reduce(0, +)
}

if options.streamOnly {
    var seconds: [Double] = []
    for _ in 0..<options.runs {
        let start = now()
        _ = try streamMask(writeSize: 16384)
        seconds.append(now() - start)
    }
    print(String(format: "stream masker, 16 KiB writes: median %.1f MiB/s, best %.1f MiB/s over %d runs",
                 mib / median(seconds), mib / seconds.min()!, options.runs))
    exit(0)
}

/// The RSS growth per stream of 10,000 open streams that each saw `write` bytes of the text.
func rssPerOpenStream(write: Int) throws -> Double {
    var streams: [StreamMasker] = []
    streams.reserveCapacity(10_000)
    let before = residentBytes()
    try text.withUnsafeBytes { raw in
        for index in 0..<10_000 {
            let masker = try engine.makeStreamMasker()
            let start = (index * 4096) % max(1, raw.count - 4096)
            if write > 0 { try masker.write(UnsafeRawBufferPointer(rebasing: raw[start..<(start + min(write, raw.count))])) { _ in } }
            streams.append(masker)
        }
    }
    return Double(residentBytes() - before) / 10_000
}

if options.memoryOnly {
    for write in [4096, 0] {
        print(String(format: "RSS per open stream after a %d-byte write: %.0f B", write, try rssPerOpenStream(write: write)))
    }
    exit(0)
}

/// The text cut into values at each newline (and at each `|` when `columns`: the fields of the
/// psql shape, like the values of a DataRow).
func valueRanges(columns: Bool) -> [Range<Int>] {
    var ranges: [Range<Int>] = []
    var start = 0
    for (index, byte) in text.enumerated() where byte == 10 || (columns && byte == UInt8(ascii: "|")) {
        ranges.append(start..<index)
        start = index + 1
    }
    return ranges
}

/// Masks every range as one value; returns the values changed.
func valueMask(_ ranges: [Range<Int>]) throws -> Int {
    let masker = engine.makeValueMasker()
    var changed = 0
    try text.withUnsafeBytes { raw in
        for range in ranges {
            if case .masked = try masker.mask(UnsafeRawBufferPointer(rebasing: raw[range])) { changed += 1 }
        }
    }
    return changed
}

if options.valueOnly {
    // Both ways in turn within each run, so that a noisy machine slows them alike.
    let lines = valueRanges(columns: false)
    let fields = valueRanges(columns: true)
    var lineSeconds: [Double] = []
    var fieldSeconds: [Double] = []
    for _ in 0..<options.runs {
        var begin = now()
        _ = try valueMask(lines)
        lineSeconds.append(now() - begin)
        begin = now()
        _ = try valueMask(fields)
        fieldSeconds.append(now() - begin)
    }
    print(String(format: "value masker, one value per line: median %.1f MiB/s over %d runs (%d values)",
                 mib / median(lineSeconds), options.runs, lines.count))
    print(String(format: "value masker, one value per psql column or line: median %.1f MiB/s over %d runs (%d values)",
                 mib / median(fieldSeconds), options.runs, fields.count))
    exit(0)
}

var rows: [(String, Double, String)] = []
FileHandle.standardError.write(Data("text: \(String(format: "%.0f", mib)) MiB, \(engine.detectorIDs.count) detectors, runs: \(options.runs)\n".utf8))

// memcpy of the same bytes in 16 KiB pieces: the physical ceiling.
let memcpySeconds = measure(max(options.runs, 5)) {
    var destination = [UInt8](repeating: 0, count: 16384)
    text.withUnsafeBytes { raw in
        destination.withUnsafeMutableBytes { out in
            var offset = 0
            while offset < raw.count {
                let count = min(16384, raw.count - offset)
                out.baseAddress!.copyMemory(from: raw.baseAddress!.advanced(by: offset), byteCount: count)
                offset += count
            }
        }
    }
}
rows.append(("memcpy, 16 KiB pieces", mib / memcpySeconds, "ceiling"))

// The obvious design: every pattern in one SOM stream database, 16 KiB writes, no validation.
var baselineMatches = 0
let baselineSeconds = try measure(options.runs) {
    let scanner = try OneDatabaseScanner(detectors: detectors)
    try text.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let end = min(raw.count, offset + 16384)
            try scanner.scan(UnsafeRawBufferPointer(rebasing: raw[offset..<end]))
            offset = end
        }
        try scanner.finish()
    }
    baselineMatches = scanner.matches
}
rows.append(("baseline: one SOM database, 16 KiB writes, no validation", mib / baselineSeconds, "\(baselineMatches) raw matches"))

// Stage 1 of engine v2 alone: the classification pass and anchor finder (no masking yet).
var anchors = 0
let stageOne = measure(options.runs) {
    var probe = ClassificationPassProbe()
    anchors = 0
    text.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let end = min(raw.count, offset + 16384)
            anchors += probe.scan(UnsafeRawBufferPointer(rebasing: raw[offset..<end]))
            offset = end
        }
    }
    anchors += probe.finish()
}
rows.append(("v2 stage 1: classification pass + anchors (\(ClassificationPassProbe.kernelName)), 16 KiB writes", mib / stageOne,
             "\(anchors) anchors"))

var maskedMatches = 0
let stream16K = try measure(options.runs) { maskedMatches = try streamMask(writeSize: 16384) }
rows.append(("stream masker, 16 KiB writes", mib / stream16K, "\(maskedMatches) values masked"))

let stream64 = try measure(options.runs) { _ = try streamMask(writeSize: 64) }
rows.append(("stream masker, 64-byte writes", mib / stream64, ""))

// The value masker on every line of the text as one value, and on every psql field.
for columns in [false, true] {
    let ranges = valueRanges(columns: columns)
    var valuesMasked = 0
    let valueSeconds = try measure(options.runs) { valuesMasked = try valueMask(ranges) }
    rows.append((columns ? "value masker, one value per psql column (other lines whole)" : "value masker, one value per line",
                 mib / valueSeconds, "\(ranges.count) values, \(valuesMasked) changed"))
}

if let presidio = options.presidioMBps {
    rows.append(("Presidio analyzer+anonymizer (en_core_web_sm)", presidio,
                 "on the first \(options.presidioBytes.map { "\($0 / 1024) KiB" } ?? "part")"))
}

// Memory per open stream: Hyperscan state plus held-back buffer, and the measured RSS growth
// of 10,000 open streams that each saw 4 KiB of the text.
let probe = try engine.makeStreamMasker()
_ = try text.withUnsafeBytes { raw in try probe.write(UnsafeRawBufferPointer(rebasing: raw[0..<min(raw.count, 65536)])) { _ in } }
let footprint = probe.memoryFootprint
let perStreamRSS = try rssPerOpenStream(write: 4096)

let stream16KMBps = mib / stream16K
print("| measurement (\(String(format: "%.0f", mib)) MiB, median of \(options.runs)) | MiB/s | vs memcpy | stream 16 KiB vs it | note |")
print("|---|---:|---:|---:|---|")
for (name, mbps, note) in rows {
    let ratio = stream16KMBps / mbps
    print("| \(name) | \(String(format: mbps < 1 ? "%.4f" : "%.1f", mbps)) | \(String(format: "%.4f", mbps / (mib / memcpySeconds))) | \(String(format: ratio >= 100 ? "%.0f×" : "%.2f×", ratio)) | \(note) |")
}
print("")
print("| per stream | value |")
print("|---|---:|")
print("| Hyperscan stream state (engine) | \(engine.streamStateSize) B |")
print("| Hyperscan stream state (baseline) | \(try OneDatabaseScanner(detectors: detectors).streamStateSize) B |")
print("| holdback | \(engine.holdback) B |")
print("| state + buffer capacity after 64 KiB | \(footprint) B |")
print("| RSS growth per open stream (10,000 streams) | \(Int(perStreamRSS)) B |")
