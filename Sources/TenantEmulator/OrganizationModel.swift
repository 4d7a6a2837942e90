import GatewayCore

/// `organization_access_level` of an identity provider: how far the My Organization API may see and edit it.
enum AccessLevel: String, Sendable {
    /// Hidden: every endpoint answers 404 for it and lists leave it out.
    case none
    /// Visible, never editable.
    case readonly
    /// `show_as_button`, `is_enabled` and `assign_membership_on_login` editable.
    case limited
    /// Everything editable: options, display name, domains, provisioning, deletion.
    case full
}

enum DomainStatus: String, Sendable {
    case pending, verified, failed
}

struct IdentityProvider: Sendable {
    var seq: Int
    var id: String
    var name: String
    var strategy: String
    var domains: [String]
    var displayName: String?
    var showAsButton: Bool
    var assignMembershipOnLogin: Bool
    var isEnabled: Bool
    var accessLevel: AccessLevel
    /// The request's options without the secrets (`client_secret`, `signingCert`): responses never echo them.
    var options: [(String, JSONValue)]
    /// Users who signed in through this connection; `allow_if_empty` refuses deleting a provider that has some.
    var userCount: Int
    var provisioning: Provisioning?
}

struct Provisioning: Sendable {
    var createdAt: Int64
    var updatedOn: Int64
    var scimTokens: [ScimToken]
}

/// A SCIM token's public part. The secret is handed out once, in the create response, and never stored.
struct ScimToken: Sendable {
    var seq: Int
    var id: String
    var scopes: [String]
    var createdAt: Int64
    var validUntil: Int64?
}

struct OrgDomain: Sendable {
    var seq: Int
    var id: String
    var domain: String
    var status: DomainStatus
    var verificationTXT: String
    var verificationHost: String
    /// When `POST domains/{id}/verify` was last called; the status settles `verificationDelay` seconds later.
    var verificationRequestedAt: Int64?
}

struct Member: Sendable {
    var seq: Int
    var userID: String
    var email: String
    var name: String
    var nickname: String
    var givenName: String
    var familyName: String
    var createdAt: Int64
    var updatedAt: Int64
    var lastLogin: Int64
    var roleIDs: [String]
}

struct Role: Sendable {
    var seq: Int
    var id: String
    var name: String
    var description: String
}

struct Invitation: Sendable {
    var seq: Int
    var id: String
    var inviterName: String
    var inviteeEmail: String
    var identityProviderID: String?
    var createdAt: Int64
    var expiresAt: Int64
    var roleIDs: [String]
    var ticketID: String
}

/// Everything the emulator keeps about one Organization.
struct Organization: Sendable {
    var id: String
    var name: String
    var displayName: String
    var logoURL: String?
    var primaryColor: String?
    var pageBackground: String?
    var identityProviders: [IdentityProvider] = []
    var domains: [OrgDomain] = []
    var members: [Member] = []
    var roles: [Role] = []
    var invitations: [Invitation] = []
}

/// SplitMix64: a tiny deterministic generator, so the seed and every id the emulator mints repeat run after run.
struct SplitMix64: Sendable {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static let alphanumerics = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
    static let hexDigits = Array("0123456789abcdef".utf8)

    mutating func string(_ count: Int, from alphabet: [UInt8] = alphanumerics) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        for _ in 0..<count { out.append(alphabet[Int(next() % UInt64(alphabet.count))]) }
        return String(decoding: out, as: UTF8.self)
    }
}

enum ISO8601 {
    /// `2027-01-15T08:00:00.000Z` for `seconds` since the epoch (proleptic Gregorian, UTC).
    static func string(_ seconds: Int64) -> String {
        let (days, secondsOfDay) = CivilCalendar.split(epochSeconds: seconds)
        let (year, month, day) = CivilCalendar.civil(fromDays: days)
        func pad(_ n: Int, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondsOfDay / 3600, 2)):"
            + "\(pad(secondsOfDay / 60 % 60, 2)):\(pad(secondsOfDay % 60, 2)).000Z"
    }
}

// MARK: - JSON shapes (field names of the API's OpenAPI description)

extension IdentityProvider {
    static let attributeStrategies: Set<String> = ["oidc", "okta", "samlp"]

    var json: JSONValue {
        var m: [(String, JSONValue)] = [
            ("id", .string(id)), ("name", .string(name)), ("strategy", .string(strategy)),
            ("domains", .array(domains.map { .string($0) })),
        ]
        if let displayName { m.append(("display_name", .string(displayName))) }
        m += [
            ("show_as_button", .bool(showAsButton)),
            ("assign_membership_on_login", .bool(assignMembershipOnLogin)),
            ("is_enabled", .bool(isEnabled)),
            ("access_level", .string(accessLevel.rawValue)),
            ("options", .object(options)),
        ]
        if Self.attributeStrategies.contains(strategy) {
            m.append(
                (
                    "attributes",
                    .array([
                        Self.attribute("email", "Email", required: true, sso: ["email"]),
                        Self.attribute("given_name", "Given name", required: false, sso: ["given_name"]),
                        Self.attribute("family_name", "Family name", required: false, sso: ["family_name"]),
                    ])
                ))
        }
        return .object(m)
    }

