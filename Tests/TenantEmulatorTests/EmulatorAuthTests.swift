import GatewayCore
import Policy
import TestSupport
import Testing

@testable import TenantEmulator

@Suite("Emulator authentication and scopes")
struct EmulatorAuthTests {
    @Test("every endpoint answers 401 Missing Token without a bearer token", arguments: EmulatorEndpoint.all)
    func missingToken(endpoint: EmulatorEndpoint) {
        let h = Harness()
        for authorization in [String?.none, "Basic dXNlcjpwYXNz", "Bearer", "Bearer  "] {
            let answer = h.call(
                endpoint.method, concretePath(endpoint.pathTemplate), "{}", authorization: .some(authorization))
            answer.expectError(401, "A0E-401-0002")
            #expect(answer.headers["WWW-Authenticate"]?.hasPrefix("Bearer") == true)
        }
    }

    @Test("every endpoint answers 403 Insufficient Scope naming each scope it lacks", arguments: EmulatorEndpoint.all)
    func missingScope(endpoint: EmulatorEndpoint) {
        let h = Harness()
        for scope in endpoint.scopes {
            let answer = h.call(
                endpoint.method, concretePath(endpoint.pathTemplate), "{}",
                scopes: Harness.allScopes.subtracting([scope]))
            answer.expectError(403, "A0E-403-0002")
            #expect(answer.detail.contains(scope))
            #expect(answer.headers["WWW-Authenticate"]?.contains("insufficient_scope") == true)
        }
    }

    @Test("a token the verifier refuses gets the verifier's error")
    func refusedToken() {
        let answer = Harness().call("GET", "/my-org/details", authorization: "Bearer not-a-token")
        answer.expectError(401, "A0E-401-0001")
        #expect(answer.headers["WWW-Authenticate"] == "Bearer error=\"invalid_token\"")
    }

    @Test("the scheme is case-insensitive")
    func schemes() {
        let h = Harness()
        for scheme in ["bearer", "BEARER", "Bearer"] {
            #expect(h.call("GET", "/my-org/details", authorization: "\(scheme) \(Harness.token())").status == 200)
        }
    }

    @Test("a DPoP-bound token needs the DPoP scheme and one valid proof for this method, URL and token (RFC 9449)")
    func dpopBinding() {
        let h = Harness()
        let key = DPoPKey()
        let token = Harness.token() + ";" + key.thumbprint
        let now = h.clock.nowSeconds()
        func call(_ proofs: [String], scheme: String = "DPoP", token: String = token, method: String = "GET") -> Answer
        {
            var extra = HTTPFields()
            for proof in proofs { extra.add("DPoP", proof) }
            return h.call(
                method, "/my-org/details", method == "GET" ? nil : "{}", authorization: "\(scheme) \(token)",
                host: "login.acme.test:8444", extra: extra)
        }
        let url = "https://login.acme.test:8444/my-org/details"
        let good = key.proof(method: "GET", url: url, accessToken: token, iat: now)
        #expect(call([good]).status == 200)
        // Behind the gateway: the request's host is the upstream's, X-Forwarded-Host the one the client used.
        var forwarded = HTTPFields()
        forwarded.add("X-Forwarded-Host", "login.acme.test:8444")
        forwarded.add("DPoP", good)
        #expect(
            h.call(
                "GET", "/my-org/details", authorization: "DPoP \(token)", host: "127.0.0.1:9000", extra: forwarded
            ).status == 200)

