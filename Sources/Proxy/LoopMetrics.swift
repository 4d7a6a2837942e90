import Synchronization

// Request metrics kept per event loop: the loop that owns a tally is its only writer, so a request costs a few
// relaxed loads and stores (plain moves on x86 and arm64: no lock, no read-modify-write), where the registry's
// handles took a shared lock, a counter RMW and two histogram locks, all bouncing between the cores' caches.
//
// The `/metrics` scrape reads every tally from its own thread and renders them in the text format swift-prometheus
// 2.4.1 produces for a counter with dimensions and a `Timer` (a duration histogram with the factory's default
// buckets), so dashboards and alerts see the same series as before.

/// The buckets of the request histograms: swift-prometheus's default `Timer` buckets (5 ms … 10 s).
enum RequestHistogramBuckets {
    /// Upper bounds in nanoseconds; an observation counts in every bucket whose bound is at least its value.
    static let boundsNanos: [Int64] = [
        5_000_000, 10_000_000, 25_000_000, 50_000_000, 100_000_000, 250_000_000, 500_000_000, 1_000_000_000,
        2_500_000_000, 5_000_000_000, 10_000_000_000,
    ]

    /// One slot per bound plus one for observations above the last bound.
    static var slotCount: Int { 12 }

    /// The `le` labels, formatted as swift-prometheus formats a `Duration` bucket.
    static let boundLabels: [String] = boundsNanos.map { PrometheusText.seconds(nanos: $0) }

    /// The slot of an observation: the first bucket whose bound it does not exceed.
    @inline(__always)
    static func slot(_ nanos: Int64) -> Int {
        // Most requests finish within the first bucket; the rest walk a short constant table.
        if nanos <= 5_000_000 { return 0 }
        var index = 1
        while index < 11, nanos > boundsNanos[index] { index += 1 }
        return index
    }
}

/// One histogram's cells: observations per slot (not cumulative; the renderer accumulates) and their sum.
///
/// Written only by the loop that owns it (relaxed load then store: no read-modify-write), read by the scraper.
final class HistogramCells: Sendable {
    let slots: InlineArray<12, Atomic<Int>>
    let sumNanos = Atomic<Int64>(0)

    init() { slots = InlineArray { _ in Atomic(0) } }

    @inline(__always)
    func record(_ nanos: Int64) {
        let slot = RequestHistogramBuckets.slot(nanos)
        slots[slot].store(slots[slot].load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        sumNanos.store(sumNanos.load(ordering: .relaxed) &+ nanos, ordering: .relaxed)
    }

    func read(into histogram: inout RequestMetricsSnapshot.Histogram) {
        for slot in 0..<RequestHistogramBuckets.slotCount {
            histogram.slots[slot] += slots[slot].load(ordering: .relaxed)
        }
        histogram.sumNanos &+= sumNanos.load(ordering: .relaxed)
    }
}

/// The two histograms of one route label.
final class RouteCells: Sendable {
    let route: String
    let duration = HistogramCells()
    let upstream = HistogramCells()

    init(route: String) { self.route = route }
}

/// The counter of one label set (route, status, decision), with its route's histograms.
final class RequestCells: Sendable {
    let route: RouteCells
    let status: Int
    let decision: String
    let count = Atomic<Int>(0)

    init(route: RouteCells, status: Int, decision: String) {
        self.route = route
        self.status = status
        self.decision = decision
    }

    @inline(__always)
    func matches(_ route: String, _ status: Int, _ decision: String) -> Bool {
        // Labels come from the endpoint table and string literals, so equal strings are usually the same
        // storage and the comparisons stop at the first word.
        self.status == status && self.route.route == route && self.decision == decision
    }
}

/// What one writer published: every label set it has seen, in the order first seen, and its plain counters.
///
/// The lists only grow, under `published`'s lock, when a writer meets a new label set (rare: labels come from
/// bounded sets); the counts are atomics readable at any time.
final class TallyCells: Sendable {
    let h2Streams = Atomic<Int>(0)
    /// HTTP/2 streams open now (a gauge: read from live cells only, never folded into a retired total).
    let h2StreamsActive = Atomic<Int>(0)
    let tokenCacheHits = Atomic<Int>(0)
    let tokenCacheMisses = Atomic<Int>(0)
    private let published = Mutex<(requests: [RequestCells], routes: [RouteCells])>(([], []))

    func publish(_ request: RequestCells, newRoute: RouteCells?) {
        published.withLock {
            $0.requests.append(request)
            if let newRoute { $0.routes.append(newRoute) }
        }
    }

