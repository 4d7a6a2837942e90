import COpenSSL
import Glibc

/// A leaf certificate, its key and the CA that issued it, as PEM text. For local work and tests only.
public struct DevelopmentCertificateBundle: Sendable {
    public let certificatePEM: String
    /// The leaf's private key (PKCS#8). Never log it.
    public let privateKeyPEM: String
    /// The issuing CA (the leaf itself when self-signed): what a client must trust.
    public let caCertificatePEM: String

    /// A server certificate entry serving this bundle from memory.
    public func certificateEntry(domains: [String] = []) -> TLSCertificateEntry {
        TLSCertificateEntry(certificate: .pem(certificatePEM), privateKey: .pem(privateKeyPEM), domains: domains)
    }

    /// Writes the three files; the key is created with mode 0600 (and set to it if it already existed).
    /// - Throws: `TLSConfigurationError` naming the file that could not be written.
    public func write(
        certificatePath: String, privateKeyPath: String, caCertificatePath: String
    ) throws(TLSConfigurationError) {
        try writeFile(privateKeyPath, privateKeyPEM, mode: 0o600)
        try writeFile(certificatePath, certificatePEM, mode: 0o644)
        try writeFile(caCertificatePath, caCertificatePEM, mode: 0o644)
    }
}

/// A throw-away EC P-256 certificate authority, made with the OpenSSL API. Its private key stays in memory and is
/// never exported.
public final class DevelopmentCertificateAuthority: @unchecked Sendable {
    // Safety: the key and certificate are created in init and only read afterwards (signing reads the key);
    // OpenSSL allows concurrent use of an EVP_PKEY and X509 for signing and encoding.
    private let key: OpaquePointer
    private let certificate: OpaquePointer
    public let certificatePEM: String

    /// - Parameter validityDays: how long the CA is valid; leaves it issues should not outlive it.
    public init(commonName: String = "myorg-gateway development CA", validityDays: Int = 30)
        throws(TLSConfigurationError)
    {
        let key = try generateP256Key()
        let certificate: OpaquePointer
        let certificatePEM: String
        do throws(TLSConfigurationError) {
            certificate = try makeCertificate(
                subjectCommonName: commonName, publicKey: key, issuer: nil, issuerKey: key, validityDays: validityDays,
                extensions: [
                    (NID_basic_constraints, "critical,CA:TRUE,pathlen:0"),
                    (NID_key_usage, "critical,keyCertSign,cRLSign"),
                    (NID_subject_key_identifier, "hash"),
                ])
        } catch {
            EVP_PKEY_free(key)
            throw error
        }
        do throws(TLSConfigurationError) {
            certificatePEM = try pem(of: certificate)
        } catch {
            X509_free(certificate)
            EVP_PKEY_free(key)
            throw error
        }
        self.key = key
        self.certificate = certificate
        self.certificatePEM = certificatePEM
    }

    deinit {
        X509_free(certificate)
        EVP_PKEY_free(key)
    }

    /// Issues a server certificate for `dnsNames` and `ipAddresses`, with a fresh P-256 key and a random serial.
    public func issue(
        dnsNames: [String], ipAddresses: [String] = ["127.0.0.1", "::1"], validityDays: Int = 30
    ) throws(TLSConfigurationError) -> DevelopmentCertificateBundle {
        let leafKey = try generateP256Key()
        defer { EVP_PKEY_free(leafKey) }
        let leaf = try makeCertificate(
            subjectCommonName: dnsNames.first ?? ipAddresses.first ?? "localhost", publicKey: leafKey,
            issuer: certificate, issuerKey: key, validityDays: validityDays,
            extensions: leafExtensions(dnsNames: dnsNames, ipAddresses: ipAddresses)
                + [(NID_authority_key_identifier, "keyid:always")])
        defer { X509_free(leaf) }
        return DevelopmentCertificateBundle(
            certificatePEM: try pem(of: leaf), privateKeyPEM: try pem(ofKey: leafKey), caCertificatePEM: certificatePEM)
    }
}

/// Development certificates in one call.
public enum DevelopmentCertificates {
    /// A new CA and one leaf it issued for `dnsNames` and `ipAddresses` (loopback by default).
    public static func generate(
        dnsNames: [String] = ["localhost"], ipAddresses: [String] = ["127.0.0.1", "::1"], validityDays: Int = 30
    ) throws(TLSConfigurationError) -> DevelopmentCertificateBundle {
        let authority = try DevelopmentCertificateAuthority(validityDays: validityDays)
        return try authority.issue(dnsNames: dnsNames, ipAddresses: ipAddresses, validityDays: validityDays)
    }

    /// A self-signed leaf (its own CA), such as a client should refuse unless it trusts exactly that certificate.
    public static func selfSigned(
        dnsNames: [String], ipAddresses: [String] = [], validityDays: Int = 30
    ) throws(TLSConfigurationError) -> DevelopmentCertificateBundle {
        let key = try generateP256Key()
        defer { EVP_PKEY_free(key) }
        let certificate = try makeCertificate(
            subjectCommonName: dnsNames.first ?? "localhost", publicKey: key, issuer: nil, issuerKey: key,
            validityDays: validityDays, extensions: leafExtensions(dnsNames: dnsNames, ipAddresses: ipAddresses))
        defer { X509_free(certificate) }
        let certificatePEM = try pem(of: certificate)
        return DevelopmentCertificateBundle(
            certificatePEM: certificatePEM, privateKeyPEM: try pem(ofKey: key), caCertificatePEM: certificatePEM)
    }
}

