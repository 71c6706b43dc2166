import Foundation
import MaskEngine
import NIOCore

/// An HTTP(S) base URL of a connection (`target: https://host:port/base`).
package struct HTTPTarget: Sendable, Equatable {
    package var tls: Bool
    package var host: String
    package var port: Int
    /// Path prefix every request gets (no trailing slash; empty for none).
    package var basePath: String

    package init?(_ text: String) {
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
    package var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return (tls && port == 443) || (!tls && port == 80) ? name : "\(name):\(port)"
    }
}

/// A whole-document rewrite applied before the stream masker (Kubernetes Secrets: their values
/// are base64, where no detector can see them). The body is buffered up to `maxBytes` — whole, or
/// line by line for newline-delimited streams such as watch events.
package struct HTTPDocumentFilter {
    package var maxBytes: Int
    package var lineDelimited: Bool
    package var transform: ([UInt8]) throws -> [UInt8]

    package init(maxBytes: Int, lineDelimited: Bool, transform: @escaping ([UInt8]) throws -> [UInt8]) {
        self.maxBytes = maxBytes
        self.lineDelimited = lineDelimited
        self.transform = transform
    }
}

package struct HTTPBodyError: Error, Sendable, CustomStringConvertible {
    package var code: String
    package var description: String { "body: \(code)" }
}

