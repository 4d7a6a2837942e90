import Synchronization

/// How a `RateLimiter` is built from plain values (the loader turns `rate_limits:` into one of these).
public struct RateLimiterConfiguration: Sendable, Hashable {
    /// The tier whose figures are enforced (the tenant's tier, or the simulated lower tier).
    public var tier: TierLimits
    /// The tenant's own tier name when `tier` is a simulation of a lower one; nil otherwise.
    public var simulatedFrom: String?
    /// Bucket size as seconds of the sustained rate (`rate_limits.burst_s`, default 1: burst = rate).
    public var burstSeconds: Double
    /// Lock stripes of the per-Organization map.
    public var stripes: Int
    /// Hard cap on tracked Organizations (see `RateLimiter` for what happens when it is reached).
    public var maxTrackedOrganizations: Int

    public init(
        tier: TierLimits, simulatedFrom: String? = nil, burstSeconds: Double = 1.0, stripes: Int = 64,
        maxTrackedOrganizations: Int = 1_000_000
    ) {
        self.tier = tier
        self.simulatedFrom = simulatedFrom
        self.burstSeconds = burstSeconds
        self.stripes = stripes
        self.maxTrackedOrganizations = maxTrackedOrganizations
    }

    /// Picks the enforced tier: `simulateTier` when given (it must be no higher than `tenantTier` in any of its
    /// four figures, so a simulation never lets through what the tenant would refuse), else `tenantTier`.
    public static func resolve(
        tiers: TierTable, tenantTier: String, simulateTier: String? = nil, burstSeconds: Double = 1.0,
        stripes: Int = 64, maxTrackedOrganizations: Int = 1_000_000
    ) throws(RateLimitConfigurationError) -> RateLimiterConfiguration {
        guard let tenant = tiers[tenantTier] else {
            throw .unknownTier(tenantTier, known: tiers.names)
        }
        guard burstSeconds.isFinite, burstSeconds >= 0.001, burstSeconds <= 3600 else {
            throw .invalidBurst(burstSeconds)
        }
        guard stripes >= 1, stripes <= 4096 else { throw .invalidStripes(stripes) }
        guard maxTrackedOrganizations >= 1 else { throw .invalidCap(maxTrackedOrganizations) }
        var config = RateLimiterConfiguration(
            tier: tenant, burstSeconds: burstSeconds, stripes: stripes,
            maxTrackedOrganizations: maxTrackedOrganizations)
        if let simulateTier {
            guard let simulated = tiers[simulateTier] else { throw .unknownTier(simulateTier, known: tiers.names) }
            guard simulated.isAtMost(tenant) else { throw .simulatedTierHigher(simulateTier, tenant: tenantTier) }
            config.tier = simulated
            config.simulatedFrom = simulateTier == tenantTier ? nil : tenantTier
        }
        return config
    }
}

/// Why a rate-limiter configuration was refused.
public enum RateLimitConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownTier(String, known: [String])
    case simulatedTierHigher(String, tenant: String)
    case invalidBurst(Double)
    case invalidStripes(Int)
    case invalidCap(Int)

    public var description: String {
        switch self {
        case .unknownTier(let name, let known):
            return "unknown tier '\(name)' (known: \(known.joined(separator: ", ")))"
        case .simulatedTierHigher(let name, let tenant):
            return "simulate_tier '\(name)' allows more than the tenant's tier '\(tenant)'; pick a lower tier"
        case .invalidBurst(let value): return "burst_s must be between 0.001 and 3600, got \(value)"
        case .invalidStripes(let value): return "stripes must be between 1 and 4096, got \(value)"
        case .invalidCap(let value): return "the Organization cap must be at least 1, got \(value)"
        }
    }
}

