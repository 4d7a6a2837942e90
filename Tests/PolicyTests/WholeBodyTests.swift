import GatewayCore
import Testing

@testable import Policy

@Suite("Which request bodies the policy reads")
struct WholeBodyTests {
    @Test(
        "only POST identity-providers (both prefixes) needs its body whole; every other body may stream",
        arguments: [
            ("POST", "/my-org/identity-providers", true), ("POST", "/my-org/v1/identity-providers", true),
            ("POST", "/my-org/identity-providers?x=1", true), ("GET", "/my-org/identity-providers", false),
            ("PATCH", "/my-org/details", false), ("POST", "/my-org/domains", false), ("POST", "/my-org/nope", false),
            ("POST", "/upload", false), ("post", "/my-org/identity-providers", false),
        ])
    func wholeBody(method: String, target: String, expected: Bool) throws {
        let policy = try PipelineFixture.policy()
        #expect(policy.needsWholeBody(RequestHead(method: method, target: target)) == expected)
        // The same rule `authorize` applies: every endpoint that says its body is checked, and only those.
        let checked = policy.config.endpoints.endpoints.filter(\.bodyIsChecked).map(\.operation)
        #expect(checked.count == 1)
    }
}
