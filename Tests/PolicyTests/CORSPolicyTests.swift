import GatewayCore
import Testing

@testable import Policy

@Suite struct CORSPolicyTests {
    static let policy: CORSPolicy = {
        do {
            return try CORSPolicy.compile(
                clientOrigins: [
                    "web": ["https://app.acme.com", "https://*.acme.com"],
                    "admin": ["https://admin.acme.io"],
                ],
                configuration: CORSConfiguration(maxAgeSeconds: 600))
        } catch {
            fatalError("fixture: \(error)")
        }
    }()

    static func preflight(origin: String?, method: String?, headers: String? = nil, verb: String = "OPTIONS")
        -> RequestHead
    {
        var fields = HTTPFields()
        if let origin { fields.add("Origin", origin) }
        if let method { fields.add("Access-Control-Request-Method", method) }
        if let headers { fields.add("Access-Control-Request-Headers", headers) }
        return RequestHead(method: verb, target: "/my-org/details", headers: fields)
    }

    @Test func anAllowedPreflightEchoesTheOriginAndTheRoutesMethods() throws {
        let decision = Self.policy.preflight(
            Self.preflight(
                origin: "https://admin.acme.io", method: "PATCH", headers: "authorization, Content-Type,dpop"),
            allowedMethods: ["GET", "PATCH"])
        guard case .allowed(let response) = decision else {
            Issue.record("refused: \(decision)")
            return
        }
        let h = response.head.headers
        #expect(response.head.status == 204)
        #expect(response.body.isEmpty)
        #expect(h["Access-Control-Allow-Origin"] == "https://admin.acme.io")
        #expect(h["Access-Control-Allow-Methods"] == "GET, PATCH")
        #expect(h["Access-Control-Allow-Headers"] == "authorization, content-type, dpop")
        #expect(h["Access-Control-Max-Age"] == "600")
        #expect(h["Vary"] == "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
        #expect(h["Access-Control-Allow-Credentials"] == nil)
        // A wildcard origin of another client passes too: preflights are judged against the union.
        let wildcard = Self.policy.preflight(
            Self.preflight(origin: "https://beta.acme.com", method: "GET"), allowedMethods: ["GET"])
        #expect(wildcard.response?.head.status == 204)
        #expect(wildcard.response?.head.headers["Access-Control-Allow-Headers"] == nil)
    }

