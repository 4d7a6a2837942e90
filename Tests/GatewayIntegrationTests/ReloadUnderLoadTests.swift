import Foundation
import TestSupport
import Testing

extension GatewayIntegration {
    /// Reload while h2load keeps the gateway busy: `SIGHUP` twenty times, alternating two valid configurations that
    /// differ in one client's grant, so a probe request flips between 200 and 403 after each reload. Then an
    /// invalid file through `POST /reload`: 422 with its errors, and the last good policy keeps serving.
    @Suite("reload under load")
    struct ReloadUnderLoadTests {
        static let reloads = 20
        /// At 4 × 100 requests/s (6 s) this outlasts the reloads (1 to 3 s here, even with other suites running).
        static let requests = 2400

        @Test("20 SIGHUPs under load: no failed request, each policy visible; an invalid reload is refused")
        func reloadUnderLoad() throws {
            guard let binary = gatewayBinaryOrSkip("reload under load") else { return }
            guard let h2load = TestProcess.which("h2load") else {
                print("note: reload under load skipped: h2load is not installed (apt-get install nghttp2-client)")
                return
            }
            let start = Date()
            let ws = Workspace(binary: binary, name: "reload")
            defer { ws.remove() }
            let canonical = "acme.test"
            try ws.write("jwks.json", try ws.signingKey("key"))
            try ws.write("tiers.yaml", generousTiersYAML)
            let upstream = try UpstreamServer(workspace: ws)
            defer { upstream.stop() }
            let (listenerPort, adminPort) = (TestProcess.freePort(), TestProcess.freePort())
            func config(probeGranted: Bool) -> String {
                GatewayConfigText(
                    jwks: "{ file: jwks.json }",
                    listeners: [.init(port: listenerPort, domain: canonical)],
                    upstreams: [(canonical, "{ url: \"http://127.0.0.1:\(upstream.port)\" }")],
                    clients: [
                        .init(id: "load-app", scopes: ["read:my_org:details"]),
                        .init(
                            id: "probe-app",
                            scopes: probeGranted
                                ? ["read:my_org:details", "read:my_org:configuration"] : ["read:my_org:details"]),
                    ],
                    adminPort: adminPort, tiersFile: "tiers.yaml"
                ).yaml
            }
            try ws.write("gateway.yaml", config(probeGranted: true))
            let gateway = try GatewayServer(
                binary: binary, config: ws.path("gateway.yaml"), adminPort: adminPort, ports: [listenerPort])
            defer { _ = gateway.stop() }
            #expect(try gateway.waitReady())

            let loadToken = try ws.token(
                key: "key", domain: canonical, client: "load-app", scope: "read:my_org:details")
            let probeToken = try ws.token(
                key: "key", domain: canonical, client: "probe-app", scope: "read:my_org:configuration")
            // A new connection per probe: connections in flight keep the snapshot they started with.
            func probe() throws -> Int {
                try curlStatus([
                    "-H", "Authorization: Bearer \(probeToken)",
                    "http://127.0.0.1:\(listenerPort)/my-org/config",
                ]).status
            }
            #expect(try probe() == 200)

            // 400 requests/s over 4 HTTP/2 connections (h2c), for longer than the reloads take.
            let load = try BackgroundProcess(
                h2load,
                [
                    "-n", String(Self.requests), "-c", "4", "-m", "2", "--rps", "100", "-H",
                    "Authorization: Bearer \(loadToken)",
                    "http://127.0.0.1:\(listenerPort)/my-org/details",
                ], logName: "h2load")
            defer { load.stop(signal: SIGKILL, timeout: 2) }
            usleep(300_000)

            var flipTimes: [Int] = []
            for i in 1...Self.reloads {
                let granted = i % 2 == 0
                try ws.write("gateway.yaml", config(probeGranted: granted))
                let sent = Date()
                kill(gateway.pid, SIGHUP)
                let expected = granted ? 200 : 403
                var seen = 0
                let flipped = try eventually(timeout: 5, intervalMs: 20) {
                    seen = try probe()
                    return seen == expected
                }
                #expect(flipped, "reload \(i): the probe answered \(seen), expected \(expected)")
                flipTimes.append(elapsedMs(since: sent))
            }
            let overlapped = load.process.isRunning
            print("reload under load: 20 reloads visible after \(flipTimes) ms; load still running: \(overlapped)")
            #expect(overlapped, "the load generator finished before the last reload: make it run longer")
            let generation = try metricValue(gateway, "myorg_gateway_config_generation")
            #expect(generation == Double(1 + Self.reloads), "generation \(String(describing: generation))")

            // An invalid file through the admin endpoint: refused with its errors, the old policy still serves.
            let good = try String(contentsOfFile: ws.path("gateway.yaml"), encoding: .utf8)
            try ws.write(
                "gateway.yaml", good.replacingOccurrences(of: "tier: private_performance", with: "tier: gold"))
            let refused = try gateway.admin("/reload", method: "POST")
            #expect(refused.status == 422, "\(refused.body)")
            #expect(refused.body.contains("\"reloaded\":false"), "\(refused.body)")
            #expect(refused.body.contains("gateway.yaml:"), "errors name the file and line: \(refused.body)")
            #expect(refused.body.contains("tenant.tier"), "\(refused.body)")
            #expect(try probe() == 200, "the last good policy (probe granted) must keep serving")
            #expect(try gateway.admin("/readyz").status == 200)
            #expect(try metricValue(gateway, "myorg_gateway_config_reload_failures_total") == 1)
            // The same file by SIGHUP: refused too, and the process keeps serving.
            kill(gateway.pid, SIGHUP)
            let refusedBySignal = try eventually(timeout: 3) {
                try metricValue(gateway, "myorg_gateway_config_reload_failures_total") == 2
            }
            #expect(refusedBySignal, "SIGHUP with an invalid file was not counted as a refused reload")
            #expect(gateway.process.process.isRunning)
            #expect(try probe() == 200)
            #expect(try metricValue(gateway, "myorg_gateway_config_generation") == Double(1 + Self.reloads))

            #expect(load.waitForExit(timeout: 30), "h2load did not finish")
            let summary = H2LoadSummary(load.log)
            print("reload under load: h2load \(summary.map { "\($0)" } ?? "printed no summary")")
            let result = try #require(summary, "\(load.log)")
            #expect(result.total == Self.requests)
            #expect(result.succeeded == Self.requests, "\(load.log)")
            #expect(result.failed == 0 && result.errored == 0 && result.timeout == 0, "\(load.log)")
            #expect(result.status2xx == Self.requests, "\(load.log)")
            #expect(gateway.stop() == 0)
            print("reload under load took \(elapsedMs(since: start)) ms")
        }
    }
}

