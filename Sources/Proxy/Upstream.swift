import Synchronization
import EventLoop
import GatewayCore
import HTTP1
import TLS

/// Where requests for one tenant domain go, and how to reach it. Immutable and shared by all loops.
///
/// Pools are shared by origins with the same scheme, host and port (`key`), so everything that belongs to one
/// domain's requests (secret headers, the client-IP header, the Host value) is read from the relay's own origin.
///
/// A class, not a struct: every forwarded request hands it on (policy → relay → pool lookup), and a struct with
/// this many strings and arrays cost a retain and a release per field at each hand-over.
final class UpstreamOrigin: Sendable {
    /// The name used for Host and SNI (the edge origin in custom-domain mode).
    let host: String
    let port: UInt16
    let useTLS: Bool
    let tlsContext: TLSClientContext?
    let maxConnections: Int
    let connectTimeoutMs: Int
    let responseTimeoutMs: Int
    let idleTimeoutMs: Int
    /// Extra request headers: the `cname-api-key` in edge mode. Never logged.
    let secretHeaders: [(String, String)]
    /// The header that carries the client's IP (x-forwarded-for unless the tenant names another).
    let clientIPHeader: String
    /// Derived once, not on every request: the Host value, and the request fields the gateway sets itself.
    let hostHeader: String
    let removedOnTheWayUp: FieldNameSet
    /// Scheme, host and port: origins with the same key share a pool.
    let key: String

    init(
        host: String, port: UInt16, useTLS: Bool, tlsContext: TLSClientContext?, maxConnections: Int,
        connectTimeoutMs: Int, responseTimeoutMs: Int, idleTimeoutMs: Int, secretHeaders: [(String, String)],
        clientIPHeader: String
    ) {
        self.host = host
        self.port = port
        self.useTLS = useTLS
        self.tlsContext = tlsContext
        self.maxConnections = maxConnections
        self.connectTimeoutMs = connectTimeoutMs
        self.responseTimeoutMs = responseTimeoutMs
        self.idleTimeoutMs = idleTimeoutMs
        self.secretHeaders = secretHeaders
        self.clientIPHeader = clientIPHeader
        let defaultPort: UInt16 = useTLS ? 443 : 80
        let h = host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]" : host
        self.hostHeader = port == defaultPort ? h : "\(h):\(port)"
        self.removedOnTheWayUp = FieldNameSet(ForwardRewrite.replacedOnTheWayUp + [clientIPHeader])
        self.key = "\(useTLS ? "https" : "http")://\(host):\(port)"
    }

    /// The same origin reached at another address, without its secret headers (a JWKS fetch).
    func retargeted(host: String, port: UInt16) -> UpstreamOrigin {
        UpstreamOrigin(
            host: host, port: port, useTLS: useTLS, tlsContext: tlsContext, maxConnections: maxConnections,
            connectTimeoutMs: connectTimeoutMs, responseTimeoutMs: responseTimeoutMs, idleTimeoutMs: idleTimeoutMs,
            secretHeaders: [], clientIPHeader: clientIPHeader)
    }

}

/// Why an upstream exchange failed; mapped to 502/503/504 with a detail that says what failed.
struct UpstreamFailure: Error {
    var status: Int
    var detail: String
}

/// Keep-alive connections to one origin, owned by one loop: bounded in number, idle ones expire.
///
/// Loop-confined. `acquire` hands out an idle connection, opens a new one under the bound, or queues the request
/// (bounded; the queue answers 503 when full, and each waiter times out after the connect timeout).
final class UpstreamPool {
    let origin: UpstreamOrigin
    let context: LoopContext
    /// Where `open` and `idle.count` are published for `/metrics` (this loop is their only writer).
    private let gauge: UpstreamPoolCells
    private var idle: [UpstreamConnection] = [] {
        didSet { gauge.idle.store(idle.count, ordering: .relaxed) }
    }
    /// Connections with a request in flight, for the response deadline. Each knows its own index here, so
    /// joining and leaving cost no hashing (a dictionary insert and remove per request did).
    private(set) var busy: [UpstreamConnection] = []

    func markBusy(_ connection: UpstreamConnection) {
        guard connection.busyIndex < 0 else { return }
        connection.busyIndex = busy.count
        busy.append(connection)
    }

