import GatewayCore

/// What the access policy allows one token to do.
public struct AccessGrant: Sendable, Equatable {
    /// Token scopes the policy lets this client use (token ∩ client grant, or the token's scopes under
    /// `allow_all`).
    public var usableScopes: Set<String>
    /// The client's configuration entry, when it has one.
    public var client: GatewayConfig.Client?
}

/// The tenant's application API access policies, the client grants and the step-up rules, as one pure
/// decision per request.
///
/// Order of checks in `authorize`: the flow's policy (client credentials vs user), the client's grant, a
/// listed client's `my_organization_configuration`, the endpoint's scopes (all required, exact tokens), then
/// step-up. Refusals: 403 `forbidden` (policy / no grant), 409 `configurationIssue`, 403 `insufficientScope`,
/// 401 `insufficient_user_authentication` (step-up).
public struct AccessPolicy: Sendable {
    public let access: GatewayConfig.Access
    public let stepUp: GatewayConfig.StepUp?
    private let clients: [String: ClientEntry]

    /// A client's configuration entry and its grant as a set (membership is tested on every request). A class:
    /// the per-request gate hands out one reference, not a copy of every field of the entry.
    private final class ClientEntry: Sendable {
        let config: GatewayConfig.Client
        let grantScopes: Set<String>
        /// `config.myOrganization != nil`, known once (testing it copied the whole optional configuration).
        let hasConfiguration: Bool
        /// By endpoint `index` of the table the policy was built with: that endpoint's scopes, and whether the
        /// grant holds every one of them.
        private let grantCovers: [(scopes: [String], covered: Bool)]

        init(config: GatewayConfig.Client, grantScopes: Set<String>, endpoints: [Endpoint]) {
            self.config = config
            self.grantScopes = grantScopes
            self.hasConfiguration = config.myOrganization != nil
            self.grantCovers = endpoints.map { ($0.scopes, $0.scopes.allSatisfy(grantScopes.contains)) }
        }

        /// Whether the grant holds every scope of `endpoint`, when known from the table (nil: ask the set). The
        /// answer is a function of the scope list alone, and is used only for the very list it was worked out for.
        func covers(_ endpoint: Endpoint) -> Bool? {
            let index = endpoint.index
            guard index >= 0, index < grantCovers.count, grantCovers[index].scopes == endpoint.scopes else {
                return nil
            }
            return grantCovers[index].covered
        }
    }

    /// `endpoints`: the table requests will be judged against, so that each client's grant is checked against
    /// each endpoint's scopes once here instead of on every request (any other endpoint is checked as usual).
    public init(
        access: GatewayConfig.Access, clients: [GatewayConfig.Client], stepUp: GatewayConfig.StepUp?,
        endpoints: [Endpoint] = []
    ) {
        self.access = access
        self.stepUp = stepUp
        var byID: [String: ClientEntry] = [:]
        for client in clients {
            byID[client.clientID] = ClientEntry(
                config: client, grantScopes: Set(client.grantScopes), endpoints: endpoints)
        }
        self.clients = byID
    }

    public init(config: GatewayConfig) {
        self.init(
            access: config.access, clients: config.clients, stepUp: config.stepUp,
            endpoints: config.endpoints.endpoints)
    }

    /// The MFA policy URI of OpenID PAPE, which Auth0 accepts in `acr_values` to ask for MFA.
    public static let multiFactorACR = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"

    public func authorize(_ token: TokenContext, endpoint: Endpoint) throws(TenantError) -> AccessGrant {
        let grant = try grant(for: token)
        let missing = endpoint.scopes.filter { !grant.usableScopes.contains($0) }
        if !missing.isEmpty { throw .insufficientScope(missing: missing, required: endpoint.scopes) }
        try checkStepUp(token, endpoint: endpoint)
        return grant
    }

    /// Whether `authorize(token, endpoint:)` passes, by the same rules, without building the grant (no copy of
    /// the client's entry, no scope-set intersection). A caller that needs the grant or, on `false`, the
    /// refusal calls `authorize`.
    public func admits(_ token: TokenContext, endpoint: Endpoint) -> Bool {
        guard case .passes(let requireGrant, let client) = gate(token) else { return false }
        // `authorize`'s usable scopes: the token's, intersected with the client's grant when one is required.
        // The grant's half is known per endpoint when the table is the one the policy was built with.
        let covered = requireGrant ? client?.covers(endpoint) : nil
        if covered == false { return false }
        for scope in endpoint.scopes {
            guard token.scopes.contains(scope) else { return false }
            if requireGrant, covered == nil, let client, !client.grantScopes.contains(scope) { return false }
        }
        do {
            try checkStepUp(token, endpoint: endpoint)
        } catch {
            return false
        }
        return true
    }

