/// The gateway's whole configuration, validated and immutable: one value per successful load.
///
/// Built only by `GatewayConfig.load(yaml:file:baseDirectory:readFile:)`, which refuses a file with any
/// problem. Relative paths are already resolved against the config file's directory. The value holds no
/// secrets: secret material is only ever referenced (`SecretSource`), and the loader refuses inline values.
public struct GatewayConfig: Sendable {
    /// The config file's name as given to the loader (used in messages).
    public let file: String
    /// The directory relative paths were resolved against.
    public let baseDirectory: String

    public let tenant: Tenant
    public let listeners: [Listener]
    /// One per tenant domain that the gateway forwards for, in file order.
    public let upstreams: [Upstream]
    /// Forward `/my-org/` paths that match no endpoint instead of answering 404.
    public let forwardUnknownEndpoints: Bool
    public let limits: Limits
    public let tokens: Tokens
    public let access: Access
    public let clients: [Client]
    public let stepUp: StepUp?
    public let cors: CORS
    public let rateLimits: RateLimits
    public let faults: [Fault]
    public let logging: Logging
    public let recording: Recording
    /// Nil: no admin listener.
    public let admin: Admin?
    /// The endpoint table in force: `tenant.endpoints_file` or the embedded default.
    public let endpoints: EndpointTable

    private let clientIndex: [String: Int]
    private let upstreamIndex: [String: Int]

    init(
        file: String, baseDirectory: String, tenant: Tenant, listeners: [Listener], upstreams: [Upstream],
        forwardUnknownEndpoints: Bool, limits: Limits, tokens: Tokens, access: Access, clients: [Client],
        stepUp: StepUp?, cors: CORS, rateLimits: RateLimits, faults: [Fault], logging: Logging,
        recording: Recording, admin: Admin?, endpoints: EndpointTable
    ) {
        self.file = file
        self.baseDirectory = baseDirectory
        self.tenant = tenant
        self.listeners = listeners
        self.upstreams = upstreams
        self.forwardUnknownEndpoints = forwardUnknownEndpoints
        self.limits = limits
        self.tokens = tokens
        self.access = access
        self.clients = clients
        self.stepUp = stepUp
        self.cors = cors
        self.rateLimits = rateLimits
        self.faults = faults
        self.logging = logging
        self.recording = recording
        self.admin = admin
        self.endpoints = endpoints
        var clientIndex: [String: Int] = [:]
        for (i, c) in clients.enumerated() { clientIndex[c.clientID] = i }
        self.clientIndex = clientIndex
        var upstreamIndex: [String: Int] = [:]
        for (i, u) in upstreams.enumerated() { upstreamIndex[u.domain] = i }
        self.upstreamIndex = upstreamIndex
    }

    public func client(id: String) -> Client? { clientIndex[id].map { clients[$0] } }

    /// The upstream for a tenant domain (lowercase, no port).
    public func upstream(for domain: String) -> Upstream? { upstreamIndex[domain].map { upstreams[$0] } }
}

extension GatewayConfig {
    /// The five service tiers of the reference's rate-limit tables.
    public enum TierName: String, Sendable, Hashable, CaseIterable {
        case free
        case publicSelfService = "public_self_service"
        case publicEnterprise = "public_enterprise"
        case privateBasic = "private_basic"
        case privatePerformance = "private_performance"
    }

    /// A path from the configuration, resolved, with where it was written (for `check`).
    public struct FilePath: Sendable, Equatable, CustomStringConvertible {
        /// Absolute, or relative to the process's directory when the base directory was relative.
        public let path: String
        /// As written in the file.
        public let written: String
        public let location: ConfigLocation
        public var description: String { path }
    }

    /// Where a secret comes from. Never the secret itself.
    public enum SecretSource: Sendable, Equatable {
        /// An environment variable's name, and where the configuration named it.
        case environment(String, ConfigLocation)
        case file(FilePath)

