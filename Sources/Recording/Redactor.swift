import GatewayCore

/// Removes credentials and secrets from headers, JSON bodies and free text before anything is written.
///
/// Pure and deterministic. Rules, all applied together (generous on purpose: a redacted harmless value costs a
/// little debugging comfort, a leaked secret costs an incident):
/// - Headers `Authorization`, `Proxy-Authorization`, `DPoP`, `Cookie`, `Set-Cookie`, `cname-api-key` and the
///   configured extra names: value replaced by ``marker``. Any header whose name looks secret (``isSecretName(_:)``,
///   e.g. `X-Api-Key`, `X-CSRF-Token`) too. Every other header value goes through ``redact(text:)``.
/// - JSON: every member whose name looks secret is replaced by ``marker`` (objects wholesale; arrays element by
///   element so that lists such as SCIM `tokens` keep their ids; `null` and booleans are kept). Every string
///   value goes through ``redact(text:)``. Configured JSON pointers (RFC 6901, plus `*` matching any member or
///   index, our extension) are replaced as well.
/// - Text (non-JSON bodies, JSON that does not parse, e.g. when truncated): JWT-looking runs (`eyJ….…`), PEM
///   blocks, `Bearer|Basic|DPoP <credential>`, `"secret_name": value`, `secret_name=value` and
///   `secret_name: value` are replaced.
public struct Redactor: Sendable {
    public static let marker = "[REDACTED]"

    /// Header names (lowercase) that are always redacted.
    public static let alwaysRedactedHeaders: Set<String> = [
        "authorization", "proxy-authorization", "dpop", "cookie", "set-cookie", "cname-api-key",
    ]

    public let headerNames: Set<String>
    public let pointers: [[String]]

    /// - Parameters:
    ///   - extraHeaders: more header names to redact (any case).
    ///   - jsonPointers: RFC 6901 pointers into JSON bodies to redact; malformed pointers are ignored
    ///     (``validatePointer(_:)`` tells which, for configuration checks).
    public init(extraHeaders: [String] = [], jsonPointers: [String] = []) {
        headerNames = Self.alwaysRedactedHeaders.union(extraHeaders.map(\.asciiLowercased))
        pointers = jsonPointers.compactMap(Self.parsePointer)
    }

    // MARK: Names

    private static let exemptNames: Set<String> = [
        "tokentype", "tokenendpoint", "tokenendpointauthmethod", "tokenendpointauthsigningalg", "keys",
        "tokenlifetime",
    ]
    private static let secretFragments: [StaticString] = [
        "secret", "password", "passwd", "passphrase", "token", "cert", "privatekey", "apikey", "credential",
        "assertion", "authorization", "cookie", "dpop", "codeverifier", "sessionid",
    ]

    /// Whether a member, header, form-field or query-parameter name looks like it holds a secret.
    ///
    /// Letters and digits only are compared, case-insensitively: `client_secret`, `clientSecret`, `signingCert`,
    /// `signing_cert`, `cert`, `key`, `private_key`, `token`, `password`, `x-api-key` … all match. Identifiers
    /// (`token_id`, `keyId`) and a few well-known non-secrets (`token_type`, `token_endpoint`, `token_lifetime`, `keys`) do not.
    public static func isSecretName<S: StringProtocol>(_ name: S) -> Bool {
        var normalized: [UInt8] = []
        normalized.reserveCapacity(name.utf8.count)
        for b in name.utf8 {
            switch b {
            case 0x41...0x5A: normalized.append(b | 0x20)
            case 0x61...0x7A, 0x30...0x39: normalized.append(b)
            default: continue
            }
        }
        // Searched as bytes, and a string made only for a name that looks secret (for the exceptions below):
        // most names (`content-type`, `date`) are settled here. `contains` on strings in this module would be
        // Foundation's, about 250,000 instructions per name.
        let looksSecret = normalized.withUnsafeBufferPointer { n in
            func ends(with suffix: StaticString) -> Bool {
                let count = suffix.utf8CodeUnitCount
                return n.count >= count
                    && asciiCaseInsensitiveEquals(
                        UnsafeBufferPointer(rebasing: n[(n.count - count)...]), lowercase: suffix)
            }
            // An OAuth authorization code (RFC 6749 §4.1.2) is exchanged for tokens: `?code=` on the edge path's
            // callbacks is a credential too.
            return ends(with: "key") || ends(with: "pwd") || asciiCaseInsensitiveEquals(n, lowercase: "pass")
                || asciiCaseInsensitiveEquals(n, lowercase: "code")
                || secretFragments.contains { asciiCaseInsensitiveFind($0, in: n) }
        }
        guard looksSecret else { return false }
        let n = String(decoding: normalized, as: UTF8.self)
        if exemptNames.contains(n) { return false }
        // Identifiers of secrets are not secrets: token_id, idp_scim_token_id, keyId.
        if n.hasSuffix("id") && (name.hasSuffix("_id") || name.hasSuffix("Id") || name.hasSuffix("-id")) {
            return false
        }
        return true
    }

    // MARK: Headers

    /// A copy of `headers` with every credential removed; order and names are kept.
    public func redact(headers: HTTPFields) -> HTTPFields {
        HTTPFields(
            headers.fields.map { field in
                if headerNames.contains(field.name.asciiLowercased) || Self.isSecretName(field.name) {
                    return HTTPFields.Field(field.name, Self.marker)
                }
                return HTTPFields.Field(field.name, redact(text: field.value))
            })
    }

