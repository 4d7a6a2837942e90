import GatewayCore
import Testing

@testable import Policy

/// Prints the cost of one rate-limit decision and one CORS decision. No thresholds: numbers vary by machine
/// and build configuration (run with `-c release` for meaningful figures).
@Suite struct RateLimitBenchmarkTests {
    static func nanosecondsPerOperation(iterations: Int, _ body: (Int) -> Bool) -> (Double, Int) {
        let clock = ContinuousClock()
        var hits = 0
        let elapsed = clock.measure {
            for i in 0..<iterations where body(i) { hits += 1 }
        }
        let ns = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        return (ns / Double(iterations), hits)
    }

    @Test func oneRateLimitDecision() throws {
        let limiter = RateLimiter(tier: try #require(TierTable.embedded["private_performance"]))
        let orgs = (0..<1_000).map { "org_\(String($0, radix: 16).paddedTo16)" }
        let start: Int64 = 1_800_000_000 * 1_000_000_000
        let iterations = 200_000
        // 10 µs apart: 100k requests per second over 1000 Organizations, most refused by the tenant.
        let (ns, admitted) = Self.nanosecondsPerOperation(iterations: iterations) { i in
            limiter.admit(org: orgs[i % orgs.count], class: .read, now: start + Int64(i) * 10_000).admitted
        }
        print("rate-limit decision: \(Int(ns)) ns/op (\(admitted) of \(iterations) admitted)")
        #expect(admitted > 0)
    }

    @Test func oneRateLimitDecisionWithHeaders() throws {
        let limiter = RateLimiter(tier: try #require(TierTable.embedded["private_performance"]))
        let start: Int64 = 1_800_000_000 * 1_000_000_000
        let (ns, _) = Self.nanosecondsPerOperation(iterations: 50_000) { i in
            limiter.admit(org: "org_0123456789abcdef", class: .write, now: start + Int64(i) * 100_000)
                .headerFields.count == 5
        }
        print("rate-limit decision + header fields: \(Int(ns)) ns/op")
    }

    @Test func oneCORSDecision() throws {
        var origins: [String: [String]] = [:]
        for c in 0..<50 { origins["client\(c)"] = ["https://app\(c).acme.com", "https://*.tenant\(c).acme.com"] }
        let policy = try CORSPolicy.compile(clientOrigins: origins)
        let requests = ["https://app7.acme.com", "https://x.tenant33.acme.com", "https://evil.example"]
        let (ns, allowed) = Self.nanosecondsPerOperation(iterations: 60_000) { i in
            policy.isAllowed(origin: requests[i % 3], clientID: nil)
        }
        print("CORS origin decision: \(Int(ns)) ns/op")
        #expect(allowed == 40_000)
        var upstream = HTTPFields([("Content-Type", "application/json"), ("Access-Control-Allow-Origin", "*")])
        let (applyNs, _) = Self.nanosecondsPerOperation(iterations: 20_000) { _ in
            var fields = upstream
            policy.apply(to: &fields, origin: "https://x.tenant33.acme.com", clientID: "client33")
            return fields.count == 4
        }
        upstream.remove("Access-Control-Allow-Origin")
        print("CORS actual-response rewrite: \(Int(applyNs)) ns/op")
        let head = RequestHead(
            method: "OPTIONS", target: "/my-org/details",
            headers: HTTPFields([
                ("Origin", "https://x.tenant33.acme.com"), ("Access-Control-Request-Method", "PATCH"),
                ("Access-Control-Request-Headers", "authorization, content-type"),
            ]))
        let (preflightNs, ok) = Self.nanosecondsPerOperation(iterations: 20_000) { _ in
            policy.preflight(head, allowedMethods: ["GET", "PATCH"]).response?.head.status == 204
        }
        print("CORS preflight: \(Int(preflightNs)) ns/op")
        #expect(ok == 20_000)
    }
}

extension String {
    fileprivate var paddedTo16: String { String(repeating: "0", count: max(0, 16 - count)) + self }
}
