import HTTP1
import CSystemShims
import Dispatch
import EventLoop
import Foundation
import GatewayCore
import Logging
import Policy
import Recording
import Synchronization
import TLS
import Tokens

/// A running gateway built from a configuration file: listeners, admin endpoints, JWKS refresh, event logs,
/// reload and graceful shutdown.
///
/// Reload (`SIGHUP` or `POST /reload`) builds a complete new snapshot first; only when every part of it loads is
/// it swapped in, so an invalid configuration is refused with its errors and the old one keeps serving.
/// Connections in flight keep the snapshot they started with.
public final class GatewayService: Sendable {
    let configPath: String
    let logger: Logger
    let clock: any WallClock
    let metrics = GatewayMetrics()
    private let state: Mutex<State>
    private let gatewayBox = GatewayRef()
    private let adminBox = Mutex<Gateway?>(nil)
    /// Set when `shutdown` starts: `/readyz` then says so while the drain runs.
    private let stopping = Atomic<Bool>(false)
    private let timers = Mutex<[DispatchSourceTimerBox]>([])
    /// The recorder new requests use, apart from `state` so that the request path takes only this lock (and holds
    /// no reference to the service).
    private let liveRecorder: RecorderRef
    let probe = UpstreamProbe()
    private let trimmer = FreedMemoryTrimmer()
    /// Log pipelines a reload replaced hand over here, one after the other (a pipeline replaced again by a quick
    /// second reload hands over only once it has opened); shutdown waits for them.
    private let pipelineHandovers = DispatchQueue(label: "myorg-gateway.log-handover")
    private let pendingHandovers = DispatchGroup()
    /// Pipelines switched off by a reload and not yet stopped: shutdown stops them too.
    private let retiredPipelines = Mutex<[ObjectIdentifier: LogPipeline]>([:])

    struct State: @unchecked Sendable {
        // Safety: every member is Sendable; the annotation only covers the config's existential members.
        var config: GatewayConfig
        var runtime: PolicyRuntime
        var listeners: [ListenerProfile]
        var generation: Int
        var recorder: ExchangeRecorder
        var reloads = 0
        var reloadFailures = 0
        var lastReloadError: String?
    }

    /// Loads and builds everything; throws with every configuration problem found.
    public init(configPath: String, clock: any WallClock = SystemClock(), logger: Logger) throws {
        self.configPath = configPath
        self.clock = clock
        self.logger = logger
        let config = try GatewayBuilder.loadConfig(path: configPath)
        let built = try GatewayBuilder.build(config, previous: nil)
        GatewayService.warnAboutCertificates(config, built.listeners, logger: logger)
        let recorder = try ExchangeRecorder.make(
            config: config, metrics: metrics, clock: clock, logger: logger, secret: GatewayBuilder.secret)
        let jwks = GatewayService.makeJWKS(
            config: config, origins: built.origins, clock: clock, logger: logger, gateway: gatewayBox)
        if let keys = built.jwksFileKeys { jwks.install(keys, reason: "startup") }
        let runtime = PolicyRuntime(
            policy: built.policy, jwks: jwks, origins: built.origins, traffic: recorder.traffic)
        state = Mutex(
            State(config: config, runtime: runtime, listeners: built.listeners, generation: 1, recorder: recorder))
        liveRecorder = RecorderRef(recorder)
    }

    var config: GatewayConfig { state.withLock { $0.config } }
    var runtime: PolicyRuntime { state.withLock { $0.runtime } }

