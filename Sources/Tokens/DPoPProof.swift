import COpenSSL
import GatewayCore

/// A DPoP proof (RFC 9449) checked as a resource server checks one (§4.3, §7.1): what the emulated tenant does
/// with the `DPoP` field the gateway forwards untouched.
///
/// Checked, in order: three base64url parts; a header with `typ` `dpop+jwt`, `alg` ES256 or RS256 and a public
/// `jwk` (no private members); the signature by that key; claims `jti` (a string), `htm` (the request's method),
/// `htu` (the request's URL without query and fragment), `iat` (not older than `maxAgeSeconds`, not more than
/// `futureLeewaySeconds` ahead), `ath` (the access token's SHA-256); and the key's RFC 7638 thumbprint equal to the
/// token's `cnf.jkt`. Pure but for the signature check; answers why a proof fails, never what it holds.
public enum DPoPProof {
    public struct Expectation: Sendable {
        public var method: String
        /// `https://host/path`, as the client addressed the resource.
        public var url: String
        public var accessToken: String
        /// The access token's `cnf.jkt`.
        public var thumbprint: String
        public var nowSeconds: Int64
        public var maxAgeSeconds: Int64
        public var futureLeewaySeconds: Int64

        public init(
            method: String, url: String, accessToken: String, thumbprint: String, nowSeconds: Int64,
            maxAgeSeconds: Int64 = 300, futureLeewaySeconds: Int64 = 60
        ) {
            self.method = method
            self.url = url
            self.accessToken = accessToken
            self.thumbprint = thumbprint
            self.nowSeconds = nowSeconds
            self.maxAgeSeconds = maxAgeSeconds
            self.futureLeewaySeconds = futureLeewaySeconds
        }
    }

    /// Nil when `proof` is a valid proof for `expected`, else why not (no proof or token bytes in it).
    public static func problem(_ proof: String, _ expected: Expectation) -> String? {
        guard proof.utf8.count <= 8192 else { return "the DPoP proof is too large" }
        let parts = proof.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Base64URL.decode(parts[0]),
            let payloadBytes = Base64URL.decode(parts[1]), let signature = Base64URL.decode(parts[2])
        else { return "the DPoP proof is not a compact JWS" }
        guard let header = try? JSONValue.parse(headerBytes), case .object = header,
            let claims = try? JSONValue.parse(payloadBytes), case .object = claims
        else { return "the DPoP proof's header or claims are not JSON objects" }
        guard header["typ"]?.stringValue?.lowercased() == "dpop+jwt" else {
            return "the DPoP proof's typ is not dpop+jwt"
        }
        guard let alg = header["alg"]?.stringValue, alg == "ES256" || alg == "RS256" else {
            return "the DPoP proof's alg is not supported (ES256, RS256)"
        }
        guard let jwk = header["jwk"], case .object(let members) = jwk else {
            return "the DPoP proof carries no jwk"
        }
        if members.contains(where: { ["d", "p", "q", "dp", "dq", "qi", "k"].contains($0.0) }) {
            return "the DPoP proof's jwk holds private key material"
        }
        guard let key = PublicJWK(jwk, alg: alg) else { return "the DPoP proof's jwk is not a usable \(alg) key" }
        let signingInput = Array(proof.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        guard key.verify(signature: signature, of: signingInput) else { return "the DPoP proof's signature is invalid" }

        guard let jti = claims["jti"]?.stringValue, !jti.isEmpty else { return "the DPoP proof has no jti" }
        guard claims["htm"]?.stringValue == expected.method else {
            return "the DPoP proof was made for another method (htm)"
        }
        guard let htu = claims["htu"]?.stringValue, Self.sameURL(htu, expected.url) else {
            return "the DPoP proof was made for another URL (htu)"
        }
        guard let iat = claims["iat"]?.int64Value else { return "the DPoP proof has no iat" }
        if iat < expected.nowSeconds - expected.maxAgeSeconds { return "the DPoP proof is too old (iat)" }
        if iat > expected.nowSeconds + expected.futureLeewaySeconds { return "the DPoP proof is issued in the future" }
        let tokenHash = Base64URL.encode(SHA256Digest(Array(expected.accessToken.utf8)).bytes)
        guard claims["ath"]?.stringValue == tokenHash else {
            return "the DPoP proof does not bind this access token (ath)"
        }
        guard key.thumbprint == expected.thumbprint else {
            return "the DPoP proof's key is not the one the access token is bound to (cnf.jkt)"
        }
        return nil
    }

    /// RFC 9449 §4.3 item 9 with RFC 3986 §6.2.2–6.2.3 normalization: scheme and host compared without case, a
    /// default port dropped, query and fragment ignored.
    static func sameURL(_ a: String, _ b: String) -> Bool {
        guard let x = normalizedURL(a), let y = normalizedURL(b) else { return false }
        return x == y
    }

    static func normalizedURL(_ text: String) -> String? {
        guard let sep = text.firstRange(of: "://") else { return nil }
        let scheme = text[..<sep.lowerBound].lowercased()
        guard scheme == "https" || scheme == "http" else { return nil }
        var rest = text[sep.upperBound...]
        if let cut = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) { rest = rest[..<cut] }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = rest[..<slash].lowercased()
        let path = rest[slash...].isEmpty ? "/" : String(rest[slash...])
        let defaultPort = scheme == "https" ? ":443" : ":80"
        if authority.hasSuffix(defaultPort) { authority.removeLast(defaultPort.count) }
        guard !authority.isEmpty else { return nil }
        return "\(scheme)://\(authority)\(path)"
    }
}

