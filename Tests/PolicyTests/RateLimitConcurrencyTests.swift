import Dispatch
import Synchronization
import Testing

@testable import Policy

/// Threads race on the same cells; the CAS and the stripe lock must never let more through than GCRA allows.
@Suite struct RateLimitConcurrencyTests {
    static let start: Int64 = 1_800_000_000 * 1_000_000_000

    /// Runs `body(thread)` on `threads` threads at once and sums what they return.
    static func race(threads: Int, _ body: @Sendable (Int) -> Int) -> Int {
        let total = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            total.wrappingAdd(body(thread), ordering: .relaxed)
        }
        return total.load(ordering: .relaxed)
    }

    @Test func twoThreadsHammeringOneOrganizationAtOneInstantGetExactlyTheBucket() throws {
        let tier = try #require(TierTable.embedded["private_performance"])
        for _ in 0..<20 {
            let limiter = RateLimiter(tier: tier)
            let admitted = Self.race(threads: 2) { _ in
                var n = 0
                for _ in 0..<20_000 where limiter.admit(org: "org_A", class: .read, now: Self.start).admitted { n += 1 }
                return n
            }
            #expect(admitted == 16)
        }
    }

    @Test func twoThreadsOverManyOrganizationsGetExactlyTheTenantBucket() throws {
        let tier = try #require(TierTable.embedded["private_performance"])
        for _ in 0..<20 {
            let limiter = RateLimiter(tier: tier)
            let admitted = Self.race(threads: 2) { thread in
                var n = 0
                for i in 0..<5_000
                where limiter.admit(org: "org_\(thread)_\(i % 500)", class: .write, now: Self.start).admitted {
                    n += 1
                }
                return n
            }
            #expect(admitted == 80)
        }
    }

    @Test func twoThreadsWithTheirOwnClocksNeverExceedBurstPlusRate() throws {
        let tier = try #require(TierTable.embedded["public_enterprise"])
        let limiter = RateLimiter(tier: tier)
        // Each thread walks its own clock through one second in 5 µs steps; readings interleave arbitrarily.
        let steps = 1_000_000 / 5
        let admitted = Self.race(threads: 2) { thread in
            var n = 0
            for step in 0...steps {
                let now = Self.start + Int64(step) * 5_000 + Int64(thread)
                if limiter.admit(org: "org_A", class: .write, now: now).admitted { n += 1 }
            }
            return n
        }
        // Org write: 4 per second, bucket 4: over [0, 1 s] at most 4 + 4.
        #expect(admitted <= 8)
        #expect(admitted >= 4)
    }
}
