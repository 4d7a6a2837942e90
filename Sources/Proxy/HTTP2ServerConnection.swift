import HTTP1
import EventLoop
import GatewayCore
import HTTP2

/// The HTTP/2 side of a client connection: an nghttp2 server session fed with the transport's plaintext, one
/// exchange per stream, responses submitted as they come and output pulled under a high-water mark.
///
/// Loop-confined. Request bodies are collected per stream (bounded by the session's body limit) before the
/// handler runs; their flow-control window reopens as the bytes are taken.
final class HTTP2ServerConnection {
    static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let transport: Transport
    private unowned let owner: ClientConnection
    private let session: HTTP2ServerSession
    private var streams = StreamMap<HTTP2StreamWriter>()
    private var output: [UInt8] = []
    /// A connection error: close once the GOAWAY is written.
    private var closing = false
    /// A graceful GOAWAY went out (shutdown, idle): close once the streams in flight have finished.
    private var draining = false
    /// The owner was told the connection has no stream open, and no stream opened since.
    private var idleReported = false
    private var processing = false
    private var flushing = false
    private var flushAgain = false

    init(transport: Transport, owner: ClientConnection) {
        self.transport = transport
        self.owner = owner
        var limits = HTTP2Limits()
        // The listener's body and header limits hold on both protocols: the header bytes as HTTP/2 counts them
        // (RFC 9113 §6.5.2, 32 more per field than the HTTP/1.1 section's ": " and CRLF), the fields with room for
        // the pseudo-headers HTTP/1.1 carries in its request line and Host.
        let http1 = owner.profile.http1Limits
        limits.maxRequestBodyBytes = http1.maxBodyBytes
        limits.maxHeaderListSize = http1.maxHeaderBytes
        limits.maxHeaderCount = http1.maxHeaderCount + 5
        self.session = HTTP2ServerSession(limits: limits, clock: owner.context.clock)
    }

    // Cleared here so the transport (which may outlive this object while a flush is queued) never calls into it;
    // that is what lets `start` capture unowned instead of weak (no side table on this object).
    deinit { transport.willFlush = nil }

    func start() {
        transport.willFlush = { [unowned self] in self.flushSession() }
        flushSession()
    }

    func received(_ bytes: UnsafeRawBufferPointer) {
        session.feed(bytes)
        processEvents()
        // A request head left half sent on a quiet connection has the header timeout, as over HTTP/1.1 (its
        // stream, and the stream's own deadlines, only begin once the block is whole).
        if session.headerBlockOpen && streams.isEmpty { owner.headerBlockStarted() }
        transport.requestFlush()
    }

