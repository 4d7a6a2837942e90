import COpenSSL

/// The outcome of a handshake or shutdown step.
public enum TLSStepResult: Sendable, Equatable {
    /// The step needs bytes from the peer: send `pendingNetworkBytes`, feed what arrives, call again.
    case incomplete
    case complete
    case failed(TLSError)
}

/// The outcome of `readPlaintext`.
public enum TLSReadResult: Sendable, Equatable {
    /// Everything the buffered ciphertext held has been read; more needs `feedNetwork`.
    case needsNetworkBytes
    /// The read stopped at the caller's limit; more plaintext may already be buffered. Call again when there is
    /// room, without waiting for the socket (it may never become readable again for bytes already received).
    case limitReached
    /// The peer sent close_notify: no more plaintext will come. Bytes read before it were delivered.
    case closed
    case failed(TLSError)
}

/// The outcome of `writePlaintext`.
public enum TLSWriteResult: Sendable, Equatable {
    /// This many leading bytes were encrypted into the network buffer (possibly 0: drain the network first).
    /// The rest must be offered again, starting with the very next `writePlaintext` call.
    case accepted(Int)
    case failed(TLSError)
}

/// One TLS connection as a sans-I/O state machine: one `SSL*` between two in-memory BIOs. The caller owns the socket
/// and moves ciphertext in and out; the engine never blocks and never touches a file descriptor.
///
/// Confinement: not Sendable. Create, use and release it on one event-loop queue; OpenSSL's per-thread error
/// queue is cleared before every method returns a failure, so no stale error reaches another connection.
///
/// Call order:
/// 1. `init(server:)` or `init(client:serverName:)`.
/// 2. Handshake: a client calls `handshake()` first (it produces the ClientHello). Then, whenever ciphertext
///    arrives, `feedNetwork(_:)` and `handshake()`; after every call, send what `sendNetwork(_:)` (or
///    `drainNetwork(into:)`) offers. Repeat until `.complete` or `.failed`. On `.failed`, still send the pending
///    bytes (they hold the alert), then close. `withNetworkInput(_:_:)` is `feedNetwork` without the copy.
/// 3. Data: `feedNetwork(_:)` then `readPlaintext(into:)` until `.needsNetworkBytes` (also right after the
///    handshake completes: the peer's first data may have arrived with its last handshake message);
///    `writePlaintext(_:)` for outbound data, keeping what was not accepted at the front of the outbound queue.
///    Reading can produce network bytes too (TLS 1.3 key updates, session tickets): drain after every call.
/// 4. Close: `shutdown()` queues close_notify; send it, then close the socket. If the peer closes first,
///    `readPlaintext` returns `.closed`; answer with `shutdown()`. A TCP EOF without close_notify is reported by
///    `noteNetworkEOF()` then `readPlaintext`, as a truncation `.failed`.
public final class TLSEngine {
    private enum State {
        case handshaking
        case established
        case failed(TLSError)
    }

    /// The high-water mark above which `writePlaintext` accepts nothing until the network buffer is drained.
    public static let defaultOutboundHighWaterMark = 64 * 1024
    /// The largest TLS record's plaintext; the unit `writePlaintext` grants when it has any room at all.
    static let recordSize = 16 * 1024
    /// The stack buffer the `[UInt8]` conveniences copy through: a few records per OpenSSL round trip.
    static let scratchSize = 64 * 1024

    private let ssl: OpaquePointer
    /// Ciphertext from the peer; SSL reads it through its read BIO.
    private let networkInput: NetworkBuffer
    /// Ciphertext for the peer; SSL writes it through its write BIO.
    private let networkOutput: NetworkBuffer
    /// Keeps the SSL_CTXs and the callback state alive for as long as the SSL may call back.
    private let context: AnyObject
    let clientSessions: TLSClientSessionCache?
    let sessionKey: String?

    private var state: State = .handshaking
    /// The length of an SSL_write that must be retried: OpenSSL requires at least this many of the same bytes.
    private var pendingWriteLength = 0
    private let outboundHighWaterMark: Int

    /// Whether this is the server side of the connection.
    public let isServer: Bool

