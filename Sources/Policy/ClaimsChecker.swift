import GatewayCore

/// What a token that passed every claims rule says about the caller.
///
/// A value, stored behind one immutable reference: a context travels with every request of a token (the checked
/// token cache hands it out, the notes keep it), and a copy is then one retain instead of one per field (eight
/// strings, a set and an array). The fields are read-only but `domain`, which a caller may move the context to
/// (setting it replaces the storage).
public struct TokenContext: Sendable, Equatable {
    private struct Fields: Sendable, Equatable {
        var subject: String
        var clientID: String
        var orgID: String
        var orgName: String?
        var scopes: Set<String>
        var scopeClaim: String
        var isClientCredentials: Bool
        var amr: [String]
        var acr: String?
        var expiresAt: Int64
        var issuedAt: Int64
        var tokenID: String?
        var domain: String
        var dpopThumbprint: String?
    }

    private final class Storage: Sendable {
        let fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private var storage: Storage

    public var subject: String { storage.fields.subject }
    /// From `azp` (Auth0 dialect) or `client_id` (RFC 9068 dialect).
    public var clientID: String { storage.fields.clientID }
    public var orgID: String { storage.fields.orgID }
    public var orgName: String? { storage.fields.orgName }
    public var scopes: Set<String> { storage.fields.scopes }
    /// The token's `scope` claim exactly as the token gives it (its order, its spacing); empty when the token has
    /// none. What a log event reports as `scope`: the set above is for matching, this is for telling.
    public var scopeClaim: String { storage.fields.scopeClaim }
    /// `gty` is `client-credentials`, `sub` ends with `@clients`, or `sub` is the client id
    /// (``ClaimsChecker/isClientCredentials(subject:clientID:gty:)``).
    public var isClientCredentials: Bool { storage.fields.isClientCredentials }
    public var amr: [String] { storage.fields.amr }
    public var acr: String? { storage.fields.acr }
    /// `exp`, in whole seconds since the epoch (rounded down).
    public var expiresAt: Int64 { storage.fields.expiresAt }
    public var issuedAt: Int64 { storage.fields.issuedAt }
    public var tokenID: String? { storage.fields.tokenID }
    /// The tenant domain the token was checked against (the one the request arrived on).
    public var domain: String {
        get { storage.fields.domain }
        set {
            var fields = storage.fields
            fields.domain = newValue
            storage = Storage(fields)
        }
    }
    /// `cnf.jkt` (RFC 9449 §6.1): the token is DPoP-bound to the key with this JWK SHA-256 thumbprint.
    public var dpopThumbprint: String? { storage.fields.dpopThumbprint }

    public init(
        subject: String, clientID: String, orgID: String, orgName: String? = nil, scopes: Set<String>,
        scopeClaim: String? = nil, isClientCredentials: Bool = false, amr: [String] = [], acr: String? = nil,
        expiresAt: Int64, issuedAt: Int64, tokenID: String? = nil, domain: String, dpopThumbprint: String? = nil
    ) {
        storage = Storage(
            Fields(
                subject: subject, clientID: clientID, orgID: orgID, orgName: orgName, scopes: scopes,
                // A context made by hand (no claim text) tells its scopes in a stable order.
                scopeClaim: scopeClaim ?? scopes.sorted().joined(separator: " "),
                isClientCredentials: isClientCredentials, amr: amr, acr: acr, expiresAt: expiresAt,
                issuedAt: issuedAt, tokenID: tokenID, domain: domain, dpopThumbprint: dpopThumbprint))
    }

