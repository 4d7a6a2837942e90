import GatewayCore

// Members, memberships, invitations and roles.
extension TenantState {
    static let roleIDs = Schema.array(.string(max: 20, format: .roleID), min: 1, max: 100)

    static func memberIndex(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Int {
        let id = try call.parameter("user_id", .userID)
        guard let index = org.members.firstIndex(where: { $0.userID == id }) else {
            throw TenantError.notFound("The user is not a member of this organization.")
        }
        return index
    }

    static func invitationIndex(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Int {
        let id = try call.parameter("invitation_id", .invitationID)
        guard let index = org.invitations.firstIndex(where: { $0.id == id }) else {
            throw TenantError.notFound("The invitation does not exist.")
        }
        return index
    }

    /// 404 naming the first role id the organization does not have.
    static func checkRolesExist(_ ids: [String], _ org: Organization) throws(TenantError) {
        if let unknown = ids.first(where: { id in !org.roles.contains { $0.id == id } }) {
            throw TenantError.notFound("The role '\(unknown)' does not exist.")
        }
    }

    static func roles(_ ids: [String], _ org: Organization) -> [Role] {
        org.roles.filter { ids.contains($0.id) }
    }

    func listMembers(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Response {
        let query = try ListQuery(call.query, defaultNewestFirst: false)
        let page = try Cursor.page(org.members, seq: \.seq, query: query)
        let items = page.items.map { query.project($0.json(roles: Self.roles($0.roleIDs, org))) }
        return Reply.list("members", items, next: page.next)
    }

    func getMember(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Response {
        let index = try Self.memberIndex(call, org)
        let query = try ListQuery(call.query, defaultNewestFirst: false)
        return Reply.json(200, query.project(org.members[index].json(roles: nil)))
    }

    /// All or nothing: one unknown user id answers 404 and removes no one.
    mutating func deleteMemberships(_ call: OperationCall, _ org: inout Organization) throws(TenantError) -> Response {
        let body = try SchemaValidator.parse(
            call.body,
            .object([("members", .array(.string(max: 1024, format: .userID), min: 1))], required: ["members"]))
        let ids = body["members"]!.arrayValue!.compactMap(\.stringValue)
        if let unknown = ids.first(where: { id in !org.members.contains { $0.userID == id } }) {
            throw TenantError.notFound("The user '\(unknown.prefix(128))' is not a member of this organization.")
        }
        org.members.removeAll { ids.contains($0.userID) }
        return Reply.noContent()
    }

    // MARK: - Invitations

    func listInvitations(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Response {
        let query = try ListQuery(call.query, defaultNewestFirst: true)
        let page = try Cursor.page(org.invitations, seq: \.seq, query: query)
        let items = page.items.map { query.project($0.json(org: org, domain: call.host)) }
        return Reply.list("invitations", items, next: page.next)
    }

    static let invitationSchema = Schema.object(
        [
            (
                "invitees",
                .array(
                    .object([("email", .string(max: 254, format: .email)), ("roles", roleIDs)], required: ["email"]),
                    min: 1, max: 50)
            ),
            ("inviter", .object([("name", .string(max: 300))], required: ["name"])),
            ("identity_provider_id", .string(max: 20, format: .idpID)),
            ("ttl_sec", .integer(min: 0, max: 2_592_000)),
            ("user_store_id", .string()),
        ], required: ["invitees"])

    /// Creates one invitation per invitee and answers with the array. An invitee who already has an invitation gets
    /// a new one and the old one is revoked; an invitee who is already a member is refused with 409.
    mutating func createInvitations(_ call: OperationCall, _ org: inout Organization) throws(TenantError) -> Response {
        let body = try SchemaValidator.parse(call.body, Self.invitationSchema)
        let invitees = body["invitees"]!.arrayValue!
        var emails: [String] = []
        for invitee in invitees {
            let email = invitee["email"]!.stringValue!.lowercased()
            guard !emails.contains(email) else { throw TenantError.duplicate("'\(email)' is invited twice.") }
            guard !org.members.contains(where: { $0.email.lowercased() == email }) else {
                throw TenantError.duplicate("'\(email)' is already a member of this organization.")
            }
            try Self.checkRolesExist(invitee["roles"]?.arrayValue?.compactMap(\.stringValue) ?? [], org)
            emails.append(email)
        }
        let idpID = body["identity_provider_id"]?.stringValue
        if let idpID, !org.identityProviders.contains(where: { $0.id == idpID && $0.accessLevel != .none }) {
            throw TenantError.notFound("The identity provider '\(idpID)' does not exist in this organization.")
        }
        org.invitations.removeAll { emails.contains($0.inviteeEmail.lowercased()) }
        try Self.ensureRoom(org.invitations.count + invitees.count - 1, "invitations")
        let ttl = body["ttl_sec"]?.int64Value ?? 0
        let inviter = body["inviter"]?["name"]?.stringValue ?? call.token.subject ?? "Organization administrator"
        var created: [JSONValue] = []
        for (invitee, email) in zip(invitees, emails) {
            let invitation = Invitation(
                seq: nextSequence(), id: mintID(.invitationID), inviterName: inviter, inviteeEmail: email,
                identityProviderID: idpID, createdAt: call.now, expiresAt: call.now + (ttl == 0 ? 604_800 : ttl),
                roleIDs: invitee["roles"]?.arrayValue?.compactMap(\.stringValue) ?? [], ticketID: random.string(32))
            org.invitations.append(invitation)
            created.append(invitation.json(org: org, domain: call.host))
        }
        return Reply.json(201, .array(created))
    }

    func getInvitation(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Response {
        let index = try Self.invitationIndex(call, org)
        let query = try ListQuery(call.query, defaultNewestFirst: true)
        return Reply.json(200, query.project(org.invitations[index].json(org: org, domain: call.host)))
    }

    mutating func deleteInvitation(_ call: OperationCall, _ org: inout Organization) throws(TenantError) -> Response {
        org.invitations.remove(at: try Self.invitationIndex(call, org))
        return Reply.noContent()
    }

    /// All or nothing, like `delete-memberships`.
    mutating func deleteInvitations(_ call: OperationCall, _ org: inout Organization) throws(TenantError) -> Response {
        let body = try SchemaValidator.parse(
            call.body,
            .object(
                [("invitations", .array(.string(max: 21, format: .invitationID), min: 1))], required: ["invitations"]))
        let ids = body["invitations"]!.arrayValue!.compactMap(\.stringValue)
        if let unknown = ids.first(where: { id in !org.invitations.contains { $0.id == id } }) {
            throw TenantError.notFound("The invitation '\(unknown)' does not exist.")
        }
        org.invitations.removeAll { ids.contains($0.id) }
        return Reply.noContent()
    }

    func listInvitationRoles(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Response {
        let invitation = org.invitations[try Self.invitationIndex(call, org)]
        return Reply.json(200, .object([("roles", .array(Self.roles(invitation.roleIDs, org).map(\.json)))]))
    }

    // MARK: - Roles

    func listRoles(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Response {
        let query = try ListQuery(call.query, defaultNewestFirst: false)
        var roles = org.roles
        if let name = call.query["name"], !name.isEmpty {
            let wanted = name.lowercased()
            roles = roles.filter { $0.name.lowercased().contains(wanted) }
        }
        let page = try Cursor.page(roles, seq: \.seq, query: query)
        return Reply.list("roles", page.items.map(\.json), next: page.next)
    }

    func listMemberRoles(_ call: OperationCall, _ org: Organization) throws(TenantError) -> Response {
        let member = org.members[try Self.memberIndex(call, org)]
        let query = try ListQuery(call.query, defaultNewestFirst: false)
        let page = try Cursor.page(Self.roles(member.roleIDs, org), seq: \.seq, query: query)
        return Reply.list("roles", page.items.map(\.json), next: page.next)
    }

    static func roleChange(_ call: OperationCall, _ org: Organization) throws(TenantError) -> [String] {
        let body = try SchemaValidator.parse(call.body, .object([("role_ids", roleIDs)], required: ["role_ids"]))
        let ids = body["role_ids"]!.arrayValue!.compactMap(\.stringValue)
        try checkRolesExist(ids, org)
        return ids
    }

    /// Assigning a role the member already has is not an error.
    mutating func assignMemberRoles(_ call: OperationCall, _ org: inout Organization) throws(TenantError) -> Response {
        let index = try Self.memberIndex(call, org)
        for id in try Self.roleChange(call, org) where !org.members[index].roleIDs.contains(id) {
            org.members[index].roleIDs.append(id)
        }
        return Reply.noContent()
    }

    /// Serves both `POST members/{user_id}/unassign-roles` and the legacy `DELETE members/{user_id}/roles`, whose
    /// JSON body is the same.
    mutating func unassignMemberRoles(_ call: OperationCall, _ org: inout Organization) throws(TenantError)
        -> Response
    {
        let index = try Self.memberIndex(call, org)
        let ids = try Self.roleChange(call, org)
        org.members[index].roleIDs.removeAll { ids.contains($0) }
        return Reply.noContent()
    }
}