        /// Where the configuration names the secret, for errors about it (never about its value).
        public var location: ConfigLocation {
            switch self {
            case .environment(_, let at): return at
            case .file(let file): return file.location
            }
        }
    }

    public struct Tenant: Sendable, Equatable {
        public let name: String
        /// The tenant's environment tag, written into log events as `environment_name`; nil: not written.
        public let environmentName: String?
        public let canonicalDomain: String
        public let customDomains: [String]
        public let tier: TierName
        public let jwks: JWKS
        /// Nil: the tier table beside the endpoint table, else the embedded default.
        public let tiersFile: FilePath?
        /// Nil: the embedded endpoint table.
        public let endpointsFile: FilePath?

        /// The canonical domain first, then the custom domains.
        public var domains: [String] { [canonicalDomain] + customDomains }

        public func isTenantDomain(_ domain: String) -> Bool {
            domain == canonicalDomain || customDomains.contains(domain)
        }
    }

    public struct JWKS: Sendable, Equatable {
        public enum Source: Sendable, Equatable {
            case url(ConfigURL)
            case file(FilePath)
        }
        public let source: Source
        public let refreshIntervalS: Int
        public let minRefetchIntervalS: Int
    }

    public struct Listener: Sendable, Equatable {
        public let address: SocketAddress
        /// The domain this listener serves; nil: the request's Host must name a tenant domain.
        public let domain: String?
        /// Nil: plain HTTP/1.1 and h2c with prior knowledge.
        public let tls: TLS?
    }

    public struct TLS: Sendable, Equatable {
        public struct Certificate: Sendable, Equatable {
            public let cert: FilePath
            public let key: FilePath
        }
        public let certificates: [Certificate]
        /// Subset of `h2`, `http/1.1`, in preference order.
        public let alpn: [String]
    }

    public struct Upstream: Sendable, Equatable {
        /// The tenant domain this upstream serves (the key in the file).
        public let domain: String
        public let url: ConfigURL
        public let caFile: FilePath?
        public let maxConnections: Int
        public let connectTimeoutMs: Int
        public let responseTimeoutMs: Int
        public let idleTimeoutMs: Int
        /// Custom-domain edge mode: the `cname-api-key` header's secret.
        public let cnameAPIKey: SecretSource?
        /// Lowercase header name carrying the client IP to the edge (e.g. `x-forwarded-for`).
        public let clientIPHeader: String?
    }

    public struct Limits: Sendable, Equatable {
        public let maxConnections: Int
        public let headerReadTimeoutMs: Int
        public let idleTimeoutMs: Int
        /// A request body streamed to the upstream (over 64 KiB) must arrive at least this fast on average after
        /// a 5 s grace; 0 turns the minimum off.
        public let minBodyBytesPerSecond: Int
        public let maxBodyBytes: Int
        public let maxHeaderBytes: Int
        public let shutdownGraceMs: Int
    }

    /// Token rules; also what `ClaimsChecker` needs.
    public struct Tokens: Sendable, Equatable {
        public let algorithms: [String]
        /// Clock skew allowed for `nbf` and `iat`: a token that seems issued a little in the future (the sidecar's
        /// clock behind the tenant's) is still accepted.
        public let leewayS: Int
        /// Grace after `exp`: none by default, since RFC 7519 §4.1.4 says the token MUST NOT be accepted on or after
        /// that time, and the tenant behind the gateway would refuse it anyway.
        public let expLeewayS: Int
        public let maxLifetimeS: Int
        public let maxTokenBytes: Int

        public init(
            algorithms: [String] = ["RS256"], leewayS: Int = 30, expLeewayS: Int = 0, maxLifetimeS: Int = 600,
            maxTokenBytes: Int = 8192
        ) {
            self.algorithms = algorithms
            self.leewayS = leewayS
            self.expLeewayS = expLeewayS
            self.maxLifetimeS = maxLifetimeS
            self.maxTokenBytes = maxTokenBytes
        }
    }

    public enum UserFlows: String, Sendable, Equatable, CaseIterable {
        case requireClientGrant = "require_client_grant"
        case allowAll = "allow_all"
    }

