import COpenSSL
import Foundation
import TLS
import TestSupport
import Testing

@Suite("TLSServerContext")
struct TLSServerContextTests {
    /// Two certificates from the test CA: an exact name (the default) and a wildcard.
    static let exact = try! TLSTestFixtures.authority.issue(dnsNames: ["a.example.test"])
    static let wildcard = try! TLSTestFixtures.authority.issue(dnsNames: ["*.b.example.test"], ipAddresses: [])

    static func twoDomainServer() throws -> TLSServerContext {
        try TLSServerContext(certificates: [exact.certificateEntry(), wildcard.certificateEntry()])
    }

    @Test("each certificate's validity period is read when it loads: current, expired")
    func certificateValidity() throws {
        let expired = try TLSTestFixtures.authority.issue(dnsNames: ["old.example.test"], validityDays: -1)
        let context = try TLSServerContext(certificates: [Self.exact.certificateEntry(), expired.certificateEntry()])
        #expect(context.certificateValidity == [TLSCertificateValidity.current, .expired])
    }

    struct SNICase: CustomTestStringConvertible, Sendable {
        let serverName: String
        let expectedNames: [String]
        let expectedSNI: String?
        var testDescription: String { "\(serverName) -> \(expectedNames)" }
    }

    @Test(
        "SNI selects the certificate whose name matches, exactly or by wildcard",
        arguments: [
            SNICase(serverName: "a.example.test", expectedNames: ["a.example.test"], expectedSNI: "a.example.test"),
            SNICase(serverName: "A.Example.Test", expectedNames: ["a.example.test"], expectedSNI: "a.example.test"),
            SNICase(
                serverName: "api.b.example.test", expectedNames: ["*.b.example.test"],
                expectedSNI: "api.b.example.test"),
            SNICase(
                serverName: "www.b.example.test", expectedNames: ["*.b.example.test"],
                expectedSNI: "www.b.example.test"),
            // No SNI (an IP literal is never sent as SNI): the default, first certificate, which has the IP SAN.
            SNICase(serverName: "127.0.0.1", expectedNames: ["a.example.test"], expectedSNI: nil),
        ])
    func sniSelection(_ example: SNICase) throws {
        let client = try TLSTestFixtures.client()
        let pair = try TLSPair(client: client, serverName: example.serverName, server: Self.twoDomainServer())
        let result = pair.handshake()
        #expect(result.client == .complete)
        #expect(result.server == .complete)
        #expect(pair.client.peerCertificateDNSNames == example.expectedNames)
        #expect(pair.server.localCertificateDNSNames == example.expectedNames)
        #expect(pair.server.serverName == example.expectedSNI)
    }

