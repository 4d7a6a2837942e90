import GatewayCore
import Testing

@testable import Policy

private typealias F = PipelineFixture

@Suite("Pipeline: access policy, step-up and the strategy check")
struct PipelineAccessTests {
    @Test("a client not listed under require_client_grant is refused (403)", arguments: F.domains)
    func unlisted(domain: String) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/details"), listenerDomain: domain,
            token: .success(F.token(domain: domain, client: "stranger", scopes: ["read:my_org:details"])))
        run.expectError(status: 403, code: "A0E-403-0001", decision: "refused_access")
        #expect(run.notes.clientID == "stranger")
        #expect(run.notes.rateDecision == nil)
    }

    @Test("allow_all admits an unlisted client with its token's scopes")
    func allowAll() throws {
        let policy = try F.policy(userFlows: "allow_all")
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/members"), listenerDomain: F.canonical,
            token: .success(F.token(client: "stranger", scopes: ["read:my_org:members"])))
        #expect(run.isForward, "\(run.summary)")
    }

    @Test(
        "client credentials under deny_all are refused (403), even for a listed client", arguments: ["web", "stranger"])
    func denyAll(client: String) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/details"), listenerDomain: F.canonical,
            token: .success(F.token(client: client, scopes: ["read:my_org:details"], clientCredentials: true)))
        run.expectError(status: 403, code: "A0E-403-0001", decision: "refused_access")
        #expect(run.detail.contains("deny_all"))
    }

    @Test("client credentials under require_client_grant need a listed client")
    func machineGrant() throws {
        let policy = try F.policy(clientCredentials: "require_client_grant")
        let stranger = PipelineRun.run(
            policy, F.request("GET", "/my-org/details"), listenerDomain: F.canonical,
            token: .success(F.token(client: "stranger", scopes: ["read:my_org:details"], clientCredentials: true)))
        stranger.expectError(status: 403, code: "A0E-403-0001", decision: "refused_access")
        let web = PipelineRun.run(
            policy, F.request("GET", "/my-org/details"), listenerDomain: F.canonical,
            token: .success(F.token(client: "web", scopes: ["read:my_org:details"], clientCredentials: true)))
        #expect(web.isForward, "\(web.summary)")
    }

    @Test(
        "a listed client without my_organization_configuration is a 409",
        arguments: ["require_client_grant", "allow_all"])
    func configurationIssue(userFlows: String) throws {
        let policy = try F.policy(userFlows: userFlows)
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/details"), listenerDomain: F.custom,
            token: .success(F.token(domain: F.custom, client: "bare", scopes: ["read:my_org:details"])))
        run.expectError(status: 409, code: "A0E-409-0001", decision: "refused_access")
    }

    @Test(
        "step-up: deleting an identity provider needs amr mfa",
        arguments: [(nil, false), ([], false), (["pwd"], false), (["pwd", "mfa"], true), (["mfa"], true)]
            as [([String]?, Bool)])
    func stepUp(amr: [String]?, passes: Bool) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, F.request("DELETE", "/my-org/identity-providers/con_1"), listenerDomain: F.canonical,
            token: .success(F.token(scopes: ["delete:my_org:identity_providers"], amr: amr)))
        if passes {
            #expect(run.isForward, "\(run.summary)")
            return
        }
        run.expectError(status: 401, code: "A0E-401-0001", decision: "refused_access")
        let header = run.headers["WWW-Authenticate"] ?? ""
        #expect(header.hasPrefix("Bearer error=\"insufficient_user_authentication\""), "\(header)")
        #expect(header.contains("acr_values=\"\(AccessPolicy.multiFactorACR)\""), "\(header)")
        #expect(run.detail.contains("delete:my_org:identity_providers"))
    }

    /// There is no user behind a client-credentials token, so nobody completed step-up; AccessPolicy's own
    /// refusal says "a client-credentials token cannot". An `amr` claim on such a token must not change that.
    @Test(
        "step-up: a client-credentials token never passes it (403, not a step-up challenge)",
        arguments: [nil, ["mfa"]] as [[String]?])
    func stepUpMachine(amr: [String]?) throws {
        let policy = try F.policy(clientCredentials: "require_client_grant")
        let run = PipelineRun.run(
            policy, F.request("DELETE", "/my-org/identity-providers/con_1"), listenerDomain: F.canonical,
            token: .success(F.token(scopes: ["delete:my_org:identity_providers"], amr: amr, clientCredentials: true)))
        run.expectError(status: 403, code: "A0E-403-0001", decision: "refused_access")
        // RFC 6750 §3: a refused token gets a challenge; insufficient_scope, since the token itself is valid.
        #expect(run.headers["WWW-Authenticate"]?.hasPrefix("Bearer error=\"insufficient_scope\"") == true)
    }

    @Test("step-up does not touch endpoints without a step-up scope")
    func noStepUpElsewhere() throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, F.request("PATCH", "/my-org/identity-providers/con_1"), listenerDomain: F.canonical,
            token: .success(F.token(scopes: ["update:my_org:identity_providers"])))
        #expect(run.isForward, "\(run.summary)")
    }

    @Test(
        "POST identity-providers: the strategy must be one the client allows",
        arguments: [
            (#"{"name":"x","strategy":"okta"}"#, true),
            (#"{"name":"x","strategy":"samlp"}"#, true),
            (#"{"name":"x","strategy":"adfs"}"#, false),
            (#"{"name":"x","strategy":"OKTA"}"#, false),
            (#"{"name":"x"}"#, false),
            (#"{"name":"x","strategy":7}"#, false),
        ])
    func strategy(body: String, passes: Bool) throws {
        let policy = try F.policy()
        for prefix in PipelineEndpointCase.prefixes {
            let run = PipelineRun.run(
                policy, F.request("POST", prefix + "identity-providers"), listenerDomain: F.canonical,
                token: .success(F.token(scopes: ["create:my_org:identity_providers"])), body: Array(body.utf8))
            if passes {
                #expect(run.isForward, "\(run.summary)")
                continue
            }
            run.expectError(status: 400, code: "A0E-400-0003", decision: "refused_validation")
            let first = run.bodyJSON?["validation_errors"]?.arrayValue?.first
            #expect(first?["pointer"]?.stringValue == "/strategy", "\(run.bodyText)")
            #expect(first?["field"]?.stringValue == "strategy")
            #expect(run.notes.rateDecision == nil)
        }
    }

    /// The strict JSON parser refuses duplicate members, so the strategy check cannot see which `strategy`
    /// the tenant will use; a body it cannot judge must not pass unchecked.
    @Test(
        "POST identity-providers: a body the check cannot read is not forwarded unchecked",
        arguments: [
            #"{"strategy":"okta","strategy":"adfs"}"#,
            #"{"strategy":"adfs","strategy":"okta"}"#,
        ])
    func ambiguousBody(body: String) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, F.request("POST", "/my-org/identity-providers"), listenerDomain: F.canonical,
            token: .success(F.token(scopes: ["create:my_org:identity_providers"])), body: Array(body.utf8))
        #expect(run.status == 400, "\(run.summary)")
    }

    @Test("the strategy check is not applied to other endpoints")
    func strategyOnlyOnCreate() throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, F.request("PATCH", "/my-org/identity-providers/con_1"), listenerDomain: F.canonical,
            token: .success(F.token(scopes: ["update:my_org:identity_providers"])),
            body: Array(#"{"strategy":"adfs"}"#.utf8))
        #expect(run.isForward, "\(run.summary)")
    }
}