/// The tier and per-Organization rate limits, decided locally before a request can spend the tenant's quota.
///
/// Shared by every event loop. The two tenant cells (read, write) are lock-free `GCRACell`s. The
/// Organization cells live in `stripes` maps, each behind its own `Mutex`, keyed by `org_id`; an entry is
/// two TATs (read, write), 40 bytes with the inline key used for ids up to 23 bytes (`org_` + 16 is 20).
///
/// **Both or neither.** A request is admitted only when its Organization cell and the tenant cell both
/// conform, and a refusal by one never spends the other's quota. Under the Organization's stripe lock the
/// decision (1) tests the Organization cell without writing it; if it refuses, the tenant cell is only read;
/// (2) otherwise spends on the tenant cell with one CAS; if the tenant refuses, nothing was written;
/// (3) otherwise writes the Organization cell's new TAT. No other thread can change that Organization's cell
/// between (1) and (3) because they hold the same stripe lock, and the tenant CAS is itself exact, so every
/// admitted request advanced both TATs by one interval from the value it tested: neither cell ever admits
/// more than its GCRA allows (no over-admission), and no rollback is needed.
///
/// **Memory.** A cell whose TAT is at or before `now` is a full bucket and is dropped. Each stripe sweeps
/// itself when an insertion finds it has doubled since its last sweep (amortised O(1)), so a stripe holds at
/// most about twice its active Organizations (plus a floor of 64). `sweep(now:)` sweeps everything at once.
///
/// **Cap.** At most `maxTrackedOrganizations` entries (split evenly across stripes). When a new Organization
/// finds its stripe full even after a sweep, the request is refused as rate-limited by the Organization with
/// `Retry-After: 1` (fail closed: the gateway never lets unlimited traffic through) and `capacityRefusals`
/// counts it. Under the tenant limit at most (tenant burst + tenant rate × burst seconds) Organizations can be
/// non-idle at once, so the cap is reached only with tier rates in the hundreds of thousands.
public final class RateLimiter: Sendable {
    public let configuration: RateLimiterConfiguration
    public let tenantRead: GCRAParameters
    public let tenantWrite: GCRAParameters
    public let organizationRead: GCRAParameters
    public let organizationWrite: GCRAParameters

    private let tenantReadCell = GCRACell()
    private let tenantWriteCell = GCRACell()
    private let stripes: [RateLimitStripe]
    private let perStripeCap: Int
    private let refusedForCapacity = Atomic<Int>(0)
    let windowSeconds: Int

    public init(configuration: RateLimiterConfiguration) {
        self.configuration = configuration
        let tier = configuration.tier
        let burst = configuration.burstSeconds
        tenantRead = GCRAParameters(ratePerSecond: tier.tenant.read, burstSeconds: burst)
        tenantWrite = GCRAParameters(ratePerSecond: tier.tenant.write, burstSeconds: burst)
        organizationRead = GCRAParameters(ratePerSecond: tier.organization.read, burstSeconds: burst)
        organizationWrite = GCRAParameters(ratePerSecond: tier.organization.write, burstSeconds: burst)
        windowSeconds = burst.isFinite ? max(1, Int(min(burst, 3600).rounded())) : 1
        let count = max(1, configuration.stripes)
        stripes = (0..<count).map { _ in RateLimitStripe() }
        perStripeCap = max(1, (max(1, configuration.maxTrackedOrganizations) + count - 1) / count)
    }

    /// A limiter for a reloaded policy that keeps the state of `previous`, so a reload (SIGHUP, admin
    /// endpoint) does not hand every Organization a fresh bucket. TATs are times ("busy until"), so they stay
    /// meaningful when the rates change. Requests `previous` admits while the copy runs may be missed: swap
    /// the limiter in right after building it.
    public convenience init(configuration: RateLimiterConfiguration, inheriting previous: RateLimiter) {
        self.init(configuration: configuration)
        tenantReadCell.store(previous.tenantReadCell.peek())
        tenantWriteCell.store(previous.tenantWriteCell.peek())
        for stripe in previous.stripes {
            let (inline, long) = stripe.state.withLock { ($0.inline, $0.long) }
            for (key, cells) in inline { insertInherited(.inline(key), cells) }
            for (key, cells) in long { insertInherited(.long(key), cells) }
        }
    }

    private func insertInherited(_ key: RateLimitOrgKey, _ cells: RateLimitOrgCells) {
        let stripe = stripes[key.stripeIndex(count: stripes.count)]
        stripe.state.withLock { state in
            if state.count < perStripeCap { state.store(key, cells) }
        }
    }

    /// Convenience: the given tier with default burst, stripes and cap.
    public convenience init(tier: TierLimits, burstSeconds: Double = 1.0) {
        self.init(configuration: RateLimiterConfiguration(tier: tier, burstSeconds: burstSeconds))
    }