    /// A server-side connection, starting on the context's default certificate (SNI may switch it).
    public init(server: TLSServerContext, outboundHighWaterMark: Int = TLSEngine.defaultOutboundHighWaterMark) {
        let (input, output) = (NetworkBuffer(), NetworkBuffer())
        (networkInput, networkOutput) = (input, output)
        ssl = Self.makeSSL(server.defaultContext, input: input, output: output)
        context = server
        clientSessions = nil
        sessionKey = nil
        isServer = true
        self.outboundHighWaterMark = max(outboundHighWaterMark, 1)
        SSL_set_accept_state(self.ssl)
    }

    /// A client-side connection to `serverName`, a DNS name or an IP literal: the peer's certificate must be
    /// valid for it. DNS names are sent as SNI; IP literals are not (RFC 6066 §3). A session cached for this host
    /// is offered for resumption.
    /// - Throws: `TLSError` of kind `.misuse` when OpenSSL refuses the name.
    public init(
        client: TLSClientContext, serverName: String,
        outboundHighWaterMark: Int = TLSEngine.defaultOutboundHighWaterMark
    ) throws(TLSError) {
        let host = normalizedHostName(serverName)
        let (input, output) = (NetworkBuffer(), NetworkBuffer())
        (networkInput, networkOutput) = (input, output)
        ssl = Self.makeSSL(client.context, input: input, output: output)
        context = client
        clientSessions = client.sessions
        sessionKey = host
        isServer = false
        self.outboundHighWaterMark = max(outboundHighWaterMark, 1)
        SSL_set_connect_state(self.ssl)
        let isIP = isIPAddressLiteral(host)
        // "*.example.com" matches, "w*.example.com" does not (RFC 6125 §7.2 leaves partial wildcards optional).
        SSL_set_hostflags(self.ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
        guard !host.isEmpty, SSL_set1_host(self.ssl, host) == 1,
            isIP || cshim_SSL_set_tlsext_host_name(self.ssl, host) == 1
        else {
            let reason = OpenSSLErrorQueue.drainReasons() ?? "rejected"
            throw TLSError(kind: .misuse, reason: "invalid server name '\(serverName)': \(reason)")
        }
        if let sessions = client.sessions {
            // Safety: unretained, since the engine owns the SSL: the pointer cannot outlive the engine, and the
            // new-session callback that reads it runs inside this engine's own calls into OpenSSL.
            _ = SSL_set_ex_data(self.ssl, engineIndex, Unmanaged.passUnretained(self).toOpaque())
            sessions.apply(key: host, to: self.ssl)
        }
    }

    deinit {
        if case .established = state {
            // OpenSSL invalidates the session of a connection freed without close_notify, as if it had been cut
            // off by an attack. A healthy connection closed quietly (idle timeout, pool trim) keeps its session
            // resumable, as nginx does; failed connections are still invalidated.
            SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN)
        }
        // SSL_free frees both BIOs, which SSL_set_bio handed to it.
        SSL_free(ssl)
    }

    private static func makeSSL(_ context: OpaquePointer, input: NetworkBuffer, output: NetworkBuffer)
        -> OpaquePointer
    {
        guard let ssl = SSL_new(context) else {
            // Only allocation failure gets here; there is no connection to report it on.
            fatalError("OpenSSL could not allocate a connection")
        }
        SSL_set_bio(ssl, input.makeBIO(), output.makeBIO())
        return ssl
    }

    /// The engine an SSL belongs to, for OpenSSL callbacks (set only on clients that cache sessions).
    static func engine(of ssl: OpaquePointer) -> TLSEngine? {
        guard let pointer = SSL_get_ex_data(ssl, engineIndex) else { return nil }
        // Safety: set in init(client:) to this SSL's owning engine, which is alive while its SSL calls back.
        return Unmanaged<TLSEngine>.fromOpaque(pointer).takeUnretainedValue()
    }

    // MARK: Network side

    /// Hands ciphertext received from the socket to the engine (copied into its input buffer).
    public func feedNetwork(_ bytes: UnsafeRawBufferPointer) {
        networkInput.append(bytes)
    }

