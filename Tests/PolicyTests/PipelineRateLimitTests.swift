import GatewayCore
import Testing

@testable import Policy

private typealias F = PipelineFixture

/// One read of the details by `org` at `now`.
private func read(
    _ policy: RequestPolicy, org: String, at now: Int64, origin: String? = nil, method: String = "GET"
) -> PipelineRun {
    let scope = method == "GET" ? "read:my_org:details" : "update:my_org:details"
    return PipelineRun.run(
        policy, F.request(method, "/my-org/details", origin: origin), listenerDomain: F.canonical,
        token: .success(F.token(scopes: [scope], org: org)), now: now)
}

@Suite("Pipeline: rate limits")
struct PipelineRateLimitTests {
    @Test(
        "public self-service: four immediate reads of one Organization pass, the fifth is the Organization's 429 with every rate-limit header"
    )
    func perOrganization() throws {
        // Tenant 8, Organization 4 reads per second: the Organization's limit is the one hit.
        let policy = try F.policy(tier: "public_self_service")
        for expectedRemaining in [3, 2, 1, 0] {
            let run = read(policy, org: "org_a", at: F.now)
            #expect(run.isForward, "\(run.summary)")
            #expect(run.headers["X-RateLimit-Limit"] == "4")
            #expect(run.headers["X-RateLimit-Remaining"] == String(expectedRemaining))
        }
        let refused = read(policy, org: "org_a", at: F.now)
        refused.expectError(status: 429, code: "A0E-429-0003", decision: "refused_rate_limit_org")
        let h = refused.headers
        let retry = try #require(h["Retry-After"].flatMap { Int($0) })
        #expect(retry >= 1 && retry <= 1)
        #expect(h["X-RateLimit-Limit"] == "4")
        #expect(h["X-RateLimit-Remaining"] == "0")
        let reset = try #require(h["X-RateLimit-Reset"])
        #expect(reset.count == 10, "epoch seconds, not milliseconds: \(reset)")
        let resetSeconds = try #require(Int64(reset))
        #expect(resetSeconds > F.now / F.second && resetSeconds <= F.now / F.second + 1)
        #expect(h["RateLimit-Policy"]?.contains("\"org-read\";q=4;w=1") == true, "\(h["RateLimit-Policy"] ?? "")")
        #expect(h["RateLimit"]?.hasPrefix("\"org-read\";r=0;t=") == true, "\(h["RateLimit"] ?? "")")
        #expect(h["X-Auth0-Error-Kind"] == nil)
        #expect(refused.notes.rateDecision?.admitted == false)
        #expect(refused.notes.rateDecision?.limitedBy == .organization)
        #expect(refused.notes.organizationID == "org_a")
        #expect(refused.detail.contains("4 requests per second"))

        // A quarter second refills one read; a whole second refills the bucket (the tenant's 8 never run out).
        #expect(read(policy, org: "org_a", at: F.now + F.second / 4).isForward)
        #expect(read(policy, org: "org_a", at: F.now + F.second / 4).status == 429)
        for _ in 0..<4 { #expect(read(policy, org: "org_a", at: F.now + F.second + F.second / 4).isForward) }
        #expect(read(policy, org: "org_a", at: F.now + F.second + F.second / 4).status == 429)
    }

    @Test(
        "free tier (tenant and Organization both 4 reads): the fifth read of one Organization spends both, and the tenant's limit, tested first, is the one reported"
    )
    func bothSpentReportsTheTenant() throws {
        let policy = try F.policy(tier: "free")
        for _ in 0..<4 { #expect(read(policy, org: "org_a", at: F.now).isForward) }
        let refused = read(policy, org: "org_a", at: F.now)
        refused.expectError(status: 429, code: "A0E-429-0003", decision: "refused_rate_limit_tenant")
        #expect(refused.headers["X-Auth0-Error-Kind"] == "global-rate-limit")
        #expect(refused.notes.rateDecision?.limitedBy == .tenant)
        #expect(refused.headers["Retry-After"] == "1")
    }

    @Test("free tier: writes have their own limit (2 per second), reads do not spend it")
    func writes() throws {
        let policy = try F.policy(tier: "free")
        for _ in 0..<4 { #expect(read(policy, org: "org_a", at: F.now).isForward) }
        #expect(read(policy, org: "org_a", at: F.now, method: "PATCH").isForward)
        #expect(read(policy, org: "org_a", at: F.now, method: "PATCH").isForward)
        let refused = read(policy, org: "org_a", at: F.now, method: "PATCH")
        refused.expectError(status: 429, code: "A0E-429-0003")
        #expect(refused.headers["X-RateLimit-Limit"] == "2")
        #expect(refused.headers["RateLimit-Policy"]?.contains("\"org-write\";q=2;w=1") == true)
    }

    @Test("public_self_service: the tenant-wide limit (8) refuses a third organization with global-rate-limit")
    func tenantWide() throws {
        let policy = try F.policy(tier: "public_self_service")
        for org in ["org_a", "org_b"] {
            for _ in 0..<4 { #expect(read(policy, org: org, at: F.now).isForward) }
        }
        let refused = read(policy, org: "org_c", at: F.now, origin: F.appOrigin)
        refused.expectError(status: 429, code: "A0E-429-0003", decision: "refused_rate_limit_tenant")
        let h = refused.headers
        #expect(h["X-Auth0-Error-Kind"] == "global-rate-limit")
        #expect(h["X-RateLimit-Limit"] == "8")
        #expect(h["X-RateLimit-Remaining"] == "0")
        #expect(h["Retry-After"] == "1")
        #expect(h["RateLimit-Policy"]?.hasPrefix("\"tenant-read\";q=8;w=1") == true, "\(h["RateLimit-Policy"] ?? "")")
        #expect(h["RateLimit"]?.hasPrefix("\"tenant-read\";r=0;t=") == true)
        #expect(refused.detail.contains("tenant-wide"))
        #expect(refused.notes.rateDecision?.limitedBy == .tenant)
        // The page that got the 429 can read it and its headers.
        #expect(h["Access-Control-Allow-Origin"] == F.appOrigin)
        #expect(h["Access-Control-Expose-Headers"]?.contains("X-Auth0-Error-Kind") == true)
        #expect(h["Access-Control-Expose-Headers"]?.contains("Retry-After") == true)

        // Writes are another class; org_c's refused read spent nothing of its own limit.
        #expect(read(policy, org: "org_c", at: F.now, method: "PATCH").isForward)
        for _ in 0..<4 { #expect(read(policy, org: "org_c", at: F.now + F.second).isForward) }
        #expect(read(policy, org: "org_c", at: F.now + F.second).status == 429)
    }

    @Test("a request refused before the limiter spends nothing")
    func refusalsAreFree() throws {
        let policy = try F.policy(tier: "free")
        for _ in 0..<10 {
            let run = PipelineRun.run(
                policy, F.request("PATCH", "/my-org/details"), listenerDomain: F.canonical,
                token: .success(F.token(scopes: ["read:my_org:details"], org: "org_a")))
            #expect(run.status == 403)
        }
        for _ in 0..<4 { #expect(read(policy, org: "org_a", at: F.now).isForward) }
    }
}
