import CSystemShims
import EventLoop
import TLS

/// What a transport tells its owner. All calls arrive on the transport's loop.
protocol TransportDelegate: AnyObject {
    /// The TLS handshake finished (or there is no TLS); `alpn` is the negotiated protocol, if any.
    func transportReady(alpn: String?)
    /// Plaintext arrived. The buffer is only valid during the call.
    func transportReceived(_ bytes: UnsafeRawBufferPointer)
    /// The outbound buffer fell under the low-water mark after having been over the high-water mark.
    func transportDrained()
    /// The connection is gone (peer closed, error or our own close). Called exactly once.
    func transportClosed(error: String?)
    /// The peer finished sending (a TCP FIN, or TLS close_notify) while the connection is open. True keeps it open
    /// for what is still to be written (the owner closes it when done; nothing more is read); false closes it.
    func transportPeerFinishedSending() -> Bool
    /// What to answer, in plain text, to a plain-text HTTP request that arrived where a TLS handshake was expected;
    /// nil to just close.
    func transportPlaintextHTTPAnswer() -> [UInt8]?
}

extension TransportDelegate {
    /// Only a server's client connections have anything to say to a plain-text request.
    func transportPlaintextHTTPAnswer() -> [UInt8]? { nil }
    func transportPeerFinishedSending() -> Bool { false }
}

/// A socket with optional TLS over in-memory BIOs and an outbound queue: the byte pipe under HTTP/1.1 and HTTP/2.
///
/// Loop-confined. Reads use the loop's scratch buffer, so a read costs no allocation. Writes go into `outbound`
/// (with TLS: into `plainOut`, then as ciphertext into the engine's network buffer, which the socket writes from) and
/// are flushed until the kernel says EAGAIN, then write interest waits for room.
final class Transport {
    let socket: Socket
    private let tls: TLSEngine?
    private let scratch: LoopScratch
    private var outbound = ByteQueue()
    private var plainOut = ByteQueue()
    private var flushPending = false
    private var handshaking: Bool
    private var closing = false
    /// A plain-text HTTP request arrived instead of a handshake and was answered: what follows is discarded.
    private var failedPlain = false
    private var closeAfterFlush = false
    private(set) var closed = false
    private var overHighWater = false
    private var lingering = false
    private var encrypting = false
    /// Whether bytes came in or were written since the sweeper last looked (`releaseBuffersIfQuiet`).
    private var movedSinceSweep = false
    /// Unowned, not weak: a weakly referenced object gets a side table, and then every retain and release of it
    /// (the connection objects are handed around on every request) takes the runtime's slow path. Each delegate
    /// clears this in its deinit, so the transport never reaches a freed delegate.
    unowned var delegate: (any TransportDelegate)?

    static let highWater = 256 * 1024
    /// The TLS engine takes all queued plaintext at once: the transport's own marks bound what is queued, and the
    /// close_notify that `closeGracefully` queues must come after every byte written before it.
    static let engineHighWater = Int.max
    static let lowWater = 64 * 1024

    init(socket: Socket, tls: TLSEngine?, scratch: LoopScratch) {
        self.socket = socket
        self.tls = tls
        self.scratch = scratch
        self.handshaking = tls != nil
        socket.onReadable = { [unowned self] in self.readable() }
        socket.onWritable = { [unowned self] in self.flush() }
    }

    /// Bytes the socket took, in all.
    private(set) var bytesWritten = 0

    /// Bytes the peer has acknowledged: those written less what still sits in the kernel's send queue. Unlike
    /// `bytesWritten` it moves while a slow reader drains a large send buffer (the socket is reported writable
    /// again only once about a third of it has gone). A system call: for the sweeper, not the request path.
    var bytesAcknowledged: Int {
        let queued = Int(cshim_unacknowledged_bytes(socket.fd))
        return bytesWritten &- max(0, queued)
    }
    var outboundBytes: Int { queuedBytes + plainOut.count }
    /// Bytes ready for the socket: ciphertext, or plain text without TLS (or a plain-text answer on a TLS port).
    private var queuedBytes: Int { outbound.count + (tls?.pendingNetworkBytes ?? 0) }
    var isOverHighWater: Bool { outboundBytes >= Transport.highWater }
    var negotiatedALPN: String? { tls?.negotiatedALPN }
    var serverName: String? { tls?.serverName }

    /// Whether this connection's certificate covers `host`; nil on a connection without TLS.
    func certificateCovers(host: String) -> Bool? { tls?.certificateCovers(host: host) }

    /// Starts a server-side transport on an accepted socket.
    func start() {
        socket.start()
        if tls == nil { delegate?.transportReady(alpn: nil) }
    }

