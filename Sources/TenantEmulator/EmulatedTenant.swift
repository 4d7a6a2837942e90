import GatewayCore
import Policy
import Synchronization
import Tokens

/// An emulated My Organization API tenant: a pure request handler with its state in memory.
///
/// `handle` routes `/my-org/<path>` and `/my-org/v1/<path>` (and `DELETE /my-org`) to the 41 operations of
/// shared/reference/endpoints.md, authenticates the bearer token through the injected `verifyToken` closure,
/// refuses client-credentials (machine-to-machine) tokens as the API does (it takes user-bound tokens only; 403 with
/// the gateway's own refusal, `AccessPolicy.clientCredentialsRefusal`), checks the endpoint's scopes itself (401
/// Missing Token, 403 Insufficient Scope naming the scope), validates bodies and query parameters (400 with
/// `validation_errors`), and answers in the tenant's shapes. It also serves
/// `GET /.well-known/openid-configuration` and `GET /.well-known/jwks.json`.
///
/// State is kept per Organization, keyed by the token's `org_id`. An Organization the emulator has not seen is
/// created empty on first use (unless `createsOrganizationsOnDemand` is false); a deleted one answers 404 from then on.
/// With `seed`, the Organization `EmulatedTenant.seedOrganizationID` exists from the start, always with the same
/// ids and contents.
///
/// Domain verification: `POST domains/{id}/verify` answers 202 with the domain still `pending`; the status settles at
/// the first request handled at least `domainVerificationDelaySeconds` later by the injected clock (with the default
/// 0: the very next request). A domain under the `.invalid` top-level domain settles to `failed`, any other to
/// `verified`.
///
/// Choices where the public description is silent (each one is tested):
/// - `access_level` (the description's `organization_access_level`, named `access_level` in API bodies): `none` is
///   404 everywhere and absent from lists; `readonly` refuses every change with 403 A0E-403-0001; `limited` allows
///   `show_as_button`, `is_enabled` and `assign_membership_on_login` in a PATCH and nothing else (403 naming the
///   refused fields); deleting, detaching, domain links, attribute refreshes, provisioning and SCIM tokens need
///   `full`.
/// - 409 A0E-409-0001 (Configuration issue): a strategy outside the client's `allowed_strategies`, deleting a provider
///   that has users under `allow_if_empty`, linking a domain that is not verified, a collection at the emulator's
///   bound (1,000 items).
/// - 409 A0E-409-0003 (Duplicate Resource): a domain name, provider name, provider domain link, provisioning
///   configuration that already exists; inviting someone who is already a member.
/// - A malformed id in the path (`con_` + 16, `ord_` + 22, `uinv_` + 16, `tok_` + 16, user ids of 1–1024
///   characters) is 400 A0E-400-0003 with `source: "path"`; a well-formed unknown id is 404 A0E-404-0002.
/// - Batch deletes (`delete-memberships`, `delete-member-invitations`) are all or nothing: one unknown id is a 404.
/// - Secrets in requests (`client_secret`, `signingCert`) are never stored or echoed; a SCIM token's `token` is in
///   its create response only.
/// - Lists are oldest first unless `sort=<field>:-1` (the SDKs' default `created_at:-1`), except invitations, which
///   are newest first by default. `include_totals` is accepted and ignored.
///
/// Thread safety: every call of `handle` runs under one `Mutex`, so the class is `Sendable` and calls are serialized.
/// No I/O happens here; the caller serves the responses.
public final class EmulatedTenant: Sendable {
    /// The seeded Organization's id (`org_` + 16 alphanumerics).
    public static let seedOrganizationID = "org_Emu1AcmeSeed0001"

    public let domain: String
    public let canonicalDomain: String
    /// The tenant's custom domains: a request that arrives on one of them is answered as that domain's.
    public let customDomains: [String]
    private let jwksJSON: String
    private let clock: any WallClock
    private let verifyToken: @Sendable (String) -> Result<TokenInfo, TenantError>
    private let state: Mutex<TenantState>

