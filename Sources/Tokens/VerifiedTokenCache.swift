import COpenSSL
import GatewayCore

/// Verified tokens of one event loop, so that a client repeating its token skips the RSA operation.
///
/// Not Sendable and not locked: each loop owns one, and uses it only on its own queue.
///
/// - Key: SHA-256 of the signing input (`header.payload`), the digest the RS256 check needs anyway, so a fresh
///   token is hashed once; an entry also keeps the signature part's text, and a hit needs both to match, so a
///   hit still means the very same bytes were verified before.
/// - Lifetime: an entry is served while `now < exp` (RFC 7519 §4.1.4); tokens without a numeric `exp` are
///   verified every time and never stored. The claims rules are still the policy layer's on every request.
/// - Keys: an entry remembers the key that verified it and is served only while the current set maps the token's
///   `kid` to that key or to one with the same RFC 7638 thumbprint. A JWKS refetch with the same keys keeps the
///   cache warm; a rotation that drops or replaces the key invalidates its entries.
/// - Bound: `capacity` entries; when full, a CLOCK sweep replaces the first entry that is expired or was not hit
///   since the hand last passed it (an approximation of least recently used at O(1) per insert).
public final class VerifiedTokenCache {
    struct Entry {
        /// The signature part as received (base64url text).
        var signature: [UInt8]
        var token: VerifiedToken
        var key: RSAPublicKey
        var kid: String
    }

    public var capacity: Int { table.capacity }
    /// Lookups answered from the cache.
    public private(set) var hits: UInt64 = 0
    /// Lookups that needed a verification (including ones that were then refused).
    public private(set) var misses: UInt64 = 0

    /// Keyed by the signing input's digest; expiry in nanoseconds since the epoch.
    private var table: ClockTable<SHA256Digest, Entry>
    private let hasher = SHA256Context()
    /// RS256 contexts set up once per key for this loop.
    private let contexts = RS256VerifyContexts()
    /// The header this loop accepted last, so that fresh tokens of the tenant skip re-checking it.
    private let headers = AcceptedHeaderMemo()

    public init(capacity: Int = 4096) {
        precondition(capacity > 0, "VerifiedTokenCache needs a positive capacity")
        self.table = ClockTable(capacity: capacity)
    }

    /// Entries currently stored (expired ones included until they are swept or looked up).
    public var count: Int { table.count }

    public func removeAll() { table.removeAll() }

    /// The cached result for `compact` if there is a live one, else `verifier`'s answer (stored when verified and
    /// it has a numeric `exp` still ahead of `nowNanoseconds`, nanoseconds since the Unix epoch).
    public func verify(
        _ compact: String, keys: JWKSKeySet, verifier: TokenVerifier, nowNanoseconds: Int64
    ) -> Result<VerifiedToken, TokenRejection> {
        verifyWithoutStoring(compact, keys: keys, verifier: verifier, nowNanoseconds: nowNanoseconds).map {
            store($0, nowNanoseconds: nowNanoseconds)
            return $0.token
        }
    }

    /// A token `verifyWithoutStoring` verified or found, with what `store` needs to keep it later.
    public struct Verification {
        public let token: VerifiedToken
        /// The key that verified the token and the `kid` it named: a caller keeping the token elsewhere ties it to
        /// them, as this cache does.
        public let key: RSAPublicKey
        public let kid: String
        /// The answer came from this cache: it is stored already.
        public let fromCache: Bool
        /// The very text that was verified (its storage, not a copy): `store` keeps exactly these bytes, so an entry
        /// cannot pair the digest with a signature that was not checked.
        let compact: String
        /// Where the signature part starts in `compact`'s UTF-8.
        let signatureStart: Int
        let digest: SHA256Digest
    }