    @Test("the embeddable components' scope headers pass a preflight: auth0-scope, and scope (nextjs-auth0 4.12+)")
    func componentScopeHeaders() {
        for header in ["auth0-scope", "scope"] {
            let decision = Self.policy.preflight(
                Self.preflight(origin: "https://admin.acme.io", method: "GET", headers: "authorization, \(header)"),
                allowedMethods: ["GET"])
            #expect(
                decision.response?.head.headers["Access-Control-Allow-Headers"] == "authorization, \(header)",
                "\(header): \(decision)")
        }
    }

    @Test(arguments: [
        ("https://evil.example", "GET", nil as String?, CORSRefusal.originNotAllowed),
        ("null", "GET", nil, .originNotAllowed),
        ("https://a.b.acme.com", "GET", nil, .originNotAllowed),
        ("https://app.acme.com", "DELETE", nil, .methodNotAllowed("DELETE")),
        ("https://app.acme.com", "GET", "authorization, x-custom", .headerNotAllowed("x-custom")),
        ("https://app.acme.com", "GET", "cookie", .headerNotAllowed("cookie")),
    ])
    func aRefusedPreflightIsA403WithoutAllowHeaders(
        origin: String, method: String, headers: String?, refusal: CORSRefusal
    ) throws {
        let decision = Self.policy.preflight(
            Self.preflight(origin: origin, method: method, headers: headers), allowedMethods: ["GET", "PATCH"])
        guard case .refused(let response, let reason) = decision else {
            Issue.record("not refused: \(decision)")
            return
        }
        #expect(reason == refusal)
        #expect(response.head.status == 403)
        #expect(!response.head.headers.contains { $0.name.lowercased().hasPrefix("access-control-") })
        #expect(response.head.headers["Vary"] == CORSPolicy.preflightVary)
        let body = try JSONValue.parse(response.body)
        #expect(body["status"] == 403)
        #expect(body["detail"]?.stringValue == refusal.description)
    }

    @Test func theKnownOriginsTableAnswersAsTheParsingPathForManyClients() throws {
        // Exact origins shared by several clients, wildcards under shared and separate parents, default ports.
        var clients: [String: [String]] = [:]
        for i in 0..<60 {
            var origins = ["https://app\(i % 13).acme.com", "https://shared.acme.com:443"]
            if i % 4 == 0 { origins.append("https://*.w\(i % 3).acme.com") }
            if i % 9 == 0 { origins.append("http://localhost:\(3000 + i % 2)") }
            clients["c\(i)"] = origins
        }
        let policy = try CORSPolicy.compile(clientOrigins: clients)
        let origins =
            (0..<13).map { "https://app\($0).acme.com" } + (0..<3).map { "https://x.w\($0).acme.com" }
            + ["https://shared.acme.com", "http://localhost:3000", "http://localhost:3001", "https://none.acme.com"]
        for origin in origins {
            #expect(
                policy.isAllowed(origin: origin, clientID: nil)
                    == policy.isAllowedParsing(origin: origin, clientID: nil))
            for client in clients.keys {
                #expect(
                    policy.isAllowed(origin: origin, clientID: client)
                        == policy.isAllowedParsing(origin: origin, clientID: client), "\(origin) for \(client)")
            }
        }
        #expect(policy.isAllowed(origin: "https://x.w0.acme.com", clientID: "c0"))
        #expect(!policy.isAllowed(origin: "https://x.w0.acme.com", clientID: "c1"))
    }

    @Test func requestsThatAreNotPreflightsPassThrough() {
        #expect(
            Self.policy.preflight(Self.preflight(origin: "https://app.acme.com", method: nil), allowedMethods: ["GET"])
                == .notPreflight)
        #expect(
            Self.policy.preflight(Self.preflight(origin: nil, method: "GET"), allowedMethods: ["GET"]) == .notPreflight)
        #expect(
            Self.policy.preflight(
                Self.preflight(origin: "https://app.acme.com", method: "GET", verb: "GET"), allowedMethods: ["GET"])
                == .notPreflight)
    }

    @Test func twoOriginFieldsAreRefused() {
        var head = Self.preflight(origin: "https://app.acme.com", method: "GET")
        head.headers.add("Origin", "https://admin.acme.io")
        #expect(Self.policy.preflight(head, allowedMethods: ["GET"]).response?.head.status == 403)
    }

    @Test func actualResponsesFollowTheTokensClient() {
        let allowed = Self.policy.responseHeaders(origin: "https://app.acme.com", clientID: "web")
        #expect(allowed["Access-Control-Allow-Origin"] == "https://app.acme.com")
        #expect(
            allowed["Access-Control-Expose-Headers"]
                == "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, RateLimit, RateLimit-Policy, "
                + "Retry-After, X-Auth0-Error-Kind, X-Request-Id, WWW-Authenticate")
        #expect(allowed["Vary"] == "Origin")
        #expect(allowed["Access-Control-Allow-Credentials"] == nil)
        // The origin belongs to another client: no CORS for this token.
        let otherClient = Self.policy.responseHeaders(origin: "https://admin.acme.io", clientID: "web")
        #expect(otherClient["Access-Control-Allow-Origin"] == nil)
        #expect(otherClient["Vary"] == "Origin")
        let unknownClient = Self.policy.responseHeaders(origin: "https://app.acme.com", clientID: "nobody")
        #expect(unknownClient["Access-Control-Allow-Origin"] == nil)
        // Before the client is known (a 401 for a missing token), the union applies.
        let beforeToken = Self.policy.responseHeaders(origin: "https://admin.acme.io", clientID: nil)
        #expect(beforeToken["Access-Control-Allow-Origin"] == "https://admin.acme.io")
        let noOrigin = Self.policy.responseHeaders(origin: nil, clientID: "web")
        #expect(noOrigin.count == 1)
        #expect(noOrigin["Vary"] == "Origin")
        #expect(Self.policy.responseHeaders(origin: "null", clientID: nil)["Access-Control-Allow-Origin"] == nil)
    }

    @Test func upstreamCORSFieldsAreReplaced() {
        var upstream = HTTPFields([
            ("Access-Control-Allow-Origin", "*"), ("access-control-allow-credentials", "true"),
            ("ACCESS-CONTROL-EXPOSE-HEADERS", "X-Secret"), ("Access-Control-Max-Age", "86400"),
            ("Content-Type", "application/json"), ("Vary", "Accept-Encoding"), ("X-Access-Control-Note", "kept"),
        ])
        Self.policy.apply(to: &upstream, origin: "https://beta.acme.com", clientID: "web")
        #expect(upstream.values("Access-Control-Allow-Origin") == ["https://beta.acme.com"])
        #expect(upstream["Access-Control-Allow-Credentials"] == nil)
        #expect(upstream["Access-Control-Max-Age"] == nil)
        #expect(upstream.values("Access-Control-Expose-Headers").count == 1)
        #expect(upstream["Access-Control-Expose-Headers"]?.contains("X-Secret") == false)
        #expect(upstream["Content-Type"] == "application/json")
        #expect(upstream["X-Access-Control-Note"] == "kept")
        #expect(upstream.values("Vary") == ["Accept-Encoding, Origin"])

        var disallowed = HTTPFields([("Access-Control-Allow-Origin", "https://evil.example"), ("Vary", "origin")])
        Self.policy.apply(to: &disallowed, origin: "https://evil.example", clientID: "web")
        #expect(disallowed["Access-Control-Allow-Origin"] == nil)
        #expect(disallowed.values("Vary") == ["origin"])

        var star = HTTPFields([("Vary", "*")])
        Self.policy.apply(to: &star, origin: nil, clientID: nil)
        #expect(star.values("Vary") == ["*"])
    }

    @Test func compileReportsTheClientAndIndexOfABadOrigin() {
        #expect(
            throws: CORSPolicyError(
                clientID: "b", index: 1,
                error: OriginPatternError(text: "https://*.com", reason: .wildcardOnTopLevelDomain))
        ) {
            try CORSPolicy.compile(clientOrigins: [
                "a": ["https://a.example.com"], "b": ["https://b.example.com", "https://*.com"],
            ])
        }
    }

    @Test func maxAgeIsConfigurableAndClamped() {
        #expect(CORSConfiguration(maxAgeSeconds: 7200).maxAgeSeconds == 7200)
        #expect(CORSConfiguration(maxAgeSeconds: -5).maxAgeSeconds == 0)
        #expect(CORSConfiguration(maxAgeSeconds: 1_000_000).maxAgeSeconds == CORSConfiguration.maxAgeLimit)
        let policy = CORSPolicy(
            clientOrigins: ["c": [try! OriginPattern.parse("https://a.example.com")]],
            configuration: CORSConfiguration(maxAgeSeconds: 30))
        let decision = policy.preflight(
            Self.preflight(origin: "https://a.example.com", method: "GET"), allowedMethods: ["GET"])
        #expect(decision.response?.head.headers["Access-Control-Max-Age"] == "30")
    }
}