    public static func == (lhs: TokenContext, rhs: TokenContext) -> Bool {
        lhs.storage === rhs.storage || lhs.storage.fields == rhs.storage.fields
    }
}

/// The claims rules of the My Organization API's access tokens, checked against the domain the request
/// arrived on. Pure: the time comes from the caller.
///
/// Rules: `iss` is exactly `https://{domain}/`; `aud` (string or array) contains `https://{domain}/my-org/`;
/// a token naming the tenant's *other* domain is refused with a detail naming both; `exp` and `iat` are
/// required NumericDates (numbers, not strings); `exp` in the future (with `expLeewayS`, none by default); `nbf`
/// (if any) and `iat` not in the future beyond `leewayS`; `exp - iat` at most `maxLifetimeS`;
/// `sub` and `org_id` non-empty strings; a client id from `azp` or `client_id` (equal when both are present);
/// `scope` a space-separated string matched token by token. Both dialects are accepted: Auth0's
/// (`azp`, `gty`, header `typ: JWT`) and RFC 9068's (`client_id`, `jti`, header `typ: at+jwt`).
///
/// Every refusal is a 401 `TenantError` with `WWW-Authenticate: Bearer error="invalid_token",
/// error_description="..."`, except a domain that is not the tenant's (421).
public struct ClaimsChecker: Sendable {
    public let canonicalDomain: String
    public let customDomains: [String]
    public let settings: GatewayConfig.Tokens
    /// Each tenant domain with the exact `iss` and `aud` entry its tokens carry, canonical first: built once so
    /// that a check compares strings instead of formatting them.
    private let expectations: [DomainExpectation]

    private struct DomainExpectation: Sendable {
        let domain: String
        let issuer: String
        let audience: String
    }

    public init(canonicalDomain: String, customDomains: [String], settings: GatewayConfig.Tokens) {
        self.canonicalDomain = canonicalDomain
        self.customDomains = customDomains
        self.settings = settings
        self.expectations = ([canonicalDomain] + customDomains).map {
            DomainExpectation(domain: $0, issuer: "https://\($0)/", audience: "https://\($0)/my-org/")
        }
    }

    public init(config: GatewayConfig) {
        self.init(
            canonicalDomain: config.tenant.canonicalDomain, customDomains: config.tenant.customDomains,
            settings: config.tokens)
    }

    public func check(_ token: VerifiedToken, domain: String, clock: some WallClock) throws(TenantError)
        -> TokenContext
    {
        try check(claims: token.claims, header: token.header, domain: domain, nowNanoseconds: clock.nowNanoseconds())
    }

    /// The claims this checker reads, taken from the object in one pass (the first member of each name, as
    /// `JSONValue`'s subscript would give).
    struct Claims {
        private let members: [(String, JSONValue)]
        // Positions in `members`, -1 when absent: values are copied out only when a rule reads them.
        private var issAt = -1
        private var audAt = -1
        private var expAt = -1
        private var iatAt = -1
        private var nbfAt = -1
        private var subAt = -1
        private var orgIDAt = -1
        private var azpAt = -1
        private var clientIDAt = -1
        private var scopeAt = -1
        private var gtyAt = -1
        private var amrAt = -1
        private var orgNameAt = -1
        private var acrAt = -1
        private var jtiAt = -1
        private var cnfAt = -1

        var iss: JSONValue? { value(issAt) }
        var aud: JSONValue? { value(audAt) }
        var exp: JSONValue? { value(expAt) }
        var iat: JSONValue? { value(iatAt) }
        var nbf: JSONValue? { value(nbfAt) }
        var sub: JSONValue? { value(subAt) }
        var orgID: JSONValue? { value(orgIDAt) }
        var azp: JSONValue? { value(azpAt) }
        var clientID: JSONValue? { value(clientIDAt) }
        var scope: JSONValue? { value(scopeAt) }
        var gty: JSONValue? { value(gtyAt) }
        var amr: JSONValue? { value(amrAt) }
        var orgName: JSONValue? { value(orgNameAt) }
        var acr: JSONValue? { value(acrAt) }
        var jti: JSONValue? { value(jtiAt) }
        var cnf: JSONValue? { value(cnfAt) }

        private func value(_ position: Int) -> JSONValue? {
            // Not `cond ? value : nil`: JSONValue is ExpressibleByNilLiteral, so that `nil` would be `.null`.
            guard position >= 0 else { return .none }
            return .some(members[position].1)
        }