    /// The flow's policy, the client's grant and its `my_organization_configuration`: the rules `admits` and
    /// `grant(for:)` both apply, in one place.
    private enum Gate {
        case clientCredentialsDenied
        case noGrant
        case noConfiguration
        case passes(requireGrant: Bool, client: ClientEntry?)
    }

    private func gate(_ token: TokenContext) -> Gate {
        let client = clients[token.clientID]
        let requireGrant: Bool
        if token.isClientCredentials {
            switch access.clientCredentials {
            case .denyAll: return .clientCredentialsDenied
            case .requireClientGrant: requireGrant = true
            case .allowAll: requireGrant = false
            }
        } else {
            requireGrant = access.userFlows == .requireClientGrant
        }
        if requireGrant, client == nil { return .noGrant }
        if let client, !client.hasConfiguration { return .noConfiguration }
        return .passes(requireGrant: requireGrant, client: client)
    }

    /// The scopes this token may use, before any endpoint is considered.
    public func grant(for token: TokenContext) throws(TenantError) -> AccessGrant {
        switch gate(token) {
        case .clientCredentialsDenied:
            throw Self.clientCredentialsRefusal
        case .noGrant:
            throw Self.tokenForbidden("The client has no grant for the My Organization API.")
        case .noConfiguration:
            throw .configurationIssue(
                "The client has no my_organization_configuration; the My Organization API refuses clients without one.")
        case .passes(let requireGrant, let client):
            let usable = requireGrant ? token.scopes.intersection(client?.grantScopes ?? []) : token.scopes
            return AccessGrant(usableScopes: usable, client: client?.config)
        }
    }

    /// The answer to a client-credentials (machine-to-machine) token under `deny_all`, the API's default: it can
    /// only be called with a user-bound token. The emulated tenant answers such a token with the same refusal.
    public static var clientCredentialsRefusal: TenantError {
        tokenForbidden(
            "Client-credentials (machine-to-machine) tokens are refused: the My Organization API's access "
                + "policy for client credentials is deny_all. Call it with a user-bound token.")
    }

    /// A 403 about what the token may do: RFC 6750 §3 requires a challenge on every refusal of a token, and
    /// `insufficient_scope` is its code for a valid token without the privileges the request needs.
    static func tokenForbidden(_ detail: String) -> TenantError {
        var error = TenantError.forbidden(detail)
        error.headers.set("WWW-Authenticate", ClaimsChecker.challenge("insufficient_scope", detail))
        return error
    }

    /// Refuses the call when one of the endpoint's scopes needs step-up and the token lacks it.
    public func checkStepUp(_ token: TokenContext, endpoint: Endpoint) throws(TenantError) {
        guard let stepUp, let scope = endpoint.scopes.first(where: { stepUp.scopes.contains($0) }) else { return }
        // No user stands behind a client-credentials token, whatever `amr` it carries: it can never step up.
        if token.isClientCredentials {
            throw Self.tokenForbidden(
                "The scope \(scope) requires a user who completed step-up authentication; a client-credentials token cannot."
            )
        }
        switch stepUp.requirement {
        case .amr(let value):
            if token.amr.contains(value) { return }
        case .acr(let value):
            if token.acr == value { return }
        }
        let need: String
        var acrValues: String?
        switch stepUp.requirement {
        case .amr(let value):
            need = value == "mfa" ? "multi-factor authentication (amr mfa)" : "authentication method \(value) (amr)"
            if value == "mfa" { acrValues = Self.multiFactorACR }
        case .acr(let value):
            need = "authentication context \(value) (acr)"
            acrValues = value
        }
        let detail = "The scope \(scope) requires \(need); authenticate again with it and retry."
        var header = ClaimsChecker.challenge("insufficient_user_authentication", detail)
        if let acrValues { header += ", acr_values=\"\(ClaimsChecker.errorDescription(acrValues))\"" }
        throw .unauthorized(detail, wwwAuthenticate: header)
    }

    /// For `POST identity-providers`: the body's `strategy` must be one the client's
    /// `my_organization_configuration.allowed_strategies` lists. A grant without a client entry (allow_all)
    /// is left to the tenant.
    public func checkIdentityProviderStrategy(body: JSONValue, grant: AccessGrant) throws(TenantError) {
        guard let config = grant.client?.myOrganization else { return }
        let allowed = config.allowedStrategies.joined(separator: ", ")
        guard let strategy = body["strategy"]?.stringValue else {
            throw .validation(
                "The request body is invalid.",
                errors: [
                    .init(detail: "strategy is required: one of \(allowed).", field: "strategy", pointer: "/strategy")
                ])
        }
        guard config.allowedStrategies.contains(strategy) else {
            throw .validation(
                "The request body is invalid.",
                errors: [
                    .init(
                        detail:
                            "This application may not create identity providers with this strategy; allowed: \(allowed).",
                        field: "strategy", pointer: "/strategy")
                ])
        }
    }
}
