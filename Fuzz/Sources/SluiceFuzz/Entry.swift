import CFuzzDriver
import Foundation

/// The executable's entry point as SwiftPM names it: libFuzzer's driver runs from here.
@_cdecl("SluiceFuzz_main")
public func sluiceFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzOne(data, size) }
}

/// libFuzzer's entry point. `FUZZ_TARGET` names the harness (`scripts/fuzz.sh` sets it); each
/// harness throws away what it cannot parse and traps (`fatalError`) only when an invariant
/// breaks, so a crash is either a memory error (AddressSanitizer) or a broken invariant.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    Harnesses.current(bytes)
    return 0
}

enum Harnesses {
    static let all: [String: @Sendable ([UInt8]) -> Void] = [
        "pg-wire": PostgresFuzz.wire,
        "pg-proxy": PostgresFuzz.proxy,
        "sql": TextFuzz.sql,
        "shell": TextFuzz.shell,
        "http": HTTPFuzz.exchange,
        "http-body": HTTPFuzz.bodyDecoders,
        "kubernetes": KubernetesFuzz.requestsAndStreams,
        "jwt": IdentityFuzz.tokensAndKeys,
        "config": TextFuzz.config,
        "masker": MaskerFuzz.chunkedAgainstReference,
    ]

    static let current: @Sendable ([UInt8]) -> Void = {
        let name = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? ""
        guard let harness = all[name] else {
            FileHandle.standardError.write(Data("FUZZ_TARGET must be one of: \(all.keys.sorted().joined(separator: ", "))\n".utf8))
            exit(2)
        }
        return harness
    }()
}

/// Turns the front of an input into choices (chunk sizes, flags), so libFuzzer's mutations
/// reach them; what is left is the payload.
struct Choices {
    private var state: UInt64

    init(_ bytes: inout ArraySlice<UInt8>) {
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        for byte in bytes.prefix(4) { seed = (seed ^ UInt64(byte)) &* 0x100_0000_01B3 }
        bytes = bytes.dropFirst(min(4, bytes.count))
        state = seed
    }

    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state >> 11
    }

    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(1, bound))) }

    /// Splits `bytes` into chunks of 1...`largest` bytes.
    mutating func chunks(_ bytes: [UInt8], largest: Int) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + 1 + below(largest))
            out.append(Array(bytes[offset..<end]))
            offset = end
        }
        return out
    }
}

/// Where the project's detector corpora are (the harness runs from the repository root).
enum FuzzFiles {
    static var corpora: String {
        if let path = ProcessInfo.processInfo.environment["SLUICE_CORPORA"] { return path }
        var path = #filePath
        for _ in 0..<4 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/corpora"
    }
}
