import Foundation
import TestSupport
import Testing

extension GatewayIntegration {
    /// The admin listener's `/metrics` (read by Prometheus' own text-format parser) and `/config` (redacted).
    @Suite("admin endpoints")
    struct AdminEndpointTests {
        /// A gateway with a canonical and a custom-domain listener on plain HTTP, the custom domain's key in
        /// the environment, and a plain upstream.
        struct Fixture {
            let ws: Workspace
            let upstream: UpstreamServer
            let gateway: GatewayServer
            let canonicalPort: UInt16
            let customPort: UInt16
            let secret: String

            /// `upstreamOptions`: more keys of both upstream entries (`, response_timeout_ms: 500`).
            /// `logging`: the `logging` section's lines (see ``GatewayConfigText/logging``), nil for the default.
            init(
                binary: String, name: String, extra: String = "", upstreamOptions: String = "", logging: String? = nil
            ) throws {
                ws = Workspace(binary: binary, name: name)
                try ws.write("jwks.json", try ws.signingKey("key"))
                upstream = try UpstreamServer(workspace: ws)
                let adminPort = TestProcess.freePort()
                (canonicalPort, customPort) = (TestProcess.freePort(), TestProcess.freePort())
                secret = "cname-secret-\(UUID().uuidString)"
                let origin = "url: \"http://127.0.0.1:\(upstream.port)\"\(upstreamOptions)"
                var config = GatewayConfigText(
                    jwks: "{ file: jwks.json }",
                    listeners: [
                        .init(port: canonicalPort, domain: "acme.test"),
                        .init(port: customPort, domain: "login.acme.test"),
                    ],
                    upstreams: [
                        ("acme.test", "{ \(origin) }"),
                        ("login.acme.test", "{ \(origin), cname_api_key: { env: INTEG_CNAME_KEY } }"),
                    ],
                    clients: [.init(id: "web-app", scopes: ["read:my_org:details", "read:my_org:domains"])],
                    adminPort: adminPort, extra: extra)
                if let logging { config.logging = logging }
                try ws.write("gateway.yaml", config.yaml)
                gateway = try GatewayServer(
                    binary: binary, config: ws.path("gateway.yaml"), adminPort: adminPort,
                    ports: [canonicalPort, customPort], environment: ["INTEG_CNAME_KEY": secret])
                guard try gateway.waitReady() else { throw HarnessError("not ready: \(gateway.process.log)") }
            }

            func stop() {
                _ = gateway.stop()
                upstream.stop()
                ws.remove()
            }

            func get(_ path: String, token: String? = nil, port: UInt16? = nil) throws -> Int {
                try curlStatus(
                    (token.map { ["-H", "Authorization: Bearer \($0)"] } ?? [])
                        + ["http://127.0.0.1:\(port ?? canonicalPort)\(path)"]
                ).status
            }
        }

        /// One sample as `prometheus_client` parsed it.
        struct Sample: Decodable {
            var family: String
            var type: String
            var name: String
            var labels: [String: String]
            var value: Double
        }

        /// Parses exposition text with `prometheus_client.parser` (the reference implementation's parser).
        static func parseWithPrometheusClient(_ text: String) throws -> [Sample]? {
            let script = """
                import json, sys
                try:
                    from prometheus_client.parser import text_string_to_metric_families
                except ImportError:
                    print("NO_PROMETHEUS_CLIENT"); sys.exit(0)
                out = []
                for family in text_string_to_metric_families(sys.stdin.read()):
                    for s in family.samples:
                        out.append({"family": family.name, "type": family.type, "name": s.name,
                                    "labels": s.labels, "value": s.value})
                print(json.dumps(out))
                """
            let out = try TestProcess.run("/usr/bin/env", ["python3", "-c", script], timeout: 20, stdin: text)
            guard out.status == 0 else { throw HarnessError("the Prometheus parser refused /metrics: \(out.stderr)") }
            if out.stdout.hasPrefix("NO_PROMETHEUS_CLIENT") { return nil }
            return try JSONDecoder().decode([Sample].self, from: Data(out.stdout.utf8))
        }

        @Test("/metrics parses with prometheus_client; requests_total counts route, status and decision exactly")
        func metrics() throws {
            guard let binary = gatewayBinaryOrSkip("metrics") else { return }
            let f = try Fixture(binary: binary, name: "metrics")
            defer { f.stop() }
            let reader = try f.ws.token(
                key: "key", domain: "acme.test", client: "web-app", scope: "read:my_org:details")
            // Known traffic: 3 forwarded, 2 without a token, 1 lacking the scope, 1 unknown route, 1 edge-forwarded.
            for _ in 0..<3 { #expect(try f.get("/my-org/details", token: reader) == 200) }
            for _ in 0..<2 { #expect(try f.get("/my-org/details") == 401) }
            #expect(try f.get("/my-org/domains", token: reader) == 403)
            #expect(try f.get("/my-org/no-such-thing", token: reader) == 404)
            #expect(try f.get("/status/204", port: f.customPort) == 204)

            let scrape = try f.gateway.admin("/metrics")
            #expect(scrape.status == 200)
            guard let samples = try Self.parseWithPrometheusClient(scrape.body) else {
                let message = "prometheus_client is not installed (pip install prometheus-client)"
                if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("\(message)") }
                print("note: metrics test skipped: \(message)")
                return
            }
            let requests = samples.filter { $0.name == "myorg_gateway_requests_total" }
            #expect(requests.allSatisfy { $0.type == "counter" && $0.family == "myorg_gateway_requests" })
            func count(_ route: String, _ status: String, _ decision: String) -> Double? {
                requests.first { $0.labels == ["route": route, "status": status, "decision": decision] }?.value
            }
            let expected: [(String, String, String, Double)] = [
                ("GET details", "200", "forwarded", 3),
                ("GET details", "401", "refused_token", 2),
                ("GET domains", "403", "refused_scope", 1),
            ]
            for (route, status, decision, value) in expected {
                #expect(
                    count(route, status, decision) == value,
                    "\(route) \(status) \(decision): \(requests.map { "\($0.labels)=\($0.value)" })")
            }
            let notFound = requests.filter { $0.labels["status"] == "404" }
            #expect(notFound.map(\.value) == [1], "\(notFound.map(\.labels))")
            #expect(notFound.first?.labels["decision"] == "refused_route")
            let edge = requests.filter { $0.labels["decision"] == "forwarded_edge" }
            #expect(edge.map(\.value) == [1], "\(edge.map(\.labels))")
            #expect(edge.first?.labels["status"] == "204")
            #expect(requests.map(\.value).reduce(0, +) == 8, "every request is counted once")

            let durations = samples.filter {
                $0.name == "myorg_gateway_request_duration_seconds_count" && $0.labels["route"] == "GET details"
            }
            #expect(durations.map(\.value) == [5], "\(durations.map(\.labels))")
            let loaded = samples.first { $0.name == "myorg_gateway_jwks_loaded" }
            #expect(loaded?.value == 1)
            // Counts that only grow are counters, so that rate() and increase() apply to them.
            for family in [
                "myorg_gateway_log_events_accepted", "myorg_gateway_log_events_dropped", "myorg_gateway_log_delivered",
                "myorg_gateway_config_reloads", "myorg_gateway_config_reload_failures", "myorg_gateway_jwks_refreshes",
                "myorg_gateway_jwks_failures",
            ] {
                let found = samples.filter { $0.family == family }
                #expect(!found.isEmpty, "\(family) is missing")
                #expect(found.allSatisfy { $0.type == "counter" && $0.name == family + "_total" }, "\(found)")
            }
            let accepted = samples.first { $0.name == "myorg_gateway_log_events_accepted_total" }
            #expect((accepted?.value ?? 0) >= 5, "one event per logged request: \(String(describing: accepted))")
        }

