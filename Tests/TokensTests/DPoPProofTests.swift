import GatewayCore
import TestSupport
import Testing

@testable import Tokens

@Suite("DPoP proofs (RFC 9449 §4.3), as the emulated tenant checks them")
struct DPoPProofTests {
    static let key = DPoPKey()
    static let url = "https://login.acme.test:8444/my-org/details"
    static let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    static let now: Int64 = 1_800_000_000

    static func expected(
        method: String = "GET", url: String = url, token: String = token, thumbprint: String = key.thumbprint
    ) -> DPoPProof.Expectation {
        DPoPProof.Expectation(method: method, url: url, accessToken: token, thumbprint: thumbprint, nowSeconds: now)
    }

    @Test("a proof for this method, URL, token and key passes; query, fragment, case and default port aside")
    func validProof() {
        let key = Self.key
        let proof = key.proof(method: "GET", url: Self.url, accessToken: Self.token, iat: Self.now - 10)
        #expect(DPoPProof.problem(proof, Self.expected()) == nil)
        #expect(DPoPProof.problem(proof, Self.expected(url: Self.url + "?fields=name#x")) == nil)
        let plain = key.proof(
            method: "GET", url: "HTTPS://Login.Acme.Test:443/my-org/details", accessToken: Self.token, iat: Self.now)
        #expect(DPoPProof.problem(plain, Self.expected(url: "https://login.acme.test/my-org/details")) == nil)
    }

    @Test("each binding and syntax rule refuses with a reason of its own")
    func refusals() {
        let key = Self.key
        func proof(
            method: String = "GET", url: String = DPoPProofTests.url, token: String = DPoPProofTests.token,
            iat: Int64 = DPoPProofTests.now,
            typ: String = "dpop+jwt", jwk: String? = nil, jti: String = "j1"
        ) -> String {
            key.proof(method: method, url: url, accessToken: token, iat: iat, typ: typ, jwk: jwk, jti: jti)
        }
        let other = DPoPKey()
        let cases: [(String, String, DPoPProof.Expectation)] = [
            (proof(url: "https://login.acme.test:8444/my-org/members"), "another URL", Self.expected()),
            (proof(url: "https://acme.eu.auth0.com/my-org/details"), "another URL", Self.expected()),
            (proof(method: "POST"), "another method", Self.expected()),
            (proof(token: "another.token.here"), "ath", Self.expected()),
            (proof(iat: Self.now - 301), "too old", Self.expected()),
            (proof(iat: Self.now + 61), "future", Self.expected()),
            (proof(typ: "JWT"), "typ", Self.expected()),
            (proof(jti: ""), "jti", Self.expected()),
            (proof(), "cnf.jkt", Self.expected(thumbprint: other.thumbprint)),
            // The header names another key than the one that signed: the signature check fails.
            (proof(jwk: other.jwk), "signature", Self.expected(thumbprint: other.thumbprint)),
            (
                proof(jwk: #"{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}"#), "private key material",
                Self.expected()
            ),
            (proof(jwk: #"{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}"#), "usable", Self.expected()),
            ("a.b", "compact JWS", Self.expected()),
            ("eyJ9.eyJ9.AA", "not JSON objects", Self.expected()),
        ]
        for (text, reason, expected) in cases {
            let problem = DPoPProof.problem(text, expected)
            #expect(problem?.contains(reason) == true, "\(reason): \(problem ?? "accepted")")
            #expect(problem.map { !$0.contains(Self.token) } ?? true)
        }
        // A signature altered in its last byte.
        var tampered = Array(proof().utf8)
        tampered[tampered.count - 2] = tampered[tampered.count - 2] == UInt8(ascii: "A") ? 66 : 65
        let problem = DPoPProof.problem(String(decoding: tampered, as: UTF8.self), Self.expected())
        #expect(problem != nil)
    }

    @Test("the RFC 7638 thumbprint of an EC key is the one RFC 7638 §3.1's member order gives")
    func thumbprint() throws {
        let jwk = try JSONValue.parse(Array(Self.key.jwk.utf8))
        #expect(PublicJWK(jwk, alg: "ES256")?.thumbprint == Self.key.thumbprint)
        #expect(PublicJWK(jwk, alg: "RS256") == nil)
    }
}
