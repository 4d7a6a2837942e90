import GatewayCore

/// Checks a compact JWS access token up to and including its signature (RFC 7515, RFC 7519, RFC 8725).
///
/// Pure but for the RSA operation: no clock, no I/O, no state, so one value can be shared by every loop.
/// The claims (iss, aud, exp, nbf, lifetime, org_id, scopes) are NOT checked here: that is the policy layer's
/// decision on ``VerifiedToken/claims``. The checks, in order, each with the rejection it produces:
///
/// 1. at most `maxTokenBytes` bytes (`.tooLarge`);
/// 2. exactly three non-empty parts separated by two dots, each strict base64url (``Base64URL``) (`.malformed`);
/// 3. the header is strict JSON (duplicate member names refused) and an object (`.malformed`);
/// 4. `alg` is present, is in the allow-list and is implemented; `none` in any casing and every `HS*` algorithm
///    are refused even when configured, because an HMAC keyed with a public key is forgeable by anyone
///    (`.algorithm`);
/// 5. no `jku`, `x5u`, `jwk` or `x5c` (keys are never taken from the token), no `crit` (no extension is
///    understood), and `typ` absent or naming `JWT` or `at+jwt` (`.header`);
/// 6. `kid` present and non-empty (`.header`), the key set not empty (`.noKeys`) and holding that `kid`
///    (`.unknownKey`, which the caller may answer with one JWKS refetch);
/// 7. the RS256 signature over the ASCII bytes `header.payload` exactly as received (`.signature`);
/// 8. the claims are strict JSON and an object (`.malformed`).
///
/// `typ`: RFC 7515 §4.1.9 says a `typ` without a `/` means `application/` + `typ`, and media types compare
/// case-insensitively (RFC 2045 §5.1), so `JWT`, `jwt`, `application/jwt`, `at+jwt`, `AT+JWT` and
/// `application/at+jwt` are all accepted; parameters (`; charset=...`) and anything else are refused.
///
/// Rejection details name the rule and at most a short, sanitized header value (the `alg` or `typ`); they never
/// contain token bytes, claims or key material.
public struct TokenVerifier: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Longest compact token accepted, in bytes.
        public var maxTokenBytes: Int
        /// Algorithms a token may name. Only `RS256` is implemented; `none` and `HS*` are refused regardless.
        public var allowedAlgorithms: Set<String>

        public init(maxTokenBytes: Int = 8192, allowedAlgorithms: Set<String> = ["RS256"]) {
            self.maxTokenBytes = maxTokenBytes
            self.allowedAlgorithms = allowedAlgorithms
        }
    }

    public let configuration: Configuration

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// The algorithms this module can verify.
    public static let implementedAlgorithms: Set<String> = ["RS256"]

    public func verify(_ compact: String, keys: JWKSKeySet) -> Result<VerifiedToken, TokenRejection> {
        var compact = compact
        return compact.withUTF8 { verify(buffer: $0, keys: keys).map(\.token) }
    }

    public func verify(_ compact: Substring, keys: JWKSKeySet) -> Result<VerifiedToken, TokenRejection> {
        var compact = compact
        return compact.withUTF8 { verify(buffer: $0, keys: keys).map(\.token) }
    }

    /// A verified token with the key that verified it (the cache ties its entries to that key).
    struct Verification {
        var token: VerifiedToken
        var key: RSAPublicKey
    }

    func verify(buffer: UnsafeBufferPointer<UInt8>, keys: JWKSKeySet) -> Result<Verification, TokenRejection> {
        func reject(_ kind: TokenRejection.Kind, _ detail: String) -> Result<Verification, TokenRejection> {
            .failure(TokenRejection(kind, detail))
        }

        guard buffer.count <= configuration.maxTokenBytes else {
            return reject(.tooLarge, "token larger than \(configuration.maxTokenBytes) bytes")
        }
        var dots = (first: -1, second: -1, count: 0)
        for i in 0..<buffer.count where buffer[i] == UInt8(ascii: ".") {
            dots.count += 1
            if dots.count == 1 { dots.first = i } else if dots.count == 2 { dots.second = i } else { break }
        }
        guard dots.count == 2 else {
            return reject(.malformed, "expected three base64url parts separated by two dots")
        }
        let (firstDot, secondDot) = (dots.first, dots.second)
        let headerPart = UnsafeBufferPointer(rebasing: buffer[..<firstDot])
        let payloadPart = UnsafeBufferPointer(rebasing: buffer[(firstDot + 1)..<secondDot])
        let signaturePart = UnsafeBufferPointer(rebasing: buffer[(secondDot + 1)...])
        guard !headerPart.isEmpty else { return reject(.malformed, "empty header") }
        guard !payloadPart.isEmpty else { return reject(.malformed, "empty payload") }
        guard !signaturePart.isEmpty else { return reject(.malformed, "empty signature") }

        // Every part is checked for syntax before any RSA work, so a malformed token costs microseconds.
        guard let headerBytes = Base64Codec.decode(buffer: headerPart, alphabet: .url) else {
            return reject(.malformed, "header is not base64url")
        }
        guard let payloadBytes = Base64Codec.decode(buffer: payloadPart, alphabet: .url) else {
            return reject(.malformed, "payload is not base64url")
        }
        guard let signature = Base64Codec.decode(buffer: signaturePart, alphabet: .url) else {
            return reject(.malformed, "signature is not base64url")
        }

        let header: JSONValue
        do {
            header = try JSONValue.parse(headerBytes)
        } catch {
            return reject(.malformed, "header is not valid JSON: \(Self.sanitized(error.reason))")
        }
        guard case .object(let members) = header else { return reject(.malformed, "header is not a JSON object") }

        // One pass over the members; the rules are then applied in the documented order.
        var alg: JSONValue? = nil
        var typ: JSONValue? = nil
        var kidValue: JSONValue? = nil
        var keyParameter: String? = nil
        var hasCrit = false
        for (name, value) in members {
            switch name {
            case "alg": alg = value
            case "typ": typ = value
            case "kid": kidValue = value
            case "crit": hasCrit = true
            case "jku", "x5u", "jwk", "x5c": keyParameter = keyParameter ?? name
            default: break
            }
        }

        guard let alg = alg?.stringValue else { return reject(.algorithm, "alg missing or not a string") }
        guard !Self.isAlwaysRefused(alg), configuration.allowedAlgorithms.contains(alg),
            Self.implementedAlgorithms.contains(alg)
        else { return reject(.algorithm, "unsupported alg '\(Self.sanitized(alg))'") }

        if let keyParameter { return reject(.header, "header parameter '\(keyParameter)' is not accepted") }
        if hasCrit { return reject(.header, "crit header parameter is not supported") }
        if let typ {
            guard let text = typ.stringValue, Self.isAcceptedType(text) else {
                return reject(.header, "unsupported typ '\(Self.sanitized(typ.stringValue ?? "non-string"))'")
            }
        }

        guard let kid = kidValue?.stringValue, !kid.isEmpty else {
            return reject(.header, "kid missing or not a string")
        }
        guard !keys.isEmpty else { return reject(.noKeys, "no verification keys") }
        guard let key = keys[kid] else { return reject(.unknownKey, "unknown key id") }

        let signingInput = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[..<secondDot])
        let valid = signature.withUnsafeBytes { key.verifyRS256(signature: $0, message: signingInput) }
        guard valid else { return reject(.signature, "bad signature") }

        // Parsed only once authenticated: the tenant wrote these bytes.
        let claims: JSONValue
        do {
            claims = try JSONValue.parse(payloadBytes)
        } catch {
            return reject(.malformed, "claims are not valid JSON: \(Self.sanitized(error.reason))")
        }
        guard case .object = claims else { return reject(.malformed, "claims are not a JSON object") }
        return .success(Verification(token: VerifiedToken(header: header, claims: claims), key: key))
    }

    /// `none` (RFC 7518 §3.6) in any casing, and every `HS*` algorithm in any casing: with a public verification
    /// key an HMAC token can be minted by anyone holding the JWKS. (Any other HMAC name is refused anyway, as
    /// only ``implementedAlgorithms`` can pass.)
    static func isAlwaysRefused(_ alg: String) -> Bool {
        let bytes = alg.utf8
        // `| 0x20` folds ASCII case; only 'H'/'h' and 'S'/'s' fold to these two values.
        if let first = bytes.first, first | 0x20 == UInt8(ascii: "h"),
            let second = bytes.dropFirst().first, second | 0x20 == UInt8(ascii: "s")
        {
            return true
        }
        return bytes.count == 4 && alg.lowercased() == "none"
    }

    /// `typ` names `application/jwt` or `application/at+jwt` (RFC 9068 §2.1), prefix optional, any casing.
    static func isAcceptedType(_ typ: String) -> Bool {
        var lower = typ.lowercased()
        if lower.hasPrefix("application/") { lower.removeFirst("application/".count) }
        return lower == "jwt" || lower == "at+jwt"
    }

    /// A header value fit for a rejection detail: printable ASCII only, at most 32 characters.
    static func sanitized(_ value: String) -> String {
        var out = ""
        for scalar in value.unicodeScalars.prefix(32) {
            out.unicodeScalars.append((0x20..<0x7F).contains(scalar.value) && scalar != "'" ? scalar : "?")
        }
        return value.unicodeScalars.count > 32 ? out + "..." : out
    }
}
