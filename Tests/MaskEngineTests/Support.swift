import Foundation
@testable import MaskEngine

/// The project's checked-in corpora, found from this file's location.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let corpora = root.appendingPathComponent("corpora").path
    static let samples = root.appendingPathComponent("corpora/samples").path

    static let detectors: [Detector] = {
        do { return try CorpusLoader.load(directories: [corpora]) } catch { fatalError("corpora do not load: \(error)") }
    }()

    static let engine: MaskingEngine = {
        do { return try MaskingEngine(detectors: detectors, hashKey: Array("test-key".utf8)) } catch { fatalError("engine: \(error)") }
    }()

    static func engine(style: MaskStyle) throws -> MaskingEngine {
        try MaskingEngine(detectors: detectors, profile: MaskingProfile(name: style.rawValue, style: style), hashKey: Array("test-key".utf8))
    }
}

/// Masks `input` in one write plus finish.
func maskOneShot(_ input: [UInt8], engine: MaskingEngine = Fixtures.engine) throws -> [UInt8] {
    let masker = try engine.makeStreamMasker()
    return try masker.write(input) + masker.finish()
}

/// Masks `input` written in the given chunk sizes (cycled).
func maskChunked(_ input: [UInt8], sizes: [Int], engine: MaskingEngine = Fixtures.engine) throws -> [UInt8] {
    let masker = try engine.makeStreamMasker()
    var out: [UInt8] = []
    var offset = 0
    var index = 0
    while offset < input.count {
        let size = max(1, sizes[index % sizes.count])
        let end = min(input.count, offset + size)
        out += try masker.write(Array(input[offset..<end]))
        offset = end
        index += 1
    }
    return out + (try masker.finish())
}

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// A small deterministic generator for random splits (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