        /// The value of the sample `name{labels}` (or `name` without labels) in exposition text.
        static func sample(_ text: String, _ name: String, _ labels: String = "") -> Double? {
            let prefix = labels.isEmpty ? name + " " : "\(name){\(labels)} "
            for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
                return Double(line.dropFirst(prefix.count))
            }
            return nil
        }

        @Test(
            "/metrics: the upstream pool per origin, HTTP/2 streams open now, and upstream errors by kind from the start"
        )
        func poolStreamsAndErrors() throws {
            guard let binary = gatewayBinaryOrSkip("pool and stream gauges") else { return }
            let f = try Fixture(binary: binary, name: "poolgauges")
            defer { f.stop() }
            let origin = "origin=\"http://127.0.0.1:\(f.upstream.port)\""
            let open = "myorg_gateway_upstream_pool_connections_open"
            let idle = "myorg_gateway_upstream_pool_connections_idle"
            // Before any request: every series is there, at 0.
            let first = try f.gateway.admin("/metrics").body
            for kind in ["connect", "connect_timeout", "pool_full", "pool_timeout", "resolve", "tls"] {
                #expect(
                    Self.sample(first, "myorg_gateway_upstream_errors_total", "kind=\"\(kind)\"") == 0,
                    "\(kind): \(first)")
            }
            #expect(Self.sample(first, open, origin) == 0, "\(first)")
            #expect(Self.sample(first, idle, origin) == 0)
            #expect(Self.sample(first, "myorg_gateway_h2_streams_active") == 0)

            // One HTTP/2 request held by the upstream (/slow answers after 3 s; the custom domain forwards it).
            let slow = try BackgroundProcess(
                "/usr/bin/curl",
                [
                    "-sS", "-o", "/dev/null", "--max-time", "10", "--http2-prior-knowledge",
                    "http://127.0.0.1:\(f.customPort)/slow",
                ], logName: "slow-curl")
            defer { slow.stop(signal: SIGKILL) }
            var during = ""
            // The stream is counted as it opens, its upstream connection a moment later (once dialled): one sample
            // may see the first alone.
            let inFlight = try eventually(timeout: 2.5) {
                during = try f.gateway.admin("/metrics").body
                return Self.sample(during, "myorg_gateway_h2_streams_active") == 1
                    && Self.sample(during, open, origin) == 1
            }
            #expect(inFlight, "\(during)")
            #expect(Self.sample(during, open, origin) == 1, "\(during)")
            #expect(Self.sample(during, idle, origin) == 0, "\(during)")

