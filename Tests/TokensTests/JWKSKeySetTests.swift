import COpenSSL
import GatewayCore
import TestSupport
import Testing

@testable import Tokens

@Suite("JWKS key sets")
struct JWKSKeySetTests {
    /// RFC 7638 §3.1's example key and its published thumbprint.
    static let rfc7638Modulus =
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"

    static func jwk(
        kid: JSONValue? = "k1", kty: String = "RSA", modulus: [UInt8]? = nil, exponent: [UInt8] = [1, 0, 1],
        extra: [(String, JSONValue)] = []
    ) -> JSONValue {
        var members: [(String, JSONValue)] = [("kty", .string(kty))]
        if let kid { members.append(("kid", kid)) }
        members.append(("n", .string(Base64URL.encode(modulus ?? TestKeys.primary.publicKey.modulus))))
        members.append(("e", .string(Base64URL.encode(exponent))))
        return .object(members + extra)
    }

    static func document(_ keys: [JSONValue]) -> String { JSONValue.object([("keys", .array(keys))]).serialized() }

    @Test("the RFC 7638 example key has the published thumbprint")
    func rfc7638Thumbprint() throws {
        let key = try RSAPublicKey(
            kid: "x", modulus: try #require(Base64URL.decode(Self.rfc7638Modulus)), exponent: [1, 0, 1])
        #expect(key.thumbprint == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        #expect(key.bits == 2048)
    }

    @Test("a signing key's own JWKS parses back to the same key, by kid")
    func roundTrip() throws {
        let signer = TestKeys.primary
        let set = try JWKSKeySet.parse(signer.jwksJSON())
        #expect(ERR_peek_error() == 0)
        #expect(set.kids == [signer.kid])
        #expect(set.skipped.isEmpty)
        let key = try #require(set[signer.kid])
        #expect(key.thumbprint == signer.kid)
        #expect(key.modulus == signer.publicKey.modulus)
        #expect(key.exponent == [1, 0, 1])
    }

    @Test("RSA keys under 2048 bits are skipped with a reason; the usable key stays")
    func weakKeyRefused() throws {
        let weak = TestKeys.rsaPublicNumbers(bits: 1024)
        let set = try JWKSKeySet.parse(
            Self.document([
                Self.jwk(kid: "weak", modulus: weak.modulus, exponent: weak.exponent),
                Self.jwk(kid: "good"),
            ]))
        #expect(set.kids == ["good"])
        #expect(set.skipped.count == 1)
        #expect(set.skipped.first?.kid == "weak")
        #expect(set.skipped.first?.reason.contains("1024 bits is below the minimum") == true)
    }

    @Test("keys of other types are ignored and listed")
    func otherKeyTypesIgnored() throws {
        let ec: JSONValue = [
            "kty": "EC", "kid": "ec1", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        ]
        let oct: JSONValue = ["kty": "oct", "kid": "hmac", "k": "c2VjcmV0"]
        let set = try JWKSKeySet.parse(Self.document([ec, oct, Self.jwk(kid: "rsa")]))
        #expect(set.kids == ["rsa"])
        #expect(set.skipped.map(\.kid) == ["ec1", "hmac"])
        #expect(set.skipped.allSatisfy { $0.reason.contains("ignored") })
    }

    struct SkipCase: Sendable, CustomTestStringConvertible {
        var name: String
        var key: JSONValue
        var reason: String
        var testDescription: String { name }
    }

    static let skipCases: [SkipCase] = [
        SkipCase(name: "use enc", key: jwk(extra: [("use", "enc")]), reason: "use is not 'sig'"),
        SkipCase(name: "alg RS512", key: jwk(extra: [("alg", "RS512")]), reason: "alg is not 'RS256'"),
        SkipCase(name: "alg HS256", key: jwk(extra: [("alg", "HS256")]), reason: "alg is not 'RS256'"),
        SkipCase(
            name: "key_ops without verify", key: jwk(extra: [("key_ops", ["encrypt"])]),
            reason: "key_ops does not allow 'verify'"),
        SkipCase(name: "missing kid", key: jwk(kid: nil), reason: "missing kid"),
        SkipCase(name: "empty kid", key: jwk(kid: ""), reason: "missing kid"),
        SkipCase(name: "numeric kid", key: jwk(kid: 7), reason: "missing kid"),
        SkipCase(name: "even exponent", key: jwk(exponent: [1, 0, 0]), reason: "RSA exponent"),
        SkipCase(name: "exponent 1", key: jwk(exponent: [1]), reason: "RSA exponent"),
        SkipCase(name: "exponent wider than 32 bits", key: jwk(exponent: [1, 0, 0, 0, 1]), reason: "RSA exponent"),
        SkipCase(name: "missing kty", key: ["kid": "k", "n": "AQAB", "e": "AQAB"], reason: "missing kty"),
        SkipCase(name: "n padded", key: ["kty": "RSA", "kid": "k", "n": "AQA=", "e": "AQAB"], reason: "n is missing"),
        SkipCase(name: "e missing", key: ["kty": "RSA", "kid": "k", "n": "AQAB"], reason: "e is missing"),
        SkipCase(name: "not an object", key: ["RSA"], reason: "not a JSON object"),
    ]

    @Test("keys that are not RS256 signature keys are skipped with a reason", arguments: skipCases)
    func skipped(c: SkipCase) throws {
        let set = try JWKSKeySet.parse(Self.document([c.key]))
        #expect(set.isEmpty)
        #expect(set.skipped.count == 1)
        #expect(set.skipped.first?.reason.contains(c.reason) == true, "\(set.skipped)")
    }

    @Test("use sig, key_ops verify, alg RS256 and a leading zero octet in n are accepted")
    func acceptedVariants() throws {
        let n = [0] + TestKeys.primary.publicKey.modulus
        let set = try JWKSKeySet.parse(
            Self.document([
                Self.jwk(
                    kid: "k", modulus: n,
                    extra: [("use", "sig"), ("alg", "RS256"), ("key_ops", ["verify"]), ("x5t", "abc")])
            ]))
        #expect(set.kids == ["k"])
        #expect(set["k"]?.thumbprint == TestKeys.primary.kid)
    }

    @Test("a duplicate kid keeps the first key")
    func duplicateKid() throws {
        let other = TestKeys.secondary.publicKey.modulus
        let set = try JWKSKeySet.parse(Self.document([Self.jwk(kid: "k"), Self.jwk(kid: "k", modulus: other)]))
        #expect(set.kids == ["k"])
        #expect(set["k"]?.thumbprint == TestKeys.primary.kid)
        #expect(set.skipped.map(\.reason) == ["duplicate kid"])
    }

    @Test(
        "unusable documents are refused as a whole",
        arguments: [
            ("not JSON", "not valid JSON"),
            ("[]", "not a JSON object"),
            ("{}", "no 'keys' array"),
            ("{\"keys\":{}}", "no 'keys' array"),
            ("{\"keys\":[],\"keys\":[]}", "not valid JSON"),
        ])
    func badDocuments(text: String, reason: String) {
        #expect {
            _ = try JWKSKeySet.parse(text)
        } throws: { error in
            (error as? TokenKeyError)?.detail.contains(reason) == true
        }
    }

    @Test("a document with no usable key is an empty set, not an error")
    func emptySet() throws {
        let set = try JWKSKeySet.parse("{\"keys\":[]}")
        #expect(set.isEmpty)
        #expect(set.skipped.isEmpty)
    }

    @Test("a document over the size bound is refused before parsing")
    func oversizedDocument() {
        let text = "{\"keys\":[" + String(repeating: " ", count: JWKSKeySet.maximumDocumentBytes) + "]}"
        #expect(throws: TokenKeyError.self) { _ = try JWKSKeySet.parse(text) }
    }
}
