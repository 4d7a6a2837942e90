import GatewayCore
import Testing

@testable import Policy

private let table = EndpointTable.embedded
private func endpoint(_ op: String) -> Endpoint { table.endpoint(operation: op)! }

private let web = GatewayConfig.Client(
    clientID: "web",
    grantScopes: [
        "read:my_org:details", "update:my_org:details", "delete:my_org:identity_providers",
        "create:my_org:identity_providers", "read:my_org:domains",
    ],
    myOrganization: .init(allowedStrategies: ["okta", "samlp"]))
private let unconfigured = GatewayConfig.Client(clientID: "bare", grantScopes: ["read:my_org:details"])
private let mfa = GatewayConfig.StepUp(scopes: ["delete:my_org:identity_providers"], requirement: .amr("mfa"))

private func ctx(
    client: String = "web", scopes: Set<String>, clientCredentials: Bool = false, amr: [String] = [], acr: String? = nil
) -> TokenContext {
    TokenContext(
        subject: clientCredentials ? "\(client)@clients" : "auth0|1", clientID: client, orgID: "org_1", scopes: scopes,
        isClientCredentials: clientCredentials, amr: amr, acr: acr, expiresAt: 0, issuedAt: 0, domain: "a.example.com")
}

private func policy(
    user: GatewayConfig.UserFlows = .requireClientGrant, m2m: GatewayConfig.ClientCredentials = .denyAll,
    stepUp: GatewayConfig.StepUp? = nil
) -> AccessPolicy {
    AccessPolicy(access: .init(userFlows: user, clientCredentials: m2m), clients: [web, unconfigured], stepUp: stepUp)
}

