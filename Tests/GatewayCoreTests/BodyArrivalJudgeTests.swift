import GatewayCore
import Testing

@Suite("streamed request body: idle and minimum rate")
struct BodyArrivalJudgeTests {
    @Test("a body that keeps a steady rate over the minimum is never cut, however long it takes")
    func steadyBodyPasses() {
        var judge = BodyArrivalJudge(idleLimitMs: 3000, minBytesPerSecond: 1000, graceMs: 5000)
        for second in 1...600 {
            #expect(judge.tick(elapsedMs: 1000, received: second * 1200, heldBack: false) == .fine)
        }
    }

    @Test("a trickle under the minimum rate is cut once the grace period has passed, not before")
    func trickleIsCutAfterGrace() {
        var judge = BodyArrivalJudge(idleLimitMs: 60_000, minBytesPerSecond: 1000, graceMs: 5000)
        var verdicts: [BodyArrivalJudge.Verdict] = []
        for second in 1...6 { verdicts.append(judge.tick(elapsedMs: 1000, received: second * 10, heldBack: false)) }
        #expect(verdicts == [.fine, .fine, .fine, .fine, .tooSlow, .tooSlow])
    }

    @Test("the rate is an average: a slow start made up by a burst passes")
    func averageNotInstant() {
        var judge = BodyArrivalJudge(idleLimitMs: 60_000, minBytesPerSecond: 1000, graceMs: 5000)
        for second in 1...4 { #expect(judge.tick(elapsedMs: 1000, received: second, heldBack: false) == .fine) }
        #expect(judge.tick(elapsedMs: 1000, received: 5004, heldBack: false) == .fine)
        #expect(judge.tick(elapsedMs: 1000, received: 5005, heldBack: false) == .tooSlow)
    }

    @Test("no byte for the idle limit is `stopped`, with or without a rate")
    func silenceStops() {
        for rate in [0, 10] {
            var judge = BodyArrivalJudge(idleLimitMs: 2000, minBytesPerSecond: rate, graceMs: 60_000)
            #expect(judge.tick(elapsedMs: 1000, received: 100, heldBack: false) == .fine)
            #expect(judge.tick(elapsedMs: 1000, received: 100, heldBack: false) == .fine)
            #expect(judge.tick(elapsedMs: 1000, received: 100, heldBack: false) == .stopped)
        }
    }

    @Test("time the gateway held the client back counts neither as silence nor against the rate")
    func heldBackTimeIsNotCounted() {
        var judge = BodyArrivalJudge(idleLimitMs: 2000, minBytesPerSecond: 1000, graceMs: 2000)
        #expect(judge.tick(elapsedMs: 1000, received: 1000, heldBack: false) == .fine)
        for _ in 0..<30 { #expect(judge.tick(elapsedMs: 1000, received: 1000, heldBack: true) == .fine) }
        // Reading again: one second of silence is within the idle limit, and 2000 bytes in 2 s of reading is the
        // rate exactly.
        #expect(judge.tick(elapsedMs: 1000, received: 2000, heldBack: false) == .fine)
        #expect(judge.tick(elapsedMs: 1000, received: 2000, heldBack: false) == .tooSlow)
    }

    @Test("rate 0 turns the rate off: only silence ends the body")
    func rateOff() {
        var judge = BodyArrivalJudge(idleLimitMs: 5000, minBytesPerSecond: 0, graceMs: 0)
        for second in 1...100 { #expect(judge.tick(elapsedMs: 1000, received: second, heldBack: false) == .fine) }
    }

    @Test("a body read whole earns a second past its head's deadline per minimum-rate's worth of bytes; rate 0: idle")
    func wholeBodyDeadline() {
        let head: Int64 = 10_000_000_000
        #expect(
            BodyArrivalJudge.wholeBodyDeadline(
                headDeadline: head, received: 0, minBytesPerSecond: 1000, idleDeadline: 1)
                == head)
        #expect(
            BodyArrivalJudge.wholeBodyDeadline(
                headDeadline: head, received: 2500, minBytesPerSecond: 1000, idleDeadline: 1) == head + 2_500_000_000)
        #expect(
            BodyArrivalJudge.wholeBodyDeadline(
                headDeadline: head, received: 2500, minBytesPerSecond: 0, idleDeadline: 7)
                == 7)
    }
}
