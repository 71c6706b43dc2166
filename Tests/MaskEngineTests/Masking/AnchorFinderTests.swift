import CMaskKernel
import Testing
@testable import MaskEngine

/// A reference for the finder, written as plainly as possible: runs of digits and separators
/// (space - . ( ) / +) that start and end with a digit, where two separators in a row end a run.
private func referenceRuns(_ bytes: [UInt8], minDigits: Int) -> [(start: Int, end: Int, digits: Int)] {
    func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    func isSep(_ b: UInt8) -> Bool { " -.()/+".utf8.contains(b) }
    var runs: [(Int, Int, Int)] = []
    var index = 0
    while index < bytes.count {
        guard isDigit(bytes[index]) else { index += 1; continue }
        let start = index
        var lastDigitEnd = index + 1
        var digits = 1
        var position = index + 1
        var separators = 0
        while position < bytes.count {
            let byte = bytes[position]
            if isDigit(byte) {
                digits += 1
                lastDigitEnd = position + 1
                separators = 0
            } else if isSep(byte) && separators == 0 {
                separators = 1
            } else {
                break
            }
            position += 1
        }
        if digits >= minDigits { runs.append((start, lastDigitEnd, digits)) }
        index = position
    }
    return runs
}

private func referenceMasks(_ block: ArraySlice<UInt8>) -> mk_block_masks {
    var m = mk_block_masks()
    for (i, b) in block.enumerated() {
        let bit = UInt64(1) << UInt64(i)
        let digit = b >= 0x30 && b <= 0x39
        let upper = b >= 0x41 && b <= 0x5A
        let lower = b >= 0x61 && b <= 0x7A
        if digit { m.digit |= bit }
        if " -.()/+".utf8.contains(b) { m.separator |= bit }
        if b == UInt8(ascii: "@") { m.at |= bit }
        if b == UInt8(ascii: ":") { m.colon |= bit }
        if upper { m.upper |= bit }
        if digit || (b | 0x20 >= 0x61 && b | 0x20 <= 0x66) { m.hex |= bit }
        if digit || upper || lower || b == UInt8(ascii: "_") { m.word |= bit }
    }
    return m
}

private func collect(_ input: [UInt8], pieces: [Int], minDigits: Int) -> (runs: [(Int, Int, Int)], ats: [Int], colons: Set<Int>) {
    var finder = AnchorFinder(minDigits: minDigits)
    var runs: [(Int, Int, Int)] = []
    var ats: [Int] = []
    var colons = Set<Int>()
    var offset = 0
    let sink: (ArraySlice<mk_run>, ArraySlice<UInt64>, ArraySlice<UInt64>) -> Void = { r, a, c in
        runs += r.map { (Int($0.start), Int($0.end), Int($0.digits)) }
        ats += a.map { Int($0) }
        colons.formUnion(c.map { Int($0) })
    }
    for size in pieces where offset < input.count {
        let end = min(input.count, offset + size)
        input[offset..<end].withUnsafeBytes { finder.scan($0, drain: sink) }
        offset = end
    }
    if offset < input.count { input[offset...].withUnsafeBytes { finder.scan($0, drain: sink) } }
    finder.finish(drain: sink)
    return (runs, ats, colons)
}

private let alphabet = Array("0123456789 -.()/+@:abcfxyzABFXZ_\n\t,;=\"'".utf8) + [0xC3, 0xA9, 0x00, 0xFF]

@Suite struct AnchorFinderTests {
    @Test func everyKernelClassifiesLikeThePortableOne() {
        var generator = SeededGenerator(state: 0xC1A55)
        let bytes = (0..<(64 * 64)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            + (0..<(64 * 64)).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] }
        let expected = stride(from: 0, to: bytes.count, by: 64).map { referenceMasks(bytes[$0..<($0 + 64)]) }
        var tried: [String] = []
        for name in ["portable", "sse4.2", "avx2", "avx512bw"] where ClassificationKernel.force(name) {
            tried.append(name)
            var masks: [mk_block_masks] = []
            bytes.withUnsafeBytes { ClassificationKernel.classify($0, into: &masks) }
            for (index, (got, want)) in zip(masks, expected).enumerated() {
                #expect(got.digit == want.digit && got.separator == want.separator && got.at == want.at
                        && got.colon == want.colon && got.upper == want.upper && got.hex == want.hex
                        && got.word == want.word, "\(name) block \(index)")
            }
        }
        #expect(tried.contains("portable"))
        _ = ClassificationKernel.force(AnchorFinder.kernelName)
    }

    @Test func runsMatchTheReferenceOnPlantedText() {
        let text = "2024-01-05 4111111111111111 and 4111 1111 1111 1111 12/27 123, tel (305) 457-9071; 1.2.3 v 12  34567890123 @x a@b c:d ::1"
        let bytes = Array(text.utf8)
        let got = collect(bytes, pieces: [bytes.count], minDigits: 7)
        let want = referenceRuns(bytes, minDigits: 7)
        #expect(got.runs.map { [$0.0, $0.1, $0.2] } == want.map { [$0.start, $0.end, $0.digits] })
        #expect(got.ats == bytes.indices.filter { bytes[$0] == UInt8(ascii: "@") })
    }

    @Test func anchorsDoNotDependOnHowTheStreamIsCut() {
        var generator = SeededGenerator(state: 0xF1ED)
        for round in 0..<40 {
            let count = Int.random(in: 1...3000, using: &generator)
            let input = (0..<count).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] }
            let whole = collect(input, pieces: [count], minDigits: 3)
            let want = referenceRuns(input, minDigits: 3)
            #expect(whole.runs.map { [$0.0, $0.1, $0.2] } == want.map { [$0.start, $0.end, $0.digits] }, "round \(round)")
            let pieces = (0..<count).map { _ in Int.random(in: 1...130, using: &generator) }
            let cut = collect(input, pieces: pieces, minDigits: 3)
            #expect(cut.runs.map { [$0.0, $0.1, $0.2] } == whole.runs.map { [$0.0, $0.1, $0.2] }, "round \(round)")
            #expect(cut.ats == whole.ats)
            // ':' anchors: every colon next to a hex digit or a colon is found whatever the cut.
            let needed = Set(input.indices.filter { i in
                input[i] == UInt8(ascii: ":") && ((i > 0 && isHexOrColon(input[i - 1])) || (i + 1 < count && isHexOrColon(input[i + 1])))
            })
            #expect(needed.isSubset(of: cut.colons), "round \(round)")
        }
    }

    @Test func oneByteWritesFindTheSameRuns() {
        let bytes = Array("id 12345678 card 4111-1111-1111-1111 x".utf8)
        let whole = collect(bytes, pieces: [bytes.count], minDigits: 7)
        let single = collect(bytes, pieces: Array(repeating: 1, count: bytes.count), minDigits: 7)
        #expect(single.runs.map { [$0.0, $0.1] } == whole.runs.map { [$0.0, $0.1] })
        #expect(whole.runs.map { [$0.0, $0.1] } == [[3, 11], [17, 36]])
    }

    @Test func fullAnchorArraysAreDrainedNotDropped() {
        let bytes = Array(String(repeating: "a@b ", count: 5000).utf8)
        let got = collect(bytes, pieces: [bytes.count], minDigits: 7)
        #expect(got.ats.count == 5000)
        #expect(got.ats == got.ats.sorted())
    }
}

private func isHexOrColon(_ b: UInt8) -> Bool {
    (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x66) || b == UInt8(ascii: ":")
}