    /// - Parameters:
    ///   - domain: the domain the tenant is served on (custom or canonical); the default issuer host.
    ///   - canonicalDomain: the tenant's canonical domain; discovery answers with it when the request's host is it.
    ///   - customDomains: the tenant's custom domains; discovery (and every URL the tenant builds, such as an
    ///     invitation's) names the one the request arrived on.
    ///   - seed: create the seeded Organization `seedOrganizationID`.
    ///   - clock: the time of `created_at` fields, invitation expiry and domain verification.
    ///   - jwksJSON: served verbatim at `/.well-known/jwks.json`.
    ///   - clients: `my_organization_configuration` per client id (`azp`/`client_id` of the token).
    ///   - defaultClientConfiguration: for tokens whose client is not in `clients`.
    ///   - domainVerificationDelaySeconds: how long after `verify` a domain's status settles.
    ///   - createsOrganizationsOnDemand: create an empty Organization for an unknown `org_id` instead of 404.
    ///   - verifyToken: checks a bearer token (signature and claims) and returns what the emulator needs of it.
    public init(
        domain: String,
        canonicalDomain: String,
        customDomains: [String] = [],
        seed: Bool = true,
        clock: any WallClock,
        jwksJSON: String,
        clients: [String: EmulatorClientConfiguration] = [:],
        defaultClientConfiguration: EmulatorClientConfiguration = EmulatorClientConfiguration(),
        domainVerificationDelaySeconds: Int64 = 0,
        createsOrganizationsOnDemand: Bool = true,
        verifyToken: @escaping @Sendable (String) -> Result<TokenInfo, TenantError>
    ) {
        self.domain = domain
        self.canonicalDomain = canonicalDomain
        self.customDomains = customDomains
        self.jwksJSON = jwksJSON
        self.clock = clock
        self.verifyToken = verifyToken
        let settings = TenantSettings(
            domain: domain, clients: clients, defaultClient: defaultClientConfiguration,
            verificationDelay: max(0, domainVerificationDelaySeconds),
            createsOrganizationsOnDemand: createsOrganizationsOnDemand)
        var initial = TenantState(settings: settings)
        if seed { initial.seed(now: clock.nowSeconds()) }
        self.state = Mutex(initial)
    }

    /// Answers one request. Never throws and never traps on input: every failure is a response in the tenant's
    /// error shape (`type`, `status`, `title`, `detail`).
    public func handle(_ request: EmulatorRequest) -> Response {
        let head = request.head
        switch EmulatorRouter.route(method: head.method, path: head.path) {
        case .notFound:
            return TenantError.notFound("The requested resource does not exist.").response
        case .badPath(let detail):
            return TenantError.badRequest(detail).response
        case .methodNotAllowed(let allow):
            return TenantError.methodNotAllowed("The method is not allowed on this resource.", allow: allow).response
        case .openIDConfiguration:
            return withoutBodyForHead(head, Reply.json(200, openIDConfiguration(host: issuerHost(head))))
        case .jwks:
            return withoutBodyForHead(head, Reply.raw(200, Array(jwksJSON.utf8)))
        case .endpoint(let endpoint, let parameters):
            let token: TokenInfo
            switch authenticate(request) {
            case .success(let info): token = info
            case .failure(let error): return error.response
            }
            if token.isClientCredentials { return AccessPolicy.clientCredentialsRefusal.response }
            let missing = endpoint.scopes.filter { !token.scopes.contains($0) }
            if !missing.isEmpty { return TenantError.insufficientScope(missing: missing).response }
            let query: QueryParameters
            do {
                query = try QueryParameters(head.query)
            } catch {
                return error.response
            }
            let call = OperationCall(
                endpoint: endpoint, parameters: parameters, query: query, body: request.body, token: token,
                now: clock.nowSeconds(), host: issuerHost(head))
            return state.withLock { $0.perform(call) }
        }
    }

    private func authenticate(_ request: EmulatorRequest) -> Result<TokenInfo, TenantError> {
        if let token = request.token { return .success(token) }
        guard let header = request.head.headers[literal: "Authorization"] else { return .failure(.missingToken()) }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        let isDPoP = parts.count == 2 && String(parts[0]).asciiCaseInsensitiveEquals(literal: "DPoP")
        guard parts.count == 2, isDPoP || String(parts[0]).asciiCaseInsensitiveEquals(literal: "Bearer") else {
            return .failure(.missingToken())
        }
        // RFC 6750 §2.1: `1*SP` between the scheme and the token.
        let credential = String(parts[1].drop(while: { $0 == " " }))
        guard !credential.isEmpty, !credential.contains(" ") else { return .failure(.missingToken()) }
        return verifyToken(credential).flatMap { info in
            checkBinding(info, isDPoP: isDPoP, token: credential, head: request.head).map { .failure($0) }
                ?? .success(info)
        }
    }

    /// RFC 9449 §7.1: a DPoP-bound token (`cnf.jkt`) is used only with the DPoP scheme and one valid proof of the
    /// key it is bound to, made for this method and URL and for this token; the DPoP scheme needs a bound token.
    /// The URL is the one the client addressed: the tenant domain it used (as `issuerHost` finds it behind a
    /// proxy) and the path, so a proof signed for another URL fails here, as it does at the tenant.
    private func checkBinding(_ info: TokenInfo, isDPoP: Bool, token: String, head: RequestHead) -> TenantError? {
        switch (isDPoP, info.dpopThumbprint) {
        case (false, nil):
            return nil
        case (false, .some):
            return ClaimsChecker.invalid("The access token is DPoP-bound (cnf.jkt): send it with the DPoP scheme.")
        case (true, nil):
            return ClaimsChecker.invalid("The DPoP scheme was used with an access token that is not DPoP-bound.")
        case (true, .some(let thumbprint)):
            let proofs = head.headers.values("DPoP")
            guard proofs.count == 1 else { return BearerToken.invalidProof("Exactly one DPoP proof is required.") }
            let expected = DPoPProof.Expectation(
                method: head.method, url: "https://\(addressedAuthority(head))\(head.path)", accessToken: token,
                thumbprint: thumbprint, nowSeconds: clock.nowSeconds())
            return DPoPProof.problem(proofs[0], expected).map {
                BearerToken.invalidProof("\($0.prefix(1).uppercased())\($0.dropFirst()).")
            }
        }
    }

