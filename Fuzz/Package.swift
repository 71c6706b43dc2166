// swift-tools-version: 6.1
import PackageDescription

// A path dependency's identity is its folder's name, whatever the checkout is called.
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "main"

// libFuzzer harnesses (docs/fuzzing.md), kept out of the main package: they are built with
// `-sanitize=fuzzer,address -parse-as-library`, which the main package's products cannot be.
// SwiftPM renames an executable's entry point (`SluiceFuzz_main`); the harness defines it and
// hands control to libFuzzer's driver (`CFuzzDriver`). `scripts/fuzz.sh` builds and runs them; `make fuzz` runs each
// for a while, CI for 20 seconds each.
let package = Package(
    name: "SluiceFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
    ],
    targets: [
        .target(name: "CFuzzDriver", path: "Sources/CFuzzDriver"),
        .executableTarget(
            name: "SluiceFuzz",
            dependencies: [
                "CFuzzDriver",
                .product(name: "Gateway", package: root),
                .product(name: "Adapters", package: root),
                .product(name: "MaskEngine", package: root),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/SluiceFuzz"
        ),
    ],
    swiftLanguageModes: [.v6]
)
