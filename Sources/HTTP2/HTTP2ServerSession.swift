import CNghttp2
import GatewayCore

/// One downstream HTTP/2 connection's protocol state, sans I/O: bytes in through `feed`, events out through
/// `nextEvent`, responses in through the `submit…`/`appendBody` calls, bytes out through `pendingOutput`.
///
/// Contract:
/// - Confined to one event loop; not `Sendable`. Owns its `nghttp2_session` and deletes it in `deinit`.
/// - The server SETTINGS (and a larger connection window) are queued at init, so the first `pendingOutput` after
///   creation has bytes to write.
/// - A driver loop: `feed(bytes)`, drain `nextEvent()` (acting on each), `pendingOutput(into:)` and write what it
///   appended, drain `nextEvent()` again (stream closes and connection errors are noticed while writing). Stop
///   reading when `wantsRead` is false; close once `wantsRead` and `wantsWrite` are both false.
/// - Request bodies are flow-controlled by the owner: the client's window reopens only as the owner calls
///   `consume(streamID:count:)`, so a slow upstream throttles the client instead of growing memory here.
/// - After `.connectionError`, input is ignored and no further stream events arrive; flush the GOAWAY and close.
public final class HTTP2ServerSession {
    public let limits: HTTP2Limits
    let clock: any WallClock
    /// The `nghttp2_session*`; set once at the end of init.
    private var session: OpaquePointer!

    // Safety (`@exclusivity(unchecked)` below): the session is confined to one loop, and no access to these fields
    // is held across a call into nghttp2 (whose callbacks re-enter the session), so accesses never overlap.
    @exclusivity(unchecked) var streams = StreamMap<StreamState>()
    /// The stream whose header block is being decoded, saving a dictionary lookup per field.
    @exclusivity(unchecked) var headerStream: StreamState?
    /// The fields of the last request header block by position, reused when the next block repeats them.
    let recentFields = RecentFields()
    /// A response-body buffer a closed stream left behind, empty, for the next `appendBody` (see
    /// `recycleBodyBuffer(of:)`).
    @exclusivity(unchecked) var spareBodyBuffer: [UInt8] = []
    /// The buffer `pendingOutput` fills and its soft limit, while it runs.
    @exclusivity(unchecked) var outputSink: (buffer: UnsafeMutablePointer<[UInt8]>, limit: Int)?
    static let spareBodyBufferCapacity = 4096
    /// The last `:path` and authority that passed the request checks (see `refusal(of:method:)`).
    @exclusivity(unchecked) var validatedPath: String?
    @exclusivity(unchecked) var validatedAuthority: String?
    @exclusivity(unchecked) var validatedScheme: String?
    @exclusivity(unchecked) private var events: [HTTP2Event] = []
    @exclusivity(unchecked) private var eventIndex = 0

    /// True once the session decided to end the connection (the terminal event has been queued).
    @exclusivity(unchecked) private(set) var terminated = false

    /// The highest stream id a client HEADERS frame has used, and the ids it skipped to get there: those streams
    /// are closed without ever having opened (RFC 9113 §5.1.1), which nghttp2 cannot tell once it keeps no closed
    /// streams. Clients count up by two, so this stays empty; a few ranges are kept, the oldest merged first.
    @exclusivity(unchecked) private var highestClientStreamID: Int32 = 0
    @exclusivity(unchecked) private var scanner = InboundFrameScanner()
    @exclusivity(unchecked) var recentlyClosed = RecentlyClosedStreams()
    @exclusivity(unchecked) private var skippedStreamIDs: [ClosedRange<Int32>] = []
    private static let skippedRangeLimit = 8
    /// What `settingsBegin` saw: the largest open stream's send window and the initial window size it came from.
    @exclusivity(unchecked) private var windowsBeforeSettings: (largest: Int32, initial: Int64)?

    @exclusivity(unchecked) private var pingBucket: TokenBucket
    @exclusivity(unchecked) private var settingsBucket: TokenBucket
    @exclusivity(unchecked) private var resetBucket: TokenBucket
    @exclusivity(unchecked) private var continuationBucket: TokenBucket
    @exclusivity(unchecked) private var emptyDataBucket: TokenBucket
    @exclusivity(unchecked) private var glitchBucket: TokenBucket

