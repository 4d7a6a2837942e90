import TLS

/// Certificates shared by the TLS tests: one development CA, made once per test run.
enum TLSTestFixtures {
    static let authority = try! DevelopmentCertificateAuthority(commonName: "TLSTests CA")
    /// Valid for localhost, api.example.test, 127.0.0.1 and ::1.
    static let localhost = try! authority.issue(dnsNames: ["localhost", "api.example.test"])

    static func server(
        alpn: [String] = ["h2", "http/1.1"], minimum: TLSProtocolVersion = .tls12,
        maximum: TLSProtocolVersion = .tls13
    ) throws -> TLSServerContext {
        try TLSServerContext(
            configuration: TLSServerConfiguration(
                certificates: [localhost.certificateEntry()], alpnProtocols: alpn, minimumVersion: minimum,
                maximumVersion: maximum))
    }

    static func client(
        alpn: [String] = ["http/1.1"], trusting trust: TLSClientConfiguration.TrustRoots? = nil,
        maximum: TLSProtocolVersion = .tls13, reusesSessions: Bool = true
    ) throws -> TLSClientContext {
        try TLSClientContext(
            configuration: TLSClientConfiguration(
                trustRoots: trust ?? .caPEM(authority.certificatePEM), alpnProtocols: alpn, maximumVersion: maximum,
                reusesSessions: reusesSessions))
    }
}
