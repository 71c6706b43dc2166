import Foundation
import Adapters
@testable import Gateway
import Testing

@Suite struct ConfigurationTests {
    @Test func emptyConfigurationGivesTheDocumentedDefaults() throws {
        let configuration = try GatewayConfiguration.parse(text: "")
        #expect(configuration.listen.admin == HostPort(host: "127.0.0.1", port: 8080))
        #expect(configuration.listen.postgres == HostPort(host: "127.0.0.1", port: 15432))
        #expect(configuration.stateDir == ".sluice")
        #expect(configuration.storeURL == "sqlite:.sluice/sluice.db")
        #expect(configuration.identity.devIssuer)
    }

    @Test func unknownKeyIsNamedWithFileLineAndPath() throws {
        let text = """
        listen:
          admin: 127.0.0.1:9000
        connections:
          - name: app-db
            type: postgres
            target: 127.0.0.1:5432
            acess: { groups: [eng] }
        """
        let error = #expect(throws: ConfigurationError.self) { try GatewayConfiguration.parse(text: text, file: "x.yaml") }
        #expect(error?.file == "x.yaml")
        #expect(error?.key == "connections[0].acess")
        #expect(error?.line == 7)
    }

    @Test func inlinePasswordIsRefused() throws {
        let text = """
        connections:
          - { name: db, type: postgres, target: "127.0.0.1:5432", credential: { username: u, password: hunter2 } }
        """
        let error = #expect(throws: ConfigurationError.self) { try GatewayConfiguration.parse(text: text) }
        #expect(error?.key == "connections[0].credential.password")
        #expect(!(error?.description.contains("hunter2") ?? true))
    }