    public enum ClientCredentials: String, Sendable, Equatable, CaseIterable {
        case denyAll = "deny_all"
        case requireClientGrant = "require_client_grant"
        case allowAll = "allow_all"
    }

    /// The application API access policies of the tenant's My Organization API.
    public struct Access: Sendable, Equatable {
        public let userFlows: UserFlows
        public let clientCredentials: ClientCredentials

        public init(userFlows: UserFlows = .requireClientGrant, clientCredentials: ClientCredentials = .denyAll) {
            self.userFlows = userFlows
            self.clientCredentials = clientCredentials
        }
    }

    /// An application's grant and its `my_organization_configuration`.
    public struct Client: Sendable, Equatable {
        public let clientID: String
        public let name: String?
        /// Exact origins or one-wildcard patterns, validated by the tenant's rules.
        public let allowedOrigins: [String]
        /// The dashboard's "Allow Cross-Origin Authentication": when off, the client's origins are kept but no
        /// browser origin is trusted for it (the overview: "If you do not need to use CORS ... toggled off").
        public let crossOriginAuthentication: Bool
        /// The client grant: the most this client may use, in file order.
        public let grantScopes: [String]
        public let myOrganization: MyOrganizationConfiguration?

        public init(
            clientID: String, name: String? = nil, allowedOrigins: [String] = [],
            crossOriginAuthentication: Bool = true,
            grantScopes: [String] = [], myOrganization: MyOrganizationConfiguration? = nil
        ) {
            self.clientID = clientID
            self.name = name
            self.allowedOrigins = allowedOrigins
            self.crossOriginAuthentication = crossOriginAuthentication
            self.grantScopes = grantScopes
            self.myOrganization = myOrganization
        }
    }

    public enum ConnectionDeletionBehavior: String, Sendable, Equatable, CaseIterable {
        case allow
        case allowIfEmpty = "allow_if_empty"
    }

    public struct MyOrganizationConfiguration: Sendable, Equatable {
        /// The identity-provider strategies the tenant supports for this API.
        public static let strategies = ["pingfederate", "ad", "adfs", "waad", "google-apps", "okta", "oidc", "samlp"]

        public let allowedStrategies: [String]
        public let connectionDeletionBehavior: ConnectionDeletionBehavior
        public let connectionProfileID: String?
        public let userAttributeProfileID: String?

        public init(
            allowedStrategies: [String], connectionDeletionBehavior: ConnectionDeletionBehavior = .allowIfEmpty,
            connectionProfileID: String? = nil, userAttributeProfileID: String? = nil
        ) {
            self.allowedStrategies = allowedStrategies
            self.connectionDeletionBehavior = connectionDeletionBehavior
            self.connectionProfileID = connectionProfileID
            self.userAttributeProfileID = userAttributeProfileID
        }
    }

    /// Scopes whose use demands a stronger authentication than the token's default.
    public struct StepUp: Sendable, Equatable {
        public enum Requirement: Sendable, Equatable {
            /// `amr` must contain the value (e.g. `mfa`).
            case amr(String)
            /// `acr` must equal the value.
            case acr(String)
        }
        public let scopes: [String]
        public let requirement: Requirement

        public init(scopes: [String], requirement: Requirement) {
            self.scopes = scopes
            self.requirement = requirement
        }
    }

    public struct CORS: Sendable, Equatable {
        public let maxAgeS: Int
    }

    public struct RateLimits: Sendable, Equatable {
        public enum Store: Sendable, Equatable {
            case local
            case redis(url: ConfigURL, password: SecretSource?)
        }
        public let store: Store
        /// Seconds of sustained rate a bucket may spend at once.
        public let burstS: Double
        /// Enforce another tier's figures locally (to try an app against them).
        public let simulateTier: TierName?
    }

