import GatewayCore
import Testing

@testable import Policy

/// `AccessPolicy` built with the endpoint table (each client's grant judged per endpoint once) decides exactly
/// as it does without it, including for endpoints that are not the table's.
@Suite("Access policy with the endpoint table")
struct AccessGrantTableTests {
    static let table = EndpointTable.embedded
    static let web = GatewayConfig.Client(
        clientID: "web",
        grantScopes: ["read:my_org:details", "update:my_org:details", "read:my_org:domains"],
        myOrganization: .init(allowedStrategies: ["okta"]))
    static let bare = GatewayConfig.Client(clientID: "bare", grantScopes: ["read:my_org:details"])

    static func token(client: String, scopes: Set<String>, m2m: Bool) -> TokenContext {
        TokenContext(
            subject: m2m ? "\(client)@clients" : "auth0|1", clientID: client, orgID: "org_1", scopes: scopes,
            isClientCredentials: m2m, expiresAt: 0, issuedAt: 0, domain: "a.example.com")
    }

    /// The table's endpoints, and copies of them whose position names another endpoint's scopes (a table the
    /// policy was not built with).
    static var endpoints: [Endpoint] {
        let own = table.endpoints
        let shifted = EndpointTable(endpoints: Array(own.dropFirst()) + [own[0]]).endpoints
        return own + shifted
    }

    @Test(
        "same answer as without the table",
        arguments: [
            GatewayConfig.Access(userFlows: .requireClientGrant, clientCredentials: .denyAll),
            GatewayConfig.Access(userFlows: .allowAll, clientCredentials: .requireClientGrant),
            GatewayConfig.Access(userFlows: .requireClientGrant, clientCredentials: .allowAll),
        ])
    func agreement(access: GatewayConfig.Access) {
        let plain = AccessPolicy(access: access, clients: [Self.web, Self.bare], stepUp: nil)
        let built = AccessPolicy(
            access: access, clients: [Self.web, Self.bare], stepUp: nil, endpoints: Self.table.endpoints)
        let scopeSets: [Set<String>] = [
            [], ["read:my_org:details"], Set(Self.table.knownScopes), ["read:my_org:details", "read:my_org:members"],
        ]
        var passes = 0
        var fails = 0
        for client in ["web", "bare", "stranger"] {
            for scopes in scopeSets {
                for m2m in [false, true] {
                    let token = Self.token(client: client, scopes: scopes, m2m: m2m)
                    for e in Self.endpoints {
                        let expected = plain.admits(token, endpoint: e)
                        #expect(built.admits(token, endpoint: e) == expected, "\(client) \(scopes) \(e)")
                        #expect(expected == ((try? plain.authorize(token, endpoint: e)) != nil))
                        if expected { passes += 1 } else { fails += 1 }
                    }
                }
            }
        }
        #expect(passes > 0 && fails > 20)
    }
}
