import Foundation
import TestSupport
import Testing

extension GatewayIntegration {
    /// `SIGTERM` drains: listeners close at once, requests in flight (the upstream's 3 s `/slow`, reached through
    /// a custom domain in edge mode) complete, idle connections are let go, and the process exits 0.
    @Suite("graceful shutdown")
    struct GracefulShutdownTests {
        /// A gateway with a canonical and a custom-domain (edge mode) listener in front of a plain upstream.
        struct Fixture {
            let ws: Workspace
            let upstream: UpstreamServer
            let gateway: GatewayServer
            let canonicalPort: UInt16
            let customPort: UInt16

            init(binary: String) throws {
                ws = Workspace(binary: binary, name: "shutdown")
                try ws.write("jwks.json", try ws.signingKey("key"))
                upstream = try UpstreamServer(workspace: ws)
                let adminPort = TestProcess.freePort()
                (canonicalPort, customPort) = (TestProcess.freePort(), TestProcess.freePort())
                let origin = "url: \"http://127.0.0.1:\(upstream.port)\""
                let config = GatewayConfigText(
                    jwks: "{ file: jwks.json }",
                    listeners: [
                        .init(port: canonicalPort, domain: "acme.test"),
                        .init(port: customPort, domain: "login.acme.test"),
                    ],
                    upstreams: [
                        ("acme.test", "{ \(origin) }"),
                        (
                            "login.acme.test",
                            "{ \(origin), cname_api_key: { env: INTEG_CNAME_KEY }, client_ip_header: x-forwarded-for }"
                        ),
                    ],
                    clients: [.init(id: "web-app", scopes: ["read:my_org:details"])], adminPort: adminPort)
                try ws.write("gateway.yaml", config.yaml)
                gateway = try GatewayServer(
                    binary: binary, config: ws.path("gateway.yaml"), adminPort: adminPort,
                    ports: [canonicalPort, customPort], environment: ["INTEG_CNAME_KEY": "edge-key-for-shutdown"])
                guard try gateway.waitReady() else { throw HarnessError("not ready: \(gateway.process.log)") }
            }

            func stop() {
                if gateway.process.process.isRunning { _ = gateway.stop(signal: SIGKILL) }
                upstream.stop()
                ws.remove()
            }

            /// A keep-alive connection that has been served once and is now idle.
            func idleConnection() throws -> RawConnection {
                let idle = try RawConnection(port: canonicalPort, timeout: 5)
                try idle.send("GET /my-org/details HTTP/1.1\r\nHost: acme.test\r\n\r\n")
                guard idle.readResponse()?.hasPrefix("HTTP/1.1 401") == true else {
                    throw HarnessError("the keep-alive connection was not served")
                }
                return idle
            }

            /// Waits for the exit after SIGTERM; returns the exit code and the milliseconds since `termAt`.
            func waitExit(since termAt: Date) -> (code: Int32, ms: Int) {
                let exited = gateway.process.waitForExit(timeout: 15)
                let ms = elapsedMs(since: termAt)
                guard exited else { return (-1, ms) }
                return (exitCode(gateway.process.exitStatus ?? -1, of: gateway.process), ms)
            }
        }

