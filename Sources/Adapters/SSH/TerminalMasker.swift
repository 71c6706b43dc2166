import MaskEngine

/// Masks terminal output whose values may be interrupted by escape sequences:
/// `4111\e[31m1111\e[0m11111111` is a card number on screen, but not in the raw bytes.
///
/// The text the terminal shows (the stream without its escape sequences: CSI `ESC [ … final`,
/// OSC `ESC ] … BEL|ESC \`, DCS/SOS/PM/APC strings, and two-byte `ESC x`) goes through one
/// ``StreamMasker``; every escape sequence is masked on its own with a ``ValueMasker`` (so a value
/// hidden in a title or in parameters is masked as before). The escape sequences are then put
/// back into the masked text where they were: exactly, outside masked values; an escape sequence
/// inside a masked value moves to just after that value's mask (the value's characters are masked
/// and the colours it carried apply from there on).
///
/// Safety does not depend on where the escapes land: the text bytes out are exactly the stream
/// masker's output for the text view, and the escape bytes out are each sequence masked on its
/// own. Chunk invariance: text is written to the stream masker in pieces that end at escape
/// sequences and at every 4,096 bytes of text (positions that depend on content only), so
/// the output does not depend on how the input was split. An idle ``flush(_:)`` breaks that by
/// design, like ``StreamMasker/flush(_:)``.
package final class TerminalMasker {
    enum State {
        case text
        /// After ESC, with any intermediate bytes (0x20–0x2F) seen.
        case escape
        case csi
        /// OSC, DCS, SOS, PM, APC: until BEL or ESC \.
        case string
        case stringEscape
    }

    private let masker: StreamMasker
    private let values: ValueMasker
    private var state = State.text
    private var sequence: [UInt8] = []
    /// Text not yet written to the stream masker (up to the next piece boundary).
    private var pendingText: [UInt8] = []
    /// Text written to the stream masker and not yet released: input positions `released..<written`.
    private var window: [UInt8] = []
    private var written = 0
    private var released = 0
    /// Escape sequences (already masked) waiting for the text before them to be released.
    private var escapes: [(position: Int, bytes: [UInt8])] = []
    private var escapeBytes = 0
    private var valueCounts: [String: Int] = [:]

    /// Longest escape sequence kept whole; longer ones are cut here (each part masked on its own).
    package static let maximumSequence = 4096
    /// Text piece size: pieces end at multiples of this many text bytes.
    package static let pieceSize = 4096
    /// Queued escape bytes beyond this force a flush of the held text.
    package static let maximumQueuedEscapes = 64 * 1024

    package init(engine: MaskingEngine) throws {
        masker = try engine.makeStreamMasker()
        values = engine.makeValueMasker()
    }

    /// Text bytes written and not yet released, plus text and escapes waiting.
    package var heldBack: Int { masker.heldBack + pendingText.count + escapeBytes + sequence.count }

    /// Matches masked so far, per detector id (text and escape sequences).
    package var counts: [String: Int] {
        masker.counts.merging(valueCounts, uniquingKeysWith: +)
    }

    /// Masks `bytes`; passes what may be sent now to `sink`.
    package func write(_ bytes: UnsafeRawBufferPointer, _ sink: ([UInt8]) -> Void) throws {
        var index = 0
        while index < bytes.count {
            if state == .text {
                // Text up to the next escape goes in bulk, cut where a byte at a time would have
                // been (every `pieceSize` bytes of text).
                let escape = bytes[index...].firstIndex(of: 0x1b) ?? bytes.count
                while index < escape {
                    let room = Self.pieceSize - (written + pendingText.count) % Self.pieceSize
                    let take = min(room, escape - index)
                    pendingText.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<(index + take)]))
                    index += take
                    if (written + pendingText.count) % Self.pieceSize == 0 { try writePending(sink) }
                }
                guard index < bytes.count else { return }
            }
            let byte = bytes[index]
            index += 1
            switch state {
            case .text:
                // An escape (other text was taken above).
                sequence = [byte]
                state = .escape
            case .escape:
                sequence.append(byte)
                switch byte {
                case UInt8(ascii: "["): state = .csi
                case UInt8(ascii: "]"), UInt8(ascii: "P"), UInt8(ascii: "X"), UInt8(ascii: "^"), UInt8(ascii: "_"): state = .string
                case 0x20...0x2f: if sequence.count >= Self.maximumSequence { try endSequence(sink) }
                default: try endSequence(sink)
                }
            case .csi:
                sequence.append(byte)
                if !(0x20...0x3f).contains(byte) || sequence.count >= Self.maximumSequence { try endSequence(sink) }
            case .string, .stringEscape:
                sequence.append(byte)
                if byte == 0x07 || (state == .stringEscape && byte == UInt8(ascii: "\\")) || sequence.count >= Self.maximumSequence {
                    try endSequence(sink)
                } else {
                    state = byte == 0x1b ? .stringEscape : .string
                }
            }
        }
    }

    /// Convenience: the output of this write.
    package func write(_ bytes: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        try bytes.withUnsafeBytes { try write($0) { out.append(contentsOf: $0) } }
        return out
    }

    /// Releases everything held, as if the stream ended here, without ending it (idle output).
    package func flush(_ sink: ([UInt8]) -> Void) throws {
        try writePending(sink)
        var out: [UInt8] = []
        try masker.flush { out.append(contentsOf: $0) }
        place(out, sink)
    }

    /// Ends the stream: an unfinished escape sequence is masked and sent as it is.
    package func finish(_ sink: ([UInt8]) -> Void) throws {
        if !sequence.isEmpty { try endSequence(sink) }
        try writePending(sink)
        var out: [UInt8] = []
        try masker.finish { out.append(contentsOf: $0) }
        place(out, sink)
    }

    // MARK: - Internals

    private func endSequence(_ sink: ([UInt8]) -> Void) throws {
        let raw = sequence
        sequence = []
        state = .text
        try writePending(sink)
        let masked: [UInt8]
        switch try values.mask(raw) {
        case .unchanged: masked = raw
        case .masked(let bytes): masked = bytes
        case .null: masked = []
        }
        if values.matchedLast { valueCounts.merge(values.lastCounts, uniquingKeysWith: +) }
        escapes.append((written, masked))
        escapeBytes += masked.count
        if released == written {
            // Nothing is held before it: it goes out now.
            place([], sink)
        } else if escapeBytes > Self.maximumQueuedEscapes {
            var out: [UInt8] = []
            try masker.flush { out.append(contentsOf: $0) }
            place(out, sink)
        }
    }

    private func writePending(_ sink: ([UInt8]) -> Void) throws {
        guard !pendingText.isEmpty else { return }
        let piece = pendingText
        pendingText.removeAll(keepingCapacity: true)
        window.append(contentsOf: piece)
        written += piece.count
        var out: [UInt8] = []
        try piece.withUnsafeBytes { raw in try masker.write(raw) { out.append(contentsOf: $0) } }
        place(out, sink)
    }

    /// `out` is the masked form of the text `released..<cursor`; sends it with the escapes that
    /// belong in it, and moves `released` to the stream masker's cursor.
    private func place(_ out: [UInt8], _ sink: ([UInt8]) -> Void) {
        let cursor = masker.bytesIn - masker.heldBack
        let input = window.prefix(max(0, cursor - released))
        var prefix = 0
        let limit = min(out.count, input.count)
        while prefix < limit, out[prefix] == input[input.startIndex + prefix] { prefix += 1 }
        var suffix = 0
        while suffix < limit - prefix, out[out.count - 1 - suffix] == input[input.endIndex - 1 - suffix] { suffix += 1 }

        var result: [UInt8] = []
        result.reserveCapacity(out.count)
        var emitted = 0
        var taken = 0
        for escape in escapes {
            guard escape.position <= cursor else { break }
            let offset = escape.position - released
            let at: Int
            if offset <= prefix { at = offset }
            else if input.count - offset <= suffix { at = out.count - (input.count - offset) }
            else { at = out.count - suffix }
            let target = max(emitted, min(at, out.count))
            result.append(contentsOf: out[emitted..<target])
            emitted = target
            result.append(contentsOf: escape.bytes)
            escapeBytes -= escape.bytes.count
            taken += 1
        }
        result.append(contentsOf: out[emitted...])
        escapes.removeFirst(taken)
        window.removeFirst(min(window.count, max(0, cursor - released)))
        released = max(released, cursor)
        if !result.isEmpty { sink(result) }
    }
}
