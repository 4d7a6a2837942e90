import GatewayCore

// Organization details, configuration and domains.
extension TenantState {
    static let detailsSchema = Schema.object([
        ("id", .string(format: .identifier(prefix: "org_", length: 16))),
        ("name", .string(max: 50, format: .organizationName)),
        ("display_name", .string(max: 255)),
        (
            "branding",
            .object([
                ("logo_url", .nullable(.string(max: 2048, format: .url))),
                (
                    "colors",
                    .object(
                        [
                            ("primary", .string(max: 7, format: .hexColor)),
                            ("page_background", .string(max: 7, format: .hexColor)),
                        ], required: ["primary", "page_background"])
                ),
            ])
        ),
    ])

    mutating func updateDetails(_ call: OperationCall, _ org: inout Organization) throws(TenantError) -> Response {
        let body = try SchemaValidator.parse(call.body, Self.detailsSchema)
        if let id = body["id"]?.stringValue, id != org.id {
            throw TenantError.validation(
                "The request is invalid.",
                errors: [.init(detail: "'id' must be the organization's own id.", field: "id", pointer: "/id")])
        }
        if let name = body["name"]?.stringValue { org.name = name }
        if let displayName = body["display_name"]?.stringValue { org.displayName = displayName }
        if let branding = body["branding"] {
            if let logo = branding["logo_url"] { org.logoURL = logo.stringValue }
            if let colors = branding["colors"] {
                org.primaryColor = colors["primary"]?.stringValue
                org.pageBackground = colors["page_background"]?.stringValue
            }
        }
        return Reply.json(200, org.detailsJSON)
    }

    func configuration(_ call: OperationCall) -> Response {
        let client = settings.client(call.token)
        return Reply.json(
            200,
            .object([
                ("allowed_strategies", .array(client.allowedStrategies.map { .string($0) })),
                ("connection_deletion_behavior", .string(client.connectionDeletionBehavior.rawValue)),
            ]))
    }

    func identityProvidersConfiguration(_ call: OperationCall) -> Response {
        let client = settings.client(call.token)
        let strategies: [(String, JSONValue)] = client.allowedStrategies.filter { $0 != "ad" }.map { strategy in
            (
                strategy == "google-apps" ? "googleapps" : strategy,
                .object([
                    ("enabled_features", ["provisioning", "universal_logout"]), ("provisioning_methods", ["scim"]),
                ])
            )
        }
        return Reply.json(
            200,
            .object([
                (
                    "organization",
                    .object([("can_set_show_as_button", true), ("can_set_assign_membership_on_login", true)])
                ),
                ("strategies", .object(strategies)),
            ]))
    }

    // MARK: - Domains

    static func domainIndex(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Int {
        let id = try call.parameter("domain_id", .domainID)
        guard let index = org.domains.firstIndex(where: { $0.id == id }) else {
            throw TenantError.notFound("The domain does not exist in this organization.")
        }
        return index
    }

    func listDomains(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Response {
        let query = try ListQuery(call.query, defaultNewestFirst: false)
        let page = try Cursor.page(org.domains, seq: \.seq, query: query)
        return Reply.list("organization_domains", page.items.map { $0.json(orgID: org.id) }, next: page.next)
    }

    mutating func createDomain(_ call: OperationCall, _ org: inout Organization) throws(TenantError) -> Response {
        let body = try SchemaValidator.parse(
            call.body, .object([("domain", .string(max: 253, format: .domainName))], required: ["domain"]))
        let name = body["domain"]!.stringValue!.lowercased()
        guard !org.domains.contains(where: { $0.domain == name }) else {
            throw TenantError.duplicate("The domain '\(name)' already exists in this organization.")
        }
        try Self.ensureRoom(org.domains.count, "domains")
        let domain = OrgDomain(
            seq: nextSequence(), id: mintID(.domainID), domain: name, status: .pending,
            verificationTXT: "auth0-domain-verification=" + random.string(32),
            verificationHost: "_auth0-challenge." + name, verificationRequestedAt: nil)
        org.domains.append(domain)
        return Reply.json(201, domain.json(orgID: org.id))
    }

    func getDomain(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Response {
        let index = try Self.domainIndex(call, org)
        return Reply.json(200, org.domains[index].json(orgID: org.id))
    }

    mutating func deleteDomain(_ call: OperationCall, _ org: inout Organization) throws(TenantError) -> Response {
        let index = try Self.domainIndex(call, org)
        let removed = org.domains.remove(at: index)
        for i in org.identityProviders.indices { org.identityProviders[i].domains.removeAll { $0 == removed.domain } }
        return Reply.noContent()
    }

    mutating func verifyDomain(_ call: OperationCall, _ org: inout Organization) throws(TenantError) -> Response {
        let index = try Self.domainIndex(call, org)
        _ = try SchemaValidator.parse(call.body, .object([]))
        if org.domains[index].status != .verified {
            org.domains[index].status = .pending
            org.domains[index].verificationRequestedAt = org.domains[index].verificationRequestedAt ?? call.now
        }
        return Reply.json(202, org.domains[index].json(orgID: org.id))
    }

    func listDomainIdentityProviders(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Response {
        let index = try Self.domainIndex(call, org)
        let name = org.domains[index].domain
        let items = org.identityProviders.filter { $0.accessLevel != .none && $0.domains.contains(name) }
        return Reply.json(200, .object([("identity_providers", .array(items.map(\.domainSummaryJSON)))]))
    }
}
