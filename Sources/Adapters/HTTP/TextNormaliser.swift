/// Rewrites text so that values hidden by encoding tricks reach the detectors in plain form,
/// streaming (chunks of any size in; the output does not depend on the chunking):
///
/// - JSON / JavaScript string escapes `\uXXXX` (surrogate pairs joined) and `\/` are decoded to
///   UTF-8; escapes of `"`, `\` and control characters stay escaped, so a JSON document stays valid
///   JSON with the same meaning. `\\` is kept whole (what follows it is not an escape).
/// - Fullwidth ASCII forms (U+FF01–U+FF5E) become ASCII, and every Unicode decimal digit
///   (Arabic-Indic, Devanagari, mathematical…) becomes its ASCII digit.
/// - Invisible format characters are dropped: U+00AD, U+034F, U+061C, U+180E, U+200B–U+200F,
///   U+202A–U+202E, U+2060–U+2064, U+2066–U+206F, U+FE00–U+FE0F, U+FEFF.
///
/// The rewritten text is what the client of a masked connection receives (the gateway sends the
/// normalised form rather than mapping masks back onto the original bytes). Bytes that are not
/// valid UTF-8 pass unchanged. Holds back at most 11 bytes between writes (an unfinished escape
/// pair or UTF-8 sequence).
package final class TextNormaliser {
    private var pending: [UInt8] = []

    package init() {}

    /// Normalises `input`, handing output to `sink` (possibly in several pieces).
    package func write(_ input: UnsafeRawBufferPointer, _ sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        guard !input.isEmpty else { return }
        if pending.isEmpty, !Self.needsWork(input) {
            try sink(input)
            return
        }
        var bytes = pending
        bytes.append(contentsOf: input)
        pending = []
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        let consumed = Self.process(bytes, atEnd: false, into: &out)
        pending = Array(bytes[consumed...])
        if !out.isEmpty { try out.withUnsafeBytes { try sink($0) } }
    }

    /// The end of the text: what was held back goes out as it is (an unfinished escape is not one).
    package func finish(_ sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        guard !pending.isEmpty else { return }
        var out: [UInt8] = []
        _ = Self.process(pending, atEnd: true, into: &out)
        pending = []
        try out.withUnsafeBytes { try sink($0) }
    }

    /// A whole value at once (header values).
    package static func normalise(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        _ = process(bytes, atEnd: true, into: &out)
        return out
    }

    /// Whether a chunk holds a backslash or a non-ASCII byte (eight bytes at a time).
    static func needsWork(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let count = bytes.count
        var index = 0
        let high: UInt64 = 0x8080_8080_8080_8080
        let ones: UInt64 = 0x0101_0101_0101_0101
        let backslashes: UInt64 = 0x5C5C_5C5C_5C5C_5C5C
        while index + 8 <= count {
            let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            if word & high != 0 { return true }
            let x = word ^ backslashes
            if (x &- ones) & ~x & high != 0 { return true }
            index += 8
        }
        while index < count {
            let byte = bytes[index]
            if byte >= 0x80 || byte == 0x5C { return true }
            index += 1
        }
        return false
    }

    /// Normalises `bytes` into `out`; returns how many bytes were consumed (the rest is an
    /// unfinished sequence, kept for the next write unless `atEnd`).
    static func process(_ bytes: [UInt8], atEnd: Bool, into out: inout [UInt8]) -> Int {
        var index = 0
        let count = bytes.count
        while index < count {
            let byte = bytes[index]
            if byte == 0x5C {
                guard index + 1 < count else { if atEnd { out.append(byte); return count }; return index }
                let next = bytes[index + 1]
                if next == UInt8(ascii: "/") {
                    out.append(next)
                    index += 2
                    continue
                }
                guard next == UInt8(ascii: "u") else {
                    out.append(byte)
                    out.append(next)
                    index += 2
                    continue
                }
                guard index + 6 <= count else {
                    if atEnd { out.append(contentsOf: bytes[index...]); return count }
                    // Not enough for `\uXXXX` yet (if what is there can still become one).
                    if bytes[(index + 2)...].allSatisfy({ HTTPPath.hexValue($0) != nil }) { return index }
                    out.append(byte)
                    out.append(next)
                    index += 2
                    continue
                }
                guard let unit = hex4(bytes, index + 2) else {
                    out.append(byte)
                    out.append(next)
                    index += 2
                    continue
                }
                var scalarValue = UInt32(unit)
                var length = 6
                if (0xD800...0xDBFF).contains(unit) {
                    // A high surrogate: joined with a following `\uDC00`–`\uDFFF`.
                    if index + 12 > count {
                        let rest = bytes[(index + 6)...]
                        let prefix = Array("\\u".utf8)
                        let couldContinue = rest.enumerated().allSatisfy { offset, value in
                            offset < 2 ? value == prefix[offset] : HTTPPath.hexValue(value) != nil
                        }
                        if !atEnd && couldContinue { return index }
                    }
                    if index + 12 <= count, bytes[index + 6] == 0x5C, bytes[index + 7] == UInt8(ascii: "u"),
                       let low = hex4(bytes, index + 8), (0xDC00...0xDFFF).contains(low) {
                        scalarValue = 0x10000 + (UInt32(unit - 0xD800) << 10) + UInt32(low - 0xDC00)
                        length = 12
                    } else {
                        out.append(contentsOf: bytes[index..<(index + 6)])   // a lone surrogate stays escaped
                        index += 6
                        continue
                    }
                } else if (0xDC00...0xDFFF).contains(unit) {
                    out.append(contentsOf: bytes[index..<(index + 6)])
                    index += 6
                    continue
                }
                if scalarValue < 0x20 || scalarValue == 0x22 || scalarValue == 0x5C {
                    out.append(contentsOf: bytes[index..<(index + length)])   // must stay escaped in JSON
                } else if let scalar = Unicode.Scalar(scalarValue) {
                    append(scalar, to: &out)
                }
                index += length
                continue
            }
            if byte < 0x80 {
                out.append(byte)
                index += 1
                continue
            }
            let length: Int
            switch byte {
            case 0xC2...0xDF: length = 2
            case 0xE0...0xEF: length = 3
            case 0xF0...0xF4: length = 4
            default:
                out.append(byte)   // not a UTF-8 lead byte: passes as it is
                index += 1
                continue
            }
            guard index + length <= count else {
                let available = bytes[(index + 1)...]
                if !atEnd && available.allSatisfy({ $0 & 0xC0 == 0x80 }) { return index }
                out.append(byte)
                index += 1
                continue
            }
            var value = UInt32(byte) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
            var valid = true
            for offset in 1..<length {
                let continuation = bytes[index + offset]
                if continuation & 0xC0 != 0x80 { valid = false; break }
                value = value << 6 | UInt32(continuation & 0x3F)
            }
            let minimum: UInt32 = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
            guard valid, value >= minimum, let scalar = Unicode.Scalar(value) else {
                out.append(byte)
                index += 1
                continue
            }
            switch mapping(scalar) {
            case .keep: out.append(contentsOf: bytes[index..<(index + length)])
            case .drop: break
            case .ascii(let ascii): out.append(ascii)
            }
            index += length
        }
        return count
    }

    static func hex4(_ bytes: [UInt8], _ at: Int) -> UInt16? {
        var value: UInt16 = 0
        for offset in 0..<4 {
            guard let digit = HTTPPath.hexValue(bytes[at + offset]) else { return nil }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    enum Mapping { case keep, drop, ascii(UInt8) }

    /// What normalisation does with one non-ASCII scalar.
    static func mapping(_ scalar: Unicode.Scalar) -> Mapping {
        let value = scalar.value
        if isInvisible(value) { return .drop }
        if (0xFF01...0xFF5E).contains(value) { return .ascii(UInt8(value - 0xFEE0)) }
        if scalar.properties.numericType == .decimal, let digit = scalar.properties.numericValue, digit >= 0, digit <= 9 {
            return .ascii(UInt8(ascii: "0") + UInt8(digit))
        }
        return .keep
    }

    /// One scalar, normalised, as UTF-8.
    static func append(_ scalar: Unicode.Scalar, to out: inout [UInt8]) {
        let value = scalar.value
        if value < 0x80 {
            out.append(UInt8(value))
            return
        }
        switch mapping(scalar) {
        case .drop: return
        case .ascii(let ascii): out.append(ascii)
        case .keep:
            if value < 0x800 {
                out.append(UInt8(0xC0 | value >> 6))
                out.append(UInt8(0x80 | value & 0x3F))
            } else if value < 0x10000 {
                out.append(UInt8(0xE0 | value >> 12))
                out.append(UInt8(0x80 | value >> 6 & 0x3F))
                out.append(UInt8(0x80 | value & 0x3F))
            } else {
                out.append(UInt8(0xF0 | value >> 18))
                out.append(UInt8(0x80 | value >> 12 & 0x3F))
                out.append(UInt8(0x80 | value >> 6 & 0x3F))
                out.append(UInt8(0x80 | value & 0x3F))
            }
        }
    }

    static func isInvisible(_ value: UInt32) -> Bool {
        switch value {
        case 0x00AD, 0x034F, 0x061C, 0x180E, 0x200B...0x200F, 0x202A...0x202E, 0x2060...0x2064, 0x2066...0x206F,
             0xFE00...0xFE0F, 0xFEFF:
            true
        default:
            false
        }
    }
}
