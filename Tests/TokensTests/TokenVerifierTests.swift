import COpenSSL
import GatewayCore
import TestSupport
import Testing

@testable import Tokens

/// Builders for hostile tokens. Every signed forgery carries a real RS256 signature by the test key unless the
/// case says otherwise, so a refusal proves the rule under test fired, not the signature check.
enum Forge {
    static var signer: RSASigningKey { TestKeys.primary }
    static var kid: String { signer.kid }
    static let claims = TestKeys.claims()

    static func header(alg: JSONValue = "RS256", extra: [(String, JSONValue)] = []) -> JSONValue {
        .object([("alg", alg), ("typ", "at+jwt"), ("kid", .string(kid))] + extra)
    }

    static func signed(_ header: JSONValue, claims: JSONValue = claims, by key: RSASigningKey = signer) -> String {
        try! key.sign(header: header, claims: claims)
    }

    static func signedRaw(header: String, claims: String, by key: RSASigningKey = signer) -> String {
        try! key.sign(headerJSON: Array(header.utf8), claimsJSON: Array(claims.utf8))
    }

    static var valid: String { TestKeys.token() }

    static func parts(_ token: String) -> [String] {
        token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    }

    /// A genuine HMAC token keyed with `key` (public key bytes an attacker can download).
    static func hmacToken(alg: String, digestBits: Int, key: [UInt8]) -> String {
        let input =
            Base64URL.encode(header(alg: .string(alg)).serializedBytes()) + "."
            + Base64URL.encode(claims.serializedBytes())
        return input + "."
            + Base64URL.encode(TestKeys.hmac(digestBits: digestBits, key: key, message: Array(input.utf8)))
    }

    static var publicPEM: [UInt8] { Array(try! signer.publicKey.publicKeyPEM().utf8) }
    static var publicJWK: [UInt8] { signer.publicJWK.serializedBytes() }

    /// The same token with the last base64url character of the signature nudged so that unused bits are set.
    static func nonCanonicalSignature(_ token: String) -> String {
        var chars = Array(token.utf8)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        let value = alphabet.firstIndex(of: chars[chars.count - 1])!
        chars[chars.count - 1] = alphabet[value | 1]
        return String(decoding: chars, as: UTF8.self)
    }

    static func replacingPart(_ token: String, _ index: Int, with part: String) -> String {
        var p = parts(token)
        p[index] = part
        return p.joined(separator: ".")
    }
}

struct AttackCase: Sendable, CustomTestStringConvertible {
    var name: String
    var token: String
    var kind: TokenRejection.Kind
    var detail: String
    var testDescription: String { name }
}

