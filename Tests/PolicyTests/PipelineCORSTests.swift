import GatewayCore
import Testing

@testable import Policy

private typealias F = PipelineFixture

private func hasAllowField(_ headers: HTTPFields) -> Bool {
    headers.contains { $0.name.asciiLowercased.hasPrefix("access-control-allow-") }
}

private func preflight(_ path: String, origin: String, method: String, headers: String? = nil) -> RequestHead {
    var extra = [("Access-Control-Request-Method", method)]
    if let headers { extra.append(("Access-Control-Request-Headers", headers)) }
    return F.request("OPTIONS", path, origin: origin, authorization: nil, extra: extra)
}

@Suite("Pipeline: CORS")
struct PipelineCORSTests {
    @Test(
        "a preflight from an allowed origin is answered 204 with the route's methods, without a token",
        arguments: [
            ("/my-org/details", F.appOrigin, "PATCH", "GET, HEAD, PATCH"),
            ("/my-org/v1/details", "https://admin.acme.com", "GET", "GET, HEAD, PATCH"),
            ("/my-org/details", F.appOrigin, "HEAD", "GET, HEAD, PATCH"),
            ("/my-org/identity-providers/con_1", F.partnerOrigin, "DELETE", "GET, HEAD, PATCH, DELETE"),
            ("/my-org/identity-providers/con_1", F.partnerOrigin, "HEAD", "GET, HEAD, PATCH, DELETE"),
            ("/my-org", F.appOrigin, "DELETE", "DELETE"),
        ])
    func allowed(path: String, origin: String, method: String, methods: String) throws {
        let policy = try F.policy()
        for domain in F.domains {
            let run = PipelineRun.run(
                policy, preflight(path, origin: origin, method: method, headers: "authorization, content-type"),
                listenerDomain: domain, token: .failure(TokenRejection(.malformed, "must not be consulted")))
            guard case .respond(let response, let notes) = run else {
                Issue.record("expected a preflight answer, got \(run.summary)")
                continue
            }
            #expect(response.head.status == 204)
            #expect(response.body.isEmpty)
            #expect(notes.decision == "preflight")
            #expect(notes.error == nil)
            let h = response.head.headers
            #expect(h["Access-Control-Allow-Origin"] == origin)
            #expect(h.values("Access-Control-Allow-Origin").count == 1)
            #expect(
                Set((h["Access-Control-Allow-Methods"] ?? "").split(separator: ",").map { $0.trimmingSpaces })
                    == Set(methods.split(separator: ",").map { $0.trimmingSpaces }))
            #expect(h["Access-Control-Allow-Headers"] == "authorization, content-type")
            #expect(h["Access-Control-Max-Age"] == "600")
            #expect(h["Vary"]?.contains("Origin") == true)
            #expect(h["Access-Control-Allow-Credentials"] == nil)
        }
    }

    @Test(
        "a preflight from another origin, for another method or header is 403 without Access-Control-Allow-*",
        arguments: [
            (F.strangerOrigin, "GET", nil), ("null", "GET", nil), ("https://app.acme.com.evil.net", "GET", nil),
            ("http://app.acme.com", "GET", nil), (F.appOrigin, "PUT", nil), (F.appOrigin, "GET", "x-evil"),
        ] as [(String, String, String?)])
    func refused(origin: String, method: String, headers: String?) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, preflight("/my-org/details", origin: origin, method: method, headers: headers),
            listenerDomain: F.canonical, token: .failure(TokenRejection(.malformed, "must not be consulted")))
        run.expectError(status: 403, code: "A0E-403-0001", decision: "refused_cors")
        #expect(!hasAllowField(run.headers), "\(run.headers)")
        #expect(run.headers["Vary"]?.contains("Origin") == true)
    }

    /// A HEAD with `Authorization` is preflighted with `Access-Control-Request-Method: HEAD` (Fetch), and HEAD is
    /// served wherever GET is: the preflight must pass there, and only there.
    @Test("a HEAD preflight passes on a route that serves GET, with HEAD listed as in Allow; elsewhere it is 403")
    func headPreflight() throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, preflight("/my-org/details", origin: F.appOrigin, method: "HEAD", headers: "authorization"),
            listenerDomain: F.canonical, token: .failure(TokenRejection(.malformed, "must not be consulted")))
        #expect(run.status == 204, "\(run.summary)")
        #expect(run.notes.decision == "preflight")
        #expect(run.headers["Access-Control-Allow-Origin"] == F.appOrigin)
        #expect(run.headers["Access-Control-Allow-Methods"] == "GET, HEAD, PATCH")
        #expect(run.headers["Access-Control-Allow-Headers"] == "authorization")
        // The same list as the route's own `Allow` (without OPTIONS, which the gateway answers itself).
        let wrongMethod = PipelineRun.run(
            policy, F.request("PUT", "/my-org/details"), listenerDomain: F.canonical,
            token: .success(F.token(scopes: ["read:my_org:details"])))
        #expect(wrongMethod.headers["Allow"] == run.headers["Access-Control-Allow-Methods"])
        // `DELETE /my-org` has no GET, so no HEAD either.
        let noGet = PipelineRun.run(
            policy, preflight("/my-org", origin: F.appOrigin, method: "HEAD"), listenerDomain: F.canonical,
            token: .failure(TokenRejection(.malformed, "must not be consulted")))
        noGet.expectError(status: 403, code: "A0E-403-0001", decision: "refused_cors")
        #expect(!hasAllowField(noGet.headers), "\(noGet.headers)")
    }

    @Test(
        "a preflight is labelled with the route it asks about (path and requested method), answered or refused",
        arguments: [
            ("/my-org/details", F.appOrigin, "PATCH", "PATCH details"),
            ("/my-org/v1/details", F.appOrigin, "GET", "GET details"),
            ("/my-org/identity-providers/con_1", F.partnerOrigin, "DELETE", "DELETE identity-providers/{idp_id}"),
            ("/my-org/details", F.strangerOrigin, "GET", "GET details"),
            ("/my-org/details", F.appOrigin, "PUT", nil),
        ] as [(String, String, String, String?)])
    func routeLabel(path: String, origin: String, method: String, route: String?) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, preflight(path, origin: origin, method: method), listenerDomain: F.canonical,
            token: .failure(TokenRejection(.malformed, "must not be consulted")))
        guard case .respond(_, let notes) = run else {
            Issue.record("expected a preflight answer, got \(run.summary)")
            return
        }
        #expect(["preflight", "refused_cors"].contains(notes.decision), "\(run.summary)")
        #expect(notes.routeName == route, "\(run.summary)")
    }

    @Test("preflight request header names are matched in any case and answered lowercase")
    func headerCase() throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy,
            preflight("/my-org/details", origin: F.appOrigin, method: "PATCH", headers: "Authorization,Content-Type"),
            listenerDomain: F.canonical, token: .failure(TokenRejection(.malformed, "must not be consulted")))
        #expect(run.status == 204, "\(run.summary)")
        #expect(run.headers["Access-Control-Allow-Headers"] == "authorization, content-type")
    }

    @Test("a preflight to an unknown /my-org path is not answered 204")
    func preflightUnknownPath() throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, preflight("/my-org/nowhere", origin: F.appOrigin, method: "GET"), listenerDomain: F.canonical,
            token: .failure(TokenRejection(.malformed, "must not be consulted")))
        run.expectError(status: 404, code: "A0E-404-0002", decision: "refused_route")
        #expect(run.headers["Access-Control-Allow-Methods"] == nil)
    }

    @Test("a real request from an origin allowed only for another client is refused without ACAO")
    func otherClientsOrigin() throws {
        let policy = try F.policy()
        // partnerOrigin belongs to `partner`; the token is `web`'s.
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/details", origin: F.partnerOrigin), listenerDomain: F.canonical,
            token: .success(F.token(scopes: ["read:my_org:details"])))
        run.expectError(status: 403, code: "A0E-403-0001", decision: "refused_cors")
        #expect(run.headers["Access-Control-Allow-Origin"] == nil)
        // The answer depends on the origin: caches must key it by Origin as they do the allowed one's.
        #expect(run.headers["Vary"] == "Origin", "\(run.headers)")
        #expect(run.notes.rateDecision == nil, "a refused request spends no rate limit")
        // The same origin with the partner's own token passes.
        let partner = PipelineRun.run(
            policy, F.request("GET", "/my-org/details", origin: F.partnerOrigin), listenerDomain: F.canonical,
            token: .success(F.token(client: "partner", scopes: ["read:my_org:details"])))
        #expect(partner.isForward, "\(partner.summary)")
        #expect(partner.headers["Access-Control-Allow-Origin"] == F.partnerOrigin)
    }

    @Test("a client whose cross-origin authentication is off trusts no origin: its preflight and requests are refused")
    func crossOriginAuthenticationOff() throws {
        let yaml = F.yaml().replacingOccurrences(
            of: "allowed_origins: [\(F.partnerOrigin)]",
            with: "allowed_origins: [\(F.partnerOrigin)]\n    cross_origin_authentication: false")
        #expect(yaml.contains("cross_origin_authentication: false"))
        let config = try F.config(yaml)
        #expect(config.clients.map(\.crossOriginAuthentication) == [true, false, true])
        #expect(config.clients[1].allowedOrigins == [F.partnerOrigin], "the origins are kept, only not trusted")
        let policy = try RequestPolicy(config: config, tiers: .embedded)
        let pre = PipelineRun.run(
            policy, preflight("/my-org/details", origin: F.partnerOrigin, method: "GET"), listenerDomain: F.canonical,
            token: .failure(TokenRejection(.malformed, "must not be consulted")))
        #expect(pre.status == 403, "\(pre.summary)")
        #expect(!hasAllowField(pre.headers))
        let real = PipelineRun.run(
            policy, F.request("GET", "/my-org/details", origin: F.partnerOrigin), listenerDomain: F.canonical,
            token: .success(F.token(client: "partner", scopes: ["read:my_org:details"])))
        real.expectError(status: 403, code: "A0E-403-0001", decision: "refused_cors")
        // Without an Origin (a server-side caller) the client is served as before.
        let server = PipelineRun.run(
            policy, F.request("GET", "/my-org/details"), listenerDomain: F.canonical,
            token: .success(F.token(client: "partner", scopes: ["read:my_org:details"])))
        #expect(server.isForward, "\(server.summary)")
        // The other clients keep theirs.
        let web = PipelineRun.run(
            policy, preflight("/my-org/details", origin: F.appOrigin, method: "GET"), listenerDomain: F.canonical,
            token: .failure(TokenRejection(.malformed, "must not be consulted")))
        #expect(web.status == 204, "\(web.summary)")
    }

    @Test("a real request from an origin no client allows is refused")
    func strangerOrigin() throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/details", origin: F.strangerOrigin), listenerDomain: F.canonical,
            token: .success(F.token(scopes: ["read:my_org:details"])))
        run.expectError(status: 403, code: "A0E-403-0001", decision: "refused_cors")
        #expect(!hasAllowField(run.headers))
        #expect(run.headers["Vary"] == "Origin", "\(run.headers)")
    }

    struct RefusalCase: Sendable, CustomTestStringConvertible {
        var name: String
        var request: RequestHead
        var token: Result<VerifiedToken, TokenRejection>
        var status: Int
        var testDescription: String { name }
    }

    static func refusalCases(origin: String?) -> [RefusalCase] {
        let details = ["read:my_org:details"]
        return [
            RefusalCase(
                name: "missing token", request: F.request("GET", "/my-org/details", origin: origin, authorization: nil),
                token: .success(F.token(scopes: details)), status: 401),
            RefusalCase(
                name: "bad signature", request: F.request("GET", "/my-org/details", origin: origin),
                token: .failure(TokenRejection(.signature, "bad")), status: 401),
            RefusalCase(
                name: "expired", request: F.request("GET", "/my-org/details", origin: origin),
                token: .success(F.token(scopes: details, issuedAgo: 600)), status: 401),
            RefusalCase(
                name: "domain mismatch", request: F.request("GET", "/my-org/details", origin: origin),
                token: .success(F.token(domain: F.custom, scopes: details)), status: 401),
            RefusalCase(
                name: "scope", request: F.request("PATCH", "/my-org/details", origin: origin),
                token: .success(F.token(scopes: details)), status: 403),
            RefusalCase(
                name: "unknown path", request: F.request("GET", "/my-org/nowhere", origin: origin),
                token: .success(F.token(scopes: details)), status: 404),
            RefusalCase(
                name: "wrong method", request: F.request("PUT", "/my-org/details", origin: origin),
                token: .success(F.token(scopes: details)), status: 405),
        ]
    }

    @Test(
        "refusals to an allowed origin carry ACAO so the page can read them",
        arguments: refusalCases(origin: F.appOrigin))
    func refusalReadable(_ c: RefusalCase) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(policy, c.request, listenerDomain: F.canonical, token: c.token)
        #expect(run.status == c.status, "\(run.summary)")
        #expect(run.headers["Access-Control-Allow-Origin"] == F.appOrigin)
        #expect(run.headers["Access-Control-Expose-Headers"] != nil)
        #expect(run.headers["Vary"]?.contains("Origin") == true)
    }

    @Test(
        "refusals without an Origin still say Vary: Origin, as the same refusal to an allowed origin differs",
        arguments: refusalCases(origin: nil))
    func refusalWithoutOrigin(_ c: RefusalCase) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(policy, c.request, listenerDomain: F.canonical, token: c.token)
        #expect(run.status == c.status, "\(run.summary)")
        #expect(!hasAllowField(run.headers), "\(run.headers)")
        #expect(run.headers["Vary"] == "Origin", "\(run.headers)")
    }

    @Test("refusals to a foreign origin carry no ACAO", arguments: refusalCases(origin: F.strangerOrigin))
    func refusalForeign(_ c: RefusalCase) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(policy, c.request, listenerDomain: F.canonical, token: c.token)
        #expect(run.status != nil, "\(run.summary)")
        #expect(!hasAllowField(run.headers), "\(run.headers)")
        #expect(run.headers["Access-Control-Expose-Headers"] == nil)
    }

    @Test(
        "forwarded requests get ACAO and Expose-Headers for allowed origins only",
        arguments: [
            (F.appOrigin as String?, true), ("https://admin.acme.com", true), ("https://app.acme.com:8443", false),
            (nil, false),
        ])
    func forwardHeaders(origin: String?, allowed: Bool) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/details", origin: origin), listenerDomain: F.custom,
            token: .success(F.token(domain: F.custom, scopes: ["read:my_org:details"])))
        if origin != nil, !allowed {
            #expect(run.status == 403, "\(run.summary)")
            return
        }
        guard case .forward(let headers, _, _) = run else {
            Issue.record("expected forward, got \(run.summary)")
            return
        }
        #expect(headers["Access-Control-Allow-Origin"] == (allowed ? origin : nil))
        let exposed = headers["Access-Control-Expose-Headers"]
        if allowed {
            for name in ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"] {
                #expect(exposed?.contains(name) == true, "\(name)")
            }
        } else {
            #expect(exposed == nil)
        }
        #expect(headers["Vary"] == "Origin")
        #expect(headers["Access-Control-Allow-Credentials"] == nil)
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(self.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