    /// A fault to inject, for testing clients against errors and delays.
    public struct Fault: Sendable, Equatable {
        /// The endpoint's operation name; nil: every endpoint.
        public let operation: String?
        /// Nil: every organization.
        public let organization: String?
        /// Share of matching requests affected, 0...1.
        public let share: Double
        /// The status answered instead of forwarding (one of `FaultRule.allowedStatuses`); nil: the request is
        /// only delayed by `delayMs`, then forwarded.
        public let status: Int?
        /// Wait this long before answering `status`, or before forwarding when there is no status.
        public let delayMs: Int
    }

    public struct Logging: Sendable, Equatable {
        public enum Level: String, Sendable, Equatable, CaseIterable {
            case trace, debug, info, notice, warning, error, critical
        }
        public enum Fsync: String, Sendable, Equatable, CaseIterable {
            case never, interval, always
        }
        public enum WebhookFormat: String, Sendable, Equatable, CaseIterable {
            case jsonLines = "json_lines"
            case jsonArray = "json_array"
            case jsonObject = "json_object"
        }
        public struct FileSink: Sendable, Equatable {
            public let path: FilePath
            public let maxBytes: Int
            public let fsync: Fsync
            /// Rotated files kept besides the live one (`path.1` … `path.<maxFiles>`); the oldest beyond is deleted.
            public let maxFiles: Int
            /// Names the sink's spool subdirectory; nil: derived from the path.
            public let name: String?

            public init(path: FilePath, maxBytes: Int, fsync: Fsync, maxFiles: Int = 5, name: String? = nil) {
                self.path = path
                self.maxBytes = maxBytes
                self.fsync = fsync
                self.maxFiles = maxFiles
                self.name = name
            }
        }
        /// A header value: written in the file, or read like a secret (and then never shown).
        public enum HeaderValue: Sendable, Equatable {
            case literal(String)
            case secret(SecretSource)
        }
        public struct WebhookHeader: Sendable, Equatable {
            /// As written (an RFC 9110 token); never a hop-by-hop, framing or otherwise gateway-set name.
            public let name: String
            public let value: HeaderValue
        }
        public struct WebhookSink: Sendable, Equatable {
            public let url: ConfigURL
            /// The `Authorization` header value, sent verbatim.
            public let authorization: SecretSource?
            public let format: WebhookFormat
            public let batchSize: Int
            public let intervalMs: Int
            /// Sent with every POST, in this order.
            public let headers: [WebhookHeader]
            /// Names the sink's spool subdirectory, so it survives a change of URL; nil: derived from the URL.
            public let name: String?

            public init(
                url: ConfigURL, authorization: SecretSource?, format: WebhookFormat, batchSize: Int, intervalMs: Int,
                headers: [WebhookHeader] = [], name: String? = nil
            ) {
                self.url = url
                self.authorization = authorization
                self.format = format
                self.batchSize = batchSize
                self.intervalMs = intervalMs
                self.headers = headers
                self.name = name
            }
        }
        /// The disk spool that holds events while a sink is down or slow.
        public struct Spool: Sendable, Equatable {
            /// Bytes of spooled events per sink; past it new events are dropped (counted and logged).
            public let maxBytes: Int
            /// One subdirectory per sink is made below it.
            public let directory: FilePath
        }
        public enum Sink: Sendable, Equatable {
            case stdout
            case file(FileSink)
            case webhook(WebhookSink)
        }
        public let sinks: [Sink]
        public let accessLog: Bool
        public let level: Level
        public let spool: Spool
    }

    public struct Recording: Sendable, Equatable {
        public let enabled: Bool
        public let path: FilePath
        public let sampleRate: Double
        /// Operation names; empty: every endpoint.
        public let operations: [String]
        /// Organization ids; empty: every organization.
        public let organizations: [String]
        public let maxBodyBytes: Int
        /// Lowercase header names redacted in addition to the built-in secret headers.
        public let redactHeaders: [String]
        /// RFC 6901 pointers into JSON bodies, redacted in addition to the built-in secret fields.
        public let redactJSONPointers: [String]
    }

    public struct Admin: Sendable, Equatable {
        public let address: SocketAddress
    }
}
