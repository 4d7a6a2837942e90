import Recording
import GatewayCore
import Policy
import RateLimitStore

/// The admin listener's answers: health, readiness, Prometheus metrics, the redacted configuration, reload.
/// It listens on loopback by default and never on a public listener.
struct AdminEndpoints: Sendable {
    let service: GatewayService

    /// Every read-only endpoint answers HEAD as it answers GET (RFC 9110 §9.1), its body left out by the writer.
    func respond(_ head: RequestHead, _ body: [UInt8], _ peer: String) -> Response {
        let path = String(head.path)
        switch (head.method, path) {
        case ("GET", "/healthz"), ("HEAD", "/healthz"):
            return json(200, ["status": "ok"])
        case ("GET", "/readyz"), ("HEAD", "/readyz"):
            let (ready, reasons) = service.isReady
            return json(
                ready ? 200 : 503,
                ["ready": .bool(ready), "reasons": .array(reasons.map { .string($0) })])
        case ("GET", "/metrics"), ("HEAD", "/metrics"):
            service.refreshGauges()
            return Response(
                status: 200,
                headers: HTTPFields([
                    ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Cache-Control", "no-store"),
                ]),
                body: service.metrics.exposition())
        case ("GET", "/config"), ("HEAD", "/config"):
            // The effective configuration changes with every reload: no cache may answer with an old one.
            return json(200, service.config.redactedJSON())
        case ("POST", "/reload"):
            switch service.reload() {
            case .success(let generation):
                return json(200, ["reloaded": true, "generation": .number(Double(generation))])
            case .failure(let error):
                return json(
                    422,
                    [
                        "reloaded": false,
                        "errors": .array(error.description.split(separator: "\n").map { .string(String($0)) }),
                    ])
            }
        case (_, "/healthz"), (_, "/readyz"), (_, "/metrics"), (_, "/config"), (_, "/reload"):
            return TenantError.methodNotAllowed(
                "Method not allowed on \(path).", allow: path == "/reload" ? ["POST"] : ["GET", "HEAD"]
            )
            .response
        default:
            return TenantError.notFound("No admin endpoint at \(path).").response
        }
    }

    private func json(_ status: Int, _ value: JSONValue) -> Response {
        Response(
            status: status, headers: HTTPFields([("Content-Type", "application/json"), ("Cache-Control", "no-store")]),
            body: value.serializedBytes())
    }
}

extension GatewayService {
    /// Gauges and externally kept counts read at scrape time.
    func refreshGauges() {
        let runtime = self.runtime
        let jwks = runtime.jwks.counters
        metrics.gauge("myorg_gateway_connections_active", Double(max(0, metrics.activeConnections)))
        metrics.gauge("myorg_gateway_connections_handshaking", Double(max(0, metrics.handshakingConnections)))
        metrics.gauge("myorg_gateway_h2_streams_active", Double(max(0, metrics.requests.activeH2Streams)))
        // Summed over the loops' pools; every configured origin is a series from the start, and one a reload
        // removed stays, at 0 once its connections have closed.
        for pool in metrics.upstreamPools.sizes(including: runtime.origins.values.map(\.key)) {
            metrics.gauge(
                "myorg_gateway_upstream_pool_connections_open", Double(pool.open), dimensions: [("origin", pool.origin)]
            )
            metrics.gauge(
                "myorg_gateway_upstream_pool_connections_idle", Double(pool.idle), dimensions: [("origin", pool.origin)]
            )
        }
        metrics.counter("myorg_gateway_jwks_refreshes_total", total: jwks.refreshes)
        metrics.counter("myorg_gateway_jwks_failures_total", total: jwks.failures)
        metrics.gauge("myorg_gateway_jwks_loaded", runtime.jwks.keys == nil ? 0 : 1)
        metrics.gauge(
            "myorg_gateway_rate_limit_tracked_organizations", Double(runtime.policy.limiter.trackedOrganizations))
        if let redis = runtime.policy.sharedAdmission as? RedisRateLimitStore {
            let stats = redis.statistics
            metrics.gauge("myorg_gateway_rate_limit_store_fallback", redis.isUsingFallback ? 1 : 0)
            metrics.counter("myorg_gateway_rate_limit_store_redis_decisions_total", total: stats.redisDecisions)
            metrics.counter("myorg_gateway_rate_limit_store_fallback_decisions_total", total: stats.fallbackDecisions)
            metrics.counter("myorg_gateway_rate_limit_store_errors_total", total: stats.errors)
        }
        let reload = reloadCounters
        metrics.counter("myorg_gateway_config_reloads_total", total: reload.reloads)
        metrics.counter("myorg_gateway_config_reload_failures_total", total: reload.failures)
        metrics.gauge("myorg_gateway_config_generation", Double(reload.generation))
        if let stats = recorderStats() {
            metrics.counter("myorg_gateway_log_events_accepted_total", total: stats.accepted)
            metrics.counter("myorg_gateway_log_events_dropped_total", total: stats.droppedEvents)
            for sink in stats.sinks {
                metrics.gauge("myorg_gateway_log_queue_depth", Double(sink.pending), dimensions: [("sink", sink.name)])
                metrics.gauge(
                    "myorg_gateway_log_spool_bytes", Double(sink.spoolBytes), dimensions: [("sink", sink.name)])
                metrics.counter(
                    "myorg_gateway_log_delivered_total", total: sink.delivered, dimensions: [("sink", sink.name)])
                metrics.counter(
                    "myorg_gateway_log_rotated_files_removed_total", total: sink.rotatedFilesRemoved,
                    dimensions: [("sink", sink.name)])
            }
        }
    }
}
