import EventLoop
import GatewayCore
import HTTP1
import Policy
import Recording

/// What the policy pipeline decided for one request.
enum Judgement {
    /// The gateway answers itself (refusals, preflights, emulated answers).
    case respond(Response, decision: String)
    /// The request goes to `origin`; `responseHeaders` are set on the answer (CORS, rate-limit headers) after
    /// the upstream's own CORS headers are removed.
    case forward(origin: UpstreamOrigin, responseHeaders: HTTPFields, decision: String)
}

/// Request-header rewriting on the way to the upstream: pure, so it is tested without sockets.
enum ForwardRewrite {
    /// Fields a client's copies of never pass up: those the gateway sets itself, and the fixed hop-by-hop ones (so
    /// that the origin's one set, `UpstreamOrigin.removedOnTheWayUp`, answers for both in one lookup per field).
    static let replacedOnTheWayUp =
        [
            "Host", "Content-Length", "X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Proto",
            // The gateway answers `Expect: 100-continue` itself (at once, RFC 9110 §10.1.1), and ignores it from
            // an HTTP/1.0 client as that section requires: the expectation never goes further.
            "X-Forwarded-Host", "cname-api-key", "Expect",
        ] + HopByHop.names

    /// `upstreamRequest` for an exchange, reading its head in place: the relay that passed `exchange.head` and
    /// its strings as arguments copied the whole head (every string retained, then released) to do so.
    static func upstreamRequest(
        for exchange: Exchange, bodyLength: Int, origin: UpstreamOrigin
    ) throws(HTTP1SerializationError) -> [UInt8] {
        let clientIP = exchange.peerAddress
        let isTLS = exchange.isTLS
        let requestID = exchange.requestID
        return try upstreamRequest(
            exchange.head, bodyLength: bodyLength, origin: origin, clientIP: clientIP, isTLS: isTLS,
            requestID: requestID,
            forwardedHost: forwardedHost(authority: exchange.head.authority, listenerDomain: exchange.listenerDomain))
    }

    /// The `X-Forwarded-Host` value: the client's Host, unless the listener serves one domain and the Host names
    /// another. Such a listener serves its domain whatever the Host says (a sidecar's application may well send
    /// `localhost:8081`), so the upstream is told that domain, never a name the client made up.
    static func forwardedHost(authority: String?, listenerDomain: String?) -> String? {
        guard let listenerDomain else { return authority }
        guard let authority else { return listenerDomain }
        return RequestPolicy.authority(authority, names: listenerDomain) ? authority : listenerDomain
    }