    static func attribute(_ name: String, _ label: String, required: Bool, sso: [String]) -> JSONValue {
        .object([
            ("user_attribute", .string(name)), ("description", .string("The user's \(label.lowercased())")),
            ("label", .string(label)), ("is_required", .bool(required)), ("is_extra", false),
            ("is_missing", false), ("sso_field", .array(sso.map { .string($0) })),
        ])
    }

    var domainSummaryJSON: JSONValue {
        var m: [(String, JSONValue)] = [("id", .string(id)), ("name", .string(name))]
        if let displayName { m.append(("display_name", .string(displayName))) }
        return .object(m)
    }

    func provisioningJSON(_ p: Provisioning) -> JSONValue {
        func field(_ attribute: String, _ label: String, _ scim: String, required: Bool) -> JSONValue {
            .object([
                ("user_attribute", .string(attribute)), ("description", .string("The user's \(label.lowercased())")),
                ("label", .string(label)), ("is_required", .bool(required)), ("is_extra", false),
                ("is_missing", false), ("provisioning_field", .string(scim)),
            ])
        }
        return .object([
            ("identity_provider_id", .string(id)), ("identity_provider_name", .string(name)),
            ("strategy", .string(strategy)), ("method", "scim"),
            (
                "attributes",
                .array([
                    field("email", "Email", "emails[primary eq true].value", required: true),
                    field("given_name", "Given name", "name.givenName", required: false),
                    field("family_name", "Family name", "name.familyName", required: false),
                ])
            ),
            ("user_id_attribute", "externalId"),
            ("created_at", .string(ISO8601.string(p.createdAt))),
            ("updated_on", .string(ISO8601.string(p.updatedOn))),
        ])
    }
}

extension ScimToken {
    static let defaultScopes = ["get:users", "post:users", "put:users", "patch:users", "delete:users"]

    var json: JSONValue {
        var m: [(String, JSONValue)] = [
            ("token_id", .string(id)), ("scopes", .array(scopes.map { .string($0) })),
            ("created_at", .string(ISO8601.string(createdAt))),
        ]
        if let validUntil { m.append(("valid_until", .string(ISO8601.string(validUntil)))) }
        return .object(m)
    }
}

extension OrgDomain {
    func json(orgID: String) -> JSONValue {
        .object([
            ("id", .string(id)), ("org_id", .string(orgID)), ("domain", .string(domain)),
            ("status", .string(status.rawValue)), ("verification_txt", .string(verificationTXT)),
            ("verification_host", .string(verificationHost)),
        ])
    }
}

extension Role {
    var json: JSONValue {
        .object([("id", .string(id)), ("name", .string(name)), ("description", .string(description))])
    }
}

extension Member {
    /// `OrgMember` (list) when `roles` is given, `OrgMemberBase` (get) otherwise.
    func json(roles: [Role]?) -> JSONValue {
        var m: [(String, JSONValue)] = [
            ("user_id", .string(userID)), ("email", .string(email)), ("name", .string(name)),
            ("nickname", .string(nickname)), ("given_name", .string(givenName)),
            ("family_name", .string(familyName)), ("created_at", .string(ISO8601.string(createdAt))),
            ("updated_at", .string(ISO8601.string(updatedAt))), ("last_login", .string(ISO8601.string(lastLogin))),
        ]
        if let roles { m.append(("roles", .array(roles.map(\.json)))) }
        return .object(m)
    }
}

extension Invitation {
    func json(org: Organization, domain: String) -> JSONValue {
        var m: [(String, JSONValue)] = [
            ("id", .string(id)), ("organization_id", .string(org.id)),
            ("inviter", .object([("name", .string(inviterName))])),
            ("invitee", .object([("email", .string(inviteeEmail))])),
        ]
        if let identityProviderID { m.append(("identity_provider_id", .string(identityProviderID))) }
        m += [
            ("created_at", .string(ISO8601.string(createdAt))), ("expires_at", .string(ISO8601.string(expiresAt))),
            ("roles", .array(roleIDs.map { .string($0) })),
            (
                "invitation_url",
                .string(
                    "https://\(domain)/login?invitation=\(ticketID)&organization=\(org.id)&organization_name=\(org.name)"
                )
            ),
            ("ticket_id", .string(ticketID)),
        ]
        return .object(m)
    }
}

extension Organization {
    var detailsJSON: JSONValue {
        var branding: [(String, JSONValue)] = [("logo_url", logoURL.map { .string($0) } ?? .null)]
        if let primaryColor, let pageBackground {
            branding.append(
                ("colors", .object([("primary", .string(primaryColor)), ("page_background", .string(pageBackground))])))
        }
        return .object([
            ("id", .string(id)), ("name", .string(name)), ("display_name", .string(displayName)),
            ("branding", .object(branding)),
        ])
    }
}
