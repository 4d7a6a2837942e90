import GatewayCore
import Testing

@testable import Policy

/// `faults:` accepts every rule `FaultInjector` can carry out: any status it injects, or none (a delay-only rule),
/// and refuses the rest at the key's own line.
@Suite("Config loader: faults")
struct ConfigFaultsTests {
    private func load(_ faults: String) throws(ConfigErrors) -> GatewayConfig {
        try ConfigFixtures.load(ConfigFixtures.minimal(append: "faults: \(faults)\n"))
    }

    @Test("every status the injector supports loads", arguments: FaultRule.allowedStatuses.sorted())
    func everyInjectableStatus(status: Int) throws {
        let config = try load("[{ route: GET details, share: 0.5, status: \(status) }]")
        #expect(config.faults.map(\.status) == [status])
        #expect(FaultRule.allowedStatuses.isSuperset(of: [429, 500, 502, 503, 504]))
    }

    @Test("a rule without status but with delay_ms loads as a delay-only rule")
    func delayOnly() throws {
        let config = try load("[{ route: GET domains, share: 1.0, delay_ms: 400 }]")
        #expect(config.faults.count == 1)
        #expect(config.faults.first?.status == nil)
        #expect(config.faults.first?.delayMs == 400)
        #expect(config.faults.first?.operation == "list-domains")
        // The policy built from it accepts the rule too (FaultRule refuses a rule with no effect).
        let policy = try RequestPolicy(config: config, tiers: .embedded)
        #expect(policy.faults.rules.first?.status == nil)
        #expect(policy.faults.rules.first?.delayMilliseconds == 400)
    }

    @Test(
        "a rule that cannot be injected is refused at file:line:col: key.path",
        arguments: [
            ("[{ route: GET details, share: 0.5, status: 404 }]", "faults[0].status", "must be one of 429, 500, 502"),
            ("[{ route: GET details, share: 0.5, status: 501 }]", "faults[0].status", "or left out for a delay-only"),
            ("[{ route: GET details, share: 0.5 }]", "faults[0]", "needs a `status`, a positive `delay_ms`, or both"),
            ("[{ route: GET details, share: 0.5, delay_ms: 0 }]", "faults[0].delay_ms", "must be positive"),
            ("[{ route: GET details, share: 0.5, delay_ms: 60001 }]", "faults[0].delay_ms", "out of range 0...60000"),
        ])
    func refused(faults: String, path: String, message: String) {
        let errors = ConfigFixtures.errors(ConfigFixtures.minimal(append: "faults: \(faults)\n"))
        #expect(errors.count == 1, "\(errors.map(\.description))")
        guard let error = errors.first else { return }
        #expect(error.path == path)
        #expect(error.message.contains(message), "\(error.message)")
        #expect(error.description.hasPrefix("tenant.yaml:12:\(error.column): \(path): "), "\(error.description)")
    }
}
