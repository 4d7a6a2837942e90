import GatewayCore

/// The 41 operations of the My Organization API (shared/reference/endpoints.md), one case each.
public enum EmulatorOperation: String, Sendable, CaseIterable {
    case getDetails, updateDetails, deleteOrganization
    case getConfiguration, getIdentityProvidersConfiguration
    case listDomains, createDomain, getDomain, deleteDomain, verifyDomain, listDomainIdentityProviders
    case listIdentityProviders, createIdentityProvider, getIdentityProvider, updateIdentityProvider
    case deleteIdentityProvider, refreshIdentityProviderAttributes, detachIdentityProvider
    case addIdentityProviderDomain, removeIdentityProviderDomain
    case getProvisioning, createProvisioning, deleteProvisioning, refreshProvisioningAttributes
    case listScimTokens, createScimToken, deleteScimToken
    case listMembers, getMember, deleteMemberships
    case listInvitations, createInvitations, deleteInvitations, getInvitation, deleteInvitation, listInvitationRoles
    case listMemberRoles, assignMemberRoles, unassignMemberRolesLegacy, unassignMemberRoles
    case listRoles
}

/// One row of the emulator's endpoint table: method, path template under `/my-org/`, required scopes (all of them)
/// and the success status.
///
/// The table is the emulator's own, kept apart from the gateway's policy table on purpose: the emulator plays the
/// tenant, so a gateway that forgot a scope check still meets the tenant's 403.
public struct EmulatorEndpoint: Sendable, Equatable {
    public var method: String
    /// Path under `/my-org/` with `{name}` parameters; empty for the root (`DELETE /my-org`).
    public var pathTemplate: String
    public var scopes: [String]
    public var operation: EmulatorOperation
    public var successStatus: Int

    init(_ method: String, _ path: String, _ scopes: [String], _ operation: EmulatorOperation, _ status: Int) {
        self.method = method
        self.pathTemplate = path
        self.scopes = scopes
        self.operation = operation
        self.successStatus = status
    }

    var segments: [Substring] { pathTemplate.isEmpty ? [] : pathTemplate.split(separator: "/") }

    /// Every operation of the API.
    public static let all: [EmulatorEndpoint] = [
        .init("GET", "details", ["read:my_org:details"], .getDetails, 200),
        .init("PATCH", "details", ["update:my_org:details"], .updateDetails, 200),
        .init("DELETE", "", ["delete:my_org:organizations"], .deleteOrganization, 204),
        .init("GET", "config", ["read:my_org:configuration"], .getConfiguration, 200),
        .init(
            "GET", "config/identity-providers", ["read:my_org:configuration"], .getIdentityProvidersConfiguration, 200),
        .init("GET", "domains", ["read:my_org:domains"], .listDomains, 200),
        .init("POST", "domains", ["create:my_org:domains"], .createDomain, 201),
        .init("GET", "domains/{domain_id}", ["read:my_org:domains"], .getDomain, 200),
        .init("DELETE", "domains/{domain_id}", ["delete:my_org:domains"], .deleteDomain, 204),
        .init("POST", "domains/{domain_id}/verify", ["update:my_org:domains"], .verifyDomain, 202),
        .init(
            "GET", "domains/{domain_id}/identity-providers",
            ["read:my_org:domains", "read:my_org:identity_providers"], .listDomainIdentityProviders, 200),
        .init("GET", "identity-providers", ["read:my_org:identity_providers"], .listIdentityProviders, 200),
        .init("POST", "identity-providers", ["create:my_org:identity_providers"], .createIdentityProvider, 201),
        .init("GET", "identity-providers/{idp_id}", ["read:my_org:identity_providers"], .getIdentityProvider, 200),
        .init(
            "PATCH", "identity-providers/{idp_id}", ["update:my_org:identity_providers"], .updateIdentityProvider,
            200),
        .init(
            "DELETE", "identity-providers/{idp_id}", ["delete:my_org:identity_providers"], .deleteIdentityProvider,
            204),
        .init(
            "PUT", "identity-providers/{idp_id}/update-attributes", ["update:my_org:identity_providers"],
            .refreshIdentityProviderAttributes, 200),
        .init(
            "POST", "identity-providers/{idp_id}/detach", ["update:my_org:identity_providers_detach"],
            .detachIdentityProvider, 204),
        .init(
            "POST", "identity-providers/{idp_id}/domains", ["create:my_org:identity_providers_domains"],
            .addIdentityProviderDomain, 201),
        .init(
            "DELETE", "identity-providers/{idp_id}/domains/{domain}", ["delete:my_org:identity_providers_domains"],
            .removeIdentityProviderDomain, 204),
        .init(
            "GET", "identity-providers/{idp_id}/provisioning", ["read:my_org:identity_providers_provisioning"],
            .getProvisioning, 200),
        .init(
            "POST", "identity-providers/{idp_id}/provisioning", ["create:my_org:identity_providers_provisioning"],
            .createProvisioning, 201),
        .init(
            "DELETE", "identity-providers/{idp_id}/provisioning", ["delete:my_org:identity_providers_provisioning"],
            .deleteProvisioning, 204),
        .init(
            "PUT", "identity-providers/{idp_id}/provisioning/update-attributes",
            ["update:my_org:identity_providers_provisioning"], .refreshProvisioningAttributes, 200),
        .init(
            "GET", "identity-providers/{idp_id}/provisioning/scim-tokens",
            ["read:my_org:identity_providers_scim_tokens"], .listScimTokens, 200),
        .init(
            "POST", "identity-providers/{idp_id}/provisioning/scim-tokens",
            ["create:my_org:identity_providers_scim_tokens"], .createScimToken, 201),
        .init(
            "DELETE", "identity-providers/{idp_id}/provisioning/scim-tokens/{idp_scim_token_id}",
            ["delete:my_org:identity_providers_scim_tokens"], .deleteScimToken, 204),
        .init("GET", "members", ["read:my_org:members"], .listMembers, 200),
        .init("GET", "members/{user_id}", ["read:my_org:members"], .getMember, 200),
        .init("POST", "delete-memberships", ["delete:my_org:memberships"], .deleteMemberships, 204),
        .init("GET", "member-invitations", ["read:my_org:member_invitations"], .listInvitations, 200),
        .init("POST", "member-invitations", ["create:my_org:member_invitations"], .createInvitations, 201),
        .init(
            "POST", "delete-member-invitations", ["delete:my_org:member_invitations"], .deleteInvitations, 204),
        .init(
            "GET", "member-invitations/{invitation_id}", ["read:my_org:member_invitations"], .getInvitation, 200),
        .init(
            "DELETE", "member-invitations/{invitation_id}", ["delete:my_org:member_invitations"],
            .deleteInvitation, 204),
        .init(
            "GET", "member-invitations/{invitation_id}/roles", ["read:my_org:member_roles"], .listInvitationRoles,
            200),
        .init("GET", "members/{user_id}/roles", ["read:my_org:member_roles"], .listMemberRoles, 200),
        .init("POST", "members/{user_id}/roles", ["create:my_org:member_roles"], .assignMemberRoles, 204),
        .init(
            "DELETE", "members/{user_id}/roles", ["delete:my_org:member_roles"], .unassignMemberRolesLegacy, 204),
        .init(
            "POST", "members/{user_id}/unassign-roles", ["delete:my_org:member_roles"], .unassignMemberRoles, 204),
        .init("GET", "roles", ["read:my_org:member_roles"], .listRoles, 200),
    ]
}

