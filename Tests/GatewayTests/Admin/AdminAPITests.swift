import Adapters
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Gateway

@Suite struct AdminAPITests {
    let gateway: TestGateway

    init() throws { gateway = try TestGateway() }

    func app() -> some ApplicationProtocol {
        let runtime = gateway.runtime
        return Application(router: AdminAPI(runtime: runtime, reloadSource: { runtime.policy.configuration }).router())
    }

    func headers(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

    /// Opens and closes one session of alice's with a recorded output line.
    func aliceSession() async throws -> String {
        let session = try await gateway.runtime.openSession(token: try gateway.token("alice", ["eng"]), connection: "app-db",
                                                            kind: .postgres, peer: "127.0.0.1")
        session.record(SessionEvent(.output, text: "alice-private-output"))
        await session.close(reason: "done")
        gateway.runtime.writer.drain()
        return session.id
    }

    /// Over a real socket the admin listener knows the client's address: failed sign-ins are
    /// throttled per source, like the protocol listeners' logins (issue 14, finding 3).
    @Test func failedAdminLoginsAreThrottledPerSourceAddress() async throws {
        let gateway = try TestGateway(extra: "limits: { failed_logins_per_source: 3 }")
        let runtime = gateway.runtime
        let good = try gateway.token("alice", ["eng"])
        let app = Application(router: AdminAPI(runtime: runtime, reloadSource: { runtime.policy.configuration }).router(),
                              configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            for attempt in 0..<3 {
                try await client.execute(uri: "/api/me", method: .get, headers: headers("bad-\(attempt)")) { response in
                    #expect(response.status == .unauthorized)
                }
            }
            // Locked out: refused before the token is checked, a good one included.
            try await client.execute(uri: "/api/me", method: .get, headers: headers(good)) { response in
                #expect(response.status == .tooManyRequests)
                #expect(String(buffer: response.body).contains("throttled"))
            }
            gateway.clock.advance(by: .seconds(6))
            try await client.execute(uri: "/api/me", method: .get, headers: headers(good)) { response in
                #expect(response.status == .ok)
            }
        }
        #expect(runtime.metrics.render().contains(#"sluice_logins_throttled_total{purpose="admin"}"#))
    }

    @Test func aDataListenerLockoutDoesNotLockTheAdminListenerOut() async throws {
        let gateway = try TestGateway(extra: "limits: { failed_logins_per_source: 3 }")
        let good = try gateway.token("alice", ["eng"])
        for attempt in 0..<3 {
            _ = try? await gateway.runtime.authenticate(token: "bad-\(attempt)", purpose: "postgres", source: "192.0.2.5")
        }
        let refused = await #expect(throws: GovernorError.self) {
            _ = try await gateway.runtime.authenticate(token: good, purpose: "ssh", source: "192.0.2.5")
        }
        #expect(refused?.code == .throttled)
        // The operators' tool from the same address still works, and counts its own failures.
        _ = try await gateway.runtime.authenticate(token: good, purpose: "admin", source: "192.0.2.5")
        _ = try await gateway.runtime.authenticate(token: good, purpose: "console", source: "192.0.2.5")
    }

