import Foundation
import GatewayCore
import Testing

@Suite("IMF-fixdate (RFC 9110 §5.6.7)")
struct HTTPDateTests {
    @Test(
        "known instants",
        arguments: [
            (Int64(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT"),  // the RFC's own example
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (4_107_542_399, "Sun, 28 Feb 2100 23:59:59 GMT"),
            (1_795_930_094, "Sun, 29 Nov 2026 05:28:14 GMT"),
            (-1, "Wed, 31 Dec 1969 23:59:59 GMT"),
        ])
    func known(seconds: Int64, text: String) {
        #expect(HTTPDate.imfFixdate(epochSeconds: seconds) == text)
    }

    @Test("agrees with Foundation's formatter across two centuries")
    func againstFoundation() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let seconds = Int64.random(in: 0..<6_311_433_600, using: &rng)  // 1970 … 2170
            let expected = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
            #expect(HTTPDate.imfFixdate(epochSeconds: seconds) == expected, "\(seconds)")
        }
    }
}
