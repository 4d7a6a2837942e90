import Foundation
import TLS
import TestSupport
import Testing

@Suite("DevelopmentCertificates")
struct CertificateGenerationTests {
    @Test("a generated leaf carries the requested DNS and IP names and is signed by its CA")
    func leafContents() throws {
        let bundle = try DevelopmentCertificates.generate(
            dnsNames: ["localhost", "login.acme.test"], validityDays: 30)
        let leaf = try #require(CertificateInspection(pem: bundle.certificatePEM))
        let ca = try #require(CertificateInspection(pem: bundle.caCertificatePEM))
        #expect(leaf.dnsNames == ["localhost", "login.acme.test"])
        #expect(leaf.ipAddresses == ["127.0.0.1", "0:0:0:0:0:0:0:1"])
        #expect(leaf.subject.hasSuffix("/CN=localhost"))
        #expect(leaf.issuer == ca.subject)
        #expect(ca.subject.hasSuffix("/CN=myorg-gateway development CA"))
        #expect(ca.isCA)
        #expect(!leaf.isCA)
        #expect((29...30).contains(leaf.daysUntilExpiry))
        #expect(leaf.secondsSinceNotBefore > 0)
        #expect(bundle.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----"))
    }

    @Test("validity follows the requested number of days", arguments: [1, 7, 90])
    func validity(days: Int) throws {
        let bundle = try DevelopmentCertificates.generate(validityDays: days)
        let leaf = try #require(CertificateInspection(pem: bundle.certificatePEM))
        #expect((days - 1...days).contains(leaf.daysUntilExpiry))
    }

    @Test("serial numbers are random")
    func randomSerials() throws {
        let authority = try DevelopmentCertificateAuthority()
        let serials = try (0..<4).map { _ in
            try #require(CertificateInspection(pem: try authority.issue(dnsNames: ["localhost"]).certificatePEM))
                .serialHex
        }
        #expect(Set(serials).count == serials.count)
        #expect(serials.allSatisfy { $0.count >= 24 })
    }

    @Test("writing creates the key with mode 0600, even over an existing wider file")
    func writeFiles() throws {
        let directory = try TemporaryDirectory()
        let bundle = try DevelopmentCertificates.generate()
        let keyPath = directory.path("dev.key")
        try "old".write(toFile: keyPath, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyPath)

        try bundle.write(
            certificatePath: directory.path("dev.pem"), privateKeyPath: keyPath,
            caCertificatePath: directory.path("ca.pem"))

        let keyMode = try FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        #expect(try String(contentsOfFile: keyPath, encoding: .utf8) == bundle.privateKeyPEM)
        #expect(try String(contentsOfFile: directory.path("dev.pem"), encoding: .utf8) == bundle.certificatePEM)
        #expect(try String(contentsOfFile: directory.path("ca.pem"), encoding: .utf8) == bundle.caCertificatePEM)

        // The written files load as a server certificate that a client trusting the CA file accepts.
        let server = try TLSServerContext(certificates: [
            TLSCertificateEntry(certificate: .file(directory.path("dev.pem")), privateKey: .file(keyPath))
        ])
        let client = try TLSClientContext(
            configuration: TLSClientConfiguration(trustRoots: .caFile(directory.path("ca.pem"))))
        let pair = try TLSPair(client: client, serverName: "::1", server: server)
        #expect(pair.handshake() == (.complete, .complete))
    }

    @Test("writing into a missing directory names the path")
    func writeFailure() throws {
        let bundle = try DevelopmentCertificates.generate()
        let message = try configurationErrorMessage {
            try bundle.write(
                certificatePath: "/nonexistent-dir/dev.pem", privateKeyPath: "/nonexistent-dir/dev.key",
                caCertificatePath: "/nonexistent-dir/ca.pem")
        }
        #expect(message == "cannot write '/nonexistent-dir/dev.key': No such file or directory")
    }
}
