import Dispatch
import Prometheus
import Synchronization
import Testing

@testable import Proxy

@Suite("Per-loop request metrics and their Prometheus text")
struct LoopMetricsTests {
    /// One observation of a finished request.
    struct Observation {
        var route: String
        var status: Int
        var decision: String
        var durationNanos: Int64
        var upstreamNanos: Int64?
    }

    static func text(_ tallies: RequestTallies) -> String {
        var out: [UInt8] = []
        tallies.render(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    @Test("a small known set of observations renders exactly")
    func exactText() {
        let tallies = RequestTallies()
        let loop = LoopMetrics(tallies: tallies)
        loop.request(
            route: "GET details", status: 200, decision: "forwarded", durationNanos: 1_500_000,
            upstreamNanos: 1_000_000)
        loop.request(
            route: "GET details", status: 200, decision: "forwarded", durationNanos: 30_000_000,
            upstreamNanos: 12_345_678_901)
        loop.request(
            route: "GET details", status: 401, decision: "refused_token", durationNanos: 5_000_000, upstreamNanos: nil)
        loop.h2StreamOpened()
        loop.h2StreamOpened()
        loop.tokenCache(hit: true)
        loop.tokenCache(hit: false)
        loop.tokenCache(hit: true)
        let labels = #"route="GET details""#
        let bounds = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0"]
        /// One histogram in the registry's text: its TYPE line, a bucket per bound, +Inf, sum and count.
        func histogram(_ name: String, buckets: [Int], count: Int, sum: String) -> String {
            var text = "# TYPE \(name) histogram\n"
            for (bound, n) in zip(bounds, buckets) { text += "\(name)_bucket{\(labels),le=\"\(bound)\"} \(n)\n" }
            text += "\(name)_bucket{\(labels),le=\"+Inf\"} \(count)\n"
            text += "\(name)_sum{\(labels)} \(sum)\n"
            return text + "\(name)_count{\(labels)} \(count)\n"
        }
        var expected = """
            # TYPE myorg_gateway_requests_total counter
            myorg_gateway_requests_total{route="GET details",status="200",decision="forwarded"} 2
            myorg_gateway_requests_total{route="GET details",status="401",decision="refused_token"} 1

            """
        expected += histogram(
            "myorg_gateway_request_duration_seconds", buckets: [2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3], count: 3,
            sum: "0.0365")
        expected += histogram(
            "myorg_gateway_upstream_duration_seconds", buckets: Array(repeating: 1, count: 11), count: 2,
            sum: "12.346678901")
        expected += """
            # TYPE myorg_gateway_token_cache_hits_total counter
            myorg_gateway_token_cache_hits_total 2
            # TYPE myorg_gateway_token_cache_misses_total counter
            myorg_gateway_token_cache_misses_total 1
            # TYPE myorg_gateway_h2_streams_total counter
            myorg_gateway_h2_streams_total 2

            """
        #expect(Self.text(tallies) == expected)
        withExtendedLifetime(loop) {}
    }

    @Test(
        "an observation counts in every bucket whose bound it does not exceed",
        arguments: [
            (Int64(0), 0), (-7, 0), (5_000_000, 0), (5_000_001, 1), (10_000_000, 1), (10_000_001, 2),
            (999_999_999, 7), (1_000_000_000, 7), (1_000_000_001, 8), (10_000_000_000, 10), (10_000_000_001, 11),
            (.max, 11),
        ])
    func bucketBoundaries(nanos: Int64, slot: Int) {
        #expect(RequestHistogramBuckets.slot(nanos) == slot)
    }

    @Test(
        "seconds print as swift-prometheus prints a Duration",
        arguments: [
            Int64(0), 1, 10, 5_000_000, 1_000_000_000, 2_500_000_000, 10_000_000_000, 1_234_567_890, 999_999_999,
            100_000_000, 86_400_000_000_007,
        ])
    func secondsText(nanos: Int64) {
        #expect(PrometheusText.seconds(nanos: nanos) == Duration.nanoseconds(nanos).bucketRepresentation)
    }

    @Test("the bucket labels are the registry's default Timer buckets")
    func bucketLabels() {
        let factory = PrometheusMetricsFactory(registry: PrometheusCollectorRegistry())
        #expect(
            RequestHistogramBuckets.boundLabels
                == factory.defaultDurationHistogramBuckets.map(\.bucketRepresentation))
        #expect(
            RequestHistogramBuckets.boundsNanos.map { Duration.nanoseconds($0) }
                == factory.defaultDurationHistogramBuckets)
    }