    func markNotBusy(_ connection: UpstreamConnection) {
        let index = connection.busyIndex
        guard index >= 0, index < busy.count, busy[index] === connection else { return }
        connection.busyIndex = -1
        let last = busy.removeLast()
        if index < busy.count {
            busy[index] = last
            last.busyIndex = index
        }
    }
    private var open = 0 {
        didSet { gauge.open.store(open, ordering: .relaxed) }
    }
    private var waiters: [(deadline: Int64, callback: (Result<UpstreamConnection, UpstreamFailure>) -> Void)] = []
    private var resolved: [NetAddress] = []
    private var resolvedAt: Int64 = 0
    static let maxWaiters = 1024

    init(origin: UpstreamOrigin, context: LoopContext) {
        self.origin = origin
        self.context = context
        self.gauge = context.metrics.upstreamPools.add(origin: origin.key)
    }

    deinit { context.metrics.upstreamPools.remove(gauge) }

    /// An idle connection that can take a request now, if there is one.
    func takeIdle() -> UpstreamConnection? {
        while let connection = idle.popLast() {
            if connection.isUsable { return connection }
            connection.close()
        }
        return nil
    }

    /// A connection for one exchange: an idle one, a new one, or the next one released. `fresh` prefers a new one
    /// (a retry after an idle connection failed: its siblings may be as stale).
    func acquire(fresh: Bool = false, _ callback: @escaping (Result<UpstreamConnection, UpstreamFailure>) -> Void) {
        if !(fresh && open < origin.maxConnections), let connection = takeIdle() {
            callback(.success(connection))
            return
        }
        if open < origin.maxConnections {
            connect(callback)
            return
        }
        guard waiters.count < UpstreamPool.maxWaiters else {
            context.metrics.upstreamError(kind: "pool_full")
            callback(.failure(UpstreamFailure(status: 503, detail: "All upstream connections are busy.")))
            return
        }
        context.metrics.upstreamPoolWait()
        let deadline = context.clock.nowNanoseconds() + Int64(origin.connectTimeoutMs) * 1_000_000
        waiters.append((deadline, callback))
    }

    /// A connection finished its exchange; a reusable one goes to the next waiter or back to the idle list.
    func release(_ connection: UpstreamConnection, reusable: Bool) {
        guard reusable, connection.isUsable, !context.isDraining else {
            connection.close()
            return
        }
        if !waiters.isEmpty {
            let waiter = waiters.removeFirst()
            waiter.callback(.success(connection))
            return
        }
        connection.idleSince = context.clock.nowNanoseconds()
        idle.append(connection)
    }

    func connectionClosed(_ connection: UpstreamConnection) {
        context.retire(connection)
        open -= 1
        idle.removeAll { $0 === connection }
        // A slot freed up: open a connection for the oldest waiter.
        if !waiters.isEmpty && open < origin.maxConnections {
            let waiter = waiters.removeFirst()
            connect(waiter.callback)
        }
    }

    /// Called by the loop's sweeper: closes expired idle connections and fails waiters past their deadline.
    func sweep(now: Int64) {
        let limit = Int64(origin.idleTimeoutMs) * 1_000_000
        for connection in idle {
            if now - connection.idleSince > limit { connection.close() } else { connection.releaseBuffersIfQuiet() }
        }
        // A snapshot: a timed-out connection leaves `busy` while this loop runs.
        let inFlight = busy
        for connection in inFlight {
            connection.noteProgress(now: now)
            if connection.responseDeadline < now { connection.responseTimedOut() }
        }
        while let first = waiters.first, first.deadline < now {
            waiters.removeFirst()
            context.metrics.upstreamError(kind: "pool_timeout")
            first.callback(
                .failure(UpstreamFailure(status: 503, detail: "No upstream connection became free in time.")))
        }
    }

    func closeIdle() {
        let all = idle
        idle = []
        for connection in all { connection.close() }
    }

    private func connect(_ callback: @escaping (Result<UpstreamConnection, UpstreamFailure>) -> Void) {
        open += 1
        let now = context.clock.nowNanoseconds()
        if !resolved.isEmpty && now - resolvedAt < 30_000_000_000 {
            startConnect(resolved[0], callback)
            return
        }
        let loop = context.loop
        let bound = LoopBound((pool: self, callback: callback), loop: loop)
        Resolver.resolve(host: origin.host, port: origin.port, on: loop) { result in
            let (pool, callback) = bound.value
            switch result {
            case .success(let addresses):
                pool.resolved = addresses
                pool.resolvedAt = pool.context.clock.nowNanoseconds()
                pool.startConnect(addresses[0], callback)
            case .failure(let error):
                pool.open -= 1
                pool.context.metrics.upstreamError(kind: "resolve")
                callback(
                    .failure(UpstreamFailure(status: 502, detail: "Could not resolve the upstream host: \(error).")))
            }
        }
    }

