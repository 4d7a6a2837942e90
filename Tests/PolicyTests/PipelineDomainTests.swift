import GatewayCore
import Testing

@testable import Policy

private typealias F = PipelineFixture

@Suite("Pipeline: the arrival domain and domain consistency")
struct PipelineDomainTests {
    @Test(
        "the listener's domain wins over any Host that is not the tenant's other domain",
        arguments: [
            (F.canonical, nil), (F.canonical, "evil.example.com"), (F.canonical, "localhost:8081"),
            (F.canonical, "ACME.US.AUTH0.COM:443"), (F.custom, nil), (F.custom, "evil.example.com:443"),
            (F.custom, "127.0.0.1:8443"), (F.custom, "Login.Acme.Com"),
        ] as [(String, String?)])
    func listenerWins(listener: String, host: String?) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/details", host: host), listenerDomain: listener,
            token: .success(F.token(domain: listener, scopes: ["read:my_org:details"])))
        #expect(run.isForward, "\(run.summary)")
        #expect(run.notes.domain == listener)
    }

    @Test(
        "on a domain-bound listener, a Host naming the tenant's other domain is misdirected: 421, nothing judged",
        arguments: [
            (F.canonical, F.custom), (F.canonical, "LOGIN.ACME.COM:443"), (F.custom, F.canonical),
            (F.custom, "acme.us.auth0.com:8443"),
        ])
    func otherTenantDomainOnBoundListener(listener: String, host: String) throws {
        let policy = try F.policy()
        // A token of the Host's domain: the client used one domain throughout, and still nothing is forwarded.
        let hostDomain = listener == F.canonical ? F.custom : F.canonical
        for path in ["/my-org/details", "/authorize"] {
            let run = PipelineRun.run(
                policy, F.request("GET", path, host: host), listenerDomain: listener,
                token: .success(F.token(domain: hostDomain, scopes: ["read:my_org:details"])))
            run.expectError(status: 421, code: "A0E-421-0001", decision: "refused_domain")
            #expect(run.detail.contains("This listener serves \(listener) only"), "\(run.detail)")
            #expect(run.detail.contains("other domain"))
            #expect(run.notes.domain == nil)
        }
    }

    @Test(
        "the authority test behind the listener's fast path: the domain, any case, with or without a port of digits only"
    )
    func authorityNamesDomain() {
        let domain = "acme.us.auth0.com"
        for yes in ["acme.us.auth0.com", "ACME.us.Auth0.com", "acme.us.auth0.com:443", "acme.us.auth0.com:"] {
            #expect(RequestPolicy.authority(yes, names: domain), "\(yes)")
        }
        for no in [
            "acme.us.auth0.co", "acme.us.auth0.com.", "acme.us.auth0.comx", "xacme.us.auth0.com", "", "[::1]:443",
            "acme.us.auth0.com:8443:1", "acme.us.auth0.com:44a", "acme.us.auth0.com: 443",
        ] {
            #expect(!RequestPolicy.authority(no, names: domain), "\(no)")
        }
    }

    @Test(
        "without a listener domain, a Host naming a tenant domain (any case, any port) is the domain",
        arguments: [
            ("acme.us.auth0.com", F.canonical), ("acme.us.auth0.com:443", F.canonical),
            ("ACME.US.Auth0.COM", F.canonical), ("Acme.Us.Auth0.Com:8443", F.canonical),
            ("login.acme.com", F.custom), ("LOGIN.ACME.COM:443", F.custom), ("login.acme.com:", F.custom),
        ])
    func hostNamesDomain(host: String, domain: String) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/details", host: host), listenerDomain: nil,
            token: .success(F.token(domain: domain, scopes: ["read:my_org:details"])))
        #expect(run.isForward, "\(run.summary)")
        #expect(run.notes.domain == domain)
    }

    @Test(
        "without a listener domain, any other Host is a 421 in the tenant's error shape",
        arguments: [
            "evil.example.com", "evil.example.com:443", "acme.us.auth0.com.evil.com", "evil.acme.us.auth0.com",
            "acme.us.auth0.com.", "127.0.0.1:8080", "[::1]:8080", "", "acme.us.auth0.com:8443:1",
        ] as [String?] + [nil])
    func misdirected(host: String?) throws {
        let policy = try F.policy()
        for path in ["/my-org/details", "/authorize", "/my-org/nowhere"] {
            let run = PipelineRun.run(
                policy, F.request("GET", path, host: host), listenerDomain: nil,
                token: .success(F.token(scopes: ["read:my_org:details"])))
            run.expectError(status: 421, code: "A0E-421-0001", decision: "refused_domain")
            #expect(run.detail.contains(F.canonical) && run.detail.contains(F.custom))
            #expect(run.notes.domain == nil)
            // Still an API request for the logs: an endpoint with a log resource gets its (failed) event.
            if path == "/my-org/details" {
                #expect(run.notes.operation == "get-details")
                #expect(run.notes.logResource == "org_details")
            } else {
                #expect(run.notes.operation == nil && run.notes.logResource == nil)
            }
        }
    }

    @Test("describe: a request refused before judgement (413) is named by its operation and log resource only")
    func describeRefused() throws {
        let policy = try F.policy()
        let patch = policy.describe(F.request("PATCH", "/my-org/v1/details"), listenerDomain: F.custom)
        #expect(patch.operation == "update-details")
        #expect(patch.logResource == "org_details")
        #expect(patch.domain == F.custom)
        #expect(patch.rateDecision == nil && patch.tokenContext == nil, "nothing judged, nothing spent")
        let members = policy.describe(F.request("GET", "/my-org/members"), listenerDomain: F.canonical)
        #expect(members.operation != nil && members.logResource == nil, "members have no log resource")
        let other = policy.describe(F.request("GET", "/authorize"), listenerDomain: F.custom)
        #expect(other.operation == nil && other.logResource == nil)
    }

    @Test(
        "a token for one domain used on the other is a 401 naming both",
        arguments: [(F.canonical, F.custom), (F.custom, F.canonical)], [true, false])
    func mismatch(domains: (String, String), viaListener: Bool) throws {
        let (tokenDomain, requestDomain) = domains
        let policy = try F.policy()
        for dialect in PipelineFixture.Dialect.allCases {
            let request = F.request("GET", "/my-org/details", host: viaListener ? nil : requestDomain)
            let run = PipelineRun.run(
                policy, request, listenerDomain: viaListener ? requestDomain : nil,
                token: .success(F.token(domain: tokenDomain, scopes: ["read:my_org:details"], dialect: dialect)))
            run.expectError(status: 401, code: "A0E-401-0001", decision: "refused_token")
            #expect(run.headers["WWW-Authenticate"]?.hasPrefix("Bearer error=\"invalid_token\"") == true)
            #expect(run.detail.contains("issued for \(tokenDomain)"), "\(run.detail)")
            #expect(run.detail.contains("sent to \(requestDomain)"), "\(run.detail)")
            #expect(run.notes.domain == requestDomain)
        }
    }

    @Test("an issuer of one domain with an audience of the other is refused either way")
    func mixedIssuerAudience() throws {
        let policy = try F.policy()
        var token = F.token(domain: F.canonical, scopes: ["read:my_org:details"])
        guard case .object(var claims) = token.claims else { return }
        claims = claims.map { $0.0 == "aud" ? ("aud", .string("https://\(F.custom)/my-org/")) : $0 }
        token.claims = .object(claims)
        for domain in F.domains {
            let run = PipelineRun.run(
                policy, F.request("GET", "/my-org/details"), listenerDomain: domain, token: .success(token))
            run.expectError(status: 401, code: "A0E-401-0001", decision: "refused_token")
            #expect(run.detail.contains(F.canonical) && run.detail.contains(F.custom), "\(run.detail)")
        }
    }
}

