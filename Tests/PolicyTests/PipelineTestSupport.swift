import GatewayCore
import Testing

@testable import Policy

/// Fixtures for the `RequestPolicy` tests: one tenant with two domains, three clients, step-up on IdP
/// deletion, and tokens built as claims (the signature check is the caller's, not this layer's).
enum PipelineFixture {
    static let canonical = "acme.us.auth0.com"
    static let custom = "login.acme.com"
    static let domains = [canonical, custom]
    /// 2025-06-15T15:06:40Z: fixed, so rate-limit resets and token times are reproducible.
    static let now: Int64 = 1_750_000_000 * 1_000_000_000
    static let second: Int64 = 1_000_000_000
    static let appOrigin = "https://app.acme.com"
    /// Allowed for the `partner` client only.
    static let partnerOrigin = "https://partner.example.org"
    static let strangerOrigin = "https://evil.example.net"
    static let orgID = "org_abc123"
    /// What the client sends in `Authorization`; the claims that go with it are built separately.
    static let rawToken = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhdXRoMHwxIn0.c2lnbmF0dXJlLXNlY3JldA"

    static let allScopes = EndpointTable.embedded.knownScopes.sorted()

    static func yaml(
        tier: String = "public_enterprise", forwardUnknown: Bool = false, userFlows: String = "require_client_grant",
        clientCredentials: String = "deny_all", faults: String = "[]"
    ) -> String {
        """
        tenant:
          name: acme
          canonical_domain: \(canonical)
          custom_domains: [\(custom)]
          tier: \(tier)
        listeners:
          - address: 127.0.0.1:8080
        upstream:
          \(canonical): { url: https://\(canonical) }
          \(custom): { url: https://acme-cd.edge.tenants.us.auth0.com, cname_api_key: { env: CNAME_API_KEY } }
        forward_unknown_endpoints: \(forwardUnknown)
        access: { user_flows: \(userFlows), client_credentials: \(clientCredentials) }
        clients:
          - client_id: web
            allowed_origins: [\(appOrigin), "https://*.acme.com"]
            grant_scopes: [\(allScopes.joined(separator: ", "))]
            my_organization_configuration: { allowed_strategies: [okta, samlp], connection_deletion_behavior: allow_if_empty }
          - client_id: partner
            allowed_origins: [\(partnerOrigin)]
            grant_scopes: [read:my_org:details]
            my_organization_configuration: { allowed_strategies: [okta] }
          - client_id: bare
            grant_scopes: [read:my_org:details]
        step_up: { scopes: [delete:my_org:identity_providers], amr: mfa }
        cors: { max_age_s: 600 }
        rate_limits: { store: local, burst_s: 1.0 }
        faults: \(faults)

        """
    }

    static func config(_ yaml: String) throws -> GatewayConfig {
        try GatewayConfig.load(yaml: yaml, file: "tenant.yaml", baseDirectory: "/etc/gw")
    }

    static func policy(
        tier: String = "public_enterprise", forwardUnknown: Bool = false, userFlows: String = "require_client_grant",
        clientCredentials: String = "deny_all", faults: String = "[]"
    ) throws -> RequestPolicy {
        let text = yaml(
            tier: tier, forwardUnknown: forwardUnknown, userFlows: userFlows, clientCredentials: clientCredentials,
            faults: faults)
        return try RequestPolicy(config: try config(text), tiers: .embedded)
    }

    // MARK: Tokens

    enum Dialect: String, Sendable, CaseIterable {
        /// `azp`, header `typ: JWT`, `aud` an array with `/userinfo`.
        case auth0
        /// `client_id`, `jti`, header `typ: at+jwt`, `aud` a string.
        case rfc9068
    }

