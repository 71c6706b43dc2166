import Adapters
import Crypto
import Foundation
@testable import Gateway

/// A temporary folder removed when the value goes away.
final class TemporaryDirectory: Sendable {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "sluice-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A runtime over a temporary state dir, a manual clock and the project's corpora.
struct TestGateway: Sendable {
    let directory = TemporaryDirectory()
    let clock = ManualClock(start: Int64(Date().timeIntervalSince1970) * 1_000_000)
    let runtime: GatewayRuntime
    let key: Curve25519.Signing.PrivateKey

    static let connections = """
    connections:
      - name: app-db
        type: postgres
        target: 127.0.0.1:5432
        credential: { username: app, password_env: SLUICE_TEST_PASSWORD }
        access: { groups: [eng, dpo, support] }
        masking: { profile: default, groups: { support: partial }, unmasked_groups: [dpo], columns: { "customers.ssn": redact, "*.email": hash } }
        guardrails:
          - { match: '(?i)\\bdrop\\s+table\\b', action: block, message: "DROP TABLE is not allowed here" }
          - { class: delete_without_where, action: review }
        reviews: { approvers: [dba-leads], min_approvals: 1, timeout: 10m }
      - name: vault
        type: ssh
        target: 127.0.0.1:22
        access: { groups: [eng], requires_grant: true }
        reviews: { approvers: [sre-leads], min_approvals: 2, timeout: 5m, max_grant: 2h }
    """

    init(extra: String = "", fetch: @escaping HTTPFetcher = { _ in throw TokenError(.providerUnavailable, "offline") }) throws {
        setenv("SLUICE_TEST_PASSWORD", "upstream-secret", 1)
        var configuration = try GatewayConfiguration.parse(text: Self.connections + "\n" + extra)
        configuration.stateDir = directory.file("state")
        let corpora = ProjectFiles.locate("corpora") ?? "corpora"
        configuration.detectors = [corpora]
        runtime = try GatewayServer.makeRuntime(configuration, logger: .init(label: "test"), clock: clock, fetch: fetch)
        key = try StateDirectory(path: configuration.stateDir).signingKey()
    }

    func token(_ user: String, _ groups: [String]) throws -> String {
        try DevIssuer.mint(user: user, groups: groups, ttl: .seconds(3600), key: key,
                           now: Date(timeIntervalSince1970: Double(clock.nowMicros()) / 1_000_000))
    }
}
