import GatewayCore
import Testing

@testable import Policy

@Suite struct RateLimitHeadersTests {
    /// 1_800_000_000.3 s: not on a second boundary, so rounding of the reset is visible.
    static let start: Int64 = 1_800_000_000 * 1_000_000_000 + 300_000_000

    static func limiter(_ tier: String) throws -> RateLimiter {
        RateLimiter(tier: try #require(TierTable.embedded[tier]))
    }

    @Test func remainingCountsDownThenA429CarriesRetryAfter() throws {
        let limiter = try Self.limiter("public_enterprise")
        // Org read: 8 per second, bucket 8, one request per 125 ms. Tenant read: 40.
        for step in 1...8 {
            let d = limiter.admit(org: "org_A", class: .read, now: Self.start)
            #expect(d.admitted)
            let h = d.headerFields
            #expect(h["X-RateLimit-Limit"] == "8")
            #expect(h["X-RateLimit-Remaining"] == String(8 - step))
            // Next refill: 125 ms after the first request emptied a slot, i.e. 1_800_000_000.425 -> ...001.
            #expect(h["X-RateLimit-Reset"] == "1800000001")
            #expect(h["RateLimit-Policy"] == "\"org-read\";q=8;w=1, \"tenant-read\";q=40;w=1")
            #expect(h["RateLimit"] == "\"org-read\";r=\(8 - step);t=1, \"tenant-read\";r=\(40 - step);t=1")
            #expect(h["Retry-After"] == nil)
            #expect(h["X-Auth0-Error-Kind"] == nil)
        }
        let refused = limiter.admit(org: "org_A", class: .read, now: Self.start)
        #expect(!refused.admitted)
        #expect(refused.limitedBy == .organization)
        #expect(refused.retryAfterSeconds == 1)
        let h = refused.headerFields
        #expect(h["X-RateLimit-Remaining"] == "0")
        #expect(h["X-RateLimit-Limit"] == "8")
        #expect(h["X-RateLimit-Reset"] == "1800000001")
        #expect(h["Retry-After"] == "1")
        #expect(h["X-Auth0-Error-Kind"] == nil)
        #expect(h["RateLimit"] == "\"org-read\";r=0;t=1, \"tenant-read\";r=32;t=1")

        // 125 ms later exactly one more request passes, and the bucket is empty again.
        let later = Self.start + 125_000_000
        let again = limiter.admit(org: "org_A", class: .read, now: later)
        #expect(again.admitted)
        #expect(again.remaining == 0)
        #expect(!limiter.admit(org: "org_A", class: .read, now: later).admitted)

        // After a full idle second the bucket is full again.
        let idle = limiter.admit(org: "org_A", class: .read, now: Self.start + 2_000_000_000)
        #expect(idle.remaining == 7)
    }

    @Test func resetIsEpochSecondsRoundedUpNeverMilliseconds() throws {
        let limiter = try Self.limiter("free")
        // Write: 2 per second, 500 ms apart. Empty the org bucket at .3 s: next refill at .8 s -> ...001.
        _ = limiter.admit(org: "org_A", class: .write, now: Self.start)
        let second = limiter.admit(org: "org_A", class: .write, now: Self.start)
        #expect(second.resetEpochSeconds == 1_800_000_001)
        // At .9 s the cell refilled at .8; the next slot comes at 1.3 s -> ...002.
        let third = limiter.admit(org: "org_A", class: .write, now: Self.start + 600_000_000)
        #expect(third.admitted)
        #expect(third.resetEpochSeconds == 1_800_000_002)
        let value = try #require(third.headerFields["X-RateLimit-Reset"])
        #expect(value.count == 10)
    }

    @Test func aTenantWideRefusalIsMarkedGlobal() throws {
        let limiter = try Self.limiter("public_self_service")
        // Tenant write: 4 per second; Organization write: 2 per second.
        for i in 0..<4 { #expect(limiter.admit(org: "org_\(i)", class: .write, now: Self.start).admitted) }
        let d = limiter.admit(org: "org_fresh", class: .write, now: Self.start)
        #expect(!d.admitted)
        #expect(d.limitedBy == .tenant)
        let h = d.headerFields
        #expect(h["X-Auth0-Error-Kind"] == "global-rate-limit")
        #expect(h["Retry-After"] == "1")
        #expect(h["X-RateLimit-Limit"] == "4")
        #expect(h["X-RateLimit-Remaining"] == "0")
        #expect(h["RateLimit-Policy"] == "\"tenant-write\";q=4;w=1, \"org-write\";q=2;w=1")
        #expect(h["RateLimit"] == "\"tenant-write\";r=0;t=1, \"org-write\";r=2;t=0")

        let error = d.rateLimitedError
        #expect(error.status == 429)
        #expect(error.code == "A0E-429-0003")
        #expect(error.title == "Endpoint Rate Limit Exceeded")
        #expect(error.detail.contains("tenant-wide"))
        let response = error.response
        #expect(response.head.status == 429)
        #expect(response.head.headers["X-Auth0-Error-Kind"] == "global-rate-limit")
        #expect(response.head.headers["Retry-After"] == "1")
        let body = try JSONValue.parse(response.body)
        #expect(body["type"] == "https://auth0.com/api-errors#A0E-429-0003")
        #expect(body["status"] == 429)
        #expect(body["detail"]?.stringValue?.isEmpty == false)
    }

    @Test func theTightestLimitIsReported() throws {
        let limiter = try Self.limiter("public_self_service")
        // Tenant read 8, Organization read 4. Two Organizations, two requests each.
        _ = limiter.admit(org: "org_A", class: .read, now: Self.start)
        _ = limiter.admit(org: "org_B", class: .read, now: Self.start)
        _ = limiter.admit(org: "org_B", class: .read, now: Self.start)
        let d = limiter.admit(org: "org_C", class: .read, now: Self.start)
        // Tenant has 4 left, org_C has 3 left: the Organization is tighter.
        #expect(d.tightest.scope == .organization)
        #expect(d.remaining == 3)
        for i in 0..<3 { _ = limiter.admit(org: "org_D\(i)", class: .read, now: Self.start) }
        // Tenant has 1 left, org_E has 3 left: the tenant is tighter.
        let e = limiter.admit(org: "org_E", class: .read, now: Self.start)
        #expect(e.tightest.scope == .tenant)
        #expect(e.remaining == 0)
        #expect(e.limit == 8)
        #expect(e.headerFields["X-RateLimit-Limit"] == "8")
    }

    @Test func applyReplacesTheUpstreamsFieldsAndClearsStaleRetryAfter() throws {
        let limiter = try Self.limiter("free")
        let d = limiter.admit(org: "org_A", class: .read, now: Self.start)
        var upstream = HTTPFields([
            ("x-ratelimit-limit", "50"), ("X-RateLimit-Remaining", "49"), ("x-ratelimit-reset", "1800000999"),
            ("retry-after", "30"), ("Content-Type", "application/json"),
        ])
        d.apply(to: &upstream)
        #expect(upstream.values("X-RateLimit-Limit") == ["4"])
        #expect(upstream.values("X-RateLimit-Remaining") == ["3"])
        #expect(upstream.values("X-RateLimit-Reset") == ["1800000001"])
        #expect(upstream["Retry-After"] == nil)
        #expect(upstream["Content-Type"] == "application/json")
    }
}

@Suite struct RateLimitFieldsFastPathTests {
    /// Decisions of every kind (admitted with either limit tighter, refused by either limit, refused for
    /// capacity), for read and write.
    static func decisions(_ limiter: RateLimiter) -> [RateDecision] {
        var out: [RateDecision] = []
        let start = RateLimitHeadersTests.start
        for rateClass in [RateLimitClass.read, .write] {
            for step in 0..<12 {
                out.append(limiter.admit(org: "org_A", class: rateClass, now: start + Int64(step) * 1_000_000))
            }
            // Many Organizations at one instant: the tenant limit drains faster than any one of theirs.
            for org in 0..<60 {
                out.append(limiter.admit(org: "org_\(org)", class: rateClass, now: start + 1_000_000))
            }
            for org in 0..<60 {
                out.append(limiter.admit(org: "org_later_\(org)", class: rateClass, now: start + 3_000_000_000))
            }
        }
        let capped = RateLimiter(
            configuration: RateLimiterConfiguration(
                tier: limiter.configuration.tier, stripes: 1, maxTrackedOrganizations: 1))
        out.append(capped.admit(org: "org_one", class: .read, now: start))
        out.append(capped.admit(org: "org_two", class: .read, now: start))
        return out
    }

    @Test(arguments: ["free", "public_enterprise", "private_performance"])
    func appendedFieldsEqualTheFieldPairs(tier: String) throws {
        let limiter = try RateLimitHeadersTests.limiter(tier)
        let own = RateLimitPolicyTexts(limiter: limiter)
        // A table built for other figures has no entry for these decisions: the value is written instead.
        let other = RateLimitPolicyTexts(
            limiter: try RateLimitHeadersTests.limiter(tier == "free" ? "private_basic" : "free"))
        let decisions = Self.decisions(limiter)
        if tier != "private_performance" {
            #expect(decisions.contains { !$0.admitted && $0.limitedBy == .tenant })
            #expect(decisions.contains { $0.admitted && $0.tightest.scope == .tenant })
        }
        #expect(decisions.contains { !$0.admitted && $0.limitedBy == .organization })
        #expect(decisions.contains { $0.admitted && $0.tightest.scope == .organization })
        var hits = 0
        for decision in decisions {
            let tight = decision.tightest
            let second = tight.scope == .tenant ? decision.organization : decision.tenant
            if own.entry(tight: tight, other: second) != nil { hits += 1 }
            #expect(other.entry(tight: tight, other: second) == nil)
            for texts in [own, other] {
                var fields = HTTPFields()
                decision.appendFields(to: &fields, policyTexts: texts)
                #expect(fields == HTTPFields(decision.fieldPairs), "\(decision)")
            }
        }
        // The limiter's own table answers every one of its decisions (the capped limiter has the same figures).
        #expect(hits == decisions.count)
    }
}

@Suite struct RateLimitFieldWriterTests {
    @Test("decimal writes what String(_:) writes, small values and the edges of its fast range included")
    func decimal() {
        var values: [Int64] = [0, 1, 9, 10, 11, 99, 100, 101, 1_800_000_001, -1, -10, .min, .max]
        var power: Int64 = 1
        for _ in 0..<18 {
            power *= 10
            values += [power - 1, power, power + 1]
        }
        for value in values {
            #expect(RateLimitFieldWriter.decimal(value) == String(value), "\(value)")
        }
    }

    @Test("the static policy names are the policy names")
    func staticNames() {
        for scope in [RateLimitScope.tenant, .organization] {
            for rateClass in [RateLimitClass.read, .write] {
                let state = RateLimitState(
                    scope: scope, rateClass: rateClass, limit: 1, ratePerSecond: 1, remaining: 0,
                    nextRefillNanoseconds: 0, waitNanoseconds: 0)
                #expect(state.staticPolicyName.description == state.policyName)
            }
        }
    }
}
