// swift-tools-version: 6.1
import PackageDescription

// A path dependency's identity is its folder's name, whatever the checkout is called.
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "main"

// Benchmarks of the masking engine, kept out of the main package so its dependencies do not
// slow the project's build. `swift package benchmark` runs the ordo-one benchmarks (time and
// malloc counts); `compare-engines.sh` prints the side-by-side table of docs/benchmarks.md.
let package = Package(
    name: "SluiceBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
    ],
    targets: [
        .executableTarget(
            name: "MaskEngineBenchmarks",
            dependencies: [
                .product(name: "MaskEngine", package: root),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/MaskEngineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "CompareEngines",
            dependencies: [
                .product(name: "MaskEngine", package: root),
            ],
            path: "Sources/CompareEngines"
        ),
        // store-compare.sh: events per second through the record writer into a store.
        .executableTarget(
            name: "StoreBench",
            dependencies: [
                .product(name: "Gateway", package: root),
                .product(name: "Adapters", package: root),
            ],
            path: "Sources/StoreBench"
        ),
        // The floor of pg-compare.sh and http-compare.sh: a SwiftNIO relay that does nothing.
        .executableTarget(
            name: "NIORelay",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/NIORelay"
        ),
    ],
    swiftLanguageModes: [.v6]
)