@Suite("Access policy")
struct AccessPolicyTests {
    @Test("user flows with require_client_grant use token scopes ∩ the client grant")
    func intersection() throws {
        let token = ctx(scopes: ["read:my_org:details", "read:my_org:members", "update:my_org:details"])
        let grant = try policy().authorize(token, endpoint: endpoint("get-details"))
        #expect(grant.usableScopes == ["read:my_org:details", "update:my_org:details"])
        #expect(grant.client?.clientID == "web")
        // A token scope outside the grant does not open its endpoint.
        #expect {
            try policy().authorize(token, endpoint: endpoint("list-members"))
        } throws: { error in
            let e = error as? TenantError
            return e?.status == 403 && e?.code == "A0E-403-0002" && e?.detail.contains("read:my_org:members") == true
                && e?.headers["WWW-Authenticate"]
                    == "Bearer error=\"insufficient_scope\", scope=\"read:my_org:members\""
        }
    }

    @Test("an unlisted client has no grant under require_client_grant")
    func unlisted() {
        #expect {
            try policy().authorize(
                ctx(client: "stranger", scopes: ["read:my_org:details"]), endpoint: endpoint("get-details"))
        } throws: { error in
            let e = error as? TenantError
            return e?.status == 403 && e?.detail == "The client has no grant for the My Organization API."
        }
    }

    @Test("allow_all lets any client use its token scopes")
    func allowAll() throws {
        let token = ctx(client: "stranger", scopes: ["read:my_org:members"])
        let grant = try policy(user: .allowAll).authorize(token, endpoint: endpoint("list-members"))
        #expect(grant.usableScopes == ["read:my_org:members"])
        #expect(grant.client == nil)
    }

    @Test("a listed client without my_organization_configuration is a configuration issue")
    func configurationIssue() {
        for p in [policy(), policy(user: .allowAll)] {
            #expect {
                try p.authorize(ctx(client: "bare", scopes: ["read:my_org:details"]), endpoint: endpoint("get-details"))
            } throws: { error in
                let e = error as? TenantError
                return e?.status == 409 && e?.code == "A0E-409-0001"
            }
        }
    }

    @Test(
        "client credentials follow their own policy",
        arguments: [
            (GatewayConfig.ClientCredentials.denyAll, "web", 403),
            (.requireClientGrant, "web", 200),
            (.requireClientGrant, "stranger", 403),
            (.allowAll, "stranger", 200),
        ])
    func clientCredentials(policyValue: GatewayConfig.ClientCredentials, client: String, status: Int) {
        let token = ctx(client: client, scopes: ["read:my_org:details"], clientCredentials: true)
        do {
            _ = try policy(m2m: policyValue).authorize(token, endpoint: endpoint("get-details"))
            #expect(status == 200)
        } catch {
            #expect(error.status == status)
            if policyValue == .denyAll { #expect(error.detail.contains("deny_all")) }
        }
    }

    @Test("every required scope must be present; substrings and prefixes do not count")
    func allScopes() {
        let lookalikes: Set<String> = [
            "read:my_org:domains", "read:my_org:identity_providers_x", "read:my_org:identity",
        ]
        let p = AccessPolicy(access: .init(userFlows: .allowAll), clients: [], stepUp: nil)
        #expect {
            try p.authorize(ctx(client: "x", scopes: lookalikes), endpoint: endpoint("list-domain-identity-providers"))
        } throws: { error in
            (error as? TenantError)?.detail
                == "The access token lacks the scope(s) this endpoint requires: read:my_org:identity_providers."
        }
        let both = lookalikes.union(["read:my_org:identity_providers"])
        #expect(throws: Never.self) {
            try p.authorize(ctx(client: "x", scopes: both), endpoint: endpoint("list-domain-identity-providers"))
        }
    }

    @Test("step-up scopes need the configured amr")
    func stepUpAMR() throws {
        let p = policy(stepUp: mfa)
        let scopes: Set<String> = ["delete:my_org:identity_providers", "read:my_org:details"]
        #expect(throws: Never.self) {
            try p.authorize(ctx(scopes: scopes, amr: ["pwd", "mfa"]), endpoint: endpoint("delete-identity-provider"))
        }
        // Endpoints without a step-up scope are not affected.
        #expect(throws: Never.self) { try p.authorize(ctx(scopes: scopes), endpoint: endpoint("get-details")) }
        #expect {
            try p.authorize(ctx(scopes: scopes, amr: ["pwd"]), endpoint: endpoint("delete-identity-provider"))
        } throws: { error in
            guard let e = error as? TenantError else { return false }
            let header = e.headers["WWW-Authenticate"] ?? ""
            return e.status == 401
                && header.hasPrefix("Bearer error=\"insufficient_user_authentication\", error_description=\"")
                && header.hasSuffix(", acr_values=\"http://schemas.openid.net/pape/policies/2007/06/multi-factor\"")
                && e.detail.contains("multi-factor")
        }
    }

    @Test("step-up by acr")
    func stepUpACR() {
        let p = policy(stepUp: .init(scopes: ["update:my_org:details"], requirement: .acr("urn:gold")))
        #expect(throws: Never.self) {
            try p.authorize(
                ctx(scopes: ["update:my_org:details"], acr: "urn:gold"), endpoint: endpoint("update-details"))
        }
        #expect {
            try p.authorize(
                ctx(scopes: ["update:my_org:details"], acr: "urn:silver"), endpoint: endpoint("update-details"))
        } throws: { error in
            (error as? TenantError)?.headers["WWW-Authenticate"]?.hasSuffix("acr_values=\"urn:gold\"") == true
        }
    }

    @Test("a client-credentials token cannot satisfy step-up")
    func stepUpMachine() {
        let p = policy(m2m: .requireClientGrant, stepUp: mfa)
        let token = ctx(scopes: ["delete:my_org:identity_providers"], clientCredentials: true)
        #expect { try p.authorize(token, endpoint: endpoint("delete-identity-provider")) } throws: {
            ($0 as? TenantError)?.status == 403
        }
    }

    @Test(
        "identity-provider strategy must be allowed for the client",
        arguments: [
            (["strategy": "okta", "name": "x"], nil),
            (["strategy": "samlp"], nil),
            (["strategy": "google-apps"], "allowed: okta, samlp"),
            (["name": "x"], "strategy is required"),
            (["strategy": 3], "strategy is required"),
        ] as [(JSONValue, String?)])
    func strategy(body: JSONValue, problem: String?) throws {
        let p = policy()
        let grant = try p.authorize(
            ctx(scopes: ["create:my_org:identity_providers"]), endpoint: endpoint("create-identity-provider"))
        do {
            try p.checkIdentityProviderStrategy(body: body, grant: grant)
            #expect(problem == nil)
        } catch {
            #expect(error.status == 400)
            #expect(error.code == "A0E-400-0003")
            #expect(error.validationErrors.first?.pointer == "/strategy")
            #expect(error.validationErrors.first?.detail.contains(problem ?? "<accepted>") == true)
        }
    }
}

@Suite("Access policy: admits agrees with authorize")
struct AccessAdmitsTests {
    @Test("every endpoint, token shape and policy: admits is true exactly when authorize does not throw")
    func agreement() {
        let acr = GatewayConfig.StepUp(scopes: ["delete:my_org:identity_providers"], requirement: .acr("gold"))
        let policies: [AccessPolicy] = [
            policy(), policy(user: .allowAll), policy(m2m: .allowAll), policy(m2m: .requireClientGrant),
            policy(stepUp: mfa), policy(user: .allowAll, m2m: .allowAll, stepUp: acr),
        ]
        let scopeSets: [Set<String>] = [
            [], ["read:my_org:details"], Set(table.knownScopes), ["read:my_org:details", "read:my_org:members"],
            ["delete:my_org:identity_providers", "read:my_org:identity_providers"],
        ]
        var passes = 0
        var fails = 0
        for access in policies {
            for client in ["web", "bare", "stranger"] {
                for scopes in scopeSets {
                    for m2m in [false, true] {
                        for (amr, acrValue) in [([String](), String?.none), (["mfa"], "gold")] {
                            let token = ctx(
                                client: client, scopes: scopes, clientCredentials: m2m, amr: amr, acr: acrValue)
                            for e in table.endpoints {
                                let general = (try? access.authorize(token, endpoint: e)) != nil
                                #expect(access.admits(token, endpoint: e) == general, "\(client) \(scopes) \(e)")
                                if general { passes += 1 } else { fails += 1 }
                            }
                        }
                    }
                }
            }
        }
        #expect(passes > 100 && fails > 100)
    }
}
