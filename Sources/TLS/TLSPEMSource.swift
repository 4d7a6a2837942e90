import COpenSSL
import Glibc

/// Where PEM text comes from: a file, or the text itself (development certificates, tests).
public enum TLSPEMSource: Sendable, Equatable {
    case file(String)
    case pem(String)

    /// How errors name this source; inline text is never echoed, since it may be a private key.
    var displayName: String {
        switch self {
        case .file(let path): return "'\(path)'"
        case .pem: return "inline PEM"
        }
    }
}

/// Cold-path helpers that turn PEM sources into OpenSSL objects. Every failure drains the error queue into the
/// thrown message.
enum PEMLoader {
    /// Reads a source into a memory BIO the caller frees. Files are read here rather than by OpenSSL so a missing
    /// or unreadable file is reported with the system's reason and the path.
    static func bio(for source: TLSPEMSource, what: String) throws(TLSConfigurationError) -> OpaquePointer {
        switch source {
        case .file(let path):
            guard let bio = BIO_new_file(path, "r") else {
                let reason = OpenSSLErrorQueue.drainReasons() ?? "cannot open"
                throw TLSConfigurationError("cannot read \(what) \(source.displayName): \(reason)")
            }
            return bio
        case .pem(let text):
            guard let bio = BIO_new(BIO_s_mem()) else {
                ERR_clear_error()
                throw TLSConfigurationError("cannot read \(what) \(source.displayName): out of memory")
            }
            var text = text
            let written = text.withUTF8 { BIO_write(bio, $0.baseAddress, Int32($0.count)) }
            guard written == Int32(text.utf8.count) else {
                BIO_free(bio)
                ERR_clear_error()
                throw TLSConfigurationError("cannot read \(what) \(source.displayName): out of memory")
            }
            return bio
        }
    }

    /// The certificates of a PEM source, leaf first. The caller owns (and frees) each X509.
    static func certificates(from source: TLSPEMSource, what: String = "certificate") throws(TLSConfigurationError)
        -> [OpaquePointer]
    {
        let bio = try bio(for: source, what: what)
        defer { BIO_free(bio) }
        var result: [OpaquePointer] = []
        ERR_clear_error()
        while let cert = PEM_read_bio_X509(bio, nil, nil, nil) {
            result.append(cert)
        }
        // The loop always ends with an error: "no start line" means the input simply ran out of certificates.
        let last = ERR_peek_last_error()
        let ranOut = ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE
        if result.isEmpty || !ranOut {
            let reason = OpenSSLErrorQueue.drainReasons() ?? "no certificate found"
            result.forEach { X509_free($0) }
            throw TLSConfigurationError("cannot load \(what) from \(source.displayName): \(reason)")
        }
        ERR_clear_error()
        return result
    }

    /// The private key of a PEM source. Encrypted keys are refused rather than prompting on a terminal.
    static func privateKey(from source: TLSPEMSource) throws(TLSConfigurationError) -> OpaquePointer {
        let bio = try bio(for: source, what: "private key")
        defer { BIO_free(bio) }
        ERR_clear_error()
        // OpenSSL asks for a passphrase only when the key is encrypted; the callback notes that and refuses.
        let refusePassphrase:
            @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32, UnsafeMutableRawPointer?) -> Int32 = {
                _, _, _, asked in
                asked?.storeBytes(of: true, as: Bool.self)
                return 0
            }
        var askedForPassphrase = false
        guard let key = PEM_read_bio_PrivateKey(bio, nil, refusePassphrase, &askedForPassphrase) else {
            let reason = OpenSSLErrorQueue.drainReasons() ?? "no private key found"
            if askedForPassphrase {
                throw TLSConfigurationError(
                    "private key \(source.displayName) is encrypted; only unencrypted keys are supported")
            }
            throw TLSConfigurationError("cannot load private key from \(source.displayName): \(reason)")
        }
        return key
    }
}

/// Names a certificate is valid for, read from its subjectAltName extension.
struct CertificateNames: Sendable, Equatable {
    var dnsNames: [String] = []
    var ipAddresses: [String] = []

    init(dnsNames: [String] = [], ipAddresses: [String] = []) {
        self.dnsNames = dnsNames
        self.ipAddresses = ipAddresses
    }

    init(certificate: OpaquePointer) {
        guard let raw = X509_get_ext_d2i(certificate, NID_subject_alt_name, nil, nil) else {
            ERR_clear_error()
            return
        }
        let names = OpaquePointer(raw)
        defer { GENERAL_NAMES_free(names) }
        for index in 0..<OPENSSL_sk_num(names) {
            guard let entry = OPENSSL_sk_value(names, index)?.assumingMemoryBound(to: GENERAL_NAME.self) else {
                continue
            }
            switch entry.pointee.type {
            case GEN_DNS:
                if let text = entry.pointee.d.dNSName, let bytes = Self.bytes(of: text) {
                    dnsNames.append(String(decoding: bytes, as: UTF8.self).lowercased())
                }
            case GEN_IPADD:
                if let octets = entry.pointee.d.iPAddress, let bytes = Self.bytes(of: octets),
                    let text = Self.formatIP(bytes)
                {
                    ipAddresses.append(text)
                }
            default:
                continue
            }
        }
    }

    private static func bytes(of string: UnsafeMutablePointer<ASN1_STRING>) -> UnsafeBufferPointer<UInt8>? {
        guard let data = ASN1_STRING_get0_data(string) else { return nil }
        return UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(string)))
    }

    private static func formatIP(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        let family: Int32
        switch bytes.count {
        case 4: family = AF_INET
        case 16: family = AF_INET6
        default: return nil
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(family, bytes.baseAddress, &text, socklen_t(text.count)) != nil else { return nil }
        return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Whether `host` (lower-case, no trailing dot) is covered by one of the DNS names, `*.` wildcards matching
    /// exactly one left-most label.
    func covers(host: String) -> Bool {
        for name in dnsNames {
            if name == host { return true }
            if name.hasPrefix("*."), let dot = host.firstIndex(of: "."),
                host[host.index(after: dot)...] == name.dropFirst(2)
            {
                return true
            }
        }
        return ipAddresses.contains(host)
    }
}

/// True when `name` is an IPv4 or IPv6 literal: such names are verified against IP SANs and never sent as SNI.
func isIPAddressLiteral(_ name: String) -> Bool {
    guard let octets = a2i_IPADDRESS(name) else {
        ERR_clear_error()
        return false
    }
    ASN1_OCTET_STRING_free(octets)
    return true
}

/// Lower-cases a host name and drops one trailing dot, the form SNI and SAN comparisons use.
func normalizedHostName(_ name: String) -> String {
    var lower = name.lowercased()
    if lower.hasSuffix(".") { lower.removeLast() }
    return lower
}