    /// Adds what this tally counted so far to `snapshot`.
    func read(into snapshot: inout RequestMetricsSnapshot) {
        let (requests, routes) = published.withLock { ($0.requests, $0.routes) }
        for cells in requests {
            let key = RequestMetricsSnapshot.RequestKey(
                route: cells.route.route, status: cells.status, decision: cells.decision)
            snapshot.requests[key, default: 0] += cells.count.load(ordering: .relaxed)
        }
        for cells in routes {
            cells.duration.read(into: &snapshot.durations[cells.route, default: .init()])
            cells.upstream.read(into: &snapshot.upstreams[cells.route, default: .init()])
        }
        snapshot.h2Streams += h2Streams.load(ordering: .relaxed)
        snapshot.tokenCacheHits += tokenCacheHits.load(ordering: .relaxed)
        snapshot.tokenCacheMisses += tokenCacheMisses.load(ordering: .relaxed)
    }
}

/// Finds (or makes and publishes) the cells of a label set; owned by one writer at a time.
struct TallyWriter {
    let cells = TallyCells()
    /// Distinct label sets this writer keeps; past it, `cells(…)` answers nil.
    let capacity: Int
    private var recent: [RequestCells] = []
    private var nextRecent = 0
    private var all: [RequestMetricsSnapshot.RequestKey: RequestCells] = [:]
    private var routes: [String: RouteCells] = [:]

    init(capacity: Int) { self.capacity = capacity }

    private static var recentSlots: Int { 8 }

    @inline(__always)
    mutating func cells(route: String, status: Int, decision: String) -> RequestCells? {
        for entry in recent where entry.matches(route, status, decision) { return entry }
        return slowCells(route: route, status: status, decision: decision)
    }

    private mutating func slowCells(route: String, status: Int, decision: String) -> RequestCells? {
        let key = RequestMetricsSnapshot.RequestKey(route: route, status: status, decision: decision)
        let entry: RequestCells
        if let known = all[key] {
            entry = known
        } else {
            guard all.count < capacity else { return nil }
            var newRoute: RouteCells? = nil
            let routeCells: RouteCells
            if let known = routes[route] {
                routeCells = known
            } else {
                routeCells = RouteCells(route: route)
                routes[route] = routeCells
                newRoute = routeCells
            }
            entry = RequestCells(route: routeCells, status: status, decision: decision)
            all[key] = entry
            cells.publish(entry, newRoute: newRoute)
        }
        if recent.count < Self.recentSlots {
            recent.append(entry)
        } else {
            recent[nextRecent] = entry
            nextRecent = (nextRecent + 1) % Self.recentSlots
        }
        return entry
    }

    /// Counts one finished request; false when the label set is new and the writer is full.
    @inline(__always)
    mutating func request(
        route: String, status: Int, decision: String, durationNanos: Int64, upstreamNanos: Int64?
    ) -> Bool {
        guard let entry = cells(route: route, status: status, decision: decision) else { return false }
        entry.count.store(entry.count.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        entry.route.duration.record(durationNanos)
        if let upstreamNanos { entry.route.upstream.record(upstreamNanos) }
        return true
    }
}

/// One event loop's request metrics: finished requests by route, status and decision, their durations, HTTP/2
/// streams (opened in all and open now) and token-cache lookups.
///
/// Loop-confined: created for a ``LoopContext`` and called only on its loop (the single writer of its cells). When
/// it goes away its counts are folded into its ``RequestTallies``' retired total, so nothing counted is lost.
final class LoopMetrics {
    private var writer: TallyWriter
    private let cells: TallyCells
    private let tallies: RequestTallies

    /// Distinct (route, status, decision) sets one loop keeps cells for. Labels come from bounded sets (the
    /// endpoint table plus `unknown` and `other`, HTTP statuses, the pipeline's decisions), so this is only a
    /// guard against a bug flooding labels; past it, new sets are counted in the tallies' shared overflow table,
    /// under its lock.
    static var labelSetsPerLoop: Int { 4096 }

    init(tallies: RequestTallies, capacity: Int = LoopMetrics.labelSetsPerLoop) {
        self.tallies = tallies
        let writer = TallyWriter(capacity: capacity)
        self.writer = writer
        self.cells = writer.cells
        tallies.register(cells)
    }

    deinit { tallies.retire(cells) }

    /// One finished request: by route (method and template from the endpoint table), status and decision.
    @inline(__always)
    func request(route: String, status: Int, decision: String, durationNanos: Int64, upstreamNanos: Int64?) {
        if !writer.request(
            route: route, status: status, decision: decision, durationNanos: durationNanos,
            upstreamNanos: upstreamNanos)
        {
            tallies.overflowRequest(
                route: route, status: status, decision: decision, durationNanos: durationNanos,
                upstreamNanos: upstreamNanos)
        }
    }

