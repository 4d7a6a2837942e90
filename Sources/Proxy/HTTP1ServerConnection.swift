import EventLoop
import GatewayCore
import HTTP1

/// The HTTP/1.1 side of a client connection: parses requests, runs them one at a time (pipelined requests wait
/// their turn, so responses leave in order), and writes responses with the right framing.
///
/// Loop-confined. A request the parser refuses gets its 4xx/5xx answer and the connection closes; nothing of it
/// reaches a handler. Request bodies up to `RequestBodyStream.threshold`, and any body the handler reads (an
/// identity provider's strategy), are collected within the body limit before the handler runs; larger ones stream
/// to the upstream as they arrive, with backpressure. Responses stream with backpressure.
final class HTTP1ServerConnection: ResponseWriter {
    private let transport: Transport
    private let owner: ClientConnection
    private var parser: HTTP1RequestParser
    private var pendingInput: [UInt8] = []
    private var current: Exchange?
    private var currentHead: RequestHead?
    private var currentInfo: HTTP1RequestInfo?
    private var body: [UInt8] = []
    /// The body of `current` while it is still arriving.
    private var streaming: RequestBodyStream?
    private var responseChunked = false
    private var responseHeadWritten = false
    private var keepAlive = true
    private var closeAfterResponse = false
    private var isHEAD = false
    private var dead = false
    /// The client half-closed after its requests: each complete one is answered, then the connection closes.
    private var peerDone = false

    init(transport: Transport, owner: ClientConnection, limits: HTTP1Limits) {
        self.transport = transport
        self.owner = owner
        self.parser = HTTP1RequestParser(limits: limits)
        assert(HopByHop.names.allSatisfy { Self.watchedNameLengths & (1 << UInt64($0.utf8.count)) != 0 })
    }

    /// No request in flight and none partly read: a drain may close it at once (one being read is finished, and
    /// answered with `Connection: close`, within the header timeout, as nginx does).
    var isIdle: Bool { current == nil && !hasPartialRequest && pendingInput.isEmpty }
    var hasPartialRequest: Bool { currentHead != nil || parser.hasPartialRequest }
    /// The head arrived and its body is still being read.
    var isReadingBody: Bool { currentHead != nil }

    // MARK: - Input

    func received(_ bytes: UnsafeRawBufferPointer) {
        guard !dead else { return }
        if current != nil && streaming == nil {
            // Busy with a response: keep later pipelined bytes until it is done, within a bound.
            pendingInput.append(contentsOf: bytes)
            if pendingInput.count > 64 * 1024 { transport.setReading(false) }
            return
        }
        // The first bytes of a request on an idle keep-alive connection: from here its head has the header read
        // timeout, as the connection's first request had, not what is left of the idle timeout.
        if current == nil && !hasPartialRequest { owner.requestStarted() }
        parser.feed(bytes)
        drainParser()
    }

    /// `drainParser` is running: a response that ends inside it (one the gateway answers at once) leaves the next
    /// pipelined request to its loop instead of starting it from a nested call, so a long pipeline of such
    /// requests cannot grow the stack by a dispatch per request.
    private var drainingParser = false

    private func drainParser() {
        guard !drainingParser else { return }
        drainingParser = true
        defer { drainingParser = false }
        // While a body streams, its events keep coming for the request in flight; the next request waits.
        while !dead, current == nil || streaming != nil, let event = parser.next() {
            // Consumed, so the head and body move out of the event instead of being copied (retained) and the
            // event destroyed after.
            switch consume event {
            case .head(let head, let info):
                // Moved in, not copied: the usual request (no streamed body) never needs `head` again here.
                currentHead = consume head
                currentInfo = info
                body.removeAll(keepingCapacity: true)
                if info.expectContinue {
                    // RFC 9110 §10.1.1: a refusal the head already decides is sent at once, without asking for a
                    // body it would only discard; the connection then closes, as the client may send the body
                    // anyway.
                    if let wanted = currentHead,
                        owner.handler.refusesOnHead(wanted, listenerDomain: owner.profile.domain)
                    {
                        currentInfo = nil
                        dispatch(currentHead.take() ?? wanted, info, closeAfter: true)
                        return
                    }
                    transport.write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
                }
                if case .contentLength(let length) = info.framing, length > RequestBodyStream.threshold,
                    let wanted = currentHead, !owner.handler.needsWholeBody(wanted)
                {
                    let head = currentHead.take() ?? wanted
                    currentInfo = nil
                    let stream = RequestBodyStream(length: length)
                    stream.setSourcePaused = { [weak self] paused in self?.transport.setReading(!paused) }
                    stream.watch(
                        on: owner.context.loop, idleMs: owner.profile.idleTimeoutMs,
                        minBytesPerSecond: owner.profile.minBodyBytesPerSecond
                    ) { [weak self] verdict in self?.bodyStalled(verdict) }
                    streaming = stream
                    dispatch(head, info, stream: stream)
                }
            case .body(let bytes):
                if let streaming {
                    bytes.withUnsafeBytes { streaming.deliver($0) }
                } else {
                    body.append(contentsOf: bytes)
                    owner.wholeBodyGrew(to: body.count)
                }
            case .trailers:
                break  // trailers are not forwarded: the upstream request is re-framed with Content-Length
            case .end:
                if let stream = streaming {
                    streaming = nil
                    stream.finish()
                    continue
                }
                // Taken rather than copied and then cleared: one retain and release of every string fewer. The
                // two are always set together.
                guard let head = currentHead.take(), let info = currentInfo.take() else { return }
                dispatch(head, info)
            case .error(let error):
                refuse(error)
                return
            }
        }
    }

