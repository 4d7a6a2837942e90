import CNghttp2
import GatewayCore

extension HTTP2ServerSession {
    /// Submits a whole response: head and a body known up front (empty: HEADERS with END_STREAM).
    ///
    /// Adds `content-length` when the head has none and the status allows content. For HEAD requests and for
    /// 1xx/204/304 the body is not sent. Returns false when the stream is gone or already has a response.
    @discardableResult
    public func submitResponse(streamID: Int32, head: ResponseHead, body: [UInt8] = [], date: String? = nil) -> Bool {
        guard !terminated, let stream = streams[streamID], !stream.responseStarted else { return false }
        let forbidsBody = HTTPStatus.forbidsBody(head.status)
        let sendBody = !body.isEmpty && !stream.isHead && !forbidsBody
        var contentLength: Int?
        if !forbidsBody && !head.headers.contains("content-length") && (!stream.isHead || !body.isEmpty) {
            contentLength = body.count
        }
        stream.responseStarted = true
        stream.responseDone = true
        guard sendBody else {
            return submitResponseHeaders(
                streamID: streamID, head: head, contentLength: contentLength, provider: nil, date: date)
        }
        stream.out = body
        stream.outHead = 0
        stream.outEnded = true
        var provider = Self.bodyProvider
        return submitResponseHeaders(
            streamID: streamID, head: head, contentLength: contentLength, provider: &provider, date: date)
    }

    /// Starts a streamed response: the head now, the body through `appendBody` and `endBody`.
    ///
    /// With `hasBody` false (or for HEAD requests and 1xx/204/304) the HEADERS frame ends the stream and later
    /// `appendBody`/`endBody` calls return false. Returns false when the stream is gone or already has a response.
    ///
    /// `contentLength`, when given, replaces any content-length field of `head` (so a caller need not copy and edit
    /// the head to set it). `date`, when given, is sent as `date` unless the head has one (RFC 9110 §6.6.1).
    @discardableResult
    public func submitResponseHead(
        streamID: Int32, head: ResponseHead, hasBody: Bool, contentLength: Int? = nil, date: String? = nil
    ) -> Bool {
        guard !terminated, let stream = streams[streamID], !stream.responseStarted else { return false }
        stream.responseStarted = true
        guard hasBody && !stream.isHead && !HTTPStatus.forbidsBody(head.status) else {
            stream.responseDone = true
            return submitResponseHeaders(
                streamID: streamID, head: head, contentLength: contentLength, provider: nil, date: date)
        }
        var provider = Self.bodyProvider
        return submitResponseHeaders(
            streamID: streamID, head: head, contentLength: contentLength, provider: &provider, date: date)
    }

    /// An interim 1xx response (e.g. 103 Early Hints, or an upstream's own 100) before the final one; false when
    /// the stream is gone or its final response has started. A proxy forwards 1xx answers (RFC 9110 §15.2), all
    /// but 101, which HTTP/2 has no use for (RFC 9113 §8.6).
    @discardableResult
    public func submitInformational(streamID: Int32, head: ResponseHead) -> Bool {
        guard !terminated, (100..<200).contains(head.status), head.status != 101, let stream = streams[streamID],
            !stream.responseStarted
        else { return false }
        // A 100 answers the client's `expect: 100-continue` whoever sent it; the gateway sends no second one.
        if head.status == 100 { stream.expectsContinue = false }
        return submitResponseHeaders(
            streamID: streamID, head: head, contentLength: nil, provider: nil, informational: true)
    }

    /// Whether the client of `streamID` sent `expect: 100-continue` with a body to come and has had no 100 yet.
    public func expectsContinue(streamID: Int32) -> Bool { streams[streamID]?.expectsContinue ?? false }

    /// Sends the 100 a client that expects one waits for (RFC 9110 §10.1.1), once, unless its final response has
    /// started. The owner calls it for a request whose body it will read; a request it refuses on the head alone
    /// gets that final answer instead.
    public func sendContinue(streamID: Int32) {
        guard !terminated, let stream = streams[streamID], stream.expectsContinue else { return }
        stream.expectsContinue = false
        guard !stream.responseStarted, !stream.remoteClosed else { return }
        _ = submitResponseHeaders(
            streamID: streamID, head: ResponseHead(status: 100), contentLength: nil, provider: nil,
            informational: true)
    }

    /// Queues response-body bytes (copied) for a stream started with `submitResponseHead(hasBody: true)`.
    ///
    /// Returns false when the stream takes no more body (gone, reset, ended, or the response has no body); the
    /// producer should stop. Check `wantsMoreBody(streamID:)` afterwards and wait for `.readyForBody` when it is
    /// false, so a slow client does not grow this buffer.
    @discardableResult
    public func appendBody(streamID: Int32, bytes: UnsafeRawBufferPointer) -> Bool {
        guard !terminated, let stream = streams[streamID], stream.responseStarted, !stream.responseDone else {
            return false
        }
        if stream.out.capacity == 0 && spareBodyBuffer.capacity > 0 {
            swap(&stream.out, &spareBodyBuffer)
        }
        // Filled only here, by copying: the buffer is the stream's own and may be recycled when it closes.
        stream.outRecyclable = true
        // Typed, the append is one copy; a raw buffer goes through the generic sequence path (~350 instructions).
        bytes.withMemoryRebound(to: UInt8.self) { stream.out.append(contentsOf: $0) }
        if stream.buffered >= limits.responseBodyHighWaterMark { stream.producerPaused = true }
        resumeIfDeferred(stream)
        return true
    }

