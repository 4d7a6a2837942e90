import CNghttp2
import GatewayCore

/// Per-stream state, created when the client's request HEADERS begin and dropped when nghttp2 closes the stream.
/// Safety (`@exclusivity(unchecked)` on every field): a stream is touched only from its session's loop, and no
/// access to a field is ever held across a call into nghttp2, so accesses cannot overlap; the dynamic checks cost
/// about a sixth of the per-request time.
final class StreamState {
    let id: Int32

    // Request head under construction; `fields` is emptied once the head is announced.
    @exclusivity(unchecked) var method: String?
    @exclusivity(unchecked) var path: String?
    @exclusivity(unchecked) var authority: String?
    @exclusivity(unchecked) var scheme: String?
    @exclusivity(unchecked) var host: String?
    @exclusivity(unchecked) var cookie: String?
    @exclusivity(unchecked) var contentLength: Int?
    /// The request carries `expect: 100-continue` and a body, and no 100 has been sent yet.
    @exclusivity(unchecked) var expectsContinue = false
    @exclusivity(unchecked) var fields: [HTTPFields.Field] = []
    @exclusivity(unchecked) var headerListBytes = 0
    @exclusivity(unchecked) var headerCount = 0
    @exclusivity(unchecked) var headersTooLarge = false
    @exclusivity(unchecked) var inTrailers = false

    /// The owner has seen `.request` for this stream.
    @exclusivity(unchecked) var announced = false
    @exclusivity(unchecked) var isHead = false
    /// END_STREAM arrived from the client.
    @exclusivity(unchecked) var remoteClosed = false
    /// The server sent RST_STREAM on it: frames the client had in flight are ignored, not an error.
    @exclusivity(unchecked) var resetByServer = false
    @exclusivity(unchecked) var bodyBytes = 0
    /// Request-body bytes handed to the owner and not yet consumed; released on close.
    @exclusivity(unchecked) var unconsumed = 0
    @exclusivity(unchecked) var bodyTooLarge = false
    /// Body bytes dropped over the limit: only the connection window was given back for them.
    @exclusivity(unchecked) var droppedBytes = 0
    /// A complete response left before the upload ended; later body bytes are drained (`drainedBytes`).
    @exclusivity(unchecked) var answeredEarly = false
    @exclusivity(unchecked) var drainedBytes = 0
    @exclusivity(unchecked) var drainReset = false

    /// A response HEADERS has been submitted.
    @exclusivity(unchecked) var responseStarted = false
    /// The owner has nothing more to send (response complete, stream reset, or the session answered itself).
    @exclusivity(unchecked) var responseDone = false
    /// The owner called `resetStream`; its RST_STREAM is not the client's fault.
    @exclusivity(unchecked) var ownerReset = false
    /// Response body bytes waiting for nghttp2's data provider, from `outHead` on.
    @exclusivity(unchecked) var out: [UInt8] = []
    @exclusivity(unchecked) var outHead = 0
    @exclusivity(unchecked) var outEnded = false
    /// `out` was filled by `appendBody` (never a caller's array), so nothing else shares it.
    @exclusivity(unchecked) var outRecyclable = false
    /// The data provider returned NGHTTP2_ERR_DEFERRED; `appendBody`/`endBody` must resume it.
    @exclusivity(unchecked) var deferred = false
    /// `appendBody` crossed the high-water mark; `.readyForBody` is owed once the buffer drains.
    @exclusivity(unchecked) var producerPaused = false
    /// Response body bytes nghttp2 has taken into DATA frames so far.
    @exclusivity(unchecked) var sentBytes = 0

    init(id: Int32) { self.id = id }

    var buffered: Int { out.count - outHead }
}

private let frameData = UInt8(NGHTTP2_DATA.rawValue)
private let frameHeaders = UInt8(NGHTTP2_HEADERS.rawValue)
private let framePriority = UInt8(NGHTTP2_PRIORITY.rawValue)
private let frameRstStream = UInt8(NGHTTP2_RST_STREAM.rawValue)
private let frameSettings = UInt8(NGHTTP2_SETTINGS.rawValue)
private let framePing = UInt8(NGHTTP2_PING.rawValue)
private let frameGoAway = UInt8(NGHTTP2_GOAWAY.rawValue)
private let frameContinuation = UInt8(NGHTTP2_CONTINUATION.rawValue)
private let flagEndStream = UInt8(NGHTTP2_FLAG_END_STREAM.rawValue)
private let flagAck = UInt8(NGHTTP2_FLAG_ACK.rawValue)
private let flagEndHeaders = UInt8(NGHTTP2_FLAG_END_HEADERS.rawValue)
private let callbackFailure = NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
private let temporalFailure = NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue

