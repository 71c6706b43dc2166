import Foundation
import Testing
@testable import MaskEngine

@Suite struct HyperscanTests {
    @Test func thePlatformIsSupported() throws {
        try HS.checkPlatform()
        #expect(!HS.version().isEmpty)
    }

    @Test func streamsOfManyThreadsMaskIndependently() async throws {
        let engine = Fixtures.engine
        let input = Array(StreamMaskerTests.planted.joined(separator: "\n").utf8)
        let expected = try maskOneShot(input)
        try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for index in 0..<16 {
                group.addTask { try maskChunked(input, sizes: [index + 1, 7, 13], engine: engine) }
            }
            for try await output in group { #expect(output == expected) }
        }
    }

    @Test func aStreamHoldsLittleState() throws {
        #expect(Fixtures.engine.streamStateSize < 4096)
        #expect(Fixtures.engine.holdback < 1024)
    }
}
