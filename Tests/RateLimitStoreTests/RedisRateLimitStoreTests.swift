import Dispatch
import Glibc
import Policy
import Synchronization
import Testing

@testable import RateLimitStore

/// Against a real `redis-server` started per test on a free loopback port. Serialized: the timing bounds
/// assume the two cores are not also running other Redis tests.
@Suite(.serialized) struct RedisRateLimitStoreTests {
    static func tier(tenant: Int, organization: Int) -> TierLimits {
        TierLimits(
            name: "test", tenant: TierRates(read: tenant, write: tenant),
            organization: TierRates(read: organization, write: organization))
    }

    static func configuration(tenant: Int, organization: Int, burstSeconds: Double = 1) -> RateLimiterConfiguration {
        RateLimiterConfiguration(tier: tier(tenant: tenant, organization: organization), burstSeconds: burstSeconds)
    }

    static func seconds(since start: Int64) -> Double {
        Double(RedisRateLimitStore.monotonicNow() - start) / 1e9
    }

    /// Two stores ("replicas") hammer one budget from two threads for ~1.5 s: together they never admit more
    /// than burst + rate × elapsed, and both take part.
    @Test(arguments: [(20, 1_000, true), (1_000, 20, false)])
    func twoReplicasShareOneBudget(tenant: Int, organization: Int, manyOrgs: Bool) throws {
        guard let server = RedisServerFixture() else { return }
        try server.start()
        let configuration = Self.configuration(tenant: tenant, organization: organization)
        // Generous timeouts: this test is about sharing, and a loaded CI core must not cause a fallback.
        var options = server.options(namespace: "shared")
        options.commandTimeout = .milliseconds(500)
        let replicas = (0..<2).map { _ in RedisRateLimitStore(configuration: configuration, options: options) }
        let rate = min(tenant, organization)
        let admitted = Mutex([0, 0])
        let calls = Atomic<Int>(0)
        let start = RedisRateLimitStore.monotonicNow()
        DispatchQueue.concurrentPerform(iterations: 2) { replica in
            // Each from its own start: on a busy machine concurrentPerform may run the two one after the other,
            // and a shared start left the second none of the 1.5 s (it then admitted nothing, and the test failed).
            let mine = RedisRateLimitStore.monotonicNow()
            var i = 0
            while Self.seconds(since: mine) < 1.5 {
                let org = manyOrgs ? "org_\(replica)_\(i % 50)" : "org_one"
                if replicas[replica].admit(org: org, rateClass: .read, nowNanoseconds: wallNanoseconds()).admitted {
                    admitted.withLock { $0[replica] += 1 }
                }
                calls.add(1, ordering: .relaxed)
                i += 1
                usleep(500)
            }
        }
        let elapsed = Self.seconds(since: start)
        let perReplica = admitted.withLock { $0 }
        let total = perReplica[0] + perReplica[1]
        let bound = Double(rate) + Double(rate) * elapsed
        print(
            "shared budget \(rate)/s over \(elapsed) s: \(total) admitted (bound \(Int(bound)); per replica \(perReplica)) of "
                + "\(calls.load(ordering: .relaxed)) calls")
        #expect(Double(total) <= bound + 1)
        // The hammering is far above the rate, so the budget is spent almost entirely.
        #expect(Double(total) >= Double(rate) * 1.9)
        #expect(perReplica[0] > 0 && perReplica[1] > 0)
        for replica in replicas {
            let stats = replica.statistics
            #expect(!replica.isUsingFallback)
            #expect(stats.fallbackDecisions == 0 && stats.errors == 0, "\(stats)")
        }
    }

