import Foundation
import Testing
@testable import Gateway

@Suite struct KubeconfigTests {
    func configuration(_ state: String) throws -> GatewayConfiguration {
        try GatewayConfiguration.parse(text: """
        listen: { kubernetes: 0.0.0.0:16443 }
        state_dir: \(state)
        connections:
          - { name: prod-cluster, type: kubernetes, target: "https://10.0.0.1:6443" }
          - { name: db, type: postgres, target: "127.0.0.1:5432" }
        """)
    }

    @Test func theKubeconfigPointsAtTheConnectionPrefixWithTheGatewayCAAndAnExecPluginNotAToken() throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("kc-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: state) }
        let text = try Kubeconfig.render(configuration: configuration(state), connection: "prod-cluster", sluice: "/usr/bin/sluice",
                                         gateway: "http://127.0.0.1:8080")
        #expect(text.contains("server: https://127.0.0.1:16443/prod-cluster"))
        #expect(text.contains("apiVersion: client.authentication.k8s.io/v1"))
        #expect(text.contains("command: \"/usr/bin/sluice\""))
        #expect(text.contains("args: [\"token\", \"--exec\", \"--gateway\", \"http://127.0.0.1:8080\"]"))
        #expect(!text.contains("token:"))
        let line = try #require(text.split(separator: "\n").first { $0.contains("certificate-authority-data:") })
        let pem = String(decoding: Data(base64Encoded: String(line.split(separator: " ").last ?? ""))!, as: UTF8.self)
        #expect(pem.hasPrefix("-----BEGIN CERTIFICATE-----"))
        let custom = try Kubeconfig.render(configuration: configuration(state), connection: "prod-cluster", sluice: "sluice",
                                           gateway: "http://127.0.0.1:8080", server: "https://gw.example.com/")
        #expect(custom.contains("server: https://gw.example.com/prod-cluster"))
    }

    @Test func onlyKubernetesConnectionsGetOne() throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("kc-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: state) }
        #expect(throws: ConfigurationError.self) { try Kubeconfig.render(configuration: configuration(state), connection: "db", sluice: "s", gateway: "g") }
        #expect(throws: ConfigurationError.self) { try Kubeconfig.render(configuration: configuration(state), connection: "nope", sluice: "s", gateway: "g") }
    }
}
