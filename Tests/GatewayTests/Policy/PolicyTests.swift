import Adapters
import MaskEngine
import Testing
@testable import Gateway

@Suite struct PolicyTests {
    static let configuration = try! GatewayConfiguration.parse(text: """
    connections:
      - name: db
        type: postgres
        target: 127.0.0.1:5432
        access: { groups: [eng, support, dpo] }
        masking: { profile: default, groups: { support: partial }, unmasked_groups: [dpo], columns: { "customers.ssn": redact, "*.email": hash } }
        guardrails:
          - { match: '(?i)\\bdrop\\s+table\\b', action: block, message: "DROP TABLE is not allowed here" }
          - { class: delete_without_where, action: review }
          - { class: ddl, action: allow, groups: [dba] }
          - { class: ddl, action: review }
          - { match: '^select pg_sleep', action: block }
    """)

    static let connection = try! CompiledConnection(configuration.connections[0])
    static let eng = Identity(user: "alice", groups: ["eng"], issuer: "t")
    static let dba = Identity(user: "dora", groups: ["eng", "dba"], issuer: "t")

    static let table: [(String, [String], Identity, GatewayConfiguration.Rule.Action, Int?)] = [
        ("select 1", ["read"], eng, .allow, nil),
        ("DROP TABLE customers", ["ddl", "drop"], eng, .block, 0),
        ("drop   table x", ["ddl"], dba, .block, 0),
        ("delete from customers", ["write", "delete_without_where"], eng, .review, 1),
        ("delete from customers where id = 1", ["write"], eng, .allow, nil),
        ("create index i on t(x)", ["ddl"], dba, .allow, 2),
        ("create index i on t(x)", ["ddl"], eng, .review, 3),
        ("select pg_sleep(1)", ["read"], eng, .block, 4),
        ("SELECT pg_sleep(1)", ["read"], eng, .allow, nil),
    ]

    @Test func decisionsFollowTheFirstMatchingRule() {
        for (text, classes, identity, action, rule) in Self.table {
            let decision = Self.connection.decide(Command(text: text, classes: classes), for: identity)
            #expect(decision.action == action, "\(text) as \(identity.user)")
            #expect(decision.rule == rule, "\(text) as \(identity.user)")
        }
    }

    @Test func blockCarriesTheRuleMessageOrAGeneratedOne() {
        #expect(Self.connection.decide(Command(text: "drop table x"), for: Self.eng).message == "DROP TABLE is not allowed here")
        #expect(Self.connection.decide(Command(text: "select pg_sleep(2)"), for: Self.eng).message == "blocked by policy on db (rule 5)")
    }

    @Test func maskingFollowsGroups() {
        #expect(Self.connection.profileName(for: Self.eng) == "default")
        #expect(Self.connection.profileName(for: Identity(user: "s", groups: ["support"], issuer: "t")) == "partial")
        #expect(Self.connection.profileName(for: Identity(user: "d", groups: ["support", "dpo"], issuer: "t")) == nil)
        #expect(Self.connection.columnStyle(table: "customers", column: "SSN") == .redact)
        #expect(Self.connection.columnStyle(table: "orders", column: "email") == .hash)
        #expect(Self.connection.columnStyle(table: "orders", column: "ssn") == nil)
    }

    @Test func aProfileNamingAnUnknownDetectorIsRefused() throws {
        for (selector, key) in [("detectors: [emial]", "emial"), ("detectors: ['*'], exclude: [credit_crad]", "credit_crad"),
                                ("detectors: ['category:pi']", "category:pi"), ("styles: { ipv5: redact }", "ipv5")] {
            let configuration = try GatewayConfiguration.parse(text: """
            masking:
              profiles:
                narrow: { \(selector) }
            """)
            let error = #expect(throws: ConfigurationError.self, "\(selector)") { try CompiledPolicy(configuration: configuration) }
            #expect(error?.key == "masking.profiles.narrow", "\(selector)")
            #expect(error?.reason.contains("unknown detector '\(key)'") == true, "\(selector)")
            #expect(error?.reason.contains("category:secret") == true, "\(selector)")
        }
        // Known ids, categories and `*` load.
        let fine = try GatewayConfiguration.parse(text: """
        masking:
          profiles:
            narrow: { detectors: [email, 'category:secret'], exclude: [jwt], styles: { email: partial } }
        """)
        _ = try CompiledPolicy(configuration: fine)
    }

    @Test func accessNeedsAGroup() {
        #expect(Self.connection.groupAllows(Self.eng))
        #expect(!Self.connection.groupAllows(Identity(user: "x", groups: ["sales"], issuer: "t")))
    }
}

@Suite struct PatternSetTests {
    @Test func blockAndReviewRulesMatchCanonicalFormsButAllowRulesOnlyTheText() throws {
        let configuration = try GatewayConfiguration.parse(text: """
        connections:
          - name: box
            type: ssh
            target: 127.0.0.1:22
            guardrails:
              - { match: '^git\\b', action: allow }
              - { match: '\\brm\\s+-rf\\b', action: block, message: "rm -rf" }
              - { match: '(\\w+) \\1 sudo', action: review, message: "odd" }
              - { match: 'rm', action: review, message: "any rm" }
        """)
        let connection = try CompiledConnection(configuration.connections[0])
        #expect(connection.patterns.unsupported == [2])
        let eng = Identity(user: "a", groups: [], issuer: "t")
        // A spelling only a canonical form reveals is blocked.
        #expect(connection.decide(SSHCommands.exec("r''m -r -f /tmp/x"), for: eng).message == "rm -rf")
        // The form `git status` of the second command does not allow the line: the rm rules decide.
        #expect(connection.decide(SSHCommands.exec("rm -fr /; git status"), for: eng).message == "rm -rf")
        #expect(connection.decide(SSHCommands.exec("r''m x; git status"), for: eng).message == "any rm")
        #expect(connection.decide(SSHCommands.exec("git status"), for: eng).action == .allow)
        // The Swift Regex fallback looks at the forms too.
        #expect(connection.decide(Command(text: "x", forms: ["a a sudo"]), for: eng).message == "odd")
    }

    @Test func rulesHyperscanCannotCompileFallBackToSwiftRegex() throws {
        let configuration = try GatewayConfiguration.parse(text: """
        connections:
          - name: db
            type: postgres
            target: 127.0.0.1:5432
            guardrails:
              - { match: '(\\w+) \\1', action: block, message: "repeated word" }
              - { match: '(?i)\\bdrop\\s+table\\b', action: block, message: "drop" }
        """)
        let connection = try CompiledConnection(configuration.connections[0])
        #expect(connection.patterns.unsupported == [0])
        let eng = Identity(user: "a", groups: [], issuer: "t")
        #expect(connection.decide(Command(text: "select select"), for: eng).message == "repeated word")
        #expect(connection.decide(Command(text: "DROP  TABLE t"), for: eng).message == "drop")
        #expect(connection.decide(Command(text: "select 1"), for: eng).action == .allow)
    }

    @Test func patternSetReportsEachMatchingPattern() throws {
        let set = PatternSet(patterns: ["^delete", "(?i)drop", "x{3}"])
        #expect(set.unsupported.isEmpty)
        #expect(try set.matches("delete from t where a = 'xxx'") == [true, false, true])
        #expect(try set.matches("") == [false, false, false])
    }
}
