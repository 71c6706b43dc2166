import MaskEngine
import Adapters
import Foundation
import Testing
@testable import Gateway

/// Sessions end when their token expires (`session.end_on_token_expiry`, default on).
@Suite struct SessionExpiryTests {
    @Test func anOpenSessionEndsWhenItsTokenExpires() async throws {
        let gateway = try TestGateway(extra: "identity: { clock_skew: 1s }")
        let now = Date(timeIntervalSince1970: Double(gateway.clock.nowMicros()) / 1_000_000)
        let token = try DevIssuer.mint(user: "alice", groups: ["eng"], ttl: .seconds(1), key: gateway.key, now: now)
        let session = try await gateway.runtime.openSession(token: token, connection: "app-db", kind: .postgres, peer: "t")
        let expiry = try #require(session.expiresAt)
        #expect(expiry == Int64(now.timeIntervalSince1970) + 1 + 1)   // exp plus the skew
        let told = Locked<String?>(nil)
        session.onTermination { reason in told.withLock { $0 = reason } }
        // Not before the expiry: the watch re-checks the gateway's clock after each sleep.
        try await Task.sleep(for: .milliseconds(300))
        #expect(told.withLock { $0 } == nil && gateway.runtime.isOpen(session.id))
        gateway.clock.advance(by: .seconds(10))
        for _ in 0..<80 where told.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(100)) }
        #expect(told.withLock { $0 }?.contains("expired") == true)
        #expect(!gateway.runtime.isOpen(session.id))
    }

    @Test func aHandlerRegisteredAfterTheEndIsToldAtOnce() async throws {
        let gateway = try TestGateway()
        let session = try await gateway.runtime.openSession(token: try gateway.token("alice", ["eng"]), connection: "app-db",
                                                            kind: .postgres, peer: "t")
        let gatewaySession = try #require(session as? GatewaySession)
        await gatewaySession.terminate(reason: "your token expired; sign in again")
        let told = Locked<String?>(nil)
        session.onTermination { reason in told.withLock { $0 = reason } }
        #expect(told.withLock { $0 } == "your token expired; sign in again")
    }

    @Test func theSessionKeyParsesAndDefaultsToEnding() throws {
        let text = """
        connections:
          - { name: a, type: postgres, target: 127.0.0.1:5432 }
          - { name: b, type: ssh, target: 127.0.0.1:22, session: { end_on_token_expiry: false } }
          - { name: c, type: http, target: http://127.0.0.1:9000, http: { pass_through_types: [image/*, application/zip] } }
        """
        let configuration = try GatewayConfiguration.parse(text: text)
        #expect(configuration.connections.map(\.endOnTokenExpiry) == [true, false, true])
        #expect(configuration.connections[2].options["http.pass_through_types"] == "image/*,application/zip")
        #expect(throws: (any Error).self) {
            try GatewayConfiguration.parse(text: "connections:\n  - { name: c, type: http, target: http://x, http: { pass_through_types: ['*/*'] } }")
        }
        #expect(throws: (any Error).self) {
            try GatewayConfiguration.parse(text: "connections:\n  - { name: p, type: postgres, target: h:1, http: { pass_through_types: [image/png] } }")
        }
    }
}