@Suite("Pipeline: token dialects and token refusals")
struct PipelineTokenTests {
    @Test("both dialects pass on both domains", arguments: PipelineFixture.Dialect.allCases, F.domains)
    func dialects(_ dialect: PipelineFixture.Dialect, domain: String) throws {
        let policy = try F.policy()
        let token = F.token(domain: domain, scopes: ["read:my_org:details", "read:my_org:domains"], dialect: dialect)
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/v1/details"), listenerDomain: domain, token: .success(token))
        #expect(run.isForward, "\(run.summary)")
        #expect(run.notes.clientID == "web")
        #expect(run.notes.userID == "auth0|user1")
        #expect(run.notes.organizationID == F.orgID)
        #expect(run.notes.scope == "read:my_org:details read:my_org:domains")
        let audience =
            dialect == .auth0 ? "https://\(domain)/my-org/ https://\(domain)/userinfo" : "https://\(domain)/my-org/"
        #expect(run.notes.audience == audience)
    }

    @Test("an Auth0 client-credentials token (gty) passes when the policy admits machine-to-machine")
    func clientCredentials() throws {
        let policy = try F.policy(clientCredentials: "require_client_grant")
        let token = F.token(scopes: ["read:my_org:details"], clientCredentials: true)
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/details"), listenerDomain: F.canonical, token: .success(token))
        #expect(run.isForward, "\(run.summary)")
        #expect(run.notes.userID == "web@clients")
    }

