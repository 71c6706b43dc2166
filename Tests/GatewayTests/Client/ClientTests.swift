import Adapters
import Foundation
import Testing
@testable import Gateway

/// Records the forms posted and answers from a script.
final class ScriptedPoster: Sendable {
    private let state: Locked<(answers: [(Int, String)], forms: [[String: String]], headers: [[String: String]])>

    init(_ answers: [(Int, String)]) { state = Locked((answers, [], [])) }

    var forms: [[String: String]] { state.withLock { $0.forms } }
    var headers: [[String: String]] { state.withLock { $0.headers } }

    var poster: FormPoster {
        { _, fields, headers in
            let (status, body) = self.state.withLock { state -> (Int, String) in
                state.forms.append(Dictionary(fields, uniquingKeysWith: { $1 }))
                state.headers.append(Dictionary(headers, uniquingKeysWith: { $1 }))
                return state.answers.isEmpty ? (500, "{}") : state.answers.removeFirst()
            }
            return (status, Data(body.utf8))
        }
    }
}

/// A JWT-shaped token with `exp` (unsigned: only the CLI reads it, the gateway verifies).
func fakeJWT(exp: Int64, name: String = "t") -> String {
    func part(_ json: String) -> String {
        Data(json.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
    }
    return part(#"{"alg":"none"}"#) + "." + part(#"{"exp":\#(exp),"sub":"\#(name)"}"#) + ".sig"
}

@Suite struct TokenCacheTests {
    @Test func theCacheIsPrivateAndKeyedPerGateway() throws {
        let directory = TemporaryDirectory()
        let cache = TokenCache(folder: directory.file("cfg"))
        try cache.store(.init(token: "a", expiresAt: 10, kind: "dev", user: "ann", groups: []), for: "http://g1/")
        try cache.store(.init(token: "b", expiresAt: 10, kind: "dev", user: "bo", groups: []), for: "http://g2")
        #expect(try cache.entry(for: "http://g1")?.token == "a")
        #expect(try cache.load().current == "http://g2")
        let mode = try FileManager.default.attributesOfItem(atPath: cache.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        chmod(cache.path, 0o644)
        #expect(throws: TokenCache.Failure.self) { try cache.load() }
        chmod(cache.path, 0o600)
        try cache.remove(gateway: "http://g2")
        #expect(try cache.load().current == "http://g1")
        try cache.remove(gateway: nil)
        #expect(!FileManager.default.fileExists(atPath: cache.path))
    }

    @Test func anOIDCSignInAboutToExpireIsRefreshedSilently() async throws {
        let directory = TemporaryDirectory()
        let cache = TokenCache(folder: directory.file("cfg"))
        let now = Date(timeIntervalSince1970: 1_000_000)
        try cache.store(.init(token: fakeJWT(exp: 1_000_030), refreshToken: "r1", expiresAt: 1_000_030, kind: "oidc", issuer: "http://idp",
                              tokenEndpoint: "http://idp/token", clientID: "sluice", user: "ann", groups: ["eng"]), for: "http://g")
        let fresh = fakeJWT(exp: 1_003_600, name: "fresh")
        let poster = ScriptedPoster([(200, #"{"id_token":"\#(fresh)","refresh_token":"r2"}"#)])
        let entry = try await cache.validEntry(gateway: "http://g", now: now, post: poster.poster)
        #expect(entry.token == fresh && entry.refreshToken == "r2" && entry.expiresAt == 1_003_600)
        #expect(poster.forms.first?["grant_type"] == "refresh_token" && poster.forms.first?["refresh_token"] == "r1")
        #expect(try cache.entry(for: "http://g")?.token == fresh)
        // Fresh enough: no request at all.
        _ = try await cache.validEntry(gateway: "http://g", now: now, post: ScriptedPoster([]).poster)
    }

    @Test func anExpiredDevTokenOrAFailedRefreshAsksToSignInAgain() async throws {
        let directory = TemporaryDirectory()
        let cache = TokenCache(folder: directory.file("cfg"))
        try cache.store(.init(token: "d", expiresAt: 5, kind: "dev", user: "ann", groups: []), for: "http://g")
        await #expect(throws: TokenCache.Failure.self) { try await cache.validEntry(gateway: "http://g", now: Date(timeIntervalSince1970: 100)) }
        try cache.store(.init(token: "o", refreshToken: "r", expiresAt: 5, kind: "oidc", issuer: "i", tokenEndpoint: "http://t", clientID: "c",
                              user: "ann", groups: []), for: "http://g")
        // A plain OAuth 2 answer (no id_token) cannot refresh a gateway sign-in.
        let poster = ScriptedPoster([(200, #"{"access_token":"opaque"}"#)])
        await #expect(throws: TokenCache.Failure.self) {
            try await cache.validEntry(gateway: "http://g", now: Date(timeIntervalSince1970: 100), post: poster.poster)
        }
        await #expect(throws: TokenCache.Failure.self) { try await cache.validEntry(gateway: "http://elsewhere") }
    }
}

@Suite struct OIDCLoginTests {
    let endpoints = OIDCLogin.Endpoints(authorization: "http://idp/auth", token: "http://idp/token", deviceAuthorization: "http://idp/device")

    @Test func theDeviceGrantPollsUntilApprovedAndSlowsDownWhenAsked() async throws {
        let poster = ScriptedPoster([
            (200, #"{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"http://idp/activate","interval":2,"expires_in":60}"#),
            (400, #"{"error":"authorization_pending"}"#),
            (400, #"{"error":"slow_down"}"#),
            (200, #"{"id_token":"id-1","refresh_token":"r"}"#),
        ])
        let login = OIDCLogin(issuer: "http://idp", clientID: "sluice", post: poster.poster)
        let device = try await login.startDevice(endpoints)
        #expect(device.userCode == "ABCD-EFGH" && device.interval == 2)
        let waits = Locked<[Int]>([])
        let tokens = try await login.pollDevice(device, endpoints: endpoints) { seconds in waits.withLock { $0.append(seconds) } }
        #expect(tokens == OIDCLogin.Tokens(idToken: "id-1", refreshToken: "r"))
        #expect(waits.withLock { $0 } == [2, 2, 7])
        #expect(poster.forms[1]["grant_type"] == "urn:ietf:params:oauth:grant-type:device_code" && poster.forms[1]["device_code"] == "dc")
    }

    @Test func aDeniedDeviceSignInAndAProviderWithoutTheGrantSayWhy() async throws {
        let poster = ScriptedPoster([(400, #"{"error":"access_denied"}"#)])
        let login = OIDCLogin(issuer: "http://idp", clientID: "sluice", post: poster.poster)
        let device = OIDCLogin.Device(deviceCode: "d", userCode: "u", verificationURI: "v", verificationURIComplete: nil, interval: 1, expiresIn: 10)
        await #expect(throws: OIDCLogin.Failure.self) { try await login.pollDevice(device, endpoints: endpoints) { _ in } }
        var none = endpoints
        none.deviceAuthorization = nil
        await #expect(throws: OIDCLogin.Failure.self) { try await login.startDevice(none) }
    }

    @Test func theAuthorizationRequestUsesPKCEAndTheExchangeSendsTheVerifier() async throws {
        let poster = ScriptedPoster([(200, #"{"id_token":"id-2"}"#)])
        let login = OIDCLogin(issuer: "http://idp", clientID: "sluice", clientSecret: "installed-app", post: poster.poster)
        let (verifier, challenge) = OIDCLogin.pkce()
        let url = login.authorizationURL(endpoints, redirect: "http://127.0.0.1:5/callback", state: "st", nonce: "n", challenge: challenge)
        #expect(url.contains("code_challenge_method=S256") && url.contains("code_challenge=\(challenge)") && !url.contains(verifier))
        let tokens = try await login.exchange(code: "c", verifier: verifier, redirect: "http://127.0.0.1:5/callback", endpoints: endpoints)
        #expect(tokens.idToken == "id-2")
        #expect(poster.forms[0]["code_verifier"] == verifier && poster.forms[0]["client_secret"] == nil)
        #expect(poster.headers[0]["Authorization"] == "Basic " + Data("sluice:installed-app".utf8).base64EncodedString())
    }

    @Test func theLoopbackRedirectTakesOnlyItsOwnState() throws {
        let redirect = try LoopbackRedirect()
        @Sendable func get(_ path: String) -> String {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(redirect.port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            let request = "GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n"
            _ = request.withCString { write(fd, $0, strlen($0)) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = read(fd, &buffer, buffer.count)
            return String(decoding: buffer[0..<max(0, count)], as: UTF8.self)
        }
        let answers = Locked<[String]>([])
        let thread = Thread {
            answers.withLock { $0.append(get("/favicon.ico")) }
            answers.withLock { $0.append(get("/callback?code=the-code&state=right")) }
        }
        thread.start()
        #expect(try redirect.waitForCode(state: "right", timeout: 10) == "the-code")
        Thread.sleep(forTimeInterval: 0.2)
        let seen = answers.withLock { $0 }
        #expect(seen.first?.hasPrefix("HTTP/1.1 404") == true)
        #expect(seen.last?.hasPrefix("HTTP/1.1 200") == true)

        let other = try LoopbackRedirect()
        let wrong = Thread {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(other.port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            _ = "GET /callback?code=c&state=forged HTTP/1.1\r\n\r\n".withCString { write(fd, $0, strlen($0)) }
            Thread.sleep(forTimeInterval: 0.5)
            close(fd)
        }
        wrong.start()
        #expect(throws: LoopbackRedirect.Failure.self) { try other.waitForCode(state: "right", timeout: 10) }
    }
}

@Suite struct ConnectPlanTests {
    func view(_ type: String, name: String = "c") -> Views.Connection {
        Views.Connection(name: name, type: type, target: "t", access_groups: [], requires_grant: false, profile: "default", group_profiles: [:],
                         unmasked_groups: [], columns: [:], guardrails: [], approvers: [], min_approvals: 1, credential_mode: "static")
    }

    func client() throws -> Views.ClientConfig {
        var configuration = try GatewayConfiguration.parse(text: "listen: { postgres: 0.0.0.0:15432, ssh: 127.0.0.1:12222, kubernetes: 127.0.0.1:16443, http: off }")
        configuration.stateDir = TemporaryDirectory().path
        var client = Views.ClientConfig(configuration)
        client.ssh_host_key = "ssh-ed25519 AAAAHOST"
        client.tls_certificate = "-----BEGIN CERTIFICATE-----\n"
        return client
    }

    @Test func psqlGetsTheTokenInPGPASSWORDNeverOnItsCommandLine() throws {
        let plan = try ConnectPlan.make(connection: view("postgres", name: "app-db"), client: client(), gateway: "http://gw:8080",
                                        gatewayHost: "gw", user: "ann", token: "SECRET-TOKEN", folder: "/f", sluice: "/bin/sluice",
                                        extra: ["-c", "select 1"])
        #expect(plan.program == "psql")
        #expect(plan.arguments == ["host=gw port=15432 dbname=app-db user=ann sslmode=require", "-c", "select 1"])
        #expect(plan.environment == ["PGPASSWORD": "SECRET-TOKEN"])
        #expect(!plan.display.contains("SECRET-TOKEN") && plan.display.contains("sslmode=require"))
    }

    @Test func sshAsksTheAskpassHelperAndTrustsOnlyTheGatewaysHostKey() throws {
        let plan = try ConnectPlan.make(connection: view("ssh", name: "box"), client: client(), gateway: "http://gw:8080", gatewayHost: "gw",
                                        user: "ann", token: "SECRET-TOKEN", folder: "/f", sluice: "/bin/sluice", extra: ["uptime"])
        #expect(plan.program == "ssh" && plan.arguments.last == "uptime" && plan.arguments.contains("box@127.0.0.1"))
        #expect(plan.arguments.contains("StrictHostKeyChecking=yes") && plan.arguments.contains("UserKnownHostsFile=/f/known_hosts"))
        #expect(plan.environment["SSH_ASKPASS"] == "/bin/sluice" && plan.environment["SSH_ASKPASS_REQUIRE"] == "force")
        #expect(plan.files.first?.contents == "[127.0.0.1]:12222 ssh-ed25519 AAAAHOST\n")
        #expect(!plan.arguments.joined().contains("SECRET-TOKEN") && !plan.environment.values.contains("SECRET-TOKEN"))
    }

    @Test func kubectlGetsAnExecPluginKubeconfig() throws {
        let plan = try ConnectPlan.make(connection: view("kubernetes", name: "prod"), client: client(), gateway: "http://gw:8080",
                                        gatewayHost: "gw", user: "ann", token: "SECRET-TOKEN", folder: "/f", sluice: "/bin/sluice",
                                        extra: ["get", "pods"])
        #expect(plan.arguments == ["--kubeconfig", "/f/kubeconfig-prod", "get", "pods"])
        let kubeconfig = try #require(plan.files.first?.contents)
        #expect(kubeconfig.contains("server: https://127.0.0.1:16443/prod"))
        #expect(kubeconfig.contains(#"args: ["token", "--exec", "--gateway", "http://gw:8080"]"#))
        #expect(!kubeconfig.contains("SECRET-TOKEN"))
    }

    @Test func aListenerThatIsOffSaysSo() throws {
        #expect(throws: ConnectPlan.Failure.self) {
            try ConnectPlan.make(connection: self.view("http"), client: self.client(), gateway: "g", gatewayHost: "h", user: "u", token: "t",
                                 folder: "/f", sluice: "s", extra: [])
        }
    }
}
