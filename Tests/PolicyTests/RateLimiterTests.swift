import GatewayCore
import Testing

@testable import Policy

/// Admission counts over simulated time, for every tier and class, with a ManualClock.
@Suite struct RateLimiterTests {
    static let tiers = TierTable.embedded.tiers
    static let multipliers: [Double] = [0.5, 1, 2, 10]
    static let duration: Int64 = 10

    struct Case: CustomStringConvertible, Sendable {
        var tier: TierLimits
        var rateClass: RateLimitClass
        var description: String { "\(tier.name)/\(rateClass.rawValue)" }
    }

    static let cases: [Case] = tiers.flatMap { tier in RateLimitClass.allCases.map { Case(tier: tier, rateClass: $0) } }

    /// Requests evenly spaced at `multiplier × rate` over [0, duration] inclusive; `org(j)` names the
    /// Organization of the j-th request. Returns how many were admitted.
    static func offer(
        _ limiter: RateLimiter, rate: Int, multiplier: Double, rateClass: RateLimitClass, clock: ManualClock,
        org: (Int) -> String
    ) -> Int {
        let spacing = Int64((1e9 / (Double(rate) * multiplier)).rounded())
        let start = clock.nowNanoseconds()
        let end = start + duration * 1_000_000_000
        var admitted = 0
        var j = 0
        var now = start
        while now <= end {
            clock.set(nanoseconds: now)
            if limiter.admit(org: org(j), class: rateClass, now: clock.nowNanoseconds()).admitted { admitted += 1 }
            j += 1
            now = start + Int64(j) * spacing
        }
        return admitted
    }

    /// Offered at or under the rate: everything passes. Above: the bucket (burst = rate) plus the rate over
    /// the window, the most a token bucket allows.
    static func expected(rate: Int, multiplier: Double) -> Int {
        if multiplier <= 1 { return Int((Double(rate) * multiplier * Double(duration)).rounded()) + 1 }
        return rate + rate * Int(duration)
    }

    static func assertWithinOnePercent(_ admitted: Int, _ expected: Int, _ label: String) {
        let tolerance = expected / 100
        #expect(abs(admitted - expected) <= tolerance, "\(label): admitted \(admitted), expected \(expected)")
    }

    @Test(arguments: cases)
    func perOrganizationLimitAdmitsTheExpectedCountAtEachLoad(_ c: Case) {
        let rate = c.tier.organization[c.rateClass]
        for multiplier in Self.multipliers {
            let limiter = RateLimiter(tier: c.tier)
            let clock = ManualClock()
            let admitted = Self.offer(
                limiter, rate: rate, multiplier: multiplier, rateClass: c.rateClass, clock: clock, org: { _ in "org_A" }
            )
            Self.assertWithinOnePercent(
                admitted, Self.expected(rate: rate, multiplier: multiplier), "\(c) org ×\(multiplier)")
        }
    }

    @Test(arguments: cases)
    func tenantLimitAdmitsTheExpectedCountAtEachLoad(_ c: Case) {
        let rate = c.tier.tenant[c.rateClass]
        let orgRate = c.tier.organization[c.rateClass]
        for multiplier in Self.multipliers {
            let limiter = RateLimiter(tier: c.tier)
            let clock = ManualClock()
            // Enough Organizations, round robin, that each offers at most half its own rate: only the tenant
            // limit can refuse.
            let orgs = Int((2 * Double(rate) * multiplier / Double(orgRate)).rounded(.up)) + 1
            let admitted = Self.offer(
                limiter, rate: rate, multiplier: multiplier, rateClass: c.rateClass, clock: clock,
                org: { "org_\($0 % orgs)" })
            Self.assertWithinOnePercent(
                admitted, Self.expected(rate: rate, multiplier: multiplier), "\(c) tenant ×\(multiplier)")
        }
    }

    /// Tiers whose tenant limit can hold two Organizations at full rate. In `free` the tenant limit equals
    /// one Organization's, so one busy Organization can use all of it (see the next test).
    static let sharedTiers = tiers.filter { $0.tenant.read >= 2 * $0.organization.read }

    @Test(arguments: sharedTiers.flatMap { tier in RateLimitClass.allCases.map { Case(tier: tier, rateClass: $0) } })
    func aNoisyOrganizationDoesNotStarveAnother(_ c: Case) {
        let limiter = RateLimiter(tier: c.tier)
        let orgRate = c.tier.organization[c.rateClass]
        let start: Int64 = 1_800_000_000 * 1_000_000_000
        let noisySpacing = 1_000_000_000 / Int64(10 * orgRate)
        let quietSpacing = 1_000_000_000 / Int64(orgRate)
        var quietAdmitted = 0
        var quietOffered = 0
        var noisyAdmitted = 0
        var noisyNext = start
        var quietNext = start
        let end = start + Self.duration * 1_000_000_000
        while noisyNext <= end || quietNext <= end {
            // The noisy Organization goes first at equal times: the worst case for the quiet one.
            if noisyNext <= quietNext {
                if limiter.admit(org: "org_noisy", class: c.rateClass, now: noisyNext).admitted { noisyAdmitted += 1 }
                noisyNext += noisySpacing
            } else {
                quietOffered += 1
                if limiter.admit(org: "org_quiet", class: c.rateClass, now: quietNext).admitted { quietAdmitted += 1 }
                quietNext += quietSpacing
            }
        }
        #expect(quietAdmitted == quietOffered, "\(c): quiet org got \(quietAdmitted) of \(quietOffered)")
        #expect(quietAdmitted >= orgRate * Int(Self.duration))
        #expect(noisyAdmitted == Self.expected(rate: orgRate, multiplier: 10))
    }