    /// The header and claims of a well-formed access token issued for `domain`.
    static func token(
        domain: String = canonical, client: String = "web", scopes: [String], dialect: Dialect = .auth0,
        org: String = orgID, amr: [String]? = nil, clientCredentials: Bool = false, issuedAgo: Int64 = 10,
        lifetime: Int64 = 300
    ) -> VerifiedToken {
        let nowSeconds = Double(now / second)
        var claims: [(String, JSONValue)] = [
            ("iss", .string("https://\(domain)/")),
            ("sub", .string(clientCredentials ? "\(client)@clients" : "auth0|user1")),
        ]
        switch dialect {
        case .auth0:
            claims.append(
                ("aud", .array([.string("https://\(domain)/my-org/"), .string("https://\(domain)/userinfo")])))
            claims.append(("azp", .string(client)))
            if clientCredentials { claims.append(("gty", "client-credentials")) }
        case .rfc9068:
            claims.append(("aud", .string("https://\(domain)/my-org/")))
            claims.append(("client_id", .string(client)))
            claims.append(("jti", "6f1c2a9e-1b7d-4c1e-9d52-3a9b0c7e2f10"))
        }
        claims.append(("iat", .number(nowSeconds - Double(issuedAgo))))
        claims.append(("exp", .number(nowSeconds - Double(issuedAgo) + Double(lifetime))))
        claims.append(("org_id", .string(org)))
        claims.append(("scope", .string(scopes.joined(separator: " "))))
        if let amr { claims.append(("amr", .array(amr.map { .string($0) }))) }
        let typ: JSONValue = dialect == .auth0 ? "JWT" : "at+jwt"
        return VerifiedToken(header: ["alg": "RS256", "typ": typ, "kid": "k1"], claims: .object(claims))
    }

    // MARK: Requests

    static func request(
        _ method: String, _ target: String, host: String? = nil, origin: String? = nil,
        authorization: [String]? = ["Bearer \(rawToken)"], extra: [(String, String)] = []
    ) -> RequestHead {
        var headers = HTTPFields()
        for value in authorization ?? [] { headers.add("Authorization", value) }
        if let origin { headers.add("Origin", origin) }
        for (name, value) in extra { headers.add(name, value) }
        return RequestHead(method: method, target: target, headers: headers, authority: host, scheme: "https")
    }

    /// `template` with every `{param}` replaced by a sample value.
    static func concrete(_ template: String) -> String {
        template.split(separator: "/", omittingEmptySubsequences: false).map { segment in
            segment.hasPrefix("{") ? "x_\(segment.dropFirst().dropLast())" : String(segment)
        }.joined(separator: "/")
    }
}

/// What the two steps of `RequestPolicy` produced for one request, flattened for assertions.
enum PipelineRun {
    case respond(Response, PipelineNotes)
    case forward(headers: HTTPFields, delayMilliseconds: Int, notes: PipelineNotes)
    case forwardUnchecked(domain: String, notes: PipelineNotes)

    /// Runs `begin`, then, when a token is needed, `authorize` with `token`. `tokenSeen` receives the raw token
    /// `begin` extracted.
    static func run(
        _ policy: RequestPolicy, _ request: RequestHead, listenerDomain: String?,
        token: Result<VerifiedToken, TokenRejection>, body: [UInt8] = [], now: Int64 = PipelineFixture.now,
        seed: UInt64 = 7, tokenSeen: ((String) -> Void)? = nil
    ) -> PipelineRun {
        var random = FaultRandom(seed: seed)
        switch policy.begin(request, listenerDomain: listenerDomain) {
        case .respond(let response, let notes): return .respond(response, notes)
        case .forwardUnchecked(let domain, let notes): return .forwardUnchecked(domain: domain, notes: notes)
        case .needsToken(let raw, let route, let notes):
            tokenSeen?(raw)
            switch policy.authorize(
                request, body: body, route: route, token: token, notes: notes, nowNanoseconds: now, random: &random)
            {
            case .respond(let response, let notes): return .respond(response, notes)
            case .forward(let headers, let delay, let notes):
                return .forward(headers: headers, delayMilliseconds: delay, notes: notes)
            }
        }
    }

    var notes: PipelineNotes {
        switch self {
        case .respond(_, let n), .forward(_, _, let n), .forwardUnchecked(_, let n): return n
        }
    }

