import GatewayCore
import Testing

@testable import Policy

/// The rate limiter's own rules (`RateLimiterConfiguration.resolve`) are judged at load, so each refusal reads
/// `file:line:col: key.path: message` like every other configuration error (`check` prints them as they are).
@Suite("Config loader: rate-limiter rules with file, line and key")
struct ConfigRateLimitsTests {
    private func errors(_ text: String, readFile: ((String) -> String?)? = nil) -> [ConfigError] {
        do {
            _ = try ConfigFixtures.load(text, readFile: readFile)
            return []
        } catch {
            return error.errors
        }
    }

    /// Exactly one error, at `path` on `line`, whose message contains `message` and whose text starts with
    /// `tenant.yaml:line:col: path: `.
    private func expectOne(_ errors: [ConfigError], line: Int, path: String, message: String) {
        #expect(errors.count == 1, "\(errors.map(\.description))")
        guard let error = errors.first else { return }
        #expect(error.path == path)
        #expect(error.line == line)
        #expect(error.column > 0)
        #expect(error.message.contains(message), "\(error.message)")
        #expect(error.description.hasPrefix("tenant.yaml:\(line):\(error.column): \(path): "), "\(error.description)")
    }

    @Test("a simulate_tier above the tenant's tier is refused at rate_limits.simulate_tier")
    func simulateHigher() {
        let flow = errors(ConfigFixtures.minimal(append: "rate_limits: { simulate_tier: private_performance }\n"))
        expectOne(
            flow, line: 12, path: "rate_limits.simulate_tier",
            message: "simulate_tier 'private_performance' allows more than the tenant's tier 'free'")
        #expect(flow.first?.column == 31, "the value's column")
        let block = errors(
            ConfigFixtures.minimal(append: "rate_limits:\n  store: local\n  simulate_tier: public_self_service\n"))
        expectOne(block, line: 14, path: "rate_limits.simulate_tier", message: "allows more than the tenant's tier")
    }

    @Test("burst_s outside what the limiter takes is refused at rate_limits.burst_s", arguments: ["0", "0.0001", "61"])
    func burstOutOfRange(burst: String) {
        expectOne(
            errors(ConfigFixtures.minimal(append: "rate_limits:\n  burst_s: \(burst)\n")), line: 13,
            path: "rate_limits.burst_s", message: "out of range 0.001...60.0")
    }

    @Test("a simulate_tier at or below the tenant's tier, and the smallest burst, load")
    func lowerTierLoads() throws {
        let config = try ConfigFixtures.load(
            ConfigFixtures.minimal(
                [("tier: free", "tier: public_enterprise")],
                append: "rate_limits: { simulate_tier: free, burst_s: 0.001 }\n"))
        #expect(config.rateLimits.simulateTier == .free)
        let same = try ConfigFixtures.load(ConfigFixtures.minimal(append: "rate_limits: { simulate_tier: free }\n"))
        #expect(same.rateLimits.simulateTier == .free)
    }

    static let twoTiers = """
        tiers:
          free:
            tenant: { read: 4, write: 2 }
            organization: { read: 4, write: 2 }
          public_self_service:
            tenant: { read: 2, write: 1 }
            organization: { read: 2, write: 1 }

        """

    @Test("judged against tenant.tiers_file when the load can read it: the tenant's tier and the simulated one")
    func tiersFile() throws {
        let tiers = Self.twoTiers
        let read: (String) -> String? = { $0 == "/etc/gw/tiers.yaml" ? tiers : nil }
        // The file knows no public_enterprise: refused at tenant.tier (line 5).
        let unknown = errors(
            ConfigFixtures.minimal([("  tier: free\n", "  tier: public_enterprise\n  tiers_file: tiers.yaml\n")]),
            readFile: read)
        expectOne(unknown, line: 5, path: "tenant.tier", message: "unknown tier 'public_enterprise'")
        // In that file public_self_service is below free, so it may be simulated; and private_basic is unknown.
        let withFile = [("  tier: free\n", "  tier: free\n  tiers_file: tiers.yaml\n")]
        let lower = try ConfigFixtures.load(
            ConfigFixtures.minimal(withFile, append: "rate_limits: { simulate_tier: public_self_service }\n"),
            readFile: read)
        #expect(lower.rateLimits.simulateTier == .publicSelfService)
        expectOne(
            errors(
                ConfigFixtures.minimal(withFile, append: "rate_limits: { simulate_tier: private_basic }\n"),
                readFile: read),
            line: 13, path: "rate_limits.simulate_tier", message: "unknown tier 'private_basic'")
        // A tier file this load cannot read is not judged here (`check` names the missing file itself).
        #expect(
            errors(
                ConfigFixtures.minimal(withFile, append: "rate_limits: { simulate_tier: private_basic }\n"),
                readFile: { _ in nil }
            ).isEmpty)
    }
}
