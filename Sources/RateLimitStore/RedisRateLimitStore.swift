import CSystemShims
import CHiredis
import Glibc
import Logging
import Policy
import Synchronization

/// A Redis password. Its `description` is redacted, so an `Options` value can be logged or printed safely.
public struct RedisPassword: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    let value: String

    public init(_ value: String) { self.value = value }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// Shared tenant and per-Organization limits kept in Redis, so several gateway replicas spend one budget.
///
/// **Decision.** One `EVALSHA` of `RedisGCRAScript` per request decides both cells atomically on the Redis
/// server's clock (so replicas with skewed clocks still agree), with the same GCRA parameters and the same
/// "both or neither" rule as the local `RateLimiter`. The decision is returned as the same `RateDecision`,
/// with `nowNanoseconds` = the server's time, so headers and `Retry-After` are consistent with the shared cells.
///
/// **Blocking and the event loops.** Calls are blocking hiredis calls on the caller's thread (an event loop),
/// chosen over an async client because a loopback decision takes tens of µs, less than a queue hop and a
/// continuation. They are bounded: each socket read or write waits at most `commandTimeout` (default 10 ms),
/// a connect at most `connectTimeout` (default 50 ms). So a request on a pooled connection blocks at most
/// about 2 × `commandTimeout` (3× after a NOSCRIPT), and one that opens a connection adds `connectTimeout` and
/// the AUTH / SELECT / SCRIPT LOAD round trips; with a hung Redis only `failureThreshold` requests pay that
/// before the breaker opens. Connections come from a mutex-guarded pool of at most `maxConnections`, so with
/// one loop per core and `maxConnections` >= loops a loop never waits for a connection; if none is free the
/// request is decided locally instead (counted in `poolExhausted`), never queued. Give `host` as an address:
/// a name is resolved by the blocking system resolver on every connect.
///
/// **Circuit breaker and fallback.** A failed call (I/O error, timeout, refused connection, an error reply other
/// than NOSCRIPT, a malformed reply) is decided by the local `fallback` limiter. `failureThreshold`
/// consecutive failures (default 3) open the breaker: idle connections are dropped, a warning is logged once,
/// and every request is decided by `fallback` without touching Redis. Once
/// `probeInterval` has passed, exactly one request (the one that wins a compare-and-swap) tries Redis again;
/// if it succeeds the breaker closes and a notice is logged once, else it waits another interval. So while
/// Redis is down at most one request per interval pays for a connect attempt, and a dead Redis costs the
/// other requests one atomic load. While falling back each replica enforces the full budget on its own:
/// pass a `fallback` built with a lower tier if replicas × budget must stay within the tenant's quota.
///
/// **Memory.** Every cell key expires when its TAT passes (it is then a full bucket), so Redis holds only the
/// cells of recently active Organizations. Keys are `<keyPrefix>:{<namespace>}:t:<class>` and
/// `<keyPrefix>:{<namespace>}:o:<class>:<org>`; the hash tag keeps both keys of a script in one cluster slot.
///
/// **NOSCRIPT.** The script's SHA is learnt with `SCRIPT LOAD` once; when the server has lost it (restart,
/// `SCRIPT FLUSH`), that request runs `EVAL` with the full text, which caches it again.
public final class RedisRateLimitStore: RateLimitBackend, Sendable {
    /// Where Redis is and how long the request path may wait for it.
    public struct Options: Sendable, Hashable {
        /// An address (`127.0.0.1`) or a name; names are resolved by the system resolver on each connect.
        public var host: String
        public var port: Int
        public var password: RedisPassword?
        /// `SELECT`ed after connecting when not nil.
        public var database: Int?
        /// Separates deployments sharing one Redis: normally the tenant's name.
        public var namespace: String
        public var keyPrefix: String
        public var connectTimeout: Duration
        public var commandTimeout: Duration
        public var maxConnections: Int
        /// How long the breaker stays open before one request probes Redis again.
        public var probeInterval: Duration
        /// Consecutive failed calls that open the breaker (at least 1). Each failed call is still decided
        /// locally; the threshold only keeps one slow reply from switching every request to the fallback.
        public var failureThreshold: Int