/// A proof's public key: P-256 for ES256, RSA for RS256 (`RSAPublicKey`, with its size limits, RFC 7638
/// thumbprint and RS256 check).
enum PublicJWK {
    case p256(P256PublicKey)
    case rsa(RSAPublicKey)

    init?(_ jwk: JSONValue, alg: String) {
        switch (alg, jwk["kty"]?.stringValue) {
        case ("ES256", "EC"):
            guard jwk["crv"]?.stringValue == "P-256", let x = jwk["x"]?.stringValue, let y = jwk["y"]?.stringValue,
                let key = P256PublicKey(x: x, y: y)
            else { return nil }
            self = .p256(key)
        case ("RS256", "RSA"):
            guard let n = jwk["n"]?.stringValue.flatMap(Base64URL.decode),
                let e = jwk["e"]?.stringValue.flatMap(Base64URL.decode),
                let key = try? RSAPublicKey(kid: "dpop", modulus: n, exponent: e)
            else { return nil }
            self = .rsa(key)
        default:
            return nil
        }
    }

    var thumbprint: String {
        switch self {
        case .p256(let key): key.thumbprint
        case .rsa(let key): key.thumbprint
        }
    }

    func verify(signature: [UInt8], of message: [UInt8]) -> Bool {
        switch self {
        case .p256(let key): key.isValidES256Signature(signature, of: message)
        case .rsa(let key): key.isValidRS256Signature(signature, of: message)
        }
    }
}

/// A P-256 public key from a JWK's `x` and `y` (base64url, 32 bytes each).
final class P256PublicKey {
    let thumbprint: String
    private let pkey: OpaquePointer

    init?(x xText: String, y yText: String) {
        guard let x = Base64URL.decode(xText), let y = Base64URL.decode(yText), x.count == 32, y.count == 32,
            let pkey = Self.importKey(point: [0x04] + x + y)
        else { return nil }
        self.pkey = pkey
        // RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
        let input = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"\(xText)\",\"y\":\"\(yText)\"}"
        thumbprint = Base64URL.encode(SHA256Digest(Array(input.utf8)).bytes)
    }

    deinit { EVP_PKEY_free(pkey) }

    /// ES256 signatures are JOSE's fixed-width `r || s` (RFC 7518 §3.4), which OpenSSL takes as DER.
    func isValidES256Signature(_ signature: [UInt8], of message: [UInt8]) -> Bool {
        guard signature.count == 64, let der = Self.derSignature(r: signature[0..<32], s: signature[32...]),
            let ctx = EVP_MD_CTX_new()
        else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        let ok =
            EVP_DigestVerifyInit(ctx, nil, FetchedDigest.sha256.md, nil, pkey) == 1
            && EVP_DigestVerify(ctx, der, der.count, message, message.count) == 1
        OpenSSL.clearErrors()
        return ok
    }

    private static func derSignature(r: ArraySlice<UInt8>, s: ArraySlice<UInt8>) -> [UInt8]? {
        guard let sig = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(sig) }
        let rn = Array(r).withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, 32, nil) }
        let sn = Array(s).withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, 32, nil) }
        guard let rn, let sn, ECDSA_SIG_set0(sig, rn, sn) == 1 else {
            BN_free(rn)
            BN_free(sn)
            return nil
        }
        var out: UnsafeMutablePointer<UInt8>? = nil
        let count = i2d_ECDSA_SIG(sig, &out)
        guard count > 0, let out else { return nil }
        defer { CRYPTO_free(out, #file, #line) }
        return Array(UnsafeBufferPointer(start: out, count: Int(count)))
    }

    /// OSSL_PARAM_BLD + EVP_PKEY_fromdata, as `RSAPublicKey` imports its keys.
    private static func importKey(point: [UInt8]) -> OpaquePointer? {
        guard let builder = OSSL_PARAM_BLD_new() else { return nil }
        defer { OSSL_PARAM_BLD_free(builder) }
        let curve: StaticString = "prime256v1"
        let named = point.withUnsafeBytes { bytes in
            OSSL_PARAM_BLD_push_utf8_string(
                builder, staticCString("group"), staticCString(curve), curve.utf8CodeUnitCount) == 1
                && OSSL_PARAM_BLD_push_octet_string(builder, staticCString("pub"), bytes.baseAddress, bytes.count)
                    == 1
        }
        guard named, let params = OSSL_PARAM_BLD_to_param(builder) else { return nil }
        defer { OSSL_PARAM_free(params) }
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else { return nil }
        defer { EVP_PKEY_CTX_free(ctx) }
        var pkey: OpaquePointer? = nil
        guard EVP_PKEY_fromdata_init(ctx) == 1, EVP_PKEY_fromdata(ctx, &pkey, cshim_EVP_PKEY_PUBLIC_KEY(), params) == 1
        else {
            OpenSSL.clearErrors()
            return nil
        }
        return pkey
    }
}