    /// The tenant domain the request arrived on, else `domain`: issuer, `jwks_uri` and the URLs the tenant builds
    /// follow the domain the client used, as Auth0 does for custom domains.
    private func issuerHost(_ head: RequestHead) -> String { addressed(head)?.domain ?? domain }

    /// The authority the client addressed, port included (a proof's `htu` names it), else `domain`.
    private func addressedAuthority(_ head: RequestHead) -> String { addressed(head)?.authority ?? domain }

    /// The request's host when it names one of the tenant's domains, else the first `X-Forwarded-Host` when that
    /// does (a proxy in front, such as the gateway, whose upstream is this emulator's loopback address, says so
    /// there): as written (`authority`, whitespace around a list element dropped) and as the tenant spells it.
    private func addressed(_ head: RequestHead) -> (authority: String, domain: String)? {
        let forwarded = head.headers["X-Forwarded-Host"].map { String($0.prefix { $0 != "," }) }
        for candidate in [head.authority ?? head.headers["Host"], forwarded] {
            // A host holds no whitespace: what a list element carries around it goes.
            guard let authority = candidate?.filter({ $0 != " " && $0 != "\t" }) else { continue }
            if let known = tenantDomain(named: authority) { return (authority, known) }
        }
        return nil
    }

    /// The tenant's own spelling of `authority` (a host with an optional port) when it is one of its domains.
    private func tenantDomain(named authority: String) -> String? {
        let name = RequestPolicy.hostWithoutPort(authority)
        if name.asciiCaseInsensitiveEquals(canonicalDomain) { return canonicalDomain }
        if name.asciiCaseInsensitiveEquals(domain) { return domain }
        return customDomains.first { name.asciiCaseInsensitiveEquals($0) }
    }

    private func openIDConfiguration(host: String) -> JSONValue {
        let base = "https://\(host)/"
        return .object([
            ("issuer", .string(base)),
            ("authorization_endpoint", .string(base + "authorize")),
            ("token_endpoint", .string(base + "oauth/token")),
            ("jwks_uri", .string(base + ".well-known/jwks.json")),
            ("response_types_supported", ["code"]),
            ("subject_types_supported", ["public"]),
            ("id_token_signing_alg_values_supported", ["RS256"]),
            ("scopes_supported", .array(Set(EmulatorEndpoint.all.flatMap(\.scopes)).sorted().map { .string($0) })),
        ])
    }

    private func withoutBodyForHead(_ head: RequestHead, _ response: Response) -> Response {
        guard head.method == "HEAD" else { return response }
        var copy = response
        copy.body = []
        return copy
    }
}

/// The fixed configuration a `TenantState` consults.
struct TenantSettings: Sendable {
    var domain: String
    var clients: [String: EmulatorClientConfiguration]
    var defaultClient: EmulatorClientConfiguration
    var verificationDelay: Int64
    var createsOrganizationsOnDemand: Bool

    func client(_ token: TokenInfo) -> EmulatorClientConfiguration {
        token.clientID.flatMap { clients[$0] } ?? defaultClient
    }
}

/// What an operation handler gets: the matched endpoint, decoded path parameters, the query, the body and the
/// verified token.
struct OperationCall {
    var endpoint: EmulatorEndpoint
    var parameters: [String: String]
    var query: QueryParameters
    var body: [UInt8]
    var token: TokenInfo
    var now: Int64
    var host: String

    /// The path parameter `name`, checked against `format` (400 with a `path` validation error when it does not fit).
    func parameter(_ name: String, _ format: StringFormat) throws(TenantError) -> String {
        let value = parameters[name] ?? ""
        guard format.matches(value) else {
            throw TenantError.validation(
                "The request is invalid.",
                errors: [
                    TenantError.ValidationError(
                        detail: "'\(name)' must be \(format.describe).", field: name, pointer: nil, source: "path")
                ])
        }
        return value
    }
}

/// Responses with the tenant's JSON headers.
enum Reply {
    static func json(_ status: Int, _ value: JSONValue) -> Response {
        raw(status, value.serializedBytes())
    }

    static func raw(_ status: Int, _ body: [UInt8]) -> Response {
        Response(
            status: status,
            headers: HTTPFields([("Content-Type", "application/json"), ("Cache-Control", "no-store")]),
            body: body)
    }

    static func noContent() -> Response { Response(status: 204) }

    static func list(_ key: String, _ items: [JSONValue], next: String?) -> Response {
        var m: [(String, JSONValue)] = [(key, .array(items))]
        if let next { m.append(("next", .string(next))) }
        return json(200, .object(m))
    }
}
