import COpenSSL

/// Reads back what a PEM certificate says, so tests check generated certificates through OpenSSL's own parser.
public struct CertificateInspection {
    public let subject: String
    public let issuer: String
    public let serialHex: String
    public let dnsNames: [String]
    public let ipAddresses: [String]
    public let isCA: Bool
    /// Whole days from now until notAfter.
    public let daysUntilExpiry: Int
    /// Seconds from notBefore until now (positive when already valid).
    public let secondsSinceNotBefore: Int

    /// Parses the first certificate of `pem`; nil when it is not one.
    public init?(pem: String) {
        guard let bio = BIO_new(BIO_s_mem()) else { return nil }
        defer { BIO_free(bio) }
        var text = pem
        _ = text.withUTF8 { BIO_write(bio, $0.baseAddress, Int32($0.count)) }
        guard let certificate = PEM_read_bio_X509(bio, nil, nil, nil) else {
            ERR_clear_error()
            return nil
        }
        defer { X509_free(certificate) }

        func oneLine(_ name: OpaquePointer?) -> String {
            guard let text = X509_NAME_oneline(name, nil, 0) else { return "" }
            defer { cshim_OPENSSL_free(text) }
            return String(cString: text)
        }
        subject = oneLine(X509_get_subject_name(certificate))
        issuer = oneLine(X509_get_issuer_name(certificate))

        let serial = ASN1_INTEGER_to_BN(X509_get_serialNumber(certificate), nil)
        defer { BN_free(serial) }
        if let hex = BN_bn2hex(serial) {
            serialHex = String(cString: hex)
            cshim_OPENSSL_free(hex)
        } else {
            serialHex = ""
        }

        var dns: [String] = []
        var ips: [String] = []
        if let raw = X509_get_ext_d2i(certificate, NID_subject_alt_name, nil, nil) {
            let names = OpaquePointer(raw)
            for index in 0..<OPENSSL_sk_num(names) {
                guard let entry = OPENSSL_sk_value(names, index)?.assumingMemoryBound(to: GENERAL_NAME.self) else {
                    continue
                }
                if entry.pointee.type == GEN_DNS, let value = entry.pointee.d.dNSName,
                    let data = ASN1_STRING_get0_data(value)
                {
                    let bytes = UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(value)))
                    dns.append(String(decoding: bytes, as: UTF8.self))
                } else if entry.pointee.type == GEN_IPADD, let value = entry.pointee.d.iPAddress,
                    let data = ASN1_STRING_get0_data(value)
                {
                    let bytes = UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(value)))
                    ips.append(Self.formatIP(bytes))
                }
            }
            GENERAL_NAMES_free(names)
        }
        dnsNames = dns
        ipAddresses = ips
        isCA = X509_check_ca(certificate) != 0

        var days: Int32 = 0
        var seconds: Int32 = 0
        _ = ASN1_TIME_diff(&days, &seconds, nil, X509_get0_notAfter(certificate))
        daysUntilExpiry = Int(days)
        _ = ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(certificate), nil)
        secondsSinceNotBefore = Int(days) * 86_400 + Int(seconds)
        ERR_clear_error()
    }

    /// Dotted quad, or eight unabbreviated hex groups ("0:0:0:0:0:0:0:1") for IPv6.
    private static func formatIP(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        if bytes.count == 4 { return bytes.map { String($0) }.joined(separator: ".") }
        return stride(from: 0, to: bytes.count - 1, by: 2)
            .map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }

    /// Re-encodes an unencrypted PEM private key as encrypted PKCS#8, for tests of key loading.
    public static func encryptedKeyPEM(fromPEM pem: String, passphrase: String) -> String? {
        guard let input = BIO_new(BIO_s_mem()), let output = BIO_new(BIO_s_mem()) else { return nil }
        defer {
            BIO_free(input)
            BIO_free(output)
        }
        var text = pem
        _ = text.withUTF8 { BIO_write(input, $0.baseAddress, Int32($0.count)) }
        guard let key = PEM_read_bio_PrivateKey(input, nil, nil, nil) else {
            ERR_clear_error()
            return nil
        }
        defer { EVP_PKEY_free(key) }
        var secret = Array(passphrase.utf8CString)
        guard
            PEM_write_bio_PKCS8PrivateKey(
                output, key, EVP_aes_256_cbc(), &secret, Int32(secret.count - 1), nil, nil) == 1
        else {
            ERR_clear_error()
            return nil
        }
        var bytes = [UInt8](repeating: 0, count: Int(cshim_BIO_pending(output)))
        _ = BIO_read(output, &bytes, Int32(bytes.count))
        return String(decoding: bytes, as: UTF8.self)
    }
}