    private func startConnect(
        _ address: NetAddress, _ callback: @escaping (Result<UpstreamConnection, UpstreamFailure>) -> Void
    ) {
        let fd: Int32
        do {
            fd = try TCP.startConnect(to: address)
        } catch {
            open -= 1
            context.metrics.upstreamError(kind: "connect")
            callback(.failure(UpstreamFailure(status: 502, detail: "Could not connect to the upstream: \(error).")))
            return
        }
        let connection: UpstreamConnection
        do {
            connection = try UpstreamConnection(fd: fd, pool: self)
        } catch {
            open -= 1
            context.metrics.upstreamError(kind: "tls")
            callback(.failure(UpstreamFailure(status: 502, detail: "Could not set up TLS to the upstream: \(error).")))
            return
        }
        // Unowned, like the connection's own reference to its pool: a pool outlives its connections. A weak
        // capture would give the pool a side table, and every later retain of it would take the slow path.
        connection.connect(timeoutMs: origin.connectTimeoutMs) { [unowned self] error in
            if let error {
                self.context.metrics.upstreamError(kind: error.status == 504 ? "connect_timeout" : "connect")
                callback(.failure(error))
            } else {
                callback(.success(connection))
            }
        }
    }
}

/// Receives one upstream response. Loop-confined; every method is called at most in this order:
/// `head`, `body`*, then exactly one of `end` or `failed`.
protocol UpstreamResponseHandler: AnyObject {
    func upstreamInformational(_ head: ResponseHead)
    /// The bytes read so far are consumed and the response is not complete: more must come from the network.
    func upstreamPaused()
    /// Takes the head: the relay rewrites its fields in place instead of copying them.
    func upstreamHead(_ head: consuming ResponseHead, info: HTTP1ResponseInfo)
    /// Bytes of the body, valid only during the call.
    func upstreamBody(_ bytes: UnsafeRawBufferPointer)
    func upstreamEnd()
    func upstreamFailed(_ failure: UpstreamFailure, retryable: Bool)
}

/// One HTTP/1.1 connection to the upstream, over TLS when the origin is https.
final class UpstreamConnection: TransportDelegate {
    private let transport: Transport
    private unowned let pool: UpstreamPool
    private var parser = HTTP1ResponseParser()
    private var connectCallback: ((UpstreamFailure?) -> Void)?
    private var connectTimer: LoopTimer?
    private(set) var responseDeadline: Int64 = .max
    /// The exchange in flight; cleared when its response ends or fails (every path ends in `pump`'s `.end` or in
    /// `fail`), which ends the cycle with the relay that holds this connection.
    private var handler: (any UpstreamResponseHandler)?
    private var receivedAny = false
    /// Interim (1xx) responses to the current request: a few are normal (103 Early Hints), a stream of them is an
    /// upstream that never answers while keeping the connection busy.
    private var interimResponses = 0
    static let maxInterimResponses = 16
    private var responseDone = true
    private var keepAlive = false
    /// A streamed request body is still being written.
    private var bodyPending = false
    private var responseTimeoutMs = 0
    /// The response head has come: from then on the deadline is the longest the upstream may go without sending
    /// body bytes, so a large answer that keeps flowing is not cut at `response_timeout_ms` from its start.
    private var headReceived = false
    /// Reading is paused because the client reads slowly: the upstream is not late then, the deadline waits.
    private var pausedByClient = false
    /// The response moved (head or body bytes) since the sweeper last looked: a store per event, no clock read.
    private var progressed = false
    private(set) var exchangesServed = 0
    var idleSince: Int64 = 0
    /// This connection's index in its pool's `busy` list, or -1.
    fileprivate(set) var busyIndex = -1
    private var closed = false

    init(fd: Int32, pool: UpstreamPool) throws(TLSError) {
        self.pool = pool
        self.transport = try Transport.client(fd: fd, origin: pool.origin, context: pool.context)
        transport.delegate = self
    }

