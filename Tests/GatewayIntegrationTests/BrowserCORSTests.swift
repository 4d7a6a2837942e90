import Foundation
import TestSupport
import Testing

/// CORS as a real browser enforces it: a page on a real HTTPS origin calls the gateway with `fetch` and an
/// `Authorization` header (so Chromium preflights), and writes what it could read into the DOM.
@Suite("Browser: CORS and rate-limit headers through headless Chromium", .serialized)
struct BrowserCORSTests {
    typealias Env = BrowserGatewayEnvironment

    /// Access-log lines as (method, status, decision), waiting until `count` lines arrived (stdout is a sink with
    /// its own queue), then a little longer so a request the test does NOT expect has time to show up too.
    static func requests(_ env: Env, atLeast count: Int) -> [(method: String, status: Int, decision: String)] {
        func read() -> [(method: String, status: Int, decision: String)] {
            env.accessLog().map {
                ($0["method"] as? String ?? "?", $0["status"] as? Int ?? 0, $0["decision"] as? String ?? "?")
            }
        }
        let deadline = Date().addingTimeInterval(10)
        while read().count < count && Date() < deadline { usleep(100_000) }
        usleep(300_000)
        return read()
    }

    static func render(_ lines: [(method: String, status: Int, decision: String)]) -> [String] {
        lines.map { "\($0.method) \($0.status) \($0.decision)" }
    }

    @Test(
        "An allowed origin reads the status, the body and the exposed rate-limit headers, and nothing else",
        arguments: [false, true])
    func allowedOrigin(http1: Bool) throws {
        if BrowserTools.skipNote("allowedOrigin") { return }
        let env = try Env()
        defer {
            env.stop()
            env.removeFiles()
        }
        try env.preparePage(scenario: "read", token: try env.token(client: "demo-admin-app"))
        let result = try env.runPage(host: "app.acme.test", http1: http1)

        #expect(result.origin == "https://app.acme.test:\(env.pagePort)")
        let step = try #require(result.steps.first, "\(result)")
        #expect(step.ok, "\(result)")
        #expect(step.status == 200, "\(result)")
        #expect(step.id == Env.organizationID, "\(result)")
        let limit = try #require(step.limit.flatMap { Int($0) }, "X-RateLimit-Limit unreadable: \(result)")
        #expect(limit > 0)
        #expect(step.remaining.flatMap { Int($0) } == limit - 1, "\(result)")
        // `Vary: Origin` is on the response but not exposed: the browser must hide it from the page.
        #expect(step.vary == nil, "\(result)")
        // The Authorization header made Chromium preflight; the gateway answered it and forwarded the GET.
        let seen = Self.render(Self.requests(env, atLeast: 2))
        #expect(seen == ["OPTIONS 204 preflight", "GET 200 forwarded"])
        let protocols = Set(env.accessLog().compactMap { $0["protocol"] as? String })
        #expect(protocols == [http1 ? "HTTP/1.1" : "HTTP/2"])
    }

    @Test("A HEAD with a token from an allowed origin is preflighted for HEAD, allowed, and its headers are readable")
    func headRequest() throws {
        if BrowserTools.skipNote("headRequest") { return }
        let env = try Env()
        defer {
            env.stop()
            env.removeFiles()
        }
        try env.preparePage(scenario: "head", token: try env.token(client: "demo-admin-app"))
        let result = try env.runPage(host: "app.acme.test")
        let step = try #require(result.steps.first, "\(result)")
        // A refused HEAD preflight surfaces as a TypeError and no HEAD is sent.
        #expect(step.ok, "\(result)")
        #expect(step.status == 200, "\(result)")
        #expect(step.limit.flatMap { Int($0) }.map { $0 > 0 } == true, "\(result)")
        let seen = Self.render(Self.requests(env, atLeast: 2))
        #expect(seen == ["OPTIONS 204 preflight", "HEAD 200 forwarded"])
    }

    @Test("Refusals stay readable from an allowed origin: bad token, missing token, missing scope")
    func refusalsAreReadable() throws {
        if BrowserTools.skipNote("refusalsAreReadable") { return }
        let env = try Env()
        defer {
            env.stop()
            env.removeFiles()
        }
        try env.preparePage(
            scenario: "errors", token: try env.token(client: "demo-readonly-app", scope: "read:my_org:details"))
        let result = try env.runPage(host: "readonly.acme.test")
        try #require(result.steps.count == 3, "\(result)")
        let (badToken, noToken, noScope) = (result.steps[0], result.steps[1], result.steps[2])
        #expect(badToken.ok && badToken.status == 401, "\(result)")
        #expect(badToken.errorType?.contains("A0E-401") == true, "\(result)")
        // Without Authorization the GET is a simple request: no preflight, and the 401 must still carry CORS.
        #expect(noToken.ok && noToken.status == 401, "\(result)")
        #expect(noScope.ok && noScope.status == 403, "\(result)")
        #expect(noScope.errorType?.contains("A0E-403") == true, "\(result)")
        let seen = Self.requests(env, atLeast: 5).map { "\($0.method) \($0.status)" }
        #expect(seen == ["OPTIONS 204", "GET 401", "GET 401", "OPTIONS 204", "PATCH 403"])
    }

