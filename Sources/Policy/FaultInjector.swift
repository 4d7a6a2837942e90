import GatewayCore

/// One fault-injection rule (`faults:` in the configuration; testing mode only).
///
/// A rule targets a route or an Organization and fires for a `share` of the matching requests. When it fires
/// the request is either answered with `status` (after `delayMilliseconds`) without reaching the tenant, or,
/// with no status, only delayed and then forwarded.
public struct FaultRule: Sendable, Hashable {
    public enum Target: Sendable, Hashable {
        /// `"GET details"`, `"DELETE identity-providers/{idp_id}"` (method and path template under `/my-org/`),
        /// or an operation name as the endpoint table spells it (a single word).
        case route(String)
        /// An `org_id`.
        case organization(String)
        /// A route, for one `org_id` only: both must match.
        case routeInOrganization(route: String, organization: String)
        /// Every request.
        case every
    }

    /// Statuses a rule may inject.
    public static let allowedStatuses: Set<Int> = [429, 500, 502, 503, 504]
    /// Longest injectable delay; keeps a typo from parking connections for hours.
    public static let maxDelayMilliseconds = 60_000

    public let target: Target
    public let share: Double
    public let status: Int?
    public let delayMilliseconds: Int
    /// The normalised route key when `target` is a route.
    let routeKey: String?

    public init(target: Target, share: Double, status: Int? = nil, delayMilliseconds: Int = 0)
        throws(FaultRuleError)
    {
        switch target {
        case .route(let route):
            guard !route.trimmingASCIISpaces.isEmpty else { throw .emptyTarget }
            routeKey = FaultRule.normaliseRoute(route)
        case .organization(let org):
            guard !org.isEmpty else { throw .emptyTarget }
            routeKey = nil
        case .routeInOrganization(let route, let org):
            guard !route.trimmingASCIISpaces.isEmpty, !org.isEmpty else { throw .emptyTarget }
            routeKey = FaultRule.normaliseRoute(route)
        case .every:
            routeKey = nil
        }
        guard share.isFinite, share >= 0, share <= 1 else { throw .share(share) }
        if let status, !FaultRule.allowedStatuses.contains(status) { throw .status(status) }
        guard delayMilliseconds >= 0, delayMilliseconds <= FaultRule.maxDelayMilliseconds else {
            throw .delay(delayMilliseconds)
        }
        guard status != nil || delayMilliseconds > 0 else { throw .noEffect }
        self.target = target
        self.share = share
        self.status = status
        self.delayMilliseconds = delayMilliseconds
    }

    /// `"get  /my-org/v1/details/"` and `"GET details"` give the same key; a single word is kept as is
    /// (an operation name).
    static func normaliseRoute(_ route: String) -> String {
        let trimmed = route.trimmingASCIISpaces
        guard let space = trimmed.firstIndex(where: { $0 == " " || $0 == "\t" }) else { return trimmed }
        let method = trimmed[..<space].uppercased()
        var path = Substring(trimmed[space...].trimmingASCIISpaces)
        for prefix in ["/my-org/v1", "/my-org"] where path == prefix || path.hasPrefix(prefix + "/") {
            path = path.dropFirst(prefix.count)
            break
        }
        while path.hasPrefix("/") { path = path.dropFirst() }
        while path.hasSuffix("/") { path = path.dropLast() }
        return method + " " + path
    }
}

/// Why a fault rule was refused (the loader adds file and line).
public enum FaultRuleError: Error, Sendable, Equatable, CustomStringConvertible {
    case emptyTarget
    case share(Double)
    case status(Int)
    case delay(Int)
    case noEffect

    public var description: String {
        switch self {
        case .emptyTarget: return "a fault rule needs a non-empty `route` or `org`"
        case .share(let value): return "`share` must be between 0 and 1, got \(value)"
        case .status(let value):
            return "`status` \(value) cannot be injected (use one of 429, 500, 502, 503, 504)"
        case .delay(let value):
            return "`delay_ms` must be between 0 and \(FaultRule.maxDelayMilliseconds), got \(value)"
        case .noEffect: return "a fault rule needs a `status`, a positive `delay_ms`, or both"
        }
    }
}

/// What an injected fault does to one request.
public enum FaultAction: Sendable, Hashable {
    /// Answer with `status` after waiting `delayMilliseconds`; the request never reaches the tenant.
    case respond(status: Int, delayMilliseconds: Int)
    /// Wait, then handle the request normally.
    case delay(milliseconds: Int)

    /// The error to answer for `.respond`, in the shape the tenant gives that status: a 429 is the tenant's (and
    /// the rate limiter's) `A0E-429-0003` with `Retry-After: 1`, so a client's retry logic meets what a real
    /// limit sends; a 5xx has the shape of the gateway's own 5xx answers. Nil for `.delay`.
    public var error: TenantError? {
        guard case .respond(let status, _) = self else { return nil }
        let detail = "Injected fault (gateway testing mode): this \(status) did not come from the tenant."
        if status == 429 { return TenantError.rateLimited(detail, headers: HTTPFields([("Retry-After", "1")])) }
        return TenantError.gateway(status: status, detail: detail)
    }

    /// `error`'s response; nil for `.delay`.
    public var response: Response? { error?.response }

    public var delayMilliseconds: Int {
        switch self {
        case .respond(_, let delay): return delay
        case .delay(let delay): return delay
        }
    }
}

/// Decides fault injection for a request. Off by default (`disabled`, no rules).
///
/// Pure: the randomness is injected, so a seeded `FaultRandom` replays the same faults. Rules are tried in
/// order; every matching rule draws exactly one number (so one rule's share does not shift another's draws
/// between runs with the same traffic), and the first whose draw falls below its share wins.
public struct FaultInjector: Sendable {
    public let rules: [FaultRule]

    public static let disabled = FaultInjector(rules: [])

    public init(rules: [FaultRule]) { self.rules = rules }

    public var isEnabled: Bool { !rules.isEmpty }

    /// `route` is `"METHOD template"` (e.g. `"GET identity-providers/{idp_id}"`; a `/my-org/` or
    /// `/my-org/v1/` prefix is ignored); `operation` the endpoint's operation name if it has one.
    public func decide<R: RandomNumberGenerator>(
        route: String, operation: String? = nil, org: String?, random: inout R
    ) -> FaultAction? {
        guard !rules.isEmpty else { return nil }
        let key = FaultRule.normaliseRoute(route)
        for rule in rules {
            let matches: Bool
            switch rule.target {
            case .route: matches = rule.routeKey == key || (operation != nil && rule.routeKey == operation)
            case .organization(let target): matches = org == target
            case .routeInOrganization(_, let target):
                matches = org == target && (rule.routeKey == key || (operation != nil && rule.routeKey == operation))
            case .every: matches = true
            }
            guard matches else { continue }
            let draw = Double(random.next() >> 11) * 0x1p-53
            guard draw < rule.share else { continue }
            if let status = rule.status {
                return .respond(status: status, delayMilliseconds: rule.delayMilliseconds)
            }
            return .delay(milliseconds: rule.delayMilliseconds)
        }
        return nil
    }
}

/// A small seeded generator (SplitMix64) for reproducible fault injection; not for anything secret.
public struct FaultRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension StringProtocol {
    fileprivate var trimmingASCIISpaces: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return String(s)
    }
}
