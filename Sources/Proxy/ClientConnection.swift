import EventLoop
import GatewayCore
import HTTP1
import Policy
import TLS

/// The listener-level settings a client connection needs; immutable, shared by all loops.
struct ListenerProfile: Sendable {
    var address: NetAddress
    var domain: String?
    var tls: TLSServerContext?
    var http1Limits: HTTP1Limits
    var headerReadTimeoutMs: Int
    var idleTimeoutMs: Int
    /// A streamed request body must arrive at least this fast on average (0: no minimum).
    var minBodyBytesPerSecond = 0
    var allowH2: Bool
}

/// One accepted client: TLS (if the listener has it), then HTTP/1.1 or HTTP/2 chosen by ALPN — or, on a plain
/// listener, by the HTTP/2 connection preface (h2c with prior knowledge).
///
/// Loop-confined; created inside `loop.execute` by the listener that accepted the fd. Timeouts are checked by the
/// loop's sweeper, once a second, against `deadlineNanos`.
final class ClientConnection: TransportDelegate {
    let transport: Transport
    let context: LoopContext
    let profile: ListenerProfile
    let handler: any RequestHandler
    let peerAddress: String
    private var protocolHandler: ProtocolHandler = .undecided
    private var sniffed: [UInt8] = []
    private(set) var deadlineNanos: Int64 = .max
    private var inFlight = 0
    let id: Int

    enum ProtocolHandler {
        case undecided
        case http1(HTTP1ServerConnection)
        case http2(HTTP2ServerConnection)
    }

    var metrics: GatewayMetrics { context.metrics }
    var isDraining: Bool { context.isDraining }

    init(
        fd: Int32, peerAddress: String, profile: ListenerProfile, handler: any RequestHandler, context: LoopContext
    ) {
        let socket = Socket(fd: fd, loop: context.loop)
        let tls = profile.tls.map { TLSEngine(server: $0, outboundHighWaterMark: Transport.engineHighWater) }
        self.transport = Transport(socket: socket, tls: tls, scratch: context.scratch)
        self.context = context
        self.profile = profile
        self.handler = handler
        self.peerAddress = peerAddress
        self.id = context.nextConnectionID()
        transport.delegate = self
        deadlineNanos = context.clock.nowNanoseconds() + Int64(profile.headerReadTimeoutMs) * 1_000_000
        headDeadlineNanos = deadlineNanos
        if profile.tls != nil { context.metrics.handshakeStarted() }
    }

    deinit { transport.delegate = nil }

    func start() {
        context.register(self)
        transport.start()
    }

    // MARK: - TransportDelegate

    /// An `http://` URL for this HTTPS port: a client that cannot read TLS can read a 400 that says so (as nginx
    /// answers), where a bare close reads as a network fault.
    func transportPlaintextHTTPAnswer() -> [UInt8]? {
        TenantError.gateway(status: 400, detail: "This port speaks HTTPS: the request was sent as plain-text HTTP.")
            .closingHTTP1Answer(date: context.httpDate)
    }

    func transportReady(alpn: String?) {
        if profile.tls != nil {
            if !handshakeCompleted { metrics.handshakeEnded() }
            handshakeCompleted = true
            metrics.tlsHandshakeCompleted()
            if alpn == "h2" && profile.allowH2 { becomeHTTP2() } else { becomeHTTP1() }
        }
        // Plain listeners decide on the first bytes (preface sniffing).
    }

    func transportReceived(_ bytes: UnsafeRawBufferPointer) {
        switch protocolHandler {
        case .http1(let h1): h1.received(bytes)
        case .http2(let h2): h2.received(bytes)
        case .undecided:
            sniffed.append(contentsOf: bytes)
            let preface = HTTP2ServerConnection.preface
            let n = min(sniffed.count, preface.count)
            if profile.allowH2 && sniffed[0..<n].elementsEqual(preface[0..<n]) {
                if sniffed.count < preface.count { return }
                becomeHTTP2()
            } else {
                becomeHTTP1()
            }
            let input = sniffed
            sniffed = []
            input.withUnsafeBytes { transportReceived($0) }
        }
    }