    /// Starts listeners (and the admin listener); returns the bound addresses of the configured listeners.
    @discardableResult
    public func start(loops: Int? = nil, loopThreads: LoopThreads = .auto) throws -> [NetAddress] {
        MetricsExposition.bootstrap()
        let (config, runtime, listeners, generation) = state.withLock {
            ($0.config, $0.runtime, $0.listeners, $0.generation)
        }
        let snapshot = GatewaySnapshot(
            listeners: listeners, handlers: PolicyHandlerFactory(runtime: runtime), generation: generation)
        let count = loops ?? max(1, ProcessInfo.processInfo.activeProcessorCount)
        let maxConnections = GatewayService.connectionLimit(config: config, loops: count, logger: logger)
        let gateway = Gateway(
            snapshot: snapshot, loops: count, maxConnections: maxConnections, clock: clock, loopThreads: loopThreads,
            metrics: metrics,
            finishedRequest: { [liveRecorder] loopMetrics in
                // Each loop keeps the recorder it last saw and looks again only when a reload replaced it: one
                // relaxed-cost atomic load per request instead of a lock shared by every loop.
                var seen = liveRecorder.snapshot()
                return { exchange, endNanos in
                    if !liveRecorder.isCurrent(seen.generation) { seen = liveRecorder.snapshot() }
                    seen.recorder.record(exchange, endNanos: endNanos, loopMetrics: loopMetrics)
                }
            })
        let bound = try gateway.start()
        gatewayBox.withLock { $0 = gateway }
        // A JWKS file was installed as the build read it; a URL is fetched now.
        if runtime.jwks.keys == nil { runtime.jwks.refetch(reason: "startup") }
        probe.probe(runtime.origins)
        let probeTimer = DispatchSourceTimerBox(everyMilliseconds: 10_000) { [weak self] in
            guard let self else { return }
            self.probe.probe(self.runtime.origins)
        }
        timers.withLock { $0.append(probeTimer) }
        // JWKS refresh and limiter sweeps run off the loops.
        let tick = DispatchSourceTimerBox(everyMilliseconds: 1000) { [weak self] in
            guard let self else { return }
            let runtime = self.runtime
            runtime.jwks.tick()
            if let gateway = self.gatewayBox.withLock({ $0 }) {
                self.trimmer.observe(gateway.state.budget)
            }
            // An unreachable upstream is probed every second, so readiness follows it closely.
            if !self.probe.unreachable.isEmpty { self.probe.probe(runtime.origins) }
            _ = runtime.policy.limiter.sweep(now: self.clock.nowNanoseconds())
        }
        timers.withLock { $0.append(tick) }
        if let admin = config.admin {
            try startAdmin(address: admin.address)
        }
        for address in bound { logger.info("listening", metadata: ["address": "\(address)"]) }
        GatewayService.warnAboutTestingModes(config, logger: logger)
        return bound
    }

    private func startAdmin(address: Policy.SocketAddress) throws {
        guard let net = NetAddress(host: address.host, port: UInt16(address.port)) else { return }
        let admin = AdminEndpoints(service: self)
        let profile = ListenerProfile(
            address: net, domain: nil, tls: nil, http1Limits: .init(), headerReadTimeoutMs: 5000,
            idleTimeoutMs: 30000, allowH2: false)
        let gateway = Gateway(
            snapshot: GatewaySnapshot(
                listeners: [profile], handlers: LocalHandlerFactory(respond: { admin.respond($0, $1, $2) }),
                generation: 1),
            loops: 1, maxConnections: 64, clock: clock,
            // Scrapes and probes are not client connections: they stay out of the metrics they read.
            metrics: .unexposed())
        let bound = try gateway.start()
        adminBox.withLock { $0 = gateway }
        logger.info("admin listening", metadata: ["address": "\(bound[0])"])
    }