    private func processEvents() {
        // Handlers may answer at once, which flushes, which may surface events: the outer call keeps pulling.
        guard !processing else { return }
        processing = true
        defer { processing = false }
        while true {
            // Switching on the call's result moves the payloads out; binding the event first made Swift copy and
            // destroy the whole optional enum through generic value witnesses (about 900 instructions a request).
            switch session.nextEvent() {
            case nil:
                return
            case .request(let streamID, let head, let endStream):
                owner.context.requestMetrics.h2StreamOpened()
                let streamed: Int? =
                    if !endStream, let length = head.headers[literal: "content-length"].flatMap({ Int($0) }),
                        length > RequestBodyStream.threshold, length <= session.limits.maxRequestBodyBytes,
                        !owner.handler.needsWholeBody(head)
                    { length } else { nil }
                // RFC 9110 §10.1.1, as over HTTP/1.1: a refusal the head already decides is sent at once instead
                // of a 100 asking for a body it would only discard; the body that still comes is drained.
                let refusedOnHead =
                    !endStream && session.expectsContinue(streamID: streamID)
                    && owner.handler.refusesOnHead(head, listenerDomain: owner.profile.domain)
                let writer = HTTP2StreamWriter(streamID: streamID, connection: self, head: head)
                streams[streamID] = writer
                if idleReported {
                    // Busy again: an open stream has deadlines of its own (its body's, its exchange's).
                    idleReported = false
                    owner.streamsBusy()
                }
                if endStream || refusedOnHead {
                    dispatch(writer)
                } else {
                    session.sendContinue(streamID: streamID)
                    if let streamed {
                        startStreaming(writer, length: streamed)
                    } else {
                        // As over HTTP/1.1, a body read whole has the header timeout, and more as it arrives.
                        writer.headDeadline = owner.context.coarseDeadline(
                            afterMilliseconds: owner.profile.headerReadTimeoutMs)
                        writer.bodyDeadline = writer.headDeadline
                    }
                }
            case .data(let streamID, let bytes):
                guard let writer = streams[streamID] else {
                    session.consume(streamID: streamID, count: bytes.count)
                    continue
                }
                if let stream = writer.bodyStream {
                    bytes.withUnsafeBytes { stream.deliver($0) }
                    // A paused stream keeps its bytes unconsumed, so the client's window closes: backpressure.
                    if writer.sourcePaused {
                        writer.unconsumed += bytes.count
                        continue
                    }
                } else if writer.exchange == nil {
                    writer.body.append(contentsOf: bytes)
                    if writer.bodyDeadline != .max {
                        let earned = owner.wholeBodyDeadline(
                            headDeadline: writer.headDeadline, received: writer.body.count)
                        writer.bodyDeadline = max(writer.bodyDeadline, earned)
                    }
                }  // else answered before its body (a refusal on the head): the rest is not kept
                session.consume(streamID: streamID, count: bytes.count)
            case .endStream(let streamID):
                if let writer = streams[streamID] {
                    if let stream = writer.bodyStream { stream.finish() } else { dispatch(writer) }
                }
            case .requestBodyTooLarge(let streamID):
                guard let writer = streams[streamID], writer.exchange == nil else { continue }
                dispatch(writer, refusing: .tooLarge)
            case .readyForBody(let streamID):
                streams[streamID]?.bufferFull = false
                streams[streamID]?.exchange?.upstreamRelay?.clientWritable()
            case .reset(let streamID, _):
                guard let writer = streams.removeValue(forKey: streamID) else { continue }
                owner.context.requestMetrics.h2StreamsClosed()
                if let exchange = writer.exchange {
                    writer.bodyStream?.discard()
                    owner.handler.cancel(exchange)
                    owner.finished(exchange)
                }
            case .goaway:
                continue
            case .connectionError:
                // RFC 9113 §5.4.1: after the GOAWAY of a connection error the connection is closed, so no answer
                // can reach the client: the requests in flight are given up now, not when the socket finally
                // closes (their upstream answers would otherwise still arrive and be written nowhere).
                closing = true
                abandonStreams()
            }
        }
    }

    /// A stream's client stopped sending its body, or sends it too slowly: 408 when no answer started (the rest of
    /// the upload is then drained and the stream reset, as for any early answer), else a reset; the upstream
    /// exchange is abandoned.
    private func bodyStalled(_ writer: HTTP2StreamWriter, _ verdict: BodyArrivalJudge.Verdict) {
        guard let exchange = writer.exchange, !exchange.finished else { return }
        writer.bodyStream?.discard()
        let error = owner.abandonStalledBody(exchange, verdict)
        if writer.headWritten {
            writer.abort()
        } else {
            writer.send(error.response)
        }
    }

    /// Hands the exchange to the handler now; the body follows through a `RequestBodyStream`.
    private func startStreaming(_ writer: HTTP2StreamWriter, length: Int) {
        let stream = RequestBodyStream(length: length)
        writer.bodyStream = stream
        stream.watch(
            on: owner.context.loop, idleMs: owner.profile.idleTimeoutMs,
            minBytesPerSecond: owner.profile.minBodyBytesPerSecond
        ) { [weak self, weak writer] verdict in
            guard let self, let writer else { return }
            self.bodyStalled(writer, verdict)
        }
        stream.setSourcePaused = { [weak self, weak writer] paused in
            guard let self, let writer else { return }
            writer.sourcePaused = paused
            if !paused && writer.unconsumed > 0 {
                session.consume(streamID: writer.streamID, count: writer.unconsumed)
                writer.unconsumed = 0
                transport.requestFlush()
            }
        }
        dispatch(writer)
    }

