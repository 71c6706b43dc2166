import Adapters
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Gateway

/// Endpoint tests of the web console: every page and action, with who may see and do what.
@Suite struct ConsoleTests {
    let gateway: TestGateway

    init() throws { gateway = try TestGateway() }

    func app() async throws -> some ApplicationProtocol {
        let runtime = gateway.runtime
        let router = AdminAPI(runtime: runtime, reloadSource: { runtime.policy.configuration }).router()
        try await Console(runtime: runtime).register(on: router)
        return Application(router: router)
    }

    struct Browser {
        var cookie: String
        var csrf: String
    }

    static func value(_ html: String, after marker: String) -> String? {
        guard let start = html.range(of: marker) else { return nil }
        let rest = html[start.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }

    static func cookie(_ response: TestResponse, _ name: String) -> String? {
        response.headers[values: .setCookie].compactMap { header -> String? in
            guard header.hasPrefix(name + "=") else { return nil }
            return String(header.dropFirst(name.count + 1).prefix { $0 != ";" })
        }.first
    }

    /// The sign-in form's nonce and its cookie, as a browser gets them.
    func signInForm(_ client: some TestClientProtocol) async throws -> (nonce: String, cookie: String) {
        var nonce = ""
        var preCookie = ""
        try await client.execute(uri: "/console/signin", method: .get) { response in
            nonce = Self.value(String(buffer: response.body), after: #"name="nonce" value=""#) ?? ""
            preCookie = Self.cookie(response, "sluice_signin") ?? ""
        }
        return (nonce, "sluice_signin=\(preCookie)")
    }

    /// The dev sign-in, as a browser does it: the form, its nonce cookie, the POST of a token
    /// minted with the gateway's signing key (what `sluice token` prints).
    func signIn(_ client: some TestClientProtocol, user: String, groups: String) async throws -> Browser {
        let form = try await signInForm(client)
        let token = try gateway.token(user, groups.split(separator: ",").map(String.init))
        var session = ""
        try await client.execute(uri: "/console/signin/dev", method: .post,
                                 headers: [.contentType: "application/x-www-form-urlencoded", .cookie: form.cookie],
                                 body: ByteBuffer(string: "nonce=\(form.nonce)&token=\(FormData.encode(token))")) { response in
            #expect(response.status == .seeOther)
            session = Self.cookie(response, "sluice_console") ?? ""
            let header = response.headers[values: .setCookie].first { $0.hasPrefix("sluice_console=") } ?? ""
            #expect(header.contains("HttpOnly") && header.contains("SameSite=Strict"))
        }
        var csrf = ""
        try await client.execute(uri: "/console/sessions", method: .get, headers: [.cookie: "sluice_console=\(session)"]) { response in
            csrf = Self.value(String(buffer: response.body), after: #"name="csrf" value=""#) ?? ""
        }
        #expect(!session.isEmpty && !csrf.isEmpty)
        return Browser(cookie: "sluice_console=\(session)", csrf: csrf)
    }

    func session(_ user: String, _ groups: [String], output: String) async throws -> String {
        let session = try await gateway.runtime.openSession(token: try gateway.token(user, groups), connection: "app-db",
                                                            kind: .postgres, peer: "127.0.0.1")
        session.record(SessionEvent(.input, text: "select email from customers"))
        session.record(SessionEvent(.output, text: output))
        await session.close(reason: "done")
        gateway.runtime.writer.drain()
        return session.id
    }

    @Test func pagesNeedASignInAndFeedsRefuseWithout() async throws {
        try await app().test(.router) { client in
            for path in ["/console/sessions", "/console/reviews", "/console/audit", "/console/connections", "/console/sessions/x"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .seeOther, "\(path)")
                    #expect(response.headers[.location] == "/console/signin")
                }
            }
            for path in ["/console/events", "/console/sessions/x/cast", "/console/sessions/x/live"] {
                try await client.execute(uri: path, method: .get) { response in #expect(response.status == .unauthorized, "\(path)") }
            }
        }
    }

    @Test func everyPageCarriesTheSecurityHeaders() async throws {
        try await app().test(.router) { client in
            try await client.execute(uri: "/console/signin", method: .get) { response in
                let policy = response.headers[.contentSecurityPolicy] ?? ""
                #expect(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'") && !policy.contains("unsafe-inline"))
                #expect(response.headers[values: .init("X-Frame-Options")!] == ["DENY"])
                #expect(!String(buffer: response.body).contains("<script>"))
            }
        }
    }

    @Test func aDevSignInWithAStaleFormIsRefused() async throws {
        try await app().test(.router) { client in
            try await client.execute(uri: "/console/signin/dev", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                     body: ByteBuffer(string: "nonce=forged&user=mallory&groups=admin")) { response in
                #expect(response.status == .forbidden)
                #expect(Self.cookie(response, "sluice_console") == nil)
            }
        }
    }

    @Test func theDevSignInRefusesAChosenNameAndGroupsWithoutAToken() async throws {
        try await app().test(.router) { client in
            let form = try await signInForm(client)
            try await client.execute(uri: "/console/signin/dev", method: .post,
                                     headers: [.contentType: "application/x-www-form-urlencoded", .cookie: form.cookie],
                                     body: ByteBuffer(string: "nonce=\(form.nonce)&user=lena&groups=dba-leads%2Cadmin")) { response in
                #expect(response.status == .badRequest)
                #expect(Self.cookie(response, "sluice_console") == nil)
            }
        }
    }

    @Test func theDevSignInRefusesATokenNotSignedByTheGatewayKey() async throws {
        let forged = try DevIssuer.mint(user: "lena", groups: ["dba-leads", "admin"], ttl: .seconds(3600),
                                        key: Curve25519.Signing.PrivateKey())
        let unsigned = try gateway.token("lena", ["dba-leads"]).split(separator: ".").prefix(2).joined(separator: ".") + "."
        try await app().test(.router) { client in
            for token in [forged, unsigned, "lena"] {
                let form = try await signInForm(client)
                try await client.execute(uri: "/console/signin/dev", method: .post,
                                         headers: [.contentType: "application/x-www-form-urlencoded", .cookie: form.cookie],
                                         body: ByteBuffer(string: "nonce=\(form.nonce)&token=\(FormData.encode(token))")) { response in
                    #expect(response.status == .unauthorized)
                    #expect(Self.cookie(response, "sluice_console") == nil)
                }
            }
        }
    }

    @Test func theDevSignInWithAMintedTokenSignsInAsItsSubject() async throws {
        try await app().test(.router) { client in
            let lena = try await signIn(client, user: "lena", groups: "dba-leads")
            try await client.execute(uri: "/console/sessions", method: .get, headers: [.cookie: lena.cookie]) { response in
                #expect(String(buffer: response.body).contains("lena"))
            }
        }
    }

    @Test func usersSeeTheirOwnSessionsAndAuditorsSeeEveryone() async throws {
        let alices = try await session("alice", ["eng"], output: "alice-row")
        let bobs = try await session("bob", ["eng"], output: "bob-row")
        try await app().test(.router) { client in
            let bob = try await signIn(client, user: "bob", groups: "eng")
            try await client.execute(uri: "/console/sessions", method: .get, headers: [.cookie: bob.cookie]) { response in
                let html = String(buffer: response.body)
                #expect(html.contains(bobs) && !html.contains(alices))
            }
            try await client.execute(uri: "/console/sessions/\(alices)", method: .get, headers: [.cookie: bob.cookie]) { response in
                #expect(response.status == .notFound)
                #expect(!String(buffer: response.body).contains("alice-row"))
            }
            try await client.execute(uri: "/console/sessions/\(alices)/cast", method: .get, headers: [.cookie: bob.cookie]) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/console/audit", method: .get, headers: [.cookie: bob.cookie]) { response in
                #expect(response.status == .forbidden)
            }
            let auditor = try await signIn(client, user: "aud", groups: "auditor")
            try await client.execute(uri: "/console/sessions?user=alice", method: .get, headers: [.cookie: auditor.cookie]) { response in
                let html = String(buffer: response.body)
                #expect(html.contains(alices) && !html.contains(bobs))
            }
            try await client.execute(uri: "/console/sessions/\(alices)", method: .get, headers: [.cookie: auditor.cookie]) { response in
                let html = String(buffer: response.body)
                #expect(response.status == .ok)
                #expect(html.contains("select email from customers") && html.contains("alice-row"))
                #expect(html.contains(#"data-verified>intact"#))
            }
            try await client.execute(uri: "/console/audit", method: .get, headers: [.cookie: auditor.cookie]) { response in
                #expect(String(buffer: response.body).contains("every chain and seal verified"))
            }
        }
    }

    @Test func sessionFiltersNarrowTheList() async throws {
        let id = try await session("alice", ["eng"], output: "x")
        try await app().test(.router) { client in
            let alice = try await signIn(client, user: "alice", groups: "eng")
            for (query, shown) in [("protocol=postgres", true), ("protocol=ssh", false), ("connection=vault", false), ("outcome=sealed", true),
                                   ("outcome=blocked", false), ("from=2000-01-01&to=2000-01-02", false)] {
                try await client.execute(uri: "/console/sessions?\(query)", method: .get, headers: [.cookie: alice.cookie]) { response in
                    #expect(String(buffer: response.body).contains(id) == shown, "\(query)")
                }
            }
        }
    }

    @Test func hugePageNumbersAndDatesAreAnsweredNotTrapped() async throws {
        _ = try await session("alice", ["eng"], output: "x")
        try await app().test(.router) { client in
            let alice = try await signIn(client, user: "alice", groups: "eng")
            for query in ["page=9223372036854775807", "page=-9223372036854775808", "page=99999999999999999999",
                          "outcome=sealed&page=9223372036854775807", "from=99999999-01-01", "to=292277026596-12-04",
                          "from=-0001-01-01&to=9999-12-31"] {
                try await client.execute(uri: "/console/sessions?\(query)", method: .get, headers: [.cookie: alice.cookie]) { response in
                    #expect(response.status == .ok, "\(query)")
                }
            }
        }
        #expect(Console.day("9999-12-31") == 253_402_214_400_000_000)
        #expect(Console.day("99999999-01-01") == nil)
    }

    @Test func approversDecideReviewsAndRequestersCannot() async throws {
        let identity = Identity(user: "alice", groups: ["eng"], issuer: "sluice-dev")
        let connection = try #require(gateway.runtime.policy.configuration.connection(named: "app-db"))
        let review = try await gateway.runtime.reviews.requestCommandReview(identity: identity, connection: connection, sessionID: "s-1",
                                                                            command: Command(text: "delete from t"), reason: "policy")
        try await app().test(.router) { client in
            let alice = try await signIn(client, user: "alice", groups: "eng,dba-leads")
            try await client.execute(uri: "/console/reviews/\(review.id)", method: .get, headers: [.cookie: alice.cookie]) { response in
                let html = String(buffer: response.body)
                #expect(!html.contains("data-approve") && html.contains("data-own"))
            }
            try await client.execute(uri: "/console/reviews/\(review.id)/approve", method: .post,
                                     headers: [.cookie: alice.cookie, .contentType: "application/x-www-form-urlencoded"],
                                     body: ByteBuffer(string: "csrf=\(alice.csrf)")) { response in
                #expect(response.status == .forbidden)
            }
            let lena = try await signIn(client, user: "lena", groups: "dba-leads")
            try await client.execute(uri: "/console/reviews", method: .get, headers: [.cookie: lena.cookie]) { response in
                #expect(String(buffer: response.body).contains("delete from t"))
            }
            try await client.execute(uri: "/console/reviews/\(review.id)/approve", method: .post,
                                     headers: [.cookie: lena.cookie, .contentType: "application/x-www-form-urlencoded"],
                                     body: ByteBuffer(string: "csrf=wrong")) { response in
                #expect(response.status == .forbidden)
            }
            try await client.execute(uri: "/console/reviews/\(review.id)/approve", method: .post,
                                     headers: [.cookie: lena.cookie, .contentType: "application/x-www-form-urlencoded"],
                                     body: ByteBuffer(string: "csrf=\(lena.csrf)")) { response in
                #expect(response.status == .seeOther)
            }
            try await client.execute(uri: "/console/reviews/\(review.id)", method: .get, headers: [.cookie: lena.cookie]) { response in
                #expect(String(buffer: response.body).contains("data-status>approved"))
            }
        }
    }

    @Test func aDenialCarriesItsReason() async throws {
        let identity = Identity(user: "alice", groups: ["eng"], issuer: "sluice-dev")
        let connection = try #require(gateway.runtime.policy.configuration.connection(named: "app-db"))
        let review = try await gateway.runtime.reviews.requestCommandReview(identity: identity, connection: connection, sessionID: "s-1",
                                                                            command: Command(text: "delete from t"), reason: "policy")
        try await app().test(.router) { client in
            let lena = try await signIn(client, user: "lena", groups: "dba-leads")
            try await client.execute(uri: "/console/reviews/\(review.id)/deny", method: .post,
                                     headers: [.cookie: lena.cookie, .contentType: "application/x-www-form-urlencoded"],
                                     body: ByteBuffer(string: "csrf=\(lena.csrf)&reason=not+today")) { response in
                #expect(response.status == .seeOther)
            }
        }
        let denied = try await gateway.runtime.reviews.review(id: review.id)
        #expect(denied?.status == .denied && denied?.denial?.reason == "not today")
    }

    @Test func connectionsShowWhoMayReachWhat() async throws {
        try await app().test(.router) { client in
            let bob = try await signIn(client, user: "bob", groups: "eng")
            try await client.execute(uri: "/console/connections", method: .get, headers: [.cookie: bob.cookie]) { response in
                let html = String(buffer: response.body)
                #expect(html.contains(#"data-connection="app-db""#) && html.contains("DROP TABLE is not allowed here"))
            }
            let outsider = try await signIn(client, user: "olga", groups: "marketing")
            try await client.execute(uri: "/console/connections", method: .get, headers: [.cookie: outsider.cookie]) { response in
                #expect(!String(buffer: response.body).contains(#"data-connection="app-db""#))
            }
        }
    }

    @Test func signingOutEndsTheSession() async throws {
        try await app().test(.router) { client in
            let bob = try await signIn(client, user: "bob", groups: "eng")
            try await client.execute(uri: "/console/signout", method: .post,
                                     headers: [.cookie: bob.cookie, .contentType: "application/x-www-form-urlencoded"],
                                     body: ByteBuffer(string: "csrf=\(bob.csrf)")) { response in
                #expect(response.status == .seeOther)
            }
            try await client.execute(uri: "/console/sessions", method: .get, headers: [.cookie: bob.cookie]) { response in
                #expect(response.status == .seeOther)
            }
        }
    }

    @Test func anOpenSessionCanBeWatchedLiveWithMaskedOutputOnly() async throws {
        let session = try await gateway.runtime.openSession(token: try gateway.token("alice", ["eng"]), connection: "app-db",
                                                            kind: .postgres, peer: "127.0.0.1")
        try await app().test(.router) { client in
            let alice = try await signIn(client, user: "alice", groups: "eng")
            // The session produces output while the page watches, then ends.
            let hub = gateway.runtime.hub
            let producer = Task {
                while hub.watchers(of: session.id) == 0 { try await Task.sleep(for: .milliseconds(20)) }
                session.record(SessionEvent(.output, text: "row [EMAIL] 1\n"))
                try await Task.sleep(for: .milliseconds(100))
                await session.close(reason: "done")
            }
            try await client.execute(uri: "/console/sessions/\(session.id)/live", method: .get, headers: [.cookie: alice.cookie]) { response in
                let body = String(buffer: response.body)
                #expect(response.headers[.contentType] == "text/event-stream")
                #expect(body.contains("event: output") && body.contains("row [EMAIL] 1"))
                #expect(body.contains("event: end"))
            }
            try await producer.value
            try await client.execute(uri: "/console/sessions/\(session.id)/live", method: .get, headers: [.cookie: alice.cookie]) { response in
                #expect(response.status == .notFound)   // closed sessions are replayed, not watched
            }
        }
    }

    @Test func theAuditPageChecksTheControlChain() async throws {
        try await app().test(.router) { client in
            // Signing in writes control records; then record #0 is edited behind the gateway's back.
            let auditor = try await signIn(client, user: "aud", groups: "auditor")
            let store = try #require(gateway.runtime.store as? SQLiteStore)
            try store.executeForTesting("UPDATE control_events SET actor = 'mallory' WHERE seq = 0")
            try await client.execute(uri: "/console/audit/verify", method: .post,
                                     headers: [.cookie: auditor.cookie, .contentType: "application/x-www-form-urlencoded"],
                                     body: ByteBuffer(string: "csrf=\(auditor.csrf)")) { response in
                #expect(response.status == .seeOther)
            }
            try await client.execute(uri: "/console/audit", method: .get, headers: [.cookie: auditor.cookie]) { response in
                let body = String(buffer: response.body)
                #expect(!body.contains("every chain and seal verified"))
                #expect(body.contains("control chain record #0: hash mismatch"))
            }
        }
    }

    @Test func theOwnerGetsTheCastAndAuditorsCanVerifyAgain() async throws {
        let id = try await session("alice", ["eng"], output: "cast-line")
        try await app().test(.router) { client in
            let alice = try await signIn(client, user: "alice", groups: "eng")
            try await client.execute(uri: "/console/sessions/\(id)/cast", method: .get, headers: [.cookie: alice.cookie]) { response in
                let body = String(buffer: response.body)
                #expect(response.status == .ok && body.contains("\"version\"") && body.contains("cast-line"))
            }
            try await client.execute(uri: "/console/audit/verify", method: .post,
                                     headers: [.cookie: alice.cookie, .contentType: "application/x-www-form-urlencoded"],
                                     body: ByteBuffer(string: "csrf=\(alice.csrf)")) { response in
                #expect(response.status == .forbidden)
            }
            let auditor = try await signIn(client, user: "aud", groups: "auditor")
            try await client.execute(uri: "/console/audit/verify", method: .post,
                                     headers: [.cookie: auditor.cookie, .contentType: "application/x-www-form-urlencoded"],
                                     body: ByteBuffer(string: "csrf=\(auditor.csrf)")) { response in
                #expect(response.status == .seeOther)
            }
            try await client.execute(uri: "/console/audit", method: .get, headers: [.cookie: auditor.cookie]) { response in
                #expect(String(buffer: response.body).contains("data-days"))
            }
        }
    }
}