            // Answered: the stream is over, and the upstream connection waits in the pool for the next request.
            #expect(eventually(timeout: 8) { !slow.process.isRunning })
            var after = ""
            let settled = try eventually(timeout: 2) {
                after = try f.gateway.admin("/metrics").body
                return Self.sample(after, "myorg_gateway_h2_streams_active") == 0
            }
            #expect(settled, "\(after)")
            #expect(Self.sample(after, open, origin) == 1, "\(after)")
            #expect(Self.sample(after, idle, origin) == 1, "\(after)")
            #expect(Self.sample(after, "myorg_gateway_h2_streams_total") == 1)
        }

        /// A token whose signature verifies but whose claims are refused here (issued for the custom domain, sent to
        /// the canonical one) is kept by the handler's verified-token cache: repeating it costs no second RSA check.
        /// Each handler (one per listener per loop: two loops here) verifies it at most once, however often it is
        /// sent.
        @Test("a token refused by the claims check is not verified again by the same handler")
        func refusedTokenNotReverified() throws {
            guard let binary = gatewayBinaryOrSkip("refused-token-cache") else { return }
            let f = try Fixture(binary: binary, name: "refused-token-cache")
            defer { f.stop() }
            let token = try f.ws.token(
                key: "key", domain: "login.acme.test", client: "web-app", scope: "read:my_org:details")
            func counts() throws -> (hits: Int, misses: Int) {
                (
                    Int(try #require(try metricValue(f.gateway, "myorg_gateway_token_cache_hits_total"))),
                    Int(try #require(try metricValue(f.gateway, "myorg_gateway_token_cache_misses_total")))
                )
            }
            for _ in 0..<6 { #expect(try f.get("/my-org/details", token: token) == 401) }
            let refused = try counts()
            #expect(refused.misses >= 1 && refused.misses <= 2, "verified \(refused.misses) times")
            #expect(refused.hits + refused.misses == 6)
            // On its own domain the same token is accepted, and then kept with its checked claims.
            for _ in 0..<4 { #expect(try f.get("/my-org/details", token: token, port: f.customPort) == 200) }
            let accepted = try counts()
            #expect(accepted.misses <= refused.misses + 2, "verified \(accepted.misses) times")
            #expect(accepted.hits + accepted.misses == 10)
        }

        /// On a listener that takes the tenant domain from the Host, one handler sees a token on both domains. An
        /// accepted token is kept with the claims it passed for its own domain: sent with the other domain's Host it
        /// costs no second RSA operation, but its claims are judged again there and refused with the detail that
        /// names both domains (never served as accepted from the entry); on its own domain it is still accepted.
        @Test("a cached token sent on the other domain of a Host-routed listener is refused naming both domains")
        func cachedTokenOnOtherDomain() throws {
            guard let binary = gatewayBinaryOrSkip("cached token, other domain") else { return }
            let ws = Workspace(binary: binary, name: "cached-other-domain")
            defer { ws.remove() }
            try ws.write("jwks.json", try ws.signingKey("key"))
            let upstream = try UpstreamServer(workspace: ws)
            defer { upstream.stop() }
            let (adminPort, port) = (TestProcess.freePort(), TestProcess.freePort())
            let origin = "{ url: \"http://127.0.0.1:\(upstream.port)\" }"
            let config = GatewayConfigText(
                jwks: "{ file: jwks.json }", listeners: [.init(port: port, domain: "")],
                upstreams: [("acme.test", origin), ("login.acme.test", origin)],
                clients: [.init(id: "web-app", scopes: ["read:my_org:details"])], adminPort: adminPort)
            try ws.write("gateway.yaml", config.yaml)
            // One loop: one handler sees every request, so the counts below are exact.
            let gateway = try GatewayServer(
                binary: binary, config: ws.path("gateway.yaml"), adminPort: adminPort, ports: [port], loops: 1)
            defer { _ = gateway.stop() }
            guard try gateway.waitReady() else { throw HarnessError("not ready: \(gateway.process.log)") }
            let token = try ws.token(key: "key", domain: "acme.test", client: "web-app", scope: "read:my_org:details")
            func send(_ host: String) throws -> (status: Int, body: String) {
                try curlStatus([
                    "-H", "Host: \(host)", "-H", "Authorization: Bearer \(token)",
                    "http://127.0.0.1:\(port)/my-org/details",
                ])
            }
            func counts() throws -> (hits: Int, misses: Int) {
                (
                    Int(try #require(try metricValue(gateway, "myorg_gateway_token_cache_hits_total"))),
                    Int(try #require(try metricValue(gateway, "myorg_gateway_token_cache_misses_total")))
                )
            }
            #expect(try send("acme.test").status == 200)
            #expect(try send("acme.test").status == 200)
            for _ in 0..<3 {
                let other = try send("login.acme.test")
                #expect(other.status == 401, "\(other.body)")
                #expect(other.body.contains("issued for acme.test"), "\(other.body)")
                #expect(other.body.contains("sent to login.acme.test"), "\(other.body)")
            }
            #expect(try send("acme.test").status == 200)
            let seen = try counts()
            // Verified once, on the first request; every later one, on either domain, found the entry.
            #expect(seen.misses == 1, "\(seen)")
            #expect(seen.hits == 5, "\(seen)")
        }

        @Test("a request that waits connect_timeout_ms for a busy upstream pool gets 503, counted as pool_timeout")
        func poolWaitTimesOut() throws {
            guard let binary = gatewayBinaryOrSkip("upstream pool wait") else { return }
            let f = try Fixture(
                binary: binary, name: "poolwait", upstreamOptions: ", max_connections: 1, connect_timeout_ms: 300")
            defer { f.stop() }
            guard let nghttp = TestProcess.which("nghttp") else {
                print("note: pool wait skipped: nghttp is not installed (apt-get install nghttp2-client)")
                return
            }
            // Two streams on one HTTP/2 connection share one loop, so one pool of one connection: the slow answer
            // holds it, and the second request waits for it until the deadline. (nghttp, not curl: curl 7.88's
            // --parallel fails its second transfer on an h2c connection before sending it.)
            let out = try TestProcess.run(
                nghttp,
                ["-ns", "http://127.0.0.1:\(f.customPort)/slow", "http://127.0.0.1:\(f.customPort)/after-slow"])
            // nghttp -s prints one line per stream: id, times, status code, size, path.
            let codes = Dictionary(
                out.stdout.split(separator: "\n").compactMap { line -> (String, String)? in
                    let words = line.split(separator: " ")
                    guard words.count >= 7, let path = words.last, path.hasPrefix("/") else { return nil }
                    return (String(path), String(words[words.count - 3]))
                }, uniquingKeysWith: { first, _ in first })
            #expect(codes["/slow"] == "200", "\(out.stdout)")
            #expect(codes["/after-slow"] == "503", "\(out.stdout)")
            #expect(try metricValue(f.gateway, "myorg_gateway_upstream_errors_total{kind=\"pool_timeout\"}") == 1)
            #expect(try metricValue(f.gateway, "myorg_gateway_upstream_pool_waits_total") == 1)
        }

        @Test("a reload naming a JWKS file that does not parse or holds no key is refused; the old keys keep serving")
        func reloadRefusesBrokenJWKS() throws {
            guard let binary = gatewayBinaryOrSkip("reload with a broken JWKS") else { return }
            let f = try Fixture(binary: binary, name: "reloadbadkeys")
            defer { f.stop() }
            let token = try f.ws.token(key: "key", domain: "acme.test", client: "web-app", scope: "read:my_org:details")
            #expect(try f.get("/my-org/details", token: token) == 200)
            let original = try String(contentsOfFile: f.ws.path("gateway.yaml"), encoding: .utf8)
            try f.ws.write("broken-jwks.json", "{\"keys\": [")
            try f.ws.write("empty-jwks.json", "{\"keys\": []}")
            for name in ["broken-jwks.json", "empty-jwks.json"] {
                let changed = original.replacingOccurrences(of: "{ file: jwks.json }", with: "{ file: \(name) }")
                try #require(changed != original)
                try f.ws.write("gateway.yaml", changed)
                let line = try #require(lineNumber(of: "{ file: \(name) }", in: changed))
                let reload = try f.gateway.admin("/reload", method: "POST")
                #expect(reload.status == 422, "\(name): \(reload.body)")
                #expect(reload.body.contains("gateway.yaml:\(line):"), "\(reload.body)")
                #expect(reload.body.contains("tenant.jwks.file"), "\(reload.body)")
                #expect(try f.get("/my-org/details", token: token) == 200, "\(name): the old keys must keep serving")
                #expect(try f.gateway.admin("/readyz").status == 200)
            }
        }

        @Test("a reload reads the JWKS file again: a key taken out is refused at once, a key put in is accepted")
        func reloadRereadsKeys() throws {
            guard let binary = gatewayBinaryOrSkip("reload re-reads the JWKS") else { return }
            let f = try Fixture(binary: binary, name: "reloadkeys")
            defer { f.stop() }
            let scope = "read:my_org:details"
            let old = try f.ws.token(key: "key", domain: "acme.test", client: "web-app", scope: scope)
            #expect(try f.get("/my-org/details", token: old) == 200)
            // The same file name, other content: the configuration itself does not change.
            try f.ws.write("jwks.json", try f.ws.signingKey("rotated"))
            let new = try f.ws.token(key: "rotated", domain: "acme.test", client: "web-app", scope: scope)
            let reload = try f.gateway.admin("/reload", method: "POST")
            #expect(reload.status == 200, "\(reload.body)")
            #expect(try f.get("/my-org/details", token: old) == 401, "the removed key still verifies tokens")
            #expect(try f.get("/my-org/details", token: new) == 200, "the added key is not used")
        }

        @Test(
            "Expect: 100-continue: a refusal the head decides comes at once, without a 100, and the connection closes; otherwise the 100 comes first"
        )
        func expectContinueAndEarlyRefusal() throws {
            guard let binary = gatewayBinaryOrSkip("expect 100-continue") else { return }
            let f = try Fixture(binary: binary, name: "expect")
            defer { f.stop() }
            let head =
                "PATCH /my-org/details HTTP/1.1\r\nHost: acme.test\r\nContent-Type: application/json\r\n"
                + "Content-Length: 2\r\nExpect: 100-continue\r\n"
            // No token: RFC 9110 §10.1.1, the final status is sent at once when the head decides it.
            let refused = try RawConnection(port: f.canonicalPort)
            try refused.send(head + "\r\n")
            let answer = refused.readToEnd()
            #expect(answer.text.hasPrefix("HTTP/1.1 401 "), "\(answer.text)")
            #expect(!answer.text.contains("100 Continue"), "\(answer.text)")
            #expect(answer.closed)
            // A token: the body is asked for.
            let token = try f.ws.token(key: "key", domain: "acme.test", client: "web-app", scope: "read:my_org:details")
            let asked = try RawConnection(port: f.canonicalPort)
            try asked.send(head + "Authorization: Bearer \(token)\r\n\r\n")
            let interim = asked.readResponse()
            #expect(interim?.hasPrefix("HTTP/1.1 100 Continue\r\n") == true, "\(interim ?? "nothing")")
            // HTTP/2 the same, the stream staying open for the body (curl -v prints each response's status line).
            // The fixture's client is not granted the write scope: that refusal needs the token, so it follows the 100.
            let writer = try f.ws.token(
                key: "key", domain: "acme.test", client: "web-app", scope: "update:my_org:details")
            for (authorization, interim, final) in [(nil, false, "401"), (writer, true, "403")] {
                let out = try TestProcess.run(
                    "/usr/bin/curl",
                    [
                        "-sS", "-v", "--max-time", "10", "--http2-prior-knowledge", "-X", "PATCH", "-o", "/dev/null",
                        "-H", "Expect: 100-continue", "-H", "Content-Type: application/json", "--data-binary", "{}",
                    ] + (authorization.map { ["-H", "Authorization: Bearer \($0)"] } ?? [])
                        + ["http://127.0.0.1:\(f.canonicalPort)/my-org/details"], timeout: 15)
                #expect(out.stderr.contains("< HTTP/2 100") == interim, "\(out.stderr)")
                #expect(out.stderr.contains("< HTTP/2 \(final)"), "\(out.stderr)")
            }
        }

        @Test("a body over the limit is refused with 413 and still logged: one failed event per protocol, with its id")
        func oversizedBodyIsLogged() throws {
            guard let binary = gatewayBinaryOrSkip("413 event") else { return }
            let f = try Fixture(binary: binary, name: "bigbody")
            defer { f.stop() }
            let token = try f.ws.token(
                key: "key", domain: "acme.test", client: "web-app", scope: "read:my_org:details")
            let body = f.ws.path("big.json")
            try f.ws.write("big.json", String(repeating: "a", count: 2 << 20))
            for (protocolFlag, id) in [("--http1.1", "big-h1"), ("--http2-prior-knowledge", "big-h2")] {
                let answer = try curlStatus([
                    protocolFlag, "-X", "PATCH", "-H", "Authorization: Bearer \(token)", "-H", "X-Request-Id: \(id)",
                    "-H", "Content-Type: application/json", "--data-binary", "@\(body)",
                    "http://127.0.0.1:\(f.canonicalPort)/my-org/details",
                ])
                #expect(answer.status == 413, "\(protocolFlag): \(answer.body)")
            }
            #expect(f.gateway.stop() == 0)
            let events = ((try? String(contentsOfFile: f.ws.path("events.jsonl"), encoding: .utf8)) ?? "")
                .split(separator: "\n")
            for id in ["big-h1", "big-h2"] {
                let mine = events.filter { $0.contains("\"correlation_id\":\"\(id)\"") }
                #expect(mine.count == 1, "\(id): \(mine)")
                #expect(mine.first?.contains("\"type\":\"my_organization_api_org_details_failed\"") == true)
                #expect(mine.first?.contains("\"status\":413") == true, "\(mine)")
                #expect(mine.first?.contains("\"method\":\"PATCH\"") == true, "\(mine)")
            }
        }

        @Test("a failed event the tenant decided carries the tenant's error (type, title, status, detail)")
        func tenantErrorInEvent() throws {
            guard let binary = gatewayBinaryOrSkip("tenant error in event") else { return }
            let f = try Fixture(binary: binary, name: "tenanterror")
            defer { f.stop() }
            let token = try f.ws.token(key: "key", domain: "acme.test", client: "web-app", scope: "read:my_org:domains")
            for (flag, id) in [("--http1.1", "missing-h1"), ("--http2-prior-knowledge", "missing-h2")] {
                let answer = try curlStatus([
                    flag, "-H", "Authorization: Bearer \(token)", "-H", "X-Request-Id: \(id)",
                    "http://127.0.0.1:\(f.canonicalPort)/my-org/domains/dom_missing",
                ])
                #expect(answer.status == 404, "\(answer.body)")
            }
            #expect(f.gateway.stop() == 0)
            let events = ((try? String(contentsOfFile: f.ws.path("events.jsonl"), encoding: .utf8)) ?? "")
                .split(separator: "\n")
            for id in ["missing-h1", "missing-h2"] {
                let event = try #require(events.first { $0.contains("\"correlation_id\":\"\(id)\"") }, "\(events)")
                let json = try #require(
                    try JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any])
                let details = try #require(json["details"] as? [String: Any], "\(event)")
                #expect(json["type"] as? String == "my_organization_api_domain_failed", "\(event)")
                #expect(details["decided_by"] as? String == "tenant", "\(event)")
                let error = try #require(details["error"] as? [String: Any], "\(event)")
                #expect(error["type"] as? String == "https://auth0.com/api-errors#A0E-404-0002")
                #expect(error["title"] as? String == "Resource Not Found")
                #expect(error["status"] as? Int == 404)
                #expect(error["detail"] as? String == "No domain with id dom_missing.")
            }
        }

        @Test("the upstream's Vary is merged with the gateway's; a 502 keeps the CORS, Vary and rate-limit fields")
        func varyAndFailureFields() throws {
            guard let binary = gatewayBinaryOrSkip("vary and failure fields") else { return }
            let f = try Fixture(binary: binary, name: "varyfail")
            defer { f.stop() }
            let token = try f.ws.token(key: "key", domain: "acme.test", client: "web-app", scope: "read:my_org:details")
            func head(_ port: UInt16, _ path: String) throws -> (status: Int, fields: [String]) {
                let out = try TestProcess.run(
                    "/usr/bin/curl",
                    [
                        "-sS", "--max-time", "10", "-o", "/dev/null", "-D", "-", "-H", "Authorization: Bearer \(token)",
                        "-H", "Origin: https://app.acme.test", "http://127.0.0.1:\(port)\(path)",
                    ], timeout: 15)
                let lines = out.stdout.split(separator: "\r\n").map { $0.lowercased() }
                let status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
                return (status, lines)
            }
            let merged = try head(f.canonicalPort, "/my-org/details?vary")
            #expect(merged.status == 200)
            let vary = merged.fields.filter { $0.hasPrefix("vary:") }
            #expect(vary == ["vary: accept-encoding, origin"], "\(merged.fields)")
            #expect(merged.fields.contains("access-control-allow-origin: https://app.acme.test"))
            f.upstream.stop()
            let failed = try head(f.canonicalPort, "/my-org/details")
            #expect(failed.status == 502, "\(failed.fields)")
            #expect(failed.fields.contains("access-control-allow-origin: https://app.acme.test"), "\(failed.fields)")
            #expect(failed.fields.contains("vary: origin"), "\(failed.fields)")
            #expect(failed.fields.contains { $0.hasPrefix("x-ratelimit-remaining: ") }, "\(failed.fields)")
            #expect(failed.fields.contains { $0.hasPrefix("ratelimit-policy: ") }, "\(failed.fields)")
        }

        @Test("a streamed request body is recorded with its whole size and marked truncated, as a chunked one is")
        func streamedBodyRecordedSize() throws {
            guard let binary = gatewayBinaryOrSkip("streamed body recording") else { return }
            let f = try Fixture(
                binary: binary, name: "recstream", extra: "recording: { enabled: true, path: rec.jsonl }\n")
            defer { f.stop() }
            let size = 100_000
            try f.ws.write("big.json", "{\"a\":\"" + String(repeating: "x", count: size - 8) + "\"}")
            for (framing, id) in [([String](), "declared"), (["-H", "Transfer-Encoding: chunked"], "chunked")] {
                let answer = try curlStatus(
                    framing + [
                        "-X", "POST", "-H", "Content-Type: application/json", "-H", "X-Request-Id: \(id)",
                        "--data-binary", "@\(f.ws.path("big.json"))", "http://127.0.0.1:\(f.customPort)/upload",
                    ])
                #expect(answer.status == 200, "\(id): \(answer.body)")
            }
            #expect(f.gateway.stop() == 0)
            let lines = ((try? String(contentsOfFile: f.ws.path("rec.jsonl"), encoding: .utf8)) ?? "")
                .split(separator: "\n")
            for id in ["declared", "chunked"] {
                let line = try #require(lines.first { $0.contains(id) }, "\(id): \(lines.count) lines")
                let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                let request = try #require(json["request"] as? [String: Any], "\(line.prefix(300))")
                let body = try #require(request["body"] as? [String: Any], "\(id)")
                #expect(body["size"] as? Int == size, "\(id): \(body["size"] ?? "none")")
                #expect(body["truncated"] as? Bool == true, "\(id)")
            }
        }

        @Test("a long pipeline of requests the gateway answers itself is served in order, without deep recursion")
        func longPipeline() throws {
            guard let binary = gatewayBinaryOrSkip("long pipeline") else { return }
            let f = try Fixture(binary: binary, name: "pipeline")
            defer { f.stop() }
            // Each is refused on its head (no token), so each answer ends inside the call that read it; 1,500 of
            // them crashed the process when every one started the next from a nested call.
            let count = 4000
            let request = "GET /my-org/details HTTP/1.1\r\nHost: acme.test\r\n\r\n"
            let last = "GET /my-org/details HTTP/1.1\r\nHost: acme.test\r\nConnection: close\r\n\r\n"
            let connection = try RawConnection(port: f.canonicalPort, timeout: 15)
            nonisolated(unsafe) let sender = connection
            let sent = DispatchSemaphore(value: 0)
            // Sent from another thread while this one reads: the answers must not back up behind the requests.
            DispatchQueue.global().async {
                try? sender.send(String(repeating: request, count: count) + last)
                sent.signal()
            }
            let (text, closed) = connection.readToEnd()
            _ = sent.wait(timeout: .now() + 15)
            #expect(closed, "the connection should close after the last request")
            #expect(text.components(separatedBy: "HTTP/1.1 401 ").count - 1 == count + 1)
            #expect(f.gateway.process.process.isRunning, "the gateway died: \(f.gateway.process.log.suffix(500))")
        }

        @Test("an HTTP/2 reader that opens no window throttles the upstream instead of filling the gateway's memory")
        func h2Backpressure() throws {
            guard let binary = gatewayBinaryOrSkip("h2 backpressure") else { return }
            let f = try Fixture(binary: binary, name: "h2slow")
            defer { f.stop() }
            func residentKiB() -> Int {
                let status = (try? String(contentsOfFile: "/proc/\(f.gateway.pid)/status", encoding: .utf8)) ?? ""
                let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
                return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
            }
            _ = try curlStatus(["--http2-prior-knowledge", "http://127.0.0.1:\(f.customPort)/big"])
            let before = residentKiB()
            let client = TestProcess.fixture("zero_window_client.py")
            let slow = try BackgroundProcess(
                "/usr/bin/env", ["python3", client, "\(f.customPort)", "/huge", "6"], logName: "zero-window-reader")
            defer { slow.stop(signal: SIGKILL, timeout: 2) }
            // Without backpressure the 48 MiB arrive from the loopback upstream within a second and sit in memory.
            Thread.sleep(forTimeInterval: 2.5)
            let grown = residentKiB() - before
            #expect(grown < 16 * 1024, "the gateway's resident size grew by \(grown) KiB for one slow reader")
        }

        @Test("an HTTP/2 client that never opens its window is closed after the idle timeout: GOAWAY, upstream freed")
        func h2WindowStallCloses() throws {
            guard let binary = gatewayBinaryOrSkip("h2 window stall") else { return }
            let f = try Fixture(binary: binary, name: "h2stall", extra: "limits: { idle_timeout_ms: 1000 }\n")
            defer { f.stop() }
            let client = TestProcess.fixture("zero_window_client.py")
            let out = try TestProcess.run(
                "/usr/bin/env", ["python3", client, "\(f.customPort)", "/big", "8"], timeout: 20)
            // The stall is judged by the sweeper (every 250 ms) once the answer has waited a whole idle timeout.
            #expect(out.stdout.hasPrefix("closed after "), "\(out.stdout)\(out.stderr)")
            #expect(out.stdout.contains("goaway 11"), "ENHANCE_YOUR_CALM: \(out.stdout)")
            #expect(try metricValue(f.gateway, "myorg_gateway_client_write_stalls_total") == 1)
        }

        @Test("an HTTP/2 stream stalled behind a window its client never opens is reset, though the client PINGs")
        func h2StalledStreamIsReset() throws {
            guard let binary = gatewayBinaryOrSkip("h2 stalled stream") else { return }
            let f = try Fixture(binary: binary, name: "h2stream", extra: "limits: { idle_timeout_ms: 1000 }\n")
            defer { f.stop() }
            let client = TestProcess.fixture("h2_stalled_stream.py")
            let out = try TestProcess.run(
                "/usr/bin/env", ["python3", client, "\(f.customPort)", "/big", "6"], timeout: 20)
            let lines = out.stdout.split(separator: "\n").map(String.init)
            // The PINGs keep the connection busy, so only the stream's own stall can end it: RST_STREAM(CANCEL)
            // after about the idle timeout (judged by the 250 ms sweeper), the connection left open.
            let reset = try #require(lines.first { $0.hasPrefix("reset 1 8 after ") }, "\(out.stdout)\(out.stderr)")
            let seconds = Double(reset.split(separator: " ")[4]) ?? 99
            #expect(seconds >= 0.9 && seconds < 3, "\(reset)")
            #expect(!lines.contains { $0.hasPrefix("goaway 11") }, "\(out.stdout)")
            #expect(try metricValue(f.gateway, "myorg_gateway_client_write_stalls_total") == 1)
            // The stream is gone, and with it its exchange and the upstream connection it held.
            #expect(try metricValue(f.gateway, "myorg_gateway_h2_streams_active") == 0)
        }

        @Test(
            "an upstream answer that breaks off mid-body is logged as a failure (502, upstream_aborted), not a success")
        func cutOffAnswerIsAFailure() throws {
            guard let binary = gatewayBinaryOrSkip("cut-off answer") else { return }
            let f = try Fixture(binary: binary, name: "cutoff")
            defer { f.stop() }
            let token = try f.ws.token(key: "key", domain: "acme.test", client: "web-app", scope: "read:my_org:details")
            for (flag, id) in [("--http1.1", "cut-h1"), ("--http2-prior-knowledge", "cut-h2")] {
                let out = try TestProcess.run(
                    "/usr/bin/curl",
                    [
                        "-sS", "--max-time", "10", flag, "-o", "/dev/null", "-H", "Authorization: Bearer \(token)",
                        "-H", "X-Request-Id: \(id)", "http://127.0.0.1:\(f.canonicalPort)/my-org/details?cutoff",
                    ], timeout: 15)
                #expect(out.status != 0, "\(flag): the client must see the answer cut off")
            }
            #expect(f.gateway.stop() == 0)
            let events = ((try? String(contentsOfFile: f.ws.path("events.jsonl"), encoding: .utf8)) ?? "")
                .split(separator: "\n")
            for id in ["cut-h1", "cut-h2"] {
                let event = try #require(events.first { $0.contains("\"correlation_id\":\"\(id)\"") }, "\(id)")
                #expect(event.contains("\"type\":\"my_organization_api_org_details_failed\""), "\(event)")
                #expect(event.contains("\"status\":502"), "\(event)")
                #expect(event.contains("upstream_aborted"), "\(event)")
            }
        }

        @Test("under a low open-files limit the connection limit is lowered to fit, and the rest are refused clearly")
        func openFilesLimit() throws {
            guard let binary = gatewayBinaryOrSkip("open-files limit") else { return }
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") else { return }
            let f = try Fixture(binary: binary, name: "nofile")
            defer { f.stop() }
            #expect(f.gateway.stop() == 0)
            // 400 descriptors: less than the upstream pools and the reserve need beside 10,000 clients.
            let gateway = try BackgroundProcess(
                "/usr/bin/prlimit",
                ["--nofile=400:400", binary, "serve", "--config", f.ws.path("gateway.yaml")],
                environment: ["INTEG_CNAME_KEY": f.secret], logName: "nofile-gateway")
            defer { _ = gateway.stop() }
            let lowered = eventually(timeout: 10) { gateway.log.contains("limits.max_connections lowered") }
            #expect(lowered, "\(gateway.log)")
            #expect(eventually(timeout: 10) { !RawConnection.isRefused(port: f.canonicalPort) })
            var held: [RawConnection] = []
            var refusals = 0
            for _ in 0..<600 {
                guard let connection = try? RawConnection(port: f.canonicalPort, timeout: 2) else { break }
                held.append(connection)
            }
            // Past the lowered limit each new connection gets the clear 503 and is closed.
            for connection in held.suffix(20) where connection.readToEnd().text.hasPrefix("HTTP/1.1 503 ") {
                refusals += 1
            }
            #expect(refusals == 20, "\(refusals) of the last 20 connections were refused with 503")
            held.removeAll()
            #expect(gateway.process.isRunning, "the gateway died: \(gateway.log.suffix(400))")
            let status = try curlStatus(["http://127.0.0.1:\(f.canonicalPort)/my-org/details"])
            #expect(status.status == 401, "it serves again once the connections are gone: \(status)")
        }

        @Test("an HTTP/2 connection that opens no stream is closed at the idle timeout, PINGs or not")
        func h2IdleWithPings() throws {
            guard let binary = gatewayBinaryOrSkip("h2 idle with pings") else { return }
            let f = try Fixture(binary: binary, name: "h2idle", extra: "limits: { idle_timeout_ms: 1000 }\n")
            defer { f.stop() }
            let client = TestProcess.fixture("ping_keeper.py")
            let out = try TestProcess.run("/usr/bin/env", ["python3", client, "\(f.canonicalPort)", "6"], timeout: 15)
            let said = out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let closedAfter = said.hasPrefix("closed after ") ? Double(said.dropFirst("closed after ".count)) : nil
            #expect(closedAfter != nil, "\(out.stdout)\(out.stderr)")
            // The sweeper looks about once a second; a PING every half second must not have pushed it back.
            #expect((closedAfter ?? 99) < 3.5, "\(out.stdout)")
        }

        @Test("response_timeout_ms bounds the wait for the answer and each pause in it, not a body that keeps coming")
        func responseTimeoutIsNotATransferCap() throws {
            guard let binary = gatewayBinaryOrSkip("response timeout") else { return }
            let f = try Fixture(binary: binary, name: "trickle", upstreamOptions: ", response_timeout_ms: 1000")
            defer { f.stop() }
            // 12 pieces 250 ms apart: 3 s in all, never 1 s without bytes.
            for flag in ["--http1.1", "--http2-prior-knowledge"] {
                let out = try TestProcess.run(
                    "/usr/bin/curl",
                    [
                        "-sS", "--max-time", "10", flag, "-w", "%{http_code} %{size_download}", "-o", "/dev/null",
                        "http://127.0.0.1:\(f.customPort)/trickle",
                    ], timeout: 15)
                #expect(out.status == 0 && out.stdout == "200 12", "\(flag): \(out.stdout) \(out.stderr)")
            }
            // An upstream that stops sending mid-answer is still cut after the timeout.
            let stalled = try TestProcess.run(
                "/usr/bin/curl",
                ["-sS", "--max-time", "10", "-o", "/dev/null", "http://127.0.0.1:\(f.customPort)/stall-mid"],
                timeout: 15)
            #expect(stalled.status != 0, "the cut-off answer must not look complete")
        }

        @Test("connections_active counts the connections open now, whatever became of the ones that closed early")
        func activeConnectionsGauge() throws {
            guard let binary = gatewayBinaryOrSkip("connections gauge") else { return }
            let f = try Fixture(binary: binary, name: "gauge")
            defer { f.stop() }
            func active() throws -> Int? {
                let text = try f.gateway.admin("/metrics").body
                let line = text.split(separator: "\n").first { $0.hasPrefix("myorg_gateway_connections_active ") }
                return line.flatMap { Double($0.split(separator: " ").last ?? "") }.map { Int($0) }
            }
            // Closed before a byte: never counted as open, so their closing must not count either.
            for _ in 0..<5 { try RawConnection(port: f.canonicalPort).close() }
            let held = try (0..<2).map { _ in try RawConnection(port: f.canonicalPort, timeout: 5) }
            for connection in held {
                try connection.send("GET /my-org/details HTTP/1.1\r\nHost: acme.test\r\n\r\n")
                #expect(connection.readResponse()?.hasPrefix("HTTP/1.1 401") == true)
            }
            let settled = eventually(timeout: 5) { (try? active()) == 2 }
            #expect(settled, "connections_active: \(String(describing: try? active())) with 2 open")
        }

        @Test("an upstream that stops taking a streamed upload fails the exchange after response_timeout_ms")
        func stalledUploadTimesOut() throws {
            guard let binary = gatewayBinaryOrSkip("stalled upload") else { return }
            let f = try Fixture(
                binary: binary, name: "stallup", extra: "limits: { max_body_bytes: 104857600 }\n",
                upstreamOptions: ", response_timeout_ms: 1000")
            defer { f.stop() }
            // More than the loopback socket buffers hold, so the gateway's own buffer backs up.
            try f.ws.write("upload.bin", String(repeating: "u", count: 48 << 20))
            let started = Date()
            let out = try TestProcess.run(
                "/usr/bin/curl",
                [
                    "-sS", "--max-time", "14", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary",
                    "@\(f.ws.path("upload.bin"))", "http://127.0.0.1:\(f.customPort)/never-reads",
                ], timeout: 20)
            let seconds = Date().timeIntervalSince(started)
            print("stalled upload: \(out.stdout) after \(seconds) s; \(out.stderr)")
            #expect(seconds < 9, "the upload was held \(seconds) s: \(out.stdout) \(out.stderr)")
            #expect(out.stdout != "200", "\(out.stdout) \(out.stderr)")
        }

        @Test("on a kept-alive connection the next request's head has the header timeout, not the idle timeout")
        func headerTimeoutOnKeptAliveConnection() throws {
            guard let binary = gatewayBinaryOrSkip("header timeout keep-alive") else { return }
            let f = try Fixture(
                binary: binary, name: "hdrka",
                extra: "limits: { header_read_timeout_ms: 1000, idle_timeout_ms: 20000 }\n")
            defer { f.stop() }
            let connection = try RawConnection(port: f.canonicalPort, timeout: 8)
            try connection.send("GET /my-org/details HTTP/1.1\r\nHost: acme.test\r\n\r\n")
            #expect(connection.readResponse()?.hasPrefix("HTTP/1.1 401") == true)
            let started = Date()
            try connection.send("GET /my-org/details HTTP/1.1\r\nHost: acme.test\r\n")
            let (text, closed) = connection.readToEnd()
            let seconds = Date().timeIntervalSince(started)
            #expect(text.hasPrefix("HTTP/1.1 408 "), "\(text)")
            // Framed by its length, like every other answer of the gateway.
            let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
            #expect(text.contains("\r\nContent-Length: \(body.utf8.count)\r\n"), "\(text)")
            #expect(closed)
            #expect(seconds < 4, "the unfinished head was given \(seconds) s")
        }

        @Test("recording.routes records only the named operation, with the scheme the client used")
        func recordingByRoute() throws {
            guard let binary = gatewayBinaryOrSkip("recording by route") else { return }
            let f = try Fixture(
                binary: binary, name: "recroute",
                extra: "recording: { enabled: true, path: rec.jsonl, routes: [\"GET domains\"] }\n")
            defer { f.stop() }
            let token = try f.ws.token(
                key: "key", domain: "acme.test", client: "web-app", scope: "read:my_org:details read:my_org:domains")
            #expect(try f.get("/my-org/details", token: token) == 200)
            #expect(try f.get("/my-org/domains", token: token) == 200)
            #expect(f.gateway.stop() == 0)
            let lines = ((try? String(contentsOfFile: f.ws.path("rec.jsonl"), encoding: .utf8)) ?? "")
                .split(separator: "\n")
            #expect(lines.count == 1, "only GET domains is recorded: \(lines)")
            #expect(lines.first?.contains("/my-org/domains") == true)
            // A plain listener: the recording (and its HAR) must say http, not https.
            #expect(lines.first?.contains("\"scheme\":\"http\"") == true, "\(lines)")
        }

        @Test("every admin answer, /config and /metrics included, carries Cache-Control: no-store")
        func adminAnswersAreNotCached() throws {
            guard let binary = gatewayBinaryOrSkip("admin no-store") else { return }
            let f = try Fixture(binary: binary, name: "nostore")
            defer { f.stop() }
            for path in ["/healthz", "/readyz", "/metrics", "/config"] {
                let out = try TestProcess.run(
                    "/usr/bin/curl",
                    [
                        "-sS", "--max-time", "10", "-o", "/dev/null", "-D", "-",
                        "http://127.0.0.1:\(f.gateway.adminPort)\(path)",
                    ],
                    timeout: 15)
                let headers = out.stdout.lowercased()
                #expect(headers.hasPrefix("http/1.1 200 "), "\(path): \(out.stdout)")
                #expect(headers.contains("\r\ncache-control: no-store\r\n"), "\(path): \(out.stdout)")
                // RFC 9110 §9.1: HEAD wherever GET is, with the same head and no body.
                let head = try TestProcess.run(
                    "/usr/bin/curl",
                    ["-sS", "--max-time", "10", "-I", "http://127.0.0.1:\(f.gateway.adminPort)\(path)"],
                    timeout: 15)
                #expect(head.stdout.lowercased().hasPrefix("http/1.1 200 "), "HEAD \(path): \(head.stdout)")
            }
            let put = try f.gateway.admin("/metrics", method: "PUT")
            #expect(put.status == 405, "\(put)")
        }

        @Test("/config holds no secret: not the cname key from the environment, not a token")
        func configIsRedacted() throws {
            guard let binary = gatewayBinaryOrSkip("config redaction") else { return }
            let f = try Fixture(binary: binary, name: "config")
            defer { f.stop() }
            let token = try f.ws.token(
                key: "key", domain: "acme.test", client: "web-app", scope: "read:my_org:details")
            #expect(try f.get("/my-org/details", token: token) == 200)
            #expect(try f.get("/anything", port: f.customPort) == 200)
            let edge = try #require(f.upstream.requests().last)
            #expect(edge.contains("cname-api-key: \(f.secret)\r\n"), "the key is loaded and sent upstream")

            let config = try f.gateway.admin("/config")
            #expect(config.status == 200)
            let json = try JSONSerialization.jsonObject(with: Data(config.body.utf8)) as? [String: Any]
            let upstreams = json?["upstream"] as? [String: Any]
            let custom = upstreams?["login.acme.test"] as? [String: Any]
            #expect(custom?["cname_api_key"] != nil, "the reference stays visible: \(config.body)")
            #expect(config.body.contains("INTEG_CNAME_KEY"), "it names the variable, not the value")
            let signature = String(token.split(separator: ".")[2])
            let privateKey = try String(contentsOfFile: f.ws.path("key.pem"), encoding: .utf8)
            let keyBody = privateKey.split(separator: "\n").dropFirst().first.map(String.init) ?? "unreadable"
            for endpoint in ["/config", "/metrics", "/readyz"] {
                let body = try f.gateway.admin(endpoint).body
                #expect(!body.contains(f.secret), "\(endpoint) shows the cname key")
                #expect(!body.contains(signature), "\(endpoint) shows token material")
                #expect(!body.contains(keyBody), "\(endpoint) shows signing key material")
            }
            // SIGINT drains like SIGTERM and flushes the event log; neither it nor the process log holds them.
            #expect(f.gateway.stop(signal: SIGINT) == 0, "\(f.gateway.process.log)")
            #expect(!f.gateway.process.log.contains(f.secret))
            #expect(!f.gateway.process.log.contains(signature))
            let events = (try? String(contentsOfFile: f.ws.path("events.jsonl"), encoding: .utf8)) ?? ""
            #expect(events.contains("my_organization_api_org_details_succeeded"), "the event log was written")
            // The configured client name rides along (endpoints.md: logs carry `client_name`).
            #expect(events.contains("\"client_id\":\"web-app\",\"client_name\":\"Client web-app\""), "\(events)")
            #expect(!events.contains(f.secret))
            #expect(!events.contains(signature))
        }
    }
}
