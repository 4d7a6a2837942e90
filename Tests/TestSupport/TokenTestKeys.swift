import COpenSSL
import GatewayCore
import Tokens

/// Signing keys and tokens for tests, generated once per test process (key generation takes ~0.1 s).
public enum TestKeys {
    /// The key the test tenant signs with; its public half is in ``keySet``.
    public static let primary: RSASigningKey = makeKey()
    /// Another 2048-bit key, never in ``keySet``: signatures by it must fail.
    public static let secondary: RSASigningKey = makeKey()
    /// The test tenant's JWKS: ``primary`` only.
    public static let keySet: JWKSKeySet = primary.keySet()

    private static func makeKey() -> RSASigningKey {
        do {
            return try RSASigningKey.generate()
        } catch {
            fatalError("test key generation failed: \(error)")
        }
    }

    /// Claims shaped like an access token of the My Organization API issued by `domain` at `issuedAt`.
    public static func claims(
        domain: String = "acme.us.auth0.com",
        issuedAt: Int64 = 1_800_000_000,
        lifetime: Int64 = 600,
        scope: String = "read:my_org:details",
        organization: String = "org_test123",
        subject: String = "auth0|user123",
        clientID: String = "client123"
    ) -> JSONValue {
        [
            "iss": .string("https://\(domain)/"),
            "sub": .string(subject),
            "aud": .string("https://\(domain)/my-org/"),
            "iat": .number(Double(issuedAt)),
            "exp": .number(Double(issuedAt + lifetime)),
            "scope": .string(scope),
            "org_id": .string(organization),
            "azp": .string(clientID),
        ]
    }

    /// A compact RS256 token with the ordinary header (`alg`, `typ`, `kid`) signed by `key`.
    public static func token(
        claims: JSONValue = claims(), typ: String = "at+jwt", key: RSASigningKey = primary
    ) -> String {
        do {
            return try key.sign(header: key.header(typ: typ), claims: claims)
        } catch {
            fatalError("test token signing failed: \(error)")
        }
    }

    /// Modulus and exponent of a fresh RSA key of any size, below the verifier's minimum included, for
    /// JWKS documents that must be refused. (RSASigningKey will not make keys under 2048 bits.)
    public static func rsaPublicNumbers(bits: Int) -> (modulus: [UInt8], exponent: [UInt8]) {
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, "RSA", nil) else { fatalError("RSA unavailable") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var pkey: OpaquePointer? = nil
        guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, Int32(bits)) == 1,
            EVP_PKEY_generate(ctx, &pkey) == 1, let pkey
        else { fatalError("RSA key generation failed") }
        defer { EVP_PKEY_free(pkey) }
        return (bigEndian(pkey, OSSL_PKEY_PARAM_RSA_N), bigEndian(pkey, OSSL_PKEY_PARAM_RSA_E))
    }

    private static func bigEndian(_ pkey: OpaquePointer, _ name: String) -> [UInt8] {
        var bn: OpaquePointer? = nil
        guard EVP_PKEY_get_bn_param(pkey, name, &bn) == 1, let bn else { fatalError("cannot read \(name)") }
        defer { BN_free(bn) }
        var out = [UInt8](repeating: 0, count: (Int(BN_num_bits(bn)) + 7) / 8)
        _ = BN_bn2bin(bn, &out)
        return out
    }

    /// HMAC-SHA-256/384/512 (`digestBits`) through OpenSSL, for real HS* tokens keyed with public key bytes.
    public static func hmac(digestBits: Int = 256, key: [UInt8], message: [UInt8]) -> [UInt8] {
        let md: OpaquePointer? =
            switch digestBits {
            case 384: EVP_sha384()
            case 512: EVP_sha512()
            default: EVP_sha256()
            }
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard HMAC(md, key, Int32(key.count), message, message.count, &out, &length) != nil else {
            fatalError("HMAC failed")
        }
        return Array(out.prefix(Int(length)))
    }
}