    deinit {
        connectTimer?.cancel()
        transport.delegate = nil
    }

    var isUsable: Bool { !closed && responseDone }

    func connect(timeoutMs: Int, _ callback: @escaping (UpstreamFailure?) -> Void) {
        connectCallback = callback
        // Unowned, not weak (a weak reference gives the connection a side table, which makes every retain of it
        // slow for its whole life): the timer is cancelled in deinit, and the transport's socket, which holds the
        // other closure, is closed before the connection can go.
        connectTimer = pool.context.loop.schedule(afterMilliseconds: timeoutMs) { [unowned self] in
            self.failConnect(UpstreamFailure(status: 504, detail: "Connecting to the upstream timed out."))
        }
        transport.startConnecting { [unowned self] err in
            self.failConnect(UpstreamFailure(status: 502, detail: "Connecting to the upstream failed (errno \(err))."))
        }
    }

    private func failConnect(_ failure: UpstreamFailure) {
        guard let callback = connectCallback else { return }
        connectCallback = nil
        connectTimer?.cancel()
        close()
        callback(failure)
    }

    /// Sends a request (head already serialized) and streams the response to `handler`. With `bodyFollows` the
    /// body comes through `writeBody` and ends with `bodyFinished`; the response deadline starts then.
    func send(
        head: [UInt8], body: [UInt8], method: String, handler: any UpstreamResponseHandler, timeoutMs: Int,
        bodyFollows: Bool = false
    ) {
        self.handler = handler
        receivedAny = false
        interimResponses = 0
        headReceived = false
        pausedByClient = false
        progressed = false
        responseDone = false
        exchangesServed += 1
        parser.requestSent(method: method)
        transport.write(head)
        if !body.isEmpty { transport.write(body) }
        responseTimeoutMs = timeoutMs
        bodyPending = bodyFollows
        // Checked by the loop's sweeper rather than a timer per request: a timer costs a kernel round trip.
        responseDeadline = bodyFollows ? .max : pool.context.clock.nowNanoseconds() + Int64(timeoutMs) * 1_000_000
        pool.markBusy(self)
    }

