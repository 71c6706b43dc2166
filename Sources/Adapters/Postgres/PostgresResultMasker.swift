import MaskEngine
import NIOCore

/// How each column of a result set is masked for one user, computed once per RowDescription.
struct RowPlan {
    enum Column {
        /// Sent as is (the user sees this column unmasked).
        case pass
        /// A column rule: the whole value in this style, whatever it holds.
        case force(MaskStyle, label: String)
        /// Scanned by the content detectors.
        case scan
    }

    var columns: [Column]
    var formats: [Int16]
    var types: [UInt32]
    var names: [String]
    var allPass: Bool

    static let textLike: Set<UInt32> = [25, 1043, 1042, 19, 114, 142, 705, 18, 3802, 17]
    static let integers: Set<UInt32> = [20, 21, 23]
    /// Binary encodings that cannot carry free text (booleans, floats, times, uuids, oids).
    static let inert: Set<UInt32> = [16, 700, 701, 1082, 1083, 1114, 1184, 1186, 2950, 26, 1266]
}

/// Masks DataRows, CopyData rows and error/notice fields for one session, and keeps what is recorded.
final class PostgresResultMasker {
    let session: any GovernedSession
    private var maskers: [ObjectIdentifier: ValueMasker] = [:]
    private(set) var counts: [String: Int] = [:]
    /// Values nulled because their binary encoding could not be scanned (fail closed).
    private(set) var unscannable = 0
    let tableNames: [UInt32: String]

    init(session: any GovernedSession, tableNames: [UInt32: String]) {
        self.session = session
        self.tableNames = tableNames
    }

    private func masker(for engine: MaskingEngine) -> ValueMasker {
        let key = ObjectIdentifier(engine)
        if let lastMasker, lastMasker.0 == key { return lastMasker.1 }
        if let masker = maskers[key] {
            lastMasker = (key, masker)
            return masker
        }
        if maskers.count >= 8 { maskers.removeAll() }
        let masker = engine.makeValueMasker()
        maskers[key] = masker
        lastMasker = (key, masker)
        return masker
    }

    /// The stream engine, looked up once per statement (``refresh()`` at each ReadyForQuery picks
    /// up a reloaded policy) instead of once per row.
    private var cachedStream: MaskingEngine??
    private var cachedColumn: MaskingEngine??

    private var streamEngine: MaskingEngine? {
        if let cachedStream { return cachedStream }
        var engine: MaskingEngine?
        if case .masked(let found, _) = session.masking(for: .stream) { engine = found }
        cachedStream = .some(engine)
        return engine
    }

    /// Forgets cached engines so the next statement sees a reloaded policy.
    func refresh() {
        cachedStream = nil
        cachedColumn = nil
        lastMasker = nil
    }

    private var lastMasker: (ObjectIdentifier, ValueMasker)?

    /// The plan for a result set. `formats` overrides the description's formats (Bind result formats).
    func plan(_ columns: [ColumnDescription], formats: [Int16]? = nil) -> RowPlan {
        var plan = RowPlan(columns: [], formats: [], types: [], names: [], allPass: true)
        for (index, column) in columns.enumerated() {
            let table = tableNames[column.tableOID]
            let format: Int16
            if let formats, !formats.isEmpty { format = formats.count == 1 ? formats[0] : (index < formats.count ? formats[index] : 0) }
            else { format = column.format }
            let kind: RowPlan.Column
            switch session.masking(for: .column(table: table, name: column.name)) {
            case .unmasked: kind = .pass
            case .masked(_, let forced?): kind = .force(forced, label: column.name)
            case .masked: kind = .scan
            }
            if case .pass = kind {} else { plan.allPass = false }
            plan.columns.append(kind)
            plan.formats.append(format)
            plan.types.append(column.typeOID)
            plan.names.append(column.name)
        }
        return plan
    }

    /// The engine of column scans (every column of a user shares one profile).
    private var columnEngine: MaskingEngine? {
        if let cachedColumn { return cachedColumn }
        var engine: MaskingEngine?
        if case .masked(let found, _) = session.masking(for: .column(table: nil, name: "")) { engine = found } else { engine = streamEngine }
        cachedColumn = .some(engine)
        return engine
    }

    private func count(_ masker: ValueMasker) {
        guard masker.matchedLast else { return }
        for (id, count) in masker.lastCounts { counts[id, default: 0] += count }
    }

