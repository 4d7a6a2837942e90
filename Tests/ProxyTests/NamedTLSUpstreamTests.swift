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

/// An upstream gateway on loopback serving HTTPS for `localhost` with a development CA's certificate, and the client
/// context that trusts that CA.
private struct TLSUpstreamFixture {
    let gateway: Gateway
    let port: UInt16
    let client: TLSClientContext

    init(handlers: any HandlerFactory) throws {
        let dir = TestProcess.temporaryDirectory("named-upstream")
        let ca = try DevelopmentCertificateAuthority()
        let caFile = dir.appendingPathComponent("ca.pem")
        try ca.certificatePEM.write(to: caFile, atomically: true, encoding: .utf8)
        let leaf = try ca.issue(dnsNames: ["localhost"], ipAddresses: [])
        gateway = oneListenerGateway(
            tls: try TLSServerContext(certificates: [leaf.certificateEntry()]), handlers: handlers)
        port = try gateway.start()[0].port
        client = try TLSClientContext(configuration: TLSClientConfiguration(trustRoots: .caFile(caFile.path)))
    }

    /// A plain-text gateway forwarding everything to this upstream, dialled as `host`; stop it with `shutdown`.
    func frontGateway(dialling host: String) throws -> (gateway: Gateway, port: UInt16) {
        let origin = UpstreamOrigin(
            host: host, port: port, useTLS: true, tlsContext: client, maxConnections: 4, connectTimeoutMs: 2000,
            responseTimeoutMs: 2000, idleTimeoutMs: 30000, secretHeaders: [], clientIPHeader: "X-Forwarded-For")
        let front = oneListenerGateway(tls: nil, handlers: ForwardAllFactory(origin: origin))
        return (front, try front.start()[0].port)
    }

    func stop() { gateway.shutdown(graceMilliseconds: 500) }
}

@Suite("a named upstream over TLS", .serialized)
struct NamedTLSUpstreamTests {
    /// The reference's custom-domain proxy sends the origin's host "as Host and as SNI"; the fixtures elsewhere dial
    /// 127.0.0.1, where no SNI is sent at all.
    @Test("the origin's name goes out as SNI and Host, and its certificate is verified for that name")
    func sniAndHostNameTheOrigin() throws {
        let upstream = try TLSUpstreamFixture(handlers: EchoArrivalFactory())
        defer { upstream.stop() }
        func status(dialling host: String) throws -> (code: String, body: String) {
            let front = try upstream.frontGateway(dialling: host)
            defer { front.gateway.shutdown(graceMilliseconds: 500) }
            let out = try TestProcess.run(
                "/usr/bin/curl",
                ["-sS", "--max-time", "10", "-w", "\n%{http_code}", "http://127.0.0.1:\(front.port)/my-org/details"])
            let lines = out.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            return (String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
        }

        let named = try status(dialling: "localhost")
        #expect(named.code == "200")
        #expect(named.body == "sni=localhost host=localhost:\(upstream.port)")
        // The same upstream dialled by address: its certificate names no IP, so the chain check refuses it.
        let byAddress = try status(dialling: "127.0.0.1")
        #expect(byAddress.code == "502", "\(byAddress.body)")
    }

    /// An upstream connection idle in the pool for a sweep period gives its TLS buffers back
    /// (`Transport.releaseBuffersIfQuiet`); the next request must go out on that same connection, not on a new one
    /// after a failed attempt.
    @Test("a pooled TLS upstream connection carries the next request after its buffers were released")
    func pooledConnectionAfterRelease() throws {
        let upstream = try TLSUpstreamFixture(handlers: EchoConnectionFactory())
        defer { upstream.stop() }
        let front = try upstream.frontGateway(dialling: "localhost")
        defer { front.gateway.shutdown(graceMilliseconds: 500) }

        let answers = try PausedKeepAliveClient.run(
            port: front.port, requests: (0..<3).map { ("GET", "/my-org/details?i=\($0)", 0) })
        #expect(answers.count == 3)
        #expect(answers.allSatisfy { $0.status == 200 && $0.body.hasPrefix("connection=") }, "\(answers)")
        #expect(Set(answers.map(\.body)).count == 1, "the upstream saw more than one connection: \(answers)")
    }
}