        init(_ members: [(String, JSONValue)]) {
            self.members = members
            for k in members.indices {
                // A `switch` over strings compares the name with each case in turn; names of up to 8 bytes are
                // compared as integers instead, and the one longer name by itself. The first occurrence wins.
                switch Self.packed(members[k].0) {
                case Names.iss: if issAt < 0 { issAt = k }
                case Names.aud: if audAt < 0 { audAt = k }
                case Names.exp: if expAt < 0 { expAt = k }
                case Names.iat: if iatAt < 0 { iatAt = k }
                case Names.nbf: if nbfAt < 0 { nbfAt = k }
                case Names.sub: if subAt < 0 { subAt = k }
                case Names.orgID: if orgIDAt < 0 { orgIDAt = k }
                case Names.azp: if azpAt < 0 { azpAt = k }
                case Names.scope: if scopeAt < 0 { scopeAt = k }
                case Names.gty: if gtyAt < 0 { gtyAt = k }
                case Names.amr: if amrAt < 0 { amrAt = k }
                case Names.orgName: if orgNameAt < 0 { orgNameAt = k }
                case Names.acr: if acrAt < 0 { acrAt = k }
                case Names.jti: if jtiAt < 0 { jtiAt = k }
                case Names.cnf: if cnfAt < 0 { cnfAt = k }
                case 0: if clientIDAt < 0, members[k].0 == "client_id" { clientIDAt = k }
                default: break
                }
            }
        }

        /// The name's bytes as a little-endian integer when it has 1 to 8 of them and none is zero, else 0.
        /// Without zero bytes, distinct names give distinct integers: `"iss\u{0}"` must not pack like `"iss"`.
        static func packed(_ name: String) -> UInt64 {
            guard name.utf8.count <= 8 else { return 0 }
            var name = name
            // A name of at most 8 bytes is a small string: `withUTF8` hands its bytes over from the stack (measured
            // cheaper than the UTF-8 view's iterator).
            return name.withUTF8 { bytes in
                var value: UInt64 = 0
                for (i, byte) in bytes.enumerated() {
                    guard byte != 0 else { return 0 }
                    value |= UInt64(byte) << UInt64(8 * i)
                }
                return value
            }
        }

        /// `packed` of each name, as literals so that the `switch` compares integers (a test checks them).
        enum Names {
            static let iss: UInt64 = 0x73_7369
            static let aud: UInt64 = 0x64_7561
            static let exp: UInt64 = 0x70_7865
            static let iat: UInt64 = 0x74_6169
            static let nbf: UInt64 = 0x66_626e
            static let sub: UInt64 = 0x62_7573
            static let orgID: UInt64 = 0x6469_5f67_726f
            static let azp: UInt64 = 0x70_7a61
            static let scope: UInt64 = 0x65_706f_6373
            static let gty: UInt64 = 0x79_7467
            static let amr: UInt64 = 0x72_6d61
            static let orgName: UInt64 = 0x656d_616e_5f67_726f
            static let acr: UInt64 = 0x72_6361
            static let jti: UInt64 = 0x69_746a
            static let cnf: UInt64 = 0x66_6e63

            static let all: [(String, UInt64)] = [
                ("iss", iss), ("aud", aud), ("exp", exp), ("iat", iat), ("nbf", nbf), ("sub", sub),
                ("org_id", orgID), ("azp", azp), ("scope", scope), ("gty", gty), ("amr", amr),
                ("org_name", orgName), ("acr", acr), ("jti", jti), ("cnf", cnf),
            ]
        }
    }