/// The counts from h2load's summary lines.
struct H2LoadSummary: CustomStringConvertible {
    var total = 0, succeeded = 0, failed = 0, errored = 0, timeout = 0
    var status2xx = 0, status4xx = 0, status5xx = 0

    /// Parses "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout" and
    /// "status codes: N 2xx, N 3xx, N 4xx, N 5xx"; nil when either line is missing.
    init?(_ output: String) {
        func numbers(after prefix: String) -> [String: Int]? {
            guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
            var out: [String: Int] = [:]
            for part in line.dropFirst(prefix.count).split(separator: ",") {
                let words = part.split(separator: " ")
                if words.count == 2, let n = Int(words[0]) { out[String(words[1])] = n }
            }
            return out
        }
        guard let requests = numbers(after: "requests: "), let codes = numbers(after: "status codes: ") else {
            return nil
        }
        total = requests["total"] ?? -1
        succeeded = requests["succeeded"] ?? -1
        failed = requests["failed"] ?? -1
        errored = requests["errored"] ?? -1
        timeout = requests["timeout"] ?? -1
        status2xx = codes["2xx"] ?? -1
        status4xx = codes["4xx"] ?? -1
        status5xx = codes["5xx"] ?? -1
    }

    var description: String {
        "\(total) total, \(succeeded) succeeded, \(failed) failed, \(errored) errored, \(timeout) timeout; "
            + "\(status2xx) 2xx, \(status4xx) 4xx, \(status5xx) 5xx"
    }
}

/// One unlabelled sample from `/metrics`, read with a plain line match (the metrics suite uses a real parser).
func metricValue(_ gateway: GatewayServer, _ name: String) throws -> Double? {
    let metrics = try gateway.admin("/metrics")
    for line in metrics.body.split(separator: "\n") where line.hasPrefix(name + " ") {
        return Double(line.split(separator: " ")[1])
    }
    return nil
}