/// The body of one response on its way to the client: decoded (gzip/deflate) when it is scanned,
/// optionally rewritten as a document, masked per the user's profile, and recorded — masked — up
/// to a cap. Fail closed: any error (corrupt coding, engine failure, oversize) throws and the
/// caller ends the response.
package final class HTTPBodyTransformer {
    private let inflater: Inflater?
    private let masker: StreamMasker?
    /// For users who see data unmasked: the record still gets a masked copy.
    private let recordMasker: StreamMasker?
    private let record: (SessionEvent) -> Void
    /// The record's cap for this body (``RecordBudget``).
    private var budget: RecordBudget
    /// Masked bytes kept for the record and not written yet: one event per body (or per
    /// ``recordChunk`` of a long one), not one per chunk that went by.
    private var recordPending: [UInt8] = []
    /// A long body's record is written in events of this many bytes, so the live view follows.
    package static let recordChunk = 16 * 1024
    private let kind: SessionEvent.Kind
    /// Where the maskers came from, and go back to (nil: they are dropped with the body).
    private let pool: HTTPMaskerPool?
    /// Whether the record of this body was cut at the cap.
    package var recordCut: Bool { budget.cut }
    package private(set) var bytesIn = 0
    package private(set) var bytesOut = 0
    private let scanning: Bool
    /// The document stage: what the client gets, and (for unmasked users) what the record gets.
    private let clientFilter: HTTPDocumentFilter?
    private let recordFilter: HTTPDocumentFilter?
    private var document: [UInt8] = []
    private var documentMode: Bool { clientFilter != nil || recordFilter != nil }

    /// What the body turned out to be, decided on its first bytes.
    package enum Mode: Sendable, Equatable {
        /// Nothing seen yet (the caller holds the response head until this changes).
        case pending
        /// Scanned: normalised, masked, recorded masked.
        case text
        /// Passed byte for byte, recorded by size (a binary body of a pass-through type, or one
        /// an unmasked user sees).
        case raw
    }
    package private(set) var mode: Mode
    private let passThrough: Bool
    /// Normalises what is scanned (the client's copy when masked; else only the record's).
    private let normaliser = TextNormaliser()
    private let recordNormaliser = TextNormaliser()
    /// The most bytes sniffed to decide text or binary.
    package static let sniffBytes = 1024

    /// - Parameters:
    ///   - plan: what the response head said about the body.
    ///   - choice: the user's masking; `.unmasked` passes bytes through.
    ///   - recordingEngine: masks the recorded copy for unmasked users (nil: record nothing then).
    ///   - kind: `.output` for responses, `.input` for request bodies.
    ///   - documentFilter: a document rewrite made with an engine (the user's, or the recording one).
    ///   - pool: the connection's maskers (taken from it, given back by ``recycle()``).
    package init(plan: HTTPResponsePlan, choice: MaskingChoice, recordingEngine: MaskingEngine?, recordCap: Int,
                kind: SessionEvent.Kind = .output, documentFilter: ((MaskingEngine) -> HTTPDocumentFilter?)? = nil,
                pool: HTTPMaskerPool? = nil, record: @escaping (SessionEvent) -> Void) throws {
        self.pool = pool
        scanning = plan.scan
        passThrough = plan.passThrough
        mode = plan.scan ? .pending : .raw
        switch plan.coding {
        case .identity: inflater = nil
        case .gzip: inflater = Inflater(format: .gzip)
        case .deflate: inflater = Inflater(format: .deflate)
        }
        if plan.scan, case .masked(let engine, _) = choice {
            masker = try pool?.streamMasker(for: engine) ?? engine.makeStreamMasker()
            recordMasker = nil
            clientFilter = documentFilter?(engine)
            recordFilter = nil
        } else {
            masker = nil
            recordMasker = plan.scan ? try recordingEngine.map { try pool?.streamMasker(for: $0) ?? $0.makeStreamMasker() } : nil
            clientFilter = nil
            recordFilter = plan.scan ? recordingEngine.flatMap { engine in documentFilter?(engine) } : nil
        }
        budget = RecordBudget(cap: recordCap)
        self.kind = kind
        self.record = record
    }

    /// Writes what is kept for the record and not written yet (the end of the body, or an
    /// exchange that ends before it: the record keeps what the client got).
    package func flushRecord() {
        if let event = takeRecord() { record(event) }
    }

    /// What is kept for the record and not written yet, as one event the caller records (the
    /// exchange's end records it with its closing marker in one append).
    package func takeRecord() -> SessionEvent? {
        guard !recordPending.isEmpty else { return nil }
        defer { recordPending = [] }
        return SessionEvent(kind, recordPending)
    }

    /// Gives the maskers back to the connection's pool once the body is done with (after
    /// ``finish()``, or when the exchange is abandoned); the transformer is not used afterwards.
    package func recycle() {
        flushRecord()
        guard let pool else { return }
        if let masker { pool.giveBack(masker) }
        if let recordMasker { pool.giveBack(recordMasker) }
    }

    /// Bytes from upstream in; bytes for the client out (possibly fewer: the masker holds back
    /// what could still be part of a match).
    package func write(_ bytes: ByteBuffer) throws -> ByteBuffer? {
        bytesIn += bytes.readableBytes
        if mode == .raw {
            bytesOut += bytes.readableBytes
            return bytes
        }
        var out = ByteBuffer()
        try bytes.withUnsafeReadableBytes { raw in
            if let inflater {
                try inflater.write(raw) { try self.ingest($0, into: &out) }
            } else {
                try ingest(raw, into: &out)
            }
        }
        return out.readableBytes > 0 ? out : nil
    }

    /// The end of the body: what the masker still held. The body's record is left pending for
    /// ``takeRecord()``.
    package func finish() throws -> ByteBuffer? {
        try inflater?.finish()
        var out = ByteBuffer()
        if mode == .pending { mode = .text }   // an empty body
        guard mode == .text else { return nil }
        if masker != nil {
            try normaliser.finish { try self.stage($0, into: &out) }
        }
        if documentMode, !document.isEmpty {
            let rest = document
            document = []
            try emitDocument(rest, into: &out)
        }
        if masker == nil, let recordMasker {
            try recordNormaliser.finish { tail in try recordMasker.write(tail) { self.keep($0) } }
        }
        if let masker {
            let before = out.readableBytes
            try masker.finish { chunk in out.writeBytes(chunk) }
            bytesOut += out.readableBytes - before
            if out.readableBytes > before { keep(out.readableBytesView.suffix(out.readableBytes - before)) }
        } else if let recordMasker {
            try recordMasker.finish { self.keep($0) }
        }
        // The body's record stays pending: ``takeRecord()`` (or ``recycle()``) writes it.
        return out.readableBytes > 0 ? out : nil
    }

    /// Detector counts of the client masker (or the recording one), for metrics.
    package var counts: [String: Int] { masker?.counts ?? recordMasker?.counts ?? [:] }

    /// Decoded body bytes: sniffed (first bytes), checked, normalised, then staged.
    private func ingest(_ raw: UnsafeRawBufferPointer, into out: inout ByteBuffer) throws {
        guard !raw.isEmpty else { return }
        if mode == .pending {
            let binary = Self.looksBinary(UnsafeRawBufferPointer(rebasing: raw.prefix(Self.sniffBytes)))
            if binary && (passThrough || masker == nil) {
                // Pass-through types (identity coding only) and unmasked users: bytes as they came.
                mode = .raw
                out.writeBytes(raw)
                bytesOut += raw.count
                return
            }
            if binary { throw HTTPBodyError(code: "binary_body") }   // masked users: 502 (or a cut, when the head went out)
            mode = .text
        }
        if mode == .raw {
            out.writeBytes(raw)
            bytesOut += raw.count
            return
        }
        if masker != nil {
            // Text that turns binary later (a NUL byte: UTF-16 or a binary tail) is not scanned as text.
            if let base = raw.baseAddress, memchr(base, 0, raw.count) != nil { throw HTTPBodyError(code: "binary_body") }
            try normaliser.write(raw) { try self.stage($0, into: &out) }
        } else {
            try stage(raw, into: &out)
        }
    }

    /// Binary, for the gateway's purpose: a UTF-16/UTF-32 byte-order mark, a NUL byte, or more
    /// than a tenth of control bytes other than tab, line feed, form feed, carriage return and escape.
    package static func looksBinary(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !bytes.isEmpty else { return false }
        if bytes.count >= 2, (bytes[0] == 0xFF && bytes[1] == 0xFE) || (bytes[0] == 0xFE && bytes[1] == 0xFF) { return true }
        var controls = 0
        for byte in bytes {
            if byte == 0 { return true }
            if byte < 0x20, byte != 9, byte != 10, byte != 12, byte != 13, byte != 27 { controls += 1 }
            if byte == 0x7f { controls += 1 }
        }
        return controls * 10 > bytes.count
    }

    /// The document stage: buffer whole documents (or lines), rewrite, then scan.
    private func stage(_ raw: UnsafeRawBufferPointer, into out: inout ByteBuffer) throws {
        guard documentMode else {
            try scan(raw, record: nil, into: &out)
            return
        }
        let filter = (clientFilter ?? recordFilter)!
        document.append(contentsOf: raw)
        if filter.lineDelimited {
            while let newline = document.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(document[...newline])
                document.removeFirst(newline + 1)
                try emitDocument(line, into: &out)
            }
        }
        guard document.count <= filter.maxBytes else { throw HTTPBodyError(code: "document_too_large") }
    }

    /// A whole document (or line): for masked users it is scanned first — so PII anywhere in it
    /// is masked — and then rewritten (the rewrite fixes up what scanning cannot see, and leaves
    /// the document well-formed); for unmasked users the client gets it as it is and the record
    /// gets the rewritten copy, scanned.
    private func emitDocument(_ bytes: [UInt8], into out: inout ByteBuffer) throws {
        if let masker, let clientFilter {
            var scanned: [UInt8] = []
            try bytes.withUnsafeBytes { try masker.write($0) { scanned.append(contentsOf: $0) } }
            try masker.flush { scanned.append(contentsOf: $0) }
            let client = try clientFilter.transform(scanned)
            out.writeBytes(client)
            bytesOut += client.count
            keep(client)
            return
        }
        let recorded = try recordFilter?.transform(bytes) ?? bytes
        try bytes.withUnsafeBytes { clientBytes in
            try recorded.withUnsafeBytes { try scan(clientBytes, record: $0, into: &out) }
        }
    }

    private func scan(_ raw: UnsafeRawBufferPointer, record override: UnsafeRawBufferPointer?, into out: inout ByteBuffer) throws {
        if let masker {
            let before = out.readableBytes
            try masker.write(raw) { chunk in out.writeBytes(chunk) }
            let produced = out.readableBytes - before
            bytesOut += produced
            if produced > 0 { keep(out.readableBytesView.suffix(produced)) }
        } else {
            out.writeBytes(raw)
            bytesOut += raw.count
            if let recordMasker {
                try recordNormaliser.write(override ?? raw) { normalised in try recordMasker.write(normalised) { self.keep($0) } }
            }
        }
    }

    /// Records masked bytes up to the cap (binary bodies are recorded by size only).
    private func keep<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard scanning, mode == .text, !bytes.isEmpty else { return }
        budget.append(bytes, to: &recordPending)
        if recordPending.count >= Self.recordChunk { flushRecord() }
    }
}
