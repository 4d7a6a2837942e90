import COpenSSL
import Foundation
import TLS
import TestSupport
import Testing

@Suite("TLSClientContext")
struct TLSClientContextTests {
    static let otherAuthority = try! DevelopmentCertificateAuthority(commonName: "Another CA")
    static let selfSigned = try! DevelopmentCertificates.selfSigned(dnsNames: ["localhost"])
    static let fromOtherAuthority = try! otherAuthority.issue(dnsNames: ["localhost"])

    struct VerificationCase: CustomTestStringConvertible, Sendable {
        let name: String
        let served: DevelopmentCertificateBundle
        let serverName: String
        let expectedReason: String
        var testDescription: String { name }
    }

    @Test(
        "the client refuses certificates it cannot verify, with the verifier's reason",
        arguments: [
            VerificationCase(
                name: "self-signed", served: selfSigned, serverName: "localhost",
                expectedReason: "certificate verify failed: self-signed certificate"),
            VerificationCase(
                name: "issued by an untrusted CA", served: fromOtherAuthority, serverName: "localhost",
                expectedReason: "certificate verify failed: unable to get local issuer certificate"),
            VerificationCase(
                name: "host name mismatch", served: TLSTestFixtures.localhost, serverName: "login.example.test",
                expectedReason: "certificate verify failed: hostname mismatch"),
            VerificationCase(
                name: "IP address mismatch", served: TLSTestFixtures.localhost, serverName: "10.1.2.3",
                expectedReason: "certificate verify failed: IP address mismatch"),
        ])
    func refusesUnverifiable(_ example: VerificationCase) throws {
        let server = try TLSServerContext(certificates: [example.served.certificateEntry()])
        let pair = try TLSPair(client: TLSTestFixtures.client(), serverName: example.serverName, server: server)
        let result = pair.handshake()
        #expect(
            result.client == .failed(TLSError(kind: .certificateVerificationFailed, reason: example.expectedReason)))
        // The client's alert reaches the server, which fails too.
        guard case .failed(let serverError) = result.server else {
            Issue.record("the server should have received an alert, got \(result.server)")
            return
        }
        #expect(serverError.kind == .handshakeFailed)
        #expect(serverError.reason.contains("alert"))
        #expect(ERR_peek_error() == 0)
    }

    @Test("the system trust store does not trust a development CA")
    func systemTrustStore() throws {
        let pair = try TLSPair(
            client: TLSTestFixtures.client(trusting: .system), serverName: "localhost",
            server: TLSTestFixtures.server())
        guard case .failed(let error) = pair.handshake().client else {
            Issue.record("a development certificate must not verify against the system store")
            return
        }
        #expect(error.kind == .certificateVerificationFailed)
    }

    @Test("a CA file is trusted; a missing or empty one is a configuration error")
    func caFile() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("ca.pem")
        try TLSTestFixtures.authority.certificatePEM.write(toFile: path, atomically: true, encoding: .utf8)
        let pair = try TLSPair(
            client: TLSTestFixtures.client(trusting: .caFile(path)), serverName: "127.0.0.1",
            server: TLSTestFixtures.server())
        #expect(pair.handshake() == (.complete, .complete))
        #expect(pair.client.negotiatedALPN == "http/1.1")

        let missing = directory.path("missing.pem")
        let missingMessage = try configurationErrorMessage {
            _ = try TLSTestFixtures.client(trusting: .caFile(missing))
        }
        #expect(missingMessage.contains(missing))
        let empty = directory.path("empty.pem")
        try "".write(toFile: empty, atomically: true, encoding: .utf8)
        let emptyMessage = try configurationErrorMessage { _ = try TLSTestFixtures.client(trusting: .caFile(empty)) }
        #expect(emptyMessage.contains(empty))
    }

    @Test("an empty server name is refused before any byte is sent")
    func invalidServerName() throws {
        let client = try TLSTestFixtures.client()
        #expect(throws: TLSError.self) { _ = try TLSEngine(client: client, serverName: "") }
    }

    @Test("a second connection to the same host resumes the session", arguments: [TLSProtocolVersion.tls13, .tls12])
    func sessionResumption(version: TLSProtocolVersion) throws {
        let client = try TLSTestFixtures.client(maximum: version)
        let server = try TLSTestFixtures.server()

        let first = try Self.connectAndExchange(client: client, server: server, serverName: "localhost")
        #expect(first.client.sessionReused == false)
        #expect(first.server.sessionReused == false)

        let second = try Self.connectAndExchange(client: client, server: server, serverName: "localhost")
        #expect(second.client.sessionReused)
        #expect(second.server.sessionReused)
        #expect(second.client.protocolVersion == first.client.protocolVersion)
        #expect(second.client.negotiatedALPN == "http/1.1")

        // Sessions are kept per host: another name on the same certificate starts afresh.
        let other = try Self.connectAndExchange(client: client, server: server, serverName: "api.example.test")
        #expect(other.client.sessionReused == false)

        // Forgetting the host's session forces a full handshake.
        client.forgetSession(forHost: "localhost")
        let afterForget = try Self.connectAndExchange(client: client, server: server, serverName: "localhost")
        #expect(afterForget.client.sessionReused == false)
    }

    @Test("a connection released without close_notify keeps its session; a truncated one loses it")
    func sessionAfterQuietOrBrokenClose() throws {
        let client = try TLSTestFixtures.client()
        let server = try TLSTestFixtures.server()
        do {
            // Released while healthy, with no close_notify (an idle timeout, a pool trim).
            _ = try Self.connectAndExchange(client: client, server: server, serverName: "localhost")
        }
        do {
            let resumed = try Self.connectAndExchange(client: client, server: server, serverName: "localhost")
            #expect(resumed.client.sessionReused)
            // Cut off: the socket reached EOF without close_notify.
            resumed.client.noteNetworkEOF()
            var sink: [UInt8] = []
            guard case .failed = resumed.client.readPlaintext(into: &sink) else {
                Issue.record("expected a truncation failure")
                return
            }
        }
        let afterTruncation = try Self.connectAndExchange(client: client, server: server, serverName: "localhost")
        #expect(afterTruncation.client.sessionReused == false)
    }

    @Test("a client that does not reuse sessions always makes a full handshake")
    func noSessionReuse() throws {
        let client = try TLSTestFixtures.client(reusesSessions: false)
        let server = try TLSTestFixtures.server()
        _ = try Self.connectAndExchange(client: client, server: server, serverName: "localhost")
        let second = try Self.connectAndExchange(client: client, server: server, serverName: "localhost")
        #expect(second.client.sessionReused == false)
        #expect(second.server.sessionReused == false)
    }

    /// Handshakes, then sends a response from the server so the client processes the TLS 1.3 session tickets
    /// that follow the handshake.
    static func connectAndExchange(
        client: TLSClientContext, server: TLSServerContext, serverName: String
    ) throws -> TLSPair {
        let pair = try TLSPair(client: client, serverName: serverName, server: server)
        let result = pair.handshake()
        #expect(result.client == .complete)
        #expect(result.server == .complete)
        let response = Array("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".utf8)
        #expect(pair.send(response, from: pair.server).received == response)
        return pair
    }
}