    /// The text swift-prometheus 2.4.1 renders for the same observations, through the handles the gateway used.
    static func registryText(_ observations: [Observation], h2: Int, hits: Int, misses: Int) -> String {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        for o in observations {
            factory.makeCounter(
                label: "myorg_gateway_requests_total",
                dimensions: [("route", o.route), ("status", String(o.status)), ("decision", o.decision)]
            ).increment(by: 1)
            let duration = factory.makeTimer(
                label: "myorg_gateway_request_duration_seconds", dimensions: [("route", o.route)])
            let upstream = factory.makeTimer(
                label: "myorg_gateway_upstream_duration_seconds", dimensions: [("route", o.route)])
            duration.recordNanoseconds(o.durationNanos)
            if let nanos = o.upstreamNanos { upstream.recordNanoseconds(nanos) }
        }
        for (name, value) in [
            ("myorg_gateway_h2_streams_total", h2), ("myorg_gateway_token_cache_hits_total", hits),
            ("myorg_gateway_token_cache_misses_total", misses),
        ] {
            factory.makeCounter(label: name, dimensions: []).increment(by: Int64(value))
        }
        return registry.emitToString()
    }

    /// Families (a `# TYPE` line and the samples under it) sorted, and samples sorted within each: the registry
    /// orders both by its dictionaries.
    static func normalized(_ text: String) -> [[Substring]] {
        var families: [[Substring]] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") { families.append([line]) } else { families[families.count - 1].append(line) }
        }
        return families.map { [$0[0]] + $0.dropFirst().sorted() }.sorted { $0[0] < $1[0] }
    }

    @Test("the text matches swift-prometheus's for the same observations, label escaping and big values included")
    func matchesRegistry() {
        var observations: [Observation] = []
        let routes = ["GET details", "PATCH details", "unknown", "other", #"GET a"b\c"# + "\nd"]
        let decisions = ["forwarded", "refused_token", "refused_scope", "forwarded_edge"]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: UInt64) -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (state >> 33) % bound
        }
        let durations: [Int64] = [
            0, 1, 4_999_999, 5_000_000, 5_000_001, 25_000_000, 250_000_001, 1_000_000_000, 9_999_999_999,
            10_000_000_000, 10_000_000_001, 123_456_789_012,
        ]
        for _ in 0..<400 {
            let route = routes[Int(next(UInt64(routes.count)))]
            observations.append(
                Observation(
                    route: route, status: [200, 204, 401, 403, 404, 429, 502][Int(next(7))],
                    decision: decisions[Int(next(UInt64(decisions.count)))],
                    durationNanos: durations[Int(next(UInt64(durations.count)))],
                    upstreamNanos: next(3) == 0 ? nil : durations[Int(next(UInt64(durations.count)))]))
        }
        // Spread over two loops of one tallies, as two event loops would be.
        let tallies = RequestTallies()
        let loops = [LoopMetrics(tallies: tallies), LoopMetrics(tallies: tallies)]
        for (index, o) in observations.enumerated() {
            loops[index % 2].request(
                route: o.route, status: o.status, decision: o.decision, durationNanos: o.durationNanos,
                upstreamNanos: o.upstreamNanos)
        }
        for _ in 0..<3 { loops[0].h2StreamOpened() }
        for _ in 0..<5 { loops[1].h2StreamOpened() }
        for index in 0..<9 { loops[index % 2].tokenCache(hit: index % 3 != 0) }
        let mine = Self.text(tallies)
        let theirs = Self.registryText(observations, h2: 8, hits: 6, misses: 3)
        #expect(Self.normalized(mine) == Self.normalized(theirs))
        #expect(mine.contains(#"route="GET a\"b\\c\nd""#))
        withExtendedLifetime(loops) {}
    }

    @Test("two loops' counts add up; a loop that goes away keeps its counts in the retired total")
    func mergeAndRetire() {
        let tallies = RequestTallies()
        let first = LoopMetrics(tallies: tallies)
        var second: LoopMetrics? = LoopMetrics(tallies: tallies)
        for _ in 0..<3 {
            first.request(route: "GET details", status: 200, decision: "forwarded", durationNanos: 1, upstreamNanos: 1)
        }
        for _ in 0..<2 {
            second?.request(
                route: "GET details", status: 200, decision: "forwarded", durationNanos: 20_000_000,
                upstreamNanos: nil)
        }
        second?.request(
            route: "POST members", status: 403, decision: "refused_scope", durationNanos: 7, upstreamNanos: nil)
        second?.h2StreamOpened()
        second?.tokenCache(hit: false)
        let key = RequestMetricsSnapshot.RequestKey(route: "GET details", status: 200, decision: "forwarded")
        let members = RequestMetricsSnapshot.RequestKey(route: "POST members", status: 403, decision: "refused_scope")
        let before = tallies.snapshot()
        #expect(before.requests == [key: 5, members: 1])
        #expect(before.durations["GET details"]?.slots == [3, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(before.durations["GET details"]?.sumNanos == 40_000_003)
        #expect(before.upstreams["GET details"]?.count == 3)
        #expect(before.upstreams["POST members"]?.count == 0, "the route's upstream histogram exists, empty")
        #expect((before.h2Streams, before.tokenCacheMisses) == (1, 1))

        second = nil
        #expect(tallies.snapshot() == before, "retiring a loop neither loses nor doubles its counts")
        first.request(route: "GET details", status: 200, decision: "forwarded", durationNanos: 1, upstreamNanos: nil)
        let third = LoopMetrics(tallies: tallies)
        third.request(
            route: "POST members", status: 403, decision: "refused_scope", durationNanos: 1, upstreamNanos: nil)
        let after = tallies.snapshot()
        #expect(after.requests == [key: 6, members: 2])
        #expect(after.durations["GET details"]?.count == 6)
        #expect(after.h2Streams == 1)
        withExtendedLifetime((first, third)) {}
    }

    @Test("active HTTP/2 streams: opened minus closed over the live loops; a loop that goes away takes its own along")
    func activeStreams() {
        let tallies = RequestTallies()
        let first = LoopMetrics(tallies: tallies)
        var second: LoopMetrics? = LoopMetrics(tallies: tallies)
        #expect(tallies.activeH2Streams == 0)
        for _ in 0..<3 { first.h2StreamOpened() }
        for _ in 0..<4 { second?.h2StreamOpened() }
        #expect(tallies.activeH2Streams == 7)
        first.h2StreamsClosed()
        second?.h2StreamsClosed(3)
        #expect(tallies.activeH2Streams == 3)
        second = nil
        #expect(tallies.activeH2Streams == 2, "a retired loop's streams closed with it")
        first.h2StreamsClosed(2)
        #expect(tallies.activeH2Streams == 0)
        #expect(tallies.snapshot().h2Streams == 7, "the counter of streams opened is unchanged")
        withExtendedLifetime(first) {}
    }

    @Test("upstream pool sizes: summed per origin over the loops' pools, configured origins at 0, sorted")
    func upstreamPoolSizes() {
        let gauges = UpstreamPoolGauges()
        #expect(gauges.sizes().isEmpty)
        let loop0 = gauges.add(origin: "https://acme.example:443")
        let loop1 = gauges.add(origin: "https://acme.example:443")
        let edge = gauges.add(origin: "https://edge.example:443")
        loop0.open.store(3, ordering: .relaxed)
        loop0.idle.store(1, ordering: .relaxed)
        loop1.open.store(2, ordering: .relaxed)
        loop1.idle.store(2, ordering: .relaxed)
        edge.open.store(1, ordering: .relaxed)
        #expect(
            gauges.sizes(including: ["http://127.0.0.1:8080", "https://acme.example:443"])
                == [
                    .init(origin: "http://127.0.0.1:8080", open: 0, idle: 0),
                    .init(origin: "https://acme.example:443", open: 5, idle: 3),
                    .init(origin: "https://edge.example:443", open: 1, idle: 0),
                ])
        gauges.remove(loop1)
        gauges.remove(edge)
        #expect(gauges.sizes() == [.init(origin: "https://acme.example:443", open: 3, idle: 1)])
    }

    @Test("myorg_gateway_upstream_errors_total has a series per kind from the start, before any error")
    func upstreamErrorsFromTheStart() {
        let metrics = GatewayMetrics(requests: RequestTallies())
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(text.contains("# TYPE myorg_gateway_upstream_errors_total counter\n"))
        for kind in ["connect", "connect_timeout", "pool_full", "pool_timeout", "resolve", "tls"] {
            #expect(text.contains("myorg_gateway_upstream_errors_total{kind=\"\(kind)\"} "), "\(kind) is missing")
        }
    }

    @Test("two gateways' loops with the same index are separate writers, both counted")
    func twoGateways() {
        let tallies = RequestTallies()
        let gatewayA = GatewayMetrics(requests: tallies)
        let gatewayB = GatewayMetrics(requests: tallies)
        let loopA0 = gatewayA.makeLoopMetrics()
        let loopB0 = gatewayB.makeLoopMetrics()
        loopA0.request(route: "other", status: 404, decision: "refused_route", durationNanos: 1, upstreamNanos: nil)
        loopB0.request(route: "other", status: 404, decision: "refused_route", durationNanos: 1, upstreamNanos: nil)
        let key = RequestMetricsSnapshot.RequestKey(route: "other", status: 404, decision: "refused_route")
        #expect(tallies.snapshot().requests == [key: 2])
        withExtendedLifetime((loopA0, loopB0)) {}
    }

    @Test("label sets past a loop's capacity are counted exactly in the shared overflow table")
    func overflow() {
        let tallies = RequestTallies()
        let loops = [LoopMetrics(tallies: tallies, capacity: 2), LoopMetrics(tallies: tallies, capacity: 2)]
        var expected: [RequestMetricsSnapshot.RequestKey: Int] = [:]
        for round in 0..<3 {
            for (index, loop) in loops.enumerated() {
                for status in [200, 201, 202, 203] {
                    loop.request(
                        route: "GET r\(index)", status: status, decision: "forwarded", durationNanos: Int64(round),
                        upstreamNanos: nil)
                    expected[.init(route: "GET r\(index)", status: status, decision: "forwarded"), default: 0] += 1
                }
            }
        }
        let snapshot = tallies.snapshot()
        #expect(snapshot.requests == expected)
        #expect(snapshot.durations["GET r0"]?.count == 12)
        #expect(snapshot.durations["GET r1"]?.sumNanos == 12)
        withExtendedLifetime(loops) {}
    }

    @Test("a scrape while loops write sees counts that never go down, and the final scrape sees every request")
    func concurrentScrapes() {
        let tallies = RequestTallies()
        let perLoop = 50_000
        let done = Atomic<Int>(0)
        let key = RequestMetricsSnapshot.RequestKey(route: "GET details", status: 200, decision: "forwarded")
        let writers = (0..<2).map { _ in DispatchQueue(label: "loop") }
        for queue in writers {
            queue.async {
                let loop = LoopMetrics(tallies: tallies)
                for i in 0..<perLoop {
                    loop.request(
                        route: "GET details", status: 200, decision: "forwarded", durationNanos: Int64(i % 7),
                        upstreamNanos: nil)
                    loop.h2StreamOpened()
                }
                done.add(1, ordering: .releasing)
                // The loop goes away here: its counts move to the retired total.
            }
        }
        var last = RequestMetricsSnapshot()
        var decreased = false
        while done.load(ordering: .acquiring) < 2 {
            let now = tallies.snapshot()
            if (now.requests[key] ?? 0) < (last.requests[key] ?? 0) || now.h2Streams < last.h2Streams
                || (now.durations["GET details"]?.count ?? 0) < (last.durations["GET details"]?.count ?? 0)
            {
                decreased = true
            }
            last = now
        }
        for queue in writers { queue.sync {} }
        let final = tallies.snapshot()
        #expect(!decreased)
        #expect(final.requests[key] == 2 * perLoop)
        #expect(final.h2Streams == 2 * perLoop)
        #expect(final.durations["GET details"]?.count == 2 * perLoop)
        #expect(final.durations["GET details"]?.sumNanos == Int64(2 * (0..<perLoop).reduce(0) { $0 + $1 % 7 }))
    }

    @Test(
        "a request no endpoint matched is labelled unknown under the API's prefix, other elsewhere",
        arguments: [
            ("/my-org", "unknown"), ("/my-org/no-such", "unknown"), ("/my-orgs", "unknown"), ("/my-or", "other"),
            ("/", "other"), ("", "other"), ("/MY-ORG/details", "other"), ("/my-örg", "other"),
            ("*", "other"), ("/status/204", "other"),
        ])
    func unroutedLabel(target: String, label: String) {
        #expect(ExchangeRecorder.unroutedLabel(target) == label)
        #expect(ExchangeRecorder.unroutedLabel(target) == (target.hasPrefix("/my-org") ? "unknown" : "other"))
    }

    @Test("the /metrics body names each family once: the moved metrics are no longer in the registry")
    func noFamilyTwice() {
        MetricsExposition.bootstrap()
        let metrics = GatewayMetrics(requests: RequestTallies())
        let loop = metrics.makeLoopMetrics()
        loop.request(route: "GET details", status: 200, decision: "forwarded", durationNanos: 1, upstreamNanos: 1)
        metrics.tlsHandshakeCompleted()
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        let types = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
        #expect(Set(types).count == types.count, "\(types)")
        for name in [
            "myorg_gateway_requests_total", "myorg_gateway_request_duration_seconds",
            "myorg_gateway_upstream_duration_seconds", "myorg_gateway_h2_streams_total",
            "myorg_gateway_token_cache_hits_total", "myorg_gateway_tls_handshakes_total",
        ] {
            #expect(types.contains(Substring(name)), "\(name) is missing")
        }
        withExtendedLifetime(loop) {}
    }
}
