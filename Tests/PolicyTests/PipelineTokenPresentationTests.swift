import GatewayCore
import Testing

@testable import Policy

/// How a token is presented and which tokens count as what: the DPoP scheme and binding (RFC 9449 §7), RFC 9068
/// client-credentials tokens, `typ` spellings (RFC 7515 §4.1.9), challenges on every token refusal (RFC 6750 §3),
/// HEAD (RFC 9110 §9.3.2) and `OPTIONS *` (RFC 9112 §3.2.4).
@Suite("Pipeline: token presentation")
struct PipelineTokenPresentationTests {
    typealias F = PipelineFixture

    static let thumbprint = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"

    /// `token` with `extra` claims appended and the members named in `removing` dropped.
    static func token(
        _ token: VerifiedToken, adding extra: [(String, JSONValue)] = [], removing: Set<String> = [],
        typ: JSONValue? = nil
    ) -> VerifiedToken {
        guard case .object(let members) = token.claims, case .object(var header) = token.header else { return token }
        if let typ { header = header.filter { $0.0 != "typ" } + [("typ", typ)] }
        return VerifiedToken(
            header: .object(header), claims: .object(members.filter { !removing.contains($0.0) } + extra))
    }

    static func read(_ authorization: String, extra: [(String, String)] = []) -> RequestHead {
        F.request("GET", "/my-org/details", authorization: [authorization], extra: extra)
    }

    static let scopes = ["read:my_org:details"]

    @Test("an RFC 9068 client-credentials token (sub is the client, no gty) is refused under deny_all")
    func rfc9068ClientCredentials() throws {
        let base = F.token(client: "web", scopes: Self.scopes, dialect: .rfc9068)
        let machine = Self.token(base, adding: [("sub", "web")], removing: ["sub"])
        let denied = PipelineRun.run(
            try F.policy(), Self.read("Bearer \(F.rawToken)"), listenerDomain: F.canonical, token: .success(machine))
        denied.expectError(status: 403, code: "A0E-403-0001", decision: "refused_access")
        #expect(denied.detail.contains("deny_all"))
        #expect(denied.headers["WWW-Authenticate"]?.hasPrefix("Bearer error=\"insufficient_scope\"") == true)
        // The same token passes when client credentials are allowed, and a user's token passes under deny_all.
        let allowed = PipelineRun.run(
            try F.policy(clientCredentials: "allow_all"), Self.read("Bearer \(F.rawToken)"),
            listenerDomain: F.canonical, token: .success(machine))
        #expect(allowed.isForward, "\(allowed.summary)")
        let user = PipelineRun.run(
            try F.policy(), Self.read("Bearer \(F.rawToken)"), listenerDomain: F.canonical, token: .success(base))
        #expect(user.isForward, "\(user.summary)")
    }

    @Test("a client without a grant gets a 403 with an RFC 6750 challenge")
    func noGrantChallenge() throws {
        let stranger = F.token(client: "stranger", scopes: Self.scopes)
        let run = PipelineRun.run(
            try F.policy(), Self.read("Bearer \(F.rawToken)"), listenerDomain: F.canonical, token: .success(stranger))
        run.expectError(status: 403, code: "A0E-403-0001", decision: "refused_access")
        #expect(run.headers["WWW-Authenticate"]?.hasPrefix("Bearer error=\"insufficient_scope\"") == true)
    }

    @Test(
        "typ: JWT and at+jwt with or without application/, in any case, are access tokens; other types are not",
        arguments: [
            ("JWT", true), ("jwt", true), ("application/jwt", true), ("APPLICATION/JWT", true), ("at+jwt", true),
            ("application/at+jwt", true), ("JOSE", false), ("application/jose", false), ("jwt; x=y", false),
            ("application/", false),
        ])
    func typSpellings(typ: String, accepted: Bool) throws {
        let token = Self.token(F.token(scopes: Self.scopes), typ: .string(typ))
        let run = PipelineRun.run(
            try F.policy(), Self.read("Bearer \(F.rawToken)"), listenerDomain: F.canonical, token: .success(token))
        if accepted {
            #expect(run.isForward, "\(typ): \(run.summary)")
        } else {
            run.expectError(status: 401, code: "A0E-401-0001", decision: "refused_token")
        }
    }

