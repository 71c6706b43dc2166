import Adapters
import Testing
@testable import Gateway

@Suite struct GatewaySessionTests {
    /// The SSH driver only marks a host-key mismatch; the governor side decides that operators
    /// must see it too (the driver used to write to the control chain itself, past the seam).
    @Test func aHostKeyMismatchMarkerAlsoGoesToTheControlChain() async throws {
        let gateway = try TestGateway()
        let session = try await gateway.runtime.openSession(token: try gateway.token("alice", ["eng"]), connection: "app-db",
                                                            kind: .postgres, peer: "p")
        session.mark(.refused("binary copy out"))
        session.mark(.hostKeyMismatch(presented: "ssh-rsa"))
        let kinds = try gateway.runtime.store.controlEvents(after: -1, limit: 100).map(\.kind)
        #expect(kinds.filter { $0 == "ssh.host_key_mismatch" }.count == 1)
        #expect(!kinds.contains { $0.contains("refused") })
    }
}
