import Policy
import Testing

@testable import RateLimitStore

@Suite struct MicrosecondGCRATests {
    /// Rates dividing 10^6 have a whole-microsecond interval: the figures must equal the local limiter's.
    @Test(arguments: [(1, 1), (2, 4), (4, 4), (8, 8), (20, 30), (40, 40), (160, 160), (1_000, 2_000)])
    func figuresMatchTheLocalParametersForWholeMicrosecondIntervals(rate: Int, burst: Int) {
        let ns = GCRAParameters(ratePerSecond: rate, burst: burst)
        let us = MicrosecondGCRA(ns)
        #expect(us.intervalMicroseconds * 1000 == ns.intervalNanoseconds)
        #expect(us.toleranceMicroseconds * 1000 == ns.toleranceNanoseconds)
        let now: Int64 = 1_800_000_000_000_000
        let offsets: [Int64] =
            [-5_000_000, -1, 0, 1, us.intervalMicroseconds / 2, us.intervalMicroseconds]
            + [us.toleranceMicroseconds, us.toleranceMicroseconds + 1, us.toleranceMicroseconds * 2]
        for offset in offsets {
            let tat = now + offset
            #expect(us.remaining(tat: tat, now: now) == ns.remaining(tat: tat * 1000, now: now * 1000))
            #expect(us.nextRefill(tat: tat, now: now) * 1000 == ns.nextRefill(tat: tat * 1000, now: now * 1000))
            #expect(us.wait(tat: tat, now: now) * 1000 == ns.wait(tat: tat * 1000, now: now * 1000))
        }
    }

    /// Other rates round the interval UP: never more admissions than the local limiter.
    @Test(arguments: [3, 7, 30, 600_000, 999_999])
    func intervalRoundsUp(rate: Int) {
        let ns = GCRAParameters(ratePerSecond: rate, burst: 5)
        let us = MicrosecondGCRA(ns)
        #expect(us.intervalMicroseconds * 1000 >= ns.intervalNanoseconds)
        #expect(us.intervalMicroseconds * 1000 - ns.intervalNanoseconds < 1000)
        #expect(us.arguments == [String(us.intervalMicroseconds), String(us.toleranceMicroseconds)])
    }

    @Test func anIdleCellIsAFullBucket() {
        let us = MicrosecondGCRA(GCRAParameters(ratePerSecond: 8, burst: 8))
        let now: Int64 = 1_800_000_000_000_000
        #expect(us.remaining(tat: 0, now: now) == 8)
        #expect(us.nextRefill(tat: 0, now: now) == now)
        #expect(us.wait(tat: 0, now: now) == 0)
        let state = us.state(.organization, .write, windowSeconds: 1, tat: 0, now: now)
        #expect(state.remaining == 8 && state.limit == 8 && state.ratePerSecond == 8)
        #expect(state.nextRefillNanoseconds == now * 1000 && state.waitNanoseconds == 0)
    }
}

@Suite struct RedisGCRAScriptOutcomeTests {
    @Test(arguments: [
        (
            RedisReply.array([.integer(0), .integer(5), .integer(6), .integer(7)]),
            RedisGCRAScript.Outcome.Result.admitted
        ),
        (.array([.integer(1), .integer(5), .integer(6), .integer(7)]), .refusedByTenant),
        (.array([.integer(2), .integer(5), .integer(6), .integer(7)]), .refusedByOrganization),
    ])
    func decodesTheScriptsReply(reply: RedisReply, result: RedisGCRAScript.Outcome.Result) throws {
        let outcome = try RedisGCRAScript.Outcome(reply: reply)
        #expect(outcome == .init(result: result, nowMicroseconds: 5, tenantTAT: 6, organizationTAT: 7))
    }

    @Test(arguments: [
        RedisReply.array([.integer(3), .integer(5), .integer(6), .integer(7)]),
        .array([.integer(0), .integer(0), .integer(6), .integer(7)]),
        .array([.integer(0), .integer(5), .integer(6)]),
        .array([.integer(0), .string(Array("5".utf8)), .integer(6), .integer(7)]),
        .error("ERR boom"), .null, .integer(1),
    ])
    func refusesAnyOtherShape(reply: RedisReply) {
        #expect(throws: RedisError.self) { try RedisGCRAScript.Outcome(reply: reply) }
    }
}
