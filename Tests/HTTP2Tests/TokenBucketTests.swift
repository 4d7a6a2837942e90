import Testing

@testable import HTTP2

@Suite("TokenBucket")
struct TokenBucketTests {
    /// (burst, perSecond, event times in ms, expected results)
    static let cases: [(Int, Int, [Int64], [Bool])] = [
        (2, 1, [0, 0, 0], [true, true, false]),
        (2, 1, [0, 0, 1000], [true, true, true]),
        (2, 1, [0, 0, 999], [true, true, false]),
        (1, 10, [0, 100, 150, 200], [true, true, false, true]),
        // Refill never exceeds the burst.
        (2, 100, [0, 60_000, 60_000, 60_000], [true, true, true, false]),
        (0, 100, [0, 1000], [false, false]),
        // Time going backwards neither refills nor breaks the bucket.
        (1, 1, [5000, 0, 5999, 6000], [true, false, false, true]),
    ]

    @Test("takes and refills tokens", arguments: cases)
    func takeAndRefill(burst: Int, perSecond: Int, times: [Int64], expected: [Bool]) {
        var bucket = TokenBucket(HTTP2RateLimit(burst: burst, perSecond: perSecond))
        let results = times.map { bucket.take(now: 1_800_000_000_000_000_000 + $0 * 1_000_000) }
        #expect(results == expected)
    }
}
