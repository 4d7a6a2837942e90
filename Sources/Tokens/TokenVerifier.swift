import COpenSSL
import GatewayCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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
    /// The algorithms a token may name and this module verifies, with `none` and `HS*` removed: computed once,
    /// so that the check on every token is a comparison rather than two set lookups.
    private let acceptedAlgorithms: [String]

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.acceptedAlgorithms = configuration.allowedAlgorithms.intersection(Self.implementedAlgorithms)
            .filter { !Self.isAlwaysRefused($0) }.sorted()
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

    /// A verified token with the key that verified it (the cache ties its entries to that key) and its `kid`.
    struct Verification {
        var token: VerifiedToken
        var key: RSAPublicKey
        var kid: String
    }

    /// A compact JWS cut at its two dots: views into the caller's buffer, valid only while that buffer is.
    struct CompactParts {
        var header: UnsafeBufferPointer<UInt8>
        var payload: UnsafeBufferPointer<UInt8>
        var signature: UnsafeBufferPointer<UInt8>
        /// `header.payload` exactly as received: the bytes the signature covers.
        var signingInput: UnsafeRawBufferPointer
    }

    func verify(buffer: UnsafeBufferPointer<UInt8>, keys: JWKSKeySet) -> Result<Verification, TokenRejection> {
        switch split(buffer) {
        case .failure(let rejection): return .failure(rejection)
        case .success(let parts): return verify(parts: parts, keys: keys, signingInputDigest: nil, contexts: nil)
        }
    }

    static let notThreeParts = TokenRejection(.malformed, "expected three base64url parts separated by two dots")

    /// Rule 1 and the shape half of rule 2: the size, exactly two dots, three non-empty parts.
    func split(_ buffer: UnsafeBufferPointer<UInt8>) -> Result<CompactParts, TokenRejection> {
        guard buffer.count <= configuration.maxTokenBytes else {
            return .failure(TokenRejection(.tooLarge, "token larger than \(configuration.maxTokenBytes) bytes"))
        }
        // libc's memchr scans a vector at a time: three calls find both dots and prove there is no third, in
        // fewer instructions than a word-at-a-time scan of the ~1 KB token.
        guard let base = buffer.baseAddress,
            let first = memchr(base, Int32(UInt8(ascii: ".")), buffer.count)
        else { return .failure(Self.notThreeParts) }
        let firstDot = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(first))
        guard let second = memchr(first + 1, Int32(UInt8(ascii: ".")), buffer.count - firstDot - 1) else {
            return .failure(Self.notThreeParts)
        }
        let secondDot = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(second))
        guard memchr(second + 1, Int32(UInt8(ascii: ".")), buffer.count - secondDot - 1) == nil else {
            return .failure(Self.notThreeParts)
        }
        let parts = CompactParts(
            header: UnsafeBufferPointer(rebasing: buffer[..<firstDot]),
            payload: UnsafeBufferPointer(rebasing: buffer[(firstDot + 1)..<secondDot]),
            signature: UnsafeBufferPointer(rebasing: buffer[(secondDot + 1)...]),
            signingInput: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[..<secondDot]))
        guard !parts.header.isEmpty else { return .failure(TokenRejection(.malformed, "empty header")) }
        guard !parts.payload.isEmpty else { return .failure(TokenRejection(.malformed, "empty payload")) }
        guard !parts.signature.isEmpty else { return .failure(TokenRejection(.malformed, "empty signature")) }
        return .success(parts)
    }

    /// Rules 2 (base64url) to 8 on a split token.
    ///
    /// - Parameters:
    ///   - signingInputDigest: SHA-256 of `parts.signingInput` when the caller computed it already (the cache
    ///     keys its entries by it), so that it is not computed twice.
    ///   - contexts: the caller's reusable RS256 contexts; without them the call makes a temporary one.
    ///   - headers: the caller's memo of the last accepted header, or nil to check every header in full.
    func verify(
        parts: CompactParts, keys: JWKSKeySet, signingInputDigest: SHA256Digest?, contexts: RS256VerifyContexts?,
        headers: AcceptedHeaderMemo? = nil
    ) -> Result<Verification, TokenRejection> {
        func reject(_ kind: TokenRejection.Kind, _ detail: String) -> Result<Verification, TokenRejection> {
            .failure(TokenRejection(kind, detail))
        }

        // Every part is checked for syntax before any RSA work, so a malformed token costs microseconds.
        // A header whose text this owner accepted last time (tokens of one tenant share it) was valid base64url
        // and passed rules 3 to 6 under these algorithms, so its outcome is reused instead of recomputed.
        let remembered = headers?.accepted(parts.header, algorithms: acceptedAlgorithms)
        var headerBytes: [UInt8] = []
        if remembered == nil {
            guard let decoded = Base64Codec.decode(buffer: parts.header, alphabet: .url) else {
                return reject(.malformed, "header is not base64url")
            }
            headerBytes = decoded
        }
        guard let payloadBytes = Base64Codec.decode(buffer: parts.payload, alphabet: .url) else {
            return reject(.malformed, "payload is not base64url")
        }
        // The signature is read only by the RSA check: decoded into temporary memory (the stack, for any real
        // key size), not into an array of its own.
        typealias Checked = (header: JSONValue, key: RSAPublicKey, kid: String)
        let checked: Result<Checked, TokenRejection> = withUnsafeTemporaryAllocation(
            of: UInt8.self, capacity: Base64Codec.decodedCapacity(parts.signature.count)
        ) { signatureBuffer in
            func refuse(_ kind: TokenRejection.Kind, _ detail: String) -> Result<Checked, TokenRejection> {
                .failure(TokenRejection(kind, detail))
            }
            guard
                let signatureCount = Base64Codec.decode(
                    buffer: parts.signature, alphabet: .url, into: signatureBuffer)
            else { return refuse(.malformed, "signature is not base64url") }
            let signature = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(signatureBuffer)[..<signatureCount])

            let header: JSONValue
            let kid: String
            if let remembered {
                (header, kid) = (remembered.header, remembered.kid)
            } else {
                switch checkHeader(headerBytes) {
                case .failure(let rejection): return .failure(rejection)
                case .success(let checked): (header, kid) = checked
                }
                headers?.remember(parts.header, header: header, kid: kid, algorithms: acceptedAlgorithms)
            }
            guard !keys.isEmpty else { return refuse(.noKeys, "no verification keys") }
            // The lookup is a function of the set and the kid: the memo answers it for the very set it was made in.
            let key: RSAPublicKey
            if remembered != nil, let known = headers?.key(in: keys) {
                key = known
            } else {
                guard let found = keys[kid] else { return refuse(.unknownKey, "unknown key id") }
                key = found
                if remembered != nil { headers?.rememberKey(found, in: keys) }
            }

            let digest = signingInputDigest ?? SHA256Digest(parts.signingInput)
            let context = contexts?.context(for: key) ?? RS256VerifyContext(key: key)
            guard let context else { return refuse(.signature, "signature check unavailable") }
            guard context.verify(signature: signature, digest: digest) else {
                return refuse(.signature, "bad signature")
            }
            return .success((header, key, kid))
        }
        let header: JSONValue
        let key: RSAPublicKey
        let kid: String
        switch checked {
        case .failure(let rejection): return .failure(rejection)
        case .success(let found): (header, key, kid) = (found.header, found.key, found.kid)
        }

        // Parsed only once authenticated: the tenant wrote these bytes.
        let claims: JSONValue
        do {
            claims = try JSONValue.parse(payloadBytes)
        } catch {
            return reject(.malformed, "claims are not valid JSON: \(Self.sanitized(error.reason))")
        }
        guard case .object = claims else { return reject(.malformed, "claims are not a JSON object") }
        return .success(Verification(token: VerifiedToken(header: header, claims: claims), key: key, kid: kid))
    }

    /// Rules 3 to 6 up to the key lookup: the header as JSON, its algorithm, parameters, type and key id.
    func checkHeader(_ headerBytes: [UInt8]) -> Result<(JSONValue, String), TokenRejection> {
        func reject(_ kind: TokenRejection.Kind, _ detail: String) -> Result<(JSONValue, String), TokenRejection> {
            .failure(TokenRejection(kind, detail))
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
        // `acceptedAlgorithms` is the allow-list intersected with the implemented set, minus `none` and `HS*`.
        guard acceptedAlgorithms.contains(alg) else {
            return reject(.algorithm, "unsupported alg '\(Self.sanitized(alg))'")
        }

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
        return .success((header, kid))
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

    /// `typ` names an access token (`VerifiedToken.isAccessTokenType`).
    static func isAcceptedType(_ typ: String) -> Bool { VerifiedToken.isAccessTokenType(typ) }

    /// A header value fit for a rejection detail: printable ASCII only, at most 32 characters.
    static func sanitized(_ value: String) -> String {
        var out = ""
        for scalar in value.unicodeScalars.prefix(32) {
            out.unicodeScalars.append((0x20..<0x7F).contains(scalar.value) && scalar != "'" ? scalar : "?")
        }
        return value.unicodeScalars.count > 32 ? out + "..." : out
    }
}

/// The last JWS header an owner accepted, by its exact base64url text: tokens of one tenant share their header
/// (`alg`, `typ`, `kid`), so a fresh token skips the header's decode, JSON parse and rules.
///
/// Only a header that passed rules 2 to 6 (base64url, JSON object, algorithm, no key-carrying or `crit`
/// parameter, type, key id) under the same accepted algorithms is remembered, and it is reused only for the very
/// same bytes. The key lookup, which depends on the current key set, is never skipped.
///
/// Not Sendable: owned by one loop's cache and used on its queue only.
final class AcceptedHeaderMemo {
    private var text: [UInt8] = []
    private var algorithms: [String] = []
    private var header: JSONValue = .null
    private var kid = ""
    /// The key `kid` named in `keySet`: held, not just identified, so a freed set's address cannot be mistaken
    /// for its successor's. Sets are immutable, so the answer holds for as long as the very same set is used.
    private var keySet: JWKSKeySet? = nil
    private var key: RSAPublicKey? = nil

    /// The remembered outcome when `part` is byte for byte the remembered header text.
    func accepted(_ part: UnsafeBufferPointer<UInt8>, algorithms: [String]) -> (header: JSONValue, kid: String)? {
        guard !text.isEmpty, text.count == part.count, Self.same(self.algorithms, algorithms) else { return nil }
        // The header is public (it names the algorithm and key id): no constant-time comparison needed.
        let same = text.withUnsafeBytes { stored in
            memcmp(stored.baseAddress!, UnsafeRawPointer(part.baseAddress!), part.count) == 0
        }
        return same ? (header, kid) : nil
    }

    func remember(_ part: UnsafeBufferPointer<UInt8>, header: JSONValue, kid: String, algorithms: [String]) {
        text = Array(part)
        self.header = header
        self.kid = kid
        self.algorithms = algorithms
        keySet = nil
        key = nil
    }

    /// The remembered header's key in `keys`, when it was looked up in this very set.
    func key(in keys: JWKSKeySet) -> RSAPublicKey? { keySet === keys ? key : nil }

    func rememberKey(_ key: RSAPublicKey, in keys: JWKSKeySet) {
        keySet = keys
        self.key = key
    }

    /// Array equality with a shortcut: a verifier hands over its one stored array, so the same buffer is the
    /// common case and needs no string comparisons.
    private static func same(_ a: [String], _ b: [String]) -> Bool {
        let identical = a.withUnsafeBufferPointer { x in
            b.withUnsafeBufferPointer { y in x.baseAddress == y.baseAddress }
        }
        return (identical && a.count == b.count) || a == b
    }
}

/// Whether two buffers of the same length hold the same bytes.
func memcmpEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    a.count == b.count && (a.isEmpty || CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0)
}