    /// As `verify`, but a token it had to verify is not stored: the caller decides with `store` (a caller that
    /// keeps accepted tokens in a table of its own would otherwise pay for two entries per fresh token).
    public func verifyWithoutStoring(
        _ compact: String, keys: JWKSKeySet, verifier: TokenVerifier, nowNanoseconds: Int64
    ) -> Result<Verification, TokenRejection> {
        var text = compact
        return text.withUTF8 { buffer in
            // Oversized or misshapen input is refused before it is hashed: only well-formed tokens are ever stored.
            switch verifier.split(buffer) {
            case .failure(let rejection):
                misses += 1
                return .failure(rejection)
            case .success(let parts):
                let digest = hasher.digest(parts.signingInput)
                let signatureStart = buffer.count - parts.signature.count
                if let entry = lookup(digest, signature: parts.signature, keys: keys, nowNanoseconds: nowNanoseconds) {
                    hits += 1
                    return .success(
                        Verification(
                            token: entry.token, key: entry.key, kid: entry.kid, fromCache: true, compact: compact,
                            signatureStart: signatureStart, digest: digest))
                }
                misses += 1
                return verifier.verify(
                    parts: parts, keys: keys, signingInputDigest: digest, contexts: contexts, headers: headers
                ).map {
                    Verification(
                        token: $0.token, key: $0.key, kid: $0.kid, fromCache: false, compact: compact,
                        signatureStart: signatureStart, digest: digest)
                }
            }
        }
    }

    /// Stores what `verifyWithoutStoring` verified, under `verify`'s rules (a numeric `exp` ahead of
    /// `nowNanoseconds`); nothing for an answer that came from the cache.
    public func store(_ verification: Verification, nowNanoseconds: Int64) {
        guard !verification.fromCache else { return }
        var compact = verification.compact
        compact.withUTF8 { buffer in
            store(
                verification, signature: UnsafeBufferPointer(rebasing: buffer[verification.signatureStart...]),
                nowNanoseconds: nowNanoseconds)
        }
    }

    private func store(
        _ verification: Verification, signature: UnsafeBufferPointer<UInt8>, nowNanoseconds: Int64
    ) {
        guard let expiry = Self.expiry(of: verification.token), nowNanoseconds < expiry else { return }
        table.insert(
            verification.digest,
            Entry(
                signature: Array(signature), token: verification.token, key: verification.key,
                kid: verification.kid),
            expiresAt: expiry, now: nowNanoseconds)
    }

    private func lookup(
        _ digest: SHA256Digest, signature: UnsafeBufferPointer<UInt8>, keys: JWKSKeySet, nowNanoseconds: Int64
    ) -> Entry? {
        // Empty whenever every verified token went to a caller's own table (`verifyWithoutStoring`): no hashing.
        guard table.count > 0, let slot = table.slot(of: digest), let entry = table.value(at: slot),
            let expiresAt = table.expiry(at: slot)
        else { return nil }
        // Same signing input; the token is the same only if the signature is too (another signature over the same
        // input is a different token, verified on its own).
        let sameSignature = entry.signature.withUnsafeBytes { memcmpEqual($0, UnsafeRawBufferPointer(signature)) }
        guard sameSignature else { return nil }
        guard nowNanoseconds < expiresAt, keys.maps(entry.kid, to: entry.key) else {
            // Dead for good: time only moves forward, and a key set without this key will not bring it back
            // as the same object (a new import is matched by thumbprint on the next verification).
            table.remove(at: slot)
            return nil
        }
        table.markRead(slot)
        return entry
    }

    /// `exp` as nanoseconds since the epoch, when it is a number (RFC 7519 NumericDate may have a fraction).
    static func expiry(of token: VerifiedToken) -> Int64? {
        guard let seconds = token.claims["exp"]?.doubleValue, seconds.isFinite else { return nil }
        let nanoseconds = seconds * 1e9
        if nanoseconds >= 9.2e18 { return Int64.max }
        if nanoseconds <= -9.2e18 { return Int64.min }
        return Int64(nanoseconds)
    }
}

/// Loop-confined by design: sharing one cache across loops would need a lock on the hot path.
@available(*, unavailable)
extension VerifiedTokenCache: Sendable {}