    private func dispatch(
        _ head: RequestHead, _ info: HTTP1RequestInfo, stream: RequestBodyStream? = nil, closeAfter: Bool = false
    ) {
        keepAlive = info.keepAlive && !owner.isDraining && !closeAfter
        isHEAD = head.method == "HEAD"
        responseHeadWritten = false
        let exchange = owner.makeExchange(head: head, body: body, writer: self)
        body = []
        if let stream { exchange.attach(stream) }
        current = exchange
        owner.dispatch(exchange)
    }

    /// The client stopped sending a streamed body, or trickles it, while an upstream connection waits for it: a 408
    /// (RFC 9110 §15.5.9) when nothing of an answer was sent yet, else just the close; either way the upstream
    /// exchange is abandoned.
    private func bodyStalled(_ verdict: BodyArrivalJudge.Verdict) {
        guard let exchange = current, !dead else { return }
        streaming?.discard()
        streaming = nil
        let error = owner.abandonStalledBody(exchange, verdict)
        keepAlive = false
        if responseHeadWritten {
            transport.close()
            return
        }
        send(error.response)
    }

    private func refuse(_ error: HTTP1Error) {
        dead = true
        owner.metrics.parserRefusal(status: error.status)
        let tenantError = TenantError.gateway(
            status: error.status,
            // Only a 400 is a malformed request; a 413, 414, 417, 431, 501 or 505 is a well-formed one refused.
            detail: error.status == 400
                ? "The request is malformed: \(error.reason)." : "The request was refused: \(error.reason).")
        var response = tenantError.response
        response.head.headers.set("Connection", "close")
        keepAlive = false
        responseHeadWritten = false
        // The access log still gets a line for a request refused before its head was complete.
        let head = currentHead ?? parser.refusedHead ?? RequestHead(method: "-", target: "-", version: .http1_1)
        // RFC 9110 §9.3.2: no content in any answer to HEAD, the gateway's refusals included, once the request
        // line said HEAD.
        isHEAD = (currentHead?.method ?? parser.refusedMethod) == "HEAD"
        let exchange = owner.makeExchange(head: head, body: [], writer: self)
        exchange.decision = "refused_malformed"
        if head.method != "-" { owner.handler.describeRefusal(exchange, error: tenantError) }
        current = exchange
        send(response)
    }

    // MARK: - ResponseWriter

    var canAcceptBody: Bool { !transport.isOverHighWater }

    func writeInformational(_ head: ResponseHead) {
        // RFC 9110 §15.2: never to an HTTP/1.0 client.
        guard !responseHeadWritten, !transport.closed, current?.head.version == .http1_1 else { return }
        do {
            var capacity = 64 + head.reason.utf8.count
            for field in head.headers { capacity += field.name.utf8.count + field.value.utf8.count + 4 }
            var out = try HTTP1HeadBuilder(status: head.status, reason: head.reason, capacity: capacity)
            // Hop-by-hop fields were removed on the way down (ForwardRewrite.downstreamHead).
            for field in head.headers { try out.add(field.name, field.value) }
            transport.write(out.finish())
        } catch {
            // A field that cannot be written safely: the hint is only advice, the final answer follows.
        }
    }

