import COpenSSL

/// A TLS protocol version bound.
public enum TLSProtocolVersion: Sendable, Equatable, Comparable {
    case tls12
    case tls13

    var openSSLValue: Int32 {
        switch self {
        case .tls12: return TLS1_2_VERSION
        case .tls13: return TLS1_3_VERSION
        }
    }
}

/// One certificate a listener serves, and the host names (SNI) it answers for.
public struct TLSCertificateEntry: Sendable, Equatable {
    /// The certificate chain, leaf first, then intermediates.
    public var certificate: TLSPEMSource
    /// The leaf's private key (unencrypted PEM).
    public var privateKey: TLSPEMSource
    /// Host names this certificate answers for; `*.example.com` covers one label. Empty: the certificate's own
    /// subjectAltName DNS names. Each listed name must be covered by the certificate.
    public var domains: [String]

    public init(certificate: TLSPEMSource, privateKey: TLSPEMSource, domains: [String] = []) {
        self.certificate = certificate
        self.privateKey = privateKey
        self.domains = domains
    }
}

/// How a listener terminates TLS.
public struct TLSServerConfiguration: Sendable, Equatable {
    /// At least one. The default, served when the client sends no SNI or an unknown name, is the first that covers
    /// `defaultServerName`, else the first.
    public var certificates: [TLSCertificateEntry]
    /// The name a client without SNI is taken to ask for (one that dials an IP address: an IP literal is never sent
    /// as SNI): a listener bound to one domain passes it, so that such a client can verify what it gets. Nil: the
    /// first certificate. Which certificate serves a name a client does send stays the order of `certificates`.
    public var defaultServerName: String?
    /// ALPN protocols in the server's order of preference; the first one the client also offers wins.
    /// Empty: no ALPN (HTTP/1.1 implied). A listener that must not speak HTTP/2 passes `["http/1.1"]`.
    public var alpnProtocols: [String]
    public var minimumVersion: TLSProtocolVersion
    public var maximumVersion: TLSProtocolVersion
    /// Entries in OpenSSL's server-side session cache (TLS 1.2 session IDs); tickets need no server state.
    public var sessionCacheSize: Int

    public init(
        certificates: [TLSCertificateEntry],
        alpnProtocols: [String] = ["h2", "http/1.1"],
        minimumVersion: TLSProtocolVersion = .tls12,
        maximumVersion: TLSProtocolVersion = .tls13,
        sessionCacheSize: Int = 20_480,
        defaultServerName: String? = nil
    ) {
        self.certificates = certificates
        self.defaultServerName = defaultServerName
        self.alpnProtocols = alpnProtocols
        self.minimumVersion = minimumVersion
        self.maximumVersion = maximumVersion
        self.sessionCacheSize = sessionCacheSize
    }
}

/// Where the moment a certificate was loaded falls in its validity period. Clients refuse a certificate outside
/// it, so a listener serving one is as good as down; the gateway still loads it (a renewal may be on its way)
/// but says so.
public enum TLSCertificateValidity: Sendable, Equatable {
    case current, expired, notYetValid
}

/// The server side's OpenSSL configuration for one listener: one `SSL_CTX` per certificate, chosen per
/// connection by SNI, plus ALPN selection.
///
/// Immutable after `init`, shared by every loop. A certificate reload builds a new context and swaps it in;
/// connections already open keep the one they started with (each `TLSEngine` retains its context).
public final class TLSServerContext: @unchecked Sendable {
    // Safety: every stored property is a `let` set in init and never mutated; OpenSSL documents SSL_CTX as safe to
    // share between threads once configured (SSL_new, the session cache and ticket keys take their own locks).
    // The callbacks only read `callbackState`, which is equally immutable.

    /// The first certificate's context; every connection starts on it (and keeps its session cache and ticket
    /// keys even when SNI moves it to another certificate).
    let defaultContext: OpaquePointer
    private let contexts: [OpaquePointer]
    /// Each context's certificate names, read once at load: `covers(host:on:)` answers from them.
    private let certificateNames: [CertificateNames]
    /// Per configured certificate, in order: whether it was within its validity period when loaded.
    public let certificateValidity: [TLSCertificateValidity]
    /// Per certificate entry, in order: whether no client can ever be given it. It names no domain an earlier
    /// certificate of its key type does not serve already, and it is not the first (the one a client without SNI
    /// gets). Loaded all the same; `check` says so.
    public let certificateNeverChosen: [Bool]
    private let callbackState: ServerCallbackState

