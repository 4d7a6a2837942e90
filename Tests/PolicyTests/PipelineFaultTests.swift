import GatewayCore
import Testing

@testable import Policy

private typealias F = PipelineFixture

private func get(_ policy: RequestPolicy, _ path: String, org: String = F.orgID, seed: UInt64 = 7) -> PipelineRun {
    PipelineRun.run(
        policy, F.request("GET", path), listenerDomain: F.canonical,
        token: .success(F.token(scopes: ["read:my_org:details", "read:my_org:configuration"], org: org)), seed: seed)
}

@Suite("Pipeline: fault injection")
struct PipelineFaultTests {
    @Test(
        "a rule with share 1.0 answers its route with its status; other routes are forwarded",
        arguments: [
            ("GET details", 503), ("get-details", 503), ("GET /my-org/details", 500), ("GET details", 429),
        ])
    func fires(route: String, status: Int) throws {
        let policy = try F.policy(faults: "[{ route: \(route), share: 1.0, status: \(status) }]")
        for path in ["/my-org/details", "/my-org/v1/details"] {
            let run = get(policy, path)
            guard case .respond(let response, let notes) = run else {
                Issue.record("expected an injected \(status), got \(run.summary)")
                continue
            }
            #expect(response.head.status == status)
            #expect(notes.decision == "fault_injected")
            #expect(notes.error?.status == status)
            #expect(notes.operation == "get-details")
            // The injected answer still tells the client about the (real) rate limit.
            #expect(response.head.headers["X-RateLimit-Limit"] != nil)
            if status == 429 { #expect(response.head.headers["Retry-After"] == "1") }
            let json = try #require(try? JSONValue.parse(response.body))
            #expect(json["status"]?.int64Value == Int64(status))
            #expect(json["detail"]?.stringValue?.contains("Injected fault") == true)
        }
        let other = get(policy, "/my-org/config")
        #expect(other.isForward, "\(other.summary)")
        #expect(other.notes.decision == "forwarded")
    }

    @Test("a delay-only rule from the configuration forwards the request after its delay, with the usual headers")
    func delayOnly() throws {
        let policy = try F.policy(faults: "[{ route: GET details, share: 1.0, delay_ms: 400 }]")
        let run = get(policy, "/my-org/details")
        guard case .forward(let headers, let delay, let notes) = run else {
            Issue.record("expected a delayed forward, got \(run.summary)")
            return
        }
        #expect(delay == 400)
        #expect(notes.decision == "forwarded")
        #expect(notes.error == nil)
        #expect(headers["X-RateLimit-Limit"] != nil)
        let other = get(policy, "/my-org/config")
        guard case .forward(_, let otherDelay, _) = other else {
            Issue.record("expected forward, got \(other.summary)")
            return
        }
        #expect(otherDelay == 0)
    }

    @Test("an injected 429 carries the tenant's 429 body (A0E-429-0003), as the rate limiter's own 429 does")
    func injected429IsTheTenants() throws {
        let policy = try F.policy(faults: "[{ route: GET details, share: 1.0, status: 429 }]")
        let run = get(policy, "/my-org/details")
        #expect(run.status == 429, "\(run.summary)")
        let json = try #require(run.bodyJSON)
        let limited = TenantError.rateLimited("", headers: HTTPFields())
        #expect(json["type"]?.stringValue == "https://auth0.com/api-errors#A0E-429-0003")
        #expect(json["type"]?.stringValue == limited.type)
        #expect(json["title"]?.stringValue == "Endpoint Rate Limit Exceeded")
        #expect(json["status"]?.int64Value == 429)
        #expect(json["detail"]?.stringValue?.contains("Injected fault") == true)
        #expect(run.notes.error?.code == "A0E-429-0003")
        #expect(run.headers["Retry-After"] == "1")
        #expect(run.headers.values("Retry-After").count == 1)
        #expect(run.headers["Content-Type"] == "application/json")
        // The same body shape as a 429 the limiter writes itself.
        let real = try F.policy(tier: "free")
        var last = get(real, "/my-org/details")
        for _ in 0..<20 where last.status != 429 { last = get(real, "/my-org/details") }
        #expect(last.status == 429)
        #expect(last.bodyJSON?["type"] == json["type"])
        #expect(last.bodyJSON?["title"] == json["title"])
    }

    @Test(
        "an injected 5xx carries the tenant's error shape for its status, like the gateway's own 5xx",
        arguments: [500, 502, 503, 504])
    func injected5xxShape(status: Int) throws {
        let policy = try F.policy(faults: "[{ route: GET details, share: 1.0, status: \(status) }]")
        let run = get(policy, "/my-org/details")
        #expect(run.status == status, "\(run.summary)")
        let json = try #require(run.bodyJSON)
        #expect(json["type"]?.stringValue == "https://auth0.com/api-errors#A0E-\(status)-0001")
        #expect(json["title"]?.stringValue == HTTPStatus.reason(status))
        #expect(json["status"]?.int64Value == Int64(status))
        #expect(json["detail"]?.stringValue?.contains("Injected fault") == true)
        #expect(run.headers["Retry-After"] == nil)
        #expect(run.notes.error?.status == status)
    }

    @Test("a rule with share 0 never fires", arguments: [0 as UInt64, 1, 7, 42, 1_000_003])
    func shareZero(seed: UInt64) throws {
        let policy = try F.policy(faults: "[{ route: GET details, share: 0, status: 503 }]")
        for _ in 0..<5 {
            let run = get(policy, "/my-org/details", seed: seed)
            guard case .forward(_, let delay, let notes) = run else {
                Issue.record("expected forward, got \(run.summary)")
                continue
            }
            #expect(delay == 0)
            #expect(notes.decision == "forwarded")
        }
    }

    @Test("share 0.5 fires for about half the requests, the same ones for the same seeds")
    func shareHalf() throws {
        /// One request per seed, each from its own organization 50 ms after the previous one, so neither the
        /// rate limiter nor token expiry decides; a fresh policy per batch.
        func batch(_ seeds: [UInt64]) throws -> [Bool] {
            let policy = try F.policy(faults: "[{ route: GET details, share: 0.5, status: 503 }]")
            return seeds.enumerated().map { index, seed in
                PipelineRun.run(
                    policy, F.request("GET", "/my-org/details"), listenerDomain: F.canonical,
                    token: .success(F.token(scopes: ["read:my_org:details"], org: "org_\(index)")),
                    now: F.now + Int64(index) * F.second / 20, seed: seed
                ).status == 503
            }
        }
        let seeds = Array(0..<400 as Range<UInt64>)
        let first = try batch(seeds)
        let count = first.filter { $0 }.count
        #expect(count > 150 && count < 250, "\(count) of 400")
        let same = try batch(seeds)
        #expect(same == first, "same seeds, same faults")
        let other = try batch(seeds.map { $0 + 1_000_000 })
        #expect(other != first, "different seeds, different draws")
    }

    @Test("a fault is decided after the checks: a refused request is refused, not faulted")
    func afterChecks() throws {
        let policy = try F.policy(faults: "[{ route: GET details, share: 1.0, status: 503 }]")
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/details", authorization: nil), listenerDomain: F.canonical,
            token: .success(F.token(scopes: [])))
        run.expectError(status: 401, code: "A0E-401-0002", decision: "refused_token")
    }