    /// Builds a new snapshot from the file and swaps it in; on any error the old snapshot keeps serving.
    @discardableResult
    public func reload() -> Result<Int, BuildError> {
        do {
            let config = try GatewayBuilder.loadConfig(path: configPath)
            let old = runtime
            let built = try GatewayBuilder.build(config, previous: old.policy)
            let listeners = built.listeners
            // Refused before anything is made for it: no key provider, no log pipeline opened for nothing.
            let current = gatewayBox.withLock { $0 }
            guard let current else { throw BuildError("the gateway is not running") }
            let oldListeners = current.state.snapshot.listeners
            guard listeners.map(\.address) == oldListeners.map(\.address) else {
                throw BuildError("listener addresses changed: a restart is needed to bind new addresses")
            }
            GatewayService.warnAboutCertificates(config, listeners, logger: logger)
            let sameKeys = config.tenant.jwks == self.config.tenant.jwks
            let jwks =
                sameKeys
                ? old.jwks
                : GatewayService.makeJWKS(
                    config: config, origins: built.origins, clock: clock, logger: logger, gateway: gatewayBox)
            // Logging and recording changes take effect too: a pipeline whose settings changed gets a successor
            // that the old one hands over to once the new snapshot serves (see `retire`); the others are kept.
            let previousRecorder = state.withLock { $0.recorder }
            // Remade on every reload: it also carries what events say of the tenant and of each client, and remaking
            // keeps every pipeline whose settings did not change.
            let change = try ExchangeRecorder.remake(
                config: config, metrics: metrics, clock: clock, logger: logger, secret: GatewayBuilder.secret,
                previous: previousRecorder)
            let recorder = change.recorder
            let runtime = PolicyRuntime(
                policy: built.policy, jwks: jwks, origins: built.origins, traffic: recorder.traffic)
            // The keys are read again on every reload, not only when their source changed: an operator who took a
            // key out of the file (or the tenant's set) expects it refused from now on. A file's keys, as the build
            // just read and checked them, serve before the new snapshot starts; a URL is fetched in the background
            // (the admin loop that serves POST /reload also answers health probes and must not wait on the
            // network), and a failed fetch keeps the last good set.
            if let keys = built.jwksFileKeys {
                jwks.install(keys, reason: "reload")
            } else {
                jwks.refetch(reason: "reload")
            }
            probe.probe(runtime.origins)
            let generation = state.withLock { s -> Int in
                s.config = config
                s.recorder = recorder
                liveRecorder.current = recorder
                s.runtime = runtime
                s.listeners = listeners
                s.generation += 1
                s.reloads += 1
                s.lastReloadError = nil
                return s.generation
            }
            current.reload(
                GatewaySnapshot(
                    listeners: listeners, handlers: PolicyHandlerFactory(runtime: runtime), generation: generation))
            retire(change)
            logger.info("configuration reloaded", metadata: ["generation": "\(generation)"])
            GatewayService.warnAboutTestingModes(config, logger: logger)
            return .success(generation)
        } catch {
            let message = (error as? BuildError)?.description ?? "\(error)"
            state.withLock {
                $0.reloadFailures += 1
                $0.lastReloadError = message
            }
            logger.error("reload refused; the previous configuration keeps serving", metadata: ["errors": "\(message)"])
            return .failure(BuildError(message))
        }
    }

    /// Readiness: a JWKS is loaded and the gateway is listening.
    var isReady: (ready: Bool, reasons: [String]) {
        var reasons: [String] = []
        if runtime.jwks.keys == nil {
            reasons.append("no JWKS loaded yet" + (runtime.jwks.counters.lastError.map { ": \($0)" } ?? ""))
        }
        if stopping.load(ordering: .relaxed) { reasons.append("shutting down") }
        if gatewayBox.withLock({ $0 }) == nil { reasons.append("not listening") }
        for domain in probe.unreachable { reasons.append("the upstream of \(domain) does not accept connections") }
        return (reasons.isEmpty, reasons)
    }

    var reloadCounters: (reloads: Int, failures: Int, generation: Int, lastError: String?) {
        state.withLock { ($0.reloads, $0.reloadFailures, $0.generation, $0.lastReloadError) }
    }

    /// Testing modes change what clients see: say so loudly at start and after each reload.
    static func warnAboutTestingModes(_ config: GatewayConfig, logger: Logger) {
        if let simulated = config.rateLimits.simulateTier {
            logger.warning(
                "TESTING MODE: rate limits simulate a lower tier than the tenant's",
                metadata: ["tenant_tier": "\(config.tenant.tier.rawValue)", "simulated_tier": "\(simulated.rawValue)"])
        }
        if !config.faults.isEmpty {
            logger.warning(
                "TESTING MODE: fault injection is ON; some requests are answered with errors or delayed on purpose",
                metadata: ["rules": "\(config.faults.count)"])
        }
    }

    /// Stops the pipelines a reload replaced: each hands over to its successor at once (records of exchanges
    /// begun before the reload follow it there); one switched off takes such records for 10 s, then stops.
    private func retire(_ change: ExchangeRecorder.Change) {
        for (old, new) in change.handovers {
            pipelineHandovers.async(group: pendingHandovers) {
                old.handOver(to: new, deadline: .now + .seconds(5))
            }
        }
        for pipeline in change.retired {
            retiredPipelines.withLock { $0[ObjectIdentifier(pipeline)] = pipeline }
            DispatchQueue.global(qos: .utility).asyncAfter(deadline: .now() + .seconds(10)) { [weak self] in
                _ = pipeline.shutdown(timeout: .seconds(5))
                self?.retiredPipelines.withLock { $0[ObjectIdentifier(pipeline)] = nil }
            }
        }
    }