    @Test("An origin no client allows is refused at the preflight: fetch fails with a TypeError")
    func otherOriginIsBlocked() throws {
        if BrowserTools.skipNote("otherOriginIsBlocked") { return }
        let env = try Env()
        defer {
            env.stop()
            env.removeFiles()
        }
        try env.preparePage(scenario: "read", token: try env.token(client: "demo-admin-app"))
        let blocked = try env.runPage(host: "evil.example")
        #expect(blocked.origin == "https://evil.example:\(env.pagePort)")
        let step = try #require(blocked.steps.first, "\(blocked)")
        #expect(!step.ok, "\(blocked)")
        #expect(step.error == "TypeError", "\(blocked)")
        #expect(step.status == nil)
        // The failure is the gateway's refusal of the preflight (not TLS or a dead port), and no GET followed.
        let seen = Self.render(Self.requests(env, atLeast: 1))
        #expect(seen == ["OPTIONS 403 refused_cors"])
    }

    @Test("An origin allowed for another client passes the preflight but the token's client refuses it")
    func originOfAnotherClientIsBlocked() throws {
        if BrowserTools.skipNote("originOfAnotherClientIsBlocked") { return }
        let env = try Env()
        defer {
            env.stop()
            env.removeFiles()
        }
        // readonly.acme.test belongs to demo-readonly-app; the page uses demo-admin-app's token.
        try env.preparePage(scenario: "read", token: try env.token(client: "demo-admin-app"))
        let result = try env.runPage(host: "readonly.acme.test")
        let step = try #require(result.steps.first, "\(result)")
        #expect(!step.ok && step.error == "TypeError", "\(result)")
        // Preflights carry no token, so they are judged against every client's origins; the actual request is
        // judged against the token's client and never reaches the tenant.
        let seen = Self.render(Self.requests(env, atLeast: 2))
        #expect(seen == ["OPTIONS 204 preflight", "GET 403 refused_cors"])
    }

    @Test("A wildcard origin matches one label: team1.apps.acme.test reads, a.b.apps.acme.test is blocked")
    func wildcardOrigin() throws {
        if BrowserTools.skipNote("wildcardOrigin") { return }
        let env = try Env()
        defer {
            env.stop()
            env.removeFiles()
        }
        try env.preparePage(scenario: "read", token: try env.token(client: "demo-admin-app"))
        let matched = try env.runPage(host: "team1.apps.acme.test")
        #expect(matched.steps.first?.status == 200, "\(matched)")
        #expect(matched.steps.first?.limit != nil, "\(matched)")
        let nested = try env.runPage(host: "a.b.apps.acme.test")
        #expect(nested.steps.first?.error == "TypeError", "\(nested)")
        let seen = Self.render(Self.requests(env, atLeast: 3))
        #expect(seen == ["OPTIONS 204 preflight", "GET 200 forwarded", "OPTIONS 403 refused_cors"])
    }

    @Test("A preflighted PATCH with a JSON body from an allowed origin goes through, and the change is visible")
    func preflightedPatch() throws {
        if BrowserTools.skipNote("preflightedPatch") { return }
        let env = try Env()
        defer {
            env.stop()
            env.removeFiles()
        }
        try env.preparePage(scenario: "patch", token: try env.token(client: "demo-admin-app"))
        let result = try env.runPage(host: "app.acme.test")
        #expect(result.steps.count == 2, "\(result)")
        let patch = try #require(result.steps.first, "\(result)")
        #expect(patch.ok && patch.status == 200, "\(result)")
        #expect(patch.displayName == "Renamed by the browser", "\(result)")
        #expect(patch.limit.flatMap { Int($0) } != nil, "X-RateLimit-Limit unreadable on the write: \(result)")
        let read = try #require(result.steps.last)
        #expect(read.status == 200 && read.displayName == "Renamed by the browser", "\(result)")
        // The GET reuses the PATCH's cached preflight (its methods and headers cover it, within Max-Age).
        let seen = Self.render(Self.requests(env, atLeast: 3))
        #expect(seen == ["OPTIONS 204 preflight", "PATCH 200 forwarded", "GET 200 forwarded"])
    }

    @Test("A burst over the tier's limit: the page reads the 429s with Retry-After and X-RateLimit-Remaining 0")
    func rateLimitedResponsesAreReadable() throws {
        if BrowserTools.skipNote("rateLimitedResponsesAreReadable") { return }
        let env = try Env()
        defer {
            env.stop()
            env.removeFiles()
        }
        try env.preparePage(scenario: "burst", token: try env.token(client: "demo-admin-app"))
        let result = try env.runPage(host: "app.acme.test")
        #expect(result.steps.count == 12, "\(result)")
        // Every answer, 200 or 429, is readable: a 429 without CORS headers would surface as a TypeError.
        #expect(result.steps.allSatisfy { $0.ok }, "\(result)")
        let limited = result.steps.filter { $0.status == 429 }
        let served = result.steps.filter { $0.status == 200 }
        #expect(limited.count + served.count == 12, "\(result)")
        #expect(!limited.isEmpty, "12 concurrent reads never hit the free tier's limit: \(result)")
        #expect(!served.isEmpty, "\(result)")
        let limits = Set(result.steps.compactMap { $0.limit.flatMap { Int($0) } })
        #expect(limits.count == 1 && limits.first.map { $0 > 0 } == true, "\(result)")
        // The burst allows `limit` at once; one more may refill while the twelve requests are in flight.
        #expect(served.count <= (limits.first ?? 0) + 1, "more reads served than the limit allows: \(result)")
        for step in limited {
            #expect(step.remaining == "0", "\(result)")
            #expect(step.retryAfter.flatMap { Int($0) }.map { $0 >= 1 } == true, "\(result)")
            #expect(step.vary == nil)
        }
    }
}
