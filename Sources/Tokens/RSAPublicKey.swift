import COpenSSL
import GatewayCore

/// One RSA verification key, imported once from a JWK's `n` and `e` into an OpenSSL `EVP_PKEY`.
///
/// Keys below 2048 bits or above 8192 bits are refused at import, and so are exponents that are even, below 3
/// or wider than 32 bits: all are either weak or make a verification needlessly slow for a forged token.
public final class RSAPublicKey: @unchecked Sendable {
    // Safety: `pkey` is set once in init and never mutated or exposed; OpenSSL 3 documents an EVP_PKEY as safe
    // to use from many threads at once for read-only operations such as verification (each operation gets its
    // own EVP_MD_CTX). It is freed only in deinit, when no other reference can exist.

    /// The key id (`kid`) tokens name in their header.
    public let kid: String
    /// Modulus size in bits.
    public let bits: Int
    /// RFC 7638 JWK thumbprint (SHA-256, base64url): identifies the key material whatever its `kid`.
    public let thumbprint: String
    /// The JWK members that define the key, kept for re-export: unsigned big-endian, no leading zeros.
    public let modulus: [UInt8]
    public let exponent: [UInt8]

    let pkey: OpaquePointer
    let thumbprintDigest: SHA256Digest

    public static let minimumBits = 2048
    public static let maximumBits = 8192

    /// Imports a public key from its modulus and exponent (unsigned big-endian bytes, leading zeros ignored).
    public init(kid: String, modulus n: [UInt8], exponent e: [UInt8]) throws(TokenKeyError) {
        let n = Array(n.drop { $0 == 0 })
        let e = Array(e.drop { $0 == 0 })
        guard let top = n.first else { throw TokenKeyError("RSA modulus is zero") }
        let bits = n.count * 8 - top.leadingZeroBitCount
        guard bits >= Self.minimumBits else {
            throw TokenKeyError("RSA key of \(bits) bits is below the minimum of \(Self.minimumBits)")
        }
        guard bits <= Self.maximumBits else {
            throw TokenKeyError("RSA key of \(bits) bits is above the maximum of \(Self.maximumBits)")
        }
        guard (1...4).contains(e.count), let last = e.last, last & 1 == 1, e.count > 1 || last >= 3 else {
            throw TokenKeyError("RSA exponent must be odd, at least 3 and at most 32 bits")
        }
        self.pkey = try Self.importPublicKey(modulus: n, exponent: e)
        self.kid = kid
        self.bits = bits
        self.modulus = n
        self.exponent = e
        let canonical = Self.thumbprintInput(modulus: n, exponent: e)
        self.thumbprintDigest = SHA256Digest(canonical)
        self.thumbprint = Base64URL.encode(thumbprintDigest.bytes)
    }

    deinit { EVP_PKEY_free(pkey) }

    /// The same key: this very object, or one with the same RFC 7638 thumbprint (a JWKS refetch imports its keys
    /// anew).
    public func hasSameMaterial(as other: RSAPublicKey) -> Bool {
        self === other || thumbprintDigest == other.thumbprintDigest
    }

    /// The public JWK: `kty`, `kid`, `use: sig`, `alg: RS256`, `n`, `e`.
    public var jwk: JSONValue {
        [
            "kty": "RSA", "kid": .string(kid), "use": "sig", "alg": "RS256",
            "n": .string(Base64URL.encode(modulus)), "e": .string(Base64URL.encode(exponent)),
        ]
    }

    /// The key as a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    public func publicKeyPEM() throws(TokenKeyError) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { throw TokenKeyError("cannot allocate a BIO") }
        defer { BIO_free(bio) }
        guard PEM_write_bio_PUBKEY(bio, pkey) == 1 else {
            throw TokenKeyError("cannot write public key: \(OpenSSL.takeError())")
        }
        return OpenSSL.drain(bio)
    }

    /// Whether `signature` is a valid RS256 signature of `message` by this key (no JWS parsing: the bare
    /// primitive, for callers that hold the signing input themselves). Leaves OpenSSL's error queue empty.
    public func isValidRS256Signature(_ signature: [UInt8], of message: [UInt8]) -> Bool {
        signature.withUnsafeBytes { sig in message.withUnsafeBytes { verifyRS256(signature: sig, message: $0) } }
    }

    /// RS256 (RSASSA-PKCS1-v1_5 with SHA-256) over `message`. Leaves OpenSSL's error queue empty.
    func verifyRS256(signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) -> Bool {
        // An RS256 signature is exactly as long as the modulus; anything else is refused before any RSA work.
        guard signature.count == (bits + 7) / 8, let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestVerifyInit(ctx, nil, FetchedDigest.sha256.md, nil, pkey) == 1 else {
            OpenSSL.clearErrors()
            return false
        }
        let result = EVP_DigestVerify(
            ctx, signature.baseAddress?.assumingMemoryBound(to: UInt8.self), signature.count,
            message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count)
        guard result == 1 else {
            // A bad signature queues an error too; left there it would surface on another connection.
            OpenSSL.clearErrors()
            return false
        }
        return true
    }

    /// RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
    static func thumbprintInput(modulus: [UInt8], exponent: [UInt8]) -> [UInt8] {
        let text =
            "{\"e\":\"\(Base64URL.encode(exponent))\",\"kty\":\"RSA\",\"n\":\"\(Base64URL.encode(modulus))\"}"
        return Array(text.utf8)
    }

    /// OSSL_PKEY_PARAM_RSA_N and _E as pointers to static, NUL-terminated storage.
    private static var parameterN: UnsafePointer<CChar> { staticCString("n") }
    private static var parameterE: UnsafePointer<CChar> { staticCString("e") }

    /// INTEROP.md: OSSL_PARAM_BLD + EVP_PKEY_fromdata, the OpenSSL 3 way to build a key from its numbers.
    private static func importPublicKey(modulus: [UInt8], exponent: [UInt8]) throws(TokenKeyError) -> OpaquePointer {
        let n = BN_bin2bn(modulus, Int32(modulus.count), nil)
        let e = BN_bin2bn(exponent, Int32(exponent.count), nil)
        defer {
            BN_free(n)
            BN_free(e)
        }
        guard let n, let e, let builder = OSSL_PARAM_BLD_new() else {
            throw TokenKeyError("cannot allocate RSA parameters: \(OpenSSL.takeError())")
        }
        defer { OSSL_PARAM_BLD_free(builder) }
        // The builder and the OSSL_PARAM array keep the name pointers, not copies: they must be static storage
        // (a Swift String passed as `const char *` lives only for the call).
        guard OSSL_PARAM_BLD_push_BN(builder, Self.parameterN, n) == 1,
            OSSL_PARAM_BLD_push_BN(builder, Self.parameterE, e) == 1,
            let params = OSSL_PARAM_BLD_to_param(builder)
        else { throw TokenKeyError("cannot build RSA parameters: \(OpenSSL.takeError())") }
        defer { OSSL_PARAM_free(params) }
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, "RSA", nil) else {
            throw TokenKeyError("RSA is not available: \(OpenSSL.takeError())")
        }
        defer { EVP_PKEY_CTX_free(ctx) }
        var pkey: OpaquePointer? = nil
        guard EVP_PKEY_fromdata_init(ctx) == 1,
            EVP_PKEY_fromdata(ctx, &pkey, cshim_EVP_PKEY_PUBLIC_KEY(), params) == 1,
            let pkey
        else { throw TokenKeyError("cannot import RSA key: \(OpenSSL.takeError())") }
        return pkey
    }
}
