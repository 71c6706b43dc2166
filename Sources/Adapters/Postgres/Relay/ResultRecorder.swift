import NIOCore

/// What the record keeps of one result: the column names, the rows as the user saw them (up
/// to the cap; binary values by length), and a footer with the command tag and row count, like
/// psql's `(3 rows)`. One `o` event per result.
struct ResultRecorder {
    private var budget: RecordBudget
    private var record: [UInt8] = []
    private var rows = 0

    init(cap: Int) {
        budget = RecordBudget(cap: cap)
    }

    mutating func start(columns: [ColumnDescription]) {
        reset()
        guard !columns.isEmpty else { return }
        for (index, column) in columns.enumerated() {
            if index > 0 { budget.append(CollectionOfOne(9), to: &record) }
            budget.append(column.name.utf8, to: &record)
        }
        budget.append(CollectionOfOne(10), to: &record)
    }

    /// A DataRow as sent to the client (masked where the user's policy masks).
    mutating func row(_ body: ByteBuffer, plan: RowPlan, masker: PostgresResultMasker) {
        rows += 1
        guard !budget.cut else { return }
        var reader = body
        guard let count = reader.readInteger(as: Int16.self) else { return }
        for index in 0..<Int(max(0, count)) {
            if index > 0 { budget.append(CollectionOfOne(9), to: &record) }
            guard let length = reader.readInteger(as: Int32.self) else { return }
            if length < 0 { budget.append("NULL".utf8, to: &record); continue }
            guard let value = reader.readSlice(length: Int(length)) else { return }
            let format = index < plan.formats.count ? plan.formats[index] : 0
            let type = index < plan.types.count ? plan.types[index] : 25
            if format == 1 && !RowPlan.textLike.contains(type) {
                budget.append("<binary \(length) bytes>".utf8, to: &record)
            } else if index < plan.columns.count, case .pass = plan.columns[index] {
                // The user saw this value unmasked; the record never holds raw data.
                budget.append(masker.recordable(Array(value.readableBytesView)), to: &record)
            } else {
                budget.append(value.readableBytesView, to: &record)
            }
            if budget.cut { return }
        }
        budget.append(CollectionOfOne(10), to: &record)
    }

    /// A COPY TO STDOUT row as sent to the client; `masked` when the user's output is masked
    /// (otherwise the record masks it).
    mutating func copyRow(_ body: ByteBuffer, masked: Bool, masker: PostgresResultMasker) {
        rows += 1
        guard !budget.cut else { return }
        if masked {
            budget.append(body.readableBytesView, to: &record)
        } else {
            budget.append(masker.recordable(Array(body.readableBytesView)), to: &record)
        }
    }

    /// The event for the result `message` (CommandComplete, EmptyQueryResponse or
    /// PortalSuspended) ends; the recorder starts over.
    mutating func finish(_ message: PostgresMessage) -> SessionEvent {
        var body = message.body
        let tag: String
        switch message.type {
        case UInt8(ascii: "C"): tag = body.readNullTerminatedString() ?? ""
        case UInt8(ascii: "s"): tag = "SUSPENDED"
        default: tag = "EMPTY"
        }
        var footer = "(\(tag.prefix(64)); \(rows) row\(rows == 1 ? "" : "s")"
        if budget.cut { footer += "; record cut at \(budget.cap) bytes" }
        footer += ")"
        record.append(contentsOf: footer.utf8)
        let event = SessionEvent(.output, record)
        reset()
        return event
    }

    private mutating func reset() {
        record.removeAll(keepingCapacity: record.capacity <= 64 << 10)
        rows = 0
        budget = RecordBudget(cap: budget.cap)
    }
}