    var response: Response? {
        if case .respond(let r, _) = self { return r }
        return nil
    }

    /// The status the gateway wrote, or nil when the request goes upstream.
    var status: Int? { response?.head.status }

    /// The gateway's own response headers, or the headers it sets on the upstream's answer.
    var headers: HTTPFields {
        switch self {
        case .respond(let r, _): return r.head.headers
        case .forward(let h, _, _): return h
        case .forwardUnchecked: return HTTPFields()
        }
    }

    var isForward: Bool {
        if case .forward = self { return true }
        return false
    }

    var bodyText: String { response.map { String(decoding: $0.body, as: UTF8.self) } ?? "" }

    var bodyJSON: JSONValue? { response.flatMap { try? JSONValue.parse($0.body) } }

    var summary: String {
        switch self {
        case .respond(let r, let n): return "respond \(r.head.status) [\(n.decision)] \(bodyText)"
        case .forward(_, let d, let n): return "forward delay=\(d) [\(n.decision)]"
        case .forwardUnchecked(let d, let n): return "forwardUnchecked \(d) [\(n.decision)]"
        }
    }

    /// Asserts a refusal in the tenant's error shape: status, A0E code, a non-empty detail, JSON headers, and
    /// `notes.error` describing exactly what was written.
    func expectError(
        status: Int, code: String, decision: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard let response else {
            Issue.record("expected \(status) \(code), got \(summary)", sourceLocation: sourceLocation)
            return
        }
        #expect(response.head.status == status, "\(summary)", sourceLocation: sourceLocation)
        let json = bodyJSON
        #expect(json?["type"]?.stringValue == "https://auth0.com/api-errors#\(code)", sourceLocation: sourceLocation)
        #expect(json?["status"]?.int64Value == Int64(status), sourceLocation: sourceLocation)
        #expect(json?["title"]?.stringValue?.isEmpty == false, sourceLocation: sourceLocation)
        #expect(json?["detail"]?.stringValue?.isEmpty == false, sourceLocation: sourceLocation)
        #expect(
            response.head.headers["Content-Type"] == "application/json", sourceLocation: sourceLocation)
        #expect(notes.error?.status == status, sourceLocation: sourceLocation)
        #expect(
            notes.error?.code == code, "notes.error: \(String(describing: notes.error))", sourceLocation: sourceLocation
        )
        if let decision { #expect(notes.decision == decision, sourceLocation: sourceLocation) }
        // Whatever the refusal, the client's token never comes back in it.
        #expect(!bodyText.contains(PipelineFixture.rawToken), sourceLocation: sourceLocation)
        for field in response.head.headers {
            #expect(!field.value.contains(PipelineFixture.rawToken), "\(field.name)", sourceLocation: sourceLocation)
        }
    }

    var detail: String { bodyJSON?["detail"]?.stringValue ?? "" }
}

/// One operation of the table on one prefix and one domain.
struct PipelineEndpointCase: Sendable, CustomTestStringConvertible {
    var endpoint: Endpoint
    var prefix: String
    var domain: String
    /// For refusal cases: the scope left out of the token.
    var missing: String?

    var path: String { prefix + PipelineFixture.concrete(endpoint.template) }

    var testDescription: String {
        "\(endpoint.method) \(path) on \(domain)" + (missing.map { " without \($0)" } ?? "")
    }

    static let prefixes = ["/my-org/", "/my-org/v1/"]

    static var all: [PipelineEndpointCase] {
        EndpointTable.embedded.endpoints.flatMap { endpoint in
            prefixes.flatMap { prefix in
                PipelineFixture.domains.map { PipelineEndpointCase(endpoint: endpoint, prefix: prefix, domain: $0) }
            }
        }
    }

    static var missingScope: [PipelineEndpointCase] {
        all.flatMap { c in
            c.endpoint.scopes.map {
                var m = c; m.missing = $0; return m
            }
        }
    }
}