    /// The ALPN protocols offered, in preference order.
    public let alpnProtocols: [String]
    /// Every host name routed by SNI, lower-cased, in certificate order (wildcards included as `*.suffix`).
    public let serverNames: [String]

    /// Loads every certificate and key, checks that each key matches its certificate, and builds the contexts.
    /// - Throws: `TLSConfigurationError` naming the file and OpenSSL's reason.
    public init(configuration: TLSServerConfiguration) throws(TLSConfigurationError) {
        guard !configuration.certificates.isEmpty else {
            throw TLSConfigurationError("a TLS listener needs at least one certificate")
        }
        guard configuration.minimumVersion <= configuration.maximumVersion else {
            throw TLSConfigurationError("TLS minimum version is above the maximum version")
        }
        let alpnWire = try encodeALPN(configuration.alpnProtocols)

        var contexts: [OpaquePointer] = []
        var certificateNames: [CertificateNames] = []
        var certificateValidity: [TLSCertificateValidity] = []
        var neverChosen: [Bool] = []
        var exact: [String: OpaquePointer] = [:]
        var wildcard: [String: OpaquePointer] = [:]
        var names: [String] = []
        // The key types (EVP_PKEY_RSA, EVP_PKEY_EC...) each context serves, aligned with `contexts`.
        var keyTypes: [[Int32]] = []
        do throws(TLSConfigurationError) {
            for entry in configuration.certificates {
                // A certificate with another key type for names an earlier one already serves joins that one's
                // context: OpenSSL keeps a certificate per key type and picks by what the client can verify, so
                // an ECDSA and an RSA certificate for one name serve ECDSA clients and RSA-only ones (TLS 1.2
                // clients offering only TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, which RFC 9113 §9.2.2 makes the
                // suite every HTTP/2 deployment supports). Alone, the second would never be chosen.
                // Read once: the joining decision and the load both use it.
                let chain = try PEMLoader.certificates(from: entry.certificate)
                defer { chain.forEach { X509_free($0) } }
                let leaf = (
                    keyType: X509_get0_pubkey(chain[0]).map { EVP_PKEY_get_base_id($0) } ?? 0,
                    names: CertificateNames(certificate: chain[0])
                )
                let wanted = entry.domains.isEmpty ? leaf.names.dnsNames : entry.domains.map(normalizedHostName)
                if let joined = Self.contextServingAll(wanted, exact: exact, wildcard: wildcard, contexts: contexts),
                    !keyTypes[joined].contains(leaf.keyType)
                {
                    // Every name is served already, by `joined`, which this certificate covers as well (checked).
                    for domain in wanted where !Self.isCovered(domain, by: leaf.names) {
                        throw TLSConfigurationError(
                            "certificate \(entry.certificate.displayName) does not cover domain '\(domain)'")
                    }
                    let validity = try Self.loadCertificate(entry, chain: chain, into: contexts[joined])
                    keyTypes[joined].append(leaf.keyType)
                    certificateValidity.append(validity)
                    neverChosen.append(false)
                    continue
                }
                let context = try makeBaseContext(
                    method: TLS_server_method(), minimum: configuration.minimumVersion,
                    maximum: configuration.maximumVersion)
                contexts.append(context)
                keyTypes.append([leaf.keyType])
                let covered = leaf.names
                let validity = try Self.loadCertificate(entry, chain: chain, into: context)
                certificateNames.append(covered)
                certificateValidity.append(validity)
                let domains = entry.domains.isEmpty ? covered.dnsNames : entry.domains.map(normalizedHostName)
                let namesBefore = names.count
                defer { neverChosen.append(contexts.count > 1 && names.count == namesBefore) }
                for domain in domains {
                    guard Self.isCovered(domain, by: covered) else {
                        throw TLSConfigurationError(
                            "certificate \(entry.certificate.displayName) does not cover domain '\(domain)'")
                    }
                    // First certificate listing a name wins; later duplicates are ignored.
                    if domain.hasPrefix("*.") {
                        let suffix = String(domain.dropFirst(2))
                        if wildcard[suffix] == nil {
                            wildcard[suffix] = context
                            names.append(domain)
                        }
                    } else if exact[domain] == nil {
                        exact[domain] = context
                        names.append(domain)
                    }
                }
            }
        } catch {
            contexts.forEach { SSL_CTX_free($0) }
            throw error
        }

        let state = ServerCallbackState(exact: exact, wildcard: wildcard, alpnWire: alpnWire)
        for (index, context) in contexts.enumerated() {
            // One session ID context per certificate, for connections without SNI; a connection that names a
            // server gets one per name in `selectCertificateEarly`. OpenSSL resumes a session (ID or ticket) only
            // within the context that made it, so a session set up under one name is not resumed under another
            // (RFC 6066 §3 MUST NOT); such a client gets a full handshake and the certificate it asked for.
            let sessionContext = Array("myorg-gateway/\(index)".utf8)
            _ = SSL_CTX_set_session_id_context(context, sessionContext, UInt32(sessionContext.count))
            _ = cshim_SSL_CTX_set_session_cache_mode(context, Int(SSL_SESS_CACHE_SERVER))
            _ = cshim_SSL_CTX_sess_set_cache_size(context, configuration.sessionCacheSize)
            // Safety: unretained; `self.callbackState` keeps the object alive as long as the contexts, and every
            // SSL that can call back holds the TLSServerContext through its engine.
            let arg = Unmanaged.passUnretained(state).toOpaque()
            // The ALPN callback runs on the context SNI selected, so every context carries it.
            if !alpnWire.isEmpty {
                SSL_CTX_set_alpn_select_cb(context, selectALPN, arg)
            }
        }
        let defaultIndex =
            configuration.defaultServerName.flatMap { host in
                certificateNames.firstIndex { $0.covers(host: normalizedHostName(host)) }
            } ?? 0
        // The certificate is chosen from the ClientHello, before OpenSSL looks for a session to resume, so the
        // session ID context above is the chosen certificate's when it does. (OpenSSL runs the callback of the
        // context the SSL was created from: the default one.)
        // Safety: as for the ALPN argument above.
        SSL_CTX_set_client_hello_cb(
            contexts[defaultIndex], selectCertificateEarly, Unmanaged.passUnretained(state).toOpaque())

        self.defaultContext = contexts[defaultIndex]
        self.contexts = contexts
        self.certificateNames = certificateNames
        self.certificateValidity = certificateValidity
        self.certificateNeverChosen = neverChosen
        self.callbackState = state
        self.alpnProtocols = configuration.alpnProtocols
        self.serverNames = names
    }