    /// Masks one value; nil means SQL NULL.
    func maskValue(_ value: ByteBuffer, column: RowPlan.Column, format: Int16, type: UInt32) throws -> ByteBuffer?? {
        switch column {
        case .pass:
            return .none
        case .force(let style, let label):
            guard let engine = columnEngine else { return .none }
            let result = value.readableBytesView.withUnsafeBytes { engine.maskWhole($0, style: style, label: label) }
            counts["column:" + label, default: 0] += 1
            switch result {
            case .null: return .some(nil)
            case .masked(let bytes):
                if format == 1 && !RowPlan.textLike.contains(type) { return .some(nil) }
                return .some(ByteBuffer(bytes: bytes))
            case .unchanged: return .none
            }
        case .scan:
            guard let engine = columnEngine else { return .none }
            let masker = masker(for: engine)
            if format == 0 || RowPlan.textLike.contains(type) {
                let prefix = (format == 1 && type == 3802) ? 1 : 0
                let result = try value.readableBytesView.withUnsafeBytes { raw in
                    try masker.mask(UnsafeRawBufferPointer(rebasing: raw[min(prefix, raw.count)...]))
                }
                count(masker)
                switch result {
                case .unchanged: return .none
                case .null: return .some(nil)
                case .masked(let bytes):
                    var out = ByteBuffer()
                    if prefix == 1 { out.writeInteger(UInt8(1)) }
                    out.writeBytes(bytes)
                    return .some(out)
                }
            }
            if RowPlan.inert.contains(type) { return .none }
            if RowPlan.integers.contains(type) {
                // A binary integer may hold a card or SSN: scan its decimal form; a match nulls it.
                var copy = value
                let number: Int64?
                switch value.readableBytes {
                case 2: number = copy.readInteger(as: Int16.self).map(Int64.init)
                case 4: number = copy.readInteger(as: Int32.self).map(Int64.init)
                case 8: number = copy.readInteger(as: Int64.self)
                default: number = nil
                }
                guard let number else { unscannable += 1; return .some(nil) }
                let result = try masker.mask(String(number))
                count(masker)
                return result == .unchanged ? .none : .some(nil)
            }
            unscannable += 1
            return .some(nil)
        }
    }

    /// The largest masked DataRow body sent (well under `Int32.max`, the protocol's length word).
    static let maximumMaskedRow = 1 << 30

    /// Masks a DataRow body; nil when nothing changed (the original bytes go out).
    func maskDataRow(_ body: ByteBuffer, plan: RowPlan) throws -> ByteBuffer? {
        if plan.allPass { return nil }
        var reader = body
        guard let count = reader.readInteger(as: Int16.self), count >= 0 else {
            throw PostgresProtocolError(.malformedMessage, "DataRow without a column count")
        }
        var changed: [(Int, ByteBuffer?)] = []
        var values: [ByteBuffer?] = []
        values.reserveCapacity(Int(count))
        for index in 0..<Int(count) {
            guard let length = reader.readInteger(as: Int32.self) else {
                throw PostgresProtocolError(.malformedMessage, "truncated DataRow")
            }
            if length < 0 { values.append(nil); continue }
            guard let value = reader.readSlice(length: Int(length)) else {
                throw PostgresProtocolError(.malformedMessage, "DataRow value of \(length) bytes is truncated")
            }
            values.append(value)
            guard index < plan.columns.count else {
                // More values than described: scan them as text (fail closed rather than pass).
                if let masked = try maskValue(value, column: .scan, format: 0, type: 25) { changed.append((index, masked)) }
                continue
            }
            if let masked = try maskValue(value, column: plan.columns[index], format: plan.formats[index], type: plan.types[index]) {
                changed.append((index, masked))
            }
        }
        if changed.isEmpty { return nil }
        for (index, value) in changed { values[index] = value }
        // Masking can make a value longer (`tok_…` for a short value); a row that would not fit
        // a protocol length word fails closed instead of trapping.
        let total = values.reduce(2) { $0 + 4 + ($1?.readableBytes ?? 0) }
        guard total < Self.maximumMaskedRow else {
            throw PostgresProtocolError(.messageTooLarge, "masked DataRow of \(total) bytes")
        }
        var out = ByteBuffer()
        out.reserveCapacity(body.readableBytes + 16)
        out.writeInteger(count)
        for value in values {
            if var value {
                out.writeInteger(Int32(value.readableBytes))
                out.writeBuffer(&value)
            } else {
                out.writeInteger(Int32(-1))
            }
        }
        return out
    }

