import GatewayCore
import Testing

@testable import Policy

private typealias F = PipelineFixture

@Suite("Pipeline: every endpoint, both prefixes, both domains")
struct PipelineEndpointTests {
    @Test("the configuration's endpoint table is the embedded one: 41 operations plus user-stores")
    func table() throws {
        let config = try F.config(F.yaml())
        #expect(config.endpoints == EndpointTable.embedded)
        #expect(config.endpoints.endpoints.count == 42)
        #expect(config.endpoints.endpoint(method: "GET", template: "user-stores") != nil)
        #expect(PipelineEndpointCase.all.count == 42 * 2 * 2)
    }

    /// A body `POST identity-providers` accepts, so the strategy check runs on the way.
    private static func body(_ endpoint: Endpoint) -> [UInt8] {
        endpoint.method == "POST" && endpoint.template == "identity-providers"
            ? Array(#"{"name":"acme-okta","strategy":"okta"}"#.utf8) : []
    }

    @Test(
        "a token with exactly the endpoint's scopes is forwarded with rate-limit headers",
        arguments: PipelineEndpointCase.all)
    func forwarded(_ c: PipelineEndpointCase) throws {
        let policy = try F.policy()
        // amr mfa: the one step-up scope (delete:my_org:identity_providers) must not decide this table.
        let token = F.token(domain: c.domain, scopes: c.endpoint.scopes, amr: ["pwd", "mfa"])
        let run = PipelineRun.run(
            policy, F.request(c.endpoint.method, c.path), listenerDomain: c.domain, token: .success(token),
            body: Self.body(c.endpoint))
        guard case .forward(let headers, let delay, let notes) = run else {
            Issue.record("expected forward, got \(run.summary)")
            return
        }
        #expect(delay == 0)
        #expect(notes.decision == "forwarded")
        #expect(notes.operation == c.endpoint.operation)
        #expect(notes.routeName == c.endpoint.routeName)
        #expect(notes.domain == c.domain)
        #expect(notes.organizationID == F.orgID)
        #expect(notes.clientID == "web")
        #expect(notes.userID == "auth0|user1")
        #expect(notes.scope == c.endpoint.scopes.joined(separator: " "), "the token's scope claim, as given")
        #expect(notes.error == nil)
        #expect(notes.rateDecision?.admitted == true)
        #expect(notes.rateDecision?.rateClass.rawValue == c.endpoint.rateClass.rawValue)
        // public_enterprise: org 8 reads / 4 writes per second, one spent.
        let orgLimit = c.endpoint.rateClass == .read ? 8 : 4
        #expect(headers["X-RateLimit-Limit"] == String(orgLimit))
        #expect(headers["X-RateLimit-Remaining"] == String(orgLimit - 1))
        #expect(headers["X-RateLimit-Reset"] != nil)
        let kind = c.endpoint.rateClass == .read ? "read" : "write"
        #expect(headers["RateLimit-Policy"]?.hasPrefix("\"org-\(kind)\";q=\(orgLimit);w=1") == true)
        #expect(headers["RateLimit"]?.hasPrefix("\"org-\(kind)\";r=\(orgLimit - 1);t=") == true)
        #expect(headers["Retry-After"] == nil)
        #expect(headers["Vary"] == "Origin")
        #expect(headers["Access-Control-Allow-Origin"] == nil)
    }

    @Test(
        "a token lacking one of the endpoint's scopes is refused with 403 naming it",
        arguments: PipelineEndpointCase.missingScope)
    func missingScope(_ c: PipelineEndpointCase) throws {
        let missing = try #require(c.missing)
        let policy = try F.policy()
        // Every other scope the API knows, so only the missing one can explain the refusal.
        let token = F.token(domain: c.domain, scopes: F.allScopes.filter { $0 != missing }, amr: ["mfa"])
        let run = PipelineRun.run(
            policy, F.request(c.endpoint.method, c.path), listenerDomain: c.domain, token: .success(token),
            body: Self.body(c.endpoint))
        run.expectError(status: 403, code: "A0E-403-0002", decision: "refused_scope")
        #expect(run.detail.contains(missing))
        // RFC 6750 §3: the challenge's scope is what the endpoint requires (all of it); the detail names the gap.
        let required = c.endpoint.scopes.joined(separator: " ")
        #expect(run.headers["WWW-Authenticate"] == "Bearer error=\"insufficient_scope\", scope=\"\(required)\"")
        #expect(run.notes.operation == c.endpoint.operation)
        #expect(run.notes.rateDecision == nil, "a refused request spends no rate limit")
    }

    @Test(
        "the two-scope endpoint refuses each scope alone",
        arguments: [
            ("read:my_org:domains", "read:my_org:identity_providers"),
            ("read:my_org:identity_providers", "read:my_org:domains"),
        ])
    func twoScopes(has: String, lacks: String) throws {
        let endpoint = try #require(
            EndpointTable.embedded.endpoint(method: "GET", template: "domains/{domain_id}/identity-providers"))
        #expect(Set(endpoint.scopes) == [has, lacks])
        let policy = try F.policy()
        for domain in F.domains {
            for prefix in PipelineEndpointCase.prefixes {
                let path = prefix + "domains/dom_1/identity-providers"
                let run = PipelineRun.run(
                    policy, F.request("GET", path), listenerDomain: domain,
                    token: .success(F.token(domain: domain, scopes: [has])))
                run.expectError(status: 403, code: "A0E-403-0002", decision: "refused_scope")
                #expect(
                    run.headers["WWW-Authenticate"]
                        == "Bearer error=\"insufficient_scope\", scope=\"\(endpoint.scopes.joined(separator: " "))\"")
                #expect(run.detail.contains(lacks))
                #expect(!run.detail.contains(has), "only the missing scope is named in the detail")
            }
        }
        // Both together pass.
        let both = PipelineRun.run(
            policy, F.request("GET", "/my-org/domains/dom_1/identity-providers"), listenerDomain: F.custom,
            token: .success(F.token(domain: F.custom, scopes: [has, lacks])))
        #expect(both.isForward, "\(both.summary)")
    }

    @Test("a scope the token carries but the client's grant lacks does not open the endpoint")
    func grantIntersection() throws {
        let policy = try F.policy()
        // `partner` is granted read:my_org:details only.
        let token = F.token(client: "partner", scopes: ["read:my_org:details", "update:my_org:details"])
        let read = PipelineRun.run(
            policy, F.request("GET", "/my-org/details"), listenerDomain: F.canonical, token: .success(token))
        #expect(read.isForward, "\(read.summary)")
        let update = PipelineRun.run(
            policy, F.request("PATCH", "/my-org/details"), listenerDomain: F.canonical, token: .success(token))
        update.expectError(status: 403, code: "A0E-403-0002", decision: "refused_scope")
        #expect(update.detail.contains("update:my_org:details"))
    }
}