    /// Decides one request of class `rateClass` for Organization `org` at `now` (epoch nanoseconds).
    /// Admitted requests have spent one unit of both limits; refused ones have spent nothing.
    public func admit(org: String, class rateClass: RateLimitClass, now: Int64) -> RateDecision {
        let key = RateLimitOrgKey(org)
        let stripe = stripes[key.stripeIndex(count: stripes.count)]
        let orgParameters = rateClass == .read ? organizationRead : organizationWrite
        let tenantParameters = rateClass == .read ? tenantRead : tenantWrite
        let tenantCell = rateClass == .read ? tenantReadCell : tenantWriteCell
        // Only integers leave the lock; the decision's figures are computed after it is released.
        let outcome: RateLimitOutcome = stripe.state.withLock { state in
            /// The decision on one Organization's cells; `room` is asked only when the Organization conforms.
            func decide(_ cells: inout RateLimitOrgCells, room: () -> Bool) -> RateLimitOutcome {
                let orgTAT = rateClass == .read ? cells.read : cells.write
                // The tenant's limit first, then the Organization's (DESIGN.md's order): when both are spent,
                // the tenant-wide limit is the one hit, and the 429 says `global-rate-limit`. Neither test
                // writes; only an admission spends one unit of each.
                let tenantSeen = tenantCell.peek()
                guard tenantParameters.evaluate(tat: tenantSeen, now: now).conforms else {
                    return RateLimitOutcome(result: .refusedByTenant, orgTAT: orgTAT, tenantTAT: tenantSeen)
                }
                let (orgConforms, orgNext) = orgParameters.evaluate(tat: orgTAT, now: now)
                guard orgConforms else {
                    return RateLimitOutcome(
                        result: .refusedByOrganization, orgTAT: orgTAT, tenantTAT: tenantCell.peek())
                }
                guard room() else {
                    return RateLimitOutcome(result: .refusedForCapacity, orgTAT: orgTAT, tenantTAT: tenantCell.peek())
                }
                let (tenantAdmitted, tenantBefore) = tenantCell.admit(tenantParameters, now: now)
                guard tenantAdmitted else {
                    return RateLimitOutcome(result: .refusedByTenant, orgTAT: orgTAT, tenantTAT: tenantBefore)
                }
                if rateClass == .read { cells.read = orgNext } else { cells.write = orgNext }
                let tenantNext = tenantParameters.evaluate(tat: tenantBefore, now: now).nextTAT
                return RateLimitOutcome(result: .admitted, orgTAT: orgNext, tenantTAT: tenantNext)
            }
            // A tracked Organization (the usual case under load) is decided in place: one hash of its key.
            if let decided = state.withTrackedCells(key, { decide(&$0, room: { true }) }) { return decided }
            // A new one starts idle and is stored only when admitted, if the stripe has room for it.
            var cells = RateLimitOrgCells(read: GCRACell.idleTAT, write: GCRACell.idleTAT)
            let decided = decide(&cells, room: { state.makeRoom(cap: perStripeCap, now: now) })
            if decided.result == .admitted { state.store(key, cells) }
            return decided
        }
        if outcome.result == .refusedForCapacity {
            refusedForCapacity.wrappingAdd(1, ordering: .relaxed)
        }
        return decision(
            outcome, rateClass: rateClass, orgParameters: orgParameters,
            tenantParameters: tenantParameters, now: now)
    }

    private func decision(
        _ outcome: RateLimitOutcome, rateClass: RateLimitClass, orgParameters: GCRAParameters,
        tenantParameters: GCRAParameters, now: Int64
    ) -> RateDecision {
        func state(_ scope: RateLimitScope, _ p: GCRAParameters, _ tat: Int64) -> RateLimitState {
            RateLimitState(
                scope: scope, rateClass: rateClass, limit: p.burst, ratePerSecond: p.ratePerSecond,
                windowSeconds: windowSeconds, remaining: p.remaining(tat: tat, now: now),
                nextRefillNanoseconds: p.nextRefill(tat: tat, now: now),
                waitNanoseconds: p.wait(tat: tat, now: now))
        }
        let tenant = state(.tenant, tenantParameters, outcome.tenantTAT)
        var organization = state(.organization, orgParameters, outcome.orgTAT)
        let limitedBy: RateLimitScope?
        switch outcome.result {
        case .admitted: limitedBy = nil
        case .refusedByTenant: limitedBy = .tenant
        case .refusedByOrganization: limitedBy = .organization
        case .refusedForCapacity:
            limitedBy = .organization
            organization.remaining = 0
            organization.waitNanoseconds = max(organization.waitNanoseconds, 1_000_000_000)
            organization.nextRefillNanoseconds = now + organization.waitNanoseconds
        }
        return RateDecision(
            admitted: outcome.result == .admitted, limitedBy: limitedBy, rateClass: rateClass,
            tierName: configuration.tier.name, tenant: tenant, organization: organization, nowNanoseconds: now)
    }