    func writeHead(_ head: ResponseHead, bodyLength: Int?) {
        guard !responseHeadWritten, !transport.closed else { return }
        responseHeadWritten = true
        // A drain that began after the request came in: the client learns from this answer that the connection
        // ends with it (RFC 9112 §9.6), rather than sending its next request into the close.
        if owner.isDraining { keepAlive = false }
        current?.status = head.status
        let bodyAllowed = !HTTPStatus.forbidsBody(head.status)
        responseChunked = false
        // The framing field this connection writes: nil, a Content-Length (>= 0), or -1 for chunked.
        var framing: Int?
        if bodyAllowed {
            if let bodyLength {
                framing = bodyLength
            } else if current?.head.version == .http1_1 {
                framing = -1
                responseChunked = !isHEAD
            } else {
                // An HTTP/1.0 client: the body ends when the connection does.
                keepAlive = false
            }
        }
        // An answer that starts before the request body has all arrived ends the connection (see `end`); say so.
        if streaming?.isOpen == true { keepAlive = false }
        // Written straight from the head's fields: hop-by-hop ones dropped, the framing and Connection set here.
        let replacesLength = framing != nil
        func passes(_ name: String) -> Bool {
            !HopByHop.set.contains(name)
                && !(replacesLength && name.asciiCaseInsensitiveEquals(literal: "Content-Length"))
        }
        do {
            // A guess, not a pass over the fields to add up their sizes: most heads fit, a larger one grows once.
            let capacity = 160 + head.reason.utf8.count + 64 * head.headers.count
            var out = try HTTP1HeadBuilder(status: head.status, reason: head.reason, capacity: capacity)
            var hasDate = false
            // By index into the borrowed head's array: each field is read in place, not copied (retained) as a
            // for-in loop would, nor loaded from a pointer (which a call makes the compiler copy).
            let fields = head.headers.fields
            for i in fields.indices {
                // Only a name of a length some dropped or watched name has needs a closer look.
                let n = fields[i].name.utf8.count
                if n >= 64 || Self.watchedNameLengths & (1 << UInt64(n)) != 0 {
                    if fields[i].name.asciiCaseInsensitiveEquals(literal: "Date") {
                        hasDate = true
                    } else if !passes(fields[i].name) {
                        continue
                    }
                }
                try out.add(fields[i].name, fields[i].value)
            }
            // RFC 9110 §6.6.1: the gateway's own answers need one, and a forwarded one without it gets one.
            let date = hasDate ? nil : owner.context.httpDate
            if let date { try out.add(constant: "Date", date) }
            if let framing {
                if framing >= 0 {
                    out.add(constant: "Content-Length", decimal: framing)
                } else {
                    try out.add(constant: "Transfer-Encoding", "chunked")
                }
            }
            // An HTTP/1.0 client keeps the connection only when the answer says so (RFC 9112 Appendix C.2.2).
            let acknowledgesKeepAlive = keepAlive && current?.head.version == .http1_0
            if !keepAlive {
                try out.add(constant: "Connection", "close")
            } else if acknowledgesKeepAlive {
                try out.add(constant: "Connection", "keep-alive")
            }
            if let capture = current?.capture {
                var written = ResponseHead(status: head.status, reason: head.reason)
                for field in head.headers where passes(field.name) { written.headers.add(field.name, field.value) }
                if let date { written.headers.add("Date", date) }
                if let framing {
                    if framing >= 0 {
                        written.headers.add("Content-Length", String(framing))
                    } else {
                        written.headers.add("Transfer-Encoding", "chunked")
                    }
                }
                if !keepAlive { written.headers.add("Connection", "close") }
                if acknowledgesKeepAlive { written.headers.add("Connection", "keep-alive") }
                capture.head(written, nanos: owner.context.clock.nowNanoseconds())
            }
            out.finish { transport.write($0) }
        } catch {
            // An upstream header we cannot write safely (CR/LF inside): answer 502 instead.
            responseHeadWritten = false
            let failure = TenantError.gateway(status: 502, detail: "The upstream response had an invalid header.")
            writeHead(failure.response.head, bodyLength: failure.response.body.count)
            failure.response.body.withUnsafeBytes { writeBody($0) }
            end()
            return
        }
    }

    /// Bit n: a hop-by-hop name, `Content-Length` or `Date` is n bytes long; `writeHead` looks closer only at names
    /// of those lengths.
    /// A constant rather than computed from `HopByHop.names` (a global would cost a lazy-initialisation check on
    /// every access); `init` asserts that it covers them, so every debug-built test run checks it.
    private static var watchedNameLengths: UInt64 {
        1 << 2 | 1 << 4 | 1 << 7 | 1 << 10 | 1 << 14 | 1 << 16 | 1 << 17 | 1 << 18 | 1 << 19
    }

    func writeBody(_ bytes: UnsafeRawBufferPointer) {
        guard responseHeadWritten, !isHEAD, bytes.count > 0, !transport.closed else { return }
        current?.bytesOut += bytes.count
        current?.capture?.body(bytes)
        if responseChunked {
            transport.write(Array(String(bytes.count, radix: 16).utf8) + [13, 10])
            transport.write(bytes)
            transport.write([13, 10])
        } else {
            transport.write(bytes)
        }
    }

