import Adapters
import Foundation
import Testing
@testable import Gateway

@Suite struct RuntimeConnectionTests {
    static let spec = #"{"name":"extra-db","type":"postgres","target":"127.0.0.1:6543","database":"app","credential":{"username":"u","password_env":"EXTRA_PASSWORD"},"access":{"groups":["eng"]}}"#

    @Test func aConnectionAddedAtRuntimeIsServedAtOnceAndRecordedWithoutSecrets() async throws {
        let gateway = try TestGateway()
        let runtime = gateway.runtime
        #expect(runtime.policy.connection("extra-db") == nil)
        let added = try runtime.saveConnection(json: Data(Self.spec.utf8), actor: "ann", create: true)
        #expect(added.name == "extra-db")
        #expect(runtime.policy.connection("extra-db")?.config.database == "app")
        #expect(runtime.connectionOrigins()["extra-db"]?.source == "runtime")
        #expect(runtime.connectionOrigins()["app-db"]?.source == "file")
        let event = try #require(try runtime.store.controlEvents(after: -1, limit: 100).last { $0.kind == "connection.added" })
        #expect(event.actor == "ann")
        #expect(event.detail.contains("extra-db") && event.detail.contains("spec_sha256"))
        #expect(!event.detail.contains("EXTRA_PASSWORD"))
        // A session on it opens (the credential resolves from the gateway's environment).
        setenv("EXTRA_PASSWORD", "pw", 1)
        let session = try await runtime.openSession(token: try gateway.token("alice", ["eng"]), connection: "extra-db", kind: .postgres, peer: "p")
        #expect(session.connection.credential.username == "u")
    }

    @Test func addTwiceIsAConflictAndEditOfAnUnknownOneIsNotFound() throws {
        let runtime = try TestGateway().runtime
        _ = try runtime.saveConnection(json: Data(Self.spec.utf8), actor: "ann", create: true)
        #expect { try runtime.saveConnection(json: Data(Self.spec.utf8), actor: "ann", create: true) } throws: {
            ($0 as? ConnectionChangeError)?.code == .conflict
        }
        let other = Self.spec.replacingOccurrences(of: "extra-db", with: "other-db")
        #expect { try runtime.saveConnection(json: Data(other.utf8), actor: "ann", create: false, name: "other-db") } throws: {
            ($0 as? ConnectionChangeError)?.code == .notFound
        }
    }

    @Test func theFileWinsANameClash() throws {
        let runtime = try TestGateway().runtime
        let clash = Self.spec.replacingOccurrences(of: "extra-db", with: "app-db")
        #expect { try runtime.saveConnection(json: Data(clash.utf8), actor: "ann", create: true) } throws: {
            ($0 as? ConnectionChangeError)?.code == .fromFile
        }
        // One stored before the file gained the name is skipped, and says why.
        try runtime.store.putRuntimeConnection(StoredConnection(name: "app-db", spec: clash, updatedBy: "x", updatedAt: 0), create: true)
        runtime.refreshRuntimeConnections()
        #expect(runtime.skippedConnections["app-db"]?.hasPrefix("shadowed") == true)
        #expect(runtime.policy.connection("app-db")?.config.target == "127.0.0.1:5432")
    }

    @Test func anInvalidDefinitionIsRefusedWithTheKeyAndWhy() throws {
        let runtime = try TestGateway().runtime
        let bad = Self.spec.replacingOccurrences(of: "127.0.0.1:6543", with: "no-port")
        #expect { try runtime.saveConnection(json: Data(bad.utf8), actor: "ann", create: true) } throws: {
            guard let error = $0 as? ConnectionChangeError else { return false }
            return error.code == .invalid && error.reason.contains("target")
        }
        let inline = Self.spec.replacingOccurrences(of: #""password_env":"EXTRA_PASSWORD""#, with: #""password":"hunter2""#)
        #expect { try runtime.saveConnection(json: Data(inline.utf8), actor: "ann", create: true) } throws: {
            guard let error = $0 as? ConnectionChangeError else { return false }
            return error.code == .invalid && error.reason.contains("inline secrets") && !error.reason.contains("hunter2")
        }
        #expect(try runtime.store.runtimeConnections().isEmpty)
    }

    @Test func removalStopsServingItAndIsRecorded() throws {
        let runtime = try TestGateway().runtime
        _ = try runtime.saveConnection(json: Data(Self.spec.utf8), actor: "ann", create: true)
        try runtime.removeConnection(name: "extra-db", actor: "ann")
        #expect(runtime.policy.connection("extra-db") == nil)
        #expect(try runtime.store.controlEvents(after: -1, limit: 100).contains { $0.kind == "connection.removed" && $0.actor == "ann" })
        #expect { try runtime.removeConnection(name: "app-db", actor: "ann") } throws: { ($0 as? ConnectionChangeError)?.code == .fromFile }
    }

    @Test func anotherGatewaysChangeIsPickedUpOnRefresh() throws {
        let runtime = try TestGateway().runtime
        try runtime.store.putRuntimeConnection(StoredConnection(name: "extra-db", spec: Self.spec, updatedBy: "bob", updatedAt: 1), create: true)
        #expect(runtime.policy.connection("extra-db") == nil)
        #expect(runtime.refreshRuntimeConnections())
        #expect(runtime.policy.connection("extra-db") != nil)
        #expect(!runtime.refreshRuntimeConnections())
    }

    @Test func aYAMLDefinitionBecomesTheAPIsJSON() throws {
        let json = try GatewayConfiguration.connectionSpecJSON("""
        name: k
        type: kubernetes
        target: https://10.0.0.1:6443
        reviews: { min_approvals: 2 }
        """)
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(object["name"] as? String == "k")
        #expect((object["reviews"] as? [String: Any])?["min_approvals"] as? String == "2")
        let parsed = try GatewayConfiguration.parseRuntimeConnection(String(decoding: json, as: UTF8.self), profiles: MaskingProfile.builtIn)
        #expect(parsed.reviews.minApprovals == 2)
    }
}