    /// Whether the first SETTINGS frame, with the placeholder stream limit, is still to be written.
    private var streamLimitUnannounced = true

    /// Scratch for one header block: names and values are copied here, and `headerNVs` points into it until
    /// `nghttp2_submit_response` has copied them (it does so before returning). Both live as long as the session.
    private var headerBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 1024)
    private var headerBufferCapacity = 1024
    private var headerNVs = UnsafeMutablePointer<nghttp2_nv>.allocate(capacity: 16)
    private var headerNVCapacity = 16

    /// Creates a server session and queues its SETTINGS.
    ///
    /// `clock` is read only when a rate-limited frame arrives (PING, SETTINGS, RST_STREAM, CONTINUATION, empty
    /// DATA, a glitch), never on the HEADERS/DATA hot path.
    public init(limits: HTTP2Limits = HTTP2Limits(), clock: any WallClock) {
        self.limits = limits
        self.clock = clock
        pingBucket = TokenBucket(limits.pingRate)
        settingsBucket = TokenBucket(limits.settingsRate)
        resetBucket = TokenBucket(limits.resetStreamRate)
        continuationBucket = TokenBucket(limits.continuationRate)
        emptyDataBucket = TokenBucket(limits.emptyDataRate)
        glitchBucket = TokenBucket(limits.glitchRate)
        events.reserveCapacity(16)

        var callbacks: OpaquePointer?
        precondition(nghttp2_session_callbacks_new(&callbacks) == 0, "nghttp2: out of memory")
        defer { nghttp2_session_callbacks_del(callbacks) }
        Self.installCallbacks(callbacks)

        var option: OpaquePointer?
        precondition(nghttp2_option_new(&option) == 0, "nghttp2: out of memory")
        defer { nghttp2_option_del(option) }
        nghttp2_option_set_no_auto_window_update(option, 1)
        nghttp2_option_set_max_send_header_block_length(option, limits.maxSendHeaderBlockLength)
        nghttp2_option_set_max_outbound_ack(option, limits.maxOutboundAck)
        nghttp2_option_set_max_settings(option, limits.maxSettingsEntries)
        nghttp2_option_set_max_continuations(option, limits.maxContinuationsPerHeaderBlock)
        nghttp2_option_set_max_deflate_dynamic_table_size(option, 4096)
        // A backstop never tighter than nghttp2's defaults (1000, 33/s) nor than twice our bucket, so ours trips
        // first and answers ENHANCE_YOUR_CALM. nghttp2 reads the real clock, not the injected one.
        nghttp2_option_set_stream_reset_rate_limit(
            option, UInt64(max(limits.resetStreamRate.burst * 2, 1000)),
            UInt64(max(limits.resetStreamRate.perSecond * 2, 33)))

        var raw: OpaquePointer?
        // Safety: the session holds `self` unretained; `self` owns the session and deletes it in deinit, and
        // nghttp2 invokes callbacks only from inside calls made through `self`, so the pointer never dangles.
        let userData = Unmanaged.passUnretained(self).toOpaque()
        precondition(nghttp2_session_server_new2(&raw, callbacks, userData, option) == 0, "nghttp2: out of memory")
        session = raw

        var settings = [
            // nghttp2 treats a stream over its acknowledged limit as a connection error, where RFC 9113 §5.1.2
            // asks for a stream error: it is told there is none, the wire carries the real one (see
            // `announceStreamLimit`), and `beginHeaders` refuses the streams beyond it with REFUSED_STREAM.
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: Self.unannouncedStreamLimit
            ),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                value: UInt32(clamping: min(limits.initialStreamWindowSize, Int(Int32.max)))),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                value: UInt32(clamping: limits.maxHeaderListSize)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES.rawValue), value: 1),
        ]
        precondition(
            nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count) == 0)
        if limits.connectionWindowSize > 65_535 {
            _ = nghttp2_session_set_local_window_size(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(clamping: limits.connectionWindowSize))
        }
    }

    deinit {
        nghttp2_session_del(session)
        headerBuffer.deallocate()
        headerNVs.deallocate()
    }

    // MARK: - Bytes in, events out

    /// Hands bytes read from the client to nghttp2; the resulting events wait in `nextEvent()`.
    ///
    /// Input after the terminal `.connectionError` is ignored.
    public func feed(_ bytes: UnsafeRawBufferPointer) {
        guard !terminated, let base = bytes.baseAddress, bytes.count > 0 else { return }
        // nghttp2 takes the bytes up to each DATA or HEADERS frame on a stream that may have closed; the stream
        // is then looked at with everything before the frame processed (see InboundFrameScanner).
        var fed = 0
        var from = 0
        while let (stop, resume) = scanner.next(in: bytes, from: from) {
            let upTo = max(stop.headerStart, fed)
            if upTo > fed {
                guard receive(base + fed, upTo - fed) else { return }
                fed = upTo
            }
            if stop.type == InboundFrameScanner.framePriority {
                // RFC 9113 §5.3.1: a stream error; §5.4 lets it end the connection, and the stream may be idle,
                // where a RST_STREAM would itself be the client's connection error.
                _ = protocolViolation()
                return
            }
            if streams[stop.streamID] == nil
                && (recentlyClosed.contains(stop.streamID)
                    || (stop.type == InboundFrameScanner.frameData && wasSkipped(stop.streamID)))
            {
                // RFC 9113 §5.1: a frame after the client's RST_STREAM is a stream error, after its END_STREAM a
                // connection error, both of type STREAM_CLOSED; so is DATA on a stream the client skipped, closed
                // without ever opening (§5.1.1, §6.1); §5.4 lets any of them end the connection.
                _ = connectionError(.streamClosed)
                return
            }
            from = resume
        }
        if bytes.count > fed { _ = receive(base + fed, bytes.count - fed) }
    }

    /// Hands `count` bytes to nghttp2; false once the session has ended.
    private func receive(_ start: UnsafeRawPointer, _ count: Int) -> Bool {
        let rv = nghttp2_session_mem_recv(session, start.assumingMemoryBound(to: UInt8.self), count)
        if rv < 0 { libraryFailed(Int32(truncatingIfNeeded: rv)) }
        return !terminated
    }

    /// Convenience for `feed(_:)` with an array.
    public func feed(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { feed($0) }
    }

    /// The next event not yet taken, or nil. Events are produced by `feed` and by `pendingOutput`.
    public func nextEvent() -> HTTP2Event? {
        guard eventIndex < events.count else { return nil }
        // Swapping a payload-free placeholder in moves the event out without retaining its strings again.
        var event = HTTP2Event.endStream(streamID: 0)
        swap(&event, &events[eventIndex])
        eventIndex += 1
        if eventIndex == events.count {
            events.removeAll(keepingCapacity: true)
            eventIndex = 0
        }
        return event
    }

    /// Whether the connection still wants client bytes.
    public var wantsRead: Bool { !terminated && nghttp2_session_want_read(session) != 0 }

    /// Whether `pendingOutput` has (or may produce) bytes to write.
    public var wantsWrite: Bool { nghttp2_session_want_write(session) != 0 }

    /// Streams the session tracks (opened by the client and not yet closed).
    public var openStreamCount: Int { streams.count }

    /// Whether a stream whose response has begun is still open: the session holds the rest of an answer its
    /// client has not taken yet (a window it opens slowly), or the client has not ended its side.
    public var hasResponsesInFlight: Bool { streams.values.contains { $0.responseStarted } }

    /// Whether a stream's response waits, paused, for the client to open its flow-control window: a client that
    /// reads its bytes but never grants window holds the answer (and its upstream) as surely as one that reads
    /// nothing.
    public var hasOutputWaitingForWindow: Bool { streams.values.contains { $0.producerPaused } }

    /// A HEADERS frame came without END_HEADERS and its last CONTINUATION has not: a header block is half read.
    public internal(set) var headerBlockOpen = false

    /// For one stream: the response body bytes sent so far, and whether more wait, paused, for the client's
    /// window. A stream that waits with no byte sent for long is stalled even while the connection is not (its
    /// client PINGs, or keeps other streams moving); nil for a stream the session no longer has.
    public func responseProgress(streamID: Int32) -> (sent: Int, waiting: Bool)? {
        guard let stream = streams[streamID] else { return nil }
        return (stream.sentBytes, stream.producerPaused)
    }

    // MARK: - Bytes out

    /// Appends frames ready to send to `buffer`, but only while `buffer.count` is under `maxBytes`.
    ///
    /// The mark is soft: one frame is appended whole, so `buffer` may end up to one frame (16 KiB + 9 bytes for
    /// DATA, or one header block) past it. A slow reader that leaves bytes in `buffer` therefore stops nghttp2
    /// from serializing more, and flow-controlled data stays in the per-stream buffers. Returns the bytes appended.
    @discardableResult
    public func pendingOutput(into buffer: inout [UInt8], maxBytes: Int) -> Int {
        let start = buffer.count
        withUnsafeMutablePointer(to: &buffer) { output in
            // DATA frames are appended by `writeData`, from inside mem_send.
            outputSink = (output, maxBytes)
            defer { outputSink = nil }
            while output.pointee.count < maxBytes {
                var data: UnsafePointer<UInt8>?
                let n = nghttp2_session_mem_send(session, &data)
                if n < 0 {
                    libraryFailed(Int32(truncatingIfNeeded: n))
                    break
                }
                guard n > 0, let data else { break }
                let frameStart = output.pointee.count
                output.pointee.append(contentsOf: UnsafeBufferPointer(start: data, count: n))
                if streamLimitUnannounced { announceStreamLimit(in: &output.pointee, frameStart: frameStart) }
            }
        }
        return buffer.count - start
    }

    /// The SETTINGS_MAX_CONCURRENT_STREAMS value nghttp2 is given: its own "no limit", so it never ends the
    /// connection for a stream over the real one.
    static let unannouncedStreamLimit: UInt32 = 0xffff_ffff

    /// Writes `limits.maxConcurrentStreams` over the placeholder in the session's first SETTINGS frame, once
    /// nghttp2 has serialized it at `frameStart` in `buffer` (mem_send yields one frame per call).
    private func announceStreamLimit(in buffer: inout [UInt8], frameStart: Int) {
        guard buffer.count - frameStart >= 9, buffer[frameStart + 3] == 0x4, buffer[frameStart + 4] & 0x1 == 0 else {
            return
        }
        streamLimitUnannounced = false
        let limit = UInt32(clamping: limits.maxConcurrentStreams)
        var entry = frameStart + 9
        while entry + 6 <= buffer.count {
            if buffer[entry] == 0 && buffer[entry + 1] == 0x3 {
                buffer[entry + 2] = UInt8(truncatingIfNeeded: limit >> 24)
                buffer[entry + 3] = UInt8(truncatingIfNeeded: limit >> 16)
                buffer[entry + 4] = UInt8(truncatingIfNeeded: limit >> 8)
                buffer[entry + 5] = UInt8(truncatingIfNeeded: limit)
            }
            entry += 6
        }
    }

    /// `pendingOutput(into:maxBytes:)` with `limits.outputHighWaterMark`.
    @discardableResult
    public func pendingOutput(into buffer: inout [UInt8]) -> Int {
        pendingOutput(into: &buffer, maxBytes: limits.outputHighWaterMark)
    }

    // MARK: - Connection control

    /// First step of a graceful shutdown: a GOAWAY announcing the end without refusing streams in flight.
    /// Follow it, about one round trip later, with `goAway()`.
    public func shutdownNotice() {
        guard !terminated else { return }
        _ = nghttp2_submit_shutdown_notice(session)
    }

    /// Sends GOAWAY: no stream above `lastStreamID` (default: the last one the session processed) will be served.
    ///
    /// With `.noError` the connection winds down once open streams finish (`wantsRead`/`wantsWrite` turn false).
    /// With any other code the connection ends as soon as the GOAWAY is written.
    public func goAway(errorCode: HTTP2ErrorCode = .noError, lastStreamID: Int32? = nil) {
        guard !terminated else { return }
        let last = lastStreamID ?? nghttp2_session_get_last_proc_stream_id(session)
        if errorCode != .noError {
            // The owner knows why; marking the session terminated keeps the GOAWAY from being reported back.
            terminated = true
            _ = nghttp2_session_terminate_session2(session, last, errorCode.rawValue)
        } else {
            _ = nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, errorCode.rawValue, nil, 0)
        }
    }

    /// Tells nghttp2 the owner has taken `count` bytes of `.data` for `streamID`, reopening the client's windows.
    ///
    /// Bytes of a stream that has closed are released by the session itself; calling this afterwards is harmless.
    public func consume(streamID: Int32, count: Int) {
        guard count > 0, let stream = streams[streamID] else { return }
        let n = min(count, stream.unconsumed)
        guard n > 0 else { return }
        stream.unconsumed -= n
        _ = nghttp2_session_consume(session, streamID, n)
    }

    // MARK: - Internal

    func emit(_ event: consuming HTTP2Event) {
        events.append(event)
    }

    /// Ends the connection for a flood: GOAWAY(ENHANCE_YOUR_CALM) and the terminal event.
    func trip(_ flood: HTTP2Flood) {
        guard !terminated else { return }
        terminated = true
        _ = nghttp2_session_terminate_session(session, HTTP2ErrorCode.enhanceYourCalm.rawValue)
        emit(.connectionError(.flood(flood)))
    }

    /// A client HEADERS frame begins on `streamID`; false when it reuses an id the client skipped, a connection
    /// error of type PROTOCOL_ERROR (RFC 9113 §5.1.1: a new stream's id must exceed every id used before), which
    /// this ends the connection with. A lower id the client did use is left to nghttp2 (trailers, or a stream
    /// the gateway reset while the client was still sending: RFC 9113 §5.1 asks to ignore those).
    func clientHeadersBegin(streamID: Int32) -> Bool {
        guard !terminated, streamID & 1 == 1 else { return true }  // an even id is nghttp2's own connection error
        if streamID > highestClientStreamID {
            if streamID > highestClientStreamID &+ 2 {
                if skippedStreamIDs.count == Self.skippedRangeLimit {
                    // The two oldest ranges become one, with the ids used between them: a skipped id is never
                    // forgotten (a request on it would wait for ever), and one of those used ones, long closed, is
                    // refused as if skipped, which only a client that skips ids can meet.
                    let merged = skippedStreamIDs[0].lowerBound...skippedStreamIDs[1].upperBound
                    skippedStreamIDs.removeFirst()
                    skippedStreamIDs[0] = merged
                }
                skippedStreamIDs.append((highestClientStreamID &+ 1)...(streamID &- 2))
            }
            highestClientStreamID = streamID
            return true
        }
        guard wasSkipped(streamID) else { return true }
        return protocolViolation()
    }

    /// Whether the client skipped `streamID` (one of the last `skippedRangeLimit` ranges it skipped).
    private func wasSkipped(_ streamID: Int32) -> Bool {
        skippedStreamIDs.contains { $0.contains(streamID) }
    }

    /// Before a client SETTINGS frame is processed: the largest send window among the open streams and the
    /// initial window size it was opened with, for `settingsOverflowWindow`.
    func settingsBegin() {
        guard !terminated else { return }
        var largest: Int32 = -1
        for stream in streams.values {
            // Negative for a stream nghttp2 has already closed.
            largest = max(largest, nghttp2_session_get_stream_remote_window_size(session, stream.id))
        }
        windowsBeforeSettings =
            largest < 0
            ? nil
            : (largest, Int64(nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE)))
    }

    /// RFC 9113 §6.9.2: a SETTINGS_INITIAL_WINDOW_SIZE that lifts a stream's window past 2^31-1 is a connection
    /// error of type FLOW_CONTROL_ERROR. nghttp2 resets only the streams concerned, so the session checks the
    /// frame against the windows `settingsBegin` saw, and ends the connection; true when it did.
    func settingsOverflowWindow(_ settings: nghttp2_settings) -> Bool {
        guard let (largest, initial) = windowsBeforeSettings else { return false }
        windowsBeforeSettings = nil
        guard let entries = settings.iv else { return false }
        // nghttp2 keeps the last of repeated parameters (the frame's net change) and so is this check.
        for i in 0..<settings.niv where entries[i].settings_id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue {
            if Int64(largest) + Int64(entries[i].value) - initial > Int64(Int32.max) {
                return !connectionError(.flowControlError)
            }
        }
        return false
    }

    /// Ends the connection with GOAWAY(PROTOCOL_ERROR) for a violation nghttp2 lets through; always false (for
    /// the callback's answer). Nothing happens once the session has ended.
    func protocolViolation() -> Bool { connectionError(.protocolError) }

    /// Ends the connection with GOAWAY(`code`) for a violation nghttp2 lets through; always false.
    func connectionError(_ code: HTTP2ErrorCode) -> Bool {
        guard !terminated else { return false }
        terminated = true
        _ = nghttp2_session_terminate_session(session, code.rawValue)
        emit(.connectionError(.protocolError(code)))
        return false
    }

    /// Takes a token for `flood`; on an empty bucket ends the connection and returns false.
    func allow(_ flood: HTTP2Flood) -> Bool {
        let now = clock.nowNanoseconds()
        let ok: Bool
        switch flood {
        case .ping: ok = pingBucket.take(now: now)
        case .settings: ok = settingsBucket.take(now: now)
        case .resetStream: ok = resetBucket.take(now: now)
        case .continuation: ok = continuationBucket.take(now: now)
        case .emptyData: ok = emptyDataBucket.take(now: now)
        case .glitches: ok = glitchBucket.take(now: now)
        case .outboundQueue: ok = false
        }
        if !ok { trip(flood) }
        return ok
    }

    /// nghttp2 reported a fatal error from `mem_recv`/`mem_send`: queue a GOAWAY and report the terminal event.
    private func libraryFailed(_ code: Int32) {
        // A callback failure we caused ourselves after tripping a limit is already handled.
        guard !terminated else { return }
        terminated = true
        let reason: HTTP2ConnectionError
        let wire: HTTP2ErrorCode
        switch code {
        case NGHTTP2_ERR_BAD_CLIENT_MAGIC.rawValue:
            reason = .badPreface
            wire = .protocolError
        case NGHTTP2_ERR_FLOODED.rawValue:
            reason = .flood(.outboundQueue)
            wire = .enhanceYourCalm
        case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS.rawValue:
            reason = .flood(.continuation)
            wire = .enhanceYourCalm
        default:
            reason = .library(code)
            wire = .internalError
        }
        _ = nghttp2_session_terminate_session(session, wire.rawValue)
        emit(.connectionError(reason))
    }

    /// A GOAWAY left the session: report connection errors nghttp2 decided on by itself.
    func goAwaySent(errorCode: UInt32) {
        guard errorCode != 0, !terminated else { return }
        terminated = true
        emit(.connectionError(.protocolError(HTTP2ErrorCode(rawValue: errorCode))))
    }

    var nghttp2Session: OpaquePointer { session }

    // MARK: - Header block submission

    /// Submits a response HEADERS frame built from `head`, with `provider` for DATA or nil for END_STREAM.
    ///
    /// Names are lowercased; connection-specific fields (RFC 9113 §8.2.2), pseudo-header look-alikes, fields the
    /// Connection header names, and values with NUL/CR/LF are dropped.
    func submitResponseHeaders(
        streamID: Int32, head: ResponseHead, contentLength: Int?, provider: UnsafePointer<nghttp2_data_provider>?,
        date: String? = nil, informational: Bool = false
    ) -> Bool {
        let fields = head.headers.fields
        // Worst case: every name and value, three status digits, a content-length of up to 20 digits and a date.
        var needed = 3 + 20 + (date?.utf8.count ?? 0)
        var nominatesFields = false
        // The fields are read in place through the array's buffer: iterating copies each one (four reference
        // count operations per field and pass).
        fields.withUnsafeBufferPointer { fields in
            for i in 0..<fields.count {
                let field = fields.baseAddress! + i
                let nameCount = field.pointee.name.utf8.count
                needed += nameCount + field.pointee.value.utf8.count
                if field.pointee.name.asciiCaseInsensitiveEquals(literal: "connection") {
                    nominatesFields = true
                }
            }
        }
        reserveHeaderScratch(bytes: needed, fields: fields.count + 3)
        let buffer = headerBuffer
        let nvs = headerNVs
        let nominated = nominatesFields ? connectionNominated(head.headers) : []
        var count = 0
        var used = 0
        var hasDate = false

        /// A field whose name is a literal: nghttp2 may keep pointing at it (static memory) instead of copying it.
        func append(_ name: StaticString, valueAt valueStart: Int, valueCount: Int) {
            // Safety: a literal's bytes live as long as the program; NO_COPY_NAME tells nghttp2 only to read them.
            nvs[count] = nghttp2_nv(
                name: UnsafeMutablePointer(mutating: name.utf8Start), value: buffer + valueStart,
                namelen: name.utf8CodeUnitCount, valuelen: valueCount,
                flags: UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue))
            count &+= 1
        }

        let status = min(max(head.status, 100), 999)
        buffer[0] = UInt8(truncatingIfNeeded: 0x30 + status / 100)
        buffer[1] = UInt8(truncatingIfNeeded: 0x30 + status / 10 % 10)
        buffer[2] = UInt8(truncatingIfNeeded: 0x30 + status % 10)
        append(":status", valueAt: 0, valueCount: 3)
        used = 3

        fields.withUnsafeBufferPointer { fields in
            for i in 0..<fields.count {
                let field = fields.baseAddress! + i
                let nameStart = used
                let nameCount = copyUTF8(field.pointee.name, to: buffer + nameStart, lowercasing: true)
                guard nameCount > 0, buffer[nameStart] != UInt8(ascii: ":") else { continue }
                let lowered = UnsafeBufferPointer(start: buffer + nameStart, count: nameCount)
                if isConnectionSpecific(lowered)
                    || (nominatesFields && nominated.contains { $0.elementsEqual(lowered) })
                {
                    continue
                }
                // The caller's length replaces the head's own.
                if contentLength != nil && lowered.equals("content-length") { continue }
                if lowered.equals("date") { hasDate = true }
                let valueStart = nameStart + nameCount
                var valueCount = copyUTF8(field.pointee.value, to: buffer + valueStart, lowercasing: false)
                let scan = scanFieldValue(UnsafeBufferPointer(start: buffer + valueStart, count: valueCount))
                // RFC 9113 §8.2.1: never generate a value with NUL, CR or LF; the client would reset the stream.
                if scan == .forbidden { continue }
                if scan == .mayHoldEscape,
                    ObsText.containsEscape(UnsafeBufferPointer(start: buffer + valueStart, count: valueCount))
                {
                    // obs-text the upstream sent goes on as the bytes it was (`ObsText`).
                    valueCount = ObsText.unescapeInPlace(buffer + valueStart, count: valueCount)
                }
                nvs[count] = nghttp2_nv(
                    name: buffer + nameStart, value: buffer + valueStart, namelen: nameCount, valuelen: valueCount,
                    flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
                count &+= 1
                used = valueStart + valueCount
            }
        }
        if !hasDate, let date {
            let valueCount = copyUTF8(date, to: buffer + used, lowercasing: false)
            append("date", valueAt: used, valueCount: valueCount)
            used += valueCount
        }
        if let contentLength {
            // Digits written in place: no String for the number.
            var digits = 0
            var rest = max(contentLength, 0)
            repeat {
                digits &+= 1
                rest /= 10
            } while rest > 0
            rest = max(contentLength, 0)
            for i in stride(from: used + digits - 1, through: used, by: -1) {
                buffer[i] = UInt8(truncatingIfNeeded: 0x30 + rest % 10)
                rest /= 10
            }
            append("content-length", valueAt: used, valueCount: digits)
            used += digits
        }
        if informational {
            // A non-final HEADERS frame: no END_STREAM, the final response follows on the same stream.
            return nghttp2_submit_headers(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, nil, nvs, count, nil) >= 0
        }
        return nghttp2_submit_response(session, streamID, nvs, count, provider) == 0
    }

    /// Makes the header scratch hold at least `bytes` bytes and `fields` name/value pairs.
    private func reserveHeaderScratch(bytes: Int, fields: Int) {
        if bytes > headerBufferCapacity {
            headerBuffer.deallocate()
            headerBufferCapacity = max(bytes, headerBufferCapacity * 2)
            headerBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: headerBufferCapacity)
        }
        if fields > headerNVCapacity {
            headerNVs.deallocate()
            headerNVCapacity = max(fields, headerNVCapacity * 2)
            headerNVs = UnsafeMutablePointer<nghttp2_nv>.allocate(capacity: headerNVCapacity)
        }
    }

    /// Lowercased field names listed in Connection header values; usually none.
    private func connectionNominated(_ headers: HTTPFields) -> [[UInt8]] {
        var names: [[UInt8]] = []
        for field in headers where field.name.asciiCaseInsensitiveEquals(literal: "connection") {
            for token in field.value.utf8.split(separator: UInt8(ascii: ",")) {
                let trimmed = token.drop(while: { $0 == 32 || $0 == 9 }).reversed().drop(while: { $0 == 32 || $0 == 9 })
                let name = trimmed.reversed().map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 }
                if !name.isEmpty { names.append(name) }
            }
        }
        return names
    }

    /// RFC 9113 §8.2.2 connection-specific fields, plus `te`, which means nothing in a response.
    private func isConnectionSpecific(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        switch name.count {
        case 2: return name.equals("te")
        case 7: return name.equals("upgrade")
        case 10: return name.equals("connection") || name.equals("keep-alive")
        case 16: return name.equals("proxy-connection")
        case 17: return name.equals("transfer-encoding")
        default: return false
        }
    }
}

