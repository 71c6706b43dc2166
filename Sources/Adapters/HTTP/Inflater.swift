import CZlib

/// Streaming gzip / deflate decompression for response bodies that must be scanned. Bounded:
/// the caller says how much output one input chunk may produce (a "zip bomb" is an error, not an
/// allocation), and the total is capped.
package final class Inflater {
    package enum Format: Sendable { case gzip, deflate }

    package struct Failure: Error, Sendable, CustomStringConvertible {
        package enum Code: String, Sendable { case initFailed = "inflate_init", corrupt = "inflate_corrupt", tooLarge = "inflate_too_large", truncated = "inflate_truncated" }
        package var code: Code
        package var description: String { "decompression failed (\(code.rawValue))" }
    }

    private var stream = z_stream()
    private var initialised = false
    private var ended = false
    private let format: Format
    /// `deflate` is zlib-wrapped per RFC 9110, but some servers send raw deflate: decided on the
    /// first bytes.
    private var formatDecided = false
    package let maximumOutput: Int
    package private(set) var totalOutput = 0

    package init(format: Format, maximumOutput: Int = 1 << 30) {
        self.format = format
        self.maximumOutput = maximumOutput
    }

    deinit {
        if initialised { inflateEnd(&stream) }
    }

    private func start(_ first: UInt8?) throws(Failure) {
        let windowBits: Int32
        switch format {
        case .gzip: windowBits = 15 + 16
        case .deflate:
            // zlib header: CMF with method 8 and (CMF*256+FLG) % 31 == 0; else raw deflate.
            windowBits = (first.map { $0 & 0x0f == 8 } ?? true) ? 15 : -15
        }
        guard sluice_inflate_init(&stream, windowBits) == Z_OK else { throw Failure(code: .initFailed) }
        initialised = true
    }

    /// Decompresses `input`, handing output to `sink` in pieces of at most 64 KiB.
    package func write(_ input: UnsafeRawBufferPointer, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !input.isEmpty else { return }
        if !initialised { try start(input.first) }
        if ended {
            // Bytes after the end of the compressed stream (gzip members can be concatenated).
            guard format == .gzip else { return }
            inflateReset(&stream)
            ended = false
        }
        var output = [UInt8](repeating: 0, count: 64 * 1024)
        var offset = 0
        while true {
            var outputFull = false
            let status: Int32 = output.withUnsafeMutableBytes { out in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.advanced(by: offset).assumingMemoryBound(to: Bytef.self))
                // At most 1 GiB per call (chunks are far smaller): never a trapping conversion.
                stream.avail_in = UInt32(min(input.count - offset, 1 << 30))
                stream.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = UInt32(out.count)
                let status = inflate(&stream, Z_NO_FLUSH)
                offset += min(input.count - offset, 1 << 30) - Int(stream.avail_in)
                outputFull = stream.avail_out == 0
                return status
            }
            let produced = output.count - Int(stream.avail_out)
            totalOutput += produced
            guard totalOutput <= maximumOutput else { throw Failure(code: .tooLarge) }
            if produced > 0 { try output.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[..<produced])) } }
            switch status {
            case Z_STREAM_END:
                ended = true
                // Concatenated gzip members: go on with the next one.
                guard offset < input.count, format == .gzip else { return }
                inflateReset(&stream)
                ended = false
            case Z_OK, Z_BUF_ERROR:
                if offset >= input.count && !outputFull { return }
                if status == Z_BUF_ERROR && produced == 0 { return }
            default:
                throw Failure(code: .corrupt)
            }
        }
    }

    /// At the end of the body: a stream that did not end is truncated.
    package func finish() throws(Failure) {
        guard initialised else { return }
        guard ended else { throw Failure(code: .truncated) }
    }
}
