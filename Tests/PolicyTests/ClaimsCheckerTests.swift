import GatewayCore
import Testing

@testable import Policy

let canonical = "acme.us.auth0.com"
let custom = "login.acme.com"
let now: Int64 = 1_800_000_000

enum Dialect: String, CaseIterable, Sendable {
    /// azp, gty, header typ JWT.
    case auth0
    /// client_id, jti, header typ at+jwt.
    case rfc9068
}

/// A valid token of `dialect` for `domain`, with `edits` applied (nil removes a claim).
func token(
    _ domain: String, _ dialect: Dialect, _ edits: [(String, JSONValue?)] = [], typ: JSONValue? = nil
) -> VerifiedToken {
    var claims: [(String, JSONValue)] = [
        ("iss", .string("https://\(domain)/")),
        ("sub", "auth0|user1"),
        ("iat", .number(Double(now - 10))),
        ("exp", .number(Double(now - 10 + 600))),
        ("scope", "read:my_org:details update:my_org:details"),
        ("org_id", "org_0123456789abcdef"),
    ]
    switch dialect {
    case .auth0:
        claims.append(("aud", .array([.string("https://\(domain)/my-org/"), .string("https://\(domain)/userinfo")])))
        claims.append(("azp", "abc123"))
    case .rfc9068:
        claims.append(("aud", .string("https://\(domain)/my-org/")))
        claims.append(("client_id", "abc123"))
        claims.append(("jti", "j-1"))
    }
    for (name, value) in edits {
        claims.removeAll { $0.0 == name }
        if let value { claims.append((name, value)) }
    }
    let header: JSONValue = ["alg": "RS256", "kid": "k1", "typ": typ ?? (dialect == .auth0 ? "JWT" : "at+jwt")]
    return VerifiedToken(header: header, claims: .object(claims))
}

let checker = ClaimsChecker(canonicalDomain: canonical, customDomains: [custom], settings: GatewayConfig.Tokens())

struct Combo: Sendable, CustomTestStringConvertible {
    let domain: String
    let dialect: Dialect
    var other: String { domain == canonical ? custom : canonical }
    var testDescription: String { "\(dialect.rawValue) token on \(domain)" }
    static let all = [canonical, custom].flatMap { d in Dialect.allCases.map { Combo(domain: d, dialect: $0) } }
}

struct ClaimsCase: Sendable, CustomTestStringConvertible {
    let name: String
    /// Builds the claim edits for a domain (and the other tenant domain).
    let edits: @Sendable (_ domain: String, _ other: String) -> [(String, JSONValue?)]
    /// Expected detail fragment; nil: accepted.
    let detail: String?
    var testDescription: String { name }
}

func t(_ seconds: Int64) -> JSONValue { .number(Double(seconds)) }

