import COpenSSL
import GatewayCore
import Tokens

/// A client's DPoP key (P-256) that signs RFC 9449 proofs, for tests of the proof check.
public final class DPoPKey: @unchecked Sendable {
    private let pkey: OpaquePointer
    public let x: [UInt8]
    public let y: [UInt8]

    public init() {
        // EVP_EC_gen is a variadic macro, out of Swift's reach: the context spelled out.
        let ctx = EVP_PKEY_CTX_new_from_name(nil, "EC", nil)!
        defer { EVP_PKEY_CTX_free(ctx) }
        var generated: OpaquePointer? = nil
        precondition(
            EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_CTX_set_group_name(ctx, "P-256") == 1
                && EVP_PKEY_generate(ctx, &generated) == 1, "cannot generate a P-256 key")
        pkey = generated!
        var point = [UInt8](repeating: 0, count: 65)
        var length = 0
        let ok = EVP_PKEY_get_octet_string_param(pkey, "pub", &point, point.count, &length)
        precondition(ok == 1 && length == 65 && point[0] == 4, "cannot read the P-256 public key")
        x = Array(point[1..<33])
        y = Array(point[33..<65])
    }

    deinit { EVP_PKEY_free(pkey) }

    public var jwk: String {
        #"{"kty":"EC","crv":"P-256","x":"\#(Base64URL.encode(x))","y":"\#(Base64URL.encode(y))"}"#
    }

    /// RFC 7638 thumbprint: the token's `cnf.jkt`.
    public var thumbprint: String {
        let input = #"{"crv":"P-256","kty":"EC","x":"\#(Base64URL.encode(x))","y":"\#(Base64URL.encode(y))"}"#
        var digest = [UInt8](repeating: 0, count: 32)
        let bytes = Array(input.utf8)
        _ = SHA256(bytes, bytes.count, &digest)
        return Base64URL.encode(digest)
    }

    /// A proof for `method url` bound to `accessToken`, signed by this key; `jwk` replaces the key the header names.
    public func proof(
        method: String, url: String, accessToken: String, iat: Int64, typ: String = "dpop+jwt",
        jwk: String? = nil, jti: String = String(UInt64.random(in: 1...UInt64.max), radix: 16)
    ) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        let tokenBytes = Array(accessToken.utf8)
        _ = SHA256(tokenBytes, tokenBytes.count, &digest)
        let header = #"{"typ":"\#(typ)","alg":"ES256","jwk":\#(jwk ?? self.jwk)}"#
        let claims =
            #"{"jti":"\#(jti)","htm":"\#(method)","htu":"\#(url)","iat":\#(iat),"ath":"\#(Base64URL.encode(digest))"}"#
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(claims.utf8))
        return input + "." + Base64URL.encode(sign(Array(input.utf8)))
    }

    /// ES256 as JOSE writes it: `r || s`, 32 bytes each.
    public func sign(_ message: [UInt8]) -> [UInt8] {
        let ctx = EVP_MD_CTX_new()!
        defer { EVP_MD_CTX_free(ctx) }
        var length = 0
        precondition(EVP_DigestSignInit(ctx, nil, EVP_sha256(), nil, pkey) == 1)
        precondition(EVP_DigestSign(ctx, nil, &length, message, message.count) == 1)
        var der = [UInt8](repeating: 0, count: length)
        precondition(EVP_DigestSign(ctx, &der, &length, message, message.count) == 1)
        let sig = der.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            var p: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &p, length)
        }
        precondition(sig != nil)
        defer { ECDSA_SIG_free(sig) }
        var out = [UInt8](repeating: 0, count: 64)
        precondition(BN_bn2binpad(ECDSA_SIG_get0_r(sig), &out, 32) == 32)
        out.withUnsafeMutableBufferPointer { buffer in
            precondition(BN_bn2binpad(ECDSA_SIG_get0_s(sig), buffer.baseAddress! + 32, 32) == 32)
        }
        return out
    }
}