        public init(
            host: String = "127.0.0.1", port: Int = 6379, password: RedisPassword? = nil, database: Int? = nil,
            namespace: String, keyPrefix: String = "myorg-gateway:rl",
            connectTimeout: Duration = .milliseconds(50), commandTimeout: Duration = .milliseconds(10),
            maxConnections: Int = 8, probeInterval: Duration = .seconds(1), failureThreshold: Int = 3
        ) {
            self.host = host
            self.port = port
            self.password = password
            self.database = database
            self.namespace = namespace
            self.keyPrefix = keyPrefix
            self.connectTimeout = connectTimeout
            self.commandTimeout = commandTimeout
            self.maxConnections = max(1, maxConnections)
            self.probeInterval = probeInterval
            self.failureThreshold = max(1, failureThreshold)
        }

        /// `host:port`, for logs.
        public var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// Counters for metrics; all monotonic except `openConnections`.
    public struct Statistics: Sendable, Hashable {
        /// Decisions made by the Redis script.
        public var redisDecisions: Int
        /// Decisions made by the local fallback limiter (breaker open, failed call, or pool exhausted).
        public var fallbackDecisions: Int
        /// Failed Redis calls (every kind, timeouts included).
        public var errors: Int
        /// Failed Redis calls that were timeouts.
        public var timeouts: Int
        /// Transitions from Redis to the fallback (breaker opened).
        public var fallbackTransitions: Int
        /// Transitions from the fallback back to Redis (breaker closed by a successful probe).
        public var recoveries: Int
        /// Probes attempted while the breaker was open.
        public var probes: Int
        /// Requests decided locally because every connection was busy.
        public var poolExhausted: Int
        /// `EVAL`s run because the server had lost the script (NOSCRIPT).
        public var scriptReloads: Int
        /// Connections open now (idle and in use).
        public var openConnections: Int
        /// The last failure's description (from hiredis or the server; never a secret), nil if none yet.
        public var lastError: String?
    }

    public let options: Options
    public let configuration: RateLimiterConfiguration
    /// Decides while Redis is unavailable.
    public let fallback: RateLimiter

    private let logger: Logger
    private let monotonicNanoseconds: @Sendable () -> Int64
    private let probeIntervalNanoseconds: Int64
    private let windowSeconds: Int
    private let readCells: ClassCells
    private let writeCells: ClassCells
    private let pool: Mutex<PoolState>
    private let scriptSHA = Mutex<String?>(nil)
    /// Monotonic time until which the breaker is open; 0 while closed (Redis in use).
    private let openUntil = Atomic<Int64>(0)
    /// Failed calls since the last success, while closed.
    private let consecutiveFailures = Atomic<Int>(0)
    private let lastError = Mutex<String?>(nil)
    private let counters = StoreCounters()

