import CoreMetrics
import Metrics
import Prometheus
import Synchronization

/// The gateway's counters and histograms, reported through swift-metrics (Prometheus exposition on the admin
/// port). Sendable: swift-metrics handlers are thread-safe; labels with unbounded values are never used.
final class GatewayMetrics: Sendable {
    private let connectionsActive = Atomic<Int>(0)

    private let connectionsGauge = Gauge(label: "myorg_gateway_connections_active")
    private let tlsHandshakeFailures = Counter(label: "myorg_gateway_tls_handshake_failures_total")
    private let poolWaits = Counter(label: "myorg_gateway_upstream_pool_waits_total")
    private let tokenCacheHits = Counter(label: "myorg_gateway_token_cache_hits_total")
    private let tokenCacheMisses = Counter(label: "myorg_gateway_token_cache_misses_total")
    private let tlsHandshakes = Counter(label: "myorg_gateway_tls_handshakes_total")
    private let h2Streams = Counter(label: "myorg_gateway_h2_streams_total")

    init() {}

    func connectionOpened(protocol name: String) {
        let now = connectionsActive.add(1, ordering: .relaxed).newValue
        connectionsGauge.record(now)
        Counter(label: "myorg_gateway_connections_total", dimensions: [("protocol", name)]).increment()
    }

    func connectionClosed() {
        let now = connectionsActive.subtract(1, ordering: .relaxed).newValue
        connectionsGauge.record(max(0, now))
    }

    func tlsHandshakeFailed() {
        tlsHandshakeFailures.increment()
    }

    func parserRefusal(status: Int) {
        Counter(label: "myorg_gateway_malformed_requests_total", dimensions: [("status", String(status))]).increment()
    }

    func upstreamPoolWait() { poolWaits.increment() }

    func tokenCache(hit: Bool) { (hit ? tokenCacheHits : tokenCacheMisses).increment() }

    func tlsHandshakeCompleted() { tlsHandshakes.increment() }

    func h2StreamOpened() { h2Streams.increment() }

    func upstreamError(kind: String) {
        Counter(label: "myorg_gateway_upstream_errors_total", dimensions: [("kind", kind)]).increment()
    }

    private struct RequestHandles {
        let counter: CoreMetrics.Counter
        let duration: CoreMetrics.Timer
        let upstream: CoreMetrics.Timer
    }

    /// Handles by route, status and decision: all three come from bounded sets (the endpoint table, HTTP
    /// statuses, the pipeline's decisions), so the cache stays small, and a request costs a lookup, not a
    /// factory call.
    private let handles = Mutex<[String: RequestHandles]>([:])

    /// One finished request: by route (method and template from the endpoint table), status and decision.
    func request(route: String, status: Int, decision: String, seconds: Double, upstreamSeconds: Double?) {
        let key = "\(route)|\(status)|\(decision)"
        let handle = handles.withLock { cache -> RequestHandles in
            if let existing = cache[key] { return existing }
            let made = RequestHandles(
                counter: Counter(
                    label: "myorg_gateway_requests_total",
                    dimensions: [("route", route), ("status", String(status)), ("decision", decision)]),
                duration: Timer(label: "myorg_gateway_request_duration_seconds", dimensions: [("route", route)]),
                upstream: Timer(label: "myorg_gateway_upstream_duration_seconds", dimensions: [("route", route)]))
            if cache.count < 10_000 { cache[key] = made }
            return made
        }
        handle.counter.increment()
        handle.duration.recordNanoseconds(Int64(seconds * 1e9))
        if let upstreamSeconds { handle.upstream.recordNanoseconds(Int64(upstreamSeconds * 1e9)) }
    }

    /// A 429 the gateway wrote itself: by which limit (tenant or organization) and tier.
    func rateLimitRefusal(kind: String, tier: String) {
        Counter(label: "myorg_gateway_rate_limit_refusals_total", dimensions: [("kind", kind), ("tier", tier)])
            .increment()
    }

    /// Values read at scrape time (JWKS, token cache, log pipeline, upstream pools).
    func gauge(_ label: String, _ value: Double, dimensions: [(String, String)] = []) {
        Gauge(label: label, dimensions: dimensions).record(value)
    }

    var activeConnections: Int { connectionsActive.load(ordering: .relaxed) }
}

/// The Prometheus registry behind swift-metrics, bootstrapped once per process.
enum MetricsExposition {
    static let registry = PrometheusCollectorRegistry()
    private static let once = OnceFlag()

    static func bootstrap() {
        guard !once.exchange() else { return }
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }

    /// The text exposition format (version 0.0.4).
    static func render() -> [UInt8] { registry.emitToBuffer() }
}
