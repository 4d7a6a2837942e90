import GatewayCore

/// A strict, incremental HTTP/1.1 response parser for the upstream side of the gateway.
///
/// Call `requestSent(method:)` for every request written on the connection, in order, before its response can
/// arrive; `feed` bytes as they arrive, `feedEOF()` when the upstream closes, and call `next()` until it returns
/// nil. Every error has status 502: the gateway cannot trust the upstream's framing, must close the connection,
/// and answers its client with a Bad Gateway.
///
/// Framing (RFC 9112 §6.3): a response to HEAD, and every 1xx, 204 and 304 response has no body whatever its
/// Content-Length says; then `Transfer-Encoding: chunked` (only a single final `chunked` is accepted; any other
/// coding is refused since the gateway does not decode transfer codings); then Content-Length; otherwise the body
/// runs until the upstream closes and the connection is not reused. Content-Length with Transfer-Encoding,
/// repeated or malformed Content-Length, and Transfer-Encoding in an HTTP/1.0 response are refused, as in the
/// request parser. 1xx responses other than 101 are yielded as `.informational` and parsing continues with the
/// final response; 101 is refused, since the gateway never asks for an upgrade. The status line may omit the space
/// after the code when the reason phrase is empty (some servers do).
public struct HTTP1ResponseParser: Sendable {
    public let limits: HTTP1Limits

    private enum State: Sendable {
        case statusLine
        case headers
        case body
        case closed
        case failed
    }

    private var input = InputBuffer()
    private var state: State = .statusLine
    private var eof = false
    /// For each request sent and not yet answered: whether it was HEAD.
    private var pending: [Bool] = []
    private var pendingStart = 0

    private var version = HTTPVersion.http1_1
    private var status = 0
    private var reason = ""
    private var fields = FieldAccumulator()
    private var keepAlive = true
    private var body = BodyDecoder()
    /// The last response's field lines by position (keyed by the whole line, the tag its `FieldKind`): an upstream
    /// repeats most of them (Server, Content-Type, Connection...) on every response of a kept-alive connection, and
    /// a repeated line then costs a byte comparison instead of a parse and two new Strings.
    private var recentFields = RecentFieldStore(slots: 16, maxBytes: 4096)

    public init(limits: HTTP1Limits = HTTP1Limits()) {
        self.limits = limits
    }