    /// Masks free text (COPY rows, error details, notification payloads) with the stream profile.
    func maskText(_ bytes: ByteBuffer) throws -> ByteBuffer? {
        guard let engine = streamEngine else { return nil }
        let masker = masker(for: engine)
        let result = try bytes.readableBytesView.withUnsafeBytes { try masker.mask($0) }
        count(masker)
        switch result {
        case .unchanged: return nil
        case .null: return ByteBuffer(string: "[REDACTED]")
        case .masked(let out): return ByteBuffer(bytes: out)
        }
    }

    /// Fields of ErrorResponse/NoticeResponse that are fixed vocabulary (severity and SQLSTATE);
    /// every other field (message, detail, hint, context, query, schema, table, column, type and
    /// constraint names, …) can carry data and is scanned.
    private static let structuralFields: Set<UInt8> = [UInt8(ascii: "S"), UInt8(ascii: "V"), UInt8(ascii: "C")]

    /// Masks every field of an ErrorResponse/NoticeResponse that can carry data; nil when unchanged.
    func maskFields(_ body: ByteBuffer, type: UInt8) throws -> PostgresMessage? {
        guard streamEngine != nil else { return nil }
        var fields = try PostgresMessages.parseFields(body)
        var changed = false
        for index in fields.entries.indices where !Self.structuralFields.contains(fields.entries[index].0) {
            if let masked = try maskText(ByteBuffer(string: fields.entries[index].1)) {
                fields.entries[index].1 = String(decoding: masked.readableBytesView, as: UTF8.self)
                changed = true
            }
        }
        return changed ? PostgresMessages.fields(type: type, fields) : nil
    }

    /// Masks a short text the server sends outside result rows (a column name, a parameter
    /// value, a command tag, a channel name); the text itself when nothing is found.
    func maskString(_ text: String) throws -> String {
        guard streamEngine != nil, !text.isEmpty else { return text }
        guard let masked = try maskText(ByteBuffer(string: text)) else { return text }
        return String(decoding: masked.readableBytesView, as: UTF8.self)
    }

    /// Column names found clean by `cleanNamesEngine` (at most ``maximumCleanNames``): a result's
    /// names are scanned once per connection, not at every RowDescription. Another engine (a
    /// reloaded policy) starts the set over.
    private var cleanNames: Set<String> = []
    private var cleanNamesEngine: MaskingEngine?
    static let maximumCleanNames = 4096

    /// Masks a column name (names can carry data: `EXECUTE format('create table t(%I int)',
    /// email)`); names already found clean with the same engine are not scanned again.
    func maskName(_ name: String) throws -> String {
        guard let engine = streamEngine else { return name }
        if cleanNamesEngine !== engine {
            cleanNames.removeAll()
            cleanNamesEngine = engine
        }
        if cleanNames.contains(name) { return name }
        let shown = try maskString(name)
        if shown == name, cleanNames.count < Self.maximumCleanNames { cleanNames.insert(name) }
        return shown
    }

    /// Whether a CommandComplete tag is one the server makes from fixed words and row counts
    /// (`SELECT 3`, `INSERT 0 1`, `CREATE TABLE`): such a tag carries no data and is not
    /// scanned. Anything else (an unusual tag, a count longer than any real one) is.
    static func isPlainTag(_ tag: String) -> Bool {
        var digits = 0
        for byte in tag.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: " "):
                digits = 0
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                digits += 1
                if digits > 6 { return false }
            default:
                return false
            }
        }
        return tag.utf8.count <= 64
    }

    /// What is recorded for a text that the user may have seen unmasked: masked with the
    /// recording engine (raw data is never written to the record).
    func recordable(_ text: [UInt8]) -> [UInt8] {
        guard let engine = session.recordingEngine else { return text }
        let masker = masker(for: engine)
        switch (try? masker.mask(text)) ?? .null {
        case .unchanged: return text
        case .masked(let bytes): return bytes
        case .null: return Array("[REDACTED]".utf8)
        }
    }

    /// Takes the counts gathered since the last call (for metrics).
    func takeCounts() -> [String: Int] {
        defer { counts.removeAll(keepingCapacity: true) }
        return counts
    }
}
