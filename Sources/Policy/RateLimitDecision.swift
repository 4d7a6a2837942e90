/// Which of the two limits a figure or a refusal belongs to.
public enum RateLimitScope: String, Sendable, Hashable {
    /// The tenant-wide tier limit, shared by every Organization.
    case tenant
    /// The per-Organization limit, keyed by the token's `org_id`.
    case organization
}

/// The state of one limit (one GCRA cell) as of a decision.
public struct RateLimitState: Sendable, Hashable {
    public var scope: RateLimitScope
    public var rateClass: RateLimitClass
    /// Bucket size: `X-RateLimit-Limit` and the policy's quota basis.
    public var limit: Int
    public var ratePerSecond: Int
    /// The window of the advertised quota, in whole seconds (the burst window rounded, at least 1).
    public var windowSeconds: Int
    /// Requests this limit would still admit now, after the decision.
    public var remaining: Int
    /// When the limit next gains a request, in nanoseconds since the epoch.
    public var nextRefillNanoseconds: Int64
    /// Nanoseconds until this limit admits a request (0 when it admits one now).
    public var waitNanoseconds: Int64

    public init(
        scope: RateLimitScope, rateClass: RateLimitClass, limit: Int, ratePerSecond: Int, windowSeconds: Int = 1,
        remaining: Int, nextRefillNanoseconds: Int64, waitNanoseconds: Int64
    ) {
        self.scope = scope
        self.rateClass = rateClass
        self.limit = limit
        self.ratePerSecond = ratePerSecond
        self.windowSeconds = windowSeconds
        self.remaining = remaining
        self.nextRefillNanoseconds = nextRefillNanoseconds
        self.waitNanoseconds = waitNanoseconds
    }

    /// The policy name used in `RateLimit-Policy` and `RateLimit`: `tenant-read`, `org-write`, ...
    public var policyName: String { staticPolicyName.description }

    /// `policyName` as a static string, for writers that copy its bytes.
    var staticPolicyName: StaticString {
        switch (scope, rateClass) {
        case (.tenant, .read): return "tenant-read"
        case (.tenant, .write): return "tenant-write"
        case (.organization, .read): return "org-read"
        case (.organization, .write): return "org-write"
        }
    }

    /// The quota advertised in `RateLimit-Policy` (`q`): the sustained rate over `windowSeconds`.
    public var quota: Int { ratePerSecond * windowSeconds }

    /// `X-RateLimit-Reset`: epoch seconds of the next refill, rounded up so a client waiting until then is
    /// never early.
    public var resetEpochSeconds: Int64 { RateLimitState.ceilSeconds(nextRefillNanoseconds) }

    static func ceilSeconds(_ nanoseconds: Int64) -> Int64 {
        let (q, r) = nanoseconds.quotientAndRemainder(dividingBy: 1_000_000_000)
        return r > 0 ? q + 1 : q
    }
}

/// The outcome of one rate-limit decision: both limits' states and which one refused, if any.
///
/// `limit`, `remaining`, `resetEpochSeconds` and `retryAfterSeconds` describe the TIGHTEST limit: the
/// refusing one on a refusal, else the one with fewer requests left (ties go to the smaller bucket, then to
/// the Organization).
public struct RateDecision: Sendable, Hashable {
    public var admitted: Bool
    /// The limit that refused; nil when admitted.
    public var limitedBy: RateLimitScope?
    public var rateClass: RateLimitClass
    public var tierName: String
    public var tenant: RateLimitState
    public var organization: RateLimitState
    /// Decision time, nanoseconds since the epoch.
    public var nowNanoseconds: Int64

    public init(
        admitted: Bool, limitedBy: RateLimitScope?, rateClass: RateLimitClass, tierName: String,
        tenant: RateLimitState, organization: RateLimitState, nowNanoseconds: Int64
    ) {
        self.admitted = admitted
        self.limitedBy = limitedBy
        self.rateClass = rateClass
        self.tierName = tierName
        self.tenant = tenant
        self.organization = organization
        self.nowNanoseconds = nowNanoseconds
    }

    /// The state the single-valued figures describe.
    public var tightest: RateLimitState {
        switch limitedBy {
        case .tenant: return tenant
        case .organization: return organization
        case nil:
            if tenant.remaining != organization.remaining {
                return tenant.remaining < organization.remaining ? tenant : organization
            }
            return tenant.limit < organization.limit ? tenant : organization
        }
    }

    public var limit: Int { tightest.limit }
    public var remaining: Int { tightest.remaining }
    public var resetEpochSeconds: Int64 { tightest.resetEpochSeconds }
    public var policyName: String { tightest.policyName }

    /// Whole seconds to wait before retrying, at least 1; nil when admitted. A request needs both limits, so
    /// this is the longer of the two waits.
    public var retryAfterSeconds: Int? {
        guard !admitted else { return nil }
        let wait = max(tenant.waitNanoseconds, organization.waitNanoseconds)
        return Int(max(1, RateLimitState.ceilSeconds(wait)))
    }
}
