import GatewayCore

// Identity providers, their domains, provisioning and SCIM tokens.
extension TenantState {
    /// Option members that are credentials: accepted on requests, never stored, never echoed.
    static let secretOptions: Set<String> = ["client_secret", "signingCert"]

    static let signatureAlgorithms = ["rsa-sha256", "rsa-sha1"]
    static let digestAlgorithms = ["sha256", "sha1"]
    static let idpInitiated = Schema.object([
        ("enabled", .boolean), ("client_id", .string()), ("client_protocol", .string()),
        ("client_authorizequery", .string(max: 2048)),
    ])
    static let iconURL = Schema.string(max: 2048, format: .url)
    static let secret = Schema.string(max: 2048)

    /// The `options` schema of each strategy (the description's `Idp<Strategy>OptionsRequest`).
    static func optionsSchema(_ strategy: String) -> Schema {
        switch strategy {
        case "okta", "google-apps":
            return .object(
                [
                    ("domain", .string(max: 253, format: .domainName)), ("client_id", .string()),
                    ("client_secret", secret), ("icon_url", iconURL),
                ], required: ["domain", "client_id", "client_secret"])
        case "waad":
            return .object(
                [
                    ("tenant_domain", .string(max: 253, format: .domainName)), ("client_id", .string()),
                    ("client_secret", secret), ("icon_url", iconURL),
                ], required: ["tenant_domain", "client_id", "client_secret"])
        case "oidc":
            return .object(
                [
                    ("type", .string(oneOf: ["front_channel", "back_channel"])), ("client_id", .string()),
                    ("client_secret", secret), ("discovery_url", .string(max: 2048, format: .url)),
                    ("icon_url", iconURL),
                ], required: ["type", "client_id", "discovery_url"])
        case "adfs":
            return .object([
                ("adfs_server", .string(max: 2048, format: .url)), ("fedMetadataXml", .string(max: 100_000)),
                ("icon_url", iconURL),
            ])
        case "samlp":
            return .object([
                ("metadataUrl", .string(max: 2048, format: .url)), ("signInEndpoint", .string(max: 2048, format: .url)),
                ("cert", .string(max: 20_000)), ("signSAMLRequest", .boolean),
                ("signatureAlgorithm", .string(oneOf: signatureAlgorithms)),
                ("digestAlgorithm", .string(oneOf: digestAlgorithms)),
                (
                    "protocolBinding",
                    .string(oneOf: [
                        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
                        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
                    ])
                ),
                ("bindingMethod", .string()), ("idpInitiated", idpInitiated), ("icon_url", iconURL),
            ])
        case "pingfederate":
            return .object(
                [
                    ("signatureAlgorithm", .string(oneOf: signatureAlgorithms)),
                    ("digestAlgorithm", .string(oneOf: digestAlgorithms)), ("signSAMLRequest", .boolean),
                    ("pingFederateBaseUrl", .string(max: 2048, format: .url)), ("signingCert", .string(max: 20_000)),
                    ("idpInitiated", idpInitiated), ("icon_url", iconURL),
                ],
                required: [
                    "signatureAlgorithm", "digestAlgorithm", "signSAMLRequest", "pingFederateBaseUrl", "signingCert",
                ])
        default:
            // `ad` connects through an AD/LDAP connector and takes no options here.
            return .object([])
        }
    }

    /// The one-of rules a schema cannot say: ADFS needs a server or metadata, SAML a metadata URL or sign-in endpoint.
    static func checkOptionAlternatives(_ strategy: String, _ options: JSONValue?) throws(TenantError) {
        let pairs: [String: (String, String)] = [
            "adfs": ("adfs_server", "fedMetadataXml"), "samlp": ("metadataUrl", "signInEndpoint"),
        ]
        guard let (a, b) = pairs[strategy], let options, options[a] == nil, options[b] == nil else { return }
        throw TenantError.validation(
            "The request is invalid.",
            errors: [.init(detail: "'options' needs '\(a)' or '\(b)'.", field: "options", pointer: "/options")])
    }