@Suite struct JustInTimeConfigurationTests {
    func parse(_ credential: String, type: String = "postgres", target: String = "127.0.0.1:5432") throws -> GatewayConfiguration.Connection {
        let text = "connections:\n  - { name: c, type: \(type), target: \"\(target)\", credential: \(credential) }\n"
        return try #require(try GatewayConfiguration.parse(text: text).connections.first)
    }

    @Test func ephemeralRoleAndCertificateModesParse() throws {
        let role = try parse("{ mode: ephemeral_role, admin: { username: jit, password_env: P }, grant_role: [a, b], ttl: 30m }")
        #expect(role.credential.justInTime == .ephemeralRole(admin: {
            var admin = GatewayConfiguration.AdminLogin(username: "jit")
            admin.passwordEnv = "P"
            return admin
        }(), grantRoles: ["a", "b"], ttl: .seconds(1800)))
        let certificate = try parse("{ mode: certificate, ca_key_file: /ca, principals: deploy }", type: "ssh")
        #expect(certificate.credential.justInTime == .certificate(caKeyFile: "/ca", principals: ["deploy"], ttl: .seconds(300)))
    }

    @Test func modesAreRefusedWhereTheyCannotWork() {
        for (credential, type) in [
            ("{ mode: ephemeral_role, admin: { username: a }, grant_role: r }", "ssh"),
            ("{ mode: certificate, ca_key_file: /ca, principals: [x] }", "postgres"),
            ("{ mode: ephemeral_role, grant_role: r }", "postgres"),
            ("{ mode: ephemeral_role, admin: { username: a, password: x }, grant_role: r }", "postgres"),
            ("{ mode: ephemeral_role, admin: { username: a }, grant_role: r, username: u }", "postgres"),
            ("{ mode: ephemeral_role, admin: { username: a }, grant_role: r, ttl: 1s }", "postgres"),
            ("{ mode: static, ttl: 5m }", "postgres"),
            ("{ mode: certificate, ca_key_file: /ca, principals: [deploy], username: root }", "ssh"),
            ("{ mode: certificate, ca_key_file: /ca, principals: [deploy], private_key_file: /k }", "ssh"),
            ("{ mode: magic }", "postgres"),
        ] {
            #expect(throws: ConfigurationError.self, "\(credential)") { try parse(credential, type: type) }
        }
    }

    @Test func roleNamesCarryTheUserAndStayShortAndSafe() {
        let name = EphemeralRoles.roleName(user: "Alice.O'Brien@example.com")
        #expect(name.hasPrefix("sluice_alice_o_brien_example_com_"))
        #expect(name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") })
        #expect(EphemeralRoles.roleName(user: String(repeating: "x", count: 200)).count <= 63)
        #expect(EphemeralRoles.quoted(#"a"b"#) == #""a""b""#)
    }

    @Test func theSCRAMVerifierHasPostgreSQLsShape() {
        let verifier = PostgresClientAuth.scramVerifier(password: Array("pw".utf8), salt: Array(repeating: 7, count: 16))
        let parts = verifier.split(separator: "$")
        #expect(parts.count == 3 && parts[0] == "SCRAM-SHA-256" && parts[1].hasPrefix("4096:"))
        #expect(parts[2].split(separator: ":").allSatisfy { Data(base64Encoded: String($0))?.count == 32 })
        #expect(!verifier.contains("pw:"))
    }

    @Test func theCredentialMarkerRoundTripsAndNamesNoSecret() {
        let marker = SessionMarker.credential(mode: "ephemeral_role", details: ["role": .string("sluice_a_1"), "valid_until": .string("t")])
        #expect(SessionMarker(json: marker.json) == marker)
        #expect(marker.summary == "credential ephemeral role: role sluice_a_1, valid_until t")
    }
}