    @Test func thePostgreSQLStoreTakesItsPasswordFromTheEnvironmentOrAFileNeverTheURL() throws {
        let plain = try GatewayConfiguration.parse(text: "store: postgres://sluice@db.internal:5432/audit?sslmode=require")
        #expect(plain.storeURL == "postgres://sluice@db.internal:5432/audit?sslmode=require")
        #expect(plain.storeCredential == GatewayConfiguration.CredentialSource())
        let withEnv = try GatewayConfiguration.parse(text: "store: { url: 'postgres://sluice@db/audit', password_env: SLUICE_STORE_PASSWORD }")
        #expect(withEnv.storeURL == "postgres://sluice@db/audit")
        #expect(withEnv.storeCredential.passwordEnv == "SLUICE_STORE_PASSWORD")
        let inURL = #expect(throws: ConfigurationError.self) {
            try GatewayConfiguration.parse(text: "store: postgres://sluice:Hunter2-secret@db/audit")
        }
        #expect(inURL?.key == "store")
        #expect(!(inURL?.description.contains("Hunter2") ?? true))
        let cases: [(String, String)] = [
            ("store: mysql://u@db/a", "store"),
            ("store: postgres://db/audit", "store"),
            ("store: 'postgres://u@db/a?sslmode=verify-full'", "store"),
            ("store: { password_env: X }", "store"),
            ("store: { url: 'postgres://u@db/a', password: x }", "store.password"),
            ("store: { url: 'sqlite:x.db', password_env: X }", "store"),
        ]
        for (text, key) in cases {
            let error = #expect(throws: ConfigurationError.self, "\(text)") { try GatewayConfiguration.parse(text: text) }
            #expect(error?.key == key, "\(text)")
        }
    }

    @Test func badValuesAreExplained() throws {
        let cases: [(String, String)] = [
            ("listen: { admin: nowhere }", "listen.admin"),
            ("connections: [{ name: a, type: ftp, target: 'h:1' }]", "connections[0].type"),
            ("connections: [{ name: a, type: postgres, target: 'h:1', guardrails: [{ match: '(', action: block }] }]", "connections[0].guardrails[0].match"),
            ("connections: [{ name: a, type: postgres, target: 'h:1', guardrails: [{ match: 'x', action: maybe }] }]", "connections[0].guardrails[0].action"),
            ("connections: [{ name: a, type: postgres, target: 'h:1', masking: { profile: nope } }]", "connections[0].masking.profile"),
            ("connections: [{ name: a, type: postgres, target: 'h:1', reviews: { timeout: soon } }]", "connections[0].reviews.timeout"),
            ("identity: { oidc: [{ issuer: 'idp', audience: a }] }", "identity.oidc[0].issuer"),
            ("connections: [{ name: a, type: ssh, target: 'h:22', port_forwarding: ['db'] }]", "connections[0].port_forwarding"),
            ("connections: [{ name: a, type: postgres, target: 'h:1', port_forwarding: ['db:5432'] }]", "connections[0].port_forwarding"),
            ("connections: [{ name: a, type: postgres, target: 'h:1', guardrails: [{ class: delet_without_where, action: review }] }]",
             "connections[0].guardrails[0].class"),
            ("connections: [{ name: a, type: ssh, target: 'h:22', guardrails: [{ class: drop, action: block }] }]", "connections[0].guardrails[0].class"),
            ("limits: { startup_timeout: 0s }", "limits.startup_timeout"),
            ("limits: { startup_timeout: 1h }", "limits.startup_timeout"),
            ("limits: { login_timeout: 5s }", "limits.login_timeout"),
            ("limits: { max_message_bytes: 1000 }", "limits.max_message_bytes"),
        ]
        for (text, key) in cases {
            let error = #expect(throws: ConfigurationError.self, "\(text)") { try GatewayConfiguration.parse(text: text) }
            #expect(error?.key == key, "\(text)")
        }
    }

    @Test func relativePathsResolveAgainstTheConfigurationFilesFolder() throws {
        let directory = TemporaryDirectory()
        let folder = directory.path + "/gw"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let file = folder + "/sluice.yaml"
        try """
        state_dir: state
        store: sqlite:data/sluice.db
        tls: { cert: certs/tls.crt, key: /etc/abs.key }
        detectors: [corpora, ../shared-corpora, /opt/corpora]
        connections:
          - { name: box, type: ssh, target: 'h:22', credential: { username: u, private_key_file: keys/id } }
          - { name: k8s, type: kubernetes, target: 'https://h:6443', ca_file: ca.crt, credential: { token_file: ./token } }
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let configuration = try GatewayConfiguration.parse(file: file)
        #expect(configuration.stateDir == folder + "/state")
        #expect(configuration.storeURL == "sqlite:" + folder + "/data/sluice.db")
        #expect(configuration.tls == .init(cert: folder + "/certs/tls.crt", key: "/etc/abs.key"))
        #expect(configuration.detectors == [folder + "/corpora", directory.path + "/shared-corpora", "/opt/corpora"])
        #expect(configuration.connections[0].credential.privateKeyFile == folder + "/keys/id")
        #expect(configuration.connections[1].caFile == folder + "/ca.crt")
        #expect(configuration.connections[1].credential.tokenFile == folder + "/token")
        // The default state_dir is next to the file too.
        try "listen: { admin: 127.0.0.1:9000 }".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try GatewayConfiguration.parse(file: file).stateDir == folder + "/.sluice")
        #expect(try GatewayConfiguration.parse(file: file).storeURL == "sqlite:" + folder + "/.sluice/sluice.db")
    }

    @Test func theStartupTimeoutDefaultsToTenSecondsAndIsConfigurable() throws {
        #expect(try GatewayConfiguration.parse(text: "").startupTimeout == .seconds(10))
        #expect(try GatewayConfiguration.parse(text: "limits: { startup_timeout: 3s }").startupTimeout == .seconds(3))
        #expect(try GatewayConfiguration.parse(text: "").shutdownTimeout == .seconds(10))
        #expect(try GatewayConfiguration.parse(text: "limits: { shutdown_timeout: 30s }").shutdownTimeout == .seconds(30))
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.parse(text: "limits: { shutdown_timeout: 0s }") }
        #expect(try GatewayConfiguration.parse(text: "").maxMessageBytes == 64 << 20)
        #expect(try GatewayConfiguration.parse(text: "limits: { max_message_bytes: 1048576 }").maxMessageBytes == 1 << 20)
    }

    @Test func aListenBlockOpensOnlyTheListenersItNames() throws {
        let named = try GatewayConfiguration.parse(text: "listen: { admin: 127.0.0.1:9000, ssh: 127.0.0.1:2222 }")
        #expect(named.listen.admin == HostPort(host: "127.0.0.1", port: 9000))
        #expect(named.listen.ssh == HostPort(host: "127.0.0.1", port: 2222))
        #expect(named.listen.postgres == nil && named.listen.http == nil && named.listen.kubernetes == nil)
        // No block: every default listener.
        let defaults = try GatewayConfiguration.parse(text: "state_dir: x")
        #expect(defaults.listen == GatewayConfiguration.Listeners())
        // A block that names none, or turns every one off, is a mistake.
        for text in ["listen: {}", "listen: { admin: off, postgres: off }"] {
            let error = #expect(throws: ConfigurationError.self, "\(text)") { try GatewayConfiguration.parse(text: text) }
            #expect(error?.key == "listen", "\(text)")
        }
    }

    @Test func aMisspeltGuardrailClassIsRefusedWithTheKnownOnes() throws {
        let text = """
        connections:
          - name: db
            type: postgres
            target: 127.0.0.1:5432
            guardrails:
              - { class: delet_without_where, action: review }
        """
        let error = #expect(throws: ConfigurationError.self) { try GatewayConfiguration.parse(text: text, file: "x.yaml") }
        #expect(error?.key == "connections[0].guardrails[0].class")
        #expect(error?.line == 6)
        #expect(error?.reason.contains("did you mean 'delete_without_where'") == true)
        #expect(error?.reason.contains("update_without_where") == true)
        // Every class the shipped example and the docs use loads.
        let fine = try GatewayConfiguration.parse(text: """
        connections:
          - { name: db, type: postgres, target: 'h:1', guardrails: [{ class: delete_without_where, action: review }, { class: copy_program, action: block }] }
          - { name: box, type: ssh, target: 'h:22', guardrails: [{ class: sftp, action: block }, { class: dynamic, action: review }, { class: shell_session, action: block }] }
          - { name: api, type: http, target: 'http://h:1', guardrails: [{ class: delete, action: review }, { class: write, action: review }] }
          - { name: k8s, type: kubernetes, target: 'https://h:6443', guardrails: [{ class: kubernetes_exec, action: review }, { class: secrets, action: block }, { class: 'pods/exec', action: review }, { class: 'group:apps', action: review }, { class: 'resource:widgets', action: block }] }
        """)
        #expect(fine.connections.count == 4)
    }

    @Test func portForwardingListReachesTheConnection() throws {
        let configuration = try GatewayConfiguration.parse(text: """
        connections:
          - { name: box, type: ssh, target: "h:22", port_forwarding: ["db.internal:5432", "*.svc:*"] }
        """)
        let permission = configuration.connections[0].portForwarding
        #expect(permission.permits(host: "db.internal", port: 5432))
        #expect(permission.permits(host: "api.svc", port: 8443))
        #expect(!permission.permits(host: "db.internal", port: 22))
    }

    @Test func malformedYAMLIsAnErrorNotACrash() throws {
        let error = #expect(throws: ConfigurationError.self) { try GatewayConfiguration.parse(text: "listen: [unclosed\n  - x: {", file: "bad.yaml") }
        #expect(error?.key == "(yaml)")
    }

    @Test func connectionBlockParsesEveryContractKey() throws {
        let text = """
        connections:
          - name: app-db
            type: postgres
            target: 127.0.0.1:5432
            database: app
            credential: { username: app_ro, password_env: APP_DB_PASSWORD }
            access: { groups: [eng, dba] }
            masking:
              profile: default
              groups: { support: partial }
              unmasked_groups: [dpo]
              columns: { "customers.ssn": redact, "*.email": hash }
            guardrails:
              - { match: '(?i)\\bdrop\\s+table\\b', action: block, message: "DROP TABLE is not allowed here" }
              - { class: delete_without_where, action: review }
            reviews: { approvers: [dba-leads], min_approvals: 2, timeout: 10m }
        """
        let configuration = try GatewayConfiguration.parse(text: text)
        let connection = try #require(configuration.connection(named: "app-db"))
        #expect(connection.kind == .postgres)
        #expect(connection.database == "app")
        #expect(connection.credential.passwordEnv == "APP_DB_PASSWORD")
        #expect(connection.accessGroups == ["eng", "dba"])
        #expect(connection.masking.groups == ["support": "partial"])
        #expect(connection.masking.columns["customers.ssn"] == .redact)
        #expect(connection.guardrails.count == 2)
        #expect(connection.guardrails[1].commandClass == "delete_without_where")
        #expect(connection.reviews.minApprovals == 2)
        #expect(connection.reviews.timeout == .seconds(600))
    }
}

@Suite struct ConfigurationLimitTests {
    static func reviewTimeout(_ text: String) throws -> GatewayConfiguration {
        try GatewayConfiguration.parse(text: """
        connections:
          - { name: db, type: postgres, target: 127.0.0.1:5432, reviews: { timeout: "\(text)" } }
        """)
    }

    @Test(arguments: ["99999999999999999h", "9223372036854775807", "9223372036854775808", "99999999999999999999999999s",
                      "106751991167300d", "3000000000d", "1h99999999999999999m", "315360001", "3650d1s", "-5s", "", "1x", "١٢s"])
    func hugeOrMalformedDurationsAreRefusedCleanly(text: String) throws {
        let error = #expect(throws: ConfigurationError.self) { try Self.reviewTimeout(text) }
        #expect(error?.key == "connections[0].reviews.timeout")
    }

    @Test func durationsUpToTenYearsAreAccepted() throws {
        #expect(try Self.reviewTimeout("3650d").connections[0].reviews.timeout == .seconds(315_360_000))
        #expect(try Self.reviewTimeout("315360000").connections[0].reviews.timeout == .seconds(315_360_000))
        #expect(try Self.reviewTimeout("1h30m").connections[0].reviews.timeout == .seconds(5400))
        #expect(GatewayConfiguration.parseDurationText("99999999999999999h") == nil)
    }

    @Test func listenerTimeoutsCannotOverflowTheirNanosecondConversion() throws {
        // 9999999999 s was accepted and trapped at start when converted to nanoseconds.
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.parse(text: "http: { header_timeout: 9999999999 }") }
        let longest = try GatewayConfiguration.parse(text: "http: { header_timeout: 3650d, body_idle_timeout: 3650d }")
        #expect(longest.http.headerTimeout.nanoseconds == 315_360_000 * 1_000_000_000)
    }

    @Test func aClockSkewOverADayIsRefused() throws {
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.parse(text: "identity: { clock_skew: 2d }") }
        #expect(try GatewayConfiguration.parse(text: "identity: { clock_skew: 5m }").identity.clockSkew == .seconds(300))
    }

    @Test(arguments: ["99999999999999999999", "-1", "1e3", "1073741825"])
    func outOfRangeNumbersAreRefusedCleanly(text: String) throws {
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.parse(text: "recording: { output_cap_bytes: \(text) }") }
    }

    @Test func theDevIssuerRefusesToFaceTheNetworkUnlessToldExplicitly() throws {
        let loopback = try GatewayConfiguration.parse(text: "listen: { admin: 127.0.0.1:9000, ssh: '[::1]:2222', postgres: localhost:5433 }")
        #expect(try loopback.checkDevIssuerExposure().isEmpty)
        for address in ["0.0.0.0:9000", "'[::]:9000'", "10.1.2.3:9000", "gateway.example.com:9000", "127.0.0.1.evil.test:9000"] {
            let exposed = try GatewayConfiguration.parse(text: "listen: { admin: 127.0.0.1:9000, postgres: \(address) }")
            let error = #expect(throws: ConfigurationError.self) { try exposed.checkDevIssuerExposure() }
            #expect(error?.key == "identity.dev_issuer", "\(address)")
            #expect(error?.reason.contains("postgres") == true)
        }
        let allowed = try GatewayConfiguration.parse(text: "listen: { admin: 0.0.0.0:9000 }\nidentity: { dev_issuer_public: true }")
        #expect(try allowed.checkDevIssuerExposure() == ["admin 0.0.0.0:9000"])
        let off = try GatewayConfiguration.parse(text: "listen: { admin: 0.0.0.0:9000 }\nidentity: { dev_issuer: false }")
        #expect(try off.checkDevIssuerExposure().isEmpty)
    }
}