    static func createSchema(strategy: String?) -> Schema {
        let options = strategy.flatMap { IdentityProviderStrategies.all.contains($0) ? optionsSchema($0) : nil }
        return .object(
            [
                ("name", .string(max: 128, format: .connectionName)),
                ("strategy", .string(oneOf: IdentityProviderStrategies.all)),
                ("options", options ?? .anyObject),
                ("domains", .array(.string(max: 253, format: .domainName), max: 100)),
                ("display_name", .string(max: 128)), ("show_as_button", .boolean),
                ("assign_membership_on_login", .boolean), ("is_enabled", .boolean),
                ("access_level", .string(oneOf: ["none", "readonly", "limited", "full"])),
            ], required: ["name", "strategy", "options"])
    }

    static func updateSchema(strategy: String) -> Schema {
        .object([
            ("display_name", .string(max: 128)), ("show_as_button", .boolean),
            ("assign_membership_on_login", .boolean), ("is_enabled", .boolean),
            ("options", optionsSchema(strategy)), ("domains", .array(.string(max: 253, format: .domainName), max: 100)),
        ])
    }

    static func storedOptions(_ options: JSONValue?) -> [(String, JSONValue)] {
        (options?.objectValue ?? []).filter { !secretOptions.contains($0.0) }
    }

