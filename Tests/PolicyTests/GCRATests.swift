import Testing

@testable import Policy

@Suite struct GCRATests {
    @Test(arguments: [(4, 250_000_000 as Int64), (3, 333_333_334), (160, 6_250_000), (1, 1_000_000_000)])
    func intervalIsRoundedUpSoTheRateIsNeverExceeded(rate: Int, interval: Int64) {
        let p = GCRAParameters(ratePerSecond: rate, burst: rate)
        #expect(p.intervalNanoseconds == interval)
        #expect(p.toleranceNanoseconds == Int64(rate - 1) * interval)
    }

    @Test func burstSecondsScalesTheBucket() {
        #expect(GCRAParameters(ratePerSecond: 8, burstSeconds: 1).burst == 8)
        #expect(GCRAParameters(ratePerSecond: 8, burstSeconds: 2.5).burst == 20)
        #expect(GCRAParameters(ratePerSecond: 2, burstSeconds: 0.1).burst == 1)
        #expect(GCRAParameters(ratePerSecond: 8, burstSeconds: .nan).burst == 1)
    }

    @Test func aFreshCellAdmitsExactlyTheBurstAtOneInstantThenOnePerInterval() {
        let p = GCRAParameters(ratePerSecond: 4, burst: 4)
        let cell = GCRACell()
        let now: Int64 = 1_000_000_000_000
        var admitted = 0
        for _ in 0..<10 where cell.admit(p, now: now).admitted { admitted += 1 }
        #expect(admitted == 4)
        #expect(p.remaining(tat: cell.peek(), now: now) == 0)
        #expect(p.wait(tat: cell.peek(), now: now) == 250_000_000)
        #expect(!cell.admit(p, now: now + 249_999_999).admitted)
        #expect(cell.admit(p, now: now + 250_000_000).admitted)
        #expect(!cell.admit(p, now: now + 250_000_000).admitted)
    }

    @Test func remainingAndNextRefillFollowTheBucket() {
        let p = GCRAParameters(ratePerSecond: 8, burst: 8)
        let now: Int64 = 5_000_000_000
        // Full bucket: 8 left, refill "now".
        #expect(p.remaining(tat: GCRACell.idleTAT, now: now) == 8)
        #expect(p.nextRefill(tat: GCRACell.idleTAT, now: now) == now)
        // After three admissions at `now`: TAT = now + 3T.
        let tat = now + 3 * p.intervalNanoseconds
        #expect(p.remaining(tat: tat, now: now) == 5)
        #expect(p.nextRefill(tat: tat, now: now) == now + p.intervalNanoseconds)
        // Empty bucket: the refill is when the next request conforms.
        let empty = now + 8 * p.intervalNanoseconds
        #expect(p.remaining(tat: empty, now: now) == 0)
        #expect(p.nextRefill(tat: empty, now: now) == now + p.intervalNanoseconds)
        #expect(p.wait(tat: empty, now: now) == p.intervalNanoseconds)
    }

    @Test func anOlderClockReadingIsJudgedConservatively() {
        let p = GCRAParameters(ratePerSecond: 2, burst: 2)
        let cell = GCRACell()
        #expect(cell.admit(p, now: 10_000_000_000).admitted)
        #expect(cell.admit(p, now: 10_000_000_000).admitted)
        // A thread whose clock reads earlier cannot sneak in a request.
        #expect(!cell.admit(p, now: 9_000_000_000).admitted)
    }
}