/// Where a request target leads in the emulator.
enum EmulatorRoute: Equatable {
    case endpoint(EmulatorEndpoint, parameters: [String: String])
    case methodNotAllowed(allow: [String])
    case openIDConfiguration
    case jwks
    case notFound
    case badPath(String)
}

enum EmulatorRouter {
    /// Routes `path` (no query). Both `/my-org/<path>` and `/my-org/v1/<path>` lead to the same endpoint. Path
    /// parameters are percent-decoded after splitting, so `auth0|123` arrives whether the client encoded `|` or not.
    static func route(method: String, path: Substring) -> EmulatorRoute {
        if path == "/.well-known/openid-configuration" {
            return method == "GET" || method == "HEAD" ? .openIDConfiguration : .methodNotAllowed(allow: ["GET"])
        }
        if path == "/.well-known/jwks.json" {
            return method == "GET" || method == "HEAD" ? .jwks : .methodNotAllowed(allow: ["GET"])
        }
        var rest: Substring
        if path == "/my-org" || path == "/my-org/" {
            rest = ""
        } else if path.hasPrefix("/my-org/") {
            rest = path.dropFirst("/my-org/".count)
        } else {
            return .notFound
        }
        if rest == "v1" || rest == "v1/" {
            rest = ""
        } else if rest.hasPrefix("v1/") {
            rest = rest.dropFirst(3)
        }
        let raw = rest.isEmpty ? [] : rest.split(separator: "/", omittingEmptySubsequences: false)
        var segments: [String] = []
        for part in raw {
            guard !part.isEmpty else { return .notFound }
            guard let decoded = percentDecode(part) else { return .badPath("The request path is not validly encoded.") }
            segments.append(decoded)
        }
        var allow: [String] = []
        var readForHead: (EmulatorEndpoint, [String: String])? = nil
        for endpoint in EmulatorEndpoint.all {
            guard let params = match(endpoint.segments, segments) else { continue }
            if endpoint.method == method { return .endpoint(endpoint, parameters: params) }
            if endpoint.method == "GET" && readForHead == nil { readForHead = (endpoint, params) }
            allow.append(endpoint.method)
        }
        // HEAD is GET without content (RFC 9110 §9.3.2), as the gateway's router treats it.
        if let (endpoint, params) = readForHead {
            if method == "HEAD" { return .endpoint(endpoint, parameters: params) }
            if let get = allow.firstIndex(of: "GET") { allow.insert("HEAD", at: get + 1) }
        }
        return allow.isEmpty ? .notFound : .methodNotAllowed(allow: allow)
    }

    static func match(_ template: [Substring], _ segments: [String]) -> [String: String]? {
        guard template.count == segments.count else { return nil }
        var params: [String: String] = [:]
        for (t, s) in zip(template, segments) {
            if t.first == "{" {
                params[String(t.dropFirst().dropLast())] = s
            } else if t != s {
                return nil
            }
        }
        return params
    }

    /// RFC 3986 percent-decoding; nil for a malformed escape or bytes that are not UTF-8.
    static func percentDecode<S: StringProtocol>(_ s: S, plusIsSpace: Bool = false) -> String? {
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "%") {
                guard bytes.count >= 2, let hi = hexDigitValue(bytes.removeFirst()),
                    let lo = hexDigitValue(bytes.removeFirst())
                else { return nil }
                out.append(hi << 4 | lo)
            } else if plusIsSpace && b == UInt8(ascii: "+") {
                out.append(0x20)
            } else {
                out.append(b)
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}
