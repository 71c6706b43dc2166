// ordo-one benchmarks of the masking engine: throughput and malloc counts per operation.
//   swift package --package-path Benchmarks benchmark
import Benchmark
import Foundation
import MaskEngine

let corpora = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("corpora").path
let samples = ["api_json.txt", "psql.txt", "app_log.txt", "shell.txt"].compactMap {
    FileManager.default.contents(atPath: corpora + "/samples/" + $0)
}.reduce([UInt8]()) { $0 + [UInt8]($1) }
let quiet = [UInt8](String(repeating: "the quick brown fox jumps over the lazy dog while nothing happens here ", count: 240).utf8)

/// The sample corpus through `masker` in 16 KiB writes, then `finish`.
func maskSamples(with masker: StreamMasker) throws {
    try samples.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let end = min(raw.count, offset + 16384)
            try masker.write(UnsafeRawBufferPointer(rebasing: raw[offset..<end])) { blackHole($0.count) }
            offset = end
        }
        try masker.finish { blackHole($0.count) }
    }
}

let benchmarks: @Sendable () -> Void = {
    let engine = try! MaskingEngine(detectors: try! CorpusLoader.load(directories: [corpora]), hashKey: Array("benchmark".utf8))
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]

    Benchmark("empty loop (the harness's own mallocs)", configuration: .init(metrics: metrics)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(quiet.count) }
    }

    Benchmark("stream masker: 16 KiB write, nothing to mask", configuration: .init(metrics: metrics)) { benchmark in
        let masker = try engine.makeStreamMasker()
        try quiet.withUnsafeBytes { raw in try masker.write(UnsafeRawBufferPointer(rebasing: raw[0..<16384])) { _ in } }
        benchmark.startMeasurement()  // a stream's own set-up allocations are not a write's
        try quiet.withUnsafeBytes { raw in
            for _ in benchmark.scaledIterations {
                try masker.write(UnsafeRawBufferPointer(rebasing: raw[0..<16384])) { blackHole($0.count) }
            }
        }
    }

    Benchmark("stream masker: sample corpus in 16 KiB writes", configuration: .init(metrics: metrics)) { benchmark in
        for _ in benchmark.scaledIterations { try maskSamples(with: try engine.makeStreamMasker()) }
    }

    Benchmark("stream masker: sample corpus in 16 KiB writes, one stream reused", configuration: .init(metrics: metrics)) { benchmark in
        // The steady state with values masked: the stream and its working memory exist already.
        let masker = try engine.makeStreamMasker()
        func pass() throws {
            try maskSamples(with: masker)
            try masker.reset()
        }
        try pass()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { try pass() }
    }

    Benchmark("value masker: every line of the sample corpus, one masker reused", configuration: .init(metrics: metrics)) { benchmark in
        let masker = engine.makeValueMasker()
        let lines = samples.split(separator: UInt8(ascii: "\n")).map { Array($0) }
        func pass() throws {
            for line in lines { blackHole(try masker.mask(line)) }
        }
        try pass()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { try pass() }
    }

    Benchmark("value masker: one email value", configuration: .init(metrics: metrics)) { benchmark in
        let masker = engine.makeValueMasker()
        let value = Array("jane.doe@example.com".utf8)
        _ = try masker.mask(value)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try masker.mask(value)) }
    }
}
