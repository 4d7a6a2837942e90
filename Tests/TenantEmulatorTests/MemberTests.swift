import GatewayCore
import Testing

@testable import TenantEmulator

@Suite("Emulated members, roles and invitations")
struct MemberTests {
    static let sdkDefaults = "include_fields=true&take=50&include_totals=false&sort=created_at%3A-1"

    /// Walks a paginated list with `take`, returning the ids of every page in order.
    func walk(_ h: Harness, _ path: String, _ key: String, take: Int, id: String) -> [[String]] {
        var pages: [[String]] = []
        var cursor: String?
        repeat {
            let separator = path.contains("?") ? "&" : "?"
            let answer = h.call("GET", "\(path)\(separator)take=\(take)" + (cursor.map { "&from=\($0)" } ?? ""))
            #expect(answer.status == 200)
            pages.append((answer.json[key]?.arrayValue ?? []).compactMap { $0[id]?.stringValue })
            cursor = answer.json["next"]?.stringValue
        } while cursor != nil && pages.count < 20
        return pages
    }

    @Test("members list with the SDK's default query, auth0| ids, and their roles")
    func listMembers() {
        let answer = Harness().call("GET", "/my-org/members?\(Self.sdkDefaults)")
        #expect(answer.status == 200)
        let members = answer.json["members"]?.arrayValue ?? []
        #expect(members.count == 5)
        #expect(members.allSatisfy { $0["user_id"]?.stringValue?.hasPrefix("auth0|") == true })
        let ada = members.first { $0["email"] == "ada@acme.com" }
        #expect(ada?["roles"]?.arrayValue?.first?["name"] == "admin")
        #expect(members.last?["email"] == "ada@acme.com")
        #expect(answer.json["next"] == nil)
    }

    @Test("the member list pages two at a time through every member exactly once")
    func membersPagination() {
        let h = Harness()
        let pages = walk(h, "/my-org/members", "members", take: 2, id: "user_id")
        #expect(pages.map(\.count) == [2, 2, 1])
        #expect(Set(pages.flatMap { $0 }).count == 5)
        let one = walk(h, "/my-org/v1/members", "members", take: 100, id: "user_id")
        #expect(one.count == 1)
    }

    @Test("a deletion between pages neither repeats nor skips a member")
    func stableCursor() {
        let h = Harness()
        let first = h.call("GET", "/my-org/members?take=2")
        let ids = (first.json["members"]?.arrayValue ?? []).compactMap { $0["user_id"]?.stringValue }
        h.call("POST", "/my-org/delete-memberships", #"{"members":["\#(ids[0])"]}"#)
        let next = first.json["next"]?.stringValue ?? ""
        let second = h.call("GET", "/my-org/members?take=10&from=\(next)").json["members"]?.arrayValue ?? []
        #expect(second.count == 3)
        #expect(!second.contains { ids.contains($0["user_id"]?.stringValue ?? "") })
    }

    @Test("get a member by a user id with '|', raw or encoded; fields filter; 404 for strangers")
    func getMember() {
        let h = Harness()
        let id = h.member("grace@acme.com")
        for path in ["/my-org/members/\(id)", "/my-org/members/\(id.replacing("|", with: "%7C"))"] {
            let answer = h.call("GET", path)
            #expect(answer.status == 200)
            #expect(answer.json["user_id"]?.stringValue == id)
            #expect(answer.json["email"] == "grace@acme.com")
            #expect(answer.json["roles"] == nil)
        }
        #expect(
            h.call("GET", "/my-org/members/\(id)?fields=user_id,email&include_fields=true").json.objectValue?
                .map(\.0) == ["user_id", "email"])
        #expect(h.call("GET", "/my-org/members/\(id)?fields=email&include_fields=false").json["email"] == nil)
        h.call("GET", "/my-org/members/auth0|nobody").expectError(404, "A0E-404-0002")
        h.call("GET", "/my-org/members/auth0|" + String(repeating: "9", count: 1018)).expectError(404, "A0E-404-0002")
        h.call("GET", "/my-org/members/auth0|" + String(repeating: "9", count: 1019)).expectError(400, "A0E-400-0003")
    }