    /// - Parameters:
    ///   - domain: the tenant domain the request arrived on (the listener's domain or the Host), no port.
    ///   - header: the JWS header; when given, a `typ` other than `JWT` / `at+jwt` is refused.
    public func check(claims: JSONValue, header: JSONValue? = nil, domain: String, nowNanoseconds: Int64)
        throws(TenantError) -> TokenContext
    {
        guard let expected = expectations.first(where: { $0.domain == domain }) else {
            throw .gateway(status: 421, detail: "This gateway does not serve the domain the request was sent to.")
        }
        guard case .object(let members) = claims else {
            throw Self.invalid("The access token's claims are not a JSON object.")
        }
        if let typ = header?["typ"] {
            let value = typ.stringValue ?? ""
            guard VerifiedToken.isAccessTokenType(value) else {
                throw Self.invalid("The token's type (typ) is not an access token's (JWT or at+jwt).")
            }
        }
        let claims = Claims(members)
        try checkIssuerAndAudience(claims, expected: expected)

        let now = Double(nowNanoseconds) / 1e9
        let leeway = Double(settings.leewayS)
        let exp = try numericDate(claims.exp, "exp", required: true)!
        let iat = try numericDate(claims.iat, "iat", required: true)!
        if now >= exp + Double(settings.expLeewayS) { throw Self.invalid("The access token has expired.") }
        if let nbf = try numericDate(claims.nbf, "nbf", required: false), nbf > now + leeway {
            throw Self.invalid("The access token is not valid yet (nbf is in the future).")
        }
        if iat > now + leeway { throw Self.invalid("The access token was issued in the future (iat); check clocks.") }
        if exp <= iat { throw Self.invalid("The access token expires before it was issued.") }
        if exp - iat > Double(settings.maxLifetimeS) {
            throw Self.invalid(
                "The access token's lifetime (exp - iat) exceeds \(settings.maxLifetimeS) seconds, "
                    + "the most this API's tokens have.")
        }

        let subject = try requiredString(claims.sub, "sub", what: "subject (sub)")
        let orgID = try requiredString(claims.orgID, "org_id", what: "organization (org_id)")
        let azp = try optionalString(claims.azp, "azp")
        let clientIDClaim = try optionalString(claims.clientID, "client_id")
        if let azp, let clientIDClaim, azp != clientIDClaim {
            throw Self.invalid("The access token names two different clients (azp and client_id).")
        }
        guard let clientID = azp ?? clientIDClaim, !clientID.isEmpty else {
            throw Self.invalid("The access token names no client (azp or client_id).")
        }
        var scopes = Set<String>()
        var scopeClaim = ""
        if let scope = claims.scope {
            guard let text = scope.stringValue else {
                throw Self.invalid("The access token's scope claim must be a space-separated string.")
            }
            Self.insertScopes(of: text, into: &scopes)
            scopeClaim = text
        }
        let gty = try optionalString(claims.gty, "gty")
        var amr: [String] = []
        if let value = claims.amr {
            guard let items = value.arrayValue, let strings = Optional(items.compactMap(\.stringValue)),
                strings.count == items.count
            else { throw Self.invalid("The access token's amr claim must be an array of strings.") }
            amr = strings
        }
        let isClientCredentials = Self.isClientCredentials(subject: subject, clientID: clientID, gty: gty)
        var dpopThumbprint: String? = nil
        if let cnf = claims.cnf {
            guard case .object = cnf else { throw Self.invalid("The access token's cnf claim must be an object.") }
            if let jkt = cnf["jkt"] {
                guard let text = jkt.stringValue, !text.isEmpty else {
                    throw Self.invalid("The access token's cnf.jkt must be a non-empty string.")
                }
                dpopThumbprint = text
            }
        }
        return TokenContext(
            subject: subject, clientID: clientID, orgID: orgID, orgName: try optionalString(claims.orgName, "org_name"),
            scopes: scopes, scopeClaim: scopeClaim, isClientCredentials: isClientCredentials,
            amr: amr, acr: try optionalString(claims.acr, "acr"), expiresAt: Int64(exp.rounded(.down)),
            issuedAt: Int64(iat.rounded(.down)), tokenID: try optionalString(claims.jti, "jti"), domain: domain,
            dpopThumbprint: dpopThumbprint)
    }

    /// Whether a token is a client-credentials (machine-to-machine) one: Auth0's dialect marks it with `gty` or a
    /// `{client_id}@clients` subject; RFC 9068 §2.2 has no `gty` and says such a token's `sub` identifies the client
    /// itself. The emulated tenant tells tokens apart by the same rule.
    public static func isClientCredentials(subject: String?, clientID: String?, gty: String?) -> Bool {
        if gty == "client-credentials" { return true }
        guard let subject else { return false }
        return subject.hasSuffix("@clients") || (clientID != nil && subject == clientID)
    }

    /// The space-separated scope tokens of `text`, empty pieces dropped.
    private static func insertScopes(of text: String, into scopes: inout Set<String>) {
        // For ASCII text, bytes and characters split alike; otherwise a space followed by a combining mark is
        // one character, not a separator, and only the character split says so.
        let original = text
        var text = text
        let done = text.withUTF8 { bytes -> Bool in
            guard !bytes.contains(where: { $0 >= 0x80 }) else { return false }
            // One scope and no space (the usual token): the claim's own string is the piece, shared, not copied.
            guard bytes.contains(UInt8(ascii: " ")) else {
                if !bytes.isEmpty { scopes.insert(original) }
                return true
            }
            var start = 0
            for end in 0...bytes.count where end == bytes.count || bytes[end] == UInt8(ascii: " ") {
                if end > start {
                    scopes.insert(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self))
                }
                start = end + 1
            }
            return true
        }
        if !done {
            for piece in text.split(separator: " ") { scopes.insert(String(piece)) }
        }
    }

