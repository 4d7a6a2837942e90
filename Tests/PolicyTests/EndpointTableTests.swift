import Foundation
import GatewayCore
import Testing

@testable import Policy

@Suite("Endpoint table")
struct EndpointTableTests {
    @Test("the embedded copy equals policies/endpoints.yaml byte for byte")
    func embeddedMatchesFile() throws {
        let file = try ConfigFixtures.policyFile("endpoints.yaml")
        #expect(Array(file.utf8) == Array(EmbeddedPolicies.endpointsYAML.utf8))
    }

    @Test("the table holds the 41 operations of the reference plus GET user-stores")
    func counts() {
        let table = EndpointTable.embedded
        #expect(table.endpoints.count == 42)
        #expect(Set(table.endpoints.map(\.operation)).count == 42)
        #expect(table.endpoints.enumerated().allSatisfy { $0.offset == $0.element.index })
        #expect(table.endpoint(method: "GET", template: "user-stores")?.scopes == ["read:my_org:user_stores"])
        #expect(table.endpoint(method: "DELETE", template: "")?.operation == "delete-organization")
        #expect(
            table.endpoint(operation: "list-domain-identity-providers")?.scopes == [
                "read:my_org:domains", "read:my_org:identity_providers",
            ])
        #expect(table.endpoint(operation: "verify-domain")?.okStatus == 202)
        #expect(table.endpoint(operation: "delete-member-roles")?.rateClass == .write)
        #expect(table.endpoint(operation: "get-config")?.logResource == .config)
        #expect(table.knownScopes.contains("delete:my_org:identity_providers_scim_tokens"))
    }

    @Test("routes are found by operation name or METHOD path")
    func named() {
        let table = EndpointTable.embedded
        for name in ["get-details", "GET details", "GET /my-org/details", "GET /my-org/v1/details", "GET /details"] {
            #expect(table.endpoint(named: name)?.operation == "get-details", "\(name)")
        }
        #expect(table.endpoint(named: "DELETE /my-org")?.operation == "delete-organization")
        #expect(table.endpoint(named: "DELETE")?.operation == "delete-organization")
        #expect(table.endpoint(named: "GET nothing") == nil)
    }

    @Test(
        "a bad endpoint table is refused with line and path",
        arguments: [
            (
                "  - { operation: a, method: GET, path: \"/x\", scopes: [s], class: read, log_resource: none, ok_status: 200 }",
                "endpoints[0].path", "without leading or trailing"
            ),
            (
                "  - { operation: a, method: GET, path: x, scopes: [], class: read, log_resource: none, ok_status: 200 }",
                "endpoints[0].scopes", "at least one scope"
            ),
            (
                "  - { operation: a, method: GET, path: x, scopes: [s], class: slow, log_resource: none, ok_status: 200 }",
                "endpoints[0].class", "is not one of read | write"
            ),
            (
                "  - { operation: a, method: GET, path: x, scopes: [s], class: read, log_resource: org, ok_status: 200 }",
                "endpoints[0].log_resource", "is not one of"
            ),
            (
                "  - { operation: a, method: GET, path: x, scopes: [s], class: read, log_resource: none, ok_status: 404 }",
                "endpoints[0].ok_status", "out of range"
            ),
            (
                "  - { operation: a, method: GET, path: \"x/{id}/{id}\", scopes: [s], class: read, log_resource: none, ok_status: 200 }",
                "endpoints[0].path", "appears twice"
            ),
            (
                "  - { operation: a, method: GET, path: v1/x, scopes: [s], class: read, log_resource: none, ok_status: 200 }",
                "endpoints[0].path", "version prefix"
            ),
            (
                "  - { operation: a, method: GET, path: x, scopes: [s], class: read, log_resource: none, ok_status: 200, extra: 1 }",
                "endpoints[0].extra", "unknown key"
            ),
        ])
    func refuses(line: String, path: String, message: String) {
        let yaml = "version: 1\nendpoints:\n\(line)\n"
        guard case .failure(let errors) = EndpointTable.load(yaml: yaml, file: "e.yaml") else {
            Issue.record("should be refused")
            return
        }
        #expect(errors.errors.contains { $0.path == path && $0.message.contains(message) && $0.line == 3 }, "\(errors)")
    }

    @Test("two endpoints with the same method and path shape are refused")
    func ambiguous() {
        let yaml = """
            version: 1
            endpoints:
              - { operation: a, method: GET, path: "x/{a}", scopes: [s], class: read, log_resource: none, ok_status: 200 }
              - { operation: b, method: GET, path: "x/{b}", scopes: [s], class: read, log_resource: none, ok_status: 200 }
              - { operation: a, method: PUT, path: "x/{b}", scopes: [s], class: read, log_resource: none, ok_status: 200 }

            """
        guard case .failure(let errors) = EndpointTable.load(yaml: yaml, file: "e.yaml") else {
            Issue.record("should be refused")
            return
        }
        #expect(
            errors.errors.map(\.description) == [
                "e.yaml:4:5: endpoints[1]: GET x/{b} matches the same paths as GET x/{a}",
                "e.yaml:5:18: endpoints[2].operation: operation 'a' is already defined at endpoints[0].operation",
            ])
    }
}
