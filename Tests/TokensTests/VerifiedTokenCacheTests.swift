import COpenSSL
import GatewayCore
import TestSupport
import Testing

@testable import Tokens

@Suite("Verified-token cache")
struct VerifiedTokenCacheTests {
    static let issuedAt: Int64 = 1_800_000_000
    static let second: Int64 = 1_000_000_000
    static let verifier = TokenVerifier()

    static func token(subject: String = "auth0|user123", lifetime: Int64 = 600) -> String {
        TestKeys.token(claims: TestKeys.claims(issuedAt: issuedAt, lifetime: lifetime, subject: subject))
    }

    static func at(_ seconds: Int64) -> Int64 { (issuedAt + seconds) * second }

    @Test("a repeated token is a hit and returns the same verified token")
    func hitOnRepeat() throws {
        let cache = VerifiedTokenCache()
        let token = Self.token()
        let first = try cache.verify(token, keys: TestKeys.keySet, verifier: Self.verifier, nowNanoseconds: Self.at(1))
            .get()
        let second = try cache.verify(token, keys: TestKeys.keySet, verifier: Self.verifier, nowNanoseconds: Self.at(2))
            .get()
        #expect(first == second)
        #expect(cache.hits == 1)
        #expect(cache.misses == 1)
        #expect(cache.count == 1)
    }

    @Test("an entry is served until just before exp and not at exp")
    func expiry() throws {
        let cache = VerifiedTokenCache()
        let token = Self.token(lifetime: 600)
        let keys = TestKeys.keySet
        _ = cache.verify(token, keys: keys, verifier: Self.verifier, nowNanoseconds: Self.at(0))
        _ = cache.verify(token, keys: keys, verifier: Self.verifier, nowNanoseconds: Self.at(600) - 1)
        #expect(cache.hits == 1)
        // At exp the entry is dropped; the signature is still checked (claims are the policy's), and the
        // result is not stored again because it is already expired.
        let atExp = cache.verify(token, keys: keys, verifier: Self.verifier, nowNanoseconds: Self.at(600))
        #expect((try? atExp.get()) != nil)
        #expect(cache.hits == 1)
        #expect(cache.misses == 2)
        #expect(cache.count == 0)
        _ = cache.verify(token, keys: keys, verifier: Self.verifier, nowNanoseconds: Self.at(601))
        #expect(cache.misses == 3)
        #expect(cache.count == 0)
    }

