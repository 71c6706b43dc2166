import Foundation
import Testing
@testable import Gateway

/// The configurations shipped in deploy/ are ones the gateway accepts (Tests/IntegrationTests/
/// deploy.sh checks the manifests around them).
@Suite struct DeployArtifactsTests {
    func file(_ relative: String) throws -> String {
        let path = try #require(ProjectFiles.locate(relative), "\(relative) not found")
        return try String(contentsOfFile: path, encoding: .utf8)
    }

    @Test func theKubernetesConfigMapHoldsAConfigurationTheGatewayAccepts() throws {
        let manifest = try file("deploy/kubernetes/configmap.yaml")
        // The block under `sluice.yaml: |`, indented four spaces.
        let lines = manifest.components(separatedBy: "\n")
        let start = try #require(lines.firstIndex { $0.trimmingCharacters(in: .whitespaces) == "sluice.yaml: |" })
        let body = lines[(start + 1)...].prefix { $0.isEmpty || $0.hasPrefix("    ") }.map { String($0.dropFirst(min(4, $0.count))) }
        let configuration = try GatewayConfiguration.parse(text: body.joined(separator: "\n"))
        #expect(configuration.storeURL.hasPrefix("postgres://"))
        #expect(configuration.storeCredential.passwordEnv == "SLUICE_STORE_PASSWORD")
        #expect(try PostgresStoreSettings.parse(configuration.storeURL).tls == .verifyFull)
        #expect(configuration.connection(named: "app-db") != nil)
    }

    @Test func theComposeConfigurationIsAcceptedOnceItsHostKeyIsFilledIn() throws {
        let template = try file("deploy/compose/sluice.yaml")
        #expect(template.contains("@TARGET_SSH_HOST_KEY@"))
        let text = template.replacingOccurrences(of: "@TARGET_SSH_HOST_KEY@",
                                                 with: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBxYz1hL8y0jX1cM1uRMc0H5vGg0hYc7E3c7B6X5c9qK")
        let configuration = try GatewayConfiguration.parse(text: text)
        #expect(configuration.storeURL == "postgres://sluice@store:5432/sluice?sslmode=disable")
        #expect(configuration.connections.map(\.name) == ["app-db", "box"])
    }
}