    @Test(
        "an unknown or too deep name gets the default certificate, which the client then refuses",
        arguments: ["c.example.test", "x.y.b.example.test", "b.example.test"])
    func unknownServerName(serverName: String) throws {
        let pair = try TLSPair(
            client: TLSTestFixtures.client(), serverName: serverName, server: Self.twoDomainServer())
        let result = pair.handshake()
        #expect(pair.server.localCertificateDNSNames == ["a.example.test"])
        #expect(
            result.client
                == .failed(
                    TLSError(
                        kind: .certificateVerificationFailed, reason: "certificate verify failed: hostname mismatch")))
        #expect(result.server != .complete)
    }

    @Test("a session resumes on the certificate SNI chose", arguments: ["a.example.test", "api.b.example.test"])
    func resumptionAfterSNI(serverName: String) throws {
        let client = try TLSTestFixtures.client()
        let server = try Self.twoDomainServer()
        for attempt in 0..<2 {
            let pair = try TLSPair(client: client, serverName: serverName, server: server)
            #expect(pair.handshake() == (.complete, .complete))
            #expect(pair.send([1, 2, 3], from: pair.server).received == [1, 2, 3])
            #expect(pair.server.sessionReused == (attempt == 1))
            #expect(pair.server.serverName == serverName)
        }
    }

    /// A raw OpenSSL client (TLSClientContext never offers a session under another name) against a server engine;
    /// returns the server and the client's session.
    static func rawHandshake(
        _ context: OpaquePointer, serverName: String, server: TLSServerContext, offering session: OpaquePointer?
    ) throws -> (server: TLSEngine, session: OpaquePointer?) {
        let engine = TLSEngine(server: server)
        let ssl = try #require(SSL_new(context))
        defer {
            // Freed without a shutdown, OpenSSL would mark the session not resumable (RFC 2246's rule).
            SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN)
            SSL_free(ssl)
        }
        let input = try #require(BIO_new(BIO_s_mem()))
        let output = try #require(BIO_new(BIO_s_mem()))
        SSL_set_bio(ssl, input, output)
        SSL_set_connect_state(ssl)
        _ = cshim_SSL_set_tlsext_host_name(ssl, serverName)
        if let session { _ = SSL_set_session(ssl, session) }
        var toServer: [UInt8] = []
        var done = false
        for _ in 0..<20 where !done {
            done = SSL_do_handshake(ssl) == 1
            let pending = Int(cshim_BIO_pending(output))
            if pending > 0 {
                toServer = [UInt8](repeating: 0, count: pending)
                _ = BIO_read(output, &toServer, Int32(pending))
                engine.feedNetwork(toServer)
            }
            _ = engine.handshake()
            var toClient: [UInt8] = []
            engine.drainNetwork(into: &toClient)
            if !toClient.isEmpty { _ = BIO_write(input, toClient, Int32(toClient.count)) }
        }
        // TLS 1.3 tickets follow the handshake: one read takes them in (and then wants more bytes).
        var byte: UInt8 = 0
        _ = SSL_read(ssl, &byte, 1)
        ERR_clear_error()
        #expect(done, "the raw client's handshake did not complete")
        return (engine, SSL_get1_session(ssl))
    }

    @Test(
        "a session is not resumed under another server name, on another certificate or the same one (RFC 6066 §3, RFC 8446 §4.6.1); under its own name it is",
        arguments: [TLS1_2_VERSION, TLS1_3_VERSION])
    func noResumptionAcrossNames(version: Int32) throws {
        let server = try Self.twoDomainServer()
        let context = try #require(SSL_CTX_new(TLS_client_method()))
        defer { SSL_CTX_free(context) }
        #expect(cshim_SSL_CTX_set_min_proto_version(context, version) == 1)
        #expect(cshim_SSL_CTX_set_max_proto_version(context, version) == 1)
        SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        let first = try Self.rawHandshake(context, serverName: "api.b.example.test", server: server, offering: nil)
        let session = try #require(first.session)
        defer { SSL_SESSION_free(session) }
        #expect(!first.server.sessionReused)
        // The control: the same name resumes, so the check below can tell.
        let same = try Self.rawHandshake(context, serverName: "api.b.example.test", server: server, offering: session)
        #expect(same.server.sessionReused)
        if let s = same.session { SSL_SESSION_free(s) }
        let other = try Self.rawHandshake(context, serverName: "a.example.test", server: server, offering: session)
        #expect(!other.server.sessionReused, "a session made for api.b.example.test was resumed for a.example.test")
        #expect(other.server.localCertificateDNSNames == ["a.example.test"])
        if let s = other.session { SSL_SESSION_free(s) }
        // Another name the same (wildcard) certificate covers: still another name.
        let sibling = try Self.rawHandshake(
            context, serverName: "www.b.example.test", server: server, offering: session)
        #expect(
            !sibling.server.sessionReused, "a session made for api.b.example.test was resumed for www.b.example.test")
        #expect(sibling.server.localCertificateDNSNames == ["*.b.example.test"])
        if let s = sibling.session { SSL_SESSION_free(s) }
    }

    @Test(
        "an RSA certificate beside an ECDSA one for the same name serves the clients that can verify only RSA",
        arguments: [
            ("ECDHE-RSA-AES128-GCM-SHA256", Int32(TLS1_2_VERSION), EVP_PKEY_RSA),
            ("ECDHE-ECDSA-AES128-GCM-SHA256", Int32(TLS1_2_VERSION), EVP_PKEY_EC),
            ("DEFAULT", Int32(TLS1_3_VERSION), EVP_PKEY_EC),
        ])
    func rsaBesideECDSA(suite: String, version: Int32, keyType: Int32) throws {
        let dir = TestProcess.temporaryDirectory("dual-cert").path
        let made = try TestProcess.run(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=a.example.test",
                "-addext", "subjectAltName=DNS:a.example.test", "-keyout", dir + "/rsa-key.pem", "-out",
                dir + "/rsa.pem",
            ], timeout: 30)
        try #require(made.status == 0, "\(made.stderr)")
        let rsa = TLSCertificateEntry(certificate: .file(dir + "/rsa.pem"), privateKey: .file(dir + "/rsa-key.pem"))
        let server = try TLSServerContext(certificates: [Self.exact.certificateEntry(), rsa])
        #expect(server.certificateValidity.count == 2)
        #expect(server.certificateNeverChosen == [false, false], "the RSA certificate is chosen by RSA-only clients")
        let context = try #require(SSL_CTX_new(TLS_client_method()))
        defer { SSL_CTX_free(context) }
        #expect(cshim_SSL_CTX_set_max_proto_version(context, version) == 1)
        if suite != "DEFAULT" { #expect(SSL_CTX_set_cipher_list(context, suite) == 1) }
        let (_, session) = try Self.rawHandshake(context, serverName: "a.example.test", server: server, offering: nil)
        defer { SSL_SESSION_free(session) }
        // The certificate the client got, as its session keeps it.
        let presented = try #require(session.flatMap { SSL_SESSION_get0_peer($0) })
        #expect(X509_get0_pubkey(presented).map { EVP_PKEY_get_base_id($0) } == keyType, "\(suite)")
    }

    @Test("a certificate whose every name an earlier one of its key type serves is reported as never chosen")
    func neverChosen() throws {
        let again = try TLSTestFixtures.authority.issue(dnsNames: ["a.example.test"])
        let more = try TLSTestFixtures.authority.issue(dnsNames: ["a.example.test", "c.example.test"])
        let cases: [([TLSCertificateEntry], [Bool])] = [
            ([Self.exact.certificateEntry(), Self.wildcard.certificateEntry()], [false, false]),
            ([Self.exact.certificateEntry(), again.certificateEntry()], [false, true]),
            // One new name is enough for SNI to choose it.
            ([Self.exact.certificateEntry(), more.certificateEntry()], [false, false]),
            // The first is the one a client without SNI gets, whatever it names.
            ([again.certificateEntry(), Self.exact.certificateEntry()], [false, true]),
        ]
        for (entries, expected) in cases {
            #expect(try TLSServerContext(certificates: entries).certificateNeverChosen == expected)
        }
    }

    @Test(
        "TLS 1.2 suites without ECDHE or without AEAD are refused",
        arguments: ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "AES128-GCM-SHA256"])
    func weakSuitesRefused(suite: String) throws {
        let server = TLSEngine(server: try TLSTestFixtures.server())
        // A raw OpenSSL client: TLSClientContext itself cannot be configured with such suites.
        let context = try #require(SSL_CTX_new(TLS_client_method()))
        defer { SSL_CTX_free(context) }
        #expect(cshim_SSL_CTX_set_max_proto_version(context, TLS1_2_VERSION) == 1)
        #expect(SSL_CTX_set_cipher_list(context, suite) == 1)
        let ssl = try #require(SSL_new(context))
        defer { SSL_free(ssl) }
        let input = try #require(BIO_new(BIO_s_mem()))
        let output = try #require(BIO_new(BIO_s_mem()))
        SSL_set_bio(ssl, input, output)
        SSL_set_connect_state(ssl)
        #expect(SSL_do_handshake(ssl) != 1)
        var hello = [UInt8](repeating: 0, count: Int(cshim_BIO_pending(output)))
        _ = BIO_read(output, &hello, Int32(hello.count))
        ERR_clear_error()
        server.feedNetwork(hello)
        #expect(server.handshake() == .failed(TLSError(kind: .handshakeFailed, reason: "no shared cipher")))
    }

    @Test("the routed names come from the certificates' SANs unless listed explicitly")
    func serverNames() throws {
        let derived = try Self.twoDomainServer()
        #expect(derived.serverNames == ["a.example.test", "*.b.example.test"])
        let listed = try TLSServerContext(certificates: [
            TLSTestFixtures.localhost.certificateEntry(domains: ["API.example.test."])
        ])
        #expect(listed.serverNames == ["api.example.test"])
        #expect(listed.alpnProtocols == ["h2", "http/1.1"])
    }

    @Test("a listed domain the certificate does not cover is refused")
    func uncoveredDomain() {
        #expect {
            _ = try TLSServerContext(certificates: [Self.exact.certificateEntry(domains: ["other.example.test"])])
        } throws: { error in
            (error as? TLSConfigurationError)?.message
                == "certificate inline PEM does not cover domain 'other.example.test'"
        }
    }

    @Test("a key that does not belong to the certificate is refused, naming both files")
    func mismatchedKey() throws {
        let directory = try TemporaryDirectory()
        let certificatePath = directory.path("a.pem")
        let keyPath = directory.path("other.key")
        try Self.exact.certificatePEM.write(toFile: certificatePath, atomically: true, encoding: .utf8)
        try Self.wildcard.privateKeyPEM.write(toFile: keyPath, atomically: true, encoding: .utf8)
        let entry = TLSCertificateEntry(certificate: .file(certificatePath), privateKey: .file(keyPath))
        let message = try configurationErrorMessage { _ = try TLSServerContext(certificates: [entry]) }
        #expect(message.hasPrefix("certificate '\(certificatePath)' and private key '\(keyPath)' do not match: "))
        #expect(message.contains("key values mismatch"))
        Self.expectNoKeyMaterial(in: message)
    }

    struct LoadFailure: CustomTestStringConvertible, Sendable {
        let name: String
        let certificate: String?
        let key: String?
        let expectedPrefix: String
        let expectedReason: String
        var testDescription: String { name }
    }

    @Test(
        "load errors name the file and give OpenSSL's reason",
        arguments: [
            LoadFailure(
                name: "missing certificate", certificate: nil, key: "key", expectedPrefix: "cannot read certificate '",
                expectedReason: "No such file or directory"),
            LoadFailure(
                name: "not PEM", certificate: "hello", key: "key", expectedPrefix: "cannot load certificate from '",
                expectedReason: "no start line"),
            LoadFailure(
                name: "missing key", certificate: "cert", key: nil, expectedPrefix: "cannot read private key '",
                expectedReason: "No such file or directory"),
            LoadFailure(
                name: "certificate given as key", certificate: "cert", key: "cert",
                expectedPrefix: "cannot load private key from '", expectedReason: "unsupported"),
            LoadFailure(
                name: "encrypted key", certificate: "cert", key: "encrypted", expectedPrefix: "private key '",
                expectedReason: "is encrypted; only unencrypted keys are supported"),
        ])
    func loadFailures(_ example: LoadFailure) throws {
        let directory = try TemporaryDirectory()
        func materialize(_ content: String?, name: String) throws -> String {
            let path = directory.path(name)
            let text: String? =
                switch content {
                case "cert": Self.exact.certificatePEM
                case "key": Self.exact.privateKeyPEM
                case "encrypted":
                    CertificateInspection.encryptedKeyPEM(fromPEM: Self.exact.privateKeyPEM, passphrase: "secret")
                case let other: other
                }
            try text?.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let entry = TLSCertificateEntry(
            certificate: .file(try materialize(example.certificate, name: "cert.pem")),
            privateKey: .file(try materialize(example.key, name: "key.pem")))
        let message = try configurationErrorMessage { _ = try TLSServerContext(certificates: [entry]) }
        #expect(message.hasPrefix(example.expectedPrefix))
        #expect(message.contains(directory.root))
        #expect(message.contains(example.expectedReason))
        Self.expectNoKeyMaterial(in: message)
    }

    @Test("configurations without certificates or with bad ALPN names are refused")
    func invalidConfigurations() throws {
        #expect(try configurationErrorMessage { _ = try TLSServerContext(certificates: []) }.contains("at least one"))
        let longName = String(repeating: "p", count: 256)
        let entry = TLSTestFixtures.localhost.certificateEntry()
        #expect(
            try configurationErrorMessage {
                _ = try TLSServerContext(certificates: [entry], alpnProtocols: [longName])
            }.contains("1 to 255 bytes"))
        #expect(
            try configurationErrorMessage {
                _ = try TLSServerContext(
                    configuration: TLSServerConfiguration(
                        certificates: [entry], minimumVersion: .tls13, maximumVersion: .tls12))
            }.contains("minimum version"))
    }

    /// A key PEM's body lines must never surface in an error.
    static func expectNoKeyMaterial(in message: String) {
        #expect(!message.contains("PRIVATE KEY"))
        for pem in [exact.privateKeyPEM, wildcard.privateKeyPEM] {
            for line in pem.split(separator: "\n") where !line.hasPrefix("-----") {
                #expect(!message.contains(line))
            }
        }
    }
}

/// Runs `body`, which must throw a `TLSConfigurationError`, and returns its message.
func configurationErrorMessage(_ body: () throws -> Void) throws -> String {
    do {
        try body()
    } catch let error as TLSConfigurationError {
        return error.message
    }
    Issue.record("expected a TLSConfigurationError")
    return ""
}

/// A fresh directory under the system's temporary directory, removed when the value is released.
final class TemporaryDirectory {
    let root: String

    init() throws {
        root = NSTemporaryDirectory() + "tls-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { root + "/" + name }

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }
}