    static func warnAboutCertificates(_ config: GatewayConfig, _ listeners: [ListenerProfile], logger: Logger) {
        for warning in GatewayBuilder.certificateWarnings(config, contexts: listeners.map(\.tls)) {
            logger.warning("certificate outside its validity period", metadata: ["where": "\(warning)"])
        }
    }

    func recorderStats() -> LogPipelineStats? { state.withLock { $0.recorder }.events?.stats }

    /// Stops accepting, finishes in-flight requests within the grace period, flushes the event logs.
    public func shutdown() {
        let grace = config.limits.shutdownGraceMs
        stopping.store(true, ordering: .relaxed)
        timers.withLock { $0.forEach { $0.cancel() } }
        // The admin listener stays up while the requests in flight finish: a probe during the drain reads 503
        // from /readyz ("shutting down") and 200 from /healthz, not a refused connection (which a liveness probe
        // would count as a failure, and an orchestrator could answer by killing the drain).
        gatewayBox.withLock { $0 }?.shutdown(graceMilliseconds: grace)
        adminBox.withLock { $0 }?.shutdown(graceMilliseconds: 200)
        // Hand-overs under way finish first, so that the current pipelines are open before they drain.
        if pendingHandovers.wait(timeout: .now() + .seconds(20)) == .timedOut {
            logger.warning("a log pipeline hand-over did not finish within 20 s")
        }
        for pipeline in retiredPipelines.withLock({ Array($0.values) }) { _ = pipeline.shutdown(timeout: .seconds(5)) }
        state.withLock { $0.recorder }.shutdown(timeoutMs: 5000)
        logger.info("stopped")
    }

    // MARK: - JWKS

    /// Descriptors kept aside from client connections: listeners, epoll sets, files and sinks, and what
    /// Dispatch opens itself (it traps when it cannot).
    static let reservedDescriptors = 256

    /// `limits.max_connections`, lowered when the process may not open that many descriptors beside the upstream
    /// pools' (each loop has its own pool per origin) and a reserve: running out of descriptors would refuse
    /// accepts silently and crash Dispatch, where the connection limit refuses clearly. The soft limit is raised
    /// to the hard one first; a lowered limit is logged.
    static func connectionLimit(config: GatewayConfig, loops: Int, logger: Logger) -> Int {
        let configured = config.limits.maxConnections
        let available = cshim_raise_open_files_limit()
        guard available > 0 else { return configured }
        let upstream = config.upstreams.reduce(0) { $0 + $1.maxConnections } * loops
        let room = max(16, available - upstream - reservedDescriptors)
        guard room < configured else { return configured }
        logger.warning(
            "limits.max_connections lowered to fit the open-files limit",
            metadata: [
                "configured": "\(configured)", "effective": "\(room)", "open_files_limit": "\(available)",
                "upstream_connections": "\(upstream)",
            ])
        return room
    }