    /// A piece of a streamed request body; returns true when the connection holds more than its high-water mark
    /// unsent (the source should pause until `onDrained`).
    func writeBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bodyPending, !closed else { return false }
        transport.write(bytes)
        guard transport.isOverHighWater else { return false }
        // The upstream is not taking the body: it gets `response_timeout_ms` to drain it before the exchange
        // fails with 504, or a stalled upstream would hold this connection (and the client) for good.
        if !responseDone {
            responseDeadline = pool.context.clock.nowNanoseconds() + Int64(responseTimeoutMs) * 1_000_000
        }
        return true
    }

    /// The streamed request body is complete: the wait for the response starts.
    func bodyFinished() {
        guard bodyPending else { return }
        bodyPending = false
        if !responseDone {
            responseDeadline = pool.context.clock.nowNanoseconds() + Int64(responseTimeoutMs) * 1_000_000
        }
    }

    /// Called when the outbound buffer drains under its low-water mark.
    var onDrained: (() -> Void)?

    /// Backpressure from the client side.
    func setReading(_ on: Bool) {
        transport.setReading(on)
        guard headReceived, !responseDone else { return }
        pausedByClient = !on
        if on { extendResponseDeadline(now: pool.context.clock.nowNanoseconds()) } else { responseDeadline = .max }
    }

    /// After the head: `response_timeout_ms` more from now, unless the client holds reading paused.
    private func extendResponseDeadline(now: Int64) {
        guard headReceived, !pausedByClient, !bodyPending else { return }
        responseDeadline = now + Int64(responseTimeoutMs) * 1_000_000
    }

    /// The sweeper's look: bytes that came since its last one restart the clock (see `progressed`).
    fileprivate func noteProgress(now: Int64) {
        guard progressed else { return }
        progressed = false
        extendResponseDeadline(now: now)
    }

    func close() {
        guard !closed else { return }
        transport.close()
    }

    /// See `Transport.releaseBuffersIfQuiet`: for the pool's sweep of its idle connections.
    fileprivate func releaseBuffersIfQuiet() { transport.releaseBuffersIfQuiet() }

    // MARK: - TransportDelegate

    func transportReady(alpn: String?) {
        guard let callback = connectCallback else { return }
        connectCallback = nil
        connectTimer?.cancel()
        callback(nil)
    }

    func transportReceived(_ bytes: UnsafeRawBufferPointer) {
        guard !responseDone else {
            // Bytes nobody asked for: the connection cannot be trusted for another request.
            close()
            return
        }
        receivedAny = true
        let unbuffered = parser.takeBodyUnbuffered(bytes.count)
        if unbuffered > 0 {
            progressed = true
            handler?.upstreamBody(UnsafeRawBufferPointer(rebasing: bytes[..<unbuffered]))
        }
        parser.feed(UnsafeRawBufferPointer(rebasing: bytes[unbuffered...]))
        pump()
    }

    private func pump() {
        defer { if !responseDone { handler?.upstreamPaused() } }
        while !responseDone, let event = parser.next() {
            // Consumed, so that a head's fields move on to the handler rather than being retained and later freed.
            switch consume event {
            case .informational(let head):
                interimResponses += 1
                guard interimResponses <= Self.maxInterimResponses else {
                    fail(
                        UpstreamFailure(status: 502, detail: "The upstream sent too many interim (1xx) responses."),
                        retryable: false)
                    return
                }
                handler?.upstreamInformational(head)
            case .head(let head, let info):
                keepAlive = info.keepAlive
                headReceived = true
                progressed = true
                handler?.upstreamHead(head, info: info)
            case .body(let bytes):
                progressed = true
                bytes.withUnsafeBytes { handler?.upstreamBody($0) }
            case .trailers:
                continue
            case .end:
                responseDone = true
                pool.markNotBusy(self)
                let handler = self.handler
                self.handler = nil
                onDrained = nil
                // An answer before the whole body was sent leaves the request unfinished on this connection; bytes
                // after the answer belong to no request (a body after HEAD/204/304) and would be served to the
                // next client as its response.
                let reusable = keepAlive && !bodyPending && parser.unconsumedByteCount == 0
                bodyPending = false
                // The client side may have paused reading for backpressure (or for good: a client that is gone
                // accepts no more body). The response is complete, so the next exchange must find it reading, or
                // its answer would sit unread until the response timeout.
                if reusable && !closed { transport.setReading(true) }
                pool.release(self, reusable: reusable)
                handler?.upstreamEnd()
            case .error(let error):
                fail(
                    UpstreamFailure(status: 502, detail: "The upstream sent an invalid response: \(error.reason)."),
                    retryable: false)
            }
        }
    }

    func transportDrained() {
        // The upstream took the body so far: its clock runs again only when the next piece backs up.
        if bodyPending && !responseDone { responseDeadline = .max }
        onDrained?()
    }

    func transportClosed(error: String?) {
        closed = true
        connectTimer?.cancel()
        if let callback = connectCallback {
            connectCallback = nil
            callback(
                UpstreamFailure(
                    status: 502,
                    detail: error.map { "Connecting to the upstream failed: \($0)." }
                        ?? "The upstream closed the connection during the TLS handshake."))
        }
        if !responseDone {
            let failure = UpstreamFailure(
                status: 502,
                detail: error.map { "The upstream connection failed: \($0)." }
                    ?? "The upstream closed the connection before the response was complete.")
            if receivedAny {
                // Read-until-close bodies end here.
                parser.feedEOF()
                pump()
                if !responseDone { fail(failure, retryable: false) }
            } else {
                // No byte of an answer: on a reused connection, an idle close by the upstream that crossed the
                // request, which a new connection may not meet (the relay decides whether the request may go again).
                fail(failure, retryable: exchangesServed > 1)
            }
        }
        pool.connectionClosed(self)
    }

    /// The sweeper found the response deadline passed.
    func responseTimedOut() {
        guard !responseDone else { return }
        fail(UpstreamFailure(status: 504, detail: "The upstream did not answer in time."), retryable: false)
    }

    /// Ends the exchange in flight with `failure`; the connection is closed (a no-op when it already is).
    private func fail(_ failure: UpstreamFailure, retryable: Bool) {
        responseDone = true
        bodyPending = false
        onDrained = nil
        pool.markNotBusy(self)
        let handler = self.handler
        self.handler = nil
        close()
        handler?.upstreamFailed(failure, retryable: retryable)
    }
}