    private func checkIssuerAndAudience(_ claims: Claims, expected: DomainExpectation) throws(TenantError) {
        let domain = expected.domain
        guard let iss = claims.iss?.stringValue else {
            throw Self.invalid("The access token has no issuer (iss).")
        }
        if iss != expected.issuer {
            if let other = expectations.first(where: { $0.domain != domain && iss == $0.issuer }) {
                throw Self.domainMismatch(tokenDomain: other.domain, requestDomain: domain, claim: "issuer (iss)")
            }
            throw Self.invalid("The access token's issuer is not https://\(domain)/, the domain this request used.")
        }
        let single: String?
        let list: [JSONValue]
        switch claims.aud {
        case .string(let s)?:
            single = s
            list = []
        case .array(let items)?:
            guard items.allSatisfy({ $0.stringValue != nil }) else {
                throw Self.invalid("The access token's audience (aud) must be a string or an array of strings.")
            }
            single = nil
            list = items
        default: throw Self.invalid("The access token has no audience (aud).")
        }
        func names(_ audience: String) -> Bool {
            if let single { return single == audience }
            return list.contains { $0.stringValue == audience }
        }
        if names(expected.audience) { return }
        if let other = expectations.first(where: { $0.domain != domain && names($0.audience) }) {
            throw Self.domainMismatch(tokenDomain: other.domain, requestDomain: domain, claim: "audience (aud)")
        }
        throw Self.invalid("The access token's audience does not include https://\(domain)/my-org/.")
    }

    private func numericDate(_ value: JSONValue?, _ name: String, required: Bool) throws(TenantError) -> Double? {
        guard let value else {
            if required { throw Self.invalid("The access token has no \(name) claim.") }
            return nil
        }
        guard let number = value.doubleValue, number.isFinite, number >= 0 else {
            throw Self.invalid("The access token's \(name) claim must be a number of seconds (NumericDate).")
        }
        return number
    }

    private func optionalString(_ value: JSONValue?, _ name: String) throws(TenantError) -> String? {
        guard let value else { return nil }
        guard let text = value.stringValue else {
            throw Self.invalid("The access token's \(name) claim must be a string.")
        }
        return text
    }

    private func requiredString(_ value: JSONValue?, _ name: String, what: String) throws(TenantError) -> String {
        guard let text = try optionalString(value, name), !text.isEmpty else {
            throw Self.invalid("The access token has no \(what).")
        }
        var bytes = text
        let clean = bytes.withUTF8 { $0.count <= 1024 && !$0.contains(where: { $0 < 0x20 || $0 == 0x7F }) }
        guard clean else {
            throw Self.invalid("The access token's \(name) claim is malformed.")
        }
        return text
    }

    // MARK: Refusals

    /// A 401 `invalid_token` refusal whose `error_description` repeats `detail` in RFC 6750's character set.
    public static func invalid(_ detail: String) -> TenantError {
        .unauthorized(detail, wwwAuthenticate: challenge("invalid_token", detail))
    }

    /// An RFC 6750 §3 challenge (RFC 9449 §7.1 for `scheme` DPoP): the error code and the detail as its
    /// description, reduced to the characters a quoted description may hold.
    static func challenge(_ error: String, _ detail: String, scheme: String = "Bearer") -> String {
        "\(scheme) error=\"\(error)\", error_description=\"\(errorDescription(detail))\""
    }

    /// `claim`: the claim that names the other domain (the issuer is checked first, so a token whose issuer is
    /// right but whose audience is the other domain's is named by its audience).
    static func domainMismatch(tokenDomain: String, requestDomain: String, claim: String) -> TenantError {
        invalid(
            "The access token was issued for \(tokenDomain) (its \(claim) names it), but this request was sent to "
                + "\(requestDomain). "
                + "Use one domain throughout: request the token, set the audience and call the API on the same "
                + "domain (canonical or custom).")
    }

    /// RFC 6750 §3: error_description uses %x20-21 / %x23-5B / %x5D-7E; anything else is dropped.
    public static func errorDescription(_ text: String) -> String {
        String(
            decoding: text.utf8.filter {
                $0 == 0x20 || $0 == 0x21 || (0x23...0x5B).contains($0) || (0x5D...0x7E).contains($0)
            },
            as: UTF8.self)
    }
}
