import CoreMetrics
import Metrics
import Prometheus
import Synchronization

/// The gateway's counters and histograms, reported through swift-metrics (Prometheus exposition on the admin
/// port), except the per-request ones, which each loop tallies in its ``LoopMetrics`` (made by
/// ``makeLoopMetrics()``) and ``exposition()`` renders next to the registry's. Sendable: swift-metrics handlers are
/// thread-safe; labels with unbounded values are never used.
///
/// A server the process runs for itself (the admin listener, the emulated tenant) has ``unexposed()`` metrics:
/// its connections, handshakes, streams and requests are not the gateway's clients', so they stay out of
/// `/metrics`.
final class GatewayMetrics: Sendable {
    private let connectionsActive = Atomic<Int>(0)
    /// Admitted TLS connections whose handshake has not ended: they hold a `max_connections` slot before they
    /// count as active.
    private let connectionsHandshaking = Atomic<Int>(0)
    /// Where the loops' request tallies are summed: by default the process's, like the registry.
    let requests: RequestTallies
    /// The loops' upstream pools, read at scrape time (``UpstreamPoolGauges``).
    let upstreamPools = UpstreamPoolGauges()
    /// False for ``unexposed()`` metrics: nothing they count reaches the process's registry or tallies.
    let isExposed: Bool

    private let tlsHandshakeFailures: CoreMetrics.Counter
    private let poolWaits: CoreMetrics.Counter
    private let tlsHandshakes: CoreMetrics.Counter
    private let clientsStalled: CoreMetrics.Counter

    /// The kinds of `myorg_gateway_upstream_errors_total`, each a series from the start (at 0), so that dashboards
    /// and alerts see the family before the first error.
    static let upstreamErrorKinds = ["connect", "connect_timeout", "pool_full", "pool_timeout", "resolve", "tls"]

    convenience init(requests: RequestTallies = MetricsExposition.requests) {
        self.init(requests: requests, exposed: true)
    }

    private init(requests: RequestTallies, exposed: Bool) {
        // A handle made before the bootstrap comes from swift-metrics' no-op factory and counts nothing; the
        // service makes its metrics before it starts, so bootstrap here (it happens once per process).
        MetricsExposition.bootstrap()
        self.requests = requests
        self.isExposed = exposed
        tlsHandshakeFailures = Counter(label: "myorg_gateway_tls_handshake_failures_total")
        poolWaits = Counter(label: "myorg_gateway_upstream_pool_waits_total")
        tlsHandshakes = Counter(label: "myorg_gateway_tls_handshakes_total")
        clientsStalled = Counter(label: "myorg_gateway_client_write_stalls_total")
        if exposed {
            for kind in Self.upstreamErrorKinds { _ = upstreamErrorCounter(kind) }
            for reason in ["limit", "draining"] { _ = connectionsRefusedCounter(reason) }
        }
    }

    /// The metrics of a server the process runs for itself (the admin listener, the emulated tenant): its
    /// connections, TLS handshakes, refused requests, HTTP/2 streams and request tallies are kept apart (its
    /// loops tally into a private ``RequestTallies``) and never reach `/metrics`, which describes the gateway's
    /// own clients. Only ``activeConnections`` still counts, for the server itself.
    static func unexposed() -> GatewayMetrics { GatewayMetrics(requests: RequestTallies(), exposed: false) }

    /// The request tally of a new loop context, counted in ``requests`` for as long as the process runs.
    func makeLoopMetrics() -> LoopMetrics { LoopMetrics(tallies: requests) }

    /// The `/metrics` body: the registry's metrics, then the loops' request metrics.
    func exposition() -> [UInt8] {
        var text = MetricsExposition.render()
        requests.render(into: &text)
        return text
    }

    func connectionOpened(protocol name: String) {
        connectionsActive.add(1, ordering: .relaxed)
        guard isExposed else { return }
        connectionsByProtocol.handle(name) {
            Counter(label: "myorg_gateway_connections_total", dimensions: [("protocol", name)])
        }.increment()
    }

    func connectionClosed() { connectionsActive.subtract(1, ordering: .relaxed) }

    func handshakeStarted() { connectionsHandshaking.add(1, ordering: .relaxed) }
    func handshakeEnded() { connectionsHandshaking.subtract(1, ordering: .relaxed) }
    var handshakingConnections: Int { connectionsHandshaking.load(ordering: .relaxed) }

    /// A client connection closed because it took none of its answers for the idle timeout.
    func clientStalled() {
        guard isExposed else { return }
        clientsStalled.increment()
    }

    func tlsHandshakeFailed() {
        guard isExposed else { return }
        tlsHandshakeFailures.increment()
    }

    func parserRefusal(status: Int) {
        guard isExposed else { return }
        malformedByStatus.handle("", number: status) {
            Counter(label: "myorg_gateway_malformed_requests_total", dimensions: [("status", String(status))])
        }.increment()
    }

    /// A connection closed at accept: the process is at `limits.max_connections` (`limit`), or stopping
    /// (`draining`).
    func connectionRefused(draining: Bool) {
        guard isExposed else { return }
        connectionsRefusedCounter(draining ? "draining" : "limit").increment()
    }

    private func connectionsRefusedCounter(_ reason: String) -> CoreMetrics.Counter {
        connectionsRefusedByReason.handle(reason) {
            Counter(label: "myorg_gateway_connections_refused_total", dimensions: [("reason", reason)])
        }
    }

