import Foundation
import TestSupport
import Testing

extension GatewayIntegration {
    /// `faults:` (testing mode): an injected status is answered by the gateway, after `delay_ms`.
    @Suite("fault injection")
    struct FaultInjectionTests {
        @Test(
            "an injected status waits delay_ms before it is answered, and never reaches the upstream")
        func delayedInjectedStatus() throws {
            guard let binary = gatewayBinaryOrSkip("fault injection") else { return }
            let ws = Workspace(binary: binary, name: "faults")
            defer { ws.remove() }
            try ws.write("jwks.json", try ws.signingKey("key"))
            let upstream = try UpstreamServer(workspace: ws)
            defer { upstream.stop() }
            let (port, adminPort) = (TestProcess.freePort(), TestProcess.freePort())
            var config = GatewayConfigText(
                jwks: "{ file: jwks.json }", listeners: [.init(port: port, domain: "acme.test")],
                upstreams: [("acme.test", "{ url: \"http://127.0.0.1:\(upstream.port)\" }")],
                clients: [.init(id: "web-app", scopes: ["read:my_org:details"])], adminPort: adminPort
            ).yaml
            config += "faults: [{ route: GET details, share: 1.0, status: 503, delay_ms: 700 }]\n"
            try ws.write("gateway.yaml", config)
            let gateway = try GatewayServer(
                binary: binary, config: ws.path("gateway.yaml"), adminPort: adminPort, ports: [port])
            defer { _ = gateway.stop() }
            #expect(try gateway.waitReady())
            let token = try ws.token(key: "key", domain: "acme.test", client: "web-app", scope: "read:my_org:details")
            let start = Date()
            let answer = try curlStatus([
                "-H", "Authorization: Bearer \(token)", "http://127.0.0.1:\(port)/my-org/details",
            ])
            let ms = elapsedMs(since: start)
            print("fault injection: 503 answered after \(ms) ms (delay_ms 700)")
            #expect(answer.status == 503, "\(answer.body)")
            #expect(answer.body.contains("Injected fault") || answer.body.contains("injected"), "\(answer.body)")
            #expect(ms >= 650, "the injected answer came after \(ms) ms, before delay_ms (700)")
            #expect(ms < 5000)
            #expect(!upstream.requests().contains { $0.hasPrefix("GET /my-org/details ") })
        }

        @Test("a delay-only rule (no status) passes check and forwards the request after delay_ms")
        func delayOnly() throws {
            guard let binary = gatewayBinaryOrSkip("fault injection") else { return }
            let ws = Workspace(binary: binary, name: "faults-delay")
            defer { ws.remove() }
            try ws.write("jwks.json", try ws.signingKey("key"))
            let upstream = try UpstreamServer(workspace: ws)
            defer { upstream.stop() }
            let (port, adminPort) = (TestProcess.freePort(), TestProcess.freePort())
            var config = GatewayConfigText(
                jwks: "{ file: jwks.json }", listeners: [.init(port: port, domain: "acme.test")],
                upstreams: [("acme.test", "{ url: \"http://127.0.0.1:\(upstream.port)\" }")],
                clients: [.init(id: "web-app", scopes: ["read:my_org:details"])], adminPort: adminPort
            ).yaml
            config +=
                "faults: [{ route: GET details, share: 1.0, delay_ms: 700 }, { org: org_x, share: 0, status: 502 }]\n"
            try ws.write("gateway.yaml", config)
            let check = try TestProcess.run(binary, ["check", ws.path("gateway.yaml")], timeout: 20)
            #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
            let gateway = try GatewayServer(
                binary: binary, config: ws.path("gateway.yaml"), adminPort: adminPort, ports: [port])
            defer { _ = gateway.stop() }
            #expect(try gateway.waitReady())
            let token = try ws.token(key: "key", domain: "acme.test", client: "web-app", scope: "read:my_org:details")
            let start = Date()
            let answer = try curlStatus([
                "-H", "Authorization: Bearer \(token)", "http://127.0.0.1:\(port)/my-org/details",
            ])
            let ms = elapsedMs(since: start)
            #expect(answer.status == 200, "\(answer.body)")
            #expect(!answer.body.contains("Injected fault"), "\(answer.body)")
            #expect(ms >= 650, "the forwarded answer came after \(ms) ms, before delay_ms (700)")
            #expect(ms < 5000)
            #expect(upstream.requests().contains { $0.hasPrefix("GET /my-org/details ") })
        }
    }
}