    @Test func healthNamesConnectionsWhoseCredentialIsMissing() async throws {
        unsetenv("SLUICE_TEST_UNSET_TOKEN")
        let gateway = try TestGateway(extra: """
          - { name: billing, type: http, target: 'http://127.0.0.1:1', credential: { token_env: SLUICE_TEST_UNSET_TOKEN } }
          - { name: keys, type: ssh, target: '127.0.0.1:22', credential: { username: u, private_key_file: /nonexistent/key } }
        """)
        let runtime = gateway.runtime
        let problems = runtime.credentialProblems()
        #expect(problems["billing"] == "environment variable SLUICE_TEST_UNSET_TOKEN is not set")
        #expect(problems["keys"] == "file /nonexistent/key does not exist")
        #expect(problems["app-db"] == nil)  // SLUICE_TEST_PASSWORD is set
        let router = AdminAPI(runtime: runtime, reloadSource: { runtime.policy.configuration }).router()
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                let body = String(buffer: response.body)
                #expect(response.status == .ok)
                #expect(body.contains("\"status\":\"ok\""))
                #expect(body.contains("SLUICE_TEST_UNSET_TOKEN is not set") && body.contains("\"billing\""))
            }
        }
    }

    /// A gateway that loses its store says so on /healthz (503, so a load balancer sends new
    /// sessions elsewhere) and refuses new sessions with a clear error.
    @Test(.enabled(if: StoreBackend.postgresURL != nil))
    func aGatewayThatLostItsStoreIsUnhealthyAndRefusesSessions() async throws {
        let fixture = try StoreFixture(.postgres)
        let gateway = try TestGateway(extra: "store: '\(fixture.url)'")
        let runtime = gateway.runtime
        let router = AdminAPI(runtime: runtime, reloadSource: { runtime.policy.configuration }).router()
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"store\":\"ok\""))
            }
            try StoreFixture.admin().executeForTesting("DROP DATABASE \(fixture.database!) WITH (FORCE)")
            try await client.execute(uri: "/healthz", method: .get) { response in
                let body = String(buffer: response.body)
                #expect(response.status == .serviceUnavailable)
                #expect(body.contains("\"status\":\"store_unavailable\"") && body.contains("unreachable"))
            }
        }
        let error = await #expect(throws: GovernorError.self) {
            _ = try await runtime.openSession(token: try gateway.token("alice", ["eng"]), connection: "app-db", kind: .postgres, peer: "127.0.0.1")
        }
        #expect(error?.message.contains("recording is unavailable") == true)
    }

    @Test func healthAndMetricsAnswerWithoutAToken() async throws {
        try await app().test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"status\":\"ok\""))
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("sluice_sessions_open"))
            }
        }
    }

    @Test func apiRefusesMissingAndBadTokensWithTheirCode() async throws {
        try await app().test(.router) { client in
            try await client.execute(uri: "/api/sessions", method: .get) { response in
                #expect(response.status == .unauthorized)
            }
            try await client.execute(uri: "/api/sessions", method: .get, headers: headers("a.b.c")) { response in
                #expect(response.status == .unauthorized)
                #expect(String(buffer: response.body).contains("token_malformed"))
            }
        }
    }

    @Test func userOutsideAuditorsGets403AndNoDataForAnotherUsersSession() async throws {
        let id = try await aliceSession()
        let bob = try gateway.token("bob", ["eng"])
        try await app().test(.router) { client in
            for path in ["/api/sessions/\(id)", "/api/sessions/\(id)/events", "/api/sessions/\(id)/asciicast", "/api/sessions/\(id)/verify"] {
                try await client.execute(uri: path, method: .get, headers: headers(bob)) { response in
                    #expect(response.status == .forbidden, "\(path)")
                    let body = String(buffer: response.body)
                    #expect(!body.contains("alice"), "\(path)")
                    #expect(!body.contains("private-output"), "\(path)")
                }
            }
            try await client.execute(uri: "/api/sessions", method: .get, headers: headers(bob)) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "[]")
            }
            try await client.execute(uri: "/api/audit/verify", method: .get, headers: headers(bob)) { response in
                #expect(response.status == .forbidden)
            }
        }
    }

    @Test func ownerAndAuditorSeeTheSession() async throws {
        let id = try await aliceSession()
        try await app().test(.router) { client in
            for token in [try gateway.token("alice", ["eng"]), try gateway.token("audra", ["auditor"])] {
                try await client.execute(uri: "/api/sessions/\(id)/events", method: .get, headers: headers(token)) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body).contains("alice-private-output"))
                }
            }
            try await client.execute(uri: "/api/audit/verify", method: .get, headers: headers(try gateway.token("audra", ["auditor"]))) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"ok\":true"))
            }
        }
    }

    @Test func reviewsAreDecidedOnlyByApproversThroughTheAPI() async throws {
        let session = try await gateway.runtime.openSession(token: try gateway.token("alice", ["eng"]), connection: "app-db",
                                                            kind: .postgres, peer: "p")
        guard case .review(let ticket) = session.decide(Command(text: "delete from customers", classes: ["delete_without_where"])) else {
            Issue.record("expected a review")
            return
        }
        let outcome = Task { await ticket.outcome() }
        for _ in 0..<200 where try await gateway.runtime.reviews.review(id: ticket.id) == nil {
            try await Task.sleep(for: .milliseconds(5))
        }
        try await app().test(.router) { client in
            try await client.execute(uri: "/api/reviews/\(ticket.id)/approve", method: .post,
                                     headers: headers(try gateway.token("alice", ["eng"]))) { response in
                #expect(response.status == .forbidden)
                #expect(String(buffer: response.body).contains("review_self_approval"))
            }
            try await client.execute(uri: "/api/reviews/\(ticket.id)/approve", method: .post,
                                     headers: headers(try gateway.token("eve", ["eng"]))) { response in
                #expect(response.status == .forbidden)
            }
            try await client.execute(uri: "/api/reviews", method: .get, headers: headers(try gateway.token("eve", ["eng"]))) { response in
                #expect(String(buffer: response.body) == "[]")
            }
            try await client.execute(uri: "/api/reviews/\(ticket.id)/approve", method: .post,
                                     headers: headers(try gateway.token("lena", ["dba-leads"]))) { response in
                #expect(response.status == .ok)
            }
        }
        #expect(await outcome.value == .approved(by: ["lena"]))
        await session.close(reason: "done")
    }
}
