/// A token whose JWS signature checked out against a key of the tenant's JWKS, with its decoded parts.
///
/// Claims rules (issuer, audience, times, organization, scopes) are not checked yet: that is the policy
/// layer's pure decision, made against the domain the request arrived on.
public struct VerifiedToken: Sendable, Equatable {
    public var header: JSONValue
    public var claims: JSONValue

    public init(header: JSONValue, claims: JSONValue) {
        self.header = header
        self.claims = claims
    }
}

/// Why a token was refused before its claims were looked at. `detail` is safe to send to the client:
/// it never contains the token or key material.
public struct TokenRejection: Error, Sendable, Equatable {
    public enum Kind: String, Sendable {
        case malformed
        case tooLarge
        case algorithm
        case header
        case unknownKey
        case signature
        case noKeys
    }

    public var kind: Kind
    public var detail: String

    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }
}

extension VerifiedToken {
    /// Whether a JWS `typ` names an access token: `JWT` or `at+jwt` (RFC 9068 §2.1), with or without the
    /// `application/` prefix RFC 7515 §4.1.9 lets a sender drop, in any letter case. Both the signature check and
    /// the claims check apply this one rule.
    public static func isAccessTokenType(_ typ: String) -> Bool {
        typ.asciiCaseInsensitiveEquals(literal: "jwt") || typ.asciiCaseInsensitiveEquals(literal: "at+jwt")
            || typ.asciiCaseInsensitiveEquals(literal: "application/jwt")
            || typ.asciiCaseInsensitiveEquals(literal: "application/at+jwt")
    }
}
