import GatewayCore

/// The emulator's whole mutable state; only ever touched under `EmulatedTenant`'s mutex.
struct TenantState: Sendable {
    /// Bounds, so a runaway client gets a clear 409 instead of growing memory without end.
    static let maxOrganizations = 1000
    static let maxItemsPerCollection = 1000

    let settings: TenantSettings
    var organizations: [String: Organization] = [:]
    var deletedOrganizations: Set<String> = []
    var random = SplitMix64(state: 0x5EED_0F_AC3E)
    var sequence = 0

    init(settings: TenantSettings) { self.settings = settings }

    mutating func nextSequence() -> Int {
        sequence += 1
        return sequence
    }

    mutating func mintID(_ format: StringFormat) -> String {
        guard case .identifier(let prefix, let length) = format else { return random.string(16) }
        return prefix + random.string(length)
    }

    mutating func perform(_ call: OperationCall) -> Response {
        do {
            return try dispatch(call)
        } catch {
            return error.response
        }
    }

    private mutating func dispatch(_ call: OperationCall) throws(TenantError) -> Response {
        let orgID = call.token.orgID
        guard !deletedOrganizations.contains(orgID) else {
            throw TenantError.notFound("The organization does not exist.")
        }
        if organizations[orgID] == nil {
            guard settings.createsOrganizationsOnDemand, organizations.count < Self.maxOrganizations else {
                throw TenantError.notFound("The organization does not exist.")
            }
            organizations[orgID] = emptyOrganization(id: orgID, now: call.now)
        }
        if call.endpoint.operation == .deleteOrganization {
            organizations[orgID] = nil
            deletedOrganizations.insert(orgID)
            return Reply.noContent()
        }
        // Taken out of the dictionary so the handlers can mutate it and `self` (ids, sequence) without overlapping
        // access, and without copying its arrays.
        var org = organizations.removeValue(forKey: orgID)!
        defer { organizations[orgID] = org }
        settleDomainVerifications(&org, now: call.now)
        return try run(call, &org)
    }

    private mutating func run(_ call: OperationCall, _ org: inout Organization) throws(TenantError) -> Response {
        switch call.endpoint.operation {
        case .getDetails: return Reply.json(200, org.detailsJSON)
        case .updateDetails: return try updateDetails(call, &org)
        case .deleteOrganization: return Reply.noContent()
        case .getConfiguration: return configuration(call)
        case .getIdentityProvidersConfiguration: return identityProvidersConfiguration(call)
        case .listDomains: return try listDomains(call, org)
        case .createDomain: return try createDomain(call, &org)
        case .getDomain: return try getDomain(call, org)
        case .deleteDomain: return try deleteDomain(call, &org)
        case .verifyDomain: return try verifyDomain(call, &org)
        case .listDomainIdentityProviders: return try listDomainIdentityProviders(call, org)
        case .listIdentityProviders: return try listIdentityProviders(call, org)
        case .createIdentityProvider: return try createIdentityProvider(call, &org)
        case .getIdentityProvider: return try getIdentityProvider(call, org)
        case .updateIdentityProvider: return try updateIdentityProvider(call, &org)
        case .deleteIdentityProvider: return try deleteIdentityProvider(call, &org)
        case .refreshIdentityProviderAttributes: return try refreshIdentityProviderAttributes(call, &org)
        case .detachIdentityProvider: return try detachIdentityProvider(call, &org)
        case .addIdentityProviderDomain: return try addIdentityProviderDomain(call, &org)
        case .removeIdentityProviderDomain: return try removeIdentityProviderDomain(call, &org)
        case .getProvisioning: return try getProvisioning(call, org)
        case .createProvisioning: return try createProvisioning(call, &org)
        case .deleteProvisioning: return try deleteProvisioning(call, &org)
        case .refreshProvisioningAttributes: return try refreshProvisioningAttributes(call, &org)
        case .listScimTokens: return try listScimTokens(call, org)
        case .createScimToken: return try createScimToken(call, &org)
        case .deleteScimToken: return try deleteScimToken(call, &org)
        case .listMembers: return try listMembers(call, org)
        case .getMember: return try getMember(call, org)
        case .deleteMemberships: return try deleteMemberships(call, &org)
        case .listInvitations: return try listInvitations(call, org)
        case .createInvitations: return try createInvitations(call, &org)
        case .deleteInvitations: return try deleteInvitations(call, &org)
        case .getInvitation: return try getInvitation(call, org)
        case .deleteInvitation: return try deleteInvitation(call, &org)
        case .listInvitationRoles: return try listInvitationRoles(call, org)
        case .listMemberRoles: return try listMemberRoles(call, org)
        case .assignMemberRoles: return try assignMemberRoles(call, &org)
        case .unassignMemberRolesLegacy, .unassignMemberRoles: return try unassignMemberRoles(call, &org)
        case .listRoles: return try listRoles(call, org)
        }
    }

    static func ensureRoom(_ count: Int, _ what: String) throws(TenantError) {
        guard count < maxItemsPerCollection else {
            throw TenantError.configurationIssue(
                "The organization already has \(maxItemsPerCollection) \(what), the emulator's limit.")
        }
    }

    // MARK: - Organizations and the seed

    private mutating func defaultRoles(now: Int64) -> [Role] {
        [
            ("admin", "Manages the organization's members, domains and identity providers."),
            ("editor", "Edits the organization's content."),
            ("viewer", "Reads the organization's content."),
        ].map { Role(seq: nextSequence(), id: mintID(.roleID), name: $0.0, description: $0.1) }
    }