    func transportDrained() {
        switch protocolHandler {
        case .http1(let h1): h1.transportDrained()
        case .http2(let h2): h2.transportDrained()
        case .undecided: break
        }
    }

    func transportPeerFinishedSending() -> Bool {
        if case .http1(let h1) = protocolHandler { return h1.peerFinishedSending() }
        return false
    }

    func transportClosed(error: String?) {
        // The handlers may be deep in their own call stack (a write that failed): keep them alive until it unwinds.
        switch protocolHandler {
        case .http1(let h1):
            context.retire(h1)
            h1.connectionClosed()
        case .http2(let h2):
            context.retire(h2)
            h2.connectionClosed()
        case .undecided: break
        }
        protocolHandler = .undecided
        // Failed, timed out (the header deadline covers the handshake) or abandoned by the client: all counted.
        if profile.tls != nil && !handshakeCompleted {
            metrics.handshakeEnded()
            metrics.tlsHandshakeFailed()
        }
        context.unregister(self)
    }

    private var handshakeCompleted = false

    /// Counted in the active-connections gauge (from the moment its protocol is known), so its close is too.
    private(set) var countedOpen = false

    private func becomeHTTP1() {
        countedOpen = true
        metrics.connectionOpened(protocol: "http/1.1")
        protocolHandler = .http1(HTTP1ServerConnection(transport: transport, owner: self, limits: profile.http1Limits))
    }

    private func becomeHTTP2() {
        countedOpen = true
        metrics.connectionOpened(protocol: "h2")
        let h2 = HTTP2ServerConnection(transport: transport, owner: self)
        protocolHandler = .http2(h2)
        h2.start()
        deadlineNanos = context.clock.nowNanoseconds() + Int64(profile.idleTimeoutMs) * 1_000_000
    }

    // MARK: - Called by the protocol handlers

    func makeExchange(head: consuming RequestHead, body: consuming [UInt8], writer: any ResponseWriter) -> Exchange {
        inFlight += 1
        deadlineNanos = .max
        let exchange = Exchange(
            head: head, body: body, peerAddress: peerAddress, isTLS: profile.tls != nil,
            serverName: transport.serverName, listenerDomain: profile.domain,
            requestID: context.nextRequestID(), startNanos: context.clock.nowNanoseconds(), writer: writer)
        #if DEBUG
            exchange.liveToken = LiveObjectCount.Token(context.gateway.liveExchanges)
        #endif
        return exchange
    }

    /// Hands a complete request to the handler, both protocols' one way in, unless its Host is one the connection's
    /// certificate does not cover: that is a 421 (RFC 9110 §7.4: a request for an https resource MUST be refused
    /// unless the connection is secured by a certificate valid for its origin), on a listener bound to one domain
    /// too (it judges tokens by its own domain whatever the Host says, but must not answer for an origin its
    /// certificate does not name). A rule of the connection, not of the policy: it holds for every handler, and
    /// only the connection knows its certificate. HTTP/2 clients may send several hosts over one connection
    /// (RFC 9113 §9.1.1), so the check is the certificate's names, not the SNI name. A connection without SNI is
    /// not checked (a client that dialled an address got the default certificate without asking for a name, and
    /// can only have accepted it unverified).
    func dispatch(_ exchange: Exchange) {
        if profile.tls != nil, transport.serverName != nil,
            let authority = exchange.head.authority
        {
            let host = RequestPolicy.hostWithoutPort(authority).asciiLowercased
            if transport.certificateCovers(host: host) == false {
                let error = TenantError.misdirected(
                    "The connection's certificate does not cover \(host): open a connection to \(host) for its requests."
                )
                exchange.decision = "refused_domain"
                exchange.bodyStream?.discard()
                handler.describeRefusal(exchange, error: error)
                exchange.writer?.send(error.response, isHEAD: exchange.head.method == "HEAD")
                return
            }
        }
        handler.handle(exchange)
    }

