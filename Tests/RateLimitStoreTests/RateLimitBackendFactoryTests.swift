import Glibc
@testable import Policy
import Testing

@testable import RateLimitStore

@Suite struct RateLimitBackendFactoryTests {
    static let at = ConfigLocation(file: "gw.yaml", line: 7, column: 3, path: "rate_limits.password")
    static let tier = TierLimits(
        name: "test", tenant: TierRates(read: 40, write: 20), organization: TierRates(read: 8, write: 4))

    static func url(_ text: String) throws -> ConfigURL {
        try ConfigURL.parse(text, schemes: ["redis": 6379, "rediss": 6379]).get()
    }

    @Test(arguments: [
        ("redis://127.0.0.1:6390", "127.0.0.1", 6390, nil as Int?),
        ("redis://localhost", "localhost", 6379, nil), ("redis://127.0.0.1:6379/3", "127.0.0.1", 6379, 3),
        ("redis://127.0.0.1/", "127.0.0.1", 6379, nil),
    ])
    func optionsFromTheURL(text: String, host: String, port: Int, database: Int?) throws {
        let options = try RedisRateLimitStore.Options(url: Self.url(text), password: nil, namespace: "acme")
        #expect(options.host == host && options.port == port && options.database == database)
        #expect(options.password == nil && options.namespace == "acme")
    }

    @Test func refusesTLSAndABadDatabase() throws {
        #expect(throws: RedisStoreSetupError.tlsUnsupported(url: "rediss://r.example:6380")) {
            try RedisRateLimitStore.Options(url: Self.url("rediss://r.example:6380"), password: nil, namespace: "a")
        }
        #expect(throws: RedisStoreSetupError.invalidDatabase(url: "redis://127.0.0.1/x")) {
            try RedisRateLimitStore.Options(url: Self.url("redis://127.0.0.1/x"), password: nil, namespace: "a")
        }
    }

    @Test func passwordFromTheEnvironmentIsRedactedWhenPrinted() throws {
        let options = try RedisRateLimitStore.Options(
            url: Self.url("redis://127.0.0.1"), password: .environment("REDIS_PW", Self.at), namespace: "a",
            environment: { $0 == "REDIS_PW" ? "s3cr3t-value" : nil })
        #expect(options.password?.value == "s3cr3t-value")
        #expect(!"\(options)".contains("s3cr3t-value"))
        #expect(!String(reflecting: options).contains("s3cr3t-value"))
        #expect(throws: RedisStoreSetupError.missingEnvironment(name: "REDIS_PW", at: Self.at)) {
            try RedisRateLimitStore.Options(
                url: Self.url("redis://127.0.0.1"), password: .environment("REDIS_PW", Self.at), namespace: "a",
                environment: { _ in nil })
        }
        let empty = #expect(throws: RedisStoreSetupError.self) {
            try RedisRateLimitStore.Options(
                url: Self.url("redis://127.0.0.1"), password: .environment("REDIS_PW", Self.at), namespace: "a",
                environment: { _ in "" })
        }
        #expect(empty?.description.contains("gw.yaml:7:3") == true)
    }

    @Test func passwordFromAFileLosesItsTrailingNewline() throws {
        let path = "/tmp/rate-limit-store-test-\(getpid())-pw"
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        #expect(fd >= 0)
        _ = "from-file\n".withCString { write(fd, $0, 10) }
        close(fd)
        let file = GatewayConfig.FilePath(path: path, written: path, location: Self.at)
        let options = try RedisRateLimitStore.Options(
            url: Self.url("redis://127.0.0.1"), password: .file(file), namespace: "a")
        #expect(options.password == RedisPassword("from-file"))
        let missing = GatewayConfig.FilePath(path: path + "-missing", written: path, location: Self.at)
        let error = #expect(throws: RedisStoreSetupError.self) {
            try RedisRateLimitStore.Options(
                url: Self.url("redis://127.0.0.1"), password: .file(missing), namespace: "a")
        }
        #expect(error?.description.contains("No such file") == true)
    }

    @Test func makeBuildsTheBackendTheStoreNames() throws {
        let configuration = RateLimiterConfiguration(tier: Self.tier)
        let local = try RateLimitBackends.make(
            GatewayConfig.RateLimits(store: .local, burstS: 1, simulateTier: nil), configuration: configuration,
            namespace: "acme")
        #expect(local is RateLimiter)
        let redis = try RateLimitBackends.make(
            GatewayConfig.RateLimits(
                store: .redis(url: Self.url("redis://127.0.0.1:1"), password: nil), burstS: 1, simulateTier: nil),
            configuration: configuration, namespace: "acme")
        let store = try #require(redis as? RedisRateLimitStore)
        #expect(store.options.port == 1 && store.tenantKey(.read) == "myorg-gateway:rl:{acme}:t:read")
        #expect(store.organizationKey(org: "org_1", .write) == "myorg-gateway:rl:{acme}:o:write:org_1")
    }

    /// The adapter is the local limiter's own call under the protocol's name.
    @Test func theLocalAdapterDecidesLikeTheLimiter() {
        let a = RateLimiter(tier: Self.tier)
        let b = RateLimiter(tier: Self.tier)
        let backend: any RateLimitBackend = b
        let now: Int64 = 1_800_000_000_000_000_000
        for i in 0..<30 {
            let org = "org_\(i % 3)"
            let rateClass: RateLimitClass = i % 4 == 0 ? .write : .read
            let t = now + Int64(i) * 10_000_000
            #expect(
                backend.admit(org: org, rateClass: rateClass, nowNanoseconds: t)
                    == a.admit(org: org, class: rateClass, now: t))
        }
    }
}