let claimsCases: [ClaimsCase] = [
    ClaimsCase(name: "valid", edits: { _, _ in [] }, detail: nil),
    ClaimsCase(
        name: "expired", edits: { _, _ in [("iat", t(now - 700)), ("exp", t(now - 100))] }, detail: "has expired"),
    // `exp` gets no leeway by default (RFC 7519 §4.1.4): expired one second ago, or this very second, is expired.
    ClaimsCase(
        name: "expired a second ago", edits: { _, _ in [("iat", t(now - 601)), ("exp", t(now - 1))] },
        detail: "has expired"),
    ClaimsCase(
        name: "expires this very second", edits: { _, _ in [("iat", t(now - 600)), ("exp", t(now))] },
        detail: "has expired"),
    ClaimsCase(
        name: "expires in a second", edits: { _, _ in [("iat", t(now - 599)), ("exp", t(now + 1))] }, detail: nil),
    ClaimsCase(name: "nbf in the future", edits: { _, _ in [("nbf", t(now + 31))] }, detail: "not valid yet"),
    ClaimsCase(name: "nbf within leeway", edits: { _, _ in [("nbf", t(now + 29))] }, detail: nil),
    ClaimsCase(
        name: "iat in the future", edits: { _, _ in [("iat", t(now + 60)), ("exp", t(now + 600))] },
        detail: "issued in the future"),
    ClaimsCase(
        name: "lifetime 601 s", edits: { _, _ in [("iat", t(now - 1)), ("exp", t(now + 600))] },
        detail: "exceeds 600 seconds"),
    ClaimsCase(name: "lifetime 600 s", edits: { _, _ in [("iat", t(now)), ("exp", t(now + 600))] }, detail: nil),
    ClaimsCase(
        name: "exp before iat", edits: { _, _ in [("iat", t(now + 5)), ("exp", t(now + 5))] }, detail: "expires before"),
    ClaimsCase(name: "missing exp", edits: { _, _ in [("exp", nil)] }, detail: "no exp claim"),
    ClaimsCase(name: "missing iat", edits: { _, _ in [("iat", nil)] }, detail: "no iat claim"),
    ClaimsCase(name: "exp as a string", edits: { _, _ in [("exp", .string("\(now + 500)"))] }, detail: "NumericDate"),
    ClaimsCase(name: "iat as a string", edits: { _, _ in [("iat", .string("\(now)"))] }, detail: "NumericDate"),
    ClaimsCase(name: "nbf as a string", edits: { _, _ in [("nbf", .string("0"))] }, detail: "NumericDate"),
    ClaimsCase(name: "missing org_id", edits: { _, _ in [("org_id", nil)] }, detail: "has no organization (org_id)"),
    ClaimsCase(name: "empty org_id", edits: { _, _ in [("org_id", "")] }, detail: "organization (org_id)"),
    ClaimsCase(name: "numeric org_id", edits: { _, _ in [("org_id", 12)] }, detail: "org_id claim must be a string"),
    ClaimsCase(name: "missing sub", edits: { _, _ in [("sub", nil)] }, detail: "subject (sub)"),
    ClaimsCase(
        name: "issuer of a stranger", edits: { _, _ in [("iss", "https://evil.example.com/")] }, detail: "issuer is not"
    ),
    ClaimsCase(
        name: "issuer without trailing slash", edits: { d, _ in [("iss", .string("https://\(d)"))] },
        detail: "issuer is not"),
    ClaimsCase(
        name: "issuer with two slashes", edits: { d, _ in [("iss", .string("https://\(d)//"))] },
        detail: "issuer is not"),
    ClaimsCase(
        name: "issuer over http", edits: { d, _ in [("iss", .string("http://\(d)/"))] }, detail: "issuer is not"),
    ClaimsCase(
        name: "issuer in uppercase", edits: { d, _ in [("iss", .string("https://\(d.uppercased())/"))] },
        detail: "issuer is not"),
    ClaimsCase(
        name: "issuer with a path", edits: { d, _ in [("iss", .string("https://\(d)/my-org/"))] },
        detail: "issuer is not"),
    ClaimsCase(name: "missing issuer", edits: { _, _ in [("iss", nil)] }, detail: "no issuer"),
    ClaimsCase(
        name: "audience without trailing slash", edits: { d, _ in [("aud", .string("https://\(d)/my-org"))] },
        detail: "audience does not include"),
    ClaimsCase(
        name: "Management API audience", edits: { d, _ in [("aud", .string("https://\(d)/api/v2/"))] },
        detail: "audience does not include"),
    ClaimsCase(
        name: "audience array without the API",
        edits: { d, _ in [("aud", .array([.string("https://\(d)/userinfo")]))] }, detail: "audience does not include"),
    ClaimsCase(
        name: "audience array with a non-string",
        edits: { d, _ in [("aud", .array([.string("https://\(d)/my-org/"), 1]))] },
        detail: "string or an array of strings"),
    ClaimsCase(name: "missing audience", edits: { _, _ in [("aud", nil)] }, detail: "no audience"),
    ClaimsCase(
        name: "issuer of the other tenant domain",
        edits: { _, o in [("iss", .string("https://\(o)/")), ("aud", .string("https://\(o)/my-org/"))] },
        detail: "(its issuer (iss) names it), but this request was sent to"),
    ClaimsCase(
        name: "audience of the other tenant domain", edits: { _, o in [("aud", .string("https://\(o)/my-org/"))] },
        detail: "(its audience (aud) names it), but this request was sent to"),
    ClaimsCase(
        name: "audience array with both domains",
        edits: { d, o in [("aud", .array([.string("https://\(o)/my-org/"), .string("https://\(d)/my-org/")]))] },
        detail: nil),
    ClaimsCase(
        name: "scope not a string", edits: { _, _ in [("scope", .array(["read:my_org:details"]))] },
        detail: "space-separated string"),
    ClaimsCase(name: "no client id", edits: { _, _ in [("azp", nil), ("client_id", nil)] }, detail: "names no client"),
    ClaimsCase(
        name: "azp and client_id disagree", edits: { _, _ in [("azp", "abc123"), ("client_id", "other")] },
        detail: "two different clients"),
    ClaimsCase(name: "amr not an array", edits: { _, _ in [("amr", "mfa")] }, detail: "amr claim must be an array"),
]