    /// `feedNetwork` without the copy: during `body` the engine reads `bytes` where they are (after any ciphertext
    /// fed before), and when `body` returns it keeps a copy of only what it has not read (a record's first part).
    /// The handshake and reads made in `body` see the bytes as fed.
    public func withNetworkInput<Result>(_ bytes: UnsafeRawBufferPointer, _ body: () -> Result) -> Result {
        networkInput.lend(bytes)
        defer { networkInput.endLending() }
        return body()
    }

    /// Convenience for `feedNetwork(_: UnsafeRawBufferPointer)`.
    public func feedNetwork(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { feedNetwork($0) }
    }

    /// Records that the socket reached EOF. Reads then report a missing close_notify as a truncation.
    public func noteNetworkEOF() {
        networkInput.atEOF = true
    }

    /// Frees OpenSSL's record buffers (about 34 KB) unless a record is half read or half written, and the memory
    /// of each network buffer that is empty.
    ///
    /// The buffers keep their peak size (up to the largest burst of ciphertext written or fed between drains), and
    /// OpenSSL keeps its record buffers while the connection lives: call this when the connection has gone quiet,
    /// so an idle keep-alive connection holds no buffers. Both come back on the next byte, at the cost of an
    /// allocation each, so not between the requests of a busy connection. Returns whether OpenSSL's buffers went
    /// (they stay while they hold any part of a record).
    @discardableResult
    public func releaseIdleBuffers() -> Bool {
        // SSL_free_buffers refuses while a record is half read or half written, and since OpenSSL 3.0.14 while
        // decrypted bytes wait in it (CVE-2024-4741: older versions freed them); asked first, so a build against
        // an older library is as safe.
        let released = SSL_has_pending(ssl) == 0 && SSL_free_buffers(ssl) == 1
        networkInput.releaseIfEmpty()
        networkOutput.releaseIfEmpty()
        return released
    }

    /// Bytes allocated by the input and output buffers (for tests of `releaseIdleBuffers`).
    var networkBufferCapacity: (input: Int, output: Int) {
        (networkInput.capacity, networkOutput.capacity)
    }

    /// Ciphertext waiting to be sent to the peer.
    public var pendingNetworkBytes: Int { networkOutput.count }

    /// Appends all pending ciphertext to `buffer`.
    public func drainNetwork(into buffer: inout [UInt8]) {
        sendNetwork { bytes in
            buffer.append(contentsOf: bytes)
            return bytes.count
        }
    }

    /// Offers the pending ciphertext to `send` without copying it; `send` returns how many leading bytes it took
    /// (a socket write that took part of them, or none).
    public func sendNetwork(_ send: (UnsafeRawBufferPointer) -> Int) {
        networkOutput.consume(send)
    }

    // MARK: Handshake

    /// Advances the handshake. See the type's call order.
    public func handshake() -> TLSStepResult {
        switch state {
        case .established: return .complete
        case .failed(let error): return .failed(error)
        case .handshaking: break
        }
        let rc = SSL_do_handshake(ssl)
        if rc == 1 {
            state = .established
            return .complete
        }
        let code = SSL_get_error(ssl, rc)
        if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE {
            return .incomplete
        }
        return .failed(fail(kind: .handshakeFailed, code: code))
    }

    /// Whether the handshake has completed (and no failure happened since).
    public var isEstablished: Bool {
        if case .established = state { return true }
        return false
    }

    // MARK: Application data

    /// Decrypts buffered records into `buffer` until it is full or the engine needs more ciphertext.
    /// Returns the number of bytes written at the front of `buffer` and why the read stopped.
    /// Before the handshake has completed this advances it, and reads nothing until it has.
    public func readPlaintext(into buffer: UnsafeMutableRawBufferPointer) -> (count: Int, result: TLSReadResult) {
        switch state {
        case .failed(let error): return (0, .failed(error))
        case .established: break
        case .handshaking:
            switch handshake() {
            case .complete: break
            case .incomplete: return (0, .needsNetworkBytes)
            case .failed(let error): return (0, .failed(error))
            }
        }
        guard let base = buffer.baseAddress else { return (0, .limitReached) }
        var total = 0
        // SSL_read returns at most one record per call, and records already inside SSL raise no socket event:
        // loop until it asks for more input.
        while total < buffer.count {
            // Nothing left to decrypt, in the input BIO or inside SSL: the call would only say WANT_READ (and
            // costs as much as a small record), so say it here.
            if total > 0 && networkInput.count == 0 && SSL_has_pending(ssl) == 0 {
                return (total, .needsNetworkBytes)
            }
            var read = 0
            if SSL_read_ex(ssl, base + total, buffer.count - total, &read) == 1 {
                total += read
                continue
            }
            let code = SSL_get_error(ssl, 0)
            switch code {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                return (total, .needsNetworkBytes)
            case SSL_ERROR_ZERO_RETURN:
                ERR_clear_error()
                return (total, .closed)
            default:
                return (total, .failed(fail(kind: .protocolError, code: code)))
            }
        }
        return (total, .limitReached)
    }