    @Test(
        "tokens without a numeric exp are verified every time and never stored",
        arguments: [nil, .string("1900000000"), .bool(true), .array([1_900_000_000])] as [JSONValue?])
    func noNumericExp(exp: JSONValue?) throws {
        var claims = TestKeys.claims().objectValue!.filter { $0.0 != "exp" }
        if let exp { claims.append(("exp", exp)) }
        let token = TestKeys.token(claims: .object(claims))
        let cache = VerifiedTokenCache()
        for _ in 0..<3 {
            #expect(
                (try? cache.verify(token, keys: TestKeys.keySet, verifier: Self.verifier, nowNanoseconds: Self.at(1))
                    .get()) != nil)
        }
        #expect(cache.hits == 0)
        #expect(cache.misses == 3)
        #expect(cache.count == 0)
    }

    @Test("a fractional exp is honoured to the nanosecond")
    func fractionalExp() {
        var claims = TestKeys.claims().objectValue!.filter { $0.0 != "exp" }
        claims.append(("exp", .number(Double(Self.issuedAt) + 10.5)))
        let token = TestKeys.token(claims: .object(claims))
        let cache = VerifiedTokenCache()
        _ = cache.verify(token, keys: TestKeys.keySet, verifier: Self.verifier, nowNanoseconds: Self.at(10))
        _ = cache.verify(
            token, keys: TestKeys.keySet, verifier: Self.verifier, nowNanoseconds: Self.at(10) + Self.second / 2 - 1)
        _ = cache.verify(
            token, keys: TestKeys.keySet, verifier: Self.verifier, nowNanoseconds: Self.at(10) + Self.second / 2)
        #expect(cache.hits == 1)
        #expect(cache.misses == 2)
    }

    @Test("a token that shares a cached token's signing input but not its signature is verified on its own")
    func sameInputOtherSignature() throws {
        let cache = VerifiedTokenCache()
        let token = Self.token()
        _ = try cache.verify(token, keys: TestKeys.keySet, verifier: Self.verifier, nowNanoseconds: Self.at(1)).get()
        let dot = try #require(token.lastIndex(of: "."))
        let input = token[..<dot]
        // The same input signed by another key under the same kid, and a signature of another token.
        let parts = token.split(separator: ".")
        let resigned = try TestKeys.secondary.sign(
            headerJSON: try #require(Base64URL.decode(parts[0])), claimsJSON: try #require(Base64URL.decode(parts[1])))
        #expect(resigned.hasPrefix(input + "."))
        let otherKey = try #require(resigned.split(separator: ".").last)
        let otherToken = try #require(Self.token(subject: "auth0|someone-else").split(separator: ".").last)
        for signature in [otherKey, otherToken] {
            let forged = String(input + "." + signature)
            #expect(
                cache.verify(forged, keys: TestKeys.keySet, verifier: Self.verifier, nowNanoseconds: Self.at(2))
                    == .failure(TokenRejection(.signature, "bad signature")))
        }
        #expect(cache.hits == 0)
        #expect(cache.misses == 3)
        // The genuine token is still served from the cache.
        _ = try cache.verify(token, keys: TestKeys.keySet, verifier: Self.verifier, nowNanoseconds: Self.at(3)).get()
        #expect(cache.hits == 1)
    }

    @Test("one loop's RS256 context per key accepts and refuses in any order, leaving no OpenSSL error")
    func contextReuse() throws {
        let contexts = RS256VerifyContexts()
        let key = try #require(TestKeys.keySet[TestKeys.primary.kid])
        func check(_ token: String) -> Bool {
            let dot = token.lastIndex(of: ".")!
            let digest = SHA256Digest(Array(token.utf8[..<dot]))
            let signature = Base64URL.decode(token[token.index(after: dot)...])!
            return signature.withUnsafeBytes { contexts.context(for: key)!.verify(signature: $0, digest: digest) }
        }
        let good = Self.token()
        let bad = try TestKeys.secondary.sign(header: TestKeys.primary.header(), claims: TestKeys.claims())
        #expect(
            [check(good), check(bad), check(good), check(bad), check(bad), check(good)] == [
                true, false, true, false, false, true,
            ])
        #expect(contexts.context(for: key) === contexts.context(for: key))
        #expect(ERR_peek_error() == 0)
    }

    @Test("refused tokens are never stored")
    func refusalsNotCached() {
        let cache = VerifiedTokenCache()
        let forged = try! TestKeys.secondary.sign(header: TestKeys.primary.header(), claims: TestKeys.claims())
        for _ in 0..<3 {
            #expect(
                cache.verify(forged, keys: TestKeys.keySet, verifier: Self.verifier, nowNanoseconds: Self.at(1))
                    == .failure(TokenRejection(.signature, "bad signature")))
        }
        #expect(cache.hits == 0)
        #expect(cache.misses == 3)
        #expect(cache.count == 0)
    }

    @Test("a rotated key set without the token's kid invalidates the entry")
    func rotation() {
        let cache = VerifiedTokenCache()
        let token = Self.token()
        _ = cache.verify(token, keys: TestKeys.keySet, verifier: Self.verifier, nowNanoseconds: Self.at(1))
        let rotated = TestKeys.secondary.keySet()
        let result = cache.verify(token, keys: rotated, verifier: Self.verifier, nowNanoseconds: Self.at(2))
        #expect(result == .failure(TokenRejection(.unknownKey, "unknown key id")))
        #expect(cache.hits == 0)
        #expect(cache.count == 0)
    }

    @Test("a refetched JWKS with the same key keeps entries; the same kid with other key material does not")
    func refetch() throws {
        let cache = VerifiedTokenCache()
        let token = Self.token()
        _ = cache.verify(token, keys: TestKeys.keySet, verifier: Self.verifier, nowNanoseconds: Self.at(1))
        let refetched = try JWKSKeySet.parse(TestKeys.primary.jwksJSON())
        #expect(refetched[TestKeys.primary.kid] !== TestKeys.keySet[TestKeys.primary.kid])
        _ = cache.verify(token, keys: refetched, verifier: Self.verifier, nowNanoseconds: Self.at(2))
        #expect(cache.hits == 1)

        let impostor = try RSAPublicKey(
            kid: TestKeys.primary.kid, modulus: TestKeys.secondary.publicKey.modulus, exponent: [1, 0, 1])
        let result = cache.verify(
            token, keys: JWKSKeySet(keys: [impostor]), verifier: Self.verifier, nowNanoseconds: Self.at(3))
        #expect(result == .failure(TokenRejection(.signature, "bad signature")))
        #expect(cache.hits == 1)
        #expect(cache.count == 0)
    }

    @Test("the cache is bounded and keeps recently hit entries (CLOCK)")
    func bounded() {
        let cache = VerifiedTokenCache(capacity: 4)
        let tokens = (0..<6).map { Self.token(subject: "auth0|user\($0)") }
        let keys = TestKeys.keySet
        for t in tokens[0..<4] { _ = cache.verify(t, keys: keys, verifier: Self.verifier, nowNanoseconds: Self.at(1)) }
        #expect(cache.count == 4)
        // A hit marks tokens[0] referenced, so the CLOCK hand passes over it and evicts tokens[1].
        _ = cache.verify(tokens[0], keys: keys, verifier: Self.verifier, nowNanoseconds: Self.at(1))
        #expect(cache.hits == 1)
        _ = cache.verify(tokens[4], keys: keys, verifier: Self.verifier, nowNanoseconds: Self.at(1))
        #expect(cache.count == 4)
        _ = cache.verify(tokens[0], keys: keys, verifier: Self.verifier, nowNanoseconds: Self.at(1))
        #expect(cache.hits == 2)
        let missesBefore = cache.misses
        _ = cache.verify(tokens[1], keys: keys, verifier: Self.verifier, nowNanoseconds: Self.at(1))
        #expect(cache.misses == missesBefore + 1)
        for t in tokens { _ = cache.verify(t, keys: keys, verifier: Self.verifier, nowNanoseconds: Self.at(2)) }
        #expect(cache.count == 4)
    }

    @Test("an oversized token is refused without being hashed or stored")
    func oversized() {
        let cache = VerifiedTokenCache()
        let verifier = TokenVerifier(configuration: .init(maxTokenBytes: 64))
        let result = cache.verify(Self.token(), keys: TestKeys.keySet, verifier: verifier, nowNanoseconds: Self.at(1))
        #expect(result == .failure(TokenRejection(.tooLarge, "token larger than 64 bytes")))
        #expect(cache.misses == 1)
        #expect(cache.count == 0)
    }

    /// `verifyWithoutStoring` of `token` against the test key set at second `second`, which must succeed.
    private static func verifyUnstored(_ cache: VerifiedTokenCache, _ token: String, at second: Int64) throws
        -> VerifiedTokenCache.Verification
    {
        try cache.verifyWithoutStoring(
            token, keys: TestKeys.keySet, verifier: verifier, nowNanoseconds: at(second)
        ).get()
    }

    @Test("verifyWithoutStoring stores nothing; store keeps it, and a later hit is the same token and key")
    func deferredStore() throws {
        let cache = VerifiedTokenCache()
        let token = Self.token()
        let keys = TestKeys.keySet
        let first = try Self.verifyUnstored(cache, token, at: 1)
        #expect(!first.fromCache)
        #expect(first.key === keys[TestKeys.primary.kid])
        #expect(first.kid == TestKeys.primary.kid)
        #expect(cache.count == 0)
        // Not stored: verified again.
        _ = try Self.verifyUnstored(cache, token, at: 1)
        #expect(cache.hits == 0)
        #expect(cache.misses == 2)
        cache.store(first, nowNanoseconds: Self.at(1))
        #expect(cache.count == 1)
        let second = try Self.verifyUnstored(cache, token, at: 2)
        #expect(second.fromCache)
        #expect(second.token == first.token)
        #expect(second.key === first.key)
        #expect(cache.hits == 1)
        // Storing a hit again changes nothing.
        cache.store(second, nowNanoseconds: Self.at(2))
        #expect(cache.count == 1)
    }

    @Test("store keeps exactly the verified text: the same signing input under another signature is no hit")
    func storeOnlyTheVerifiedBytes() throws {
        let cache = VerifiedTokenCache()
        let token = Self.token()
        let keys = TestKeys.keySet
        let verified = try Self.verifyUnstored(cache, token, at: 1)
        // Already expired at `exp`: not stored.
        cache.store(verified, nowNanoseconds: Self.at(600))
        #expect(cache.count == 0)
        cache.store(verified, nowNanoseconds: Self.at(1))
        #expect(cache.count == 1)
        let dot = try #require(token.lastIndex(of: "."))
        let otherSignature = try #require(Self.token(subject: "auth0|someone-else").split(separator: ".").last)
        let lastSwapped = String(token.dropLast()) + (token.last == "A" ? "B" : "A")
        for forged in [String(token[..<dot]) + "." + otherSignature, lastSwapped] {
            let result = cache.verifyWithoutStoring(
                forged, keys: keys, verifier: Self.verifier, nowNanoseconds: Self.at(2))
            #expect((try? result.get()) == nil)
        }
        #expect(cache.hits == 0)
        #expect(
            try Self.verifyUnstored(cache, token, at: 2)
                .fromCache)
    }

    @Test("removeAll empties the cache")
    func removeAll() {
        let cache = VerifiedTokenCache()
        _ = cache.verify(Self.token(), keys: TestKeys.keySet, verifier: Self.verifier, nowNanoseconds: Self.at(1))
        cache.removeAll()
        #expect(cache.count == 0)
        _ = cache.verify(Self.token(), keys: TestKeys.keySet, verifier: Self.verifier, nowNanoseconds: Self.at(1))
        #expect(cache.hits == 0)
    }
}
