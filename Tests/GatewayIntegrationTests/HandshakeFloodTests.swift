import Foundation
import TestSupport
import Testing

extension GatewayIntegration {
    /// Half-finished TLS handshakes cut off by the header deadline: each held ~30 KB of TLS and connection state,
    /// which glibc kept mapped after it was freed, so repeated floods grew the resident size without bound (an
    /// audit measured +11 MB per 1,000). The gateway now hands such memory back after connections fall away.
    @Suite("half-finished TLS handshakes")
    struct HandshakeFloodTests {
        @Test(
            "repeated floods of half-sent ClientHellos leave the resident size where it was, each counted as a failed handshake"
        )
        func residentSizeStaysBounded() throws {
            guard let binary = gatewayBinaryOrSkip("handshake flood") else { return }
            let ws = Workspace(binary: binary, name: "hsflood")
            defer { ws.remove() }
            try ws.write("jwks.json", try ws.signingKey("key"))
            let upstream = try UpstreamServer(workspace: ws)
            defer { upstream.stop() }
            let cert = try ws.certificate("gateway", dnsNames: ["acme.test"])
            let (port, adminPort) = (TestProcess.freePort(), TestProcess.freePort())
            let config = GatewayConfigText(
                jwks: "{ file: jwks.json }",
                listeners: [.init(port: port, domain: "acme.test", tls: (cert.cert, cert.key))],
                upstreams: [("acme.test", "{ url: \"http://127.0.0.1:\(upstream.port)\" }")],
                clients: [.init(id: "web-app", scopes: ["read:my_org:details"])], adminPort: adminPort,
                limits: ["header_read_timeout_ms: 500", "max_connections: 4000"])
            try ws.write("gateway.yaml", config.yaml)
            let gateway = try GatewayServer(
                binary: binary, config: ws.path("gateway.yaml"), adminPort: adminPort, ports: [port])
            defer { _ = gateway.stop() }
            #expect(try gateway.waitReady())

            // The first 11 bytes of a ClientHello: a record header announcing 512 bytes, then silence.
            let partialHello: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03]
            func flood(_ count: Int) throws {
                var sockets: [RawConnection] = []
                for _ in 0..<count {
                    let connection = try RawConnection(port: port)
                    try connection.send(partialHello)
                    sockets.append(connection)
                }
                // Past the header deadline: the gateway cut them all off.
                usleep(1_500_000)
                for connection in sockets { connection.close() }
            }
            try flood(300)
            usleep(2_500_000)
            let baseline = gateway.process.residentKiB()
            for _ in 0..<3 { try flood(600) }
            // The trim runs on the service's one-second tick once the connections are gone (on a busy machine
            // the last of them can take a few seconds to be cut off and reaped, hence the generous wait).
            var after = 0
            let settled = eventually(timeout: 12, intervalMs: 250) {
                after = gateway.process.residentKiB()
                return after - baseline < 12 * 1024
            }
            print("handshake flood: resident \(baseline) KiB before 3 x 600 half-handshakes, \(after) KiB after")
            #expect(baseline > 0)
            #expect(settled, "resident size grew from \(baseline) to \(after) KiB")
            // Every handshake the deadline cut off is a failed one in the metrics (the harness's own port probe,
            // a connection that sent nothing, may add one).
            let failures = try metricValue(gateway, "myorg_gateway_tls_handshake_failures_total") ?? 0
            #expect((2100...2102).contains(failures), "\(failures) failed handshakes counted")
        }
    }
}