    /// A client transport on a socket whose non-blocking connect is under way, with TLS (SNI and host-name
    /// verification for `origin.host`) when the origin is https. Closes the socket when TLS cannot be set up.
    static func client(fd: Int32, origin: UpstreamOrigin, context: LoopContext) throws(TLSError) -> Transport {
        let socket = Socket(fd: fd, loop: context.loop)
        var tls: TLSEngine?
        if origin.useTLS, let tlsContext = origin.tlsContext {
            do {
                tls = try TLSEngine(
                    client: tlsContext, serverName: origin.host, outboundHighWaterMark: engineHighWater)
            } catch {
                socket.close()
                throw error
            }
        }
        return Transport(socket: socket, tls: tls, scratch: context.scratch)
    }

    /// Client side: waits for the TCP connect to complete, then starts TLS (or reports ready at once);
    /// `failed` gets the connect's errno. The delegate's `transportReady` marks success.
    func startConnecting(failed: @escaping (Int32) -> Void) {
        socket.onWritable = { [unowned self] in
            let err = self.socket.pendingError()
            if err != 0 {
                failed(err)
                return
            }
            self.socket.setWriteInterest(false)
            self.socket.onWritable = { [unowned self] in self.flush() }
            self.startAfterConnect()
        }
        socket.start()
        socket.setWriteInterest(true)
    }

    private func startAfterConnect() {
        if tls == nil {
            delegate?.transportReady(alpn: nil)
        } else {
            advanceHandshake()
            flush()
        }
    }

    private func readable() {
        guard !closed else { return }
        scratch.beginEvent()
        defer { scratch.endEvent() }
        // Bounded per event so one busy connection cannot starve the loop.
        for _ in 0..<16 {
            switch socket.read(into: scratch.buffer) {
            case .bytes(let n):
                movedSinceSweep = true
                if lingering || failedPlain {
                    if n < scratch.buffer.count { return }
                    continue
                }
                let bytes = UnsafeRawBufferPointer(rebasing: scratch.buffer[0..<n])
                if let tls {
                    // Lent, not copied: the engine reads the records where they were read, and keeps only a
                    // partial one (the scratch is the loop's, reused by the next read).
                    let stillHandshaking = tls.withNetworkInput(bytes) { () -> Bool in
                        if handshaking {
                            advanceHandshake()
                            if closed || handshaking { return true }
                        }
                        pumpPlaintext()
                        return false
                    }
                    // Closed (a failed handshake): not another read, whose fd number another loop may already have
                    // given to a new connection, whose first bytes it would take.
                    if closed { return }
                    if stillHandshaking { continue }
                } else {
                    delegate?.transportReceived(bytes)
                }
                if closed { return }
                // The delegate paused reading (the other side of the proxy is behind): what is still in the socket
                // waits there, instead of in a buffer that would grow by a read's worth each time round.
                if !socket.isReading { return }
                // A short read drained the socket: the read source fires again when more arrives, so the usual
                // extra read that would only say EAGAIN is skipped (one syscall per event saved).
                if n < scratch.buffer.count { return }
            case .wouldBlock:
                return
            case .eof:
                peerFinishedSending()
                return
            case .error(let code):
                finish(error: "read failed (errno \(code))")
                return
            }
        }
    }

    /// A peer may half-close after its request (RFC 9112 §9.6 closes a connection in stages; `printf … | nc` and
    /// simple HTTP/1.0 clients send their FIN with the request): the owner decides whether answers still to come
    /// keep the connection open. Reading stops either way: the end of input would be reported on every turn. A
    /// closing connection (its last answer queued, or lingering after it) ends.
    private func peerFinishedSending() {
        guard !closing, delegate?.transportPeerFinishedSending() == true else {
            finish(error: nil)
            return
        }
        socket.setReadInterest(false)
    }

    private func advanceHandshake() {
        guard let tls else { return }
        switch tls.handshake() {
        case .incomplete:
            moveCiphertext()
        case .complete:
            moveCiphertext()
            handshaking = false
            delegate?.transportReady(alpn: tls.negotiatedALPN)
            if !closed { encrypt() }
            if !closed { pumpPlaintext() }
        case .failed(let error) where error.kind == .plaintextHTTP:
            // OpenSSL sent nothing: what the client reads is the owner's plain-text answer, or a bare close.
            guard let answer = delegate?.transportPlaintextHTTPAnswer() else {
                moveCiphertext()
                finish(error: "TLS handshake failed: \(error)")
                return
            }
            failedPlain = true
            answer.withUnsafeBytes { outbound.append($0) }
            closing = true
            closeAfterFlush = true
            flush()
        case .failed(let error):
            moveCiphertext()
            finish(error: "TLS handshake failed: \(error)")
        }
    }