    /// Convenience for the common case.
    public convenience init(
        certificates: [TLSCertificateEntry], alpnProtocols: [String] = ["h2", "http/1.1"]
    ) throws(TLSConfigurationError) {
        try self.init(
            configuration: TLSServerConfiguration(certificates: certificates, alpnProtocols: alpnProtocols))
    }

    deinit {
        contexts.forEach { SSL_CTX_free($0) }
    }

    /// Whether any of this listener's certificates covers `host` (lower-case), as a client would match it.
    public func someCertificateCovers(host: String) -> Bool {
        certificateNames.contains { $0.covers(host: host) }
    }

    /// Whether the certificate of `context` (one of this listener's) covers `host`, as a client would match it.
    func covers(host: String, on context: OpaquePointer?) -> Bool {
        guard let index = contexts.firstIndex(where: { $0 == context }) else { return false }
        return certificateNames[index].covers(host: host)
    }

    /// Whether a certificate with `names` serves `domain`: a wildcard domain only by the same wildcard name.
    private static func isCovered(_ domain: String, by names: CertificateNames) -> Bool {
        domain.hasPrefix("*.") ? names.dnsNames.contains(domain) : names.covers(host: domain)
    }

    /// The index of the one context that already serves every name of `domains`, if there is one.
    private static func contextServingAll(
        _ domains: [String], exact: [String: OpaquePointer], wildcard: [String: OpaquePointer],
        contexts: [OpaquePointer]
    ) -> Int? {
        var serving: OpaquePointer?
        for domain in domains {
            let context = domain.hasPrefix("*.") ? wildcard[String(domain.dropFirst(2))] : exact[domain]
            guard let context, serving == nil || serving == context else { return nil }
            serving = context
        }
        return serving.flatMap { contexts.firstIndex(of: $0) }
    }