    /// Drops every idle Organization cell (both TATs at or before `now`); returns how many were dropped.
    /// Optional: stripes also sweep themselves lazily. A timer may call it to return memory sooner.
    @discardableResult
    public func sweep(now: Int64) -> Int {
        var removed = 0
        for stripe in stripes {
            removed += stripe.state.withLock { $0.sweep(now: now) }
        }
        return removed
    }

    /// How many Organizations currently hold a cell (idle ones not yet swept included).
    public var trackedOrganizations: Int {
        stripes.reduce(0) { total, stripe in total + stripe.state.withLock { $0.count } }
    }

    /// Requests refused because the Organization cap was reached.
    public var capacityRefusals: Int { refusedForCapacity.load(ordering: .relaxed) }

    /// An estimate of the Organization maps' memory: allocated buckets times the entry size, plus the
    /// tables' occupancy bitmaps (the long-id map's string storage is not counted).
    public var approximateMemoryBytes: Int {
        stripes.reduce(0) { total, stripe in
            total
                + stripe.state.withLock { state in
                    let buckets = state.inline.capacity + state.long.capacity
                    return buckets * RateLimiter.bytesPerEntry + buckets / 8
                }
        }
    }

    /// Bytes of one map entry (key plus two TATs), not counting the hash table's spare capacity.
    public static var bytesPerEntry: Int {
        MemoryLayout<RateLimitInlineKey>.stride + MemoryLayout<RateLimitOrgCells>.stride
    }

    /// The Organization cell's TAT for `org` (tests and diagnostics); nil when not tracked.
    public func organizationTAT(org: String, class rateClass: RateLimitClass) -> Int64? {
        let key = RateLimitOrgKey(org)
        let stripe = stripes[key.stripeIndex(count: stripes.count)]
        return stripe.state.withLock { state in
            state.lookup(key).map { rateClass == .read ? $0.read : $0.write }
        }
    }

    /// The tenant cell's TAT (tests and diagnostics).
    public func tenantTAT(class rateClass: RateLimitClass) -> Int64 {
        rateClass == .read ? tenantReadCell.peek() : tenantWriteCell.peek()
    }
}

struct RateLimitOutcome {
    enum Result: Equatable {
        case admitted
        case refusedByTenant
        case refusedByOrganization
        case refusedForCapacity
    }
    var result: Result
    /// The Organization TAT after the decision (unchanged unless admitted).
    var orgTAT: Int64
    /// The tenant TAT after the decision (unchanged unless admitted).
    var tenantTAT: Int64
}

/// The two TATs of one Organization.
struct RateLimitOrgCells: Sendable {
    var read: Int64
    var write: Int64
}

/// An `org_id` as a map key. Ids of up to 23 UTF-8 bytes (`org_` + 16 is 20) live inline in three words, so
/// an entry costs no heap allocation of its own; longer ids fall back to a `String` key in a second map.
enum RateLimitOrgKey: Sendable {
    case inline(RateLimitInlineKey)
    case long(String)

    init(_ org: String) {
        let count = org.utf8.count
        guard count <= 23 else {
            self = .long(org)
            return
        }
        let packed = org.utf8.withContiguousStorageIfAvailable { RateLimitOrgKey.packContiguous($0) }
        self = .inline(packed ?? RateLimitOrgKey.pack(Array(org.utf8)))
    }

