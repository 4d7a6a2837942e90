import COpenSSL
import Synchronization

/// How the gateway connects to its upstream over TLS.
public struct TLSClientConfiguration: Sendable, Equatable {
    /// Which certificate authorities the client trusts.
    public enum TrustRoots: Sendable, Equatable {
        /// The system store (`SSL_CTX_set_default_verify_paths`: OpenSSL's directory, `SSL_CERT_FILE`, ...).
        case system
        /// A PEM file of CA certificates.
        case caFile(String)
        /// CA certificates as PEM text (development CA, tests).
        case caPEM(String)
    }

    public var trustRoots: TrustRoots
    /// ALPN protocols offered. The upstream is HTTP/1.1, so that is all the gateway offers by default.
    public var alpnProtocols: [String]
    public var minimumVersion: TLSProtocolVersion
    public var maximumVersion: TLSProtocolVersion
    /// Keep the last session per host name and offer it on the next connection to that host.
    public var reusesSessions: Bool

    public init(
        trustRoots: TrustRoots = .system,
        alpnProtocols: [String] = ["http/1.1"],
        minimumVersion: TLSProtocolVersion = .tls12,
        maximumVersion: TLSProtocolVersion = .tls13,
        reusesSessions: Bool = true
    ) {
        self.trustRoots = trustRoots
        self.alpnProtocols = alpnProtocols
        self.minimumVersion = minimumVersion
        self.maximumVersion = maximumVersion
        self.reusesSessions = reusesSessions
    }
}

/// The client side's OpenSSL configuration for upstream connections: chain verification against a trust store,
/// host-name verification, SNI, ALPN, and session reuse per host.
///
/// Shared by every loop. The only mutable part is the session cache, behind a mutex taken once per new
/// connection and once per session ticket received.
public final class TLSClientContext: @unchecked Sendable {
    // Safety: `context` is configured in init and only used for SSL_new afterwards, which OpenSSL allows from
    // any thread; `sessions` synchronises itself.
    let context: OpaquePointer
    let sessions: TLSClientSessionCache?
    public let alpnProtocols: [String]

    /// - Throws: `TLSConfigurationError` when the trust store cannot be loaded.
    public init(configuration: TLSClientConfiguration = TLSClientConfiguration()) throws(TLSConfigurationError) {
        guard configuration.minimumVersion <= configuration.maximumVersion else {
            throw TLSConfigurationError("TLS minimum version is above the maximum version")
        }
        let alpnWire = try encodeALPN(configuration.alpnProtocols)
        let context = try makeBaseContext(
            method: TLS_client_method(), minimum: configuration.minimumVersion, maximum: configuration.maximumVersion)
        do throws(TLSConfigurationError) {
            try Self.loadTrustRoots(configuration.trustRoots, into: context)
            if !alpnWire.isEmpty, SSL_CTX_set_alpn_protos(context, alpnWire, UInt32(alpnWire.count)) != 0 {
                // Unlike most of OpenSSL, this one returns 0 on success.
                let reason = OpenSSLErrorQueue.drainReasons() ?? "rejected"
                throw TLSConfigurationError("cannot set ALPN protocols: \(reason)")
            }
        } catch {
            SSL_CTX_free(context)
            throw error
        }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        if configuration.reusesSessions {
            // OpenSSL's internal store keys client sessions by nothing useful; the callback hands each new session
            // (TLS 1.2 at handshake end, TLS 1.3 per ticket) to our per-host cache instead.
            _ = cshim_SSL_CTX_set_session_cache_mode(
                context, Int(SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE))
            SSL_CTX_sess_set_new_cb(context, storeNewSession)
            sessions = TLSClientSessionCache()
        } else {
            _ = cshim_SSL_CTX_set_session_cache_mode(context, Int(SSL_SESS_CACHE_OFF))
            sessions = nil
        }
        self.context = context
        self.alpnProtocols = configuration.alpnProtocols
    }

    deinit {
        SSL_CTX_free(context)
    }

    /// Forgets the cached session for `host` (for example after the upstream's certificate changed).
    public func forgetSession(forHost host: String) {
        sessions?.remove(key: normalizedHostName(host))
    }