    /// The upstream request head, serialized: hop-by-hop fields removed, Host set to the origin, exactly one
    /// client IP (never appended to a client-supplied value), X-Forwarded-Proto, a request id, the origin's secret
    /// headers, and a Content-Length that matches the (complete) body. Throws for a field HTTP/1.1 cannot carry.
    static func upstreamRequest(
        _ head: RequestHead, bodyLength: Int, origin: UpstreamOrigin, clientIP: String, isTLS: Bool, requestID: String,
        forwardedHost: String?
    ) throws(HTTP1SerializationError) -> [UInt8] {
        let removed = origin.removedOnTheWayUp
        var capacity = head.target.utf8.count + 256
        var mayHaveConnection = false
        // The field loops read through the array's buffer: each field in place, not copied (retained) first.
        head.headers.fields.withUnsafeBufferPointer { fields in
            for i in fields.indices {
                let nameCount = fields[i].name.utf8.count
                capacity += nameCount + fields[i].value.utf8.count + 4
                if nameCount == 10 { mayHaveConnection = true }
            }
        }
        // Requests rarely carry Connection (HTTP/2 ones never do): scanned for only when a name has its length.
        let nominated = mayHaveConnection ? HopByHop.nominatedFields(in: head.headers) : []
        var out = try HTTP1HeadBuilder(method: head.method, target: head.target, capacity: capacity)
        try out.add(constant: "Host", origin.hostHeader)
        var hasRequestID = false
        try head.headers.fields.withUnsafeBufferPointer { fields throws(HTTP1SerializationError) in
            for i in fields.indices {
                let name = fields[i].name
                // `removed` holds the fixed hop-by-hop names too (`replacedOnTheWayUp`).
                if removed.contains(name) || HopByHop.isNominated(name, nominated) { continue }
                if name.utf8.count == 12 && name.asciiCaseInsensitiveEquals(literal: "X-Request-Id") {
                    // The upstream gets the id the events record: the client's first value when the log takes it
                    // (`RequestFacts.correlationID`), else the gateway's own; never a second or a discarded one.
                    guard !hasRequestID, RequestFacts.correlationID(requestID: fields[i].value) != nil else {
                        continue
                    }
                    hasRequestID = true
                }
                // RFC 9110 §7.6.2: an intermediary decrements Max-Forwards on the OPTIONS it forwards (the policy
                // answers a 0 and refuses what is not a single count, so those never get here).
                if head.method == "OPTIONS" && name.asciiCaseInsensitiveEquals(literal: "Max-Forwards"),
                    let forwarded = MaxForwards.forwardedValue(of: fields[i].value)
                {
                    try out.add(name, forwarded)
                    continue
                }
                try out.add(name, fields[i].value)
            }
        }
        // RFC 9110 §7.6.3: a gateway MUST add itself to Via on every request it forwards (after what the client
        // sent, as the field's order says), naming the protocol the request came in on.
        try out.add(constant: "Via", viaEntry(head.version))
        try out.add(origin.clientIPHeader, clientIP)
        try out.add(constant: "X-Forwarded-Proto", isTLS ? "https" : "http")
        if let forwardedHost { try out.add(constant: "X-Forwarded-Host", forwardedHost) }
        if !hasRequestID { try out.add(constant: "X-Request-Id", requestID) }
        for (name, value) in origin.secretHeaders { try out.add(name, value) }
        if bodyLength > 0 || methodAlwaysHasContent(head.method) {
            try out.add(constant: "Content-Length", String(bodyLength))
        }
        return out.finish()
    }

    static func viaEntry(_ version: HTTPVersion) -> String {
        switch version {
        case .http1_0: return "1.0 myorg-gateway"
        case .http1_1: return "1.1 myorg-gateway"
        case .http2: return "2 myorg-gateway"
        }
    }

    private static func methodAlwaysHasContent(_ method: String) -> Bool {
        method == "POST" || method == "PUT" || method == "PATCH"
    }

    /// Response headers from the upstream: hop-by-hop removed, upstream CORS headers replaced by ours.
    ///
    /// The gateway's rate-limit fields replace the upstream's, since they describe the limiter that admitted the
    /// request, except on the tenant's own 429: that refusal is the tenant's, and its `Retry-After` and
    /// `X-RateLimit-*` are what a client must wait on (an admitted request's figures would invite an early retry).
    ///
    /// The head is taken and its field list filtered in place: the fields that stay are moved, not copied (a copy
    /// retains both strings of each field, and the original list is freed after).
    static func downstreamHead(_ head: consuming ResponseHead, adding extra: HTTPFields) -> ResponseHead {
        var out = head
        let nominated = HopByHop.nominatedFields(in: out.headers)
        // On the tenant's own 429 its rate-limit fields stay and the gateway's are not added; a policy-judged answer
        // (one that came with the gateway's rate-limit fields) still gets the gateway's CORS alone.
        let tenantLimited = out.status == 429
        let added =
            tenantLimited ? HTTPFields(extra.fields.filter { !RateLimitHeaders.isRateLimitField($0.name) }) : extra
        // The added fields are read through their buffer: in place, not copied (retained) field by field.
        return added.fields.withUnsafeBufferPointer { extraFields in
            var replacesCORS = tenantLimited && extra.contains(RateLimitHeaders.limit)
            // Bit n: some extra name is n bytes long (63: 63 or more), so most names skip the scan below.
            var extraLengths: UInt64 = 0
            for i in extraFields.indices {
                let n = extraFields[i].name.utf8.count
                extraLengths |= 1 << UInt64(min(n, 63))
                if extraFields[i].name.asciiCaseInsensitiveEquals(literal: "Access-Control-Allow-Origin")
                    || extraFields[i].name.asciiCaseInsensitiveEquals(literal: "X-RateLimit-Limit")
                {
                    replacesCORS = true
                }
            }
            // The upstream sent a Vary while the gateway adds one: only then are the two lists merged.
            var mergesVary = false
            // A handful of names at most: a length test first, then the bytes.
            func replaced(_ name: String) -> Bool {
                let n = name.utf8.count
                if name.asciiCaseInsensitiveEquals(literal: "Content-Length") { return true }
                guard extraLengths & (1 << UInt64(min(n, 63))) != 0 else { return false }
                // The upstream's Vary stays: the gateway's is merged into it below.
                if n == 4 && name.asciiCaseInsensitiveEquals(literal: "Vary") {
                    mergesVary = true
                    return false
                }
                for i in extraFields.indices
                where extraFields[i].name.utf8.count == n && extraFields[i].name.asciiCaseInsensitiveEquals(name) {
                    return true
                }
                return false
            }
            out.headers.removeAll { field in
                HopByHop.isHopByHop(field.name, nominated: nominated) || replaced(field.name)
                    || (replacesCORS && isAccessControlField(field.name))
            }
            for i in extraFields.indices {
                if mergesVary && extraFields[i].name.asciiCaseInsensitiveEquals(literal: "Vary") {
                    CORSPolicy.mergeVary(&out.headers, adding: extraFields[i].value)
                } else {
                    out.headers.add(extraFields[i].name, extraFields[i].value)
                }
            }
            return out
        }
    }