    // MARK: JSON

    public func redact(json: JSONValue) -> JSONValue {
        var value = redactMembers(json)
        for pointer in pointers { value = Self.replace(in: value, at: pointer[...]) }
        return value
    }

    private func redactMembers(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let s): return .string(redact(text: s))
        case .array(let items): return .array(items.map(redactMembers))
        case .object(let members):
            return .object(
                members.map { name, v in
                    Self.isSecretName(name)
                        ? (name, Self.redactSecretValue(v, redactor: self)) : (name, redactMembers(v))
                })
        default: return value
        }
    }

    private static func redactSecretValue(_ value: JSONValue, redactor: Redactor) -> JSONValue {
        switch value {
        case .null, .bool: return value
        case .array(let items):
            return .array(
                items.map {
                    if case .object = $0 { return redactor.redactMembers($0) }
                    return redactSecretValue($0, redactor: redactor)
                })
        default: return .string(marker)
        }
    }

    /// Parses an RFC 6901 pointer into unescaped reference tokens; nil when it is not a pointer.
    public static func parsePointer(_ pointer: String) -> [String]? {
        if pointer.isEmpty { return [] }
        guard pointer.hasPrefix("/") else { return nil }
        var tokens: [String] = []
        for raw in pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            var token = ""
            var it = raw.makeIterator()
            while let c = it.next() {
                if c == "~" {
                    switch it.next() {
                    case "0": token.append("~")
                    case "1": token.append("/")
                    default: return nil
                    }
                } else {
                    token.append(c)
                }
            }
            tokens.append(token)
        }
        return tokens
    }

    /// Nil when `pointer` is valid; else why not (for `check`).
    public static func validatePointer(_ pointer: String) -> String? {
        parsePointer(pointer) == nil ? "not an RFC 6901 JSON pointer: \(pointer.prefix(80))" : nil
    }

    private static func replace(in value: JSONValue, at path: ArraySlice<String>) -> JSONValue {
        guard let head = path.first else { return .string(marker) }
        let rest = path.dropFirst()
        switch value {
        case .object(let members):
            return .object(
                members.map { name, v in (head == "*" || name == head) ? (name, replace(in: v, at: rest)) : (name, v) })
        case .array(let items):
            return .array(
                items.enumerated().map { i, v in (head == "*" || head == String(i)) ? replace(in: v, at: rest) : v })
        default:
            return value
        }
    }

    // MARK: Bodies

    /// The body as redacted text, or nil when it is not UTF-8 (binary bodies are never written, only their size).
    ///
    /// JSON (by content type, or by its first character) is parsed, redacted and serialized again; if it does not
    /// parse (truncated, invalid) the text rules apply instead.
    public func redact(body: [UInt8], contentType: String?) -> String? {
        guard let text = String(validating: body, as: UTF8.self) else { return nil }
        let first = body.first { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }
        let looksJSON =
            (contentType?.asciiCaseInsensitiveContains(lowercase: "json") ?? false) || first == UInt8(ascii: "{")
            || first == UInt8(ascii: "[")
        if looksJSON, let value = try? JSONValue.parse(body, maxDepth: 64) {
            return redact(json: value).serialized()
        }
        return redact(text: text)
    }

    /// A query string with secret-looking parameters' values replaced and the other values scanned as text.
    public func redact(query: Substring) -> String {
        query.split(separator: "&", omittingEmptySubsequences: false).map { pair -> String in
            guard let eq = pair.firstIndex(of: "=") else { return redact(text: String(pair)) }
            let name = pair[..<eq]
            if Self.isSecretName(name) { return name + "=" + Self.marker }
            return redact(text: String(name)) + "=" + redact(text: String(pair[pair.index(after: eq)...]))
        }.joined(separator: "&")
    }

    // MARK: Token claims

    /// The claims of a `Bearer` (or `DPoP`) JWT, decoded from its middle part, without header or signature.
    ///
    /// Keeping the claims is safe: a JWS cannot be rebuilt without its signature. Nil when the value is not a
    /// three-part JWS whose payload is a JSON object.
    public static func bearerClaims(_ authorization: String) -> JSONValue? {
        let trimmed = authorization.trimmingASCIISpaces()
        guard let space = trimmed.firstIndex(of: " ") else { return nil }
        let scheme = trimmed[..<space].asciiLowercasedString
        guard scheme == "bearer" || scheme == "dpop" else { return nil }
        let token = trimmed[trimmed.index(after: space)...].drop { $0 == " " }
        // Taken apart as bytes: a split by Character walked the whole token through grapheme breaking (about
        // 30,000 instructions for one token). Exactly three parts, as a split without omitting empty ones counts.
        let utf8 = token.utf8
        guard let firstDot = utf8.firstIndex(of: UInt8(ascii: ".")),
            let secondDot = utf8[utf8.index(after: firstDot)...].firstIndex(of: UInt8(ascii: ".")),
            !utf8[utf8.index(after: secondDot)...].contains(UInt8(ascii: "."))
        else { return nil }
        let payload = Substring(utf8[utf8.index(after: firstDot)..<secondDot])
        guard payload.utf8.count <= 16_384, let bytes = Base64.decode(payload),
            let claims = try? JSONValue.parse(bytes, maxDepth: 16), case .object = claims
        else { return nil }
        return claims
    }
}

extension Substring {
    var asciiLowercasedString: String { String(self).asciiLowercased }
}