    @Test func inTheFreeTierOneBusyOrganizationCanUseTheWholeTenantLimit() throws {
        let free = try #require(TierTable.embedded["free"])
        let limiter = RateLimiter(tier: free)
        let now: Int64 = 1_800_000_000 * 1_000_000_000
        for _ in 0..<4 { #expect(limiter.admit(org: "org_busy", class: .read, now: now).admitted) }
        let other = limiter.admit(org: "org_other", class: .read, now: now)
        #expect(!other.admitted)
        #expect(other.limitedBy == .tenant)
    }

    @Test func aTenantRefusalDoesNotSpendTheOrganizationsQuota() throws {
        let tier = try #require(TierTable.embedded["public_enterprise"])
        let limiter = RateLimiter(tier: tier)
        let now: Int64 = 1_800_000_000 * 1_000_000_000
        // 40 distinct Organizations empty the tenant's read bucket.
        for i in 0..<40 { #expect(limiter.admit(org: "org_fill\(i)", class: .read, now: now).admitted) }
        let tenantBefore = limiter.tenantTAT(class: .read)
        for _ in 0..<50 {
            let d = limiter.admit(org: "org_victim", class: .read, now: now)
            #expect(!d.admitted)
            #expect(d.limitedBy == .tenant)
        }
        #expect(limiter.organizationTAT(org: "org_victim", class: .read) == nil)
        #expect(limiter.tenantTAT(class: .read) == tenantBefore)
        // Once the tenant refills by one, the victim still has its whole bucket.
        let later = now + limiter.tenantRead.intervalNanoseconds
        let d = limiter.admit(org: "org_victim", class: .read, now: later)
        #expect(d.admitted)
        #expect(d.organization.remaining == 7)
    }

    @Test func anOrganizationRefusalDoesNotSpendTheTenantsQuota() throws {
        let tier = try #require(TierTable.embedded["public_enterprise"])
        let limiter = RateLimiter(tier: tier)
        let now: Int64 = 1_800_000_000 * 1_000_000_000
        for _ in 0..<4 { #expect(limiter.admit(org: "org_A", class: .write, now: now).admitted) }
        let tenantBefore = limiter.tenantTAT(class: .write)
        for _ in 0..<100 {
            let d = limiter.admit(org: "org_A", class: .write, now: now)
            #expect(!d.admitted)
            #expect(d.limitedBy == .organization)
        }
        #expect(limiter.tenantTAT(class: .write) == tenantBefore)
        // The other 16 tenant write slots are all still there for other Organizations.
        var others = 0
        for i in 0..<30 where limiter.admit(org: "org_B\(i)", class: .write, now: now).admitted { others += 1 }
        #expect(others == 16)
    }

    @Test func readAndWriteAreSeparateBuckets() throws {
        let tier = try #require(TierTable.embedded["free"])
        let limiter = RateLimiter(tier: tier)
        let now: Int64 = 1_800_000_000 * 1_000_000_000
        for _ in 0..<2 { #expect(limiter.admit(org: "org_A", class: .write, now: now).admitted) }
        #expect(!limiter.admit(org: "org_A", class: .write, now: now).admitted)
        for _ in 0..<4 { #expect(limiter.admit(org: "org_A", class: .read, now: now).admitted) }
        #expect(!limiter.admit(org: "org_A", class: .read, now: now).admitted)
    }

    @Test func longOrganizationIdsAreKeptApart() throws {
        let tier = try #require(TierTable.embedded["private_performance"])
        let limiter = RateLimiter(tier: tier)
        let now: Int64 = 1_800_000_000 * 1_000_000_000
        let a = "org_" + String(repeating: "a", count: 40)
        let b = "org_" + String(repeating: "a", count: 39) + "b"
        for _ in 0..<8 { #expect(limiter.admit(org: a, class: .write, now: now).admitted) }
        #expect(!limiter.admit(org: a, class: .write, now: now).admitted)
        #expect(limiter.admit(org: b, class: .write, now: now).admitted)
        // Inline keys differing only in length (a trailing NUL) are distinct too.
        for _ in 0..<8 { #expect(limiter.admit(org: "org_x", class: .write, now: now).admitted) }
        #expect(limiter.admit(org: "org_x\u{0}", class: .write, now: now).admitted)
    }

    @Test func idleCellsAreSweptSoMemoryFollowsActiveOrganizations() {
        let roomy = TierLimits(
            name: "roomy", tenant: TierRates(read: 1_000_000, write: 1_000_000),
            organization: TierRates(read: 4, write: 2))
        let limiter = RateLimiter(tier: roomy)
        let clock = ManualClock()
        for i in 0..<10_000 {
            #expect(limiter.admit(org: "org_first\(i)", class: .read, now: clock.nowNanoseconds()).admitted)
        }
        #expect(limiter.trackedOrganizations == 10_000)
        // Two seconds later every first-wave cell is idle; a second wave sweeps them lazily.
        clock.advance(seconds: 2)
        for i in 0..<10_000 {
            #expect(limiter.admit(org: "org_second\(i)", class: .read, now: clock.nowNanoseconds()).admitted)
        }
        let firstStillTracked = (0..<10_000).filter {
            limiter.organizationTAT(org: "org_first\($0)", class: .read) != nil
        }.count
        #expect(firstStillTracked == 0)
        #expect(limiter.trackedOrganizations == 10_000)
        let bytes = limiter.approximateMemoryBytes
        print("rate limiter: \(bytes / 10_000) bytes per tracked Organization (10,000 active)")
        #expect(bytes <= 10_000 * 128)
        clock.advance(seconds: 2)
        #expect(limiter.sweep(now: clock.nowNanoseconds()) == 10_000)
        #expect(limiter.trackedOrganizations == 0)
        #expect(RateLimiter.bytesPerEntry == 40)
    }

    @Test func theOrganizationCapFailsClosedUntilCellsGoIdle() {
        let roomy = TierLimits(
            name: "roomy", tenant: TierRates(read: 1_000_000, write: 1_000_000),
            organization: TierRates(read: 4, write: 2))
        let limiter = RateLimiter(
            configuration: RateLimiterConfiguration(tier: roomy, stripes: 1, maxTrackedOrganizations: 100))
        let now: Int64 = 1_800_000_000 * 1_000_000_000
        for i in 0..<100 { #expect(limiter.admit(org: "org_\(i)", class: .read, now: now).admitted) }
        let tenantBefore = limiter.tenantTAT(class: .read)
        let refused = limiter.admit(org: "org_new", class: .read, now: now)
        #expect(!refused.admitted)
        #expect(refused.limitedBy == .organization)
        #expect(refused.retryAfterSeconds == 1)
        #expect(limiter.capacityRefusals == 1)
        #expect(limiter.tenantTAT(class: .read) == tenantBefore)
        // Known Organizations keep working at the cap.
        #expect(limiter.admit(org: "org_5", class: .read, now: now).admitted)
        #expect(limiter.trackedOrganizations == 100)
        let later = now + 2_000_000_000
        #expect(limiter.admit(org: "org_new", class: .read, now: later).admitted)
        #expect(limiter.trackedOrganizations == 1)
    }

    @Test func aReloadedLimiterKeepsTheBuckets() throws {
        let tier = try #require(TierTable.embedded["public_enterprise"])
        let old = RateLimiter(tier: tier)
        let now: Int64 = 1_800_000_000 * 1_000_000_000
        for _ in 0..<4 { #expect(old.admit(org: "org_A", class: .write, now: now).admitted) }
        let longID = "org_" + String(repeating: "z", count: 30)
        for _ in 0..<4 { #expect(old.admit(org: longID, class: .write, now: now).admitted) }
        let reloaded = RateLimiter(
            configuration: RateLimiterConfiguration(tier: tier, stripes: 7), inheriting: old)
        #expect(reloaded.trackedOrganizations == 2)
        #expect(!reloaded.admit(org: "org_A", class: .write, now: now).admitted)
        #expect(!reloaded.admit(org: longID, class: .write, now: now).admitted)
        #expect(reloaded.tenantTAT(class: .write) == old.tenantTAT(class: .write))
        // 12 of the tenant's 20 write slots are left.
        var others = 0
        for i in 0..<20 where reloaded.admit(org: "org_B\(i)", class: .write, now: now).admitted { others += 1 }
        #expect(others == 12)
    }

    @Test func simulateTierEnforcesTheLowerTier() throws {
        let config = try RateLimiterConfiguration.resolve(
            tiers: .embedded, tenantTier: "private_performance", simulateTier: "free")
        let limiter = RateLimiter(configuration: config)
        let now: Int64 = 1_800_000_000 * 1_000_000_000
        var admitted = 0
        for _ in 0..<20 where limiter.admit(org: "org_A", class: .write, now: now).admitted { admitted += 1 }
        #expect(admitted == 2)
        let d = limiter.admit(org: "org_A", class: .write, now: now)
        #expect(d.tierName == "free")
    }
}