    /// A stream was accepted: counted in the total and in the streams open now.
    func h2StreamOpened() {
        Self.bump(cells.h2Streams)
        Self.bump(cells.h2StreamsActive)
    }

    /// `count` streams that `h2StreamOpened` counted are over (answered, reset or abandoned with their connection).
    func h2StreamsClosed(_ count: Int = 1) {
        cells.h2StreamsActive.store(cells.h2StreamsActive.load(ordering: .relaxed) &- count, ordering: .relaxed)
    }

    func tokenCache(hit: Bool) {
        if hit { Self.bump(cells.tokenCacheHits) } else { Self.bump(cells.tokenCacheMisses) }
    }

    @inline(__always)
    private static func bump(_ cell: borrowing Atomic<Int>) {
        cell.store(cell.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }
}

/// Every tally of a process (or of a test): the live loops' cells, the retired loops' totals and the overflow
/// table; merged into one snapshot at scrape time.
///
/// Sendable: all state is behind `state`'s lock or in atomics. A retired loop's cells are folded in under the same
/// lock the scrape reads under, so each count is seen exactly once per scrape, and counters never go down.
final class RequestTallies: Sendable {
    private struct State {
        var live: [ObjectIdentifier: TallyCells] = [:]
        var retired = RequestMetricsSnapshot()
    }

    private let state = Mutex(State())
    private let overflow = Mutex(TallyWriter(capacity: .max))

    init() {
        let cells = overflow.withLock { $0.cells }
        state.withLock { $0.live[ObjectIdentifier(cells)] = cells }
    }

    func register(_ cells: TallyCells) {
        state.withLock { $0.live[ObjectIdentifier(cells)] = cells }
    }

    /// Folds a writer's final counts into the retired total; called once its writer can write no more.
    func retire(_ cells: TallyCells) {
        // The writer's loop released its last reference before this runs (deinit), and that release orders the
        // loop's stores before these loads, as it does for any object's stored properties.
        state.withLock { s in
            guard s.live.removeValue(forKey: ObjectIdentifier(cells)) != nil else { return }
            cells.read(into: &s.retired)
        }
    }

    /// A label set past a loop's capacity: counted in the shared table, whose lock makes its writers take turns.
    func overflowRequest(
        route: String, status: Int, decision: String, durationNanos: Int64, upstreamNanos: Int64?
    ) {
        overflow.withLock {
            _ = $0.request(
                route: route, status: status, decision: decision, durationNanos: durationNanos,
                upstreamNanos: upstreamNanos)
        }
    }

    /// Everything counted so far, live and retired.
    func snapshot() -> RequestMetricsSnapshot {
        state.withLock { s in
            var total = s.retired
            for cells in s.live.values { cells.read(into: &total) }
            return total
        }
    }

    /// Appends the request metrics in the Prometheus text format (version 0.0.4).
    func render(into buffer: inout [UInt8]) { snapshot().render(into: &buffer) }

    /// HTTP/2 streams open now on the live loops (a retired loop's streams were closed with it).
    var activeH2Streams: Int {
        state.withLock { s in s.live.values.reduce(0) { $0 + $1.h2StreamsActive.load(ordering: .relaxed) } }
    }
}

/// Request metrics summed over loops: what a scrape renders. A plain value, so merging and rendering are tested
/// without loops or threads.
struct RequestMetricsSnapshot: Equatable {
    struct RequestKey: Hashable, Comparable {
        var route: String
        var status: Int
        var decision: String

        static func < (a: Self, b: Self) -> Bool {
            (a.route, a.status, a.decision) < (b.route, b.status, b.decision)
        }
    }

    struct Histogram: Equatable {
        /// Observations per slot of ``RequestHistogramBuckets`` (not cumulative); the last is above every bound.
        var slots = [Int](repeating: 0, count: RequestHistogramBuckets.slotCount)
        var sumNanos: Int64 = 0

        var count: Int { slots.reduce(0, +) }
    }

    var requests: [RequestKey: Int] = [:]
    var durations: [String: Histogram] = [:]
    var upstreams: [String: Histogram] = [:]
    var h2Streams = 0
    var tokenCacheHits = 0
    var tokenCacheMisses = 0

    static let requestsName = "myorg_gateway_requests_total"
    static let durationName = "myorg_gateway_request_duration_seconds"
    static let upstreamName = "myorg_gateway_upstream_duration_seconds"