    /// A streamed request body stopped arriving (on either protocol): the upstream exchange is abandoned and the
    /// exchange records why. Returns the 408 to send when no answer has started.
    func abandonStalledBody(_ exchange: Exchange, _ verdict: BodyArrivalJudge.Verdict) -> TenantError {
        handler.cancel(exchange)
        exchange.decision = "refused_timeout"
        let detail =
            verdict == .tooSlow
            ? "The request body arrived slower than \(profile.minBodyBytesPerSecond) bytes per second."
            : "The request body stopped arriving before it was complete."
        let error = TenantError.gateway(status: 408, detail: detail)
        exchange.facts.error = error
        return error
    }

    func finished(_ exchange: Exchange) {
        inFlight -= 1
        exchange.writer = nil
        guard !exchange.finished else { return }
        exchange.finished = true
        context.requestFinished(exchange)
    }

    /// A keep-alive connection waits for its next request.
    func requestIdle() {
        if isDraining {
            // HTTP/2 between the shutdown notice and the final GOAWAY still takes streams: the GOAWAY closes it.
            if finalGoAwayNanos != .max { return }
            transport.closeGracefully()
            return
        }
        deadlineNanos = context.clock.nowNanoseconds() + Int64(profile.idleTimeoutMs) * 1_000_000
    }

    func streamsIdle() { requestIdle() }

    /// An HTTP/2 client began a header block on a connection with no stream open.
    func headerBlockStarted() {
        deadlineNanos = min(deadlineNanos, context.coarseDeadline(afterMilliseconds: profile.headerReadTimeoutMs))
    }

    /// An HTTP/2 connection opened a stream after a quiet spell: no idle deadline while streams are open.
    func streamsBusy() { deadlineNanos = .max }

    /// An HTTP/1.1 request began arriving on an idle connection: its head must come within the header timeout.
    func requestStarted() {
        guard inFlight == 0 else { return }
        deadlineNanos = min(deadlineNanos, context.coarseDeadline(afterMilliseconds: profile.headerReadTimeoutMs))
        headDeadlineNanos = deadlineNanos
    }

    /// The header timeout of the request being read (the connection's first one's covers its handshake too).
    private var headDeadlineNanos: Int64 = .max

    /// The body of an HTTP/1.1 request read whole grew to `received` bytes: its deadline moves on.
    func wholeBodyGrew(to received: Int) {
        guard inFlight == 0, headDeadlineNanos != .max else { return }
        deadlineNanos = max(deadlineNanos, wholeBodyDeadline(headDeadline: headDeadlineNanos, received: received))
    }

    /// `BodyArrivalJudge.wholeBodyDeadline` with this listener's limits (both protocols).
    func wholeBodyDeadline(headDeadline: Int64, received: Int) -> Int64 {
        BodyArrivalJudge.wholeBodyDeadline(
            headDeadline: headDeadline, received: received, minBytesPerSecond: profile.minBodyBytesPerSecond,
            idleDeadline: context.coarseDeadline(afterMilliseconds: profile.idleTimeoutMs))
    }

    /// The loop's sweeper found the deadline passed.
    private func timedOut() {
        switch protocolHandler {
        case .http2(let h2):
            // One GOAWAY: the connection then closes when its last stream ends, which the sweeper need not ask again.
            deadlineNanos = .max
            h2.goAwayAndClose()
        default:
            // RFC 9110 §15.5.9: a 408 tells an HTTP/1.1 client why; idle keep-alive connections just close.
            if case .http1(let h1) = protocolHandler, h1.hasPartialRequest {
                let what = h1.isReadingBody ? "body" : "head"
                transport.write(
                    TenantError.gateway(status: 408, detail: "The request \(what) did not arrive in time.")
                        .closingHTTP1Answer(date: context.httpDate))
                transport.closeGracefully()
            } else if transport.isHandshaking {
                // Nothing to say to a client that never finished its handshake, nor a reason to linger for it.
                transport.close()
            } else {
                // An idle keep-alive connection: with close_notify (RFC 8446 §6.1), so the client can tell a close
                // from a truncation, and lingering like every other close.
                transport.closeGracefully()
            }
        }
    }