    func upstreamPoolWait() {
        guard isExposed else { return }
        poolWaits.increment()
    }

    func tlsHandshakeCompleted() {
        guard isExposed else { return }
        tlsHandshakes.increment()
    }

    func upstreamError(kind: String) {
        guard isExposed else { return }
        upstreamErrorCounter(kind).increment()
    }

    private func upstreamErrorCounter(_ kind: String) -> CoreMetrics.Counter {
        upstreamErrorsByKind.handle(kind) {
            Counter(label: "myorg_gateway_upstream_errors_total", dimensions: [("kind", kind)])
        }
    }

    // Handles by label values. Every label comes from a bounded set (protocols, statuses, error kinds, tiers),
    // so a call costs a short lookup, not a metrics factory call with its label arrays and registry lock.
    private let rateLimitRefusals = HandleCache<CoreMetrics.Counter>()
    private let connectionsByProtocol = HandleCache<CoreMetrics.Counter>()
    private let malformedByStatus = HandleCache<CoreMetrics.Counter>()
    private let upstreamErrorsByKind = HandleCache<CoreMetrics.Counter>()
    private let connectionsRefusedByReason = HandleCache<CoreMetrics.Counter>()

    /// A 429 the gateway wrote itself: by which limit (tenant or organization) and tier.
    func rateLimitRefusal(kind: String, tier: String) {
        guard isExposed else { return }
        rateLimitRefusals.handle(kind, tier) {
            Counter(label: "myorg_gateway_rate_limit_refusals_total", dimensions: [("kind", kind), ("tier", tier)])
        }.increment()
    }

    /// Values read at scrape time (JWKS, token cache, log pipeline, upstream pools).
    func gauge(_ label: String, _ value: Double, dimensions: [(String, String)] = []) {
        Gauge(label: label, dimensions: dimensions).record(value)
    }

    /// Counts kept elsewhere (log pipeline, JWKS, reloads, Redis store), by label and dimensions, as last exposed.
    private let exposedCounts = Mutex([String: Int]())

    /// A count that only grows, kept by another component and read at scrape time, exposed as a Prometheus
    /// counter (so `rate()` and `increase()` work): the counter is raised by what the count grew since the last
    /// scrape. A count that went down was started again (a reload replaced the log pipeline), so all of it is new.
    func counter(_ label: String, total: Int, dimensions: [(String, String)] = []) {
        let key = ([label] + dimensions.flatMap { [$0.0, $0.1] }).joined(separator: "\u{0}")
        let delta = exposedCounts.withLock { last -> Int in
            let previous = last[key] ?? 0
            last[key] = total
            return total >= previous ? total - previous : total
        }
        let counter = Counter(label: label, dimensions: dimensions)
        if delta > 0 { counter.increment(by: delta) }
    }

    /// Client connections open now, on this metrics' gateway (`myorg_gateway_connections_active`, set at scrape
    /// time: each gateway of a process, the admin listener's too, counts its own).
    var activeConnections: Int { connectionsActive.load(ordering: .relaxed) }
}

/// The Prometheus registry behind swift-metrics, bootstrapped once per process.
enum MetricsExposition {
    static let registry = PrometheusCollectorRegistry()
    /// The loops' request tallies, process-wide like the registry.
    static let requests = RequestTallies()
    private static let once = OnceFlag()

    static func bootstrap() {
        guard !once.exchange() else { return }
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }

    /// The registry's metrics in the text exposition format (version 0.0.4).
    static func render() -> [UInt8] { registry.emitToBuffer() }
}

/// Metric handles keyed by up to two label strings and a number, made once and then found with a short locked scan.
///
/// The few most recent keys are scanned first (usually the very first one matches), comparing the number before
/// the strings; the rest sit in a dictionary, capped so that a flood of distinct values cannot grow it without
/// bound (past the cap a handle is made per call, which the metrics factory itself deduplicates). Entries are
/// objects so that a hit retains one reference rather than copying a key and a handle.
final class HandleCache<Handle: Sendable>: Sendable {
    private struct Key: Hashable {
        var number: Int
        var first: String
        var second: String
    }

    private final class Entry: Sendable {
        let number: Int
        let first: String
        let second: String
        let handle: Handle

        init(_ key: Key, _ handle: Handle) {
            number = key.number
            first = key.first
            second = key.second
            self.handle = handle
        }

        func matches(_ number: Int, _ first: String, _ second: String) -> Bool {
            self.number == number && self.first == first && self.second == second
        }
    }

    private struct State {
        var recent: [Entry] = []
        var nextSlot = 0
        var all: [Key: Entry] = [:]
    }

    private static var recentSlots: Int { 8 }
    private static var cap: Int { 10_000 }
    private let state = Mutex(State())

    func handle(_ first: String, _ second: String = "", number: Int = 0, make: () -> Handle) -> Handle {
        state.withLock { s in
            for i in s.recent.indices where s.recent[i].matches(number, first, second) {
                return s.recent[i].handle
            }
            let key = Key(number: number, first: first, second: second)
            let entry: Entry
            if let known = s.all[key] {
                entry = known
            } else {
                entry = Entry(key, make())
                if s.all.count < Self.cap { s.all[key] = entry }
            }
            if s.recent.count < Self.recentSlots {
                s.recent.append(entry)
            } else {
                s.recent[s.nextSlot] = entry
                s.nextSlot = (s.nextSlot + 1) % Self.recentSlots
            }
            return entry.handle
        }
    }
}