    private static func isAccessControlField(_ name: String) -> Bool {
        guard name.utf8.count > 15 else { return false }
        // `| 0x20` folds the letters' case; every byte of the prefix has that bit set, so this is the byte-wise
        // `b | 0x20 == prefix byte` test, eight bytes at a time (bytes 0–7 and 7–14).
        return name.utf8.withContiguousStorageIfAvailable { b in
            guard let p = UnsafeRawPointer(b.baseAddress) else { return false }
            let first = p.loadUnaligned(as: UInt64.self) | 0x2020_2020_2020_2020
            let second = p.loadUnaligned(fromByteOffset: 7, as: UInt64.self) | 0x2020_2020_2020_2020
            // "access-c" and "control-" as little-endian words.
            return first == UInt64(littleEndian: 0x632D_7373_6563_6361)
                && second == UInt64(littleEndian: 0x2D6C_6F72_746E_6F63)
        } ?? name.utf8.prefix(15).elementsEqual("access-control-".utf8) { $0 | 0x20 == $1 }
    }
}

/// Runs the judgement for each exchange and, when it says forward, relays the exchange through the loop's pool.
final class ForwardingHandler: RequestHandler {
    let context: LoopContext
    let judge: (Exchange) -> Judgement

    init(context: LoopContext, judge: @escaping (Exchange) -> Judgement) {
        self.context = context
        self.judge = judge
    }

    func handle(_ exchange: Exchange) {
        switch judge(exchange) {
        case .respond(let response, let decision):
            exchange.decision = decision
            exchange.writer?.send(response, isHEAD: exchange.head.method == "HEAD")
        case .forward(let origin, let extra, let decision):
            exchange.decision = decision
            forward(exchange, origin: origin, responseHeaders: extra)
        }
    }

    /// Relays `exchange` to `origin`; `responseHeaders` replace the upstream's CORS and rate-limit fields.
    func forward(_ exchange: Exchange, origin: UpstreamOrigin, responseHeaders: HTTPFields) {
        let relay = UpstreamRelay(exchange: exchange, origin: origin, extraHeaders: responseHeaders, handler: self)
        #if DEBUG
            relay.liveToken = LiveObjectCount.Token(context.gateway.liveRelays)
        #endif
        // The exchange holds its relay until the relay is done or cancelled (the pair is a cycle until then).
        exchange.upstreamRelay = relay
        relay.start()
    }

    func cancel(_ exchange: Exchange) {
        let relay = exchange.upstreamRelay
        exchange.upstreamRelay = nil
        // The client left while the tenant's answer was on its way: logged as that, not as an upstream failure.
        if relay != nil && !exchange.finished { exchange.decision = "client_closed" }
        relay?.cancel()
    }

    func needsWholeBody(_ head: RequestHead) -> Bool { false }