    func end() {
        guard let exchange = current else { return }
        if responseChunked { transport.write(Array("0\r\n\r\n".utf8)) }
        current = nil
        if let stream = streaming {
            // Answered before the body finished arriving: the rest cannot be told apart from a next request
            // without reading it all, so the connection ends after this response.
            streaming = nil
            stream.discard()
            keepAlive = false
        }
        owner.finished(exchange)
        if !keepAlive || dead {
            transport.closeGracefully()
            return
        }
        owner.requestIdle()
        // Resume pipelined input that arrived while this response was in flight.
        if !pendingInput.isEmpty {
            let input = pendingInput
            pendingInput = []
            if !peerDone { transport.setReading(true) }
            input.withUnsafeBytes { parser.feed($0) }
        }
        drainParser()
        // Nothing more will arrive: once no request is left to answer (a partial one can never complete), done.
        if peerDone && current == nil { transport.closeGracefully() }
    }

    /// The client finished sending. A request read whole and in flight (and any pipelined after it) is still
    /// answered: a FIN closes one direction only (RFC 9293 §3.6), and RFC 9112 §9.6 has a client close in stages.
    /// With no request in flight, or one whose body was still arriving (cut short), the connection just ends.
    func peerFinishedSending() -> Bool {
        guard !dead, current != nil, streaming == nil, currentHead == nil else { return false }
        peerDone = true
        return true
    }

    func abort() {
        guard let exchange = current else { return }
        current = nil
        streaming?.discard()
        streaming = nil
        owner.finished(exchange)
        transport.close()
    }

    func transportDrained() { current?.upstreamRelay?.clientWritable() }

    /// The client is gone: tell the handler so upstream work stops.
    func connectionClosed() {
        dead = true
        streaming?.discard()
        streaming = nil
        if let exchange = current {
            current = nil
            owner.handler.cancel(exchange)
            owner.finished(exchange)
        }
    }
}

/// Hop-by-hop fields (RFC 9110 §7.6.1) that never cross the proxy in either direction.
enum HopByHop {
    static let names = [
        "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "TE", "Trailer",
        "Proxy-Authenticate", "Proxy-Authorization",
    ]

    static let set = FieldNameSet(names)

    /// Whether `name` is hop-by-hop: a fixed one, or one that `nominated` (from `nominatedFields(in:)`) lists.
    ///
    /// On every request's and response's path, so the common case costs one length test.
    @inline(__always)
    static func isHopByHop(_ name: String, nominated: [String]) -> Bool {
        set.contains(name) || isNominated(name, nominated)
    }

    /// Whether `nominated` (from `nominatedFields(in:)`) lists `name`.
    @inline(__always)
    static func isNominated(_ name: String, _ nominated: [String]) -> Bool {
        !nominated.isEmpty && nominated.contains { name.asciiCaseInsensitiveEquals($0) }
    }

    /// The field names the Connection fields list (usually none: `keep-alive` and `close` are options).
    static func nominatedFields(in headers: HTTPFields) -> [String] {
        var nominated: [String] = []
        // Through the array's buffer: the loop reads each field in place instead of copying (retaining) it.
        headers.fields.withUnsafeBufferPointer { fields in
            for i in fields.indices
            where fields[i].name.asciiCaseInsensitiveEquals(literal: "Connection") {
                // The usual value is one option alone, which names no field: no need to walk the list.
                let value = fields[i].value
                if value.asciiCaseInsensitiveEquals(literal: "keep-alive")
                    || value.asciiCaseInsensitiveEquals(literal: "close")
                {
                    continue
                }
                appendNominated(in: value, to: &nominated)
            }
        }
        return nominated
    }

    /// The field names a Connection value lists; `close` and `keep-alive` are options, not names.
    private static func appendNominated(in value: String, to nominated: inout [String]) {
        var value = value
        value.withUTF8 { bytes in
            var i = 0
            while i < bytes.count {
                while i < bytes.count && (bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x2C) { i += 1 }
                let start = i
                while i < bytes.count && bytes[i] != 0x2C { i += 1 }
                var end = i
                while end > start && (bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09) { end -= 1 }
                guard end > start else { continue }
                let token = UnsafeBufferPointer(rebasing: bytes[start..<end])
                if asciiCaseInsensitiveEquals(token, lowercase: "close")
                    || asciiCaseInsensitiveEquals(token, lowercase: "keep-alive")
                {
                    continue
                }
                nominated.append(String(decoding: token, as: UTF8.self))
            }
        }
    }
}