    /// Loads `chain` (read from `entry`, leaf first; the caller frees it) and `entry`'s key into `context`, and
    /// returns whether the leaf is within its validity period.
    private static func loadCertificate(
        _ entry: TLSCertificateEntry, chain: [OpaquePointer], into context: OpaquePointer
    ) throws(TLSConfigurationError) -> TLSCertificateValidity {
        let validity: TLSCertificateValidity =
            if X509_cmp_current_time(X509_get0_notAfter(chain[0])) < 0 {
                .expired
            } else if X509_cmp_current_time(X509_get0_notBefore(chain[0])) > 0 {
                .notYetValid
            } else {
                .current
            }
        guard SSL_CTX_use_certificate(context, chain[0]) == 1 else {
            let reason = OpenSSLErrorQueue.drainReasons() ?? "rejected"
            throw TLSConfigurationError("cannot use certificate \(entry.certificate.displayName): \(reason)")
        }
        for intermediate in chain.dropFirst() {
            // add0 takes ownership only on success; up-ref first so the deferred free stays balanced.
            _ = X509_up_ref(intermediate)
            guard cshim_SSL_CTX_add0_chain_cert(context, intermediate) == 1 else {
                X509_free(intermediate)
                let reason = OpenSSLErrorQueue.drainReasons() ?? "rejected"
                throw TLSConfigurationError(
                    "cannot use the chain of certificate \(entry.certificate.displayName): \(reason)")
            }
        }
        let key = try PEMLoader.privateKey(from: entry.privateKey)
        defer { EVP_PKEY_free(key) }
        guard SSL_CTX_use_PrivateKey(context, key) == 1, SSL_CTX_check_private_key(context) == 1 else {
            let reason = OpenSSLErrorQueue.drainReasons() ?? "mismatch"
            throw TLSConfigurationError(
                "certificate \(entry.certificate.displayName) and private key \(entry.privateKey.displayName) "
                    + "do not match: \(reason)")
        }
        return validity
    }
}

/// What the server callbacks read, reached through their `arg` pointer.
final class ServerCallbackState: @unchecked Sendable {
    // Safety: immutable after init; the pointers are SSL_CTXs owned by the TLSServerContext that owns this
    // object, and outlive every SSL that can call back (each engine retains the TLSServerContext).
    let exact: [String: OpaquePointer]
    let wildcard: [String: OpaquePointer]
    let alpnWire: [UInt8]

    init(exact: [String: OpaquePointer], wildcard: [String: OpaquePointer], alpnWire: [UInt8]) {
        self.exact = exact
        self.wildcard = wildcard
        self.alpnWire = alpnWire
    }

    func context(forServerName name: String) -> OpaquePointer? {
        let host = normalizedHostName(name)
        if let context = exact[host] { return context }
        guard let dot = host.firstIndex(of: ".") else { return nil }
        return wildcard[String(host[host.index(after: dot)...])]
    }
}

/// The client_hello callback: reads the server_name extension (RFC 6066 §3: a list of `name_type`, 16-bit length,
/// name) and moves the connection to that name's certificate before session resumption is considered.
private let selectCertificateEarly:
    @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32 = {
        ssl, _, arg in
        guard let ssl, let arg else { return 1 }
        var data: UnsafePointer<UInt8>? = nil
        var length = 0
        guard SSL_client_hello_get0_ext(ssl, UInt32(TLSEXT_TYPE_server_name), &data, &length) == 1, let data,
            length >= 5
        else { return 1 }
        let listLength = Int(data[0]) << 8 | Int(data[1])
        guard listLength + 2 <= length, data[2] == UInt8(TLSEXT_NAMETYPE_host_name) else { return 1 }
        let nameLength = Int(data[3]) << 8 | Int(data[4])
        guard nameLength > 0, 5 + nameLength <= length else { return 1 }
        let name = String(decoding: UnsafeBufferPointer(start: data + 5, count: nameLength), as: UTF8.self)
        // Safety: `arg` is the ServerCallbackState registered with the context, alive while the context is.
        let state = Unmanaged<ServerCallbackState>.fromOpaque(arg).takeUnretainedValue()
        if let context = state.context(forServerName: name), context != SSL_get_SSL_CTX(ssl) {
            _ = SSL_set_SSL_CTX(ssl, context)
        }
        // A session is resumed only under the name it was made for (RFC 6066 §3 MUST NOT; RFC 8446 §4.6.1):
        // OpenSSL resumes a session (ID or ticket, TLS 1.2 and 1.3) only in the session ID context it was made in,
        // and the certificate's own context would let every name the certificate covers share it. Set after the
        // certificate switch, which resets the context to the certificate's.
        setSessionContext(ssl, serverName: normalizedHostName(name))
        return 1  // SSL_CLIENT_HELLO_SUCCESS
    }

/// Sets the connection's session ID context to a digest of `serverName` (the context holds at most 32 bytes, a
/// name up to 253).
private func setSessionContext(_ ssl: OpaquePointer, serverName: String) {
    var input = Array("myorg-gateway/sni/\(serverName)".utf8)
    var digest = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    guard EVP_Digest(&input, input.count, &digest, &length, EVP_sha256(), nil) == 1, length == 32 else {
        ERR_clear_error()
        return
    }
    _ = SSL_set_session_id_context(ssl, digest, length)
}