@Suite struct CORSKnownOriginTests {
    static let policy: CORSPolicy = {
        do {
            return try CORSPolicy.compile(
                clientOrigins: [
                    "web": ["https://app.acme.com", "https://*.acme.com", "http://localhost:3000"],
                    "admin": ["https://admin.acme.io", "HTTPS://App.Acme.com:443"],
                    "edge": ["https://[::1]:8443", "http://10.0.0.1", "https://x-*.acme.com"],
                    "none": [],
                ])
        } catch {
            fatalError("fixture: \(error)")
        }
    }()

    static let origins = [
        "https://app.acme.com", "https://APP.acme.com", "https://app.acme.com:443", "https://app.acme.com:444",
        "http://app.acme.com", "https://admin.acme.io", "https://admin.acme.io:443", "http://localhost:3000",
        "http://localhost", "https://[::1]:8443", "https://[::1]", "http://10.0.0.1", "http://10.0.0.1:80",
        "https://beta.acme.com", "https://x-y.acme.com", "https://a.b.acme.com", "https://acme.com", "null", "",
        "https://app.acme.com/", "https://app.acme.com.", " https://app.acme.com", "https://app.acme.co\u{212A}",
        "https://app.acme.com\u{0301}", "https://évil.acme.com", "https://evil.example.net",
    ]

    @Test("the precomputed answers equal the parsing path for every origin and client")
    func agreement() {
        var allowed = 0
        for origin in Self.origins {
            for client in [nil, "web", "admin", "edge", "none", "stranger"] as [String?] {
                let fast = Self.policy.isAllowed(origin: origin, clientID: client)
                #expect(
                    fast == Self.policy.isAllowedParsing(origin: origin, clientID: client), "\(origin) \(client ?? "-")"
                )
                if fast { allowed += 1 }
            }
        }
        #expect(allowed > 10)
    }

    @Test("browser forms of normalised keys drop only the scheme's default port")
    func browserForms() {
        #expect(CORSKnownOrigin.browserForm(ofKey: "https://app.acme.com:443") == "https://app.acme.com")
        #expect(CORSKnownOrigin.browserForm(ofKey: "http://app.acme.com:80") == "http://app.acme.com")
        #expect(CORSKnownOrigin.browserForm(ofKey: "http://app.acme.com:443") == "http://app.acme.com:443")
        #expect(CORSKnownOrigin.browserForm(ofKey: "https://[::1]:443") == "https://[::1]")
    }

    @Test("fresh fields get what apply gives: the origin's fields when allowed, Vary: Origin always")
    func freshFields() {
        for origin in Self.origins + [nil] as [String?] {
            for client in [nil, "web", "admin"] as [String?] {
                var general = HTTPFields([("X-RateLimit-Limit", "8")])
                Self.policy.apply(to: &general, origin: origin, clientID: client)
                var fresh = HTTPFields([("X-RateLimit-Limit", "8")])
                let allowed = origin.map { Self.policy.isAllowed(origin: $0, clientID: client) } ?? false
                Self.policy.appendToFreshFields(&fresh, origin: origin, allowed: allowed)
                #expect(fresh == general, "\(origin ?? "-") \(client ?? "-")")
            }
        }
    }
}