    /// Why a request is answered by the connection itself instead of its handler.
    private enum BodyRefusal {
        case tooLarge
        case late
    }

    private func dispatch(_ writer: HTTP2StreamWriter, refusing refusal: BodyRefusal? = nil) {
        guard writer.exchange == nil, let head = writer.requestHead.take() else { return }
        let body = writer.body
        writer.body = []
        let exchange = owner.makeExchange(head: head, body: body, writer: writer)
        if let stream = writer.bodyStream { exchange.attach(stream) }
        writer.exchange = exchange
        if let refusal {
            let error =
                refusal == .tooLarge
                ? TenantError.gateway(status: 413, detail: "The request body is larger than allowed.")
                : TenantError.gateway(status: 408, detail: "The request body did not arrive in time.")
            exchange.decision = refusal == .tooLarge ? "refused_malformed" : "refused_timeout"
            owner.handler.describeRefusal(exchange, error: error)
            writer.send(error.response)
            return
        }
        owner.dispatch(exchange)
    }

    /// Called by the sweeper:
    /// - a request whose body is read whole and has not all come by its deadline gets 408 (RFC 9110 §15.5.9); the
    ///   rest of its upload is drained as for any early answer;
    /// - a response that has waited `idle_timeout_ms` for a window its client does not open, with no byte taken,
    ///   is reset (CANCEL) and its upstream exchange let go, as nghttpx's stream write timeout does: the
    ///   connection-wide check (`ClientConnection`) misses a client that PINGs or keeps its other streams moving,
    ///   and each such stream would hold an upstream connection for as long as the client likes.
    func sweep(now: Int64) {
        guard !streams.isEmpty else { return }
        var late: [HTTP2StreamWriter] = []
        var stalled: [HTTP2StreamWriter] = []
        let stallLimit = Int64(owner.profile.idleTimeoutMs) * 1_000_000
        for writer in streams.values {
            guard writer.exchange != nil else {
                if writer.bodyDeadline < now { late.append(writer) }
                continue
            }
            guard let progress = session.responseProgress(streamID: writer.streamID), progress.waiting else {
                writer.sendProgress.reset()
                continue
            }
            if writer.sendProgress.stalled(count: progress.sent, now: now, limit: stallLimit) { stalled.append(writer) }
        }
        guard !late.isEmpty || !stalled.isEmpty else { return }
        for writer in late { dispatch(writer, refusing: .late) }
        for writer in stalled { resetStalled(writer) }
        flushSession()
    }

    private func resetStalled(_ writer: HTTP2StreamWriter) {
        guard let exchange = writer.exchange, !exchange.finished else { return }
        owner.metrics.clientStalled()
        writer.bodyStream?.discard()
        owner.handler.cancel(exchange)
        writer.abort(errorCode: .cancel)
    }