    /// Builds the store; no I/O happens until the first decision (or `connect()`).
    /// - Parameters:
    ///   - configuration: the tier and burst, the same value the local limiter would get.
    ///   - fallback: the limiter used while Redis is unavailable; default `RateLimiter(configuration:)`.
    ///   - monotonicNanoseconds: the breaker's clock (tests may inject one); default `CLOCK_MONOTONIC`.
    ///
    /// Ignores `SIGPIPE` for the process: hiredis writes with `write(2)`, and a write to a connection Redis
    /// closed would otherwise kill the process (the gateway ignores it at start-up anyway).
    public init(
        configuration: RateLimiterConfiguration, options: Options, fallback: RateLimiter? = nil,
        logger: Logger = Logger(label: "myorg-gateway.rate-limits"),
        monotonicNanoseconds: @escaping @Sendable () -> Int64 = RedisRateLimitStore.monotonicNow
    ) {
        signal(SIGPIPE, SIG_IGN)
        self.options = options
        self.configuration = configuration
        let local = fallback ?? RateLimiter(configuration: configuration)
        self.fallback = local
        self.logger = logger
        self.monotonicNanoseconds = monotonicNanoseconds
        let (seconds, attoseconds) = options.probeInterval.components
        probeIntervalNanoseconds = max(1, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        let burst = configuration.burstSeconds
        windowSeconds = burst.isFinite ? max(1, Int(min(burst, 3600).rounded())) : 1
        let base = "\(options.keyPrefix):{\(options.namespace)}"
        readCells = ClassCells(
            rateClass: .read, base: base, tenant: MicrosecondGCRA(local.tenantRead),
            organization: MicrosecondGCRA(local.organizationRead))
        writeCells = ClassCells(
            rateClass: .write, base: base, tenant: MicrosecondGCRA(local.tenantWrite),
            organization: MicrosecondGCRA(local.organizationWrite))
        pool = Mutex(PoolState())
    }

    /// `CLOCK_MONOTONIC` in nanoseconds.
    public static func monotonicNow() -> Int64 { cshim_monotonic_nanoseconds() }

    /// True while the breaker is open and decisions come from `fallback`.
    public var isUsingFallback: Bool { openUntil.load(ordering: .relaxed) != 0 }

    public var statistics: Statistics {
        var snapshot = counters.snapshot(openConnections: pool.withLock { $0.open })
        snapshot.lastError = lastError.withLock { $0 }
        return snapshot
    }

    /// The Redis key of the tenant cell of `rateClass` (diagnostics and tests).
    public func tenantKey(_ rateClass: RateLimitClass) -> String { cells(rateClass).tenantKey }

    /// The Redis key of `org`'s cell of `rateClass` (diagnostics and tests).
    public func organizationKey(org: String, _ rateClass: RateLimitClass) -> String {
        cells(rateClass).organizationKey(org)
    }

    /// Opens one connection and loads the script, for a start-up check; true when Redis answered. A failure
    /// opens the breaker at once (no threshold), so the first requests do not each wait for a dead Redis.
    @discardableResult
    public func connect() -> Bool {
        do throws(RedisError) {
            let connection = try checkOut()
            do {
                _ = try loadScript(connection)
            } catch {
                checkIn(connection, healthy: false)
                throw error
            }
            checkIn(connection, healthy: true)
            recover()
            return true
        } catch .poolExhausted {
            return false
        } catch {
            trip(error)
            return false
        }
    }

    public func admit(org: String, rateClass: RateLimitClass, nowNanoseconds: Int64) -> RateDecision {
        let until = openUntil.load(ordering: .acquiring)
        if until != 0 {
            let now = monotonicNanoseconds()
            guard now >= until,
                openUntil.compareExchange(
                    expected: until, desired: max(1, now + probeIntervalNanoseconds), ordering: .acquiringAndReleasing
                ).exchanged
            else {
                return local(org: org, rateClass: rateClass, nowNanoseconds: nowNanoseconds)
            }
            counters.probes.add(1, ordering: .relaxed)
            do {
                let decision = try decide(org: org, rateClass: rateClass)
                recover()
                return decision
            } catch {
                record(error)
                logger.debug(
                    "rate limits: Redis probe failed; still using the local limiter",
                    metadata: ["redis": "\(options.address)", "error": "\(error)"])
                return local(org: org, rateClass: rateClass, nowNanoseconds: nowNanoseconds)
            }
        }
        do {
            let decision = try decide(org: org, rateClass: rateClass)
            if consecutiveFailures.load(ordering: .relaxed) != 0 { consecutiveFailures.store(0, ordering: .relaxed) }
            return decision
        } catch .poolExhausted {
            counters.poolExhausted.add(1, ordering: .relaxed)
            return local(org: org, rateClass: rateClass, nowNanoseconds: nowNanoseconds)
        } catch {
            let failures = consecutiveFailures.wrappingAdd(1, ordering: .relaxed).newValue
            if failures >= options.failureThreshold {
                trip(error)
            } else {
                record(error)
                logger.debug(
                    "rate limits: Redis call failed; this request is decided locally",
                    metadata: ["redis": "\(options.address)", "error": "\(error)", "consecutive": "\(failures)"])
            }
            return local(org: org, rateClass: rateClass, nowNanoseconds: nowNanoseconds)
        }
    }

    // MARK: - Decision

    private func cells(_ rateClass: RateLimitClass) -> ClassCells { rateClass == .read ? readCells : writeCells }

    private func local(org: String, rateClass: RateLimitClass, nowNanoseconds: Int64) -> RateDecision {
        counters.fallbackDecisions.add(1, ordering: .relaxed)
        return fallback.admit(org: org, class: rateClass, now: nowNanoseconds)
    }

    private func decide(org: String, rateClass: RateLimitClass) throws(RedisError) -> RateDecision {
        let cells = cells(rateClass)
        let connection = try checkOut()
        let outcome: RedisGCRAScript.Outcome
        do {
            outcome = try evaluate(connection, cells: cells, org: org)
        } catch {
            checkIn(connection, healthy: false)
            throw error
        }
        checkIn(connection, healthy: true)
        counters.redisDecisions.add(1, ordering: .relaxed)
        return decision(outcome, cells: cells)
    }

    /// Runs the script on `connection`: EVALSHA, or EVAL when the SHA is unknown to this server.
    private func evaluate(_ connection: RedisConnection, cells: ClassCells, org: String)
        throws(RedisError) -> RedisGCRAScript.Outcome
    {
        let sha: String
        if let known = scriptSHA.withLock({ $0 }) { sha = known } else { sha = try loadScript(connection) }
        var arguments = ["EVALSHA", sha, "2", cells.tenantKey, cells.organizationKey(org)]
        arguments += cells.arguments
        var reply = try connection.command(arguments)
        if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
            counters.scriptReloads.add(1, ordering: .relaxed)
            arguments[0] = "EVAL"
            arguments[1] = RedisGCRAScript.source
            reply = try connection.command(arguments)
        }
        if case .error(let message) = reply { throw .server(message) }
        return try RedisGCRAScript.Outcome(reply: reply)
    }