@Suite("Token verification")
struct TokenVerifierTests {
    static let attacks: [AttackCase] = {
        var cases: [AttackCase] = []
        func add(_ name: String, _ token: String, _ kind: TokenRejection.Kind, _ detail: String) {
            cases.append(AttackCase(name: name, token: token, kind: kind, detail: detail))
        }
        let valid = Forge.valid
        let p = Forge.parts(valid)

        // alg none in every casing, with a real RS256 signature attached and stripped.
        for none in ["none", "None", "NONE", "nOnE"] {
            add("alg \(none), signed", Forge.signed(Forge.header(alg: .string(none))), .algorithm, "unsupported alg")
        }
        let noneHeader = Base64URL.encode(Forge.header(alg: "none").serializedBytes())
        add("alg none, empty signature", noneHeader + "." + p[1] + ".", .malformed, "empty signature")

        // HMAC keyed with what the JWKS publishes: the classic key-confusion forgery, with genuine HMACs.
        add(
            "HS256 keyed with the public PEM", Forge.hmacToken(alg: "HS256", digestBits: 256, key: Forge.publicPEM),
            .algorithm, "unsupported alg 'HS256'")
        add(
            "HS256 keyed with the public JWK", Forge.hmacToken(alg: "HS256", digestBits: 256, key: Forge.publicJWK),
            .algorithm, "unsupported alg 'HS256'")
        add(
            "HS256 keyed with the modulus",
            Forge.hmacToken(alg: "HS256", digestBits: 256, key: Forge.signer.publicKey.modulus), .algorithm,
            "unsupported alg")
        add(
            "HS384 keyed with the public PEM", Forge.hmacToken(alg: "HS384", digestBits: 384, key: Forge.publicPEM),
            .algorithm, "unsupported alg 'HS384'")
        add(
            "HS512 keyed with the public PEM", Forge.hmacToken(alg: "HS512", digestBits: 512, key: Forge.publicPEM),
            .algorithm, "unsupported alg 'HS512'")
        add(
            "hs256 in lower case", Forge.hmacToken(alg: "hs256", digestBits: 256, key: Forge.publicPEM), .algorithm,
            "unsupported alg")

        // Other algorithms.
        for alg in ["RS384", "RS512", "PS256", "ES256", "EdDSA", "rs256", ""] {
            add("alg '\(alg)'", Forge.signed(Forge.header(alg: .string(alg))), .algorithm, "unsupported alg")
        }
        add("alg missing", Forge.signed(["typ": "JWT", "kid": .string(Forge.kid)]), .algorithm, "alg missing")
        add("alg not a string", Forge.signed(Forge.header(alg: ["RS256"])), .algorithm, "alg missing")

        // Keys.
        add("unknown kid", Forge.signed(["alg": "RS256", "kid": "rotated-away"]), .unknownKey, "unknown key id")
        add("missing kid", Forge.signed(["alg": "RS256", "typ": "JWT"]), .header, "kid missing")
        add("empty kid", Forge.signed(["alg": "RS256", "kid": ""]), .header, "kid missing")
        add("numeric kid", Forge.signed(["alg": "RS256", "kid": 1]), .header, "kid missing")
        for name in ["jku", "x5u", "jwk", "x5c"] {
            let value: JSONValue =
                name == "jwk" ? Forge.signer.publicJWK : name == "x5c" ? ["MIIB"] : "https://attacker.example/jwks"
            add(
                "\(name) injection", Forge.signed(Forge.header(extra: [(name, value)])), .header,
                "'\(name)' is not accepted")
        }
        add("crit", Forge.signed(Forge.header(extra: [("crit", ["exp"]), ("exp", 1)])), .header, "crit")
        add("crit b64", Forge.signed(Forge.header(extra: [("b64", false), ("crit", ["b64"])])), .header, "crit")

        // typ.
        for typ: JSONValue in ["JOSE", "JWS", "application/jose", "at+jwt; charset=utf-8", "text/jwt", "", 5] {
            add(
                "typ \(typ.serialized())",
                Forge.signed(.object([("alg", "RS256"), ("typ", typ), ("kid", .string(Forge.kid))])), .header,
                "unsupported typ")
        }

        // Signatures.
        add("stripped signature (a.b.)", p[0] + "." + p[1] + ".", .malformed, "empty signature")
        let other = TestKeys.token(claims: TestKeys.claims(subject: "auth0|someone-else"))
        add(
            "swapped signature", Forge.replacingPart(valid, 2, with: Forge.parts(other)[2]), .signature, "bad signature"
        )
        add(
            "signed by another key under the same kid", Forge.signed(Forge.header(), by: TestKeys.secondary),
            .signature, "bad signature")
        let tampered = Base64URL.encode(TestKeys.claims(scope: "delete:my_org:identity_providers").serializedBytes())
        add("tampered payload", Forge.replacingPart(valid, 1, with: tampered), .signature, "bad signature")
        add(
            "tampered header",
            Forge.replacingPart(valid, 0, with: Base64URL.encode(Forge.header(extra: [("x", 1)]).serializedBytes())),
            .signature, "bad signature")
        let shortSignature = Base64URL.encode(Base64URL.decode(p[2])!.prefix(128))
        add("truncated signature", Forge.replacingPart(valid, 2, with: shortSignature), .signature, "bad signature")

        // base64url strictness.
        add("padding in header", Forge.replacingPart(valid, 0, with: p[0] + "="), .malformed, "header is not base64url")
        add("padding in signature", valid + "==", .malformed, "signature is not base64url")
        add(
            "'+' in signature", Forge.replacingPart(valid, 2, with: "+" + String(p[2].dropFirst())), .malformed,
            "signature is not base64url")
        add(
            "'/' in payload", Forge.replacingPart(valid, 1, with: "/" + String(p[1].dropFirst())), .malformed,
            "payload is not base64url")
        add(
            "space in payload",
            Forge.replacingPart(valid, 1, with: String(p[1].prefix(8)) + " " + String(p[1].dropFirst(8))), .malformed,
            "payload is not base64url")
        add("trailing newline", valid + "\n", .malformed, "signature is not base64url")
        add("leading space", " " + valid, .malformed, "header is not base64url")
        add(
            "non-canonical bits in signature", Forge.nonCanonicalSignature(valid), .malformed,
            "signature is not base64url")

        // Shape.
        add("two parts", p[0] + "." + p[1], .malformed, "three base64url parts")
        add("four parts", valid + "." + p[2], .malformed, "three base64url parts")
        add("one part", p[1], .malformed, "three base64url parts")
        add("empty token", "", .malformed, "three base64url parts")
        add("only dots", "..", .malformed, "empty header")
        add("empty header part", "." + p[1] + "." + p[2], .malformed, "empty header")
        add("empty payload part", p[0] + ".." + p[2], .malformed, "empty payload")
        add("huge token", String(repeating: "a", count: 9000), .tooLarge, "larger than 8192 bytes")
        let bigClaims = TestKeys.claims().objectValue! + [("pad", .string(String(repeating: "x", count: 8000)))]
        add("validly signed but huge", TestKeys.token(claims: .object(bigClaims)), .tooLarge, "larger than 8192")

        // JSON.
        let kid = Forge.kid
        add(
            "duplicate alg in header",
            Forge.signedRaw(header: #"{"alg":"RS256","kid":"\#(kid)","alg":"none"}"#, claims: "{}"), .malformed,
            "duplicate member")
        add(
            "duplicate kid in header",
            Forge.signedRaw(header: #"{"alg":"RS256","kid":"\#(kid)","kid":"other"}"#, claims: "{}"), .malformed,
            "duplicate member")
        add(
            "duplicate sub in claims",
            Forge.signedRaw(header: #"{"alg":"RS256","kid":"\#(kid)"}"#, claims: #"{"sub":"a","sub":"b"}"#), .malformed,
            "claims are not valid JSON")
        add(
            "header is an array", Forge.signedRaw(header: #"["RS256"]"#, claims: "{}"), .malformed,
            "header is not a JSON object")
        add(
            "header is a string", Forge.signedRaw(header: #""RS256""#, claims: "{}"), .malformed,
            "header is not a JSON object")
        add(
            "header is not JSON", Forge.signedRaw(header: "alg=RS256", claims: "{}"), .malformed,
            "header is not valid JSON")
        add(
            "header with trailing garbage", Forge.signedRaw(header: #"{"alg":"RS256","kid":"\#(kid)"}x"#, claims: "{}"),
            .malformed, "header is not valid JSON")
        let h = #"{"alg":"RS256","kid":"\#(kid)"}"#
        add(
            "claims are an array", Forge.signedRaw(header: h, claims: #"[{"sub":"a"}]"#), .malformed,
            "claims are not a JSON object")
        add(
            "claims are a string", Forge.signedRaw(header: h, claims: #""sub""#), .malformed,
            "claims are not a JSON object")
        add(
            "claims are not UTF-8",
            try! Forge.signer.sign(headerJSON: Array(h.utf8), claimsJSON: [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]),
            .malformed, "claims are not valid JSON")
        return cases
    }()

    /// A verifier configured as badly as possible: it still must refuse `none` and HMAC.
    static let permissive = TokenVerifier(
        configuration: .init(allowedAlgorithms: [
            "RS256", "HS256", "HS384", "HS512", "hs256", "none", "None", "NONE", "nOnE", "RS384", "ES256",
        ]))

    @Test("there are at least 25 attack tokens")
    func attackCount() { #expect(Self.attacks.count >= 25) }

    @Test(
        "every attack token is refused with its precise reason, by a strict and a permissive verifier",
        arguments: attacks)
    func attack(c: AttackCase) {
        for verifier in [TokenVerifier(), Self.permissive] {
            let result = verifier.verify(c.token, keys: TestKeys.keySet)
            guard case .failure(let rejection) = result else {
                Issue.record("accepted: \(c.name)")
                return
            }
            #expect(rejection.kind == c.kind, "\(rejection)")
            #expect(rejection.detail.contains(c.detail), "\(rejection.detail)")
            // Details are for the client: no token bytes, bounded length.
            #expect(rejection.detail.count < 100)
            for part in Forge.parts(c.token) where part.count >= 12 {
                #expect(!rejection.detail.contains(part.prefix(12)))
            }
            // A refusal must not leave an error behind for the next connection on this thread.
            #expect(ERR_peek_error() == 0)
        }
    }

    @Test("through a warm loop cache (remembered header, reused RS256 context) every attack is refused alike")
    func attacksThroughCache() {
        let cache = VerifiedTokenCache()
        let now: Int64 = 1_800_000_001 * 1_000_000_000
        let verifier = TokenVerifier()
        for c in Self.attacks {
            // A valid token first, so the header memo and the key's context are warm for the attack.
            _ = cache.verify(Forge.valid, keys: TestKeys.keySet, verifier: verifier, nowNanoseconds: now)
            let expected = verifier.verify(c.token, keys: TestKeys.keySet)
            let viaCache = cache.verify(c.token, keys: TestKeys.keySet, verifier: verifier, nowNanoseconds: now)
            #expect(viaCache == expected, "\(c.name)")
            guard case .failure = viaCache else {
                Issue.record("accepted through the cache: \(c.name)")
                continue
            }
        }
        // The remembered header counts only for the algorithms it was accepted under.
        let noRS256 = TokenVerifier(configuration: .init(allowedAlgorithms: ["RS384"]))
        let other = TestKeys.token(claims: TestKeys.claims(subject: "auth0|someone-else"))
        #expect(
            cache.verify(other, keys: TestKeys.keySet, verifier: noRS256, nowNanoseconds: now)
                == .failure(TokenRejection(.algorithm, "unsupported alg 'RS256'")))
        // A valid token with the remembered header still verifies.
        #expect(
            (try? cache.verify(Forge.valid, keys: TestKeys.keySet, verifier: verifier, nowNanoseconds: now).get())
                != nil)
        #expect(ERR_peek_error() == 0)
    }

    @Test(
        "valid RS256 tokens verify with any accepted typ",
        arguments: [nil, "JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt", "Application/JWT"] as [String?])
    func valid(typ: String?) throws {
        var header: [(String, JSONValue)] = [("alg", "RS256"), ("kid", .string(Forge.kid))]
        if let typ { header.append(("typ", .string(typ))) }
        let claims = TestKeys.claims(scope: "read:my_org:details update:my_org:details")
        let token = try Forge.signer.sign(header: .object(header), claims: claims)
        let verified = try TokenVerifier().verify(token, keys: TestKeys.keySet).get()
        #expect(verified.header == .object(header))
        #expect(verified.claims == claims)
        #expect(ERR_peek_error() == 0)
    }

    @Test("a substring of a header value verifies without copying out the token")
    func substring() throws {
        let headerValue = "Bearer " + Forge.valid
        let token = headerValue.dropFirst("Bearer ".count)
        let verified = try TokenVerifier().verify(token, keys: TestKeys.keySet).get()
        #expect(verified.claims["org_id"] == "org_test123")
    }

    @Test("the size limit is configurable and exact")
    func sizeLimit() {
        let token = Forge.valid
        let exact = TokenVerifier(configuration: .init(maxTokenBytes: token.utf8.count))
        let under = TokenVerifier(configuration: .init(maxTokenBytes: token.utf8.count - 1))
        #expect((try? exact.verify(token, keys: TestKeys.keySet).get()) != nil)
        #expect(
            under.verify(token, keys: TestKeys.keySet)
                == .failure(TokenRejection(.tooLarge, "token larger than \(token.utf8.count - 1) bytes")))
    }

    @Test("the word-at-a-time dot scan finds what a byte scan finds, for dots at every offset")
    func dotScan() {
        let verifier = TokenVerifier()
        // A deterministic spread of lengths and dot positions, across and at the edges of 8-byte words.
        var state: UInt32 = 12345
        for length in 0...40 {
            for _ in 0..<60 {
                var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                for i in bytes.indices {
                    state = state &* 1_103_515_245 &+ 12345
                    if state >> 28 == 0 { bytes[i] = UInt8(ascii: ".") }
                }
                let dots = bytes.indices.filter { bytes[$0] == UInt8(ascii: ".") }
                let result = bytes.withUnsafeBufferPointer { buffer -> [Int]? in
                    guard case .success(let parts) = verifier.split(buffer) else { return nil }
                    return [parts.header.count, parts.payload.count, parts.signature.count]
                }
                if dots.count == 2, dots[0] > 0, dots[1] > dots[0] + 1, dots[1] < length - 1 {
                    #expect(result == [dots[0], dots[1] - dots[0] - 1, length - dots[1] - 1])
                } else {
                    #expect(result == nil)
                }
            }
        }
    }

    @Test("an empty key set answers noKeys")
    func noKeys() {
        let result = TokenVerifier().verify(Forge.valid, keys: JWKSKeySet(keys: []))
        #expect(result == .failure(TokenRejection(.noKeys, "no verification keys")))
    }

    @Test("after key rotation the old key's tokens are unknownKey and the new key's verify")
    func rotation() throws {
        let old = Forge.valid
        let rotated = TestKeys.secondary.keySet()
        #expect(TokenVerifier().verify(old, keys: rotated) == .failure(TokenRejection(.unknownKey, "unknown key id")))
        let fresh = TestKeys.token(key: TestKeys.secondary)
        #expect((try? TokenVerifier().verify(fresh, keys: rotated).get()) != nil)
        // Both keys published during a rollover: both verify.
        let both = JWKSKeySet(keys: [TestKeys.primary.publicKey, TestKeys.secondary.publicKey])
        #expect((try? TokenVerifier().verify(old, keys: both).get()) != nil)
        #expect((try? TokenVerifier().verify(fresh, keys: both).get()) != nil)
    }

    @Test("one key set verifies concurrently from many threads")
    func concurrentVerification() async {
        let keys = TestKeys.keySet
        let good = Forge.valid
        let bad = Forge.signed(Forge.header(), by: TestKeys.secondary)
        let results = await withTaskGroup(of: (Int, Int).self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var accepted = 0
                    var refused = 0
                    for _ in 0..<50 {
                        if case .success = TokenVerifier().verify(good, keys: keys) { accepted += 1 }
                        if case .failure(let r) = TokenVerifier().verify(bad, keys: keys), r.kind == .signature {
                            refused += 1
                        }
                    }
                    return (accepted, refused)
                }
            }
            var totals = (0, 0)
            for await (a, r) in group { totals = (totals.0 + a, totals.1 + r) }
            return totals
        }
        #expect(results.0 == 200)
        #expect(results.1 == 200)
    }

    @Test("the typ rule follows RFC 7515 media type comparison")
    func typRule() {
        for accepted in ["JWT", "jwt", "at+jwt", "At+JwT", "application/jwt", "APPLICATION/AT+JWT"] {
            #expect(TokenVerifier.isAcceptedType(accepted), "\(accepted)")
        }
        for refused in ["", "JOSE", "jose+json", "application/", "jwt ", "application/jwt;x=1", "xapplication/jwt"] {
            #expect(!TokenVerifier.isAcceptedType(refused), "\(refused)")
        }
    }

    @Test("header values quoted in details are cut short and stripped of control characters")
    func sanitizedDetail() {
        let alg = "HS256\u{0}\n" + String(repeating: "A", count: 100)
        let result = TokenVerifier().verify(Forge.signed(Forge.header(alg: .string(alg))), keys: TestKeys.keySet)
        guard case .failure(let rejection) = result else {
            Issue.record("accepted")
            return
        }
        #expect(rejection.detail.hasPrefix("unsupported alg 'HS256??AAAA"))
        #expect(rejection.detail.count < 60)
        #expect(!rejection.detail.contains("\n"))
    }
}