    /// The index of a provider the API may see; providers with access level `none` do not exist for it.
    static func idpIndex(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Int {
        let id = try call.parameter("idp_id", .idpID)
        guard let index = org.identityProviders.firstIndex(where: { $0.id == id && $0.accessLevel != .none }) else {
            throw TenantError.notFound("The identity provider does not exist in this organization.")
        }
        return index
    }

    /// 403 unless the provider's access level is `full`.
    static func requireFull(_ idp: IdentityProvider, _ action: String) throws(TenantError) {
        guard idp.accessLevel == .full else {
            throw TenantError.forbidden(
                "The identity provider '\(idp.name)' has access_level '\(idp.accessLevel.rawValue)': "
                    + "\(action) needs access_level 'full'.")
        }
    }

    func listIdentityProviders(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Response {
        let enabled = try call.query.boolean("is_enabled")
        let items = org.identityProviders.filter {
            $0.accessLevel != .none && (enabled == nil || $0.isEnabled == enabled)
        }
        return Reply.json(200, .object([("identity_providers", .array(items.map(\.json)))]))
    }

    mutating func createIdentityProvider(_ call: OperationCall, _ org: inout Organization) throws(TenantError)
        -> Response
    {
        let raw = try SchemaValidator.parse(call.body, .anyObject)
        let strategy = raw["strategy"]?.stringValue
        let body = try SchemaValidator.parse(call.body, Self.createSchema(strategy: strategy))
        let name = body["name"]!.stringValue!
        let chosen = strategy!
        try Self.checkOptionAlternatives(chosen, body["options"])
        let client = settings.client(call.token)
        guard client.allowedStrategies.contains(chosen) else {
            throw TenantError.configurationIssue(
                "The strategy '\(chosen)' is not in this application's allowed_strategies.")
        }
        guard !org.identityProviders.contains(where: { $0.name == name }) else {
            throw TenantError.duplicate("An identity provider named '\(name)' already exists.")
        }
        try Self.ensureRoom(org.identityProviders.count, "identity providers")
        let idp = IdentityProvider(
            seq: nextSequence(), id: mintID(.idpID), name: name, strategy: chosen,
            domains: (body["domains"]?.arrayValue ?? []).compactMap { $0.stringValue?.lowercased() },
            displayName: body["display_name"]?.stringValue, showAsButton: body["show_as_button"]?.boolValue ?? true,
            assignMembershipOnLogin: body["assign_membership_on_login"]?.boolValue ?? false,
            isEnabled: body["is_enabled"]?.boolValue ?? true, accessLevel: .full,
            options: Self.storedOptions(body["options"]), userCount: 0, provisioning: nil)
        org.identityProviders.append(idp)
        return Reply.json(201, idp.json)
    }

    func getIdentityProvider(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Response {
        Reply.json(200, org.identityProviders[try Self.idpIndex(call, org)].json)
    }

    /// Access levels decide what a PATCH may change: `readonly` nothing, `limited` only `show_as_button`,
    /// `is_enabled` and `assign_membership_on_login`, `full` everything. A refused change is a 403 that names it.
    mutating func updateIdentityProvider(_ call: OperationCall, _ org: inout Organization) throws(TenantError)
        -> Response
    {
        let index = try Self.idpIndex(call, org)
        var idp = org.identityProviders[index]
        guard idp.accessLevel != .readonly else {
            throw TenantError.forbidden(
                "The identity provider '\(idp.name)' has access_level 'readonly': it cannot be changed.")
        }
        let body = try SchemaValidator.parse(call.body, Self.updateSchema(strategy: idp.strategy))
        if idp.accessLevel == .limited {
            // The reference: limited modifications, "specifically the `show_as_button` and `is_enabled` attributes".
            let refused = ["display_name", "options", "domains", "assign_membership_on_login"].filter {
                body[$0] != nil
            }
            if !refused.isEmpty {
                throw TenantError.forbidden(
                    "The identity provider '\(idp.name)' has access_level 'limited': "
                        + "\(refused.joined(separator: ", ")) cannot be changed.")
            }
        }
        try Self.checkOptionAlternatives(idp.strategy, body["options"])
        if let v = body["display_name"]?.stringValue { idp.displayName = v }
        if let v = body["show_as_button"]?.boolValue { idp.showAsButton = v }
        if let v = body["assign_membership_on_login"]?.boolValue { idp.assignMembershipOnLogin = v }
        if let v = body["is_enabled"]?.boolValue { idp.isEnabled = v }
        if let v = body["options"] { idp.options = Self.storedOptions(v) }
        if let v = body["domains"]?.arrayValue { idp.domains = v.compactMap { $0.stringValue?.lowercased() } }
        org.identityProviders[index] = idp
        return Reply.json(200, idp.json)
    }

    mutating func deleteIdentityProvider(_ call: OperationCall, _ org: inout Organization) throws(TenantError)
        -> Response
    {
        let index = try Self.idpIndex(call, org)
        let idp = org.identityProviders[index]
        try Self.requireFull(idp, "deleting it")
        if settings.client(call.token).connectionDeletionBehavior == .allowIfEmpty && idp.userCount > 0 {
            throw TenantError.configurationIssue(
                "The identity provider '\(idp.name)' still has \(idp.userCount) user(s) and this application's "
                    + "connection_deletion_behavior is allow_if_empty.")
        }
        org.identityProviders.remove(at: index)
        return Reply.noContent()
    }

    mutating func refreshIdentityProviderAttributes(_ call: OperationCall, _ org: inout Organization)
        throws(TenantError) -> Response
    {
        let index = try Self.idpIndex(call, org)
        try Self.requireFull(org.identityProviders[index], "refreshing its attributes")
        _ = try SchemaValidator.parse(call.body, .anyObject)
        return Reply.json(200, org.identityProviders[index].json)
    }

    mutating func detachIdentityProvider(_ call: OperationCall, _ org: inout Organization) throws(TenantError)
        -> Response
    {
        let index = try Self.idpIndex(call, org)
        try Self.requireFull(org.identityProviders[index], "detaching it")
        _ = try SchemaValidator.parse(call.body, .object([]))
        org.identityProviders.remove(at: index)
        return Reply.noContent()
    }

    mutating func addIdentityProviderDomain(_ call: OperationCall, _ org: inout Organization) throws(TenantError)
        -> Response
    {
        let index = try Self.idpIndex(call, org)
        try Self.requireFull(org.identityProviders[index], "changing its domains")
        let body = try SchemaValidator.parse(
            call.body, .object([("domain", .string(max: 253, format: .domainName))], required: ["domain"]))
        let name = body["domain"]!.stringValue!.lowercased()
        guard let domain = org.domains.first(where: { $0.domain == name }) else {
            throw TenantError.notFound("The domain '\(name)' does not exist in this organization.")
        }
        guard domain.status == .verified else {
            throw TenantError.configurationIssue("The domain '\(name)' must be verified before it is linked.")
        }
        guard !org.identityProviders[index].domains.contains(name) else {
            throw TenantError.duplicate("The domain '\(name)' is already linked to this identity provider.")
        }
        org.identityProviders[index].domains.append(name)
        return Reply.json(201, .object([("domain", .string(name))]))
    }

    mutating func removeIdentityProviderDomain(_ call: OperationCall, _ org: inout Organization) throws(TenantError)
        -> Response
    {
        let index = try Self.idpIndex(call, org)
        let name = try call.parameter("domain", .domainName).lowercased()
        try Self.requireFull(org.identityProviders[index], "changing its domains")
        guard let at = org.identityProviders[index].domains.firstIndex(of: name) else {
            throw TenantError.notFound("The domain '\(name)' is not linked to this identity provider.")
        }
        org.identityProviders[index].domains.remove(at: at)
        return Reply.noContent()
    }

    // MARK: - Provisioning and SCIM tokens

    static func provisioning(_ idp: IdentityProvider) throws(TenantError) -> Provisioning {
        guard let p = idp.provisioning else {
            throw TenantError.notFound("The identity provider '\(idp.name)' has no provisioning configuration.")
        }
        return p
    }

    func getProvisioning(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Response {
        let idp = org.identityProviders[try Self.idpIndex(call, org)]
        return Reply.json(200, idp.provisioningJSON(try Self.provisioning(idp)))
    }

    mutating func createProvisioning(_ call: OperationCall, _ org: inout Organization) throws(TenantError) -> Response {
        let index = try Self.idpIndex(call, org)
        try Self.requireFull(org.identityProviders[index], "configuring provisioning")
        _ = try SchemaValidator.parse(call.body, .object([]))
        guard org.identityProviders[index].provisioning == nil else {
            throw TenantError.duplicate("Provisioning is already configured for this identity provider.")
        }
        let p = Provisioning(createdAt: call.now, updatedOn: call.now, scimTokens: [])
        org.identityProviders[index].provisioning = p
        return Reply.json(201, org.identityProviders[index].provisioningJSON(p))
    }

    mutating func deleteProvisioning(_ call: OperationCall, _ org: inout Organization) throws(TenantError) -> Response {
        let index = try Self.idpIndex(call, org)
        try Self.requireFull(org.identityProviders[index], "removing provisioning")
        _ = try Self.provisioning(org.identityProviders[index])
        org.identityProviders[index].provisioning = nil
        return Reply.noContent()
    }

    mutating func refreshProvisioningAttributes(_ call: OperationCall, _ org: inout Organization)
        throws(TenantError) -> Response
    {
        let index = try Self.idpIndex(call, org)
        try Self.requireFull(org.identityProviders[index], "refreshing provisioning attributes")
        var p = try Self.provisioning(org.identityProviders[index])
        _ = try SchemaValidator.parse(call.body, .anyObject)
        p.updatedOn = call.now
        org.identityProviders[index].provisioning = p
        return Reply.json(200, org.identityProviders[index].provisioningJSON(p))
    }

    func listScimTokens(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Response {
        let idp = org.identityProviders[try Self.idpIndex(call, org)]
        let p = try Self.provisioning(idp)
        return Reply.json(200, .object([("scim_tokens", .array(p.scimTokens.map(\.json)))]))
    }

    /// The secret `token` appears in this response only; the emulator keeps no copy of it.
    mutating func createScimToken(_ call: OperationCall, _ org: inout Organization) throws(TenantError) -> Response {
        let index = try Self.idpIndex(call, org)
        try Self.requireFull(org.identityProviders[index], "creating SCIM tokens")
        var p = try Self.provisioning(org.identityProviders[index])
        let body = try SchemaValidator.parse(
            call.body, .object([("token_lifetime", .integer(min: 900, max: 315_360_000))]))
        try Self.ensureRoom(p.scimTokens.count, "SCIM tokens")
        let token = ScimToken(
            seq: nextSequence(), id: mintID(.scimTokenID), scopes: ScimToken.defaultScopes, createdAt: call.now,
            validUntil: body["token_lifetime"]?.int64Value.map { call.now + $0 })
        p.scimTokens.append(token)
        org.identityProviders[index].provisioning = p
        guard case .object(var members) = token.json else { return Reply.json(201, token.json) }
        members.insert(("token", .string("scim_" + random.string(48))), at: 1)
        return Reply.json(201, .object(members))
    }

    mutating func deleteScimToken(_ call: OperationCall, _ org: inout Organization) throws(TenantError) -> Response {
        let index = try Self.idpIndex(call, org)
        try Self.requireFull(org.identityProviders[index], "revoking SCIM tokens")
        var p = try Self.provisioning(org.identityProviders[index])
        let id = try call.parameter("idp_scim_token_id", .scimTokenID)
        guard let at = p.scimTokens.firstIndex(where: { $0.id == id }) else {
            throw TenantError.notFound("The SCIM token does not exist.")
        }
        p.scimTokens.remove(at: at)
        org.identityProviders[index].provisioning = p
        return Reply.noContent()
    }
}