    @Test("a DPoP-bound token with the DPoP scheme and one proof is judged like any token and forwarded")
    func dpopBoundForwarded() throws {
        let bound = Self.token(F.token(scopes: Self.scopes), adding: [("cnf", ["jkt": .string(Self.thumbprint)])])
        var seen: String? = nil
        let run = PipelineRun.run(
            try F.policy(), Self.read("DPoP \(F.rawToken)", extra: [("DPoP", "proof.jwt.value")]),
            listenerDomain: F.canonical, token: .success(bound), tokenSeen: { seen = $0 })
        #expect(run.isForward, "\(run.summary)")
        #expect(seen == F.rawToken)
        #expect(run.notes.tokenContext?.dpopThumbprint == Self.thumbprint)
        // The scopes still decide: a bound token without the endpoint's scope is refused as any other.
        let narrow = Self.token(F.token(scopes: ["read:my_org:domains"]), adding: [("cnf", ["jkt": "x"])])
        let refused = PipelineRun.run(
            try F.policy(), Self.read("DPoP \(F.rawToken)", extra: [("DPoP", "proof")]), listenerDomain: F.canonical,
            token: .success(narrow))
        refused.expectError(status: 403, code: "A0E-403-0002", decision: "refused_scope")
        // RFC 9449 §7.1: the challenge answers in the scheme the request used.
        #expect(refused.headers["WWW-Authenticate"]?.hasPrefix("DPoP error=\"insufficient_scope\"") == true)
        let expired = Self.token(
            F.token(scopes: Self.scopes, issuedAgo: 1000, lifetime: 300), adding: [("cnf", ["jkt": "x"])])
        let late = PipelineRun.run(
            try F.policy(), Self.read("DPoP \(F.rawToken)", extra: [("DPoP", "proof")]), listenerDomain: F.canonical,
            token: .success(expired))
        late.expectError(status: 401, code: "A0E-401-0001", decision: "refused_token")
        #expect(late.headers["WWW-Authenticate"]?.hasPrefix("DPoP error=\"invalid_token\"") == true)
    }

    @Test("a DPoP-bound token presented as a bearer token is refused (RFC 9449 §7.2)")
    func boundTokenAsBearer() throws {
        let bound = Self.token(F.token(scopes: Self.scopes), adding: [("cnf", ["jkt": .string(Self.thumbprint)])])
        let run = PipelineRun.run(
            try F.policy(), Self.read("Bearer \(F.rawToken)"), listenerDomain: F.canonical, token: .success(bound))
        run.expectError(status: 401, code: "A0E-401-0001", decision: "refused_token")
        #expect(run.detail.contains("DPoP"))
        #expect(run.headers["WWW-Authenticate"]?.hasPrefix("Bearer error=\"invalid_token\"") == true)
    }

    @Test("the DPoP scheme with a token that is not bound is refused with a DPoP challenge")
    func unboundTokenAsDPoP() throws {
        let run = PipelineRun.run(
            try F.policy(), Self.read("DPoP \(F.rawToken)", extra: [("DPoP", "proof")]), listenerDomain: F.canonical,
            token: .success(F.token(scopes: Self.scopes)))
        run.expectError(status: 401, code: "A0E-401-0001", decision: "refused_token")
        #expect(run.headers["WWW-Authenticate"]?.hasPrefix("DPoP error=\"invalid_token\"") == true)
    }

    @Test("the DPoP scheme without its proof is refused before any token work (invalid_dpop_proof)")
    func dpopWithoutProof() throws {
        var seen = false
        let run = PipelineRun.run(
            try F.policy(), Self.read("DPoP \(F.rawToken)"), listenerDomain: F.canonical,
            token: .success(F.token(scopes: Self.scopes)), tokenSeen: { _ in seen = true })
        run.expectError(status: 401, code: "A0E-401-0001", decision: "refused_token")
        #expect(run.headers["WWW-Authenticate"]?.hasPrefix("DPoP error=\"invalid_dpop_proof\"") == true)
        #expect(!seen, "no token verification for a request refused at extraction")
    }

    @Test("a malformed cnf claim is refused")
    func malformedConfirmation() throws {
        for cnf: JSONValue in ["jkt", ["jkt": 5], ["jkt": ""]] {
            let token = Self.token(F.token(scopes: Self.scopes), adding: [("cnf", cnf)])
            let run = PipelineRun.run(
                try F.policy(), Self.read("DPoP \(F.rawToken)", extra: [("DPoP", "p")]), listenerDomain: F.canonical,
                token: .success(token))
            run.expectError(status: 401, code: "A0E-401-0001", decision: "refused_token")
        }
    }

    @Test("HEAD is the GET operation: same scopes, rate class and log resource")
    func headIsGet() throws {
        let policy = try F.policy()
        let request = F.request("HEAD", "/my-org/details")
        let run = PipelineRun.run(
            policy, request, listenerDomain: F.canonical, token: .success(F.token(scopes: Self.scopes)))
        #expect(run.isForward, "\(run.summary)")
        #expect(run.notes.operation == "get-details" || run.notes.operation?.contains("details") == true)
        #expect(run.headers["X-RateLimit-Limit"] != nil)
        let narrow = PipelineRun.run(
            policy, request, listenerDomain: F.canonical, token: .success(F.token(scopes: ["read:my_org:domains"])))
        narrow.expectError(status: 403, code: "A0E-403-0002", decision: "refused_scope")
    }

    @Test("OPTIONS * is answered by the gateway: 200, Allow, Content-Length 0, no token needed")
    func optionsAsterisk() throws {
        let request = RequestHead(method: "OPTIONS", target: "*", headers: HTTPFields(), authority: F.canonical)
        let run = PipelineRun.run(
            try F.policy(), request, listenerDomain: F.canonical, token: .success(F.token(scopes: [])))
        #expect(run.status == 200, "\(run.summary)")
        #expect(run.headers["Allow"]?.contains("HEAD") == true)
        #expect(run.headers["Content-Length"] == "0")
        #expect(run.response?.body.isEmpty == true)
        #expect(run.notes.decision == "options_server")
    }
}
