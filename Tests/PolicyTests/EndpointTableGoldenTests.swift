import Testing

@testable import Policy

/// One row of the endpoint table in `shared/reference/endpoints.md`, in the reference's column order: method, path
/// under `/my-org/` (in the gateway's template syntax), scopes (sorted), OK status, R/W, stage, log resource.
///
/// The rows below are typed from the reference, never derived from `policies/endpoints.yaml` or the embedded table:
/// a golden list built from the thing it checks would agree with any edit to it.
private struct ReferenceEndpointRow: Sendable {
    let method: String
    let template: String
    let scopes: [String]
    let okStatus: Int
    let rateClass: Endpoint.RateClass
    let stage: Endpoint.Stage
    let logResource: Endpoint.LogResource

    init(
        _ method: String, _ template: String, _ scopes: [String], _ okStatus: Int, _ rateClass: Endpoint.RateClass,
        _ stage: Endpoint.Stage, _ logResource: Endpoint.LogResource
    ) {
        self.method = method
        self.template = template
        self.scopes = scopes
        self.okStatus = okStatus
        self.rateClass = rateClass
        self.stage = stage
        self.logResource = logResource
    }

    /// `METHOD template`, the form `Endpoint.routeName` uses, so a failure names the row as the logs do.
    var route: String { "\(method) \(template)" }
}

/// The reference's count, stated in its heading "Endpoints (41 operations)".
private let referenceOperationCount = 41

/// The 41 rows of the reference's table, in its order. Log resources the reference marks `*` (an inference) are
/// pinned as inferred; its `—` (no event code covers the family) is `.none`.
private let referenceRows: [ReferenceEndpointRow] = [
    .init("GET", "details", ["read:my_org:details"], 200, .read, .ea, .orgDetails),
    .init("PATCH", "details", ["update:my_org:details"], 200, .write, .ea, .orgDetails),
    .init("DELETE", "", ["delete:my_org:organizations"], 204, .write, .ea, .orgDetails),
    .init("GET", "config", ["read:my_org:configuration"], 200, .read, .ea, .config),
    .init("GET", "config/identity-providers", ["read:my_org:configuration"], 200, .read, .ea, .config),
    .init("GET", "domains", ["read:my_org:domains"], 200, .read, .ea, .domain),
    .init("POST", "domains", ["create:my_org:domains"], 201, .write, .ea, .domain),
    .init("GET", "domains/{domain_id}", ["read:my_org:domains"], 200, .read, .ea, .domain),
    .init("DELETE", "domains/{domain_id}", ["delete:my_org:domains"], 204, .write, .ea, .domain),
    .init("POST", "domains/{domain_id}/verify", ["update:my_org:domains"], 202, .write, .ea, .domain),
    .init(
        "GET", "domains/{domain_id}/identity-providers", ["read:my_org:domains", "read:my_org:identity_providers"],
        200, .read, .ea, .domain),
    .init("GET", "identity-providers", ["read:my_org:identity_providers"], 200, .read, .ea, .idp),
    .init("POST", "identity-providers", ["create:my_org:identity_providers"], 201, .write, .ea, .idp),
    .init("GET", "identity-providers/{idp_id}", ["read:my_org:identity_providers"], 200, .read, .ea, .idp),
    .init("PATCH", "identity-providers/{idp_id}", ["update:my_org:identity_providers"], 200, .write, .ea, .idp),
    .init("DELETE", "identity-providers/{idp_id}", ["delete:my_org:identity_providers"], 204, .write, .ea, .idp),
    .init(
        "PUT", "identity-providers/{idp_id}/update-attributes", ["update:my_org:identity_providers"], 200, .write,
        .ea, .idp),
    .init(
        "POST", "identity-providers/{idp_id}/detach", ["update:my_org:identity_providers_detach"], 204, .write, .ea,
        .idp),
    .init(
        "POST", "identity-providers/{idp_id}/domains", ["create:my_org:identity_providers_domains"], 201, .write,
        .ea, .idp),
    .init(
        "DELETE", "identity-providers/{idp_id}/domains/{domain}", ["delete:my_org:identity_providers_domains"], 204,
        .write, .ea, .idp),
    .init(
        "GET", "identity-providers/{idp_id}/provisioning", ["read:my_org:identity_providers_provisioning"], 200,
        .read, .ea, .idp),
    .init(
        "POST", "identity-providers/{idp_id}/provisioning", ["create:my_org:identity_providers_provisioning"], 201,
        .write, .ea, .idp),
    .init(
        "DELETE", "identity-providers/{idp_id}/provisioning", ["delete:my_org:identity_providers_provisioning"], 204,
        .write, .ea, .idp),
    .init(
        "PUT", "identity-providers/{idp_id}/provisioning/update-attributes",
        ["update:my_org:identity_providers_provisioning"], 200, .write, .ea, .idp),
    .init(
        "GET", "identity-providers/{idp_id}/provisioning/scim-tokens", ["read:my_org:identity_providers_scim_tokens"],
        200, .read, .ea, .idp),
    .init(
        "POST", "identity-providers/{idp_id}/provisioning/scim-tokens",
        ["create:my_org:identity_providers_scim_tokens"], 201, .write, .ea, .idp),
    .init(
        "DELETE", "identity-providers/{idp_id}/provisioning/scim-tokens/{idp_scim_token_id}",
        ["delete:my_org:identity_providers_scim_tokens"], 204, .write, .ea, .idp),
    .init("GET", "members", ["read:my_org:members"], 200, .read, .beta, .none),
    .init("GET", "members/{user_id}", ["read:my_org:members"], 200, .read, .beta, .none),
    .init("POST", "delete-memberships", ["delete:my_org:memberships"], 204, .write, .beta, .none),
    .init("GET", "member-invitations", ["read:my_org:member_invitations"], 200, .read, .beta, .none),
    .init("POST", "member-invitations", ["create:my_org:member_invitations"], 201, .write, .beta, .none),
    .init("POST", "delete-member-invitations", ["delete:my_org:member_invitations"], 204, .write, .beta, .none),
    .init("GET", "member-invitations/{invitation_id}", ["read:my_org:member_invitations"], 200, .read, .beta, .none),
    .init(
        "DELETE", "member-invitations/{invitation_id}", ["delete:my_org:member_invitations"], 204, .write, .beta,
        .none),
    .init(
        "GET", "member-invitations/{invitation_id}/roles", ["read:my_org:member_roles"], 200, .read, .beta, .none),
    .init("GET", "members/{user_id}/roles", ["read:my_org:member_roles"], 200, .read, .beta, .none),
    .init("POST", "members/{user_id}/roles", ["create:my_org:member_roles"], 204, .write, .beta, .none),
    .init("DELETE", "members/{user_id}/roles", ["delete:my_org:member_roles"], 204, .write, .beta, .none),
    .init("POST", "members/{user_id}/unassign-roles", ["delete:my_org:member_roles"], 204, .write, .beta, .none),
    .init("GET", "roles", ["read:my_org:member_roles"], 200, .read, .beta, .none),
]

