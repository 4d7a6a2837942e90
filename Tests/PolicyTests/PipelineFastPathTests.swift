import GatewayCore
import Testing

@testable import Policy

private typealias F = PipelineFixture

@Suite("Pipeline: precomputed routes and checked claims give the general path's answers")
struct PipelineFastPathTests {
    static let methods = ["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "HEAD", "get", "TRACE"]

    /// Every exact path the table precomputes, plus near misses that must take the general path.
    static var paths: [String] {
        var out = [
            "/my-org", "/my-org/", "/my-org/v1", "/my-org/v1/", "/my-org//", "/my-org/v2/details", "/My-Org/details",
            "/my-org/details/", "/my-org/detailz", "/my-org/%64etails", "/my-org/./details", "/my-org/v1//details",
            "/MY-ORG/v1/details", "/my-org/V1/details", "/other", "/", "", "my-org/details", "/my-org/details\u{0}",
        ]
        for e in EndpointTable.embedded.endpoints {
            let concrete = F.concrete(e.template)
            out += ["/my-org/\(concrete)", "/my-org/v1/\(concrete)", "/my-org/\(concrete)/", "/my-org/\(concrete)x"]
        }
        return out
    }

    @Test("every precomputed answer equals the general route, and every exact endpoint path has one")
    func literalRoutes() throws {
        let policy = try F.policy()
        var hits = 0
        for path in Self.paths {
            for method in Self.methods {
                let general = RequestPolicy.routeGeneral(router: policy.router, method: method, path: path[...])
                if let fast = policy.literalRoutes.route(method: method, path: path[...]) {
                    #expect(fast == general, "\(method) \(path)")
                    hits += 1
                }
            }
        }
        for e in EndpointTable.embedded.endpoints where !e.template.contains("{") {
            for prefix in ["/my-org/", "/my-org/v1/"] {
                let route = policy.literalRoutes.route(method: e.method, path: (prefix + e.template)[...])
                #expect(route == .endpoint(e, params: [:], versioned: prefix.hasSuffix("v1/")), "\(e)")
            }
        }
        #expect(policy.literalRoutes.route(method: "GET", path: "/my-org/details/"[...]) == nil)
        #expect(policy.literalRoutes.route(method: "BREW", path: "/my-org/details"[...]) == nil)
        // A path taken out of a longer target (the query cut off) is matched by its bytes.
        let target = "/my-org/details?x=1"
        let path = target[..<target.firstIndex(of: "?")!]
        #expect(policy.literalRoutes.route(method: "GET", path: path) != nil)
        #expect(hits > 20)
    }

    /// Requests through both steps on an exact path; each with and without the claims the first pass checked.
    @Test("authorize with checked claims gives the same outcome, headers and notes as the full check")
    func checkedClaims() throws {
        let cases: [(RequestHead, VerifiedToken)] = [
            (F.request("GET", "/my-org/details", origin: F.appOrigin), F.token(scopes: ["read:my_org:details"])),
            (F.request("GET", "/my-org/v1/details"), F.token(scopes: ["read:my_org:details"], dialect: .rfc9068)),
            (F.request("GET", "/my-org/details", origin: F.partnerOrigin), F.token(scopes: ["read:my_org:details"])),
            (
                F.request("GET", "/my-org/details", origin: F.partnerOrigin),
                F.token(client: "partner", scopes: ["read:my_org:details", "update:my_org:details"])
            ),
            (F.request("PATCH", "/my-org/details"), F.token(client: "partner", scopes: ["update:my_org:details"])),
            (F.request("GET", "/my-org/details", origin: "https://beta.acme.com"), F.token(scopes: F.allScopes)),
            (F.request("GET", "/my-org/details"), F.token(client: "bare", scopes: ["read:my_org:details"])),
        ]
        for (index, (request, token)) in cases.enumerated() {
            // Separate policies: each run spends rate-limit quota, and both runs must see the same state.
            let first = try F.policy()
            let second = try F.policy()
            let plain = run(first, request, token, checked: nil)
            guard let checked = plain.notes.checkedClaims else {
                // A refused token has no checked claims; nothing to compare.
                #expect(plain.notes.tokenContext == nil)
                continue
            }
            let again = run(second, request, token, checked: checked)
            #expect(again.summary == plain.summary, "case \(index)")
            #expect(again.headers == plain.headers, "case \(index)")
            #expect(again.notes == plain.notes, "case \(index)")
            // A checked context for another domain is not used.
            var elsewhere = checked
            elsewhere.context.domain = F.custom
            let third = run(try F.policy(), request, token, checked: elsewhere)
            #expect(third.notes == plain.notes, "case \(index)")
        }
    }

    @Test("an outcome's checked claims are its notes' checked claims, whether it forwards or answers")
    func outcomeCheckedClaims() throws {
        let cases: [(RequestHead, VerifiedToken, forwards: Bool, checked: Bool)] = [
            (F.request("GET", "/my-org/details"), F.token(scopes: ["read:my_org:details"]), true, true),
            // Claims pass, the scope does not: answered locally, with the claims checked.
            (F.request("PATCH", "/my-org/details"), F.token(scopes: ["read:my_org:details"]), false, true),
            // Claims refused: no checked claims.
            (
                F.request("GET", "/my-org/details"), F.token(scopes: ["read:my_org:details"], issuedAgo: 3600), false,
                false
            ),
        ]
        for (index, (request, token, forwards, checked)) in cases.enumerated() {
            let policy = try F.policy()
            var random = FaultRandom(seed: 7)
            guard case .needsToken(_, let route, let notes) = policy.begin(request, listenerDomain: F.canonical) else {
                Issue.record("case \(index): expected a token check")
                continue
            }
            let outcome = policy.authorize(
                request, body: [], route: route, token: .success(token), notes: notes, nowNanoseconds: F.now,
                random: &random)
            switch outcome {
            case .forward(_, _, let notes):
                #expect(forwards, "case \(index)")
                #expect(outcome.checkedClaims == notes.checkedClaims, "case \(index)")
            case .respond(_, let notes):
                #expect(!forwards, "case \(index)")
                #expect(outcome.checkedClaims == notes.checkedClaims, "case \(index)")
            }
            #expect((outcome.checkedClaims != nil) == checked, "case \(index)")
        }
    }

    @Test("checked claims remember the endpoints they passed; a refusal is judged afresh every time")
    func admittedEndpointsMemo() throws {
        let token = F.token(scopes: ["read:my_org:details"])
        let read = F.request("GET", "/my-org/details")
        let update = F.request("PATCH", "/my-org/details")
        let first = run(try F.policy(), read, token, checked: nil)
        let checked = try #require(first.notes.checkedClaims)
        let readIndex = try #require(EndpointTable.embedded.endpoint(method: "GET", template: "details")).index
        let updateIndex = try #require(EndpointTable.embedded.endpoint(method: "PATCH", template: "details")).index
        #expect(!checked.admittedEndpoints.contains(readIndex), "nothing is remembered before a known-token request")

        let policy = try F.policy()
        let again = run(policy, read, token, checked: checked)
        #expect(again.summary == first.summary)
        #expect(checked.admittedEndpoints.contains(readIndex), "the pass is remembered")
        // Answered from the memo: the same outcome, headers and notes as the full check.
        let memoized = run(try F.policy(), read, token, checked: checked)
        #expect(memoized.summary == first.summary)
        #expect(memoized.headers == first.headers)
        #expect(memoized.notes == first.notes)

        // The same claims on an endpoint whose scope they lack: refused with the precise error, every time, and
        // never remembered.
        let plainRefusal = run(try F.policy(), update, token, checked: nil)
        for _ in 0..<2 {
            let refused = run(try F.policy(), update, token, checked: checked)
            #expect(refused.summary == plainRefusal.summary)
            #expect(refused.notes == plainRefusal.notes)
            #expect(refused.notes.decision == "refused_scope")
        }
        #expect(!checked.admittedEndpoints.contains(updateIndex))

        // Claims checked for another domain are not used, and neither is their memo.
        var elsewhere = checked
        elsewhere.context.domain = F.custom
        #expect(run(try F.policy(), read, token, checked: elsewhere).notes == first.notes)
        let unlearnt = CheckedClaims(context: checked.context, audience: checked.audience, scope: checked.scope)
        #expect(unlearnt == checked, "equality ignores what the memo has learnt")
    }

    /// Issue 5: the event's `scope` is the token's scope; a consumer comparing it with the token's own string must
    /// find the same text, so it is neither sorted nor rebuilt, on the full check or from checked claims.
    @Test(
        "the noted scope is the token's scope claim as given, in its order, also from checked claims",
        arguments: [
            ["read:my_org:details"], ["read:my_org:details", "read:my_org:configuration"],
            ["update:my_org:details", "read:my_org:details", "read:my_org:configuration"],
        ])
    func scopeAsGiven(scopes: [String]) throws {
        let token = F.token(scopes: scopes)
        let claim = try #require(token.claims["scope"]?.stringValue)
        let request = F.request("GET", "/my-org/details")
        let first = run(try F.policy(), request, token, checked: nil)
        #expect(first.isForward, "\(first.summary)")
        #expect(first.notes.scope == claim)
        #expect(first.notes.scope == scopes.joined(separator: " "))
        let checked = try #require(first.notes.checkedClaims)
        #expect(checked.scope == claim)
        #expect(run(try F.policy(), request, token, checked: checked).notes.scope == claim)
        // A refusal after the claims check notes the same text.
        let refused = run(try F.policy(), F.request("DELETE", "/my-org/identity-providers/con_1"), token, checked: nil)
        #expect(refused.notes.decision == "refused_scope")
        #expect(refused.notes.scope == claim)
    }

    @Test("the forwarded response fields are the decision's fields with CORS applied")
    func forwardFields() throws {
        for origin in [nil, F.appOrigin, "https://beta.acme.com"] as [String?] {
            let policy = try F.policy()
            let request = F.request("GET", "/my-org/details", origin: origin)
            let result = run(policy, request, F.token(scopes: ["read:my_org:details"]), checked: nil)
            guard case .forward(let headers, _, let notes) = result, let decision = notes.rateDecision else {
                Issue.record("expected a forward: \(result.summary)")
                continue
            }
            var expected = decision.headerFields
            policy.cors.apply(to: &expected, origin: origin, clientID: "web")
            #expect(headers == expected)
            #expect(headers["Access-Control-Allow-Origin"] == origin)
        }
    }

    private func run(_ policy: RequestPolicy, _ request: RequestHead, _ token: VerifiedToken, checked: CheckedClaims?)
        -> PipelineRun
    {
        var random = FaultRandom(seed: 7)
        switch policy.begin(request, listenerDomain: F.canonical) {
        case .respond(let response, let notes): return .respond(response, notes)
        case .forwardUnchecked(let domain, let notes): return .forwardUnchecked(domain: domain, notes: notes)
        case .needsToken(_, let route, let notes):
            switch policy.authorize(
                request, body: [], route: route, token: .success(token), notes: notes, nowNanoseconds: F.now,
                random: &random, checkedClaims: checked)
            {
            case .respond(let response, let notes): return .respond(response, notes)
            case .forward(let headers, let delay, let notes):
                return .forward(headers: headers, delayMilliseconds: delay, notes: notes)
            }
        }
    }
}