    /// `pack` for contiguous bytes: one copy into the three words (byte `i` is at bits `(i % 8) * 8` of word
    /// `i / 8` in both, as little-endian loads give it).
    private static func packContiguous(_ bytes: UnsafeBufferPointer<UInt8>) -> RateLimitInlineKey {
        var words: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &words) { raw in
            raw.copyMemory(from: UnsafeRawBufferPointer(bytes))
        }
        return RateLimitInlineKey(
            w0: UInt64(littleEndian: words.0), w1: UInt64(littleEndian: words.1),
            w2: UInt64(littleEndian: words.2) | UInt64(bytes.count) << 56)
    }

    private static func pack<C: Collection>(_ bytes: C) -> RateLimitInlineKey where C.Element == UInt8 {
        var key = RateLimitInlineKey(w0: 0, w1: 0, w2: UInt64(bytes.count) << 56)
        var i = 0
        for byte in bytes {
            let shifted = UInt64(byte) << UInt64((i & 7) * 8)
            switch i >> 3 {
            case 0: key.w0 |= shifted
            case 1: key.w1 |= shifted
            default: key.w2 |= shifted
            }
            i += 1
        }
        return key
    }

    /// A stripe from a cheap mix of the key (independent of the maps' seeded hashing).
    func stripeIndex(count: Int) -> Int {
        var h: UInt64
        switch self {
        case .long(let text):
            h = 0xcbf2_9ce4_8422_2325
            for byte in text.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        case .inline(let key):
            h =
                (key.w0 &* 0x9E37_79B9_7F4A_7C15) ^ (key.w1 &* 0xC2B2_AE3D_27D4_EB4F)
                ^ (key.w2 &* 0x1656_67B1_9E37_79F9)
        }
        h ^= h >> 29
        h = h &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 32
        return Int(h % UInt64(count))
    }
}

/// Up to 23 bytes of an id, little-endian, with the length in the top byte of `w2`.
struct RateLimitInlineKey: Hashable, Sendable {
    var w0: UInt64
    var w1: UInt64
    var w2: UInt64
}

/// One lock stripe. A class because `Mutex` cannot be an `Array` element.
final class RateLimitStripe: Sendable {
    let state = Mutex(RateLimitStripeState())
}

struct RateLimitStripeState: Sendable {
    static let sweepFloor = 64

    var inline: [RateLimitInlineKey: RateLimitOrgCells] = [:]
    var long: [String: RateLimitOrgCells] = [:]
    var sweepAt = RateLimitStripeState.sweepFloor

    var count: Int { inline.count + long.count }

    func lookup(_ key: RateLimitOrgKey) -> RateLimitOrgCells? {
        switch key {
        case .inline(let k): return inline[k]
        case .long(let k): return long[k]
        }
    }

    /// Runs `body` on the cells of `key` in place when the key is tracked (one hash lookup, and the cells written
    /// back as `body` leaves them); nil, without calling `body`, when it is not.
    mutating func withTrackedCells<R>(_ key: RateLimitOrgKey, _ body: (inout RateLimitOrgCells) -> R) -> R? {
        switch key {
        case .inline(let k): return Self.modify(&inline[k], body)
        case .long(let k): return Self.modify(&long[k], body)
        }
    }

    private static func modify<R>(_ cells: inout RateLimitOrgCells?, _ body: (inout RateLimitOrgCells) -> R) -> R? {
        guard var present = cells else { return nil }
        let result = body(&present)
        cells = present
        return result
    }

    mutating func store(_ key: RateLimitOrgKey, _ value: RateLimitOrgCells) {
        switch key {
        case .inline(let k): inline[k] = value
        case .long(let k): long[k] = value
        }
    }

    /// Called before inserting a new key: sweeps when the stripe has doubled since the last sweep or is at
    /// the cap; false when the cap leaves no room even after sweeping.
    mutating func makeRoom(cap: Int, now: Int64) -> Bool {
        if count >= sweepAt || count >= cap {
            sweep(now: now)
        }
        return count < cap
    }

    /// Rebuilds the maps without idle cells, which also returns the spare capacity of a shrunken map.
    @discardableResult
    mutating func sweep(now: Int64) -> Int {
        let before = count
        inline = inline.filter { $0.value.read > now || $0.value.write > now }
        long = long.filter { $0.value.read > now || $0.value.write > now }
        sweepAt = max(RateLimitStripeState.sweepFloor, count * 2)
        return before - count
    }
}
