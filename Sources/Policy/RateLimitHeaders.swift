import GatewayCore

/// Response header fields for a rate-limit decision.
///
/// Two families, both describing the same decision:
/// - the tenant's own (endpoints.md, "Rate-limit headers"): `X-RateLimit-Limit` (bucket size),
///   `X-RateLimit-Remaining`, `X-RateLimit-Reset` (EPOCH SECONDS of the next refill, never milliseconds: the
///   official SDKs sleep until that second), all for the tightest limit;
/// - the IETF fields of draft-ietf-httpapi-ratelimit-headers-10 (structured-field lists, the form introduced
///   in -08 and unchanged since): `RateLimit-Policy: "org-read";q=8;w=1, "tenant-read";q=40;w=1` (quota `q`
///   per window `w` seconds) and `RateLimit: "org-read";r=3;t=1, "tenant-read";r=39;t=1` (remaining `r`,
///   seconds `t` until the next refill), tightest policy first. No partition key (`pk`) is sent.
///
/// On a refusal also `Retry-After` (whole seconds, at least 1) and, when the tenant-wide limit refused,
/// `X-Auth0-Error-Kind: global-rate-limit`.
public enum RateLimitHeaders {
    public static let limit = "X-RateLimit-Limit"
    public static let remaining = "X-RateLimit-Remaining"
    public static let reset = "X-RateLimit-Reset"
    public static let policy = "RateLimit-Policy"
    public static let rateLimit = "RateLimit"
    public static let retryAfter = "Retry-After"
    public static let errorKind = "X-Auth0-Error-Kind"
    public static let globalRateLimit = "global-rate-limit"

    /// Every name this type may write, for stripping an upstream's copies and for CORS exposure.
    public static let allNames = [limit, remaining, reset, policy, rateLimit, retryAfter, errorKind]
}

extension RateDecision {
    /// The header fields for this decision, in a stable order.
    public var headerFields: HTTPFields {
        var fields = HTTPFields()
        apply(to: &fields)
        return fields
    }

    /// Sets this decision's fields on `fields`, replacing any copy already there (an upstream's own
    /// `X-RateLimit-*` describe the tenant's limiter, not the one that admitted this request). Removes a stale
    /// `Retry-After` or `X-Auth0-Error-Kind` when the request was admitted.
    public func apply(to fields: inout HTTPFields) {
        let tight = tightest
        let other = tight.scope == .tenant ? organization : tenant
        fields.set(RateLimitHeaders.limit, String(tight.limit))
        fields.set(RateLimitHeaders.remaining, String(tight.remaining))
        fields.set(RateLimitHeaders.reset, String(tight.resetEpochSeconds))
        fields.set(
            RateLimitHeaders.policy,
            [tight, other].map { "\"\($0.policyName)\";q=\($0.quota);w=\($0.windowSeconds)" }.joined(separator: ", "))
        fields.set(
            RateLimitHeaders.rateLimit,
            [tight, other].map { "\"\($0.policyName)\";r=\($0.remaining);t=\(secondsUntilRefill($0))" }
                .joined(separator: ", "))
        if let retry = retryAfterSeconds {
            fields.set(RateLimitHeaders.retryAfter, String(retry))
        } else {
            fields.remove(RateLimitHeaders.retryAfter)
        }
        if !admitted, limitedBy == .tenant {
            fields.set(RateLimitHeaders.errorKind, RateLimitHeaders.globalRateLimit)
        } else {
            fields.remove(RateLimitHeaders.errorKind)
        }
    }

    private func secondsUntilRefill(_ state: RateLimitState) -> Int64 {
        RateLimitState.ceilSeconds(max(0, state.nextRefillNanoseconds - nowNanoseconds))
    }

    /// The 429 the gateway answers with when refused (`A0E-429-0003`, the tenant's shape), carrying the
    /// headers above. Meaningful only when `admitted` is false.
    public var rateLimitedError: TenantError {
        let detail: String
        switch limitedBy {
        case .tenant:
            detail =
                "The tenant-wide \(rateClass.rawValue) rate limit (\(tenant.ratePerSecond) requests per second) "
                + "was exceeded. Retry after \(retryAfterSeconds ?? 1) second(s)."
        case .organization, nil:
            detail =
                "The Organization's \(rateClass.rawValue) rate limit (\(organization.ratePerSecond) requests per "
                + "second) was exceeded. Retry after \(retryAfterSeconds ?? 1) second(s)."
        }
        return TenantError.rateLimited(detail, headers: headerFields)
    }
}