    func relayDone(_ exchange: Exchange) {
        exchange.upstreamRelay = nil
    }
}

/// Carries one exchange to the upstream and its response back, with backpressure from the client side.
final class UpstreamRelay: UpstreamResponseHandler {
    let exchange: Exchange
    let origin: UpstreamOrigin
    let extraHeaders: HTTPFields
    let handler: ForwardingHandler
    private var connection: UpstreamConnection?
    private let pool: UpstreamPool
    private var attempts = 0
    private var headSent = false
    /// The client-side head, held until the body's first bytes, its end, or the upstream pausing: a body whose
    /// framing turns out broken in the same read can still be answered with a 502 instead of a cut-off response.
    private var heldHead: (head: ResponseHead, bodyLength: Int?)?
    private var cancelled = false
    /// Set once the response head arrived: from then on the client side draining resumes reading the upstream.
    private var resumesOnClientWritable = false

    init(exchange: Exchange, origin: UpstreamOrigin, extraHeaders: HTTPFields, handler: ForwardingHandler) {
        self.exchange = exchange
        self.origin = origin
        self.extraHeaders = extraHeaders
        self.handler = handler
        self.pool = handler.context.pool(for: origin)
    }

    func start() {
        attempts += 1
        let pool = self.pool
        let retry = attempts > 1
        // Usually a kept-alive connection is idle: take it without a callback.
        if !retry, let idle = pool.takeIdle() {
            send(on: idle)
            return
        }
        pool.acquire(fresh: retry) { [weak self] result in
            guard let self, !self.cancelled else {
                if case .success(let c) = result { pool.release(c, reusable: true) }
                return
            }
            switch result {
            case .success(let connection):
                self.send(on: connection)
            case .failure(let failure):
                self.fail(failure)
            }
        }
    }

    private func send(on connection: UpstreamConnection) {
        let bytes: [UInt8]
        do {
            bytes = try ForwardRewrite.upstreamRequest(
                for: exchange, bodyLength: exchange.bodyLength, origin: origin)
        } catch {
            // Nothing was written: the connection goes back as it came. Keeping it unreleased would leave its
            // socket armed with no owner, and its next event would touch freed memory.
            pool.release(connection, reusable: true)
            fail(UpstreamFailure(status: 400, detail: "The request has a header that cannot be forwarded."))
            return
        }
        self.connection = connection
        exchange.upstreamStartNanos = handler.context.clock.nowNanoseconds()
        guard let stream = exchange.bodyStream else {
            connection.send(
                head: bytes, body: exchange.body, method: exchange.head.method, handler: self,
                timeoutMs: origin.responseTimeoutMs)
            return
        }
        connection.send(
            head: bytes, body: [], method: exchange.head.method, handler: self, timeoutMs: origin.responseTimeoutMs,
            bodyFollows: true)
        // The client's reading pauses while the upstream has more than its high-water mark unsent.
        connection.onDrained = { [weak stream] in stream?.resumeSource() }
        stream.attach(
            consumer: { [weak connection, weak stream] bytes in
                guard let connection else { return }
                if connection.writeBody(bytes) { stream?.pauseSource() }
            },
            onEnd: { [weak connection] in connection?.bodyFinished() })
    }

    /// RFC 9110 §15.2: a proxy MUST forward 1xx responses unless it asked for them itself. The gateway asks for
    /// none (it never sends Expect upstream), so even a 100 is passed on, but not to a client that expected one:
    /// the gateway answered that expectation itself, and a second 100 would tell it nothing. 101 never comes (no
    /// upgrade is forwarded).
    func upstreamInformational(_ head: ResponseHead) {
        guard head.status != 101, !headSent, let writer = exchange.writer else { return }
        if head.status == 100 && exchange.head.headers.contains("Expect") { return }
        writer.writeInformational(ForwardRewrite.downstreamHead(head, adding: HTTPFields()))
    }