    /// A refusal by one limit writes nothing, so it never spends the other's quota; the decisions match the
    /// local limiter's on the same sequence.
    @Test func aRefusalByOneLimitNeverSpendsTheOther() throws {
        guard let server = RedisServerFixture() else { return }
        try server.start()
        // Tenant: burst 6, one more every 500 ms. Organization: burst 3, one more every second.
        let configuration = Self.configuration(tenant: 2, organization: 1, burstSeconds: 3)
        let store = RedisRateLimitStore(configuration: configuration, options: server.options())
        let local = RateLimiter(configuration: configuration)
        let raw = try server.client()
        let tenantKey = store.tenantKey(.read)
        let now = wallNanoseconds()
        let sequence = ["org_a", "org_a", "org_a", "org_a", "org_b", "org_b", "org_c", "org_c"]
        var redisOutcomes: [String] = []
        var localOutcomes: [String] = []
        var org4TenantBefore: String?
        var org4TenantAfter: String?
        var orgCBefore: String?
        var orgCAfter: String?
        for (i, org) in sequence.enumerated() {
            if i == 3 { org4TenantBefore = try raw.string(tenantKey) }
            if i == 7 { orgCBefore = try raw.string(store.organizationKey(org: "org_c", .read)) }
            let decision = store.admit(org: org, rateClass: .read, nowNanoseconds: now)
            if i == 3 { org4TenantAfter = try raw.string(tenantKey) }
            if i == 7 { orgCAfter = try raw.string(store.organizationKey(org: "org_c", .read)) }
            let expected = local.admit(org: org, class: .read, now: now)
            redisOutcomes.append("\(decision.admitted) \(decision.limitedBy?.rawValue ?? "-") \(decision.remaining)")
            localOutcomes.append("\(expected.admitted) \(expected.limitedBy?.rawValue ?? "-") \(expected.remaining)")
        }
        #expect(
            redisOutcomes == [
                "true - 2", "true - 1", "true - 0", "false organization 0", "true - 2", "true - 1", "true - 0",
                "false tenant 0",
            ])
        #expect(redisOutcomes == localOutcomes)
        // The Organization's refusal left the tenant cell alone, the tenant's left org_c's cell alone.
        #expect(org4TenantBefore != nil && org4TenantBefore == org4TenantAfter)
        #expect(orgCBefore != nil && orgCBefore == orgCAfter)
    }

    @Test func decisionsCarryTheSameHeadersAsLocalOnes() throws {
        guard let server = RedisServerFixture() else { return }
        try server.start()
        let configuration = Self.configuration(tenant: 4, organization: 2)
        let store = RedisRateLimitStore(configuration: configuration, options: server.options())
        var last = store.admit(org: "org_h", rateClass: .write, nowNanoseconds: wallNanoseconds())
        #expect(last.admitted && last.tierName == "test" && last.rateClass == .write)
        let serverSeconds = last.nowNanoseconds / 1_000_000_000
        #expect(abs(serverSeconds - wallNanoseconds() / 1_000_000_000) <= 2)
        #expect(last.headerFields["X-RateLimit-Limit"] == "2")
        #expect(last.headerFields["X-RateLimit-Remaining"] == "1")
        last = store.admit(org: "org_h", rateClass: .write, nowNanoseconds: wallNanoseconds())
        last = store.admit(org: "org_h", rateClass: .write, nowNanoseconds: wallNanoseconds())
        #expect(!last.admitted && last.limitedBy == .organization)
        #expect(last.retryAfterSeconds == 1)
        #expect(last.headerFields["Retry-After"] == "1")
        #expect(last.resetEpochSeconds >= serverSeconds && last.resetEpochSeconds <= serverSeconds + 2)
        #expect(
            last.headerFields["RateLimit-Policy"] == "\"org-write\";q=2;w=1, \"tenant-write\";q=4;w=1")
    }

    /// Keys carry a TTL ending when their cell is idle again, so Redis holds only active cells.
    @Test func keysExpireWhenTheirCellIsIdle() throws {
        guard let server = RedisServerFixture() else { return }
        try server.start()
        // One admission moves an Organization's TAT 1 s ahead (1 per second, burst 1), the tenant's 5 ms
        // (200 per second, burst 200): TTLs long enough that a stalled CI core cannot expire a key early.
        let store = RedisRateLimitStore(
            configuration: Self.configuration(tenant: 200, organization: 1), options: server.options())
        let raw = try server.client()
        for i in 0..<100 {
            #expect(store.admit(org: "org_\(i)", rateClass: .read, nowNanoseconds: wallNanoseconds()).admitted)
        }
        #expect(try raw.integer(["DBSIZE"]) == 101)
        let orgTTL = try raw.integer(["PTTL", store.organizationKey(org: "org_99", .read)])
        #expect(orgTTL > 0 && orgTTL <= 1001)
        let tenantTTL = try raw.integer(["PTTL", store.tenantKey(.read)])
        #expect(tenantTTL > 0 && tenantTTL <= 501)
        usleep(1_200_000)
        #expect(try raw.integer(["DBSIZE"]) == 0)
    }

    @Test func lostScriptIsReloadedWithEval() throws {
        guard let server = RedisServerFixture() else { return }
        try server.start()
        let store = RedisRateLimitStore(
            configuration: Self.configuration(tenant: 50, organization: 50), options: server.options())
        #expect(store.connect())
        #expect(store.admit(org: "org_s", rateClass: .read, nowNanoseconds: wallNanoseconds()).admitted)
        _ = try server.client().command(["SCRIPT", "FLUSH"])
        #expect(store.admit(org: "org_s", rateClass: .read, nowNanoseconds: wallNanoseconds()).admitted)
        #expect(store.admit(org: "org_s", rateClass: .read, nowNanoseconds: wallNanoseconds()).admitted)
        let stats = store.statistics
        #expect(stats.scriptReloads == 1 && stats.redisDecisions == 3 && stats.errors == 0 && !store.isUsingFallback)
    }

    /// Redis stops: decisions continue from the local limiter, logged once; the breaker probes only after the
    /// interval, and the store returns to Redis once it is back.
    @Test func fallsBackWhenRedisStopsAndReturnsWhenItIsBack() throws {
        guard let server = RedisServerFixture() else { return }
        try server.start()
        let (logger, logs) = CapturingLogHandler.logger()
        let clock = TestMonotonicClock()
        let store = RedisRateLimitStore(
            configuration: Self.configuration(tenant: 100, organization: 100),
            options: server.options(probeInterval: .seconds(2)), logger: logger, monotonicNanoseconds: clock.reader)
        #expect(store.admit(org: "org_f", rateClass: .read, nowNanoseconds: wallNanoseconds()).admitted)
        #expect(store.statistics.redisDecisions == 1 && !store.isUsingFallback)

        server.stop()
        // The pooled connection finds EOF, then two connects are refused: the third failure opens the breaker.
        for i in 0..<3 {
            let decision = store.admit(org: "org_f", rateClass: .read, nowNanoseconds: wallNanoseconds())
            #expect(decision.admitted && decision.tierName == "test")
            #expect(store.isUsingFallback == (i == 2))
        }
        for _ in 0..<20 { _ = store.admit(org: "org_f", rateClass: .read, nowNanoseconds: wallNanoseconds()) }
        var stats = store.statistics
        #expect(stats.fallbackTransitions == 1 && stats.errors == 3 && stats.probes == 0)
        #expect(stats.fallbackDecisions == 23 && stats.redisDecisions == 1 && stats.openConnections == 0)
        #expect(stats.lastError?.contains("connect failed") == true, "\(stats)")
        let warnings = logs.messages(atLeast: .warning)
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("local limiter") == true)
        #expect(warnings.first?.contains("127.0.0.1:\(server.port)") == true)

        // The interval passes while Redis is still down: one probe, which fails quietly.
        clock.advance(.seconds(2))
        _ = store.admit(org: "org_f", rateClass: .read, nowNanoseconds: wallNanoseconds())
        _ = store.admit(org: "org_f", rateClass: .read, nowNanoseconds: wallNanoseconds())
        stats = store.statistics
        #expect(stats.probes == 1 && stats.errors == 4 && store.isUsingFallback)
        #expect(logs.messages(atLeast: .warning).count == 1)

        try server.start()
        // Back, but the breaker waits for its interval: no Redis traffic yet.
        _ = store.admit(org: "org_f", rateClass: .read, nowNanoseconds: wallNanoseconds())
        #expect(store.isUsingFallback && store.statistics.probes == 1)
        clock.advance(.seconds(2))
        let back = store.admit(org: "org_f", rateClass: .read, nowNanoseconds: wallNanoseconds())
        #expect(back.admitted && !store.isUsingFallback)
        stats = store.statistics
        #expect(stats.probes == 2 && stats.recoveries == 1 && stats.redisDecisions == 2)
        _ = store.admit(org: "org_f", rateClass: .read, nowNanoseconds: wallNanoseconds())
        #expect(store.statistics.redisDecisions == 3)
        let notices = logs.messages(atLeast: .notice)
        #expect(notices.count == 2)
        #expect(notices.last?.contains("reachable again") == true)
        #expect(try server.client().integer(["EXISTS", store.organizationKey(org: "org_f", .read)]) == 1)
    }

    /// Redis down from the start: the start-up check opens the breaker at once, and the local limiter really
    /// limits (its refusals carry the same headers as any other).
    @Test func unreachableFromTheStartUsesTheLocalLimiter() throws {
        guard let server = RedisServerFixture() else { return }  // never started: nothing listens on its port
        let (logger, logs) = CapturingLogHandler.logger()
        let store = RedisRateLimitStore(
            configuration: Self.configuration(tenant: 100, organization: 2), options: server.options(),
            logger: logger)
        #expect(!store.connect())
        #expect(store.isUsingFallback)
        let now = wallNanoseconds()
        let decisions = (0..<3).map { _ in store.admit(org: "org_d", rateClass: .read, nowNanoseconds: now) }
        #expect(decisions.map(\.admitted) == [true, true, false])
        #expect(decisions[2].limitedBy == .organization && decisions[2].headerFields["Retry-After"] == "1")
        #expect(decisions[2].nowNanoseconds == now)
        let stats = store.statistics
        #expect(stats.fallbackDecisions == 3 && stats.redisDecisions == 0 && stats.errors == 1 && stats.probes == 0)
        #expect(logs.messages(atLeast: .warning).count == 1)
        #expect(logs.messages(atLeast: .warning).first?.contains("Connection refused") == true)
    }

    /// A frozen Redis costs the first `failureThreshold` requests the command timeout each, then nothing while
    /// the breaker is open.
    @Test func aHungRedisTimesOutQuickly() throws {
        guard let server = RedisServerFixture() else { return }
        try server.start()
        defer { server.resume() }
        let clock = TestMonotonicClock()
        // The precondition is a healthy connection. Its first command has the store's 10 ms timeout, which a debug
        // build sharing two cores with the parallel suites can miss; a failed connect trips the breaker and counts
        // an error, so a fresh store is made for each try and the counts below start clean.
        var connected: RedisRateLimitStore?
        for _ in 0..<5 where connected == nil {
            let candidate = RedisRateLimitStore(
                configuration: Self.configuration(tenant: 100, organization: 100),
                options: server.options(commandTimeout: .milliseconds(10)),
                logger: CapturingLogHandler.logger().0, monotonicNanoseconds: clock.reader)
            if candidate.connect() { connected = candidate } else { usleep(50_000) }
        }
        let store = try #require(connected, "could not connect to the test Redis in five tries")
        server.freeze()
        let start = RedisRateLimitStore.monotonicNow()
        let decision = store.admit(org: "org_t", rateClass: .write, nowNanoseconds: wallNanoseconds())
        let firstMs = Double(RedisRateLimitStore.monotonicNow() - start) / 1e6
        // One timeout is below the threshold: that request was decided locally, the breaker stays closed.
        #expect(decision.admitted && !store.isUsingFallback && store.statistics.timeouts == 1)
        for _ in 0..<2 { _ = store.admit(org: "org_t", rateClass: .write, nowNanoseconds: wallNanoseconds()) }
        let threeMs = Double(RedisRateLimitStore.monotonicNow() - start) / 1e6
        #expect(store.isUsingFallback)
        let after = RedisRateLimitStore.monotonicNow()
        for _ in 0..<100 { _ = store.admit(org: "org_t", rateClass: .write, nowNanoseconds: wallNanoseconds()) }
        let hundredMs = Double(RedisRateLimitStore.monotonicNow() - after) / 1e6
        print("hung Redis: first decision \(firstMs) ms, first three \(threeMs) ms, next 100 \(hundredMs) ms")
        let stats = store.statistics
        #expect(stats.timeouts == 3 && stats.errors == 3 && stats.fallbackDecisions == 103, "\(stats)")
        // Bounded by the 10 ms command timeout (plus a connect that the frozen server's kernel still accepts). The
        // bounds leave room for a debug build sharing two cores with the parallel suites; an unbounded wait, or
        // 100 more timeouts after the breaker opened (1 s), would still fail them.
        #expect(firstMs < 500)
        #expect(threeMs < 900)
        #expect(hundredMs < 200)
        server.resume()
        clock.advance(.seconds(1))
        _ = store.admit(org: "org_t", rateClass: .write, nowNanoseconds: wallNanoseconds())
        #expect(!store.isUsingFallback)
    }

    @Test func authenticatesAndNeverLogsThePassword() throws {
        guard let server = RedisServerFixture(password: "pw-in-test-only-7f3a") else { return }
        try server.start()
        let good = RedisRateLimitStore(
            configuration: Self.configuration(tenant: 10, organization: 10), options: server.options())
        #expect(good.admit(org: "org_p", rateClass: .read, nowNanoseconds: wallNanoseconds()).admitted)
        #expect(!good.isUsingFallback)
        var wrong = server.options()
        wrong.password = RedisPassword("not-the-password-9c1e")
        let (logger, logs) = CapturingLogHandler.logger()
        let bad = RedisRateLimitStore(
            configuration: Self.configuration(tenant: 10, organization: 10), options: wrong, logger: logger)
        for _ in 0..<3 {
            #expect(bad.admit(org: "org_p", rateClass: .read, nowNanoseconds: wallNanoseconds()).admitted)
        }
        #expect(bad.isUsingFallback && bad.statistics.errors == 3)
        let all = logs.messages(atLeast: .trace).joined(separator: "\n")
        #expect(all.contains("WRONGPASS") || all.contains("invalid password"))
        #expect(!all.contains("not-the-password-9c1e") && !all.contains("pw-in-test-only-7f3a"))
    }

    /// Every connection busy: that request is decided locally, without opening the breaker.
    @Test func anExhaustedPoolDecidesLocallyWithoutTripping() throws {
        guard let server = RedisServerFixture() else { return }
        try server.start()
        var options = server.options()
        options.maxConnections = 1
        // What is tested is the pool, not the clock: a slow first command on a busy machine must not count.
        options.commandTimeout = .milliseconds(500)
        let (logger, logs) = CapturingLogHandler.logger()
        let store = RedisRateLimitStore(
            configuration: Self.configuration(tenant: 10, organization: 10), options: options, logger: logger)
        let held = try store.checkOut()
        #expect(store.statistics.openConnections == 1)
        let decision = store.admit(org: "org_x", rateClass: .read, nowNanoseconds: wallNanoseconds())
        #expect(decision.admitted && !store.isUsingFallback)
        var stats = store.statistics
        #expect(stats.poolExhausted == 1 && stats.fallbackDecisions == 1 && stats.errors == 0)
        store.checkIn(held, healthy: true)
        _ = store.admit(org: "org_x", rateClass: .read, nowNanoseconds: wallNanoseconds())
        stats = store.statistics
        #expect(stats.redisDecisions == 1 && stats.openConnections == 1)
        #expect(logs.messages(atLeast: .warning).isEmpty)
    }

    /// Read and write cells, and two namespaces, are separate budgets.
    @Test func classesAndNamespacesAreSeparateBudgets() throws {
        guard let server = RedisServerFixture() else { return }
        try server.start()
        let configuration = Self.configuration(tenant: 3, organization: 3)
        let a = RedisRateLimitStore(configuration: configuration, options: server.options(namespace: "tenant-a"))
        let b = RedisRateLimitStore(configuration: configuration, options: server.options(namespace: "tenant-b"))
        func admitted(_ store: RedisRateLimitStore, _ rateClass: RateLimitClass) -> Int {
            (0..<5).filter { i in
                store.admit(org: "org_\(i)", rateClass: rateClass, nowNanoseconds: wallNanoseconds()).admitted
            }.count
        }
        // Burst 3 each (one more per 333 ms: the five calls take well under that).
        #expect(admitted(a, .read) == 3)
        #expect(admitted(a, .write) == 3)
        #expect(admitted(b, .read) == 3)
        #expect(
            try server.client().integer(["EXISTS", a.tenantKey(.read), a.tenantKey(.write), b.tenantKey(.read)]) == 3)
    }

    /// Added latency of one Redis decision on loopback, against the local limiter. Printed, no thresholds.
    @Test func latencyOfOneDecisionOnLoopback() throws {
        guard let server = RedisServerFixture() else { return }
        try server.start()
        let configuration = Self.configuration(tenant: 1_000_000, organization: 1_000_000)
        var options = server.options()
        // Latency is printed, not judged: a command delayed past the production timeout on a busy machine must
        // not turn into a fallback decision and fail the count below.
        options.commandTimeout = .milliseconds(500)
        let store = RedisRateLimitStore(configuration: configuration, options: options)
        let local = RateLimiter(configuration: configuration)
        #expect(store.connect())
        func measure(_ body: (Int) -> Bool) -> (p50: Double, p99: Double, admitted: Int) {
            var samples: [Int64] = []
            samples.reserveCapacity(2_000)
            var admitted = 0
            for i in 0..<2_000 {
                let t0 = RedisRateLimitStore.monotonicNow()
                if body(i) { admitted += 1 }
                samples.append(RedisRateLimitStore.monotonicNow() - t0)
            }
            samples.sort()
            return (Double(samples[1_000]) / 1000, Double(samples[1_980]) / 1000, admitted)
        }
        let redis = measure { i in
            store.admit(org: "org_\(i % 100)", rateClass: .read, nowNanoseconds: wallNanoseconds()).admitted
        }
        let inProcess = measure { i in
            local.admit(org: "org_\(i % 100)", class: .read, now: wallNanoseconds()).admitted
        }
        print(
            "Redis decision on loopback: p50 \(redis.p50) µs, p99 \(redis.p99) µs; local limiter: p50 "
                + "\(inProcess.p50) µs, p99 \(inProcess.p99) µs (2,000 calls each)")
        #expect(redis.admitted == 2_000 && store.statistics.redisDecisions == 2_000)
    }
}