/// The ALPN callback: the server's first preference the client also offers. The chosen bytes point into the
/// client's list (`input`), which OpenSSL keeps alive for the handshake. No overlap is a fatal
/// `no_application_protocol` alert (RFC 7301 §3.2).
private let selectALPN:
    @convention(c) (
        OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt8>?,
        UnsafePointer<UInt8>?, UInt32, UnsafeMutableRawPointer?
    ) -> Int32 = { _, out, outLength, input, inputLength, arg in
        guard let out, let outLength, let input, let arg else { return SSL_TLSEXT_ERR_NOACK }
        // Safety: `arg` is the ServerCallbackState registered with the context, alive while the context is.
        let state = Unmanaged<ServerCallbackState>.fromOpaque(arg).takeUnretainedValue()
        let offered = UnsafeBufferPointer(start: input, count: Int(inputLength))
        return state.alpnWire.withUnsafeBufferPointer { preferred in
            var ours = 0
            while ours < preferred.count {
                let oursLength = Int(preferred[ours])
                let candidate = UnsafeBufferPointer(rebasing: preferred[(ours + 1)..<(ours + 1 + oursLength)])
                var theirs = 0
                while theirs < offered.count {
                    let theirsLength = Int(offered[theirs])
                    let end = theirs + 1 + theirsLength
                    guard end <= offered.count else { return SSL_TLSEXT_ERR_ALERT_FATAL }
                    if theirsLength == oursLength
                        && memcmp(offered.baseAddress! + theirs + 1, candidate.baseAddress!, oursLength) == 0
                    {
                        out.pointee = offered.baseAddress! + theirs + 1
                        outLength.pointee = UInt8(theirsLength)
                        return SSL_TLSEXT_ERR_OK
                    }
                    theirs = end
                }
                ours += 1 + oursLength
            }
            return SSL_TLSEXT_ERR_ALERT_FATAL
        }
    }

/// ALPN protocol names in wire format (length-prefixed).
func encodeALPN(_ protocols: [String]) throws(TLSConfigurationError) -> [UInt8] {
    var wire: [UInt8] = []
    for name in protocols {
        let bytes = Array(name.utf8)
        guard (1...255).contains(bytes.count) else {
            throw TLSConfigurationError("ALPN protocol name '\(name)' must be 1 to 255 bytes")
        }
        wire.append(UInt8(bytes.count))
        wire.append(contentsOf: bytes)
    }
    return wire
}

/// TLS 1.2 ciphers: forward-secret key exchange (ECDHE) with AEAD only. TLS 1.3 suites are all AEAD and keep
/// OpenSSL's defaults.
let modernTLS12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/// A context with the settings client and server share: versions, ciphers, no compression or renegotiation,
/// and the buffer modes the engine relies on.
func makeBaseContext(
    method: OpaquePointer?, minimum: TLSProtocolVersion, maximum: TLSProtocolVersion
) throws(TLSConfigurationError) -> OpaquePointer {
    guard let context = SSL_CTX_new(method) else {
        let reason = OpenSSLErrorQueue.drainReasons() ?? "out of memory"
        throw TLSConfigurationError("cannot create a TLS context: \(reason)")
    }
    guard cshim_SSL_CTX_set_min_proto_version(context, minimum.openSSLValue) == 1,
        cshim_SSL_CTX_set_max_proto_version(context, maximum.openSSLValue) == 1,
        SSL_CTX_set_cipher_list(context, modernTLS12Ciphers) == 1
    else {
        let reason = OpenSSLErrorQueue.drainReasons() ?? "rejected"
        SSL_CTX_free(context)
        throw TLSConfigurationError("cannot configure a TLS context: \(reason)")
    }
    _ = SSL_CTX_set_options(context, cshim_SSL_OP_NO_COMPRESSION() | cshim_SSL_OP_NO_RENEGOTIATION())
    // Partial writes and a moving buffer let the engine hand SSL_write slices of an outbound queue. No
    // SSL_MODE_RELEASE_BUFFERS: it frees and reallocates the 17 KB record buffers on every record read or written
    // (a malloc and a free of each per request, about 1.3k instructions of an HTTP/1.1 request); a connection that
    // goes quiet gives them back through `TLSEngine.releaseIdleBuffers` instead.
    let modes = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
    _ = cshim_SSL_CTX_set_mode(context, Int(modes))
    return context
}