    /// Records a request written to the upstream; responses are matched to requests in order.
    public mutating func requestSent(method: String) {
        if pendingStart == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingStart = 0
        }
        pending.append(method == "HEAD")
    }

    /// Requests sent whose final response has not ended yet.
    public var outstandingRequests: Int { pending.count - pendingStart }

    /// Bytes received and not yet consumed by a response. After the last response ended, any such byte is data no
    /// request asked for (a body after HEAD, 204 or 304, or a response too many): RFC 9112 §6.3 forbids passing it
    /// on as a response, so the connection must not carry another exchange.
    public var unconsumedByteCount: Int { input.readableCount }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        guard acceptsInput else { return }
        input.append(bytes)
    }

    public mutating func feed<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard acceptsInput else { return }
        input.append(contentsOf: bytes)
    }

    /// How many leading bytes of `count` just received are body data the caller may pass on itself, as the
    /// `.body` event they would have become, instead of feeding them: the parser is inside a body, has nothing
    /// buffered before them, and the body's framing says they are data. The parser counts them as consumed; feed
    /// the bytes after them. Saves a large body two copies (into the parser's buffer and out of it).
    public mutating func takeBodyUnbuffered(_ count: Int) -> Int {
        guard case .body = state, input.readableCount == 0, acceptsInput else { return 0 }
        return body.countUnbuffered(count)
    }

    /// Records that the upstream closed. Ends a read-until-close body; anything else unfinished becomes `.error`.
    public mutating func feedEOF() {
        eof = true
    }

    private var acceptsInput: Bool {
        switch state {
        case .closed, .failed: return false
        default: return !eof
        }
    }

    /// The next event, or nil when more bytes are needed (or the parser has finished for good).
    public mutating func next() -> HTTP1ResponseEvent? {
        while true {
            switch state {
            case .closed, .failed:
                return nil
            case .statusLine:
                guard input.readableCount > 0 else {
                    if eof && outstandingRequests > 0 { return fail("upstream closed before responding") }
                    return nil
                }
                guard outstandingRequests > 0 else { return fail("response without a request") }
                guard input.byte(at: 0) == 0x48 else { return fail("invalid status line") }
                switch input.searchLine(limit: limits.maxRequestLineBytes) {
                case .incomplete:
                    return eof ? fail("upstream closed inside a response") : nil
                case .tooLong:
                    return fail("status line too long")
                case .bareCR:
                    return fail("bare CR")
                case .found(let lf):
                    guard input.hasCRBefore(lf) else { return fail(input.bareEnding(lf)) }
                    let start = input.readIndex
                    let parsed = input.withBytes { Self.parseStatusLine($0, start, lf - 1) }
                    input.consumeLine(through: lf)
                    guard let parsed else {
                        return fail(
                            input.lineHasCR(from: start, endingAt: lf) ? "bare CR" : "invalid status line")
                    }
                    version = parsed.version
                    status = parsed.status
                    reason = parsed.reason
                    fields = FieldAccumulator()
                    state = .headers
                }
            case .headers:
                if let repeated = input.takeRepeatedFieldLine(
                    into: &fields, remembered: recentFields, limits: limits,
                    tooMany: HTTP1Error(status: 502, reason: "too many header fields"))
                {
                    if let error = repeated { return fail(error.reason) }
                    continue
                }
                switch input.searchLine(limit: limits.maxHeaderBytes - fields.bytes) {
                case .incomplete:
                    return eof ? fail("upstream closed inside a response") : nil
                case .tooLong:
                    return fail("header section too large")
                case .bareCR:
                    return fail("bare CR")
                case .found(let lf):
                    guard input.hasCRBefore(lf) else { return fail(input.bareEnding(lf)) }
                    let start = input.readIndex
                    fields.bytes += lf + 1 - start
                    if lf - 1 == start {
                        input.consumeLine(through: lf)
                        if let event = finishHead() { return event }
                        continue
                    }
                    let line = input.withBytes { parseFieldLine($0, start, lf - 1) }
                    input.consumeLine(through: lf)
                    // Consumed, so the field moves into the accumulator instead of being copied and destroyed.
                    switch consume line {
                    case .failure(let error):
                        return fail(input.lineHasCR(from: start, endingAt: lf) ? "bare CR" : error.reason)
                    case .field(let field, let kind):
                        let slot = fields.fields.count
                        guard slot < limits.maxHeaderCount else { return fail("too many header fields") }
                        // Host and Expect mean nothing in a response; keep them as plain fields.
                        let effective: FieldKind
                        switch kind {
                        case .host, .expect: effective = .other
                        default: effective = kind
                        }
                        // Remembered only once accepted: a later hit on these bytes needs no check again.
                        let remembered = slot < recentFields.slots ? field : nil
                        if let error = fields.add(field, effective) { return fail(error.reason) }
                        if let remembered {
                            input.remember(
                                remembered, lineAt: start, count: lf - 1 - start, in: &recentFields, slot: slot,
                                tag: effective.rawValue)
                        }
                    }
                }
            case .body:
                switch body.step(&input, eof: eof, limits: limits) {
                case .needMore:
                    return nil
                case .body(let bytes):
                    return .body(bytes)
                case .trailers(let trailers):
                    return .trailers(trailers)
                case .failure(let error):
                    return fail(error.reason)
                case .end:
                    pendingStart += 1
                    if keepAlive {
                        state = .statusLine
                    } else {
                        state = .closed
                        input.discardAll()
                    }
                    return .end
                }
            }
        }
    }

    private mutating func fail(_ reason: String) -> HTTP1ResponseEvent {
        state = .failed
        input.discardAll()
        return .error(HTTP1Error(status: 502, reason: reason))
    }

    /// The event for a complete head, or nil when it was an interim response that is skipped.
    private mutating func finishHead() -> HTTP1ResponseEvent? {
        let head = ResponseHead(status: status, reason: reason, headers: HTTPFields(fields.fields))
        if status == 101 { return fail("unexpected 101 Switching Protocols") }
        if fields.contentLength != nil && fields.hasTransferEncoding {
            return fail("both Content-Length and Transfer-Encoding")
        }
        if fields.hasTransferEncoding && version == .http1_0 { return fail("Transfer-Encoding in HTTP/1.0") }
        if status < 200 {
            fields = FieldAccumulator()
            state = .statusLine
            return .informational(head)
        }

        let isHead = pending[pendingStart]
        let framing: HTTP1Framing
        if isHead || status == 204 || status == 304 {
            framing = .none
        } else {
            switch fields.transferCoding {
            case .chunked:
                framing = .chunked
            case .none:
                if let length = fields.contentLength {
                    // The field saturates at its cap: a length that large is one no answer has, and relaying the
                    // capped number would announce a length the upstream never sent (RFC 9112 §6.3: invalid).
                    guard length < FieldAccumulator.contentLengthCap else { return fail("invalid Content-Length") }
                    framing = .contentLength(length)
                } else {
                    framing = .untilClose
                }
            case .malformed, .unsupportedBeforeChunked, .withoutChunked:
                return fail("unsupported Transfer-Encoding")
            }
        }
        if framing == .untilClose {
            keepAlive = false
        } else if version == .http1_0 {
            keepAlive = fields.connectionKeepAlive && !fields.connectionClose
        } else {
            keepAlive = !fields.connectionClose
        }
        fields = FieldAccumulator()
        body = BodyDecoder(framing: framing, maxBody: Int.max, dropsFramingTrailers: true)
        state = .body
        return .head(head, HTTP1ResponseInfo(version: version, framing: framing, keepAlive: keepAlive))
    }

    struct StatusLine {
        var version: HTTPVersion
        var status: Int
        var reason: String
    }

    /// `HTTP-version SP 3DIGIT SP [ reason-phrase ]` (RFC 9112 §4), from `buf[start..<end]`.
    static func parseStatusLine(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> StatusLine? {
        guard end - start >= 12, buf[start + 8] == Byte.space,
            case .some(.some(let version)) = parseVersion(buf, start, start + 8)
        else { return nil }
        let d0 = buf[start + 9]
        let d1 = buf[start + 10]
        let d2 = buf[start + 11]
        guard d0 >= 0x31 && d0 <= 0x35, isDigit(d1), isDigit(d2) else { return nil }
        let status = Int(d0 - 0x30) * 100 + Int(d1 - 0x30) * 10 + Int(d2 - 0x30)
        var reasonStart = start + 12
        if reasonStart < end {
            guard buf[reasonStart] == Byte.space else { return nil }
            reasonStart += 1
        }
        var nonASCII = false
        for i in reasonStart..<end {
            let b = buf[i]
            if b >= 0x80 {
                nonASCII = true
            } else if (b < 0x20 && b != Byte.tab) || b == 0x7F {
                return nil
            }
        }
        // A reason phrase may hold obs-text (RFC 9112 §4), carried like a field value's.
        return StatusLine(
            version: version, status: status, reason: makeFieldValue(buf, reasonStart, end, nonASCII: nonASCII))
    }
}