    /// When the final GOAWAY of a graceful HTTP/2 shutdown is due (`.max`: none is).
    private var finalGoAwayNanos: Int64 = .max

    /// Graceful shutdown: idle connections close now, busy ones after their responses. HTTP/2 in two steps
    /// (RFC 9113 §6.8, as nghttpx and h2o do): a GOAWAY announcing it, and a second naming the last stream served
    /// one second later, so a request the client sent before it read the first is served, not refused.
    func drain() {
        switch protocolHandler {
        case .http2(let h2):
            h2.announceShutdown()
            finalGoAwayNanos = context.clock.nowNanoseconds() + Self.shutdownNoticeLeadNanos
        case .http1(let h1): if h1.isIdle { transport.closeGracefully() }
        case .undecided: transport.close()
        }
    }

    func forceClose() { transport.close() }

    static let shutdownNoticeLeadNanos: Int64 = 1_000_000_000

    /// Called by the loop's sweeper.
    func swept(now: Int64) {
        transport.releaseBuffersIfQuiet()
        if deadlineNanos < now {
            timedOut()
            return
        }
        // The connection-wide stall first: a client that takes nothing at all is told with GOAWAY, not stream by
        // stream.
        if checkWriteStall(now: now) { return }
        if case .http2(let h2) = protocolHandler, !transport.closed {
            if finalGoAwayNanos < now {
                finalGoAwayNanos = .max
                h2.goAwayAndClose()
            }
            if !transport.closed { h2.sweep(now: now) }
        }
    }

    /// Bytes the client acknowledged while its output is backed up.
    private var writeProgress = ProgressWatch()

    /// Called by the sweeper. A client that takes no byte of what it is owed for `idle_timeout_ms` is closed, as
    /// nginx's `send_timeout` and HAProxy's `timeout client` do: every answer it leaves unread holds an upstream
    /// connection (the relay waits for it rather than buffering without bound), so a few such clients would
    /// otherwise take every upstream connection there is. A slow reader that keeps taking bytes is not stalled.
    /// Returns whether it ended the connection.
    private func checkWriteStall(now: Int64) -> Bool {
        var owed = transport.isOverHighWater
        if !owed, case .http2(let h2) = protocolHandler { owed = h2.outputWaitingForWindow }
        guard owed else {
            writeProgress.reset()
            return false
        }
        guard
            writeProgress.stalled(
                count: transport.bytesAcknowledged, now: now, limit: Int64(profile.idleTimeoutMs) * 1_000_000)
        else { return false }
        metrics.clientStalled()
        if case .http2(let h2) = protocolHandler, !transport.isOverHighWater {
            // It still reads: it is told why (GOAWAY) before the close.
            h2.closeStalled()
        } else {
            transport.close()
        }
        return true
    }
}

extension TenantError {
    /// This error as a whole HTTP/1.1 answer after which the connection closes (`Connection: close`), framed by its
    /// length like every other answer of the gateway: for the answers written outside a protocol layer (a refusal
    /// at accept, plain HTTP on a TLS port, a request head that did not arrive in time).
    func closingHTTP1Answer(date: String) -> [UInt8] {
        var response = self.response
        response.head.headers.set("Date", date)
        response.head.headers.set("Connection", "close")
        response.head.headers.set("Content-Length", String(response.body.count))
        // The gateway's own fields and JSON: always serializable.
        return ((try? HTTP1Serializer.responseHead(response.head)) ?? []) + response.body
    }
}