/// Operations the gateway routes beyond the reference's table, each allowed here by name so that any other addition
/// has to come with a reason.
private let documentedExtraRows: [ReferenceEndpointRow] = [
    // endpoints.md, after the table: Auth0's Python SDK 2.0.0 calls `GET user-stores` (scope read:my_org:user_stores,
    // R, EA) although the public description lacks it. The reference gives no OK status or log resource: 200 is
    // what every other GET answers, and no event code covers user stores, so `.none`.
    .init("GET", "user-stores", ["read:my_org:user_stores"], 200, .read, .ea, .none)
]

@Suite("Endpoint table against the product reference")
struct EndpointTableGoldenTests {
    @Test("the golden list has the reference's 41 rows, each route once and its scopes sorted")
    func goldenListIsWellFormed() {
        #expect(referenceRows.count == referenceOperationCount)
        let routes = (referenceRows + documentedExtraRows).map(\.route)
        #expect(Set(routes).count == routes.count, "a route is listed twice: \(routes)")
        for row in referenceRows + documentedExtraRows {
            #expect(row.scopes == row.scopes.sorted(), "\(row.route): scopes are not sorted")
            #expect(!row.scopes.isEmpty, "\(row.route): no scope")
        }
    }

    @Test("every reference row is in the embedded table with its scopes, OK status, class, stage and log resource")
    func everyReferenceRowIsEmbedded() {
        let table = EndpointTable.embedded
        for row in referenceRows + documentedExtraRows {
            guard let endpoint = table.endpoint(method: row.method, template: row.template) else {
                Issue.record("\(row.route): missing from the embedded endpoint table")
                continue
            }
            // A set: the reference lists scopes without order, and all of them are required.
            #expect(Set(endpoint.scopes) == Set(row.scopes), "\(row.route): scopes \(endpoint.scopes)")
            // Equal sets can still hide a repeated scope in the table.
            #expect(endpoint.scopes.count == row.scopes.count, "\(row.route): scopes \(endpoint.scopes)")
            #expect(endpoint.okStatus == row.okStatus, "\(row.route): OK status \(endpoint.okStatus)")
            #expect(endpoint.rateClass == row.rateClass, "\(row.route): class \(endpoint.rateClass)")
            #expect(endpoint.stage == row.stage, "\(row.route): stage \(endpoint.stage)")
            #expect(endpoint.logResource == row.logResource, "\(row.route): log resource \(endpoint.logResource)")
            #expect(endpoint.routeName == row.route, "\(row.route): route name \(endpoint.routeName)")
        }
    }

    @Test("the embedded table has no operation outside the reference and the documented extras")
    func noUnlistedOperation() {
        let allowed = Set((referenceRows + documentedExtraRows).map(\.route))
        for endpoint in EndpointTable.embedded.endpoints {
            #expect(
                allowed.contains(endpoint.routeName),
                "\(endpoint): not in shared/reference/endpoints.md nor a documented extra")
        }
    }

    @Test("the embedded table holds exactly the reference's 41 operations plus the documented extras")
    func operationCount() {
        let table = EndpointTable.embedded
        #expect(table.endpoints.count == referenceOperationCount + documentedExtraRows.count)
        // A duplicate route would let the count match while a reference row is missing.
        #expect(Set(table.endpoints.map(\.routeName)).count == table.endpoints.count)
    }
}
