import Policy

/// Where the proxy's rate-limit decisions come from: the in-process `RateLimiter` (`rate_limits.store: local`)
/// or the shared `RedisRateLimitStore` (`store: redis`). The proxy holds one `any RateLimitBackend` and calls
/// `admit` once per request after routing and token checks.
///
/// Contract, the same for every backend: the call returns a decision for every request (it never throws and
/// never waits unboundedly); an admitted request has spent one unit of both the tenant limit and the
/// Organization limit of its class, a refused one has spent nothing; the decision's figures feed
/// `RateDecision.apply(to:)` and `rateLimitedError` unchanged. Safe to call from every event loop at once.
public protocol RateLimitBackend: Sendable {
    /// Decides one request of class `rateClass` for Organization `org`. `nowNanoseconds` is the caller's
    /// wall clock (epoch nanoseconds); a backend with its own shared clock may decide on that clock instead,
    /// and then reports it in `RateDecision.nowNanoseconds`.
    func admit(org: String, rateClass: RateLimitClass, nowNanoseconds: Int64) -> RateDecision
}

/// The local limiter as a backend: the adapter is just a renamed call.
extension RateLimiter: RateLimitBackend {
    public func admit(org: String, rateClass: RateLimitClass, nowNanoseconds: Int64) -> RateDecision {
        admit(org: org, class: rateClass, now: nowNanoseconds)
    }
}
