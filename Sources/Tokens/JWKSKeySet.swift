import GatewayCore

/// A key of a JWKS document that was not imported, and why. Other key types are listed here too.
public struct JWKSSkippedKey: Sendable, Equatable, CustomStringConvertible {
    /// Position in the document's `keys` array.
    public var index: Int
    public var kid: String?
    public var reason: String

    public init(index: Int, kid: String?, reason: String) {
        self.index = index
        self.kid = kid
        self.reason = reason
    }

    public var description: String { "keys[\(index)]" + (kid.map { " (kid '\($0)')" } ?? "") + ": \(reason)" }
}

/// The tenant's verification keys by `kid`, imported once from a JWKS document (RFC 7517).
///
/// Immutable after creation, so one set is shared by every event loop; a refetched JWKS becomes a new set that
/// the owner swaps in atomically. Only RSA signature keys for RS256 are imported: `kty` "RSA", `use` absent or
/// "sig", `key_ops` absent or containing "verify", `alg` absent or "RS256", a non-empty `kid`, and a key size
/// allowed by ``RSAPublicKey``. Keys of other types are ignored and every key left out is listed in `skipped`.
/// When two keys share a `kid`, the first wins and the other is skipped: the tenant's document is trusted, and
/// refusing both would make every token of that kid unverifiable.
public final class JWKSKeySet: Sendable {
    // Checked Sendable: immutable members of Sendable types. RSAPublicKey carries the Safety argument for the
    // EVP_PKEY it owns (immutable after import, safe for concurrent verification in OpenSSL 3).

    /// Imported keys by `kid`.
    public let keys: [String: RSAPublicKey]
    /// Keys of the document that were not imported, in document order.
    public let skipped: [JWKSSkippedKey]

    /// Bounds on an untrusted-size document: a tenant publishes a handful of keys.
    public static let maximumDocumentBytes = 256 * 1024
    public static let maximumKeys = 64

    /// A set of already imported keys; a duplicate `kid` keeps the first key.
    public init(keys: [RSAPublicKey]) {
        var byKid: [String: RSAPublicKey] = [:]
        var skipped: [JWKSSkippedKey] = []
        for (index, key) in keys.enumerated() {
            if byKid[key.kid] == nil {
                byKid[key.kid] = key
            } else {
                skipped.append(JWKSSkippedKey(index: index, kid: key.kid, reason: "duplicate kid"))
            }
        }
        self.keys = byKid
        self.skipped = skipped
    }

    private init(keys: [String: RSAPublicKey], skipped: [JWKSSkippedKey]) {
        self.keys = keys
        self.skipped = skipped
    }

    /// The key tokens with header `kid` are verified with, if the set has one.
    public subscript(kid: String) -> RSAPublicKey? { keys[kid] }

    /// Whether this set maps `kid` to `key`'s material (the very key, or a re-import of it after a refetch): what
    /// keeps a token verified under an earlier set valid under this one.
    public func maps(_ kid: String, to key: RSAPublicKey) -> Bool { keys[kid]?.hasSameMaterial(as: key) ?? false }

    public var isEmpty: Bool { keys.isEmpty }

    /// The key ids, sorted.
    public var kids: [String] { keys.keys.sorted() }

    /// Parses and imports a JWKS document (`{"keys":[...]}`).
    ///
    /// Throws only when the document itself is unusable (too large, not strict JSON, no `keys` array); problems
    /// with single keys land in `skipped`. A set with no usable key is returned, not thrown: the verifier answers
    /// `.noKeys` for it and the caller decides whether that is fatal.
    public static func parse(_ document: some Collection<UInt8>) throws(TokenKeyError) -> JWKSKeySet {
        guard document.count <= maximumDocumentBytes else {
            throw TokenKeyError("JWKS document larger than \(maximumDocumentBytes) bytes")
        }
        let json: JSONValue
        do {
            json = try JSONValue.parse(document)
        } catch {
            throw TokenKeyError("JWKS document is not valid JSON: \(error.description)")
        }
        guard case .object = json else { throw TokenKeyError("JWKS document is not a JSON object") }
        guard let entries = json["keys"]?.arrayValue else { throw TokenKeyError("JWKS document has no 'keys' array") }

        var byKid: [String: RSAPublicKey] = [:]
        var skipped: [JWKSSkippedKey] = []
        for (index, entry) in entries.enumerated() {
            let kid = entry["kid"]?.stringValue
            func skip(_ reason: String) { skipped.append(JWKSSkippedKey(index: index, kid: kid, reason: reason)) }
            guard index < maximumKeys else {
                skip("more than \(maximumKeys) keys in the document; this and later keys ignored")
                break
            }
            switch importKey(entry) {
            case .success(let key):
                if byKid[key.kid] == nil {
                    byKid[key.kid] = key
                } else {
                    skip("duplicate kid")
                }
            case .failure(let error):
                skip(error.detail)
            }
        }
        return JWKSKeySet(keys: byKid, skipped: skipped)
    }

    public static func parse(_ document: String) throws(TokenKeyError) -> JWKSKeySet {
        try parse(Array(document.utf8))
    }

    /// One JWK to an imported key, or the reason it is not one of ours.
    static func importKey(_ jwk: JSONValue) -> Result<RSAPublicKey, TokenKeyError> {
        guard case .object = jwk else { return .failure(TokenKeyError("key is not a JSON object")) }
        guard let kty = jwk["kty"]?.stringValue else { return .failure(TokenKeyError("missing kty")) }
        guard kty == "RSA" else { return .failure(TokenKeyError("key type '\(kty.prefix(16))' ignored")) }
        if let use = jwk["use"] {
            guard use.stringValue == "sig" else { return .failure(TokenKeyError("use is not 'sig'")) }
        }
        if let ops = jwk["key_ops"] {
            guard let list = ops.arrayValue, list.contains(.string("verify")) else {
                return .failure(TokenKeyError("key_ops does not allow 'verify'"))
            }
        }
        if let alg = jwk["alg"] {
            guard alg.stringValue == "RS256" else { return .failure(TokenKeyError("alg is not 'RS256'")) }
        }
        guard let kid = jwk["kid"]?.stringValue, !kid.isEmpty else {
            return .failure(TokenKeyError("missing kid"))
        }
        guard let nText = jwk["n"]?.stringValue, let n = Base64URL.decode(nText) else {
            return .failure(TokenKeyError("n is missing or not base64url"))
        }
        guard let eText = jwk["e"]?.stringValue, let e = Base64URL.decode(eText) else {
            return .failure(TokenKeyError("e is missing or not base64url"))
        }
        do {
            return .success(try RSAPublicKey(kid: kid, modulus: n, exponent: e))
        } catch {
            return .failure(error)
        }
    }
}