        @Test(
            "slow requests in flight (HTTP/1.1, HTTP/2) complete with 200 after SIGTERM; new connections refused; exit 0"
        )
        func drainOnSIGTERM() throws {
            guard let binary = gatewayBinaryOrSkip("graceful shutdown") else { return }
            let start = Date()
            let f = try Fixture(binary: binary)
            defer { f.stop() }
            let slow = try BackgroundProcess(
                "/usr/bin/curl",
                ["-sS", "--max-time", "15", "-w", "\n%{http_code}", "http://127.0.0.1:\(f.customPort)/slow"],
                logName: "slow-curl")
            defer { slow.stop(signal: SIGKILL, timeout: 2) }
            let slowH2 = try BackgroundProcess(
                "/usr/bin/curl",
                [
                    "-sS", "--http2-prior-knowledge", "--max-time", "15", "-w", "\n%{http_code} %{http_version}",
                    "http://127.0.0.1:\(f.customPort)/slow?h2",
                ], logName: "slow-h2")
            defer { slowH2.stop(signal: SIGKILL, timeout: 2) }
            let idle = try f.idleConnection()
            let arrived = eventually(timeout: 5) {
                let paths = f.upstream.requests()
                return paths.contains { $0.hasPrefix("GET /slow HTTP/1.1\r\n") }
                    && paths.contains { $0.hasPrefix("GET /slow?h2 HTTP/1.1\r\n") }
            }
            try #require(arrived, "the slow requests never reached the upstream: \(slow.log) \(slowH2.log)")
            let edge = try #require(f.upstream.requests().first { $0.hasPrefix("GET /slow ") })
            #expect(edge.contains("\r\ncname-api-key: edge-key-for-shutdown\r\n"), "edge mode sends the key")
            #expect(!RawConnection.isRefused(port: f.customPort), "the listener must accept before SIGTERM")

            let termAt = Date()
            kill(f.gateway.pid, SIGTERM)
            let refused = eventually(timeout: 1, intervalMs: 20) {
                RawConnection.isRefused(port: f.customPort) && RawConnection.isRefused(port: f.canonicalPort)
            }
            #expect(refused, "new connections were still accepted after SIGTERM")
            #expect(f.gateway.process.process.isRunning, "the gateway must still be draining the slow requests")
            // The admin listener answers through the drain: not ready, still alive.
            let ready = try f.gateway.admin("/readyz")
            #expect(ready.status == 503 && ready.body.contains("shutting down"), "/readyz while draining: \(ready)")
            #expect(try f.gateway.admin("/healthz").status == 200, "/healthz while draining")
            print("graceful shutdown: listeners closed \(elapsedMs(since: termAt)) ms after SIGTERM")
            let (_, idleClosed) = idle.readToEnd()
            #expect(idleClosed, "an idle keep-alive connection must be closed when draining starts")
            #expect(elapsedMs(since: termAt) < 2500, "the idle connection was closed only after the drain")
            // A well-behaved client closes its end on EOF (the next test covers one that does not).
            idle.close()

            #expect(slow.waitForExit(timeout: 10), "the in-flight request did not finish")
            #expect(slow.log.hasSuffix("\n200"), "the in-flight request: \(slow.log)")
            #expect(slow.log.hasPrefix("{}"), "\(slow.log)")
            #expect(slowH2.waitForExit(timeout: 10), "the in-flight HTTP/2 request did not finish")
            #expect(slowH2.log.hasSuffix("\n200 2"), "the in-flight HTTP/2 request: \(slowH2.log)")
            let (code, drained) = f.waitExit(since: termAt)
            #expect(code == 0, "exit status \(code): \(f.gateway.process.log)")
            #expect(drained >= 1500, "the gateway exited after \(drained) ms, before the slow answers could come")
            #expect(drained < 6000, "the drain took \(drained) ms after the last answer left at ~3 s")
            print("graceful shutdown: exited \(drained) ms after SIGTERM; test took \(elapsedMs(since: start)) ms")
        }

        @Test(
            "draining HTTP/1.1: an answer in flight says Connection: close; a request half read at SIGTERM is answered")
        func http1DrainFinishesRequestsInProgress() throws {
            guard let binary = gatewayBinaryOrSkip("HTTP/1.1 drain") else { return }
            let f = try Fixture(binary: binary)
            defer { f.stop() }
            let inFlight = try RawConnection(port: f.customPort, timeout: 10)
            try inFlight.send("GET /slow?drain HTTP/1.1\r\nHost: login.acme.test\r\n\r\n")
            let half = try RawConnection(port: f.canonicalPort, timeout: 10)
            try half.send("GET /my-org/details HTTP/1.1\r\nHost: acme.te")
            let arrived = eventually(timeout: 5) {
                f.upstream.requests().contains { $0.hasPrefix("GET /slow?drain HTTP/1.1\r\n") }
            }
            try #require(arrived, "the slow request never reached the upstream")
            let termAt = Date()
            kill(f.gateway.pid, SIGTERM)
            Thread.sleep(forTimeInterval: 0.5)
            try half.send("st\r\n\r\n")
            let (halfAnswer, halfClosed) = half.readToEnd()
            #expect(halfAnswer.hasPrefix("HTTP/1.1 401 "), "the request being read when the drain began: \(halfAnswer)")
            #expect(halfAnswer.contains("\r\nConnection: close\r\n"), "\(halfAnswer)")
            #expect(halfClosed)
            let (answer, closed) = inFlight.readToEnd()
            #expect(answer.hasPrefix("HTTP/1.1 200 "), "\(answer)")
            // RFC 9112 §9.6: the last answer on a connection that closes says so.
            #expect(answer.contains("\r\nConnection: close\r\n"), "\(answer)")
            #expect(closed)
            let (code, _) = f.waitExit(since: termAt)
            #expect(code == 0, "exit status \(code): \(f.gateway.process.log)")
        }