    private func pumpPlaintext() {
        guard let tls, !closed else { return }
        while !closed {
            let (count, result) = tls.readPlaintext(into: scratch.plaintext)
            if count > 0 {
                delegate?.transportReceived(UnsafeRawBufferPointer(rebasing: scratch.plaintext[0..<count]))
            }
            switch result {
            case .needsNetworkBytes:
                moveCiphertext()
                return
            case .limitReached:
                continue
            case .closed:
                moveCiphertext()
                peerFinishedSending()
                return
            case .failed(let error):
                finish(error: "TLS read failed: \(error)")
                return
            }
        }
    }

    /// Queues plaintext for the peer. The bytes leave when the loop finishes its current event (or sooner, at
    /// the high-water mark), so the many small writes of one response become one TLS record and one send.
    func write(_ bytes: UnsafeRawBufferPointer) {
        guard !closed, !closing else { return }
        if tls != nil {
            plainOut.append(bytes)
        } else {
            outbound.append(bytes)
        }
        wrote()
    }

    /// `write(_:)` for a buffer the caller fills again and again (HTTP/2 frames): it leaves empty, and when nothing
    /// else is queued its storage is queued as it is, without a copy.
    func write(taking bytes: inout [UInt8]) {
        guard !closed, !closing else { return }
        if tls != nil {
            plainOut.append(taking: &bytes)
        } else {
            outbound.append(taking: &bytes)
        }
        wrote()
    }

    private func wrote() {
        if outboundBytes >= Transport.highWater {
            flush()
        } else if !flushPending {
            flushPending = true
            scratch.flushSoon(self)
        }
    }

    /// Moves queued plaintext through TLS while the engine takes it (it stops taking above its own high-water
    /// mark of ciphertext, which `flush` drains).
    private func encrypt() {
        guard let tls, !handshaking else { return }
        while !plainOut.isEmpty {
            var accepted = 0
            var failure: TLSError?
            plainOut.consume { raw in
                switch tls.writePlaintext(raw) {
                case .accepted(let n): accepted = n
                case .failed(let error): failure = error
                }
                return accepted
            }
            if let failure {
                finish(error: "TLS write failed: \(failure)")
                return
            }
            if accepted == 0 { return }
        }
    }

    func write(_ bytes: [UInt8]) { bytes.withUnsafeBytes { write($0) } }

    func write(_ bytes: ArraySlice<UInt8>) { bytes.withUnsafeBytes { write($0) } }

    private func moveCiphertext() {
        guard tls != nil else { return }
        if queuedBytes > 0 { flush() }
    }

    /// Called at the start of every flush, so a protocol layer that keeps its own output (HTTP/2 frames in the
    /// session) hands it over once per flush instead of once per response event.
    var willFlush: (() -> Void)?

    /// Asks for a flush when the loop finishes the current event, with nothing new queued yet (`willFlush` will
    /// produce the bytes).
    func requestFlush() {
        guard !closed, !flushPending else { return }
        flushPending = true
        scratch.flushSoon(self)
    }

    /// Called by the loop's sweeper (every `LoopContext.sweepIntervalMs`): a TLS connection that has moved no byte
    /// since the previous sweep gives back its record and network buffers (`TLSEngine.releaseIdleBuffers`), so
    /// only connections in use hold them.
    func releaseBuffersIfQuiet() {
        defer { movedSinceSweep = false }
        guard !movedSinceSweep, !closed, !handshaking, let tls else { return }
        tls.releaseIdleBuffers()
    }

    func flush() {
        // While flushPending is still set, bytes the hook writes do not schedule another flush.
        if !closed, let willFlush { willFlush() }
        flushPending = false
        guard !closed else { return }
        if !plainOut.isEmpty && !encrypting && !handshaking {
            encrypting = true
            encrypt()
            encrypting = false
            if closed { return }
        }
        movedSinceSweep = true
        var failed: Int32? = nil
        outbound.consume { send($0, failed: &failed) }
        if failed == nil && outbound.isEmpty, let tls { tls.sendNetwork { send($0, failed: &failed) } }
        if let failed {
            finish(error: "write failed (errno \(failed))")
            return
        }
        if queuedBytes == 0 && !plainOut.isEmpty && !encrypting {
            encrypting = true
            encrypt()
            encrypting = false
            if closed { return }
            if queuedBytes > 0 {
                flush()
                return
            }
        }
        let queued = queuedBytes
        let pending = queued > 0
        socket.setWriteInterest(pending)
        if queued >= Transport.highWater {
            overHighWater = true
        } else if overHighWater && queued <= Transport.lowWater {
            overHighWater = false
            delegate?.transportDrained()
        }
        if !pending && closeAfterFlush && !lingering { startLingering() }
    }