private func leafExtensions(dnsNames: [String], ipAddresses: [String]) -> [(Int32, String)] {
    let names = dnsNames.map { "DNS:\($0)" } + ipAddresses.map { "IP:\($0)" }
    var extensions: [(Int32, String)] = [
        (NID_basic_constraints, "critical,CA:FALSE"),
        (NID_key_usage, "critical,digitalSignature"),
        (NID_ext_key_usage, "serverAuth,clientAuth"),
        (NID_subject_key_identifier, "hash"),
    ]
    if !names.isEmpty {
        extensions.append((NID_subject_alt_name, names.joined(separator: ",")))
    }
    return extensions
}

private func generateP256Key() throws(TLSConfigurationError) -> OpaquePointer {
    guard let context = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else {
        throw certificateError("cannot create an EC key context")
    }
    defer { EVP_PKEY_CTX_free(context) }
    var key: OpaquePointer?
    guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_CTX_set_group_name(context, "P-256") == 1,
        EVP_PKEY_generate(context, &key) == 1, let key
    else {
        throw certificateError("cannot generate a P-256 key")
    }
    return key
}

/// Builds and signs a certificate. `issuer == nil` makes it self-signed (subject = issuer).
private func makeCertificate(
    subjectCommonName: String, publicKey: OpaquePointer, issuer: OpaquePointer?, issuerKey: OpaquePointer,
    validityDays: Int, extensions: [(Int32, String)]
) throws(TLSConfigurationError) -> OpaquePointer {
    guard let certificate = X509_new() else { throw certificateError("cannot allocate a certificate") }
    var done = false
    defer { if !done { X509_free(certificate) } }

    // A random positive 127-bit serial: unique without bookkeeping, as RFC 5280 §4.1.2.2 allows (≤ 20 octets).
    guard let serial = BN_new() else { throw certificateError("cannot allocate a serial number") }
    defer { BN_free(serial) }
    guard X509_set_version(certificate, 2) == 1,
        BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1,
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(certificate)) != nil,
        // Backdated an hour so a slightly slow clock elsewhere does not reject a fresh certificate.
        X509_gmtime_adj(X509_getm_notBefore(certificate), -3600) != nil,
        X509_time_adj_ex(X509_getm_notAfter(certificate), Int32(validityDays), 0, nil) != nil,
        X509_set_pubkey(certificate, publicKey) == 1
    else { throw certificateError("cannot fill in a certificate") }

    let subject = X509_get_subject_name(certificate)
    guard
        X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_ASC, "myorg-gateway development", -1, -1, 0) == 1,
        X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, subjectCommonName, -1, -1, 0) == 1,
        X509_set_issuer_name(certificate, issuer.map { X509_get_subject_name($0) } ?? subject) == 1
    else { throw certificateError("cannot set the certificate's names") }

    var v3 = X509V3_CTX()
    X509V3_set_ctx(&v3, issuer ?? certificate, certificate, nil, nil, 0)
    for (nid, value) in extensions {
        guard let ext = X509V3_EXT_conf_nid(nil, &v3, nid, value) else {
            throw certificateError("cannot build certificate extension '\(value)'")
        }
        defer { X509_EXTENSION_free(ext) }
        guard X509_add_ext(certificate, ext, -1) == 1 else {
            throw certificateError("cannot add certificate extension '\(value)'")
        }
    }
    guard X509_sign(certificate, issuerKey, EVP_sha256()) > 0 else {
        throw certificateError("cannot sign the certificate")
    }
    done = true
    return certificate
}

private func pem(of certificate: OpaquePointer) throws(TLSConfigurationError) -> String {
    try pemText { PEM_write_bio_X509($0, certificate) }
}

private func pem(ofKey key: OpaquePointer) throws(TLSConfigurationError) -> String {
    try pemText { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) }
}

private func pemText(_ write: (OpaquePointer) -> Int32) throws(TLSConfigurationError) -> String {
    guard let bio = BIO_new(BIO_s_mem()) else { throw certificateError("cannot allocate a buffer") }
    defer { BIO_free(bio) }
    guard write(bio) == 1 else { throw certificateError("cannot encode PEM") }
    let count = Int(cshim_BIO_pending(bio))
    var bytes = [UInt8](repeating: 0, count: count)
    let read = BIO_read(bio, &bytes, Int32(count))
    let text = String(decoding: bytes.prefix(max(Int(read), 0)), as: UTF8.self)
    // Scrub the copy: for a key this buffer held the secret.
    bytes.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
    return text
}

private func certificateError(_ what: String) -> TLSConfigurationError {
    let reason = OpenSSLErrorQueue.drainReasons()
    return TLSConfigurationError(reason.map { "\(what): \($0)" } ?? what)
}

/// Writes `contents` to `path`, forcing `mode` before any byte is written so a key never sits in a wider file.
private func writeFile(_ path: String, _ contents: String, mode: mode_t) throws(TLSConfigurationError) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else {
        throw TLSConfigurationError("cannot write '\(path)': \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    guard fchmod(fd, mode) == 0 else {
        throw TLSConfigurationError("cannot set the mode of '\(path)': \(String(cString: strerror(errno)))")
    }
    var failure: Int32 = 0
    var text = contents
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                failure = errno
                return
            }
            offset += written
        }
    }
    if failure != 0 {
        throw TLSConfigurationError("cannot write '\(path)': \(String(cString: strerror(failure)))")
    }
}
