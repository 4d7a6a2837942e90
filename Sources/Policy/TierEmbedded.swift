/// The built-in copy of `policies/tiers.yaml`, used when the configuration names no tier file.
///
/// A test compares it with the file byte for byte; after editing the file, paste it here again.
public enum EmbeddedTiers {
    public static let yaml = #"""
        # Rate limits of the My Organization API per service tier, in requests per second (RPS).
        #
        # Source: the API's product documentation (shared/reference/my-organization-api-overview.md),
        # sections "Rate limits" (tenant-wide, per tier) and "Per-Organization rate limits".
        # `tenant` applies to the whole tenant; `organization` to each Organization (keyed by the token's org_id).
        # A request passes only when both its tenant limit and its Organization limit admit it.
        #
        # List the tiers from the lowest to the highest. `rate_limits.simulate_tier` may name any tier whose
        # four figures are all at most the tenant tier's figures.
        tiers:
          free:
            tenant: { read: 4, write: 2 }
            organization: { read: 4, write: 2 }
          public_self_service:
            tenant: { read: 8, write: 4 }
            organization: { read: 4, write: 2 }
          public_enterprise:
            tenant: { read: 40, write: 20 }
            organization: { read: 8, write: 4 }
          private_basic:
            tenant: { read: 40, write: 20 }
            organization: { read: 8, write: 4 }
          private_performance:
            tenant: { read: 160, write: 80 }
            organization: { read: 16, write: 8 }

        """#
}
