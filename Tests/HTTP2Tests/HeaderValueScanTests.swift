import Testing

@testable import HTTP2

@Suite("Response header value scan")
struct HeaderValueScanTests {
    @Test("NUL, CR and LF are found at any position of a value of any length; every other byte passes")
    func matchesByteByByte() {
        let filler = Array("RateLimit-Limit, RateLimit-Remaining, X-".utf8)
        for length in [0, 1, 7, 8, 9, 15, 16, 17, 40] {
            let base = (0..<length).map { filler[$0 % filler.count] }
            #expect(base.withUnsafeBufferPointer(scanFieldValue) != .forbidden)
            for position in 0..<length {
                for b in UInt8.min...UInt8.max {
                    var value = base
                    value[position] = b
                    let expected = b == 0 || b == 10 || b == 13
                    #expect(
                        (value.withUnsafeBufferPointer(scanFieldValue) == .forbidden) == expected, "\(b) at \(position)"
                    )
                }
            }
        }
    }
}