extension UnsafeBufferPointer<UInt8> {
    /// Whether these bytes are exactly the literal's (a generic `elementsEqual` against a `String.UTF8View` costs
    /// ten times more).
    @inline(__always)
    func equals(_ literal: StaticString) -> Bool {
        // A byte loop, not `bytesEqual`: these literals are a few bytes, and the word version's size made the
        // compiler move `copyUTF8` out of `submitResponseHeaders` (callgrind: +0.5k instructions per response).
        guard count == literal.utf8CodeUnitCount, let base = baseAddress else {
            return count == literal.utf8CodeUnitCount
        }
        let other = literal.utf8Start
        for i in 0..<count where base[i] != other[i] { return false }
        return true
    }
}

/// Copies the UTF-8 bytes of `string` to `destination` (ASCII letters lowercased when asked) and returns how many.
@inline(__always)
func copyUTF8(_ string: String, to destination: UnsafeMutablePointer<UInt8>, lowercasing: Bool) -> Int {
    func copy(_ source: UnsafeBufferPointer<UInt8>) -> Int {
        guard let base = source.baseAddress else { return 0 }
        if lowercasing {
            // Eight bytes at a time: a byte's high bit in `upper` is set when it is ASCII and within A...Z (the
            // sums of 7-bit values never carry into the next byte), and shifted down it is the case bit 0x20.
            var i = 0
            while i &+ 8 <= source.count {
                let w = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                let low7 = w & 0x7F7F_7F7F_7F7F_7F7F
                let atLeastA = low7 &+ 0x3F3F_3F3F_3F3F_3F3F
                let pastZ = low7 &+ 0x2525_2525_2525_2525
                let upper = atLeastA & ~pastZ & ~w & 0x8080_8080_8080_8080
                UnsafeMutableRawPointer(destination + i).storeBytes(of: w | (upper >> 2), as: UInt64.self)
                i &+= 8
            }
            while i < source.count {
                let b = base[i]
                destination[i] = b &- 65 < 26 ? b | 0x20 : b
                i &+= 1
            }
        } else {
            destination.update(from: base, count: source.count)
        }
        return source.count
    }
    if let n = string.utf8.withContiguousStorageIfAvailable(copy) { return n }
    var string = string
    return string.withUTF8(copy)
}