    private static func loadTrustRoots(_ roots: TLSClientConfiguration.TrustRoots, into context: OpaquePointer)
        throws(TLSConfigurationError)
    {
        switch roots {
        case .system:
            guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                let reason = OpenSSLErrorQueue.drainReasons() ?? "unavailable"
                throw TLSConfigurationError("cannot load the system trust store: \(reason)")
            }
        case .caFile(let path):
            // Parsed here (not by SSL_CTX_load_verify_locations) so an empty or non-PEM file is an error too.
            try addCertificates(from: .file(path), to: context)
        case .caPEM(let text):
            try addCertificates(from: .pem(text), to: context)
        }
    }

    private static func addCertificates(from source: TLSPEMSource, to context: OpaquePointer)
        throws(TLSConfigurationError)
    {
        let certificates = try PEMLoader.certificates(from: source, what: "CA certificates")
        defer { certificates.forEach { X509_free($0) } }
        let store = SSL_CTX_get_cert_store(context)
        for certificate in certificates where X509_STORE_add_cert(store, certificate) != 1 {
            let reason = OpenSSLErrorQueue.drainReasons() ?? "rejected"
            throw TLSConfigurationError("cannot add CA certificate from \(source.displayName): \(reason)")
        }
    }
}

/// The last resumable session per upstream host.
final class TLSClientSessionCache: Sendable {
    /// Far above the number of upstream hosts a configuration names; only a bound against misuse.
    static let capacity = 256

    /// One counted reference to an SSL_SESSION.
    private struct Session: @unchecked Sendable {
        // Safety: a resumable SSL_SESSION is not modified once cached, OpenSSL reference-counts it atomically, and
        // SSL_set_session may be called for it from any thread.
        let pointer: OpaquePointer
    }

    private struct Entries: ~Copyable {
        var sessions: [String: Session] = [:]

        deinit {
            for session in sessions.values { SSL_SESSION_free(session.pointer) }
        }
    }

    private let entries = Mutex(Entries())

    /// Keeps `session` (whose reference the caller transfers) as the one to offer to `key`.
    func store(_ session: OpaquePointer, key: String) {
        let new = Session(pointer: session)
        let replaced: [Session] = entries.withLock { entries in
            var replaced: [Session] = []
            if entries.sessions[key] == nil, entries.sessions.count >= Self.capacity,
                let victim = entries.sessions.keys.first, let old = entries.sessions.removeValue(forKey: victim)
            {
                replaced.append(old)
            }
            if let old = entries.sessions.updateValue(new, forKey: key) { replaced.append(old) }
            return replaced
        }
        replaced.forEach { SSL_SESSION_free($0.pointer) }
    }

    /// Offers the cached session for `key` to `ssl` (which takes its own reference).
    func apply(key: String, to ssl: OpaquePointer) {
        let session: Session? = entries.withLock { entries in
            guard let session = entries.sessions[key] else { return nil }
            // A session whose connection failed was marked unusable by OpenSSL: drop it rather than offer it.
            guard SSL_SESSION_is_resumable(session.pointer) == 1 else {
                entries.sessions[key] = nil
                SSL_SESSION_free(session.pointer)
                return nil
            }
            // Take a reference under the lock, so a concurrent `store` cannot free it before SSL_set_session.
            _ = SSL_SESSION_up_ref(session.pointer)
            return session
        }
        if let session {
            _ = SSL_set_session(ssl, session.pointer)
            SSL_SESSION_free(session.pointer)
        }
    }

    func remove(key: String) {
        let removed = entries.withLock { $0.sessions.removeValue(forKey: key) }
        if let removed { SSL_SESSION_free(removed.pointer) }
    }
}

/// The new-session callback: files the session under the engine's host. Returning 1 keeps OpenSSL's reference.
private let storeNewSession: @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32 = { ssl, session in
    guard let ssl, let session, SSL_SESSION_is_resumable(session) == 1,
        let engine = TLSEngine.engine(of: ssl), let cache = engine.clientSessions, let key = engine.sessionKey
    else { return 0 }
    cache.store(session, key: key)
    return 1
}