    private mutating func emptyOrganization(id: String, now: Int64) -> Organization {
        var org = Organization(
            id: id, name: String(id.lowercased().prefix(50)), displayName: id, logoURL: nil, primaryColor: nil,
            pageBackground: nil)
        org.roles = defaultRoles(now: now)
        return org
    }

    /// Creates the seeded Organization; the generator starts from a fixed state, so every run mints the same ids.
    mutating func seed(now: Int64) {
        let orgID = EmulatedTenant.seedOrganizationID
        var org = Organization(
            id: orgID, name: "acme", displayName: "Acme Corporation", logoURL: "https://cdn.acme.example/logo.png",
            primaryColor: "#0059d6", pageBackground: "#ffffff")
        org.roles = defaultRoles(now: now)
        let people: [(String, String)] = [
            ("Ada", "Lovelace"), ("Grace", "Hopper"), ("Alan", "Turing"), ("Barbara", "Liskov"), ("Edsger", "Dijkstra"),
        ]
        for (i, person) in people.enumerated() {
            let created = now - Int64(86_400 * (30 - i))
            org.members.append(
                Member(
                    seq: nextSequence(), userID: "auth0|" + random.string(24, from: SplitMix64.hexDigits),
                    email: "\(person.0.lowercased())@acme.com", name: "\(person.0) \(person.1)",
                    nickname: person.0.lowercased(), givenName: person.0, familyName: person.1, createdAt: created,
                    updatedAt: created + 3600, lastLogin: now - Int64(3600 * (i + 1)),
                    roleIDs: i == 0 ? [org.roles[0].id] : [org.roles[2].id]))
        }
        org.domains = [
            OrgDomain(
                seq: nextSequence(), id: mintID(.domainID), domain: "acme.com", status: .verified,
                verificationTXT: "auth0-domain-verification=" + random.string(32), verificationHost: "",
                verificationRequestedAt: nil),
            OrgDomain(
                seq: nextSequence(), id: mintID(.domainID), domain: "acme-labs.io", status: .pending,
                verificationTXT: "auth0-domain-verification=" + random.string(32), verificationHost: "",
                verificationRequestedAt: nil),
        ]
        for i in org.domains.indices { org.domains[i].verificationHost = "_auth0-challenge." + org.domains[i].domain }
        func idp(
            _ name: String, _ strategy: String, _ level: AccessLevel, _ display: String, domains: [String] = [],
            users: Int, options: [(String, JSONValue)]
        ) -> IdentityProvider {
            IdentityProvider(
                seq: nextSequence(), id: mintID(.idpID), name: name, strategy: strategy, domains: domains,
                displayName: display, showAsButton: true, assignMembershipOnLogin: false, isEnabled: true,
                accessLevel: level, options: options, userCount: users, provisioning: nil)
        }
        org.identityProviders = [
            idp(
                "acme-okta", "okta", .full, "Acme Okta", domains: ["acme.com"], users: 3,
                options: [("domain", "acme.okta.com"), ("client_id", "0oa1acmeokta")]),
            idp(
                "acme-saml", "samlp", .limited, "Acme SAML", users: 1,
                options: [
                    ("signInEndpoint", "https://sso.acme.com/saml"), ("signSAMLRequest", true),
                    ("signatureAlgorithm", "rsa-sha256"), ("digestAlgorithm", "sha256"),
                ]),
            idp(
                "acme-oidc", "oidc", .readonly, "Acme OIDC", users: 0,
                options: [
                    ("type", "back_channel"), ("client_id", "acme-oidc-client"),
                    ("discovery_url", "https://id.acme.com/.well-known/openid-configuration"),
                ]),
            idp(
                "acme-azure", "waad", .none, "Acme Entra ID", users: 2,
                options: [("tenant_domain", "acme.onmicrosoft.com"), ("client_id", "acme-entra-client")]),
            idp(
                "acme-google", "google-apps", .full, "Acme Google", users: 0,
                options: [("domain", "acme.com"), ("client_id", "acme-google-client")]),
        ]
        org.invitations = [
            Invitation(
                seq: nextSequence(), id: mintID(.invitationID), inviterName: "Ada Lovelace",
                inviteeEmail: "katherine@acme.com", identityProviderID: nil, createdAt: now - 86_400,
                expiresAt: now - 86_400 + 604_800, roleIDs: [org.roles[1].id], ticketID: random.string(32)),
            Invitation(
                seq: nextSequence(), id: mintID(.invitationID), inviterName: "Ada Lovelace",
                inviteeEmail: "margaret@acme.com", identityProviderID: org.identityProviders[0].id,
                createdAt: now - 3600, expiresAt: now - 3600 + 604_800, roleIDs: [], ticketID: random.string(32)),
        ]
        organizations[orgID] = org
    }

    /// Applies verifications requested at least `verificationDelay` seconds ago (see `EmulatedTenant`).
    private func settleDomainVerifications(_ org: inout Organization, now: Int64) {
        for i in org.domains.indices {
            guard let requested = org.domains[i].verificationRequestedAt, now >= requested + settings.verificationDelay
            else { continue }
            org.domains[i].status = org.domains[i].domain.hasSuffix(".invalid") ? .failed : .verified
            org.domains[i].verificationRequestedAt = nil
        }
    }
}