    /// Pulls frames out of the session while the transport is under its high-water mark. Re-entrant calls (a
    /// handler answering during event processing) only ask the outer call for another round.
    func flushSession() {
        if flushing {
            flushAgain = true
            return
        }
        flushing = true
        var wrote = false
        repeat {
            flushAgain = false
            while !transport.closed && !transport.isOverHighWater {
                output.removeAll(keepingCapacity: true)
                session.pendingOutput(into: &output, maxBytes: 64 * 1024)
                let produced = !output.isEmpty
                if produced {
                    transport.write(taking: &output)
                    wrote = true
                }
                // Writing can surface events too (a connection error nghttp2 found is reported with its GOAWAY).
                processEvents()
                // A re-entrant call (from a handler, or from the transport flushing at its high-water mark) is
                // served by the outer loop; spinning here on an empty session would never end.
                if !produced { break }
            }
        } while flushAgain && !transport.closed
        flushing = false
        // An exchange ends when its answer is handed to the session, which may still hold the last of it for a
        // client that opens its window slowly: the connection is quiet only once the session's streams are closed
        // too (closing it earlier cut those answers short, with a GOAWAY that said NO_ERROR).
        let answersLeaving = streams.isEmpty && session.hasResponsesInFlight
        // Also closed when the session is done by the client's doing: after its GOAWAY, once no stream is open,
        // nghttp2 reads nothing more, so the connection would only sit there until the idle timeout.
        if (closing || (streams.isEmpty && !answersLeaving && (draining || !session.wantsRead)))
            && !session.wantsWrite
        {
            transport.closeGracefully()
        } else if streams.isEmpty && !closing && !draining
            && (!idleReported || (answersLeaving && wrote && !session.headerBlockOpen))
        {
            // Once per quiet spell, from its start: frames that open no stream (PINGs, SETTINGS, a header block
            // trickled a byte at a time) do not push the idle deadline back, or they would hold the connection.
            // Answers still leaving do, each time some of them leaves (but never past a header block's shorter
            // deadline): a client taking nothing for the idle timeout is stalled, and is cut like one.
            idleReported = true
            owner.streamsIdle()
        }
    }

    func transportDrained() {
        flushSession()
        for writer in streams.values { writer.exchange?.upstreamRelay?.clientWritable() }
    }

    func streamFinished(_ writer: HTTP2StreamWriter) {
        if streams.removeValue(forKey: writer.streamID) != nil { owner.context.requestMetrics.h2StreamsClosed() }
        // Answered before the body ended: the rest is consumed and dropped as it arrives.
        if let stream = writer.bodyStream, stream.isOpen { stream.discard() }
        if let exchange = writer.exchange { owner.finished(exchange) }
        transport.requestFlush()
    }

    func submitHead(_ writer: HTTP2StreamWriter, _ head: ResponseHead, contentLength: Int?, hasBody: Bool) {
        writer.exchange?.status = head.status
        if let capture = writer.exchange?.capture {
            var written = head
            if let contentLength { written.headers.set("Content-Length", String(contentLength)) }
            capture.head(written, nanos: owner.context.clock.nowNanoseconds())
        }
        _ = session.submitResponseHead(
            streamID: writer.streamID, head: head, hasBody: hasBody, contentLength: contentLength,
            date: owner.context.httpDate)
        // Frames leave when the transport flushes at the end of the loop's current events, not one by one.
        if !hasBody { streamFinished(writer) } else { transport.requestFlush() }
    }

    func submitInformational(_ writer: HTTP2StreamWriter, _ head: ResponseHead) {
        if session.submitInformational(streamID: writer.streamID, head: head) { transport.requestFlush() }
    }

    /// Queues body bytes; false when the stream wants no more for now: gone, or its buffer past the high-water
    /// mark, where the producer waits for `.readyForBody` (a slow reader must throttle the upstream, not fill
    /// memory with the whole response).
    func submitBody(_ writer: HTTP2StreamWriter, _ bytes: UnsafeRawBufferPointer) -> Bool {
        writer.exchange?.bytesOut += bytes.count
        writer.exchange?.capture?.body(bytes)
        let accepted = session.appendBody(streamID: writer.streamID, bytes: bytes)
        transport.requestFlush()
        return accepted && session.wantsMoreBody(streamID: writer.streamID)
    }

    func submitEnd(_ writer: HTTP2StreamWriter) {
        _ = session.endBody(streamID: writer.streamID)
        streamFinished(writer)
    }

    func submitReset(_ writer: HTTP2StreamWriter, errorCode: HTTP2ErrorCode) {
        session.resetStream(streamID: writer.streamID, errorCode: errorCode)
        streamFinished(writer)
    }

    var outputOverHighWater: Bool { transport.isOverHighWater }

    /// See `HTTP2ServerSession.hasOutputWaitingForWindow`.
    var outputWaitingForWindow: Bool { session.hasOutputWaitingForWindow }