    @Test("the header typ application/at+jwt is RFC 9068's too; other types are refused")
    func types() throws {
        let policy = try F.policy()
        for (typ, passes) in [("application/at+jwt", true), ("AT+JWT", true), ("JWT", true), ("JOSE", false)] {
            var token = F.token(scopes: ["read:my_org:details"], dialect: .rfc9068)
            token.header = ["alg": "RS256", "typ": .string(typ), "kid": "k1"]
            let run = PipelineRun.run(
                policy, F.request("GET", "/my-org/details"), listenerDomain: F.canonical, token: .success(token))
            if passes {
                #expect(run.isForward, "\(typ): \(run.summary)")
            } else {
                run.expectError(status: 401, code: "A0E-401-0001", decision: "refused_token")
            }
        }
    }

    @Test("a missing Authorization header is 401 A0E-401-0002, before any token work")
    func missing() throws {
        let policy = try F.policy()
        for domain in F.domains {
            let run = PipelineRun.run(
                policy, F.request("GET", "/my-org/details", authorization: nil), listenerDomain: domain,
                token: .failure(TokenRejection(.malformed, "must not be consulted")))
            run.expectError(status: 401, code: "A0E-401-0002", decision: "refused_token")
            #expect(run.headers["WWW-Authenticate"]?.hasPrefix("Bearer") == true)
            #expect(run.notes.operation == "get-details")
        }
    }

    struct HeaderCase: Sendable, CustomTestStringConvertible {
        var name: String
        var target: String
        var authorization: [String]
        var status: Int
        var code: String
        var testDescription: String { name }
    }

    static let headerCases: [HeaderCase] = [
        HeaderCase(
            name: "two Authorization headers", target: "/my-org/details",
            authorization: ["Bearer \(F.rawToken)", "Bearer \(F.rawToken)x"], status: 400, code: "A0E-400-0001"),
        HeaderCase(
            name: "access_token in the query with a header", target: "/my-org/details?access_token=\(F.rawToken)",
            authorization: ["Bearer \(F.rawToken)"], status: 400, code: "A0E-400-0001"),
        HeaderCase(
            name: "access_token in the query alone", target: "/my-org/details?page=1&access_token=\(F.rawToken)",
            authorization: [], status: 400, code: "A0E-400-0001"),
        HeaderCase(
            name: "percent-encoded access_token in the query", target: "/my-org/details?access%5Ftoken=\(F.rawToken)",
            authorization: [], status: 400, code: "A0E-400-0001"),
        HeaderCase(
            name: "a Basic scheme", target: "/my-org/details", authorization: ["Basic \(F.rawToken)"], status: 401,
            code: "A0E-401-0002"),
        HeaderCase(
            name: "only spaces after Bearer", target: "/my-org/details", authorization: ["Bearer   "],
            status: 401, code: "A0E-401-0002"),
        HeaderCase(
            name: "a DPoP scheme without a DPoP proof", target: "/my-org/details",
            authorization: ["DPoP \(F.rawToken)"], status: 401, code: "A0E-401-0001"),
        HeaderCase(
            name: "a token with a space inside", target: "/my-org/details",
            authorization: ["Bearer \(F.rawToken) \(F.rawToken)"], status: 401, code: "A0E-401-0001"),
        HeaderCase(
            name: "a token over max_token_bytes", target: "/my-org/details",
            authorization: ["Bearer " + String(repeating: F.rawToken + ".", count: 120)], status: 401,
            code: "A0E-401-0001"),
    ]