    /// Writes `bytes` until the socket would block or fails; returns how many it took.
    private func send(_ bytes: UnsafeRawBufferPointer, failed: inout Int32?) -> Int {
        var sent = 0
        while sent < bytes.count {
            switch socket.write(UnsafeRawBufferPointer(rebasing: bytes[sent...])) {
            case .wrote(let n): sent += n
            case .wouldBlock:
                bytesWritten &+= sent
                return sent
            case .error(let code):
                failed = code
                return sent
            }
        }
        bytesWritten &+= sent
        return sent
    }

    /// Whether a TLS handshake is still under way (never for plain text).
    var isHandshaking: Bool { handshaking }

    /// Sends what is queued (and a TLS close_notify), then closes.
    func closeGracefully() {
        guard !closed, !closing else { return }
        closing = true
        closeAfterFlush = true
        if let tls {
            encrypt()
            _ = tls.shutdown()
        }
        flush()
    }

    /// After the last byte left: half-close, then read and discard until the peer closes (or 2 s pass), so
    /// unread pipelined input cannot turn our close into a reset that destroys the response in flight.
    private func startLingering() {
        lingering = true
        socket.shutdownWrite()
        // A peer that finished sending was no longer read: its end of input now ends the linger at once.
        socket.setReadInterest(true)
        scratch.linger(self, milliseconds: Transport.lingerMilliseconds)
    }

    /// How long a closing connection waits for its peer's close after its own.
    static let lingerMilliseconds = 2000

    /// Closes at once, dropping anything queued.
    func close() { finish(error: nil) }

    private func finish(error: String?) {
        guard !closed else { return }
        closed = true
        if lingering { scratch.stopLingering(self) }
        willFlush = nil
        socket.close()
        let delegate = self.delegate
        self.delegate = nil
        delegate?.transportClosed(error: error)
    }

    /// Stops or resumes reading from the peer: backpressure while the other side of the proxy catches up.
    func setReading(_ on: Bool) { socket.setReadInterest(on) }
}

/// One read buffer per loop: every connection on the loop reads into it and consumes the bytes at once.
final class LoopScratch {
    private let loop: EventLoop
    private var pendingFlushes: [Transport] = []
    private var drainScheduled = false

    private var eventDepth = 0

    /// Marks the start of a socket event's processing; writes made until `endEvent` are flushed together there.
    func beginEvent() { eventDepth += 1 }

    /// Flushes every transport written during the event once the loop's turn has handled all ready sockets.
    ///
    /// Under load several upstream responses for one client connection are ready in the same turn; flushing after
    /// all of them turns their writes into one TLS record and one send instead of one each.
    func endEvent() {
        eventDepth -= 1
        guard eventDepth == 0, !pendingFlushes.isEmpty, !drainScheduled else { return }
        drainScheduled = true
        loop.runAfterTurn { [self] in drain() }
    }

    private func drain() {
        drainScheduled = false
        eventDepth += 1
        while !pendingFlushes.isEmpty {
            let batch = pendingFlushes
            pendingFlushes.removeAll(keepingCapacity: true)
            for transport in batch { transport.flush() }
        }
        eventDepth -= 1
    }

    /// Flushes `transport` once the loop is done with the current event: at the end of the loop's turn, or (for
    /// writes from timers and other callbacks) in one dispatch.
    func flushSoon(_ transport: Transport) {
        pendingFlushes.append(transport)
        guard eventDepth == 0, !drainScheduled else { return }
        drainScheduled = true
        loop.runAfterTurn { [self] in drain() }
    }

    /// Transports that closed their side and wait for the peer's close, closed anyway when their linger is over.
    private var lingering = SweepDeadlines<Transport>()

    func linger(_ transport: Transport, milliseconds: Int) {
        lingering.insert(transport, for: ObjectIdentifier(transport), milliseconds: milliseconds)
    }

    func stopLingering(_ transport: Transport) { lingering.remove(ObjectIdentifier(transport)) }

    /// One sweep of the loop: closes the transports whose linger is over.
    func sweepLingering() {
        for transport in lingering.sweep() { transport.close() }
    }

    /// Closes every lingering transport now (the end of a shutdown).
    func closeLingering() {
        for transport in lingering.removeAll() { transport.close() }
    }

    /// Socket reads land here.
    let buffer: UnsafeMutableRawBufferPointer
    /// Decrypted plaintext lands here before it is handed to the protocol handler.
    let plaintext: UnsafeMutableRawBufferPointer

    init(loop: EventLoop, size: Int = 64 * 1024) {
        self.loop = loop
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        plaintext = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        plaintext.deallocate()
    }
}