        let invalidProof: [(String, [String])] = [
            ("another URL", [key.proof(method: "GET", url: url + "x", accessToken: token, iat: now)]),
            ("another method", [key.proof(method: "POST", url: url, accessToken: token, iat: now)]),
            ("ath", [key.proof(method: "GET", url: url, accessToken: Harness.token(), iat: now)]),
            ("cnf.jkt", [DPoPKey().proof(method: "GET", url: url, accessToken: token, iat: now)]),
            ("Exactly one", []),
            ("Exactly one", [good, good]),
        ]
        for (reason, proofs) in invalidProof {
            let answer = call(proofs)
            answer.expectError(401, "A0E-401-0001")
            #expect(answer.detail.contains(reason), "\(reason): \(answer.detail)")
            #expect(answer.headers["WWW-Authenticate"]?.hasPrefix("DPoP error=\"invalid_dpop_proof\"") == true)
        }
        // A bound token as a bearer token, and the DPoP scheme with an unbound one.
        call([good], scheme: "Bearer").expectError(401, "A0E-401-0001")
        let unbound = call([good], token: Harness.token())
        unbound.expectError(401, "A0E-401-0001")
        #expect(unbound.detail.contains("not DPoP-bound"))
    }

    @Test("a token verified by the caller is used without an Authorization header")
    func preverifiedToken() {
        let h = Harness()
        let info = TokenInfo(orgID: Harness.seed, scopes: ["read:my_org:details"])
        let response = h.tenant.handle(
            EmulatorRequest(head: RequestHead(method: "GET", target: "/my-org/details"), token: info))
        #expect(response.head.status == 200)
        let denied = h.tenant.handle(
            EmulatorRequest(head: RequestHead(method: "PATCH", target: "/my-org/details"), body: [], token: info))
        #expect(denied.head.status == 403)
    }

    @Test(
        "a client-credentials token is refused on every endpoint with the gateway's own 403, whatever its scopes",
        arguments: EmulatorEndpoint.all)
    func clientCredentialsRefused(endpoint: EmulatorEndpoint) {
        let h = Harness()
        let refusal = AccessPolicy.clientCredentialsRefusal.response
        for scopes in [Harness.allScopes, []] {
            let info = TokenInfo(
                orgID: Harness.seed, scopes: scopes, clientID: "m2m-app", subject: "m2m-app@clients",
                isClientCredentials: true)
            let response = h.tenant.handle(
                EmulatorRequest(
                    head: RequestHead(method: endpoint.method, target: concretePath(endpoint.pathTemplate)),
                    body: Array("{}".utf8), token: info))
            let answer = Answer(status: response.head.status, headers: response.head.headers, body: response.body)
            answer.expectError(403, "A0E-403-0001")
            #expect(answer.body == refusal.body, "\(answer.text)")
            #expect(answer.headers["WWW-Authenticate"] == refusal.head.headers["WWW-Authenticate"])
        }
    }

    @Test("token info from claims: scope split, org_id, azp or client_id, sub")
    func tokenInfoFromClaims() throws {
        let auth0: JSONValue = [
            "org_id": "org_abc", "scope": "read:my_org:details  update:my_org:details", "azp": "client-1",
            "sub": "auth0|1",
        ]
        let info = try EmulatorTokenInfo.make(claims: auth0).get()
        #expect(
            info
                == TokenInfo(
                    orgID: "org_abc", scopes: ["read:my_org:details", "update:my_org:details"], clientID: "client-1",
                    subject: "auth0|1"))
        let rfc9068: JSONValue = ["org_id": "org_abc", "client_id": "client-2", "sub": "client-2@clients"]
        let other = try EmulatorTokenInfo.make(claims: rfc9068).get()
        #expect(other.clientID == "client-2")
        #expect(other.scopes.isEmpty)
        #expect(!info.isClientCredentials)
        #expect(other.isClientCredentials, "a {client_id}@clients subject")
        for claims: JSONValue in [
            ["org_id": "org_abc", "azp": "client-3", "sub": "auth0|1", "gty": "client-credentials"],
            ["org_id": "org_abc", "client_id": "client-3", "sub": "client-3"],
        ] {
            #expect(try EmulatorTokenInfo.make(claims: claims).get().isClientCredentials, "\(claims)")
        }
        guard case .failure(let error) = EmulatorTokenInfo.make(claims: ["scope": "read:my_org:details"]) else {
            Issue.record("a token without org_id was accepted")
            return
        }
        #expect(error.status == 401)
        #expect(!error.detail.isEmpty)
    }
}