    /// `SCRIPT LOAD`s the script and remembers its SHA.
    private func loadScript(_ connection: RedisConnection) throws(RedisError) -> String {
        let reply = try connection.command(["SCRIPT", "LOAD", RedisGCRAScript.source])
        if case .error(let message) = reply { throw .server(message) }
        guard let sha = reply.text, sha.utf8.count == 40 else {
            throw .unexpectedReply("SCRIPT LOAD returned \(RedisGCRAScript.shape(reply))")
        }
        scriptSHA.withLock { $0 = sha }
        return sha
    }

    private func decision(_ outcome: RedisGCRAScript.Outcome, cells: ClassCells) -> RateDecision {
        let now = outcome.nowMicroseconds
        let tenant = cells.tenant.state(
            .tenant, cells.rateClass, windowSeconds: windowSeconds, tat: outcome.tenantTAT, now: now)
        let organization = cells.organization.state(
            .organization, cells.rateClass, windowSeconds: windowSeconds, tat: outcome.organizationTAT, now: now)
        let limitedBy: RateLimitScope?
        switch outcome.result {
        case .admitted: limitedBy = nil
        case .refusedByTenant: limitedBy = .tenant
        case .refusedByOrganization: limitedBy = .organization
        }
        return RateDecision(
            admitted: outcome.result == .admitted, limitedBy: limitedBy, rateClass: cells.rateClass,
            tierName: configuration.tier.name, tenant: tenant, organization: organization,
            nowNanoseconds: now * 1000)
    }

    // MARK: - Breaker

    private func record(_ error: RedisError) {
        counters.errors.add(1, ordering: .relaxed)
        if error.isTimeout { counters.timeouts.add(1, ordering: .relaxed) }
        lastError.withLock { $0 = error.description }
    }

    /// Opens the breaker after a failed call; only the call that closed→opened it logs.
    private func trip(_ error: RedisError) {
        record(error)
        let until = max(1, monotonicNanoseconds() + probeIntervalNanoseconds)
        let (opened, _) = openUntil.compareExchange(expected: 0, desired: until, ordering: .acquiringAndReleasing)
        guard opened else { return }
        consecutiveFailures.store(0, ordering: .relaxed)
        counters.fallbackTransitions.add(1, ordering: .relaxed)
        drainIdleConnections()
        logger.warning(
            "rate limits: Redis store unavailable; deciding with the local limiter until it answers again",
            metadata: [
                "redis": "\(options.address)", "error": "\(error)",
                "probe_interval": "\(options.probeInterval)",
            ])
    }

    private func recover() {
        // Only the prober gets here while open; another prober cannot run until the interval passes again.
        guard openUntil.exchange(0, ordering: .acquiringAndReleasing) != 0 else { return }
        counters.recoveries.add(1, ordering: .relaxed)
        logger.notice(
            "rate limits: Redis store reachable again; shared limits restored",
            metadata: ["redis": "\(options.address)"])
    }