    @Test("malformed token transport is refused in begin; no body repeats the token", arguments: headerCases)
    func transport(_ c: HeaderCase) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, F.request("GET", c.target, authorization: c.authorization), listenerDomain: F.canonical,
            token: .success(F.token(scopes: ["read:my_org:details"])))
        run.expectError(status: c.status, code: c.code, decision: "refused_token")
        #expect(!run.bodyText.contains(F.rawToken))
        #expect(!run.bodyText.contains("c2lnbmF0dXJl"))
        for field in run.headers { #expect(!field.value.contains("c2lnbmF0dXJl"), "\(field.name)") }
    }

    @Test(
        "signature-stage rejections are 401 invalid_token with a detail of their own",
        arguments: [
            (TokenRejection(.unknownKey, "kid k9 is not in the tenant's JWKS"), "unknown key (kid k9"),
            (TokenRejection(.signature, "RS256 verification failed"), "signature is invalid"),
            (TokenRejection(.algorithm, "alg HS256 is not allowed"), "alg HS256 is not allowed"),
            (TokenRejection(.malformed, "not three base64url parts"), "not three base64url parts"),
        ])
    func rejections(_ rejection: TokenRejection, expected: String) throws {
        let policy = try F.policy()
        var seen = ""
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/details"), listenerDomain: F.custom, token: .failure(rejection),
            tokenSeen: { seen = $0 })
        #expect(seen == F.rawToken, "begin hands the raw token to the signature check")
        run.expectError(status: 401, code: "A0E-401-0001", decision: "refused_token")
        #expect(run.headers["WWW-Authenticate"]?.hasPrefix("Bearer error=\"invalid_token\"") == true)
        #expect(run.detail.contains(expected), "\(run.detail)")
        #expect(!run.bodyText.contains(F.rawToken))
        #expect(run.notes.rateDecision == nil)
    }

    @Test("before the first key set the answer is 503 with Retry-After, not invalid_token: the token may be good")
    func noKeysYet() throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/details"), listenerDomain: F.custom,
            token: .failure(TokenRejection(.noKeys, "JWKS not fetched yet")))
        run.expectError(status: 503, code: "A0E-503-0001", decision: "not_ready")
        #expect(run.headers["Retry-After"] == "1")
        #expect(run.headers["WWW-Authenticate"] == nil)
        #expect(run.detail.contains("signing keys"), "\(run.detail)")
        #expect(run.notes.rateDecision == nil)
    }

    enum ClaimsCase: String, Sendable, CaseIterable {
        case expired, longLifetime, issuedInFuture, noOrganization

        var token: VerifiedToken {
            let scopes = ["read:my_org:details"]
            switch self {
            case .expired: return F.token(scopes: scopes, issuedAgo: 400, lifetime: 300)
            case .longLifetime: return F.token(scopes: scopes, lifetime: 3600)
            case .issuedInFuture: return F.token(scopes: scopes, issuedAgo: -120)
            case .noOrganization: return F.token(scopes: scopes, org: "")
            }
        }
    }

    @Test("claims refusals are 401 invalid_token", arguments: ClaimsCase.allCases)
    func claims(_ c: ClaimsCase) throws {
        let policy = try F.policy()
        let run = PipelineRun.run(
            policy, F.request("GET", "/my-org/details"), listenerDomain: F.canonical, token: .success(c.token))
        run.expectError(status: 401, code: "A0E-401-0001", decision: "refused_token")
        #expect(run.headers["WWW-Authenticate"]?.hasPrefix("Bearer error=\"invalid_token\"") == true)
        #expect(run.notes.rateDecision == nil)
    }

    @Test(
        "the host of an authority: the port goes, an IP literal keeps its brackets",
        arguments: [
            ("acme.example.com", "acme.example.com"), ("acme.example.com:443", "acme.example.com"),
            ("acme.example.com:", "acme.example.com"), ("[::1]:8443", "[::1]"), ("[::1]", "[::1]"),
            ("[2001:db8::1", "[2001:db8::1]"), ("a:b:8443", "a:b"), ("", ""), ("bücher.example:80", "bücher.example"),
        ] as [(String, String)])
    func hostWithoutPort(authority: String, host: String) {
        #expect(RequestPolicy.hostWithoutPort(authority) == host)
    }
}