@Suite("Claims checker")
struct ClaimsCheckerTests {
    @Test("each rule on both domains and both dialects", arguments: Combo.all, claimsCases)
    func rule(_ combo: Combo, _ rule: ClaimsCase) {
        let clock = ManualClock(seconds: now)
        let verified = token(combo.domain, combo.dialect, rule.edits(combo.domain, combo.other))
        do {
            let context = try checker.check(verified, domain: combo.domain, clock: clock)
            #expect(rule.detail == nil, "accepted, but expected a refusal: \(rule.detail ?? "")")
            #expect(context.domain == combo.domain)
        } catch {
            guard let expected = rule.detail else {
                Issue.record("refused: \(error.detail)")
                return
            }
            #expect(error.status == 401)
            #expect(error.detail.contains(expected), "\(error.detail)")
            let header = error.headers["WWW-Authenticate"] ?? ""
            #expect(header.hasPrefix("Bearer error=\"invalid_token\", error_description=\""))
            let description = header.dropFirst("Bearer error=\"invalid_token\", error_description=\"".count).dropLast()
            #expect(header.hasSuffix("\""))
            #expect(!description.contains("\"") && !description.contains("\\"))
            #expect(!error.detail.contains("auth0|user1"))
        }
    }

    @Test("a domain mismatch names both domains", arguments: Combo.all)
    func mismatchDetail(_ combo: Combo) {
        let verified = token(combo.other, combo.dialect)
        #expect {
            try checker.check(verified, domain: combo.domain, clock: ManualClock(seconds: now))
        } throws: { error in
            let detail = (error as? TenantError)?.detail ?? ""
            return detail.contains(combo.domain) && detail.contains(combo.other)
                && detail.contains("request the token, set the audience and call the API on the same domain")
        }
    }

    @Test("the context of a valid token", arguments: Combo.all)
    func context(_ combo: Combo) throws {
        let ctx = try checker.check(
            token(combo.domain, combo.dialect, [("org_name", "acme-org"), ("amr", ["pwd", "mfa"]), ("acr", "x")]),
            domain: combo.domain, clock: ManualClock(seconds: now))
        #expect(ctx.subject == "auth0|user1")
        #expect(ctx.clientID == "abc123")
        #expect(ctx.orgID == "org_0123456789abcdef")
        #expect(ctx.orgName == "acme-org")
        #expect(ctx.scopes == ["read:my_org:details", "update:my_org:details"])
        #expect(!ctx.isClientCredentials)
        #expect(ctx.amr == ["pwd", "mfa"])
        #expect(ctx.acr == "x")
        #expect(ctx.expiresAt == now + 590)
        #expect(ctx.issuedAt == now - 10)
        #expect(ctx.tokenID == (combo.dialect == .rfc9068 ? "j-1" : nil))
    }

    @Test("client-credentials tokens are recognised by gty or by sub")
    func clientCredentials() throws {
        let clock = ManualClock(seconds: now)
        let byGTY = try checker.check(
            token(canonical, .auth0, [("gty", "client-credentials")]), domain: canonical, clock: clock)
        #expect(byGTY.isClientCredentials)
        let bySub = try checker.check(
            token(custom, .rfc9068, [("sub", "abc123@clients")]), domain: custom, clock: clock)
        #expect(bySub.isClientCredentials)
        let user = try checker.check(token(canonical, .auth0, [("gty", "password")]), domain: canonical, clock: clock)
        #expect(!user.isClientCredentials)
    }

    @Test("scopes match whole tokens only")
    func scopeTokens() throws {
        let ctx = try checker.check(
            token(canonical, .auth0, [("scope", "read:my_org:details_x  xread:my_org:details read:my_org")]),
            domain: canonical, clock: ManualClock(seconds: now))
        #expect(!ctx.scopes.contains("read:my_org:details"))
        #expect(ctx.scopes == ["read:my_org:details_x", "xread:my_org:details", "read:my_org"])
    }

    @Test(
        "a claim is read by its exact name only: a NUL, a case change or a prefix makes another claim",
        arguments: [
            ("iss", "no issuer"), ("org_id", "has no organization (org_id)"), ("sub", "subject (sub)"),
            ("exp", "no exp claim"), ("iat", "no iat claim"), ("aud", "no audience"),
        ])
    func exactNames(name: String, detail: String) throws {
        for renamed in [name + "\u{0}", "\u{0}" + name, name.uppercased(), String(name.dropLast()), name + "x"] {
            var claims = try #require(token(canonical, .auth0).claims.objectValue)
            let index = try #require(claims.firstIndex { $0.0 == name })
            claims[index].0 = renamed
            #expect {
                try checker.check(claims: .object(claims), domain: canonical, nowNanoseconds: now * 1_000_000_000)
            } throws: { ($0 as? TenantError)?.detail.contains(detail) == true }
        }
        // client_id, the one name longer than 8 bytes, likewise.
        let noClient = token(canonical, .rfc9068, [("client_id", nil), ("client_id\u{0}", "abc123")])
        #expect {
            try checker.check(noClient, domain: canonical, clock: ManualClock(seconds: now))
        } throws: { ($0 as? TenantError)?.detail.contains("names no client") == true }
    }

    @Test("the packed claim names are the names' bytes, and distinct")
    func packedNames() {
        for (name, packed) in ClaimsChecker.Claims.Names.all {
            #expect(ClaimsChecker.Claims.packed(name) == packed, "\(name)")
        }
        #expect(Set(ClaimsChecker.Claims.Names.all.map(\.1)).count == ClaimsChecker.Claims.Names.all.count)
        #expect(ClaimsChecker.Claims.packed("iss\u{0}") == 0)
        #expect(ClaimsChecker.Claims.packed("client_id") == 0)
        #expect(ClaimsChecker.Claims.packed("") == 0)
        #expect(ClaimsChecker.Claims.packed("org_name_") == 0)
        #expect(ClaimsChecker.Claims.packed("\u{0}iss") == 0)
        #expect(ClaimsChecker.Claims.packed("é") == 0xA9C3)
        #expect(ClaimsChecker.Claims.packed("scopes") != ClaimsChecker.Claims.Names.scope)
    }

    @Test("a claim given twice (possible only in a hand-built value) is read from its first occurrence")
    func firstOccurrence() throws {
        var claims = try #require(token(canonical, .auth0).claims.objectValue)
        claims.append(("org_id", "org_second"))
        let ctx = try checker.check(claims: .object(claims), domain: canonical, nowNanoseconds: now * 1_000_000_000)
        #expect(ctx.orgID == "org_0123456789abcdef")
    }

    @Test(
        "scopes split on spaces exactly as a character split does, ASCII or not",
        arguments: [
            "read:my_org:details", "  read:my_org:details   update:my_org:details ", "a b\tc", "",
            "read:my_org:details \u{301}update:my_org:details", "caf\u{E9} read:my_org:details",
        ])
    func scopeSplit(scope: String) throws {
        let ctx = try checker.check(
            token(canonical, .auth0, [("scope", .string(scope))]), domain: canonical, clock: ManualClock(seconds: now))
        #expect(ctx.scopes == Set(scope.split(separator: " ").map(String.init)))
        #expect(ctx.scopeClaim == scope, "the claim's text is kept as the token gives it")
    }

    @Test("the header type must be an access token's")
    func typ() {
        let clock = ManualClock(seconds: now)
        for good: JSONValue in ["JWT", "at+jwt", "application/at+jwt", "AT+JWT"] {
            #expect(throws: Never.self) {
                try checker.check(token(canonical, .auth0, typ: good), domain: canonical, clock: clock)
            }
        }
        for bad: JSONValue in ["JOSE", "id_token+jwt", 1] {
            #expect(throws: TenantError.self) {
                try checker.check(token(canonical, .auth0, typ: bad), domain: canonical, clock: clock)
            }
        }
    }

    @Test("a request on a domain the tenant does not have is misdirected")
    func foreignDomain() {
        #expect {
            try checker.check(
                token("evil.example.com", .auth0), domain: "evil.example.com", clock: ManualClock(seconds: now))
        } throws: { ($0 as? TenantError)?.status == 421 }
    }

    @Test("a configured exp leeway accepts a token that expired within it, and no longer")
    func expLeeway() {
        let lenient = ClaimsChecker(
            canonicalDomain: canonical, customDomains: [], settings: GatewayConfig.Tokens(expLeewayS: 30))
        let clock = ManualClock(seconds: now)
        let within = token(canonical, .auth0, [("iat", t(now - 629)), ("exp", t(now - 29))])
        #expect(throws: Never.self) { try lenient.check(within, domain: canonical, clock: clock) }
        let beyond = token(canonical, .auth0, [("iat", t(now - 631)), ("exp", t(now - 31))])
        #expect(throws: TenantError.self) { try lenient.check(beyond, domain: canonical, clock: clock) }
    }

    @Test("leeway and lifetime come from the settings")
    func settings() {
        let strict = ClaimsChecker(
            canonicalDomain: canonical, customDomains: [], settings: GatewayConfig.Tokens(leewayS: 0, maxLifetimeS: 300)
        )
        let clock = ManualClock(seconds: now)
        #expect(throws: TenantError.self) {
            try strict.check(token(canonical, .auth0), domain: canonical, clock: clock)
        }
        let short = token(canonical, .auth0, [("iat", t(now - 1)), ("exp", t(now + 299))])
        #expect(throws: Never.self) { try strict.check(short, domain: canonical, clock: clock) }
        let justExpired = token(canonical, .auth0, [("iat", t(now - 300)), ("exp", t(now))])
        #expect(throws: TenantError.self) { try strict.check(justExpired, domain: canonical, clock: clock) }
    }
}
