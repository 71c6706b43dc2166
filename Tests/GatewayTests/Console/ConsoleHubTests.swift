import Adapters
import Testing
@testable import Gateway

/// The console's live feeds: heartbeats reach every listener, and shutdown ends them all.
@Suite struct ConsoleHubTests {
    @Test func aHeartbeatReachesEveryFeed() async throws {
        let hub = ConsoleHub()
        let reviews = try #require(hub.reviews())
        let session = try #require(hub.session("s-1"))
        hub.heartbeat()
        var reviewIterator = reviews.makeAsyncIterator()
        var sessionIterator = session.makeAsyncIterator()
        guard case .heartbeat? = await reviewIterator.next() else { Issue.record("no heartbeat on the reviews feed"); return }
        guard case .heartbeat? = await sessionIterator.next() else { Issue.record("no heartbeat on the session feed"); return }
    }

    @Test func shutdownEndsEveryFeedAndRefusesNewOnes() async throws {
        let hub = ConsoleHub()
        let reviews = try #require(hub.reviews())
        let session = try #require(hub.session("s-1"))
        #expect(hub.subscribers == 2)
        hub.shutdown()
        var count = 0
        for await _ in reviews { count += 1 }
        for await _ in session { count += 1 }
        #expect(count == 0)
        #expect(hub.reviews() == nil)
        #expect(hub.session("s-2") == nil)
        #expect(hub.subscribers == 0)
    }

    @Test func aFeedWhoseReaderStopsIsRemoved() async throws {
        let hub = ConsoleHub()
        do {
            let stream = try #require(hub.reviews())
            let reader = Task { for await _ in stream {} }
            reader.cancel()
            _ = await reader.value
        }
        // The stream's termination handler runs once nothing holds it.
        for _ in 0..<100 where hub.subscribers > 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(hub.subscribers == 0)
    }
}