    // MARK: - Pool

    /// Internal (not private) so tests can hold a connection to exhaust the pool.
    func checkOut() throws(RedisError) -> RedisConnection {
        enum Take: Sendable {
            case idle(RedisConnection)
            case connect
            case exhausted
        }
        let take: Take = pool.withLock { state in
            if let connection = state.idle.popLast() { return .idle(connection) }
            guard state.open < options.maxConnections else { return .exhausted }
            state.open += 1
            return .connect
        }
        switch take {
        case .idle(let connection): return connection
        case .exhausted: throw .poolExhausted
        case .connect:
            do {
                return try open()
            } catch {
                pool.withLock { $0.open -= 1 }
                throw error
            }
        }
    }

    /// Connects, authenticates and selects the database.
    private func open() throws(RedisError) -> RedisConnection {
        let connection = try RedisConnection(
            host: options.host, port: options.port, connectTimeout: options.connectTimeout,
            commandTimeout: options.commandTimeout)
        if let password = options.password {
            let reply = try connection.command(["AUTH", password.value])
            if case .error(let message) = reply { throw .server(message) }
        }
        if let database = options.database {
            let reply = try connection.command(["SELECT", String(database)])
            if case .error(let message) = reply { throw .server(message) }
        }
        return connection
    }

    func checkIn(_ connection: RedisConnection, healthy: Bool) {
        let keep = healthy && !connection.isBroken
        // The context is freed (the socket closed) outside the lock, when the last reference goes.
        let dropped: RedisConnection? = pool.withLock { state in
            if keep {
                state.idle.append(connection)
                return nil
            }
            state.open -= 1
            return connection
        }
        _ = dropped
    }

    /// Drops the idle connections: after a failure they are most likely dead too, and a probe should start
    /// from a fresh connect.
    private func drainIdleConnections() {
        let idle: [RedisConnection] = pool.withLock { state in
            let idle = state.idle
            state.idle.removeAll()
            state.open -= idle.count
            return idle
        }
        _ = idle
    }
}

/// The keys and script arguments of one rate class, built once.
private struct ClassCells: Sendable {
    let rateClass: RateLimitClass
    let tenant: MicrosecondGCRA
    let organization: MicrosecondGCRA
    let tenantKey: String
    let organizationKeyPrefix: String
    let arguments: [String]

    init(rateClass: RateLimitClass, base: String, tenant: MicrosecondGCRA, organization: MicrosecondGCRA) {
        self.rateClass = rateClass
        self.tenant = tenant
        self.organization = organization
        tenantKey = "\(base):t:\(rateClass.rawValue)"
        organizationKeyPrefix = "\(base):o:\(rateClass.rawValue):"
        arguments = tenant.arguments + organization.arguments
    }

    func organizationKey(_ org: String) -> String { organizationKeyPrefix + org }
}

private struct PoolState: Sendable {
    var idle: [RedisConnection] = []
    /// Connections that exist: idle plus checked out (plus ones being connected).
    var open = 0
}

private final class StoreCounters: Sendable {
    let redisDecisions = Atomic<Int>(0)
    let fallbackDecisions = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let timeouts = Atomic<Int>(0)
    let fallbackTransitions = Atomic<Int>(0)
    let recoveries = Atomic<Int>(0)
    let probes = Atomic<Int>(0)
    let poolExhausted = Atomic<Int>(0)
    let scriptReloads = Atomic<Int>(0)

    func snapshot(openConnections: Int) -> RedisRateLimitStore.Statistics {
        RedisRateLimitStore.Statistics(
            redisDecisions: redisDecisions.load(ordering: .relaxed),
            fallbackDecisions: fallbackDecisions.load(ordering: .relaxed),
            errors: errors.load(ordering: .relaxed), timeouts: timeouts.load(ordering: .relaxed),
            fallbackTransitions: fallbackTransitions.load(ordering: .relaxed),
            recoveries: recoveries.load(ordering: .relaxed), probes: probes.load(ordering: .relaxed),
            poolExhausted: poolExhausted.load(ordering: .relaxed),
            scriptReloads: scriptReloads.load(ordering: .relaxed), openConnections: openConnections)
    }
}
