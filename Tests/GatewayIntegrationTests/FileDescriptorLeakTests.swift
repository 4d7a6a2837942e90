import Foundation
import Synchronization
import TestSupport
import Testing

extension GatewayIntegration {
    /// Two thousand requests over a few hundred connections (HTTP/2 over h2c and TLS with h2load, HTTP/1.1 with
    /// curl), then idle: the gateway's open file descriptors return to the count it had before the load.
    @Suite("file descriptors")
    struct FileDescriptorLeakTests {
        @Test("fd count returns to the baseline after 2,000 requests over many connections")
        func noLeak() throws {
            guard let binary = gatewayBinaryOrSkip("fd leak") else { return }
            guard let h2load = TestProcess.which("h2load") else {
                print("note: fd leak skipped: h2load is not installed (apt-get install nghttp2-client)")
                return
            }
            let start = Date()
            let ws = Workspace(binary: binary, name: "fdleak")
            defer { ws.remove() }
            let canonical = "acme.test"
            try ws.write("jwks.json", try ws.signingKey("key"))
            try ws.write("tiers.yaml", generousTiersYAML)
            let cert = try ws.certificate("gateway", dnsNames: [canonical])
            // An HTTPS upstream, as the tenant is: the pool's TLS connections are counted too.
            let upstreamCert = try ws.certificate("upstream", dnsNames: ["localhost"])
            let upstream = try UpstreamServer(workspace: ws, tls: (upstreamCert.cert, upstreamCert.key))
            defer { upstream.stop() }
            let (plainPort, tlsPort, adminPort) =
                (TestProcess.freePort(), TestProcess.freePort(), TestProcess.freePort())
            let config = GatewayConfigText(
                jwks: "{ file: jwks.json }",
                listeners: [
                    .init(port: plainPort, domain: canonical),
                    .init(port: tlsPort, domain: canonical, tls: (cert.cert, cert.key)),
                ],
                // A short upstream idle timeout: the pool's keep-alive connections close soon after the load.
                upstreams: [
                    (
                        canonical,
                        "{ url: \"https://127.0.0.1:\(upstream.port)\", ca_file: \(upstreamCert.ca), idle_timeout_ms: 500 }"
                    )
                ],
                clients: [.init(id: "web-app", scopes: ["read:my_org:details"])], adminPort: adminPort,
                tiersFile: "tiers.yaml")
            try ws.write("gateway.yaml", config.yaml)
            let gateway = try GatewayServer(
                binary: binary, config: ws.path("gateway.yaml"), adminPort: adminPort, ports: [plainPort, tlsPort])
            defer { _ = gateway.stop() }
            #expect(try gateway.waitReady())
            let token = try ws.token(key: "key", domain: canonical, client: "web-app", scope: "read:my_org:details")
            let auth = "Authorization: Bearer \(token)"

            // One request first: the event log's file is opened on the first event, which is not a leak.
            let atStartup = gateway.process.openFileDescriptors()
            #expect(try curlStatus(["-H", auth, "http://127.0.0.1:\(plainPort)/my-org/details"]).status == 200)
            usleep(1_200_000)
            let baseline = gateway.process.openFileDescriptors()
            #expect(baseline > 0)

            let peak = Mutex(0)
            let sampling = Atomic<Bool>(true)
            let pid = gateway.pid
            let sampler = Thread {
                while sampling.load(ordering: .relaxed) {
                    let n = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
                    peak.withLock { $0 = max($0, n) }
                    usleep(10_000)
                }
            }
            sampler.start()

            let loadStart = Date()
            let h2c = try TestProcess.run(
                h2load,
                ["-n", "1000", "-c", "50", "-m", "4", "-H", auth, "http://127.0.0.1:\(plainPort)/my-org/details"],
                timeout: 60)
            let h2 = try TestProcess.run(
                h2load,
                ["-n", "500", "-c", "50", "-m", "2", "-H", auth, "https://127.0.0.1:\(tlsPort)/my-org/details"],
                timeout: 60)
            let h1 = try TestProcess.run(
                "/usr/bin/curl",
                [
                    "-sS", "--http1.1", "--parallel", "--parallel-immediate", "--parallel-max", "50",
                    "--max-time", "30", "-H", auth, "-w", "\n%{http_code}\n",
                    "http://127.0.0.1:\(plainPort)/my-org/details?n=[1-500]",
                ], timeout: 60)
            sampling.store(false, ordering: .relaxed)
            let loadMs = elapsedMs(since: loadStart)

            for (name, out) in [("h2c", h2c), ("h2 over TLS", h2)] {
                let summary = H2LoadSummary(out.stdout)
                #expect(summary != nil, "\(name): \(out.stdout) \(out.stderr)")
                if let summary {
                    #expect(summary.failed == 0 && summary.errored == 0, "\(name): \(summary)")
                    #expect(summary.status2xx == summary.total, "\(name): \(summary)")
                }
            }
            let h1OK = h1.stdout.split(separator: "\n").filter { $0 == "200" }.count
            #expect(h1.status == 0, "\(h1.stderr)")
            #expect(h1OK == 500, "curl HTTP/1.1: \(h1OK) of 500 answered 200")

            var after = 0
            let settled = eventually(timeout: 8, intervalMs: 100) {
                after = gateway.process.openFileDescriptors()
                return after <= baseline
            }
            let peakCount = peak.withLock { $0 }
            print(
                "fd leak: startup \(atStartup), baseline \(baseline), peak \(peakCount) during \(loadMs) ms of load, "
                    + "after idle \(after)")
            #expect(peakCount >= baseline + 20, "the load should have opened many connections at once")
            // Fewer than the baseline is no leak (a connection still closing when the baseline was taken).
            #expect(settled, "open fds: \(after) after idle, baseline \(baseline)")
            #expect(gateway.stop() == 0)
            print("fd leak test took \(elapsedMs(since: start)) ms")
        }
    }
}
