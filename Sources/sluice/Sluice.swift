import ArgumentParser
import Foundation
import Gateway

@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A data-governance gateway: authenticates, inspects, masks and records.",
        subcommands: [Serve.self, Login.self, Logout.self, Whoami.self, Connect.self, Connections.self, Token.self, Mask.self,
                      Detectors.self, Sessions.self, Reviews.self, Access.self, Audit.self, Reload.self, KubeconfigCommand.self, SSHCA.self,
                      StoreCommand.self]
    )

    static func main() async {
        // Run as ssh's askpass helper by `sluice connect`: answer with the token, nothing else.
        await AskPass.answerIfAsked()
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

struct Mask: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mask",
        abstract: "Mask stdin to stdout as it streams (the engine as a Unix filter).")

    @Option(help: "Masking profile: default, redact, partial, hash.")
    var profile = "default"

    @Option(help: "Folder of detector YAML files (repeatable). Default: the project's corpora/.")
    var corpora: [String] = []

    @Option(help: "Write a JSON report of matches per detector (counts only, never values) to FILE.")
    var report: String?

    @Option(help: "Read size in bytes.")
    var chunkSize = 65536

    func run() throws {
        let setup = MaskingSetup(corpora: corpora.isEmpty ? nil : corpora)
        let engine: MaskingEngine
        do {
            engine = try setup.engine(profile: profile)
        } catch {
            FileHandle.standardError.write(Data("sluice mask: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let masker = try engine.makeStreamMasker()
        let output = OutputBuffer(fd: 1)
        var input = [UInt8](repeating: 0, count: max(1, chunkSize))
        let start = Date()
        do {
            while true {
                let count = input.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if count < 0 {
                    if errno == EINTR { continue }
                    throw MaskingError(code: .engine, reason: "read from stdin failed (errno \(errno))")
                }
                if count == 0 { break }
                try input.withUnsafeBytes { raw in
                    try masker.write(UnsafeRawBufferPointer(rebasing: raw[0..<count])) { output.append($0) }
                }
                output.flushIfLarge()
            }
            try masker.finish { output.append($0) }
            output.flush()
        } catch {
            // Fail closed: what could not be scanned is not written.
            output.discard()
            FileHandle.standardError.write(Data("sluice mask: \(error)\n".utf8))
            throw ExitCode(3)
        }
        if let report {
            let document: [String: Any] = [
                "profile": profile,
                "bytes_in": masker.bytesIn,
                "bytes_out": output.written,
                "seconds": Date().timeIntervalSince(start),
                "matches": masker.counts,
            ]
            let data = try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: report))
        }
    }
}

/// Buffers output and writes it with `write(2)`, retrying short writes.
final class OutputBuffer {
    let fd: Int32
    private var buffer: [UInt8] = []
    private(set) var written = 0

    init(fd: Int32) {
        self.fd = fd
        buffer.reserveCapacity(1 << 17)
    }

    func append(_ bytes: UnsafeRawBufferPointer) { buffer.append(contentsOf: bytes) }

    func flushIfLarge() { if buffer.count >= 1 << 16 { flush() } }

    func discard() { buffer.removeAll() }

    func flush() {
        var offset = 0
        buffer.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
        written += offset
        buffer.removeAll(keepingCapacity: true)
    }
}

struct Detectors: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detectors",
        abstract: "Work with detector corpora.",
        subcommands: [Test.self])

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "test",
            abstract: "Run every detector's examples; exit non-zero on any failure.")

        @Argument(help: "Folder of detector YAML files. Default: the project's corpora/.")
        var directory: String?

        func run() throws {
            let setup = MaskingSetup(corpora: directory.map { [$0] })
            let results: [DetectorTestResult]
            do {
                results = try DetectorSelfTest.run(try setup.loadDetectors())
            } catch {
                FileHandle.standardError.write(Data("sluice detectors test: \(error)\n".utf8))
                throw ExitCode(2)
            }
            let idWidth = max(8, results.map(\.id.count).max() ?? 0)
            func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
            print(pad("detector", idWidth) + "  " + pad("category", 8) + "  match   no_match  result")
            for result in results {
                print(pad(result.id, idWidth) + "  " + pad(result.category, 8) + "  "
                      + pad("\(result.matchPassed)/\(result.matchTotal)", 6) + "  " + pad("\(result.noMatchPassed)/\(result.noMatchTotal)", 8)
                      + "  " + (result.passed ? "ok" : "FAIL"))
                for failure in result.failures { print("    " + failure) }
            }
            let failed = results.filter { !$0.passed }.count
            print("\(results.count - failed) passed, \(failed) failed")
            if failed > 0 { throw ExitCode(1) }
        }
    }
}