        @Test(
            "HTTP/2 shuts down in two steps: GOAWAY(2^31-1), a request sent across it is served, GOAWAY(last), close")
        func http2TwoStepGoAway() throws {
            guard let binary = gatewayBinaryOrSkip("HTTP/2 two-step GOAWAY") else { return }
            let f = try Fixture(binary: binary)
            defer { f.stop() }
            let script = TestProcess.fixture("h2_shutdown_client.py")
            let client = try BackgroundProcess(
                "/usr/bin/env", ["python3", script, "\(f.customPort)", "/slow?two-step", "12"], logName: "h2-shutdown")
            defer { client.stop(signal: SIGKILL, timeout: 2) }
            let arrived = eventually(timeout: 5) {
                f.upstream.requests().contains { $0.hasPrefix("GET /slow?two-step HTTP/1.1\r\n") }
            }
            try #require(arrived, "the slow request never reached the upstream: \(client.log)")
            let termAt = Date()
            kill(f.gateway.pid, SIGTERM)
            #expect(client.waitForExit(timeout: 12), "the client did not see the connection close: \(client.log)")
            let lines = client.log.split(separator: "\n").map(String.init)
            let goaways = lines.filter { $0.hasPrefix("goaway ") }
            // RFC 9113 §6.8: first the notice (no stream refused), then the last stream really taken: the one
            // the client sent after reading the notice.
            #expect(goaways == ["goaway 2147483647 0", "goaway 3 0"], "\(client.log)")
            #expect(lines.contains("headers 3 0x88") && lines.contains("end 3"), "stream 3 answered: \(client.log)")
            #expect(lines.contains("headers 1 0x88") && lines.contains("end 1"), "stream 1 answered: \(client.log)")
            #expect(lines.last == "closed", "\(client.log)")
            #expect(f.upstream.requests().contains { $0.hasPrefix("GET /after-notice HTTP/1.1\r\n") })
            let order = lines.firstIndex(of: "goaway 3 0").map { lines[..<$0].contains("end 3") }
            #expect(order == true, "the request that crossed the notice is answered before the final GOAWAY")
            let (code, _) = f.waitExit(since: termAt)
            #expect(code == 0, "exit status \(code): \(f.gateway.process.log)")
        }

        @Test(
            "an idle client that never closes its end does not hold the drain until shutdown_grace_ms")
        func idleClientDoesNotHoldDrain() throws {
            guard let binary = gatewayBinaryOrSkip("drain with an idle client") else { return }
            let f = try Fixture(binary: binary)
            defer { f.stop() }
            let idle = try f.idleConnection()
            let termAt = Date()
            kill(f.gateway.pid, SIGTERM)
            let (_, idleClosed) = idle.readToEnd()
            #expect(idleClosed, "an idle keep-alive connection must be closed when draining starts")
            // The client keeps its socket: the gateway's linger bound (2 s) ends the drain, not the 10 s grace.
            let (code, drained) = f.waitExit(since: termAt)
            #expect(code == 0)
            #expect(drained < 4000, "the drain waited \(drained) ms: a lingering idle connection held it open")
            withExtendedLifetime(idle) {}
        }
    }
}