    func upstreamHead(_ head: consuming ResponseHead, info: HTTP1ResponseInfo) {
        guard exchange.writer != nil else { return }
        headSent = true
        exchange.upstreamStatus = head.status
        if head.status >= 400 { exchange.tenantErrorBody = [] }
        let length: Int?
        if exchange.head.method == "HEAD" {
            // A HEAD answer keeps the framing the GET would have had (RFC 9110 §9.3.2): the upstream's length, or
            // none (chunked) when it gave none, never an invented 0.
            length = head.headers[literal: "Content-Length"].flatMap { Int($0) }
        } else {
            switch info.framing {
            case .none: length = 0
            case .contentLength(let n): length = n
            case .chunked, .untilClose: length = nil
            }
        }
        heldHead = (ForwardRewrite.downstreamHead(head, adding: extraHeaders), length)
        resumesOnClientWritable = true
    }

    /// The client side drained under its low-water mark: the upstream may be read again.
    func clientWritable() {
        if resumesOnClientWritable { connection?.setReading(true) }
    }

    private func writeHeldHead() {
        guard let held = heldHead else { return }
        heldHead = nil
        exchange.writer?.writeHead(held.head, bodyLength: held.bodyLength)
    }

    func upstreamPaused() { writeHeldHead() }

    func upstreamBody(_ bytes: UnsafeRawBufferPointer) {
        writeHeldHead()
        guard let writer = exchange.writer else { return }
        if let kept = exchange.tenantErrorBody?.count, kept < Exchange.tenantErrorBodyCap {
            exchange.tenantErrorBody!.append(contentsOf: bytes.prefix(Exchange.tenantErrorBodyCap - kept))
        }
        writer.writeBody(bytes)
        if !writer.canAcceptBody { connection?.setReading(false) }
    }

    func upstreamEnd() {
        writeHeldHead()
        exchange.upstreamEndNanos = handler.context.clock.nowNanoseconds()
        connection = nil
        handler.relayDone(exchange)
        exchange.writer?.end()
    }

    func upstreamFailed(_ failure: UpstreamFailure, retryable: Bool) {
        connection = nil
        guard !cancelled else { return }
        // A streamed body cannot be sent twice: part of it may already be gone. And a proxy never repeats a
        // request on its own unless it is idempotent (RFC 9110 §9.2.2), as nginx and HAProxy do.
        if retryable && !headSent && attempts < 2 && exchange.bodyStream == nil
            && Self.isIdempotent(exchange.head.method)
        {
            start()
            return
        }
        fail(failure)
    }

    /// RFC 9110 §9.2.2: the methods whose repetition the server takes as one request.
    static func isIdempotent(_ method: String) -> Bool {
        switch method {
        case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE": return true
        default: return false
        }
    }

    private func fail(_ failure: UpstreamFailure) {
        // The client left first: closing the upstream connection is not the upstream's failure.
        guard !cancelled else { return }
        handler.relayDone(exchange)
        exchange.bodyStream?.discard()
        guard let writer = exchange.writer else { return }
        if headSent && heldHead == nil {
            // The client sees the answer cut off (a reset, or a close before its end); the logs must not call it
            // a success: it counts as the gateway's 502, with what failed.
            exchange.upstreamStatus = nil
            exchange.tenantErrorBody = nil
            exchange.decision = "upstream_aborted"
            exchange.facts.error = TenantError.gateway(
                status: 502, detail: "The upstream's answer broke off before its end: \(failure.detail)")
            exchange.status = 502
            writer.abort()
            return
        }
        // Nothing of the answer reached the client yet: it gets a clean 502 instead, decided by the gateway.
        heldHead = nil
        resumesOnClientWritable = false
        exchange.upstreamStatus = nil
        exchange.tenantErrorBody = nil
        exchange.decision = "upstream_error"
        let error = TenantError.gateway(status: failure.status, detail: failure.detail)
        exchange.facts.error = error
        var response = error.response
        // The gateway's own fields still apply: CORS (with its Vary) so a browser can read the failure, and the
        // rate-limit fields, since the request was admitted and spent its quota unit.
        for field in extraHeaders { response.head.headers.set(field.name, field.value) }
        writer.send(response, isHEAD: exchange.head.method == "HEAD")
    }

    /// Counts this relay as alive until it is freed (debug builds; see `LiveObjectCount`).
    var liveToken: LiveObjectCount.Token?

    func cancel() {
        cancelled = true
        if let connection, !connection.isUsable { connection.close() }
        connection = nil
    }
}