    @Test("an organization rule fires for that organization only")
    func organization() throws {
        let policy = try F.policy(faults: "[{ org: org_faulty, share: 1.0, status: 500 }]")
        #expect(get(policy, "/my-org/details", org: "org_faulty").status == 500)
        #expect(get(policy, "/my-org/config", org: "org_faulty").status == 500)
        #expect(get(policy, "/my-org/details").isForward)
    }

    /// `GatewayConfig.Fault`: "operation: nil: every endpoint; organization: nil: every organization", so a rule
    /// naming both is their conjunction.
    @Test("a rule naming a route and an organization fires only on that route for that organization")
    func routeAndOrganization() throws {
        let policy = try F.policy(faults: "[{ route: GET details, org: org_faulty, share: 1.0, status: 503 }]")
        #expect(get(policy, "/my-org/details", org: "org_faulty").status == 503)
        #expect(get(policy, "/my-org/details").isForward)
        let other = get(policy, "/my-org/config", org: "org_faulty")
        let forwarded = other.isForward
        #expect(forwarded, "the rule names GET details only: \(other.summary)")
    }

    /// The loader accepts a rule with neither `route` nor `org` (the model documents nil as "every"), so the
    /// policy built from that configuration must accept it too.
    @Test("a rule naming neither route nor organization applies to every request")
    func everyRequest() throws {
        let config = try F.config(F.yaml(faults: "[{ share: 1.0, status: 503 }]"))
        #expect(config.faults.count == 1)
        let policy: RequestPolicy
        do {
            policy = try RequestPolicy(config: config, tiers: .embedded)
        } catch {
            Issue.record("a loaded configuration was refused by RequestPolicy: \(error)")
            return
        }
        #expect(get(policy, "/my-org/details").status == 503)
        #expect(get(policy, "/my-org/config").status == 503)
    }

    @Test("the log event's error is the error the client received")
    func notesMatchResponse() throws {
        let policy = try F.policy(faults: "[{ route: GET details, share: 1.0, status: 503 }]")
        let run = get(policy, "/my-org/details")
        let type = run.bodyJSON?["type"]?.stringValue
        #expect(type == run.notes.error?.type, "body \(type ?? "nil") vs notes \(run.notes.error?.type ?? "nil")")
        #expect(run.bodyJSON?["detail"]?.stringValue == run.notes.error?.detail)
    }
}
