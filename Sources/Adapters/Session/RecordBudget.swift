import MaskEngine

/// How much of a session's output goes into its record: up to `cap` bytes, then the record is
/// cut (the user still receives everything, masked; the record says where it was cut).
package struct RecordBudget: Sendable, Equatable {
    package let cap: Int
    package private(set) var used = 0
    package private(set) var cut = false

    package init(cap: Int) {
        self.cap = max(0, cap)
    }

    /// The part of `bytes` to record (empty once the cap is reached), and whether this call is
    /// the first to drop bytes (the moment to record where the record was cut).
    package mutating func take<C: Collection>(_ bytes: C) -> (part: [UInt8], newlyCut: Bool) where C.Element == UInt8 {
        let part = Array(bytes.prefix(cap - used))
        used += part.count
        let dropped = part.count < bytes.count
        defer { if dropped { cut = true } }
        return (part, dropped && !cut)
    }

    /// Appends to `record` the part of `bytes` within the cap, without an intermediate copy;
    /// true when this call is the first to drop bytes.
    @discardableResult
    package mutating func append<C: Collection>(_ bytes: C, to record: inout [UInt8]) -> Bool where C.Element == UInt8 {
        let room = cap - used
        let count = bytes.count
        if count <= room {
            record.append(contentsOf: bytes)
            used += count
            return false
        }
        record.append(contentsOf: bytes.prefix(room))
        used = cap
        defer { cut = true }
        return !cut
    }
}

extension GovernedSession {
    /// Records output within `budget`; the first time it is exceeded, an
    /// ``SessionMarker/outputCut(atBytes:)`` marker says where the record stops.
    package func recordOutput<C: Collection>(_ bytes: C, within budget: inout RecordBudget) where C.Element == UInt8 {
        guard !bytes.isEmpty else { return }
        let (part, newlyCut) = budget.take(bytes)
        if !part.isEmpty { record(SessionEvent(.output, part)) }
        if newlyCut { mark(.outputCut(atBytes: budget.cap)) }
    }
}
