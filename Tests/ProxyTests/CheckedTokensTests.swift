import GatewayCore
import Policy
import TestSupport
import Testing
import Tokens

@testable import Proxy

/// The loop's table of checked tokens: a hit only for the very same token text, under the same key set, before
/// `exp`; and the front's `knownToken` answers only for byte-equal input.
@Suite("Checked tokens")
struct CheckedTokensTests {
    private static func entry(
        keys: JWKSKeySet, key: RSAPublicKey = TestKeys.primary.publicKey, expiresAt: Int64 = 2_000
    ) -> CheckedTokens.Entry {
        let context = TokenContext(
            subject: "auth0|u", clientID: "client", orgID: "org_1", scopes: ["read:my_org:details"],
            expiresAt: expiresAt, issuedAt: 1_000, domain: "acme.example")
        return CheckedTokens.Entry(
            verified: VerifiedToken(header: .object([]), claims: .object([])),
            checked: CheckedClaims(context: context, audience: "aud", scope: "read:my_org:details"), keys: keys,
            key: key, kid: key.kid)
    }

    /// Tokens that differ from `base` in one byte: at the start, the middle, inside the last eight bytes (the
    /// front's index), and in length.
    private static let base = String(repeating: "eyJhbGciOiJSUzI1NiJ9", count: 40) + ".sig-ABCDEFGH"
    private static let near: [String] = [
        "f" + base.dropFirst(),
        String(base.prefix(400)) + "X" + base.dropFirst(401),
        String(base.dropLast()) + "I",
        base + "A",
        String(base.dropLast()),
    ]

    private func known(_ table: CheckedTokens, _ text: String) -> String? {
        var text = text
        return text.withUTF8 { table.knownToken($0) }
    }

    @Test("a stored token is found by its exact bytes, and only by them")
    func exactBytes() {
        let keys = JWKSKeySet(keys: [])
        let table = CheckedTokens(capacity: 8)
        let stored = Self.entry(keys: keys)
        #expect(known(table, Self.base) == nil)
        table.insert(Self.base, stored, nowSeconds: 1_000)
        #expect(known(table, Self.base) == Self.base)
        #expect(
            table.lookup(String(decoding: Array(Self.base.utf8), as: UTF8.self), keys: keys, nowSeconds: 1_500)
                === stored)
        for other in Self.near {
            #expect(known(table, other) == nil, "\(other.utf8.count) bytes")
            #expect(table.lookup(other, keys: keys, nowSeconds: 1_500) == nil)
        }
    }

    @Test("dozens of tokens used in turn, as a client pool uses them, are nearly all known by the front")
    func frontHoldsDozens() {
        let keys = JWKSKeySet(keys: [])
        let table = CheckedTokens(capacity: 1024)
        // Tokens like real ones: the same header, a payload that differs, a signature of random-looking text.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var state: UInt64 = 5
        var tokens: [String] = []
        for i in 0..<64 {
            var signature: [UInt8] = []
            for _ in 0..<342 {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                signature.append(alphabet[Int(state >> 58)])
            }
            tokens.append(
                "eyJhbGciOiJSUzI1NiJ9.eyJvcmdfaWQiOiJvcmdf\(i)In0." + String(decoding: signature, as: UTF8.self))
        }
        for token in tokens { table.insert(token, Self.entry(keys: keys), nowSeconds: 1_000) }
        let recognized = tokens.filter { known(table, $0) == $0 }.count
        // With 64 slots, as the front had, about 40 of 64 would be (each collision evicts one); a front that
        // answers for most of a client pool spares each repeat a token-syntax scan, a String and a table lookup.
        #expect(recognized >= 56, "\(recognized) of 64")
    }

    @Test("expiry and a replaced key set end a hit", arguments: [false, true])
    func expiryAndKeys(replaceKeys: Bool) {
        let keys = JWKSKeySet(keys: [])
        let table = CheckedTokens(capacity: 8)
        table.insert(Self.base, Self.entry(keys: keys, expiresAt: 2_000), nowSeconds: 1_000)
        #expect(table.lookup(Self.base, keys: keys, nowSeconds: 1_999) != nil)
        if replaceKeys {
            #expect(table.lookup(Self.base, keys: JWKSKeySet(keys: []), nowSeconds: 1_500) == nil)
        } else {
            #expect(table.lookup(Self.base, keys: keys, nowSeconds: 2_000) == nil)
        }
        // Dropped for good: not even the earlier instant or the old key set brings it back.
        #expect(table.lookup(Self.base, keys: keys, nowSeconds: 1_500) == nil)
        #expect(table.count == 0)
    }

    /// A refetched set (new objects) that maps the `kid` to the same key material keeps the entry; one that maps it
    /// to other material, or not at all, ends it for good.
    @Test("a new key set keeps an entry only while it maps the kid to the same key", arguments: [0, 1, 2])
    func refetchedKeySet(variant: Int) throws {
        let original = TestKeys.primary.publicKey
        let keys = JWKSKeySet(keys: [original])
        let other = TestKeys.secondary.publicKey
        let refetched: JWKSKeySet
        switch variant {
        case 0:
            refetched = JWKSKeySet(keys: [
                try RSAPublicKey(kid: original.kid, modulus: original.modulus, exponent: original.exponent)
            ])
        case 1:
            refetched = JWKSKeySet(keys: [
                try RSAPublicKey(kid: original.kid, modulus: other.modulus, exponent: other.exponent)
            ])
        default:
            refetched = JWKSKeySet(keys: [other])
        }
        let table = CheckedTokens(capacity: 8)
        let stored = Self.entry(keys: keys)
        table.insert(Self.base, stored, nowSeconds: 1_000)
        // Twice: the second lookup meets the set the first one confirmed.
        for _ in 0..<2 {
            let found = table.lookup(Self.base, keys: refetched, nowSeconds: 1_500)
            if variant == 0 {
                #expect(found === stored)
                #expect(stored.keys === refetched)
            } else {
                #expect(found == nil)
            }
        }
        #expect(table.count == (variant == 0 ? 1 : 0))
        // An entry that a set refused is gone, even for the set it was stored under.
        #expect((table.lookup(Self.base, keys: keys, nowSeconds: 1_500) != nil) == (variant == 0))
    }

    @Test("tokens that share a front slot each keep their own entry")
    func sharedFrontSlot() {
        let keys = JWKSKeySet(keys: [])
        let table = CheckedTokens(capacity: 64)
        // The same last eight bytes: the same front slot, different tokens.
        let tokens = (0..<5).map { "token-\($0)-" + Self.base }
        let entries = tokens.map { _ in Self.entry(keys: keys) }
        for (token, entry) in zip(tokens, entries) { table.insert(token, entry, nowSeconds: 1_000) }
        for _ in 0..<2 {
            for (token, entry) in zip(tokens, entries) {
                #expect(table.lookup(token, keys: keys, nowSeconds: 1_500) === entry)
            }
        }
        #expect(known(table, tokens[4]) == tokens[4])
        #expect(known(table, tokens[0].replacingFirst()) == nil)
    }
}

extension String {
    fileprivate func replacingFirst() -> String { "x" + dropFirst() }
}