    @Test("delete-memberships removes members all-or-nothing")
    func deleteMemberships() {
        let h = Harness()
        let a = h.member("alan@acme.com")
        let b = h.member("barbara@acme.com")
        h.call("POST", "/my-org/delete-memberships", #"{"members":["\#(a)","auth0|nobody"]}"#)
            .expectError(404, "A0E-404-0002")
        #expect(h.call("GET", "/my-org/members/\(a)").status == 200)
        let answer = h.call("POST", "/my-org/delete-memberships", #"{"members":["\#(a)","\#(b)"]}"#)
        #expect(answer.status == 204)
        h.call("GET", "/my-org/members/\(a)").expectError(404, "A0E-404-0002")
        h.call("POST", "/my-org/delete-memberships", #"{"members":[]}"#).expectValidation(pointer: "/members")
        h.call("POST", "/my-org/delete-memberships", "{}").expectValidation(pointer: "/members")
        h.call("POST", "/my-org/delete-memberships", #"{"members":[1]}"#).expectValidation(pointer: "/members/0")
    }

    @Test("roles list pages and filters by name")
    func roles() {
        let h = Harness()
        let all = h.call("GET", "/my-org/roles?\(Self.sdkDefaults)")
        #expect(all.json["roles"]?.arrayValue?.count == 3)
        let role = all.json["roles"]?.arrayValue?.first
        #expect(StringFormat.roleID.matches(role?["id"]?.stringValue ?? ""))
        #expect(role?["description"]?.stringValue?.isEmpty == false)
        #expect(walk(h, "/my-org/roles", "roles", take: 1, id: "id").map(\.count) == [1, 1, 1])
        #expect(
            h.call("GET", "/my-org/roles?name=EDIT").json["roles"]?.arrayValue?.compactMap { $0["name"] } == [
                "editor"
            ])
    }

    @Test("member roles: assign with POST, unassign with POST unassign-roles or DELETE with a JSON body")
    func memberRoles() {
        let h = Harness()
        let user = h.member("alan@acme.com")
        let path = "/my-org/members/\(user)/roles"
        let (admin, editor) = (h.role("admin"), h.role("editor"))
        func names() -> [String] {
            (h.call("GET", path).json["roles"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        }
        #expect(names() == ["viewer"])
        #expect(h.call("POST", path, #"{"role_ids":["\#(admin)","\#(editor)"]}"#).status == 204)
        #expect(h.call("POST", path, #"{"role_ids":["\#(admin)"]}"#).status == 204)
        #expect(names() == ["admin", "editor", "viewer"])
        let legacy = h.call("DELETE", path, #"{"role_ids":["\#(admin)"]}"#)
        #expect(legacy.status == 204)
        #expect(legacy.body.isEmpty)
        #expect(names() == ["editor", "viewer"])
        #expect(
            h.call("POST", "/my-org/v1/members/\(user)/unassign-roles", #"{"role_ids":["\#(editor)"]}"#).status == 204)
        #expect(names() == ["viewer"])
        #expect(walk(h, path, "roles", take: 1, id: "id").count == 1)
    }

    @Test("member role changes: 404 for unknown members and roles, 400 for bad bodies")
    func memberRoleErrors() {
        let h = Harness()
        let path = "/my-org/members/\(h.member("alan@acme.com"))"
        for (method, suffix) in [("POST", "/roles"), ("DELETE", "/roles"), ("POST", "/unassign-roles")] {
            h.call(method, "/my-org/members/auth0|nobody\(suffix)", #"{"role_ids":["\#(h.role("admin"))"]}"#)
                .expectError(404, "A0E-404-0002")
            h.call(method, "\(path)\(suffix)", #"{"role_ids":["rol_ZZZZZZZZZZZZZZZZ"]}"#).expectError(
                404, "A0E-404-0002")
            h.call(method, "\(path)\(suffix)", #"{"role_ids":[]}"#).expectValidation(pointer: "/role_ids")
            h.call(method, "\(path)\(suffix)", #"{"role_ids":["admin"]}"#).expectValidation(pointer: "/role_ids/0")
            h.call(method, "\(path)\(suffix)", "").expectValidation(pointer: "/role_ids")
            h.call(method, "\(path)\(suffix)", #"{"role_ids":"#).expectError(400, "A0E-400-0001")
        }
        h.call("GET", "/my-org/members/auth0|nobody/roles").expectError(404, "A0E-404-0002")
    }

    @Test("creating invitations answers an array, one per invitee, with the documented fields")
    func createInvitations() {
        let h = Harness()
        let editor = h.role("editor")
        let answer = h.call(
            "POST", "/my-org/member-invitations",
            #"{"invitees":[{"email":"new1@example.com","roles":["\#(editor)"]},{"email":"new2@example.com"}],"inviter":{"name":"Ada"},"ttl_sec":3600}"#
        )
        #expect(answer.status == 201)
        let invitations = answer.json.arrayValue ?? []
        #expect(invitations.count == 2)
        let first = invitations.first ?? .null
        #expect(StringFormat.invitationID.matches(first["id"]?.stringValue ?? ""))
        #expect(first["organization_id"]?.stringValue == Harness.seed)
        #expect(first["invitee"] == ["email": "new1@example.com"])
        #expect(first["inviter"] == ["name": "Ada"])
        #expect(first["roles"] == .array([.string(editor)]))
        #expect(first["invitation_url"]?.stringValue?.hasPrefix("https://login.acme.test/") == true)
        for key in ["created_at", "expires_at", "ticket_id"] { #expect(first[key] != nil) }
        let roles = h.call("GET", "/my-org/member-invitations/\(first["id"]?.stringValue ?? "")/roles")
        #expect(roles.status == 200)
        #expect(roles.json["roles"]?.arrayValue?.compactMap { $0["name"] } == ["editor"])
    }

    @Test("invitation create errors: members are 409, unknown roles and providers 404, bad bodies 400")
    func createInvitationErrors() {
        let h = Harness()
        let path = "/my-org/member-invitations"
        h.call("POST", path, #"{"invitees":[{"email":"ada@acme.com"}]}"#).expectError(409, "A0E-409-0003")
        h.call("POST", path, #"{"invitees":[{"email":"x@y.com","roles":["rol_ZZZZZZZZZZZZZZZZ"]}]}"#)
            .expectError(404, "A0E-404-0002")
        h.call("POST", path, #"{"invitees":[{"email":"x@y.com"}],"identity_provider_id":"con_ZZZZZZZZZZZZZZZZ"}"#)
            .expectError(404, "A0E-404-0002")
        for (body, pointer) in [
            ("{}", "/invitees"), (#"{"invitees":[]}"#, "/invitees"), (#"{"invitees":[{}]}"#, "/invitees/0/email"),
            (#"{"invitees":[{"email":"not-an-email"}]}"#, "/invitees/0/email"),
            (#"{"invitees":[{"email":"a@b.com"}],"ttl_sec":2592001}"#, "/ttl_sec"),
            (#"{"invitees":[{"email":"a@b.com","name":"A"}]}"#, "/invitees/0/name"),
        ] {
            h.call("POST", path, body).expectValidation(pointer: pointer)
        }
    }

    @Test("re-inviting replaces the outstanding invitation")
    func reinvite() {
        let h = Harness()
        let before = h.call("GET", "/my-org/member-invitations").json["invitations"]?.arrayValue?.count
        let new = h.call("POST", "/my-org/member-invitations", #"{"invitees":[{"email":"katherine@acme.com"}]}"#)
        #expect(new.status == 201)
        let after = h.call("GET", "/my-org/member-invitations").json["invitations"]?.arrayValue ?? []
        #expect(after.count == before)
        #expect(after.first?["id"] == new.json.arrayValue?.first?["id"])
    }

    @Test("invitations list newest first by default, oldest first with sort=created_at:1, and page")
    func listInvitations() {
        let h = Harness()
        for i in 0..<3 {
            h.clock.advance(seconds: 10)
            h.call("POST", "/my-org/member-invitations", #"{"invitees":[{"email":"p\#(i)@example.com"}]}"#)
        }
        func emails(_ query: String) -> [String] {
            (h.call("GET", "/my-org/member-invitations?\(query)").json["invitations"]?.arrayValue ?? [])
                .compactMap { $0["invitee"]?["email"]?.stringValue }
        }
        #expect(emails(Self.sdkDefaults).prefix(3) == ["p2@example.com", "p1@example.com", "p0@example.com"])
        #expect(emails("sort=created_at%3A1").suffix(2) == ["p1@example.com", "p2@example.com"])
        let pages = walk(h, "/my-org/member-invitations", "invitations", take: 2, id: "id")
        #expect(pages.map(\.count) == [2, 2, 1])
        #expect(emails("fields=id&include_fields=true").isEmpty)
    }

    @Test("get and delete invitations, singly (legacy) and in batches, with their 404s")
    func invitationLifecycle() {
        let h = Harness()
        let ids = (h.call("GET", "/my-org/member-invitations").json["invitations"]?.arrayValue ?? [])
            .compactMap { $0["id"]?.stringValue }
        #expect(ids.count == 2)
        #expect(h.call("GET", "/my-org/member-invitations/\(ids[0])").json["id"]?.stringValue == ids[0])
        #expect(h.call("DELETE", "/my-org/member-invitations/\(ids[0])").status == 204)
        for (method, suffix) in [("GET", ""), ("DELETE", ""), ("GET", "/roles")] {
            h.call(method, "/my-org/member-invitations/\(ids[0])\(suffix)").expectError(404, "A0E-404-0002")
        }
        h.call("GET", "/my-org/member-invitations/inv_1").expectError(400, "A0E-400-0003")
        let batch = "/my-org/delete-member-invitations"
        h.call("POST", batch, #"{"invitations":["\#(ids[0])","\#(ids[1])"]}"#).expectError(404, "A0E-404-0002")
        #expect(h.call("GET", "/my-org/member-invitations/\(ids[1])").status == 200)
        #expect(h.call("POST", batch, #"{"invitations":["\#(ids[1])"]}"#).status == 204)
        #expect(h.call("GET", "/my-org/member-invitations").json["invitations"] == [])
        h.call("POST", batch, #"{"invitations":[]}"#).expectValidation(pointer: "/invitations")
        h.call("POST", batch, #"{"invitations":["x"]}"#).expectValidation(pointer: "/invitations/0")
    }
}

@Suite("Emulated list queries")
struct ListQueryTests {
    static let lists = [
        "/my-org/members", "/my-org/member-invitations", "/my-org/roles", "/my-org/domains",
        "/my-org/identity-providers",
    ]

    @Test("every list accepts the SDK's default query parameters, repeated keys included")
    func sdkDefaults() {
        let h = Harness()
        let idp = "/my-org/identity-providers/\(h.idp("acme-okta"))"
        h.call("POST", "\(idp)/provisioning")
        let member = "/my-org/members/\(h.member("ada@acme.com"))/roles"
        for path in Self.lists + [member, "\(idp)/provisioning/scim-tokens"] {
            let query = "include_fields=true&take=50&include_totals=false&sort=created_at%3A-1&fields=id&fields=name"
            #expect(h.call("GET", "\(path)?\(query)").status == 200, "\(path)")
            #expect(h.call("GET", "\(path)?include_totals=true").status == 200, "\(path)")
        }
    }

    @Test("paginated lists refuse bad take, from and sort values with a query validation error")
    func badQueries() {
        let h = Harness()
        let paginated = ["/my-org/members", "/my-org/member-invitations", "/my-org/roles", "/my-org/domains"]
        for path in paginated + ["/my-org/members/\(h.member("ada@acme.com"))/roles"] {
            for query in ["take=0", "take=101", "take=-1", "from=nope", "sort=created_at:up", "include_fields=1"] {
                let answer = h.call("GET", "\(path)?\(query)")
                answer.expectError(400, "A0E-400-0003")
                #expect(answer.json["validation_errors"]?.arrayValue?.first?["source"] == "query")
            }
        }
        h.call("GET", "/my-org/identity-providers?is_enabled=yes").expectError(400, "A0E-400-0003")
        h.call("GET", "/my-org/members?take=%ZZ").expectError(400, "A0E-400-0001")
    }
}
