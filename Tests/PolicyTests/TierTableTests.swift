import Foundation
import Testing

@testable import Policy

@Suite struct TierTableTests {
    static let policiesFile: String = {
        // Tests/PolicyTests/TierTableTests.swift -> repository root -> policies/tiers.yaml
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/policies/tiers.yaml"
    }()

    static func readFile(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw FileMissing(path: path) }
        return String(decoding: data, as: UTF8.self)
    }

    struct FileMissing: Error { var path: String }

    @Test func embeddedCopyEqualsPoliciesFileByteForByte() throws {
        let data = try #require(FileManager.default.contents(atPath: Self.policiesFile))
        #expect(Array(data) == Array(EmbeddedTiers.yaml.utf8))
    }

    @Test(arguments: [
        ("free", 4, 2, 4, 2),
        ("public_self_service", 8, 4, 4, 2),
        ("public_enterprise", 40, 20, 8, 4),
        ("private_basic", 40, 20, 8, 4),
        ("private_performance", 160, 80, 16, 8),
    ])
    func tiersMatchTheReference(name: String, tenantRead: Int, tenantWrite: Int, orgRead: Int, orgWrite: Int) throws {
        let table = try TierTable.parse(yaml: Self.readFile(Self.policiesFile), fileName: "tiers.yaml")
        let tier = try #require(table[name])
        #expect(tier.tenant == TierRates(read: tenantRead, write: tenantWrite))
        #expect(tier.organization == TierRates(read: orgRead, write: orgWrite))
        #expect(TierTable.embedded[name] == tier)
    }

    @Test func tiersKeepFileOrderLowestFirst() {
        #expect(
            TierTable.embedded.names == [
                "free", "public_self_service", "public_enterprise", "private_basic", "private_performance",
            ])
    }

    /// (yaml, expected line, expected key, fragment of the message)
    static let invalid: [(String, Int, String, String)] = [
        ("", 1, "", "empty"),
        ("tiers: []\n", 1, "tiers", "mapping"),
        ("tiers: {}\n", 1, "tiers", "no tier"),
        ("other: 1\n", 1, "other", "unknown key"),
        ("tiers:\n  free:\n    tenant: { read: 4, write: 2 }\n", 2, "tiers.free.organization", "missing"),
        (
            "tiers:\n  free:\n    tenant: { read: 4, write: 2 }\n    organization: { read: 4, write: two }\n", 4,
            "tiers.free.organization.write", "whole number"
        ),
        (
            "tiers:\n  free:\n    tenant: { read: 0, write: 2 }\n    organization: { read: 4, write: 2 }\n", 3,
            "tiers.free.tenant.read", "between 1"
        ),
        (
            "tiers:\n  free:\n    tenant: { read: 4.5, write: 2 }\n    organization: { read: 4, write: 2 }\n", 3,
            "tiers.free.tenant.read", "whole number"
        ),
        (
            "tiers:\n  free:\n    tenant: { read: \"4\", write: 2 }\n    organization: { read: 4, write: 2 }\n", 3,
            "tiers.free.tenant.read", "whole number"
        ),
        (
            "tiers:\n  free:\n    tenant: { read: 4, write: 2, burst: 9 }\n    organization: { read: 4, write: 2 }\n",
            3, "tiers.free.tenant.burst", "unknown key"
        ),
        (
            "tiers:\n  Free:\n    tenant: { read: 4, write: 2 }\n    organization: { read: 4, write: 2 }\n", 2,
            "tiers.Free", "lowercase"
        ),
        (
            "tiers:\n  free:\n    tenant: { read: 4, write: 2 }\n    organization: { read: 4, write: 2 }\n"
                + "  free:\n    tenant: { read: 4, write: 2 }\n    organization: { read: 4, write: 2 }\n", 0, "",
            "duplicate"
        ),
        ("tiers:\n  free: [\n", 3, "", "expected"),
    ]

    @Test(arguments: invalid)
    func invalidFilesAreRefusedWithFileLineAndKey(yaml: String, line: Int, key: String, fragment: String) {
        do {
            let table = try TierTable.parse(yaml: yaml, fileName: "my-tiers.yaml")
            Issue.record("accepted invalid tier file, got \(table)")
        } catch {
            #expect(error.file == "my-tiers.yaml")
            if line > 0 { #expect(error.line == line, "\(error)") }
            #expect(error.line >= 1)
            #expect(error.key == key, "\(error)")
            #expect(error.message.contains(fragment), "\(error)")
            #expect(error.description.hasPrefix("my-tiers.yaml:\(error.line):"))
        }
    }

    @Test func simulateTierMustBeNoHigherThanTheTenantTier() throws {
        let tiers = TierTable.embedded
        let simulated = try RateLimiterConfiguration.resolve(
            tiers: tiers, tenantTier: "public_enterprise", simulateTier: "free")
        #expect(simulated.tier.name == "free")
        #expect(simulated.simulatedFrom == "public_enterprise")
        // Same figures, different name: allowed.
        let sibling = try RateLimiterConfiguration.resolve(
            tiers: tiers, tenantTier: "public_enterprise", simulateTier: "private_basic")
        #expect(sibling.tier.name == "private_basic")
        #expect(throws: RateLimitConfigurationError.simulatedTierHigher("private_performance", tenant: "free")) {
            try RateLimiterConfiguration.resolve(tiers: tiers, tenantTier: "free", simulateTier: "private_performance")
        }
        #expect(throws: RateLimitConfigurationError.unknownTier("gold", known: tiers.names)) {
            try RateLimiterConfiguration.resolve(tiers: tiers, tenantTier: "gold")
        }
        #expect(throws: RateLimitConfigurationError.invalidBurst(0)) {
            try RateLimiterConfiguration.resolve(tiers: tiers, tenantTier: "free", burstSeconds: 0)
        }
        let plain = try RateLimiterConfiguration.resolve(tiers: tiers, tenantTier: "free")
        #expect(plain.simulatedFrom == nil)
        #expect(plain.tier == tiers["free"])
    }
}
