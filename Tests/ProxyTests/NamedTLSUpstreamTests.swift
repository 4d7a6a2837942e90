import EventLoop
import Foundation
import GatewayCore
import HTTP1
import TLS
import Testing

@testable import Proxy
import TestSupport

/// Answers every request with the TLS server name and the Host it arrived with: the upstream end of the test.
private struct EchoArrivalFactory: HandlerFactory {
    func makeHandler(for listener: ListenerProfile, context: LoopContext) -> any RequestHandler {
        ForwardingHandler(context: context) { exchange in
            let host = exchange.head.authority ?? exchange.head.headers["Host"] ?? "-"
            let text = "sni=\(exchange.serverName ?? "-") host=\(host)"
            return .respond(Response(status: 200, body: Array(text.utf8)), decision: "echo")
        }
    }
}

/// Answers every request with an identity of the connection it came on: the same text twice means one connection.
private struct EchoConnectionFactory: HandlerFactory {
    func makeHandler(for listener: ListenerProfile, context: LoopContext) -> any RequestHandler {
        ForwardingHandler(context: context) { exchange in
            let connection = exchange.writer.map { "\(ObjectIdentifier($0 as AnyObject).hashValue)" } ?? "-"
            return .respond(Response(status: 200, body: Array("connection=\(connection)".utf8)), decision: "echo")
        }
    }
}

/// A one-loop gateway with one HTTP/1.1 listener on a free loopback port.
private func oneListenerGateway(tls: TLSServerContext?, handlers: any HandlerFactory) -> Gateway {
    let listener = ListenerProfile(
        address: NetAddress("127.0.0.1:0")!, domain: nil, tls: tls, http1Limits: HTTP1Limits(),
        headerReadTimeoutMs: 1000, idleTimeoutMs: 5000, allowH2: false)
    return Gateway(
        snapshot: GatewaySnapshot(listeners: [listener], handlers: handlers, generation: 1), loops: 1,
        maxConnections: 100, clock: SystemClock())
}

@Suite("a named upstream over TLS", .serialized)
struct NamedTLSUpstreamTests {
    /// The reference's custom-domain proxy sends the origin's host "as Host and as SNI"; the fixtures elsewhere dial
    /// 127.0.0.1, where no SNI is sent at all.
    @Test("the origin's name goes out as SNI and Host, and its certificate is verified for that name")
    func sniAndHostNameTheOrigin() throws {
        let dir = TestProcess.temporaryDirectory("named-upstream")
        let ca = try DevelopmentCertificateAuthority()
        let caFile = dir.appendingPathComponent("ca.pem")
        try ca.certificatePEM.write(to: caFile, atomically: true, encoding: .utf8)
        let leaf = try ca.issue(dnsNames: ["localhost"], ipAddresses: [])
        let upstreamTLS = try TLSServerContext(certificates: [leaf.certificateEntry()])
        let upstream = oneListenerGateway(tls: upstreamTLS, handlers: EchoArrivalFactory())
        let upstreamPort = try upstream.start()[0].port
        defer { upstream.shutdown(graceMilliseconds: 500) }

        let client = try TLSClientContext(configuration: TLSClientConfiguration(trustRoots: .caFile(caFile.path)))
        func status(dialling host: String) throws -> (code: String, body: String) {
            let origin = UpstreamOrigin(
                host: host, port: upstreamPort, useTLS: true, tlsContext: client, maxConnections: 4,
                connectTimeoutMs: 2000, responseTimeoutMs: 2000, idleTimeoutMs: 30000, secretHeaders: [],
                clientIPHeader: "X-Forwarded-For")
            let gateway = oneListenerGateway(tls: nil, handlers: ForwardAllFactory(origin: origin))
            let port = try gateway.start()[0].port
            defer { gateway.shutdown(graceMilliseconds: 500) }
            let out = try TestProcess.run(
                "/usr/bin/curl",
                ["-sS", "--max-time", "10", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)/my-org/details"])
            let lines = out.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            return (String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
        }

        let named = try status(dialling: "localhost")
        #expect(named.code == "200")
        #expect(named.body == "sni=localhost host=localhost:\(upstreamPort)")
        // The same upstream dialled by address: its certificate names no IP, so the chain check refuses it.
        let byAddress = try status(dialling: "127.0.0.1")
        #expect(byAddress.code == "502", "\(byAddress.body)")
    }

    /// An upstream connection idle in the pool for a sweep period gives its TLS buffers back
    /// (`Transport.releaseBuffersIfQuiet`); the next request must go out on that same connection, not on a new one
    /// after a failed attempt.
    @Test("a pooled TLS upstream connection carries the next request after its buffers were released")
    func pooledConnectionAfterRelease() throws {
        let dir = TestProcess.temporaryDirectory("quiet-upstream")
        let ca = try DevelopmentCertificateAuthority()
        let caFile = dir.appendingPathComponent("ca.pem")
        try ca.certificatePEM.write(to: caFile, atomically: true, encoding: .utf8)
        let leaf = try ca.issue(dnsNames: ["localhost"], ipAddresses: [])
        let upstream = oneListenerGateway(
            tls: try TLSServerContext(certificates: [leaf.certificateEntry()]), handlers: EchoConnectionFactory())
        let upstreamPort = try upstream.start()[0].port
        defer { upstream.shutdown(graceMilliseconds: 500) }
        let origin = UpstreamOrigin(
            host: "localhost", port: upstreamPort, useTLS: true,
            tlsContext: try TLSClientContext(configuration: TLSClientConfiguration(trustRoots: .caFile(caFile.path))),
            maxConnections: 4, connectTimeoutMs: 2000, responseTimeoutMs: 2000, idleTimeoutMs: 30000,
            secretHeaders: [], clientIPHeader: "X-Forwarded-For")
        let gateway = oneListenerGateway(tls: nil, handlers: ForwardAllFactory(origin: origin))
        let port = try gateway.start()[0].port
        defer { gateway.shutdown(graceMilliseconds: 500) }

        let script = """
            import http.client, sys, time
            conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
            out = []
            for i in range(3):
                if i: time.sleep(0.8)
                conn.request("GET", f"/my-org/details?i={i}")
                r = conn.getresponse()
                out.append(f"{r.status} {r.read().decode()}")
            print(";".join(out))
            """
        let out = try TestProcess.run("/usr/bin/env", ["python3", "-c", script, String(port)], timeout: 30)
        #expect(out.status == 0, "\(out.stderr)")
        let answers = out.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";")
        #expect(answers.count == 3, "\(out.stdout)")
        #expect(answers.allSatisfy { $0.hasPrefix("200 connection=") }, "\(out.stdout)")
        #expect(Set(answers).count == 1, "the upstream saw more than one connection: \(out.stdout)")
    }
}
