import Foundation
import TestSupport
import Testing

extension GatewayIntegration {
    /// `SIGTERM` drains: listeners close at once, a request in flight (the upstream's 3 s `/slow`, reached through
    /// a custom domain in edge mode) completes, and the process exits 0.
    @Suite("graceful shutdown")
    struct GracefulShutdownTests {
        @Test("a slow request in flight completes with 200 after SIGTERM, new connections are refused, exit 0")
        func drainOnSIGTERM() throws {
            guard let binary = gatewayBinaryOrSkip("graceful shutdown") else { return }
            let start = Date()
            let ws = Workspace(binary: binary, name: "shutdown")
            defer { ws.remove() }
            let (canonical, custom) = ("acme.test", "login.acme.test")
            try ws.write("jwks.json", try ws.signingKey("key"))
            let upstream = try UpstreamServer(workspace: ws)
            defer { upstream.stop() }
            let (canonicalPort, customPort, adminPort) =
                (TestProcess.freePort(), TestProcess.freePort(), TestProcess.freePort())
            let origin = "url: \"http://127.0.0.1:\(upstream.port)\""
            let config = GatewayConfigText(
                jwks: "{ file: jwks.json }",
                listeners: [.init(port: canonicalPort, domain: canonical), .init(port: customPort, domain: custom)],
                upstreams: [
                    (canonical, "{ \(origin) }"),
                    (
                        custom,
                        "{ \(origin), cname_api_key: { env: INTEG_CNAME_KEY }, client_ip_header: x-forwarded-for }"
                    ),
                ],
                clients: [.init(id: "web-app", scopes: ["read:my_org:details"])], adminPort: adminPort)
            try ws.write("gateway.yaml", config.yaml)
            let gateway = try GatewayServer(
                binary: binary, config: ws.path("gateway.yaml"), adminPort: adminPort,
                ports: [canonicalPort, customPort], environment: ["INTEG_CNAME_KEY": "edge-key-for-shutdown"])
            defer { _ = gateway.stop(signal: SIGKILL) }
            #expect(try gateway.waitReady())

            let slow = try BackgroundProcess(
                "/usr/bin/curl",
                ["-sS", "--max-time", "15", "-w", "\n%{http_code}", "http://127.0.0.1:\(customPort)/slow"],
                logName: "slow-curl")
            defer { slow.stop(signal: SIGKILL, timeout: 2) }
            // The same over HTTP/2 (h2c, prior knowledge), and an idle keep-alive connection that must be let go.
            let slowH2 = try BackgroundProcess(
                "/usr/bin/curl",
                [
                    "-sS", "--http2-prior-knowledge", "--max-time", "15", "-w", "\n%{http_code} %{http_version}",
                    "http://127.0.0.1:\(customPort)/slow?h2",
                ], logName: "slow-h2")
            defer { slowH2.stop(signal: SIGKILL, timeout: 2) }
            let idle = try RawConnection(port: canonicalPort, timeout: 5)
            try idle.send("GET /my-org/details HTTP/1.1\r\nHost: acme.test\r\n\r\n")
            #expect(idle.readResponse()?.hasPrefix("HTTP/1.1 401") == true)
            let arrived = eventually(timeout: 5) {
                let paths = upstream.requests()
                return paths.contains { $0.hasPrefix("GET /slow HTTP/1.1\r\n") }
                    && paths.contains { $0.hasPrefix("GET /slow?h2 HTTP/1.1\r\n") }
            }
            try #require(arrived, "the slow request never reached the upstream: \(slow.log)")
            let edge = try #require(upstream.requests().first { $0.hasPrefix("GET /slow ") })
            #expect(edge.contains("\r\ncname-api-key: edge-key-for-shutdown\r\n"), "edge mode sends the key")

            #expect(!RawConnection.isRefused(port: customPort), "the listener must accept before SIGTERM")
            let termAt = Date()
            kill(gateway.pid, SIGTERM)
            let refused = eventually(timeout: 1, intervalMs: 20) {
                RawConnection.isRefused(port: customPort) && RawConnection.isRefused(port: canonicalPort)
            }
            #expect(refused, "new connections were still accepted after SIGTERM")
            #expect(gateway.process.process.isRunning, "the gateway must still be draining the slow request")
            print("graceful shutdown: listeners closed \(elapsedMs(since: termAt)) ms after SIGTERM")
            let (_, idleClosed) = idle.readToEnd()
            #expect(idleClosed, "an idle keep-alive connection must be closed when draining starts")
            #expect(elapsedMs(since: termAt) < 2500, "the idle connection was closed only after the drain")

            #expect(slow.waitForExit(timeout: 10), "the in-flight request did not finish")
            let answer = slow.log
            #expect(answer.hasSuffix("\n200"), "the in-flight request: \(answer)")
            #expect(answer.hasPrefix("{}"), "\(answer)")
            #expect(slowH2.waitForExit(timeout: 10), "the in-flight HTTP/2 request did not finish")
            #expect(slowH2.log.hasSuffix("\n200 2"), "the in-flight HTTP/2 request: \(slowH2.log)")
            #expect(gateway.process.waitForExit(timeout: 10), "the gateway did not exit after draining")
            let drained = elapsedMs(since: termAt)
            let code = exitCode(gateway.process.exitStatus ?? -1, of: gateway.process)
            #expect(code == 0, "exit status \(code): \(gateway.process.log)")
            #expect(drained >= 1500, "the gateway exited after \(drained) ms, before the slow answer could come")
            // The idle client above never closes its end; the gateway's linger bound (2 s) must still let the drain
            // end once the slow answers are out (~3 s), not at shutdown_grace_ms (10 s).
            #expect(drained < 6000, "the drain waited \(drained) ms: a lingering idle connection held it open")
            withExtendedLifetime(idle) {}
            print("graceful shutdown: exited \(drained) ms after SIGTERM; test took \(elapsedMs(since: start)) ms")
        }
    }
}
