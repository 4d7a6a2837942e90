import GatewayCore
import Testing

@testable import Policy

private typealias F = PipelineFixture

private let nonMyOrgPaths = [
    "/", "/authorize?client_id=abc&response_type=code", "/u/login", "/.well-known/jwks.json", "/api/v2/users",
    "/my-organization", "/my-orgx/details", "/oauth/token",
]

@Suite("Pipeline: routing outside and inside /my-org")
struct PipelineRouteTests {
    @Test("a non-/my-org path on the custom domain is forwarded unchecked (edge mode)", arguments: nonMyOrgPaths)
    func edgeMode(path: String) throws {
        let policy = try F.policy()
        for authorization in [nil, ["Bearer \(F.rawToken)"]] as [[String]?] {
            let run = PipelineRun.run(
                policy, F.request("GET", path, authorization: authorization), listenerDomain: F.custom,
                token: .failure(TokenRejection(.malformed, "must not be consulted")))
            guard case .forwardUnchecked(let domain, let notes) = run else {
                Issue.record("expected forwardUnchecked, got \(run.summary)")
                continue
            }
            #expect(domain == F.custom)
            #expect(notes.decision == "forwarded_edge")
            #expect(notes.operation == nil)
        }
    }

    @Test("a non-/my-org path on the canonical domain is a 404", arguments: nonMyOrgPaths)
    func canonicalNotFound(path: String) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, F.request("GET", path), listenerDomain: F.canonical, token: .success(F.token(scopes: [])))
        run.expectError(status: 404, code: "A0E-404-0002", decision: "refused_route")
    }

    @Test(
        "an unknown /my-org path is a 404, or with forward_unknown_endpoints forwarded once its token passes",
        arguments: [
            "/my-org/nowhere", "/my-org/v2/details", "/my-org/details/extra", "/my-org/v1/v1/details",
            "/my-org//details", "/my-org/Details",
        ])
    func unknown(path: String) throws {
        let strict = try F.policy()
        let open = try F.policy(forwardUnknown: true)
        for domain in F.domains {
            let refused = PipelineRun.run(
                strict, F.request("GET", path), listenerDomain: domain, token: .success(F.token(scopes: [])))
            refused.expectError(status: 404, code: "A0E-404-0002", decision: "refused_route")
            // No scope is asked for, but the token must be one for this domain, and limits are spent.
            let forwarded = PipelineRun.run(
                open, F.request("GET", path, origin: F.appOrigin), listenerDomain: domain,
                token: .success(F.token(domain: domain, scopes: [])))
            #expect(forwarded.isForward, "\(forwarded.summary)")
            #expect(forwarded.notes.decision == "forwarded_unknown")
            #expect(forwarded.notes.rateDecision?.rateClass == .read)
            #expect(forwarded.headers["X-RateLimit-Limit"] != nil)
            #expect(forwarded.headers["Access-Control-Allow-Origin"] == F.appOrigin)
            #expect(forwarded.notes.operation == nil)
        }
    }

    @Test("forward_unknown_endpoints still checks the token, the client and the origin of an unknown endpoint")
    func forwardUnknownChecksTheToken() throws {
        let policy = try F.policy(forwardUnknown: true)
        let path = "/my-org/new-family/thing_1"
        let missing = PipelineRun.run(
            policy, F.request("POST", path, authorization: nil), listenerDomain: F.canonical,
            token: .success(F.token(scopes: [])))
        missing.expectError(status: 401, code: "A0E-401-0002")
        let otherDomain = PipelineRun.run(
            policy, F.request("POST", path), listenerDomain: F.canonical,
            token: .success(F.token(domain: F.custom, scopes: [])))
        #expect(otherDomain.status == 401, "\(otherDomain.summary)")
        let machine = PipelineRun.run(
            policy, F.request("POST", path), listenerDomain: F.canonical,
            token: .success(F.token(scopes: [], clientCredentials: true)))
        #expect(machine.status == 403, "\(machine.summary)")
        let stranger = PipelineRun.run(
            policy, F.request("POST", path, origin: F.strangerOrigin), listenerDomain: F.canonical,
            token: .success(F.token(scopes: [])))
        stranger.expectError(status: 403, code: "A0E-403-0001", decision: "refused_cors")
        let write = PipelineRun.run(
            policy, F.request("POST", path), listenerDomain: F.canonical, token: .success(F.token(scopes: [])))
        #expect(write.isForward, "\(write.summary)")
        #expect(write.notes.rateDecision?.rateClass == .write)
        // A preflight carries no token: the tenant answers it.
        let preflight = PipelineRun.run(
            policy,
            F.request(
                "OPTIONS", path, origin: F.appOrigin, authorization: nil,
                extra: [("Access-Control-Request-Method", "POST")]),
            listenerDomain: F.canonical, token: .success(F.token(scopes: [])))
        guard case .forwardUnchecked = preflight else {
            Issue.record("a preflight to an unknown endpoint was not forwarded: \(preflight.summary)")
            return
        }
    }

    @Test("forward_unknown_endpoints does not loosen a known endpoint")
    func forwardUnknownKeepsChecks() throws {
        let policy = try F.policy(forwardUnknown: true)
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/details", authorization: nil), listenerDomain: F.canonical,
            token: .success(F.token(scopes: [])))
        run.expectError(status: 401, code: "A0E-401-0002")
    }

    @Test(
        "a known path with a method it lacks is a 405 with Allow",
        arguments: [
            ("PUT", "/my-org/details", "GET, HEAD, PATCH"), ("POST", "/my-org/v1/details", "GET, HEAD, PATCH"),
            ("GET", "/my-org", "DELETE"),
            ("HEAD", "/my-org/v1/", "DELETE"), ("PUT", "/my-org/domains", "GET, HEAD, POST"),
            ("POST", "/my-org/identity-providers/con_1", "GET, HEAD, PATCH, DELETE"),
        ])
    func methodNotAllowed(method: String, path: String, allow: String) throws {
        let policy = try F.policy()
        for domain in F.domains {
            let run = PipelineRun.run(
                policy, F.request(method, path), listenerDomain: domain, token: .success(F.token(scopes: [])))
            run.expectError(status: 405, code: "A0E-405-0001", decision: "refused_route")
            let allowed = Set(
                (run.headers["Allow"] ?? "").split(separator: ",").map {
                    $0.trimmingCharacters(in: " ")
                })
            #expect(allowed == Set(allow.split(separator: ",").map { $0.trimmingCharacters(in: " ") }))
        }
    }

    @Test(
        "a method the gateway implements nowhere is 501 under /my-org/ (RFC 9110 §9.1), not 405",
        arguments: [
            ("get", "/my-org/details"), ("FOO", "/my-org/details"), ("PROPFIND", "/my-org/v1/domains"),
            ("QUERY", "/my-org/nowhere"), ("Delete", "/my-org"),
        ])
    func unimplementedMethod(method: String, path: String) throws {
        let policy = try F.policy()
        for domain in F.domains {
            let run = PipelineRun.run(
                policy, F.request(method, path), listenerDomain: domain, token: .success(F.token(scopes: [])))
            run.expectError(status: 501, code: "A0E-501-0001", decision: "refused_route")
            #expect(run.headers["Allow"] == nil)
        }
        // Outside the API, the custom domain's edge traffic is the tenant's to judge, whatever the method.
        let edge = PipelineRun.run(
            policy, F.request(method, "/authorize"), listenerDomain: F.custom, token: .success(F.token(scopes: [])))
        guard case .forwardUnchecked = edge else {
            Issue.record("an edge request was not forwarded: \(edge.summary)")
            return
        }
    }

    @Test(
        "encoded-slash and dot-segment tricks are a 400 on both domains, before any token",
        arguments: [
            "/my-org/../details", "/my-org/./details", "/my-org/%2e%2e/details", "/my-org/%2E/details",
            "/my-org/details/..", "/my-org/v1/%2e%2e/v1/details", "/%6Dy-org/details", "/%6dy-org/details",
            "/My-Org/details", "/MY-ORG/details", "/my-org/V1/details", "/my-org/%76%31/details", "//my-org/details",
            "/my-org\\details", "/my-org/details%", "/my-org/details%zz", "/my-org/details%00",
            "/foo/../my-org/details",
            "/foo/%2e%2e/my-org/details",
        ])
    func tricks(path: String) throws {
        try expectRefusedBeforeToken(path)
    }

    /// A first segment that decodes to `my-org/...` reaches the tenant's API on an edge that decodes `%2F`
    /// before routing, and a parameter decoding to `x/../../details` names another resource there.
    @Test(
        "an encoded slash that hides the prefix or a dot segment is a 400",
        arguments: [
            "/my-org%2Fdetails", "/my-org%2fv1%2fdetails", "/foo%2F..%2Fmy-org/details",
            "/my-org/identity-providers/con_1%2F..%2F..%2Fdetails", "/my-org/details%2F",
        ])
    func encodedSlash(path: String) throws {
        try expectRefusedBeforeToken(path)
    }

    private func expectRefusedBeforeToken(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let policy = try F.policy(forwardUnknown: true)
        for domain in F.domains {
            let run = PipelineRun.run(
                policy, F.request("GET", path, authorization: nil), listenerDomain: domain,
                token: .success(F.token(domain: domain, scopes: F.allScopes)))
            run.expectError(
                status: 400, code: "A0E-400-0001", decision: "refused_route", sourceLocation: sourceLocation)
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(self.drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
