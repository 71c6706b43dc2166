import Testing
@testable import MaskEngine

/// The resolver's ordering of pending matches (start ascending, then the longer first, then the
/// detector): the natural merge sort against a plainly stable reference.
@Suite struct PendingOrderTests {
    static func key(_ match: PendingMatch) -> [Int] { [match.start, -match.end, match.detector] }

    @Test func pendingMatchesAreOrderedStablyWhateverTheirRuns() {
        var generator = SeededGenerator(state: 1234)
        var resolver = Resolver(engine: Fixtures.engine, collector: EventCollector(limit: 1 << 20))
        for round in 0..<3000 {
            var items: [PendingMatch] = []
            // Runs as the confirm steps produce them: ascending leftovers, tokens with one match
            // per end (same start, ends ascending), random families, duplicates with flags.
            while items.count < Int.random(in: 1...200, using: &generator) {
                let start = Int.random(in: 0..<500, using: &generator)
                switch Int.random(in: 0..<4, using: &generator) {
                case 0:
                    for end in (start + 1)...(start + Int.random(in: 1...40, using: &generator)) {
                        items.append(PendingMatch(start: start, end: end, detector: 3))
                    }
                case 1:
                    var position = start
                    for _ in 0..<Int.random(in: 1...10, using: &generator) {
                        position += Int.random(in: 0...5, using: &generator)
                        items.append(PendingMatch(start: position, end: position + 10, detector: Int.random(in: 0..<4, using: &generator)))
                    }
                case 2:
                    let match = PendingMatch(start: start, end: start + 5, detector: 1)
                    items.append(match)
                    items.append(PendingMatch(start: start, end: start + 5, detector: 1, continuation: true))
                    items.append(PendingMatch(start: start, end: start + 5, detector: 1, narrowed: true))
                default:
                    items.append(PendingMatch(start: start, end: start + Int.random(in: 1...30, using: &generator),
                                              detector: Int.random(in: 0..<4, using: &generator)))
                }
            }
            let expected = items.enumerated().sorted { a, b in
                let (ka, kb) = (Self.key(a.element), Self.key(b.element))
                return ka != kb ? ka.lexicographicallyPrecedes(kb) : a.offset < b.offset
            }.map(\.element)
            resolver.pending = items
            resolver.sortPending()
            let same = resolver.pending.count == expected.count && zip(resolver.pending, expected).allSatisfy {
                $0.start == $1.start && $0.end == $1.end && $0.detector == $1.detector
                    && $0.continuation == $1.continuation && $0.narrowed == $1.narrowed
            }
            #expect(same, "round \(round)")
            if !same { return }
        }
    }
}