/// What `scanFieldValue` found in a value.
enum FieldValueScan {
    case plain
    /// NUL, CR or LF: a value no HTTP/2 field may carry.
    case forbidden
    /// A byte 0xEF: perhaps an `ObsText` escape, to be written back as the byte it stands for.
    case mayHoldEscape
}

/// Looks for NUL, CR and LF (and 0xEF): eight bytes at a time through ASCII (values such as CORS and rate-limit
/// lists are long).
@inline(__always)
func scanFieldValue(_ bytes: UnsafeBufferPointer<UInt8>) -> FieldValueScan {
    @inline(__always) func zeroByte(_ w: UInt64) -> Bool {
        (w &- 0x0101_0101_0101_0101) & ~w & 0x8080_8080_8080_8080 != 0
    }
    var i = 0
    if let base = bytes.baseAddress {
        while i &+ 8 <= bytes.count {
            let w = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
            if w & 0x8080_8080_8080_8080 != 0 || zeroByte(w) || zeroByte(w ^ 0x0A0A_0A0A_0A0A_0A0A)
                || zeroByte(w ^ 0x0D0D_0D0D_0D0D_0D0D)
            {
                break
            }
            i &+= 8
        }
    }
    var found = FieldValueScan.plain
    while i < bytes.count {
        let b = bytes[i]
        if b == 0 || b == 10 || b == 13 { return .forbidden }
        if b == 0xEF { found = .mayHoldEscape }
        i &+= 1
    }
    return found
}
