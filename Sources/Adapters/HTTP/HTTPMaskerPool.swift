import MaskEngine

/// The maskers of one client connection, reused from one exchange to the next: opening a
/// Hyperscan stream and building a value masker cost more than masking a small body. A stream
/// masker comes back only after its body ended (``StreamMasker/reset()`` then readies it); at
/// most ``maximumIdle`` of each kind wait, and a masker of another engine (a reloaded policy) is
/// never handed out for this one.
package final class HTTPMaskerPool {
    private var streams: [StreamMasker] = []
    private var values: [ValueMasker] = []
    package static let maximumIdle = 4

    package init() {}

    /// An idle stream masker of `engine`, or a new one.
    package func streamMasker(for engine: MaskingEngine) throws -> StreamMasker {
        if let index = streams.firstIndex(where: { $0.engine === engine }) { return streams.remove(at: index) }
        return try engine.makeStreamMasker()
    }

    /// Takes back a stream masker whose stream ended or was abandoned.
    package func giveBack(_ masker: StreamMasker) {
        guard streams.count < Self.maximumIdle, (try? masker.reset()) != nil else { return }
        streams.append(masker)
    }

    /// The connection's value masker of `engine` (kept; one value at a time).
    package func valueMasker(for engine: MaskingEngine) -> ValueMasker {
        if let masker = values.first(where: { $0.engine === engine }) { return masker }
        let masker = engine.makeValueMasker()
        if values.count >= Self.maximumIdle { values.removeFirst() }
        values.append(masker)
        return masker
    }

    /// Idle stream maskers (for tests).
    package var idleStreams: Int { streams.count }
}