    /// Ends a connection whose client took nothing of what it is owed for the idle timeout: GOAWAY
    /// (ENHANCE_YOUR_CALM: it holds the gateway's resources) and close, whatever streams are open.
    func closeStalled() {
        session.goAway(errorCode: .enhanceYourCalm)
        closing = true
        flushSession()
        if !transport.closed { transport.closeGracefully() }
    }

    /// The first GOAWAY of a graceful shutdown (last stream 2^31-1): the client opens no new stream, those it
    /// already sent are still taken until `goAwayAndClose`.
    func announceShutdown() {
        session.shutdownNotice()
        flushSession()
    }

    /// Graceful: no new streams (RFC 9113 §6.8); those already accepted are answered, then the connection closes.
    func goAwayAndClose() {
        // Once: the idle timeout and the shutdown's final step may both ask.
        guard !draining else { return }
        draining = true
        session.goAway()
        flushSession()
    }

    func connectionClosed() { abandonStreams() }

    private func abandonStreams() {
        let abandoned = streams.values
        if !streams.isEmpty { owner.context.requestMetrics.h2StreamsClosed(streams.count) }
        streams.removeAll()
        for writer in abandoned {
            if let exchange = writer.exchange {
                owner.handler.cancel(exchange)
                owner.finished(exchange)
            }
        }
    }
}

/// The response side of one HTTP/2 stream.
final class HTTP2StreamWriter: ResponseWriter {
    let streamID: Int32
    unowned let connection: HTTP2ServerConnection
    /// The request head until `dispatch` moves it into the exchange (a copy would retain each of its strings).
    var requestHead: RequestHead?
    let isHEADRequest: Bool
    var body: [UInt8] = []
    var exchange: Exchange?
    /// When a body read whole must have arrived (`.max`: none is awaited), and its head's deadline, from which the
    /// bytes received earn more time.
    var bodyDeadline: Int64 = .max
    var headDeadline: Int64 = .max
    /// Response bytes sent while more wait for the client's window.
    var sendProgress = ProgressWatch()
    /// Set when the request body streams to the handler instead of being collected in `body`.
    var bodyStream: RequestBodyStream?
    var sourcePaused = false
    /// Body bytes received while paused and not yet given back to the client's flow-control window.
    var unconsumed = 0
    private(set) var headWritten = false
    private var bodyExpected = true
    private var done = false
    var bufferFull = false

    init(streamID: Int32, connection: HTTP2ServerConnection, head: consuming RequestHead) {
        self.streamID = streamID
        self.connection = connection
        self.isHEADRequest = head.method == "HEAD"
        self.requestHead = head
    }

    var canAcceptBody: Bool { !bufferFull && !connection.outputOverHighWater }

    func writeHead(_ head: ResponseHead, bodyLength: Int?) {
        guard !headWritten, !done else { return }
        headWritten = true
        // The session drops connection-specific fields itself (RFC 9113 §8.2.2) and writes the length; no second
        // pass or copy of the head here.
        let forbidsBody = HTTPStatus.forbidsBody(head.status)
        bodyExpected = !(bodyLength == 0 || isHEADRequest || forbidsBody)
        if !bodyExpected { done = true }
        // HEAD: the length the GET would have (RFC 9110 §9.3.2), without content.
        let announced = bodyExpected || (isHEADRequest && !forbidsBody) ? bodyLength : nil
        connection.submitHead(self, head, contentLength: announced, hasBody: bodyExpected)
    }

    func writeInformational(_ head: ResponseHead) {
        guard !headWritten, !done else { return }
        connection.submitInformational(self, head)
    }

    func writeBody(_ bytes: UnsafeRawBufferPointer) {
        guard headWritten, bodyExpected, !done, bytes.count > 0 else { return }
        bufferFull = !connection.submitBody(self, bytes)
    }

    func end() {
        guard headWritten, !done else { return }
        done = true
        connection.submitEnd(self)
    }

    func abort() { abort(errorCode: .internalError) }

    func abort(errorCode: HTTP2ErrorCode) {
        guard !done else { return }
        done = true
        connection.submitReset(self, errorCode: errorCode)
    }
}