/// Runs `body` with the session behind user_data, without retaining it for the call (a retain and release per
/// callback, a dozen callbacks per request).
@inline(__always)
func withOwner<R>(_ userData: UnsafeMutableRawPointer?, _ body: (HTTP2ServerSession) -> R) -> R {
    // Safety: user_data is the unretained HTTP2ServerSession that owns this nghttp2 session (see init); callbacks
    // only run inside its own calls into nghttp2, during which the caller holds the session, so it stays alive
    // for the whole callback and needs no retain of its own.
    Unmanaged<HTTP2ServerSession>.fromOpaque(userData!)._withUnsafeGuaranteedRef(body)
}

@inline(__always)
private func string(_ pointer: UnsafePointer<UInt8>, _ count: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
}

extension HTTP2ServerSession {
    /// Registers capture-free callbacks; each finds its session through user_data.
    static func installCallbacks(_ callbacks: OpaquePointer?) {
        nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks) { _, hd, userData in
            guard let hd else { return 0 }
            switch hd.pointee.type {
            case frameContinuation:
                return withOwner(userData) { session in
                    if session.terminated { return 0 }
                    if hd.pointee.flags & flagEndHeaders != 0 { session.headerBlockOpen = false }
                    return session.allow(.continuation) ? 0 : callbackFailure
                }
            case frameHeaders:
                return withOwner(userData) { session in
                    session.headerBlockOpen = hd.pointee.flags & flagEndHeaders == 0
                    return session.clientHeadersBegin(streamID: hd.pointee.stream_id)
                }
                    ? 0 : callbackFailure
            case frameSettings where hd.pointee.flags & flagAck == 0:
                withOwner(userData) { $0.settingsBegin() }
                return 0
            case framePriority where hd.pointee.stream_id == 0:
                // RFC 9113 §6.3: a connection error. nghttp2 skips PRIORITY frames unread once
                // SETTINGS_NO_RFC7540_PRIORITIES is sent, this check with them.
                return withOwner(userData) { $0.protocolViolation() } ? 0 : callbackFailure
            default:
                return 0
            }
        }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
            guard let frame else { return 0 }
            withOwner(userData) { $0.beginHeaders(frame) }
            return 0
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            _, frame, name, nameCount, value, valueCount, _, userData in
            guard let frame, let name, let value else { return 0 }
            return withOwner(userData) {
                $0.header(
                    streamID: frame.pointee.hd.stream_id, name: name, nameCount: nameCount, value: value,
                    valueCount: valueCount)
            }
        }
        // nghttp2 silently drops regular fields with invalid names or values; RFC 9113 §8.2.1 calls such a request
        // malformed, so refuse it (RST_STREAM(PROTOCOL_ERROR), counted as a glitch via on_invalid_frame_recv).
        nghttp2_session_callbacks_set_on_invalid_header_callback(callbacks) { _, _, _, _, _, _, _, _ in
            temporalFailure
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            guard let frame else { return 0 }
            return withOwner(userData) { $0.frameReceived(frame) }
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) {
            _, _, streamID, data, count, userData in
            guard let data else { return 0 }
            withOwner(userData) { $0.dataChunk(streamID: streamID, data: data, count: count) }
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
            withOwner(userData) { $0.streamClosed(streamID: streamID, errorCode: errorCode) }
            return 0
        }
        nghttp2_session_callbacks_set_send_data_callback(callbacks) { _, frame, header, length, _, userData in
            guard let frame, let header else { return callbackFailure }
            return withOwner(userData) {
                $0.writeData(
                    streamID: frame.pointee.hd.stream_id, header: header, length: length,
                    padding: frame.pointee.data.padlen)
            }
        }
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, userData in
            guard let frame else { return 0 }
            withOwner(userData) { $0.frameSent(frame) }
            return 0
        }
    }

    fileprivate func beginHeaders(_ frame: UnsafePointer<nghttp2_frame>) {
        guard !terminated else { return }
        let id = frame.pointee.hd.stream_id
        if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
            if streams.count >= limits.maxConcurrentStreams {
                // RFC 9113 §5.1.2: a stream error, REFUSED_STREAM so the client knows it may retry. With no
                // StreamState its fields and DATA are dropped (and DATA's window given back); the reset, once
                // written, counts as a glitch, which bounds a client that keeps trying.
                _ = nghttp2_submit_rst_stream(
                    nghttp2Session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, HTTP2ErrorCode.refusedStream.rawValue)
                return
            }
            let stream = StreamState(id: id)
            stream.fields.reserveCapacity(12)
            streams[id] = stream
            headerStream = stream
        } else if let stream = streams[id] {
            stream.inTrailers = true
            stream.headerListBytes = 0
            stream.headerCount = 0
            headerStream = stream
        }
    }

    fileprivate func header(
        streamID: Int32, name: UnsafePointer<UInt8>, nameCount: Int, value: UnsafePointer<UInt8>, valueCount: Int
    ) -> Int32 {
        guard !terminated else { return 0 }
        // Header blocks are never interleaved (RFC 9113 §4.3), so the block's stream is usually at hand.
        let cached = headerStream
        guard let stream = cached?.id == streamID ? cached : streams[streamID] else { return 0 }
        stream.headerListBytes += nameCount + valueCount + 32
        stream.headerCount += 1
        if stream.headerListBytes > limits.maxHeaderListSize || stream.headerCount > limits.maxHeaderCount {
            if stream.inTrailers {
                // Trailers are dropped anyway; nghttp2 resets the stream (INTERNAL_ERROR) on this answer, and the
                // reset counts as a glitch when it is written.
                return temporalFailure
            }
            stream.headersTooLarge = true
            stream.fields = []
            return 0
        }
        if stream.headersTooLarge || stream.inTrailers { return 0 }

        // Most fields repeat the previous block's at the same position; see `RecentFields`.
        let slot = stream.headerCount &- 1
        let hit = recentFields.matches(slot, name: name, nameCount: nameCount, value: value, valueCount: valueCount)

        // nghttp2 has already checked pseudo-headers (known, once, first), lowercase names and value characters.
        if name[0] == UInt8(ascii: ":") {
            func fresh(_ pseudo: String) -> String {
                let string = string(value, valueCount)
                recentFields.remember(
                    HTTPFields.Field(pseudo, string), at: slot, name: name, nameCount: nameCount, value: value,
                    valueCount: valueCount)
                return string
            }
            if bytesEqual(name, nameCount, ":method") {
                stream.method = hit ? recentFields.value(at: slot) : fresh(":method")
            } else if bytesEqual(name, nameCount, ":path") {
                stream.path = hit ? recentFields.value(at: slot) : fresh(":path")
            } else if bytesEqual(name, nameCount, ":authority") {
                stream.authority = hit ? recentFields.value(at: slot) : fresh(":authority")
            } else if bytesEqual(name, nameCount, ":scheme") {
                stream.scheme = hit ? recentFields.value(at: slot) : fresh(":scheme")
            }
            return 0
        }
        let field: HTTPFields.Field
        if hit {
            // These bytes equal a remembered field's, and the bytes decide the field.
            field = recentFields.field(at: slot)
        } else {
            // obs-text (RFC 9110 §5.5; nghttp2 has refused NUL, CR and LF) is carried byte for byte (`ObsText`).
            let text =
                HTTP2RequestChecks.isASCII(value, count: valueCount)
                ? string(value, valueCount) : ObsText.string(UnsafeBufferPointer(start: value, count: valueCount))
            field = HTTPFields.Field(string(name, nameCount), text)
            recentFields.remember(
                field, at: slot, name: name, nameCount: nameCount, value: value, valueCount: valueCount)
        }
        if bytesEqual(name, nameCount, "cookie") {
            // RFC 9113 §8.2.3: split cookie fields are joined with "; " before reaching an HTTP/1.1 hop.
            if let cookie = stream.cookie {
                stream.cookie = cookie + "; " + field.value
            } else {
                stream.cookie = field.value
            }
            return 0
        }
        if bytesEqual(name, nameCount, "host") {
            stream.host = field.value
        } else if bytesEqual(name, nameCount, "expect") {
            stream.expectsContinue = field.value.asciiCaseInsensitiveEquals(literal: "100-continue")
        } else if bytesEqual(name, nameCount, "content-length") {
            // nghttp2 has validated the digits; an overflow only means "too large".
            var length = 0
            for i in 0..<valueCount {
                let (product, overflow1) = length.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = product.addingReportingOverflow(Int(value[i] &- 48))
                if overflow1 || overflow2 {
                    length = Int.max
                    break
                }
                length = sum
            }
            stream.contentLength = length
        }
        stream.fields.append(consume field)
        return 0
    }

    fileprivate func frameReceived(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        guard !terminated else { return 0 }
        let hd = frame.pointee.hd
        switch hd.type {
        case frameData:
            let endStream = hd.flags & flagEndStream != 0
            if !endStream && Int(hd.length) - Int(frame.pointee.data.padlen) <= 0 {
                guard allow(.emptyData) else { return callbackFailure }
            }
            if endStream, let stream = streams[hd.stream_id] { requestEnded(stream) }
        case frameHeaders:
            headerStream = nil
            guard let stream = streams[hd.stream_id] else { return 0 }
            let endStream = hd.flags & flagEndStream != 0
            if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
                return requestHeadersComplete(stream, endStream: endStream)
            }
            if endStream { requestEnded(stream) }
        case frameRstStream:
            guard allow(.resetStream) else { return callbackFailure }
        case frameSettings:
            if hd.flags & flagAck == 0 {
                guard allow(.settings) else { return callbackFailure }
                if settingsOverflowWindow(frame.pointee.settings) { return callbackFailure }
            }
        case framePing:
            if hd.flags & flagAck == 0 {
                guard allow(.ping) else { return callbackFailure }
            }
        case frameGoAway:
            emit(
                .goaway(
                    lastStreamID: frame.pointee.goaway.last_stream_id,
                    errorCode: HTTP2ErrorCode(rawValue: frame.pointee.goaway.error_code)))
        default:
            break
        }
        return 0
    }

    private func requestHeadersComplete(_ stream: StreamState, endStream: Bool) -> Int32 {
        if endStream { stream.remoteClosed = true }
        // Before any refusal: RFC 9110 §9.3.2, no content in an answer to HEAD, the gateway's own included.
        stream.isHead = stream.method == "HEAD"
        if stream.headersTooLarge {
            // RFC 9113 §10.5.1: a 431 tells the client why; the owner never sees the request. No error reset
            // is sent, so the glitch is counted here.
            stream.responseDone = true
            guard allow(.glitches) else { return callbackFailure }
            submitRefusal(
                stream, TenantError.gateway(status: 431, detail: "The request's header fields are too large."))
            return 0
        }
        // nghttp2 guarantees :method (and :path unless CONNECT) before calling us.
        let requestMethod = stream.method ?? ""
        if let refusal = refusal(of: stream, method: requestMethod) {
            stream.responseDone = true
            guard allow(.glitches) else { return callbackFailure }
            submitRefusal(stream, refusal)
            return 0
        }
        var authority = stream.authority
        if let host = stream.host {
            if let authority, !authority.asciiCaseInsensitiveEquals(host) {
                // RFC 9113 §8.3.1: a Host naming another entity than :authority makes the request malformed;
                // the gateway ties token audiences to the authority, so it must be unambiguous.
                stream.responseDone = true
                _ = nghttp2_submit_rst_stream(
                    nghttp2Session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id,
                    HTTP2ErrorCode.protocolError.rawValue)
                return 0
            }
            authority = authority ?? host
        }
        let method = requestMethod
        if let cookie = stream.cookie {
            stream.fields.append(HTTPFields.Field("cookie", cookie))
            stream.cookie = nil
        }
        stream.announced = true
        // The stream's strings are taken, not copied (a copy retains each, and clearing them releases each again),
        // and the head is moved into the event.
        let head = RequestHead(
            method: method, target: stream.path.take() ?? authority ?? "", version: .http2,
            headers: HTTPFields(take(&stream.fields)), authority: authority, scheme: stream.scheme)
        // Without a body to come there is nothing to ask for; with one, the owner decides (`sendContinue`).
        if endStream { stream.expectsContinue = false }
        emit(.request(streamID: stream.id, head: consume head, endStream: endStream))
        stream.method = nil
        stream.authority = nil
        stream.host = nil
        if let length = stream.contentLength, length > limits.maxRequestBodyBytes, !endStream {
            stream.bodyTooLarge = true
            emit(.requestBodyTooLarge(streamID: stream.id))
        }
        return 0
    }

    /// What HTTP/1.1 would answer for this request, when it is one the gateway refuses at the protocol level.
    private func refusal(of stream: StreamState, method: String) -> TenantError? {
        if method == "CONNECT" {
            return .gateway(status: 501, detail: "The request was refused: CONNECT is not supported.")
        }
        // The checks are pure functions of the strings, and a client usually repeats its authority and often its
        // path (then the very same String, from `recentFields`, compares equal at once): the last good ones are
        // remembered.
        if let path = stream.path, path != validatedPath {
            if path.utf8.count > HTTP2RequestChecks.maxPathBytes {
                return .gateway(status: 414, detail: "The request was refused: the request target is too long.")
            }
            if !HTTP2RequestChecks.isOriginForm(path, method: method) {
                return .gateway(status: 400, detail: "The request is malformed: invalid :path.")
            }
            // `*` is valid for OPTIONS only, so only origin-form paths are valid whatever the method.
            if path.utf8.first == UInt8(ascii: "/") { validatedPath = path }
        }
        if let authority = stream.authority, authority != validatedAuthority {
            if !HTTP2RequestChecks.isAuthority(authority) {
                return .gateway(status: 400, detail: "The request is malformed: invalid :authority.")
            }
            validatedAuthority = authority
        }
        if let host = stream.host, host != validatedAuthority {
            if !HTTP2RequestChecks.isAuthority(host) {
                return .gateway(status: 400, detail: "The request is malformed: invalid Host.")
            }
        }
        // RFC 9113 §8.3.1 lets :scheme name any scheme; the gateway serves only http and https resources, as its
        // HTTP/1.1 side does with absolute-form targets.
        if let scheme = stream.scheme, scheme != validatedScheme {
            guard
                scheme.asciiCaseInsensitiveEquals(literal: "https")
                    || scheme.asciiCaseInsensitiveEquals(literal: "http")
            else {
                return .gateway(status: 400, detail: "The request is malformed: :scheme is neither http nor https.")
            }
            validatedScheme = scheme
        }
        return nil
    }

    /// Answers a request the owner never sees, in the tenant's error shape; its body is drained, then dropped.
    private func submitRefusal(_ stream: StreamState, _ error: TenantError) {
        let response = error.response
        // RFC 9110 §6.6.1: a 4xx/5xx the gateway writes carries a Date like every other answer (rare: no cache).
        let date = HTTPDate.imfFixdate(epochSeconds: clock.nowNanoseconds() / 1_000_000_000)
        _ = submitResponse(streamID: stream.id, head: response.head, body: response.body, date: date)
    }

    private func requestEnded(_ stream: StreamState) {
        stream.remoteClosed = true
        if stream.announced && !stream.responseDone && !stream.bodyTooLarge {
            emit(.endStream(streamID: stream.id))
        }
    }

    fileprivate func dataChunk(streamID: Int32, data: UnsafePointer<UInt8>, count: Int) {
        guard !terminated, let stream = streams[streamID], stream.announced, !stream.responseDone else {
            // Nobody will read these bytes: give the window back at once, within a bound once answered.
            _ = nghttp2_session_consume(nghttp2Session, streamID, count)
            if !terminated, let stream = streams[streamID], stream.responseDone { drained(stream, count) }
            return
        }
        if stream.bodyTooLarge || stream.bodyBytes + count > limits.maxRequestBodyBytes {
            // Only the connection window reopens, so this stream stalls while others proceed.
            _ = nghttp2_session_consume_connection(nghttp2Session, count)
            stream.droppedBytes += count
            if !stream.bodyTooLarge {
                stream.bodyTooLarge = true
                emit(.requestBodyTooLarge(streamID: streamID))
            }
            return
        }
        stream.bodyBytes += count
        stream.unconsumed += count
        emit(.data(streamID: streamID, bytes: Array(UnsafeBufferPointer(start: data, count: count))))
    }

    fileprivate func streamClosed(streamID: Int32, errorCode: UInt32) {
        if headerStream?.id == streamID { headerStream = nil }
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        if !stream.resetByServer { recentlyClosed.insert(streamID) }
        if stream.unconsumed > 0 {
            _ = nghttp2_session_consume_connection(nghttp2Session, stream.unconsumed)
        }
        recycleBodyBuffer(of: stream)
        if stream.announced && !stream.responseDone && !terminated {
            emit(.reset(streamID: streamID, errorCode: HTTP2ErrorCode(rawValue: errorCode)))
        }
    }

    fileprivate func frameSent(_ frame: UnsafePointer<nghttp2_frame>) {
        let hd = frame.pointee.hd
        switch hd.type {
        case frameGoAway:
            goAwaySent(errorCode: frame.pointee.goaway.error_code)
        case frameRstStream:
            streams[hd.stream_id]?.resetByServer = true
            // Every error reset the server writes, except the owner's own, is a glitch (MadeYouReset): refused
            // and malformed streams, content-length mismatches, flow-control errors on a stream. Counting what
            // is written catches the resets nghttp2 issues without calling on_invalid_frame_recv.
            guard !terminated, frame.pointee.rst_stream.error_code != 0,
                streams[hd.stream_id]?.ownerReset != true
            else { return }
            _ = allow(.glitches)
        case frameHeaders, frameData:
            // RFC 9113 §8.1: after a complete response sent before the request finished, the rest of the upload
            // is read and dropped up to `maxDrainedBodyBytes` (what a declared length says is coming counts at
            // once), then stopped with RST_STREAM(NO_ERROR).
            guard hd.flags & flagEndStream != 0, let stream = streams[hd.stream_id], !stream.remoteClosed else {
                return
            }
            stream.answeredEarly = true
            // The answer is out: the stream's window reopens for what was dropped, so the client can finish.
            if stream.droppedBytes > 0 {
                _ = nghttp2_session_consume_stream(nghttp2Session, stream.id, stream.droppedBytes)
                stream.droppedBytes = 0
            }
            // Bytes the owner was handed and will no longer consume (it answered) are given back too.
            if stream.unconsumed > 0 {
                _ = nghttp2_session_consume(nghttp2Session, stream.id, stream.unconsumed)
                stream.unconsumed = 0
            }
            let announced = max(0, (stream.contentLength ?? 0) - stream.bodyBytes - stream.drainedBytes)
            drained(stream, min(announced, Int(Int32.max)))
        default:
            break
        }
    }

    /// Keeps a closed stream's small response-body buffer for the next streamed response: a malloc and a free
    /// less per response, at most `spareBodyBufferCapacity` bytes kept per connection.
    private func recycleBodyBuffer(of stream: StreamState) {
        guard stream.outRecyclable, spareBodyBuffer.capacity == 0,
            stream.out.capacity > 0 && stream.out.capacity <= Self.spareBodyBufferCapacity
        else { return }
        stream.out.removeAll(keepingCapacity: true)
        swap(&spareBodyBuffer, &stream.out)
    }

    /// Counts body bytes read after the response ended; past the bound the upload is reset (once).
    private func drained(_ stream: StreamState, _ count: Int) {
        guard stream.answeredEarly, !stream.drainReset else { return }
        stream.drainedBytes += count
        if stream.drainedBytes > limits.maxDrainedBodyBytes {
            stream.drainReset = true
            _ = nghttp2_submit_rst_stream(
                nghttp2Session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id, HTTP2ErrorCode.noError.rawValue)
        }
    }
}

/// The array `storage` held, leaving it empty, without retaining and releasing its buffer.
@inline(__always)
private func take<Element>(_ storage: inout [Element]) -> [Element] {
    var taken: [Element] = []
    swap(&taken, &storage)
    return taken
}