    /// Renders as swift-prometheus renders `Counter(label:dimensions:)` and `Timer(label:dimensions:)`: a `# TYPE`
    /// line per family (no `# HELP`: the handles had none), label values escaped, a family only once it has a
    /// series (the token-cache and stream counters always, as they were registered at start). Families and series
    /// come in a fixed order (the registry's order was its dictionaries').
    func render(into out: inout [UInt8]) {
        if !requests.isEmpty {
            PrometheusText.typeLine(Self.requestsName, "counter", into: &out)
            for key in requests.keys.sorted() {
                out.append(contentsOf: Self.requestsName.utf8)
                out.append(contentsOf: "{route=\"".utf8)
                PrometheusText.escapedLabelValue(key.route, into: &out)
                out.append(contentsOf: "\",status=\"".utf8)
                out.append(contentsOf: String(key.status).utf8)
                out.append(contentsOf: "\",decision=\"".utf8)
                PrometheusText.escapedLabelValue(key.decision, into: &out)
                out.append(contentsOf: "\"} ".utf8)
                out.append(contentsOf: String(requests[key]!).utf8)
                out.append(UInt8(ascii: "\n"))
            }
        }
        for (name, histograms) in [(Self.durationName, durations), (Self.upstreamName, upstreams)]
        where !histograms.isEmpty {
            PrometheusText.typeLine(name, "histogram", into: &out)
            for route in histograms.keys.sorted() {
                var labels: [UInt8] = Array("route=\"".utf8)
                PrometheusText.escapedLabelValue(route, into: &labels)
                labels.append(UInt8(ascii: "\""))
                PrometheusText.histogram(name, labels: labels, histograms[route]!, into: &out)
            }
        }
        for (name, value) in [
            ("myorg_gateway_token_cache_hits_total", tokenCacheHits),
            ("myorg_gateway_token_cache_misses_total", tokenCacheMisses),
            ("myorg_gateway_h2_streams_total", h2Streams),
        ] {
            PrometheusText.typeLine(name, "counter", into: &out)
            out.append(contentsOf: name.utf8)
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: String(value).utf8)
            out.append(UInt8(ascii: "\n"))
        }
    }
}

/// The pieces of the Prometheus text format (0.0.4) as swift-prometheus 2.4.1 writes them.
enum PrometheusText {
    static func typeLine(_ name: String, _ type: String, into out: inout [UInt8]) {
        out.append(contentsOf: "# TYPE ".utf8)
        out.append(contentsOf: name.utf8)
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: type.utf8)
        out.append(UInt8(ascii: "\n"))
    }

    /// A label value with backslash, double quote and line feed escaped.
    static func escapedLabelValue(_ value: String, into out: inout [UInt8]) {
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: #"\n"#.utf8)
            default: out.append(byte)
            }
        }
    }

    /// Nanoseconds as seconds the way swift-prometheus prints a `Duration`: whole seconds, a dot, and the fraction
    /// without trailing zeros (`0.005`, `1.0`, `2.5`). A negative value (a clock stepped back) gets a minus sign
    /// in front of its magnitude (swift-prometheus would trap on it).
    static func seconds(nanos: Int64) -> String {
        let magnitude = nanos.magnitude
        var fraction = magnitude % 1_000_000_000
        var digits = 9
        while digits > 1, fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        var fractionText = String(fraction)
        if fraction != 0 {
            fractionText = String(repeating: "0", count: digits - fractionText.count) + fractionText
        }
        return (nanos < 0 ? "-" : "") + String(magnitude / 1_000_000_000) + "." + fractionText
    }

    /// `_bucket` lines (cumulative, then `+Inf`), `_sum` in seconds and `_count`, for one label set.
    static func histogram(
        _ name: String, labels: [UInt8], _ histogram: RequestMetricsSnapshot.Histogram, into out: inout [UInt8]
    ) {
        func sample(_ suffix: String, le: String?, _ value: String) {
            out.append(contentsOf: name.utf8)
            out.append(contentsOf: suffix.utf8)
            out.append(UInt8(ascii: "{"))
            out.append(contentsOf: labels)
            if let le {
                out.append(contentsOf: ",le=\"".utf8)
                out.append(contentsOf: le.utf8)
                out.append(UInt8(ascii: "\""))
            }
            out.append(contentsOf: "} ".utf8)
            out.append(contentsOf: value.utf8)
            out.append(UInt8(ascii: "\n"))
        }
        var cumulative = 0
        for (index, bound) in RequestHistogramBuckets.boundLabels.enumerated() {
            cumulative += histogram.slots[index]
            sample("_bucket", le: bound, String(cumulative))
        }
        let count = histogram.count
        sample("_bucket", le: "+Inf", String(count))
        sample("_sum", le: nil, seconds(nanos: histogram.sumNanos))
        sample("_count", le: nil, String(count))
    }

}
