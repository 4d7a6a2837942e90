import COpenSSL

/// An `EVP_PKEY_CTX` set up once for RS256 verification with one key (RSASSA-PKCS1-v1_5, SHA-256), so that a
/// verification is the RSA operation on a digest the caller already has.
///
/// `EVP_DigestVerifyInit` builds a fresh context on every call (provider lookups, a new signature context, a
/// digest context): a sizeable share of a fresh token's cost. `EVP_PKEY_verify` keeps no state between calls
/// for RSA, so one initialised context serves every verification with its key.
///
/// Not Sendable: one owner (a loop's verified-token cache, or a single call), used on one thread at a time.
final class RS256VerifyContext {
    /// Held so that the `EVP_PKEY` the context points to outlives it, and so that owners can key contexts by
    /// the key's identity without that identity being reused.
    let key: RSAPublicKey
    private let ctx: OpaquePointer

    /// Nil when OpenSSL cannot set the context up (allocation failure); the error queue is left empty.
    init?(key: RSAPublicKey) {
        guard let ctx = EVP_PKEY_CTX_new_from_pkey(nil, key.pkey, nil) else {
            OpenSSL.clearErrors()
            return nil
        }
        guard EVP_PKEY_verify_init(ctx) == 1, EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1,
            EVP_PKEY_CTX_set_signature_md(ctx, FetchedDigest.sha256.md) == 1
        else {
            EVP_PKEY_CTX_free(ctx)
            OpenSSL.clearErrors()
            return nil
        }
        self.key = key
        self.ctx = ctx
    }

    deinit { EVP_PKEY_CTX_free(ctx) }

    /// Whether `signature` is this key's RS256 signature of the message whose SHA-256 is `digest`.
    /// Leaves OpenSSL's error queue empty.
    func verify(signature: UnsafeRawBufferPointer, digest: SHA256Digest) -> Bool {
        // An RS256 signature is exactly as long as the modulus; anything else is refused before any RSA work.
        guard signature.count == (key.bits + 7) / 8 else { return false }
        var words = (digest.w0, digest.w1, digest.w2, digest.w3)
        let result = withUnsafeBytes(of: &words) { digestBytes in
            EVP_PKEY_verify(
                ctx, signature.baseAddress?.assumingMemoryBound(to: UInt8.self), signature.count,
                digestBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), digestBytes.count)
        }
        guard result == 1 else {
            // A bad signature queues an error too; left there it would surface on another connection.
            OpenSSL.clearErrors()
            return false
        }
        return true
    }
}

/// RS256 contexts of one owner, one per key it has verified with, kept while the key is in use.
///
/// Not Sendable: loop-confined like the cache that owns it. Bounded: a tenant publishes a handful of keys, so
/// when more than `limit` are held (after rotations) the contexts are dropped and rebuilt on demand.
final class RS256VerifyContexts {
    private var contexts: [ObjectIdentifier: RS256VerifyContext] = [:]
    private let limit: Int

    init(limit: Int = 16) { self.limit = limit }

    /// The context for `key`, made on first use; nil only when OpenSSL cannot make one.
    func context(for key: RSAPublicKey) -> RS256VerifyContext? {
        // The identifier cannot be reused while the context holds the key.
        let id = ObjectIdentifier(key)
        if let context = contexts[id] { return context }
        guard let context = RS256VerifyContext(key: key) else { return nil }
        if contexts.count >= limit { contexts.removeAll(keepingCapacity: true) }
        contexts[id] = context
        return context
    }
}
