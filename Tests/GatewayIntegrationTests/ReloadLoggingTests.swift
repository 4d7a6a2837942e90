import Foundation
import TestSupport
import Testing

extension GatewayIntegration {
    /// A reload that changes a spooled sink while its receiver is down: the old and the new pipeline must not both
    /// write the spool (they did for 10 s, and the receiver then got events twice and torn lines).
    @Suite("reload of the log sinks")
    struct ReloadLoggingTests {
        typealias Fixture = AdminEndpointTests.Fixture

        static func logging(hookPort: UInt16, batchSize: Int) -> String {
            """
              sinks:
                - webhook: { url: "http://127.0.0.1:\(hookPort)/hook", format: json_lines, batch_size: \(batchSize), interval_ms: 20 }
              spool: { directory: spool }
              access_log: false
              level: warning

            """
        }

        /// The events the receiver got, one per line of each POST body, counted by `log_id`; `torn` counts lines
        /// that are not a JSON object with one.
        static func received(_ hook: UpstreamServer) -> (byID: [String: Int], torn: Int) {
            var byID: [String: Int] = [:]
            var torn = 0
            for request in hook.requests() where request.hasPrefix("POST /hook ") {
                guard let split = request.range(of: "\r\n\r\n") else { continue }
                for line in request[split.upperBound...].split(separator: "\n") where !line.isEmpty {
                    guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                        let id = object["log_id"] as? String
                    else {
                        torn += 1
                        continue
                    }
                    byID[id, default: 0] += 1
                }
            }
            return (byID, torn)
        }

        static let requests = 4000

        @Test("a reload that changes only tenant.name and environment_name: the next events carry the new ones")
        func reloadTenantNames() throws {
            guard let binary = gatewayBinaryOrSkip("reload of the tenant's names") else { return }
            let f = try Fixture(binary: binary, name: "reloadnames")
            defer { f.stop() }
            // No token: a 401 from the gateway, and an event (org details failed).
            _ = try f.get("/my-org/details")
            let config = try String(contentsOfFile: f.ws.path("gateway.yaml"), encoding: .utf8)
            let renamed = config.replacingOccurrences(
                of: "  name: acme\n", with: "  name: acme-renamed\n  environment_name: staging\n")
            try #require(renamed != config)
            try f.ws.write("gateway.yaml", renamed)
            let reload = try f.gateway.admin("/reload", method: "POST")
            #expect(reload.status == 200, "\(reload.body)")
            _ = try f.get("/my-org/details")
            // Events are written off the request path: wait for the second.
            var lines: [[String: Any]] = []
            let deadline = Date().addingTimeInterval(10)
            repeat {
                Thread.sleep(forTimeInterval: 0.1)
                let text = (try? String(contentsOfFile: f.ws.path("events.jsonl"), encoding: .utf8)) ?? ""
                lines = text.split(separator: "\n").compactMap {
                    try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                }
            } while lines.count < 2 && Date() < deadline
            try #require(lines.count == 2, "\(lines)")
            #expect(lines[0]["tenant_name"] as? String == "acme")
            #expect(lines[0]["environment_name"] == nil)
            #expect(lines[1]["tenant_name"] as? String == "acme-renamed", "\(lines[1])")
            #expect(lines[1]["environment_name"] as? String == "staging", "\(lines[1])")
        }

        @Test("a reload under load changes a spooled webhook sink while it is down: every event arrives once, whole")
        func reloadWhileSpooling() throws {
            guard let binary = gatewayBinaryOrSkip("reload while a sink spools") else { return }
            guard let h2load = TestProcess.which("h2load") else {
                print("note: reload while spooling skipped: h2load is not installed (apt-get install nghttp2-client)")
                return
            }
            let hookPort = TestProcess.freePort()
            let f = try Fixture(
                binary: binary, name: "reloadspool", logging: Self.logging(hookPort: hookPort, batchSize: 50))
            defer { f.stop() }
            // No token: every request gets a 401 from the gateway, and an event. The load spans the reload, so
            // that the old pipeline still writes the spool after the new one has been made.
            let load = try BackgroundProcess(
                h2load,
                [
                    "-n", String(Self.requests), "-c", "4", "-m", "4", "--rps", "500",
                    "http://127.0.0.1:\(f.canonicalPort)/my-org/details",
                ], logName: "h2load")
            defer { load.stop(signal: SIGKILL, timeout: 2) }
            Thread.sleep(forTimeInterval: 0.7)
            try f.ws.write(
                "gateway.yaml",
                try String(contentsOfFile: f.ws.path("gateway.yaml"), encoding: .utf8)
                    .replacingOccurrences(of: "batch_size: 50", with: "batch_size: 40"))
            let reload = try f.gateway.admin("/reload", method: "POST")
            #expect(reload.status == 200, "\(reload.body)")
            #expect(load.process.isRunning, "the load finished before the reload: make it run longer")
            let loadDeadline = Date().addingTimeInterval(30)
            while load.process.isRunning && Date() < loadDeadline { Thread.sleep(forTimeInterval: 0.1) }
            let summary = load.log
            #expect(summary.contains("\(Self.requests) done"), "\(summary)")

            let hook = try UpstreamServer(workspace: f.ws, port: hookPort)
            defer { hook.stop() }
            let deadline = Date().addingTimeInterval(45)
            while Self.received(hook).byID.count < Self.requests && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.2)
            }
            // Whatever would arrive late (a second copy) arrives within this, or at the drain on SIGTERM.
            Thread.sleep(forTimeInterval: 1)
            _ = f.gateway.stop()
            let (byID, torn) = Self.received(hook)
            #expect(torn == 0, "torn lines")
            #expect(byID.count == Self.requests, "\(byID.count) distinct events for \(Self.requests) requests")
            let twice = byID.filter { $0.value > 1 }.count
            #expect(twice == 0, "\(twice) events delivered more than once")
        }
    }
}