    /// Appends decrypted plaintext to `buffer`, at most `maxBytes`, until the engine needs more ciphertext.
    /// See `readPlaintext(into: UnsafeMutableRawBufferPointer)`.
    public func readPlaintext(into buffer: inout [UInt8], maxBytes: Int = .max) -> TLSReadResult {
        guard maxBytes > 0 else { return .limitReached }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: min(maxBytes, Self.scratchSize)) { scratch in
            var remaining = maxBytes
            while remaining > 0 {
                let want = min(remaining, scratch.count)
                let (count, result) = readPlaintext(
                    into: UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: scratch[..<want])))
                buffer.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[..<count]))
                remaining -= count
                guard case .limitReached = result else { return result }
            }
            return .limitReached
        }
    }

    /// Encrypts a prefix of `bytes` into the network buffer and returns how much it took.
    ///
    /// It takes nothing while more than the high-water mark of ciphertext waits to be sent, and otherwise at
    /// least one record's worth, so a caller that drains after every call makes progress and memory stays bounded.
    /// Bytes not accepted must be offered again, first, on the next call (an interrupted SSL_write has to be
    /// retried with at least the same bytes). Before the handshake has completed this advances it and accepts
    /// nothing until it has.
    public func writePlaintext(_ bytes: UnsafeRawBufferPointer) -> TLSWriteResult {
        switch state {
        case .failed(let error): return .failed(error)
        case .established: break
        case .handshaking:
            switch handshake() {
            case .complete: break
            case .incomplete: return .accepted(0)
            case .failed(let error): return .failed(error)
            }
        }
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return .accepted(0) }
        let length: Int
        if pendingWriteLength > 0 {
            guard bytes.count >= pendingWriteLength else {
                return .failed(
                    fail(kind: .misuse, reason: "a retried write must offer the bytes of the interrupted one"))
            }
            length = pendingWriteLength
        } else {
            let room = outboundHighWaterMark - pendingNetworkBytes
            guard room > 0 else { return .accepted(0) }
            length = min(bytes.count, max(room, Self.recordSize))
        }
        // In partial-write mode SSL_write returns after each record; loop to take the whole grant.
        var total = 0
        while total < length {
            var written = 0
            if SSL_write_ex(ssl, base + total, length - total, &written) == 1 {
                pendingWriteLength = 0
                total += written
                continue
            }
            let code = SSL_get_error(ssl, 0)
            if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE {
                pendingWriteLength = length - total
                return .accepted(total)
            }
            return .failed(fail(kind: .protocolError, code: code))
        }
        return .accepted(total)
    }

    /// Convenience for `writePlaintext(_: UnsafeRawBufferPointer)`.
    public func writePlaintext(_ bytes: [UInt8]) -> TLSWriteResult {
        bytes.withUnsafeBytes { writePlaintext($0) }
    }

    // MARK: Closing

    /// Queues close_notify. `.incomplete`: sent, the peer's close_notify has not arrived (closing the socket now
    /// is fine for a server). `.complete`: both sides have sent it, or the handshake never finished (nothing is
    /// sent then).
    public func shutdown() -> TLSStepResult {
        switch state {
        case .failed(let error): return .failed(error)
        case .handshaking: return .complete
        case .established: break
        }
        let rc = SSL_shutdown(ssl)
        if rc == 1 { return .complete }
        if rc == 0 { return .incomplete }
        let code = SSL_get_error(ssl, rc)
        if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE {
            return .incomplete
        }
        return .failed(fail(kind: .protocolError, code: code))
    }

    // MARK: Connection facts

    /// The ALPN protocol both sides agreed on, if any.
    public var negotiatedALPN: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// The host name the client sent as SNI (server side), or the one this client sends (client side).
    public var serverName: String? {
        guard let name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) else { return nil }
        return String(cString: name)
    }

    /// "TLSv1.3" or "TLSv1.2" once the handshake has completed.
    public var protocolVersion: String {
        String(cString: SSL_get_version(ssl))
    }

    /// The cipher suite in OpenSSL's naming, such as "TLS_AES_128_GCM_SHA256"; nil before the handshake.
    public var cipherSuite: String? {
        guard let cipher = SSL_get_current_cipher(ssl), let name = SSL_CIPHER_get_name(cipher) else { return nil }
        return String(cString: name)
    }

    /// Whether the handshake resumed an earlier session.
    public var sessionReused: Bool {
        SSL_session_reused(ssl) == 1
    }

    /// The peer certificate's subject in OpenSSL's one-line form (such as "/CN=example.com"); nil without one.
    public var peerCertificateSubject: String? {
        guard let certificate = SSL_get0_peer_certificate(ssl),
            let text = X509_NAME_oneline(X509_get_subject_name(certificate), nil, 0)
        else { return nil }
        defer { cshim_OPENSSL_free(text) }
        return String(cString: text)
    }

    /// The DNS names of the peer certificate's subjectAltName, lower-cased.
    public var peerCertificateDNSNames: [String] {
        guard let certificate = SSL_get0_peer_certificate(ssl) else { return [] }
        return CertificateNames(certificate: certificate).dnsNames
    }

    /// Whether the certificate this server side presents (the one SNI chose) covers `host` (lower-case, without a
    /// port): a DNS name, one wildcard label, or an IP address SAN, as a client verifying it would match. Answered
    /// from the names the listener's context read at load; a client side covers nothing.
    public func certificateCovers(host: String) -> Bool {
        guard let server = context as? TLSServerContext else { return false }
        return server.covers(host: host, on: SSL_get_SSL_CTX(ssl))
    }

    /// The DNS names of the certificate this side presents, lower-cased: on a server, the one SNI selected.
    public var localCertificateDNSNames: [String] {
        guard let certificate = SSL_get_certificate(ssl) else { return [] }
        return CertificateNames(certificate: certificate).dnsNames
    }

    // MARK: Failure

    private func fail(kind: TLSError.Kind, code: Int32) -> TLSError {
        let verifyResult = SSL_get_verify_result(ssl)
        let error: TLSError
        let first = ERR_peek_error()
        if !isServer, verifyResult != X509_V_OK {
            let reason = String(cString: X509_verify_cert_error_string(verifyResult))
            error = TLSError(kind: .certificateVerificationFailed, reason: "certificate verify failed: \(reason)")
        } else if isServer, ERR_GET_LIB(first) == ERR_LIB_SSL, ERR_GET_REASON(first) == SSL_R_HTTP_REQUEST {
            error = TLSError(kind: .plaintextHTTP, reason: "a plain-text HTTP request instead of a TLS handshake")
        } else if let reason = OpenSSLErrorQueue.drainReasons() {
            error = TLSError(kind: kind, reason: reason)
        } else if code == SSL_ERROR_SYSCALL || code == SSL_ERROR_ZERO_RETURN {
            error = TLSError(kind: kind, reason: "the peer closed the connection without close_notify")
        } else {
            error = TLSError(kind: kind, reason: "TLS error \(code)")
        }
        ERR_clear_error()
        state = .failed(error)
        return error
    }

    private func fail(kind: TLSError.Kind, reason: String) -> TLSError {
        ERR_clear_error()
        let error = TLSError(kind: kind, reason: reason)
        state = .failed(error)
        return error
    }
}

@available(*, unavailable)
extension TLSEngine: Sendable {}

/// The SSL ex_data slot holding the owning engine (unretained: the engine owns the SSL, so it outlives it).
private let engineIndex: Int32 = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL, 0, nil, nil, nil, nil)
