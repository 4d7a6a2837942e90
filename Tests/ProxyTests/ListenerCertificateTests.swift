import Foundation
import TLS
import TestSupport
import Testing

@testable import Policy
@testable import Proxy

@Suite("a TLS listener's default certificate")
struct ListenerCertificateTests {
    /// A client that sends no SNI (it dials an IP address; an IP literal is never sent as SNI) gets the listener's
    /// default certificate: on a listener bound to a domain, one covering that domain, whatever its place in the
    /// list; on one that serves every tenant domain, the first listed.
    @Test(
        "a client without SNI gets the certificate of the listener's domain, wherever the list puts it",
        arguments: [("login.example.test", ["login.example.test"]), (nil, ["acme.example.test"])]
            as [(String?, [String])])
    func noSNIGetsTheListenersDomain(domain: String?, expected: [String]) throws {
        let ca = try DevelopmentCertificateAuthority()
        let dir = TestProcess.temporaryDirectory("listener-cert").path
        let here = ConfigLocation(file: "test.yaml", line: 1, column: 1, path: "listeners[0].tls")
        func file(_ name: String) -> GatewayConfig.FilePath {
            GatewayConfig.FilePath(path: "\(dir)/\(name)", written: name, location: here)
        }
        var certificates: [GatewayConfig.TLS.Certificate] = []
        for name in ["acme.example.test", "login.example.test"] {
            try ca.issue(dnsNames: [name]).write(
                certificatePath: "\(dir)/\(name).pem", privateKeyPath: "\(dir)/\(name).key",
                caCertificatePath: "\(dir)/ca.pem")
            certificates.append(.init(cert: file("\(name).pem"), key: file("\(name).key")))
        }
        let listener = GatewayConfig.Listener(
            address: SocketAddress(host: "127.0.0.1", port: 0, family: .ipv4), domain: domain,
            tls: GatewayConfig.TLS(certificates: certificates, alpn: ["http/1.1"]))
        let server = try #require(try GatewayBuilder.serverContext(listener))
        let client = try TLSClientContext(
            configuration: TLSClientConfiguration(trustRoots: .caPEM(ca.certificatePEM), alpnProtocols: ["http/1.1"]))
        let pair = try TLSPair(client: client, serverName: "127.0.0.1", server: server)
        let result = pair.handshake()
        #expect(result.client == .complete && result.server == .complete, "\(result)")
        #expect(pair.client.peerCertificateDNSNames == expected)
    }
}
