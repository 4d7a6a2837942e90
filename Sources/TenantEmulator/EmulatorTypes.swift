import GatewayCore
import Policy

/// What the emulated tenant needs from an access token whose signature and claims were already checked.
///
/// `orgID` selects the Organization the request acts on (the API never names it in the path); `scopes` are
/// compared with the endpoint's required scopes by the emulator itself.
public struct TokenInfo: Sendable, Equatable {
    public var orgID: String
    public var scopes: Set<String>
    /// `azp` (Auth0 dialect) or `client_id` (RFC 9068 dialect); selects the client's My Organization configuration.
    public var clientID: String?
    /// `sub`: a user id, or `{client_id}@clients` for client credentials.
    public var subject: String?
    /// A client-credentials (machine-to-machine) token: the API refuses it, as it takes user-bound tokens only.
    public var isClientCredentials: Bool
    /// `cnf.jkt`: the token is DPoP-bound to the key with this RFC 7638 thumbprint (RFC 9449 §6.1).
    public var dpopThumbprint: String?

    public init(
        orgID: String, scopes: Set<String>, clientID: String? = nil, subject: String? = nil,
        isClientCredentials: Bool = false, dpopThumbprint: String? = nil
    ) {
        self.orgID = orgID
        self.scopes = scopes
        self.clientID = clientID
        self.subject = subject
        self.isClientCredentials = isClientCredentials
        self.dpopThumbprint = dpopThumbprint
    }
}

/// One request as the emulated tenant receives it.
///
/// When `token` is set, the caller already verified the token and the `Authorization` header is not looked at;
/// when it is nil the emulator takes the bearer token from `Authorization` and asks its `verifyToken` closure.
public struct EmulatorRequest: Sendable {
    public var head: RequestHead
    public var body: [UInt8]
    public var token: TokenInfo?

    public init(head: RequestHead, body: [UInt8] = [], token: TokenInfo? = nil) {
        self.head = head
        self.body = body
        self.token = token
    }
}

/// `connection_deletion_behavior` of a client's `my_organization_configuration`.
public enum ConnectionDeletionBehavior: String, Sendable, CaseIterable {
    /// Deleting an identity provider always succeeds.
    case allow
    /// Deleting an identity provider that still has users is refused with 409 (A0E-409-0001).
    case allowIfEmpty = "allow_if_empty"
}

/// A client's `my_organization_configuration` as `GET /my-org/config` reports it.
public struct EmulatorClientConfiguration: Sendable, Equatable {
    /// Strategies this client may create identity providers with; others are refused with 409 (A0E-409-0001).
    public var allowedStrategies: [String]
    public var connectionDeletionBehavior: ConnectionDeletionBehavior

    public init(
        allowedStrategies: [String] = IdentityProviderStrategies.defaultAllowed,
        connectionDeletionBehavior: ConnectionDeletionBehavior = .allowIfEmpty
    ) {
        self.allowedStrategies = allowedStrategies
        self.connectionDeletionBehavior = connectionDeletionBehavior
    }
}

/// The identity provider strategies of the API.
public enum IdentityProviderStrategies {
    /// Every value the request enum accepts.
    public static let all = ["pingfederate", "ad", "adfs", "waad", "google-apps", "okta", "oidc", "samlp"]
    /// The default `allowed_strategies`: the strategies the official SDKs' `IdpStrategyEnum` knows (not `ad`, which
    /// a client must allow explicitly, so that `GET config` never shows an SDK a value it cannot parse).
    public static let defaultAllowed = ["pingfederate", "adfs", "waad", "google-apps", "okta", "oidc", "samlp"]
}

/// Builds a `TokenInfo` from a verified token's claims, accepting both token dialects (Auth0's `azp`, RFC 9068's
/// `client_id`).
public enum EmulatorTokenInfo {
    /// The token info of `claims`, or a 401 in the tenant's shape when `org_id` is missing. `scope` is a
    /// space-separated string (an array of strings is accepted too).
    public static func make(claims: JSONValue) -> Result<TokenInfo, TenantError> {
        guard let orgID = claims["org_id"]?.stringValue, !orgID.isEmpty else {
            return .failure(
                TenantError.unauthorized(
                    "The access token has no org_id claim: it was not issued for an Organization.",
                    wwwAuthenticate: "Bearer error=\"invalid_token\", error_description=\"org_id claim missing\""))
        }
        var scopes = Set<String>()
        switch claims["scope"] {
        case .string(let s)?:
            for part in s.split(separator: " ", omittingEmptySubsequences: true) { scopes.insert(String(part)) }
        case .array(let items)?:
            for item in items { if let s = item.stringValue { scopes.insert(s) } }
        default:
            break
        }
        let clientID = claims["azp"]?.stringValue ?? claims["client_id"]?.stringValue
        let subject = claims["sub"]?.stringValue
        return .success(
            TokenInfo(
                orgID: orgID, scopes: scopes, clientID: clientID, subject: subject,
                isClientCredentials: ClaimsChecker.isClientCredentials(
                    subject: subject, clientID: clientID, gty: claims["gty"]?.stringValue),
                dpopThumbprint: claims["cnf"]?["jkt"]?.stringValue))
    }
}