    /// `appendBody(streamID:bytes:)` for an array.
    @discardableResult
    public func appendBody(streamID: Int32, bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { appendBody(streamID: streamID, bytes: $0) }
    }

    /// Ends a streamed response body; the last DATA frame carries END_STREAM. Returns false if the stream is gone.
    @discardableResult
    public func endBody(streamID: Int32) -> Bool {
        guard !terminated, let stream = streams[streamID], stream.responseStarted, !stream.responseDone else {
            return false
        }
        stream.outEnded = true
        stream.responseDone = true
        resumeIfDeferred(stream)
        return true
    }

    /// Whether the stream's response buffer is under `limits.responseBodyHighWaterMark`.
    public func wantsMoreBody(streamID: Int32) -> Bool {
        guard let stream = streams[streamID] else { return false }
        return stream.buffered < limits.responseBodyHighWaterMark
    }

    /// Response-body bytes buffered for the stream and not yet serialized.
    public func bufferedBodyBytes(streamID: Int32) -> Int {
        streams[streamID]?.buffered ?? 0
    }

    /// Sends RST_STREAM; the owner hears nothing more about the stream except `.data` already queued.
    @discardableResult
    public func resetStream(streamID: Int32, errorCode: HTTP2ErrorCode) -> Bool {
        guard !terminated, let stream = streams[streamID] else { return false }
        stream.responseDone = true
        stream.ownerReset = true
        stream.out = []
        stream.outHead = 0
        return nghttp2_submit_rst_stream(
            nghttp2Session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, errorCode.rawValue)
            == 0
    }

    private func resumeIfDeferred(_ stream: StreamState) {
        guard stream.deferred else { return }
        stream.deferred = false
        _ = nghttp2_session_resume_data(nghttp2Session, stream.id)
    }

    /// Sizes the next DATA frame: up to `length` buffered body bytes. They are not copied into nghttp2's frame
    /// buffer (NO_COPY): `writeData` appends them to the output with the frame's header.
    fileprivate func readBody(streamID: Int32, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let stream = streams[streamID] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        let available = stream.buffered
        let n = min(available, length)
        if n > 0 { flags.pointee |= NGHTTP2_DATA_FLAG_NO_COPY.rawValue }
        if n == available && stream.outEnded {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
        } else if n == 0 {
            stream.deferred = true
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        }
        return n
    }

    /// Appends one DATA frame that `readBody` sized: the 9-byte header nghttp2 serialized, then the body bytes
    /// straight from the stream's buffer. Only during `pendingOutput`, which provides the output.
    func writeData(streamID: Int32, header: UnsafePointer<UInt8>, length: Int, padding: Int) -> Int32 {
        guard let (output, limit) = outputSink, padding == 0, let stream = streams[streamID], stream.buffered >= length
        else {
            return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
        }
        output.pointee.append(contentsOf: UnsafeBufferPointer(start: header, count: 9))
        stream.out.withUnsafeBufferPointer { source in
            output.pointee.append(
                contentsOf: UnsafeBufferPointer(rebasing: source[stream.outHead..<stream.outHead + length]))
        }
        stream.outHead += length
        stream.sentBytes &+= length
        if stream.outHead == stream.out.count {
            stream.out.removeAll(keepingCapacity: true)
            stream.outHead = 0
        } else if stream.outHead >= 64 * 1024 && stream.outHead * 2 >= stream.out.count {
            stream.out.removeSubrange(0..<stream.outHead)
            stream.outHead = 0
        }
        if stream.producerPaused && !stream.outEnded && stream.buffered < limits.responseBodyHighWaterMark / 2 {
            stream.producerPaused = false
            emit(.readyForBody(streamID: streamID))
        }
        // Past the output's mark nghttp2 stops here (mem_send returns), as it does between frames it copies.
        return output.pointee.count >= limit ? NGHTTP2_ERR_PAUSE.rawValue : 0
    }

    /// The data provider for every streamed or buffered body: the stream's buffer is found by stream id.
    fileprivate static var bodyProvider: nghttp2_data_provider {
        nghttp2_data_provider(
            source: nghttp2_data_source(ptr: nil),
            read_callback: { _, streamID, _, length, flags, _, userData in
                guard let flags, let userData else {
                    return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
                }
                return withOwner(userData) { $0.readBody(streamID: streamID, length: length, flags: flags) }
            })
    }
}