    /// The key provider of `config`'s JWKS source; `origins` are the snapshot's upstream origins (a URL on a tenant
    /// domain is fetched through that domain's).
    static func makeJWKS(
        config: GatewayConfig, origins: [String: UpstreamOrigin], clock: any WallClock, logger: Logger,
        gateway: GatewayRef
    ) -> JWKSProvider {
        let fetch: JWKSProvider.Fetch
        switch config.tenant.jwks.source {
        case .file(let path):
            let file = path.path
            fetch = { completion in
                DispatchQueue.global().async {
                    if let data = FileManager.default.contents(atPath: file) {
                        completion(.success(Array(data)))
                    } else {
                        completion(.failure(.init("cannot read \(file)")))
                    }
                }
            }
        case .url(let url):
            // A URL on a tenant domain (the default: the canonical domain's) is fetched through that domain's
            // upstream, as its requests are: a sidecar's upstream is often not where DNS points the domain.
            let throughDomain = config.upstreams.first { $0.domain == url.host && url.port == 443 }
                .flatMap { origins[$0.domain] }
            // Else an upstream at the URL's own address lends its TLS settings (CA file).
            let sameAddress = config.upstreams.first { $0.url.host == url.host && $0.url.port == url.port }
                .flatMap { origins[$0.domain] }
            let fallback = UpstreamOrigin(
                host: url.host, port: UInt16(url.port), useTLS: url.scheme == "https",
                tlsContext: try? TLSClientContextCache.system(), maxConnections: 1, connectTimeoutMs: 3000,
                responseTimeoutMs: 5000, idleTimeoutMs: 1000, secretHeaders: [], clientIPHeader: "X-Forwarded-For")
            let path = url.path.isEmpty ? "/.well-known/jwks.json" : url.path + (url.query.map { "?\($0)" } ?? "")
            let finalOrigin =
                throughDomain ?? (sameAddress ?? fallback).retargeted(host: url.host, port: UInt16(url.port))
            fetch = { completion in
                guard let gateway = gateway.withLock({ $0 }) else {
                    completion(.failure(.init("the gateway is not running")))
                    return
                }
                gateway.onLoop(0) { context in
                    OneShotClient.get(origin: finalOrigin, path: path, context: context) { result in
                        switch result {
                        case .success(let response) where response.status == 200:
                            completion(.success(response.body))
                        case .success(let response):
                            completion(.failure(.init("JWKS answered \(response.status)")))
                        case .failure(let failure):
                            completion(.failure(.init(failure.detail)))
                        }
                    }
                }
            }
        }
        let source: String
        switch config.tenant.jwks.source {
        case .file(let path): source = path.path
        // Without the query: the only part of a URL that might carry something not meant for a log.
        case .url(let url): source = "\(url.scheme)://\(url.host):\(url.port)\(url.path)"
        }
        return JWKSProvider(
            fetch: fetch, clock: clock, refreshIntervalS: config.tenant.jwks.refreshIntervalS,
            minRefetchIntervalS: config.tenant.jwks.minRefetchIntervalS, logger: logger, source: source)
    }
}

/// A repeating timer on a utility queue, for the service's housekeeping.
final class DispatchSourceTimerBox: Sendable {
    // Safety: the source is only cancelled after creation; DispatchSource's cancel is thread-safe.
    nonisolated(unsafe) private let source: any DispatchSourceTimer

    init(everyMilliseconds ms: Int, _ work: @escaping @Sendable () -> Void) {
        source = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        source.schedule(deadline: .now() + .milliseconds(ms), repeating: .milliseconds(ms))
        source.setEventHandler(handler: work)
        source.activate()
    }

    func cancel() { source.cancel() }
}

/// One client TLS context trusting the system store, made on first use.
enum TLSClientContextCache {
    private static let shared = Mutex<TLSClientContextBox?>(nil)

    static func system() throws -> TLSClientContextBox.Context {
        try shared.withLock { box in
            if let box { return box.context }
            let context = try TLSClientContextBox.Context(configuration: .init())
            box = TLSClientContextBox(context: context)
            return context
        }
    }
}

struct TLSClientContextBox: Sendable {
    typealias Context = TLSClientContext
    let context: Context
}

/// The running gateway, set once it has started; read by the JWKS fetcher and the admin endpoints.
final class GatewayRef: Sendable {
    private let value = Mutex<Gateway?>(nil)
    func withLock<T>(_ body: (inout Gateway?) -> T) -> T { value.withLock { body(&$0) } }
}

/// The current ``ExchangeRecorder``, swapped on reload, with a generation that says when it was.
final class RecorderRef: Sendable {
    private let value: Mutex<(generation: Int, recorder: ExchangeRecorder)>
    private let generation = Atomic<Int>(0)
    init(_ recorder: ExchangeRecorder) { value = Mutex((0, recorder)) }

    var current: ExchangeRecorder {
        get { value.withLock { $0.recorder } }
        set {
            value.withLock {
                $0 = ($0.generation + 1, newValue)
                // Published after the pair changed: whoever sees the new number and takes a snapshot gets the new
                // recorder. A request racing the reload may still use the old one, as it could with the lock.
                generation.store($0.generation, ordering: .releasing)
            }
        }
    }

    /// The recorder with its generation, read together.
    func snapshot() -> (generation: Int, recorder: ExchangeRecorder) { value.withLock { $0 } }

    /// Whether `generation` is still the current recorder's.
    func isCurrent(_ generation: Int) -> Bool { self.generation.load(ordering: .acquiring) == generation }
}
