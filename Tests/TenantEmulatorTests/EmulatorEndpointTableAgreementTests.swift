import Policy
import Testing

@testable import TenantEmulator

/// The emulator keeps its own endpoint table on purpose (it plays the tenant, so a gateway that forgot a scope still
/// meets the tenant's 403). The two tables must still describe the same API, or a local run tests the gateway
/// against a tenant that does not exist. This lives here, not in PolicyTests, because only this target sees both
/// modules.
@Suite("Emulator endpoint table against the gateway's")
struct EmulatorEndpointTableAgreementTests {
    /// Routes the gateway knows and the emulator does not implement, each with its reason.
    static let gatewayOnlyRoutes: Set<String> = [
        // shared/reference/endpoints.md: in the Python SDK 2.0.0 but not in the public description the emulator
        // follows, so the emulator answers it 404 as the tenant of that description would.
        "GET user-stores"
    ]

    @Test("every emulator operation is in the gateway's table with the same scopes and OK status")
    func emulatorRowsAreInTheGatewayTable() {
        let table = EndpointTable.embedded
        for row in EmulatorEndpoint.all {
            let route = "\(row.method) \(row.pathTemplate)"
            guard let endpoint = table.endpoint(method: row.method, template: row.pathTemplate) else {
                Issue.record("\(route) (\(row.operation)): not in the gateway's endpoint table")
                continue
            }
            let scopes: Comment = "\(route): gateway scopes \(endpoint.scopes), emulator \(row.scopes)"
            #expect(Set(endpoint.scopes) == Set(row.scopes), scopes)
            // Equal sets can still hide a repeated scope in either table.
            #expect(endpoint.scopes.count == row.scopes.count, scopes)
            #expect(
                endpoint.okStatus == row.successStatus,
                "\(route): gateway OK \(endpoint.okStatus), emulator \(row.successStatus)")
        }
    }

    @Test("every gateway operation is emulated, except the documented gateway-only routes")
    func gatewayRowsAreEmulated() {
        let emulated = Set(EmulatorEndpoint.all.map { "\($0.method) \($0.pathTemplate)" })
        for endpoint in EndpointTable.embedded.endpoints where !Self.gatewayOnlyRoutes.contains(endpoint.routeName) {
            #expect(emulated.contains(endpoint.routeName), "\(endpoint): not in EmulatorEndpoint.all")
        }
        // An allowance that outlives its reason would hide a real gap.
        for route in Self.gatewayOnlyRoutes {
            #expect(!emulated.contains(route), "\(route) is emulated now: drop it from gatewayOnlyRoutes")
            #expect(EndpointTable.embedded.endpoint(named: route) != nil, "\(route) is not in the gateway's table")
        }
    }
}
