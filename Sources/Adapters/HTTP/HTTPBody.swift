import MaskEngine
import NIOCore

/// An HTTP(S) base URL of a connection (`target: https://host:port/base`).
public struct HTTPTarget: Sendable, Equatable {
    public var tls: Bool
    public var host: String
    public var port: Int
    /// Path prefix every request gets (no trailing slash; empty for none).
    public var basePath: String

    public init?(_ text: String) {
        let rest: Substring
        if text.hasPrefix("http://") {
            tls = false
            rest = text.dropFirst(7)
        } else if text.hasPrefix("https://") {
            tls = true
            rest = text.dropFirst(8)
        } else {
            return nil
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        var base = String(rest[slash...])
        while base.hasSuffix("/") { base.removeLast() }
        basePath = base
        if let address = HostPort(String(authority)) {
            host = address.host
            port = address.port
        } else {
            guard !authority.isEmpty, !authority.contains(":"), !authority.contains("@") else { return nil }
            host = String(authority)
            port = tls ? 443 : 80
        }
        guard !host.isEmpty else { return nil }
    }

    /// The `Host` header value for this target.
    public var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return (tls && port == 443) || (!tls && port == 80) ? name : "\(name):\(port)"
    }
}

/// The body of one response on its way to the client: decoded (gzip/deflate) when it is scanned,
/// masked per the user's profile, and recorded — masked — up to a cap. Fail closed: any error
/// (corrupt coding, engine failure, oversize) throws and the caller ends the response.
public final class HTTPBodyTransformer {
    private let inflater: Inflater?
    private let masker: StreamMasker?
    /// For users who see data unmasked: the record still gets a masked copy.
    private let recordMasker: StreamMasker?
    private let record: (SessionEvent) -> Void
    private let recordCap: Int
    public private(set) var recorded = 0
    public private(set) var recordCut = false
    public private(set) var bytesIn = 0
    public private(set) var bytesOut = 0
    private let scanning: Bool

    /// - Parameters:
    ///   - plan: what the response head said about the body.
    ///   - choice: the user's masking; `.unmasked` passes bytes through.
    ///   - recordingEngine: masks the recorded copy for unmasked users (nil: record nothing then).
    ///   - kind: `.output` for responses, `.input` for request bodies.
    public init(plan: HTTPResponsePlan, choice: MaskingChoice, recordingEngine: MaskingEngine?, recordCap: Int,
                kind: SessionEvent.Kind = .output, record: @escaping (SessionEvent) -> Void) throws {
        scanning = plan.scan
        switch plan.coding {
        case .identity: inflater = nil
        case .gzip: inflater = Inflater(format: .gzip)
        case .deflate: inflater = Inflater(format: .deflate)
        }
        if plan.scan, case .masked(let engine, _) = choice {
            masker = try engine.makeStreamMasker()
            recordMasker = nil
        } else {
            masker = nil
            recordMasker = plan.scan ? try recordingEngine?.makeStreamMasker() : nil
        }
        self.recordCap = recordCap
        let eventKind = kind
        self.record = { event in record(SessionEvent(eventKind, event.data)) }
    }

    /// Bytes from upstream in; bytes for the client out (possibly fewer: the masker holds back
    /// what could still be part of a match).
    public func write(_ bytes: ByteBuffer) throws -> ByteBuffer? {
        bytesIn += bytes.readableBytes
        guard scanning else {
            bytesOut += bytes.readableBytes
            return bytes
        }
        var out = ByteBuffer()
        try bytes.withUnsafeReadableBytes { raw in
            if let inflater {
                try inflater.write(raw) { try self.scan($0, into: &out) }
            } else {
                try scan(raw, into: &out)
            }
        }
        return out.readableBytes > 0 ? out : nil
    }

    /// The end of the body: what the masker still held.
    public func finish() throws -> ByteBuffer? {
        try inflater?.finish()
        var out = ByteBuffer()
        if let masker {
            try masker.finish { chunk in
                out.writeBytes(chunk)
                self.keep(chunk)
            }
        } else if let recordMasker {
            try recordMasker.finish { self.keep($0) }
        }
        bytesOut += out.readableBytes
        return out.readableBytes > 0 ? out : nil
    }

    /// Detector counts of the client masker (or the recording one), for metrics.
    public var counts: [String: Int] { masker?.counts ?? recordMasker?.counts ?? [:] }

    private func scan(_ raw: UnsafeRawBufferPointer, into out: inout ByteBuffer) throws {
        if let masker {
            let before = out.readableBytes
            try masker.write(raw) { chunk in out.writeBytes(chunk) }
            let produced = out.readableBytes - before
            bytesOut += produced
            if produced > 0 { keep(out.readableBytesView.suffix(produced)) }
        } else {
            out.writeBytes(raw)
            bytesOut += raw.count
            try recordMasker?.write(raw) { self.keep($0) }
        }
    }

    /// Records masked bytes up to the cap (binary bodies are recorded by size only).
    private func keep<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard scanning, !bytes.isEmpty else { return }
        guard recorded < recordCap else {
            recordCut = true
            return
        }
        let part = Array(bytes.prefix(recordCap - recorded))
        recorded += part.count
        if part.count < bytes.count { recordCut = true }
        record(SessionEvent(.output, part))
    }
}
