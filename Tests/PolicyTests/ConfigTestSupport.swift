import Foundation
import GatewayCore
import TestSupport
import Testing

@testable import Policy

/// Fixtures shared by the Policy tests: the repository's `policies/` directory and a minimal config.
enum ConfigFixtures {
    /// `policies/`, found from this file's path so tests run from any working directory.
    static var policiesDirectory: String {
        let here = URL(fileURLWithPath: #filePath)
        return here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("policies").path
    }

    static func policyFile(_ name: String) throws -> String {
        try String(contentsOfFile: policiesDirectory + "/" + name, encoding: .utf8)
    }

    struct ExampleError: Error, CustomStringConvertible {
        var description: String { "policies/tenant.example.yaml lost its commented TLS or edge-mode lines" }
    }

    /// The example tenant file with its TLS listener and edge-mode custom domain uncommented.
    static func exampleWithTLSAndEdge() throws -> String {
        guard let text = ExampleConfig.withTLSAndEdge(try policyFile("tenant.example.yaml")) else {
            throw ExampleError()
        }
        return text
    }

    /// Eleven lines; cases below rely on these line numbers.
    static let minimalText = """
        tenant:
          name: acme
          canonical_domain: acme.us.auth0.com
          custom_domains: [login.acme.com]
          tier: free
        listeners:
          - address: 127.0.0.1:8080
            domain: acme.us.auth0.com
        upstream:
          acme.us.auth0.com: { url: https://acme.us.auth0.com }
          login.acme.com: { url: https://acme-cd.edge.tenants.us.auth0.com, cname_api_key: { env: CNAME_API_KEY } }

        """

    /// The minimal config with exact-text replacements (each must apply) and extra lines appended at line 12.
    static func minimal(_ replacements: [(String, String)] = [], append: String = "") -> String {
        var text = minimalText
        for (old, new) in replacements {
            precondition(text.contains(old), "fixture text not found: \(old)")
            text = text.replacingOccurrences(of: old, with: new)
        }
        return text + append
    }

    static func load(_ yaml: String, readFile: ((String) -> String?)? = nil) throws(ConfigErrors) -> GatewayConfig {
        try GatewayConfig.load(yaml: yaml, file: "tenant.yaml", baseDirectory: "/etc/gw", readFile: readFile)
    }

    static func errors(_ yaml: String) -> [ConfigError] {
        do {
            _ = try load(yaml)
            return []
        } catch {
            return error.errors
        }
    }
}
