import GatewayCore

/// A strict, incremental HTTP/1.1 request parser (RFC 9112, RFC 9110) for the downstream side of the gateway.
///
/// Sans-I/O and pull-based: `feed` bytes as they arrive, then call `next()` until it returns nil, which means
/// "need more bytes" (or, after `.error` or after the `.end` of a request that does not keep the connection
/// alive, "nothing more, ever"). Pipelined requests are yielded in order; the driver applies back-pressure simply
/// by not calling `next()` until it is ready for the next request, and must then also stop reading the socket:
/// `feed` buffers whatever it is given (`bufferedByteCount` tells how much). A value type owned by one connection
/// on one loop; no locks. `.body` slices are copies, never views of the parser's buffer, so they may be kept.
///
/// Decisions the RFCs leave open, taken strictly (each has a test vector):
/// - Line endings must be CRLF; a bare LF or a bare CR anywhere in the head or chunk framing is 400.
/// - Empty lines before a request line are skipped (RFC 9112 §2.2) but count against `maxRequestLineBytes`.
/// - The request line is `method SP target SP version` with single spaces. `HTTP/1.y` with y above 1 is read as
///   HTTP/1.1 (RFC 9110 §2.5: the highest minor version the recipient conforms to); another major version is 505;
///   anything else malformed is 400.
/// - Targets: origin-form; `*` for OPTIONS only; absolute-form `http(s)://authority/path` (RFC 9112 §3.2.2) is
///   mapped to origin-form with `authority` and `scheme` taken from it; a Host field (still required and
///   checked) is then ignored, as the RFC says.
///   CONNECT (authority-form) is 501. Allowed target bytes are listed at `URISyntax.isTargetByte`: notably `|` is accepted,
///   `%` must start a valid pct-encoding, and non-ASCII is refused.
/// - HTTP/1.1 needs exactly one valid, non-empty Host (400 otherwise); HTTP/1.0 may omit it.
/// - Content-Length must be one field with `1*DIGIT`; lists and repeats, even of equal values (`5, 5`), are 400.
///   Surrounding OWS is not part of a field value (RFC 9110 §5.5), so `Content-Length: 5 ` is 5. Above
///   `maxBodyBytes` it is 413 at the head.
/// - Transfer-Encoding: only a single final `chunked` is accepted (empty list elements do not count, RFC 9110
///   §5.6.1.2). Together with Content-Length: 400. In HTTP/1.0: 400. `chunked` repeated or not last: 400. No
///   `chunked` at all (`identity`, `gzip`, an empty value): 400 (RFC 9112 §6.3). Other codings before a final
///   `chunked` (`gzip, chunked`): 501, since the gateway does not decode transfer codings.
/// - `Expect` other than `100-continue` (empty elements aside) is 417.
public struct HTTP1RequestParser: Sendable {
    public let limits: HTTP1Limits
    /// Longer than any method the gateway implements, or that is registered (`UPDATEREDIRECTREF`, 17).
    static let longestMethod = 32

    private enum State: Sendable {
        case requestLine
        case headers
        case body
        /// A request without keep-alive ended: whatever follows is ignored.
        case closed
        case failed
    }

    private var input = InputBuffer()
    private var state: State = .requestLine
    /// The head of a request refused only for its declared body size (413): complete and well-formed, so a caller
    /// can log which request it was. Nil for every other refusal.
    public private(set) var refusedHead: RequestHead?
    /// The method of a request refused after its request line was read, so that the refusal to a HEAD carries
    /// no content (RFC 9110 §9.3.2). When the request line itself was refused: `HEAD` if it began with that
    /// method (a target too long, a bad version...), else nil.
    public private(set) var refusedMethod: String?
    private var eof = false
    private var leadingEmptyLineBytes = 0

    private var method = ""
    private var target = ""
    private var version = HTTPVersion.http1_1
    private var targetAuthority: String?
    private var targetScheme: String?
    private var fields = FieldAccumulator()
    private var keepAlive = true
    private var body = BodyDecoder()
    /// The last request's field lines by position (the key is the whole line, CRLF excluded; the tag its
    /// `FieldKind`): a keep-alive client's repeated Host, User-Agent, Authorization... cost a byte comparison.
    private var recentFields = RecentFieldStore()
    /// The last origin- or asterisk-form request line (the field holds method and target, the tag the version).
    private var recentLine = RecentFieldStore(slots: 1, maxBytes: 1024)

    public init(limits: HTTP1Limits = HTTP1Limits()) {
        self.limits = limits
    }

    /// Appends received bytes. Ignored once the parser has failed or closed.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        guard acceptsInput else { return }
        input.append(bytes)
    }

    /// Appends received bytes. Ignored once the parser has failed or closed.
    public mutating func feed<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard acceptsInput else { return }
        input.append(contentsOf: bytes)
    }

    /// Records that the peer closed its sending side. A request cut short then yields `.error` (400); a connection
    /// closed between requests yields nothing.
    public mutating func feedEOF() {
        eof = true
    }

    /// True when bytes of an unfinished request have been received (a head in progress or a body not yet ended):
    /// the driver's idle timeout should then answer 408 rather than close silently.
    public var hasPartialRequest: Bool {
        switch state {
        case .requestLine: return input.readableCount > 0 && !onlyEmptyLinesBuffered
        case .headers: return true
        case .body: return body.isInProgress
        case .closed, .failed: return false
        }
    }

    /// Bytes received and not yet turned into events.
    public var bufferedByteCount: Int { input.readableCount }

    private var acceptsInput: Bool {
        switch state {
        case .closed, .failed: return false
        default: return !eof
        }
    }

    private var onlyEmptyLinesBuffered: Bool {
        input.readableCount == 1 && input.byte(at: 0) == Byte.cr
    }

    /// The next event, or nil when more bytes are needed (or the parser has finished for good).
    public mutating func next() -> HTTP1RequestEvent? {
        while true {
            switch state {
            case .closed, .failed:
                return nil
            case .requestLine:
                guard input.readableCount > 0 else { return nil }
                let first = input.byte(at: 0)
                guard first == Byte.cr || isTokenByte(first) else { return fail(.badRequest("invalid request line")) }
                if repeatsRecentLine() { continue }
                switch input.searchLine(limit: limits.maxRequestLineBytes - leadingEmptyLineBytes) {
                case .incomplete:
                    if eof {
                        if onlyEmptyLinesBuffered { return nil }
                        return fail(.badRequest("connection closed inside a request"))
                    }
                    return nil
                case .tooLong:
                    // RFC 9112 §3: a method longer than any implemented is 501; only a long target is 414.
                    let methodWindow = min(input.readableCount, Self.longestMethod + 1)
                    if !(0..<methodWindow).contains(where: { input.byte(at: $0) == Byte.space }) {
                        return fail(HTTP1Error(status: 501, reason: "method too long"))
                    }
                    return fail(HTTP1Error(status: 414, reason: "request line too long"), lineSaysHEAD: lineSaysHEAD())
                case .bareCR:
                    return fail(.badRequest("bare CR"))
                case .found(let lf):
                    guard input.hasCRBefore(lf) else { return fail(.badRequest(input.bareEnding(lf))) }
                    let start = input.readIndex
                    if lf - 1 == start {
                        leadingEmptyLineBytes += 2
                        input.consumeLine(through: lf)
                        continue
                    }
                    let parsed = input.withBytes { Self.parseRequestLine($0, start, lf - 1) }
                    let saysHEAD = lineSaysHEAD()
                    input.consumeLine(through: lf)
                    switch parsed {
                    case .failure(let error):
                        if input.lineHasCR(from: start, endingAt: lf) { return fail(.badRequest("bare CR")) }
                        return fail(error, lineSaysHEAD: saysHEAD)
                    case .line(let line):
                        if line.authority == nil {
                            let version: UInt8 = line.version == .http1_0 ? 0 : 1
                            input.remember(
                                HTTPFields.Field(line.method, line.target), lineAt: start, count: lf - 1 - start,
                                in: &recentLine, slot: 0, tag: version)
                        }
                        method = line.method
                        target = line.target
                        version = line.version
                        targetAuthority = line.authority
                        targetScheme = line.scheme
                        // `fields` is fresh here: the initial one, or the one `finishHead` left.
                        leadingEmptyLineBytes = 0
                        state = .headers
                    }
                }
            case .headers:
                switch input.takeRepeatedFieldLine(
                    into: &fields, remembered: recentFields, limits: limits,
                    tooMany: HTTP1Error(status: 431, reason: "too many header fields"))
                {
                case .none: break
                case .some(nil): continue
                case .some(let error?): return fail(error)
                }
                switch input.searchLine(limit: limits.maxHeaderBytes - fields.bytes) {
                case .incomplete:
                    return eof ? fail(.badRequest("connection closed inside a request")) : nil
                case .tooLong:
                    return fail(HTTP1Error(status: 431, reason: "header section too large"))
                case .bareCR:
                    return fail(.badRequest("bare CR"))
                case .found(let lf):
                    guard input.hasCRBefore(lf) else { return fail(.badRequest(input.bareEnding(lf))) }
                    let start = input.readIndex
                    fields.bytes += lf + 1 - start
                    if lf - 1 == start {
                        input.consumeLine(through: lf)
                        return finishHead()
                    }
                    let line = input.withBytes { parseFieldLine($0, start, lf - 1) }
                    input.consumeLine(through: lf)
                    // Consumed, so the field moves into the accumulator instead of being copied and destroyed.
                    switch consume line {
                    case .failure(let error):
                        if input.lineHasCR(from: start, endingAt: lf) { return fail(.badRequest("bare CR")) }
                        return fail(error)
                    case .field(let field, let kind):
                        let slot = fields.fields.count
                        guard slot < limits.maxHeaderCount else {
                            return fail(HTTP1Error(status: 431, reason: "too many header fields"))
                        }
                        // Remembered only once accepted: a later hit on these bytes skips both checks.
                        let remembered = slot < recentFields.slots ? field : nil
                        if let error = fields.add(field, kind) { return fail(error) }
                        if let remembered {
                            input.remember(
                                remembered, lineAt: start, count: lf - 1 - start, in: &recentFields, slot: slot,
                                tag: kind.rawValue)
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
                    return fail(error)
                case .end:
                    if keepAlive {
                        state = .requestLine
                    } else {
                        state = .closed
                        input.discardAll()
                    }
                    return .end
                }
            }
        }
    }

    /// Whether the buffered bytes start with the last request's request line and its CRLF, within the line limit;
    /// if so the line is consumed and its parsed form reused, and the parser moves on to the fields.
    ///
    /// The outcome is the one `searchLine` and `parseRequestLine` would reach: the remembered line was accepted,
    /// so it holds no CR or LF (the LF found is the one after it, within the limit as checked here) and parsing
    /// the same bytes gives the same method, target and version.
    @inline(__always)
    private mutating func repeatsRecentLine() -> Bool {
        let count = recentLine.keyCount(at: 0)
        guard count > 0, count &+ 2 <= limits.maxRequestLineBytes - leadingEmptyLineBytes,
            input.startsWithLine(remembered: recentLine, 0, count)
        else { return false }
        input.consumeLine(through: input.readIndex &+ count &+ 1)
        let line = recentLine.field(at: 0)
        method = line.name
        target = line.value
        version = recentLine.tag(at: 0) == 0 ? .http1_0 : .http1_1
        targetAuthority = nil
        targetScheme = nil
        // `fields` is fresh here: the initial one, or the one `finishHead` left.
        leadingEmptyLineBytes = 0
        state = .headers
        return true
    }

    /// `lineSaysHEAD`: the refused request line starts with the method `HEAD` (a refusal of the line itself).
    private mutating func fail(_ error: HTTP1Error, lineSaysHEAD: Bool = false) -> HTTP1RequestEvent {
        refusedMethod = state == .headers ? method : (lineSaysHEAD ? "HEAD" : nil)
        state = .failed
        input.discardAll()
        return .error(error)
    }

    /// The unread request line starts with `HEAD ` (methods are case-sensitive, RFC 9110 §9.1).
    private func lineSaysHEAD() -> Bool {
        input.readableCount > 5 && input.byte(at: 0) == 0x48 && input.byte(at: 1) == 0x45 && input.byte(at: 2) == 0x41
            && input.byte(at: 3) == 0x44 && input.byte(at: 4) == Byte.space
    }

    private mutating func finishHead() -> HTTP1RequestEvent {
        // Swapped out, so the parser is ready for the next request and the field list moves into the head
        // without a copy (retain) and a release of the accumulator's.
        var fields = FieldAccumulator()
        swap(&fields, &self.fields)
        var authority = fields.host
        if version == .http1_1 && fields.hostCount == 0 { return fail(.badRequest("missing Host field")) }
        if let fromTarget = targetAuthority {
            // RFC 9112 §3.2.2: with an absolute-form target the server MUST ignore Host and use the target's
            // authority (Host still had to be present and valid above). The upstream never sees the client's Host:
            // the gateway writes its own, so the two cannot be read differently further on.
            authority = fromTarget
        }

        let framing: HTTP1Framing
        switch fields.transferCoding {
        case .none:
            if let length = fields.contentLength {
                guard length <= limits.maxBodyBytes else {
                    // Well-formed but too large: the head stays readable, so the refusal is logged for what it was.
                    refusedHead = RequestHead(
                        method: method, target: target, version: version, headers: HTTPFields(fields.takeFields()),
                        authority: authority, scheme: targetScheme)
                    return fail(HTTP1Error(status: 413, reason: "body exceeds the limit"))
                }
                framing = .contentLength(length)
            } else {
                framing = .none
            }
        case .chunked, .unsupportedBeforeChunked, .withoutChunked, .malformed:
            if version == .http1_0 { return fail(.badRequest("Transfer-Encoding in HTTP/1.0")) }
            if fields.contentLength != nil { return fail(.badRequest("both Content-Length and Transfer-Encoding")) }
            switch fields.transferCoding {
            case .malformed: return fail(.badRequest("chunked repeated or not the final transfer coding"))
            case .withoutChunked:
                // RFC 9112 §6.3: without a final `chunked` the body's length cannot be known: 400 and close (a MUST,
                // over §6.1's SHOULD of 501 for a coding the server does not understand).
                return fail(.badRequest("no final chunked transfer coding"))
            case .unsupportedBeforeChunked:
                return fail(HTTP1Error(status: 501, reason: "unsupported transfer coding"))
            default: framing = .chunked
            }
        }

        switch version {
        case .http1_0: keepAlive = fields.connectionKeepAlive && !fields.connectionClose
        default: keepAlive = !fields.connectionClose
        }
        let hasBody: Bool
        switch framing {
        case .none, .contentLength(0): hasBody = false
        default: hasBody = true
        }
        let info = HTTP1RequestInfo(
            framing: framing,
            keepAlive: keepAlive,
            expectContinue: fields.expectContinue && version == .http1_1 && hasBody
        )
        body = BodyDecoder(framing: framing, maxBody: limits.maxBodyBytes)
        state = .body
        // Made in the event itself: a head made first and then put in the event was copied (every string
        // retained) and the local destroyed.
        // The strings move out of the parser (the next request line sets them again): read in place they were
        // retained here and released when overwritten.
        let head = RequestHead(
            method: take(&method), target: take(&target), version: version, headers: HTTPFields(fields.takeFields()),
            authority: authority, scheme: targetScheme)
        return .head(consume head, info)
    }

    struct RequestLine {
        var method: String
        var target: String
        var version: HTTPVersion
        var authority: String?
        var scheme: String?
    }

    enum RequestLineResult {
        case line(RequestLine)
        case failure(HTTP1Error)
    }

    /// Parses `method SP request-target SP HTTP-version` (RFC 9112 §3) from `buf[start..<end]`.
    static func parseRequestLine(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> RequestLineResult {
        var i = start
        while i < end && isTokenByte(buf[i]) { i &+= 1 }
        guard i > start, i < end, buf[i] == Byte.space else { return .failure(.badRequest("invalid method")) }
        let methodEnd = i
        let targetStart = i + 1
        i = targetStart
        while i < end && buf[i] != Byte.space { i &+= 1 }
        guard i < end, i > targetStart else { return .failure(.badRequest("invalid request line")) }
        let targetEnd = i
        let versionStart = i + 1

        let version: HTTPVersion
        switch parseVersion(buf, versionStart, end) {
        case .some(.some(let v)): version = v
        case .some(.none): return .failure(HTTP1Error(status: 505, reason: "HTTP version not supported"))
        case .none: return .failure(.badRequest("invalid HTTP version"))
        }

        // Methods are case-sensitive (RFC 9110 §9.1), so only the exact `CONNECT` is the tunnel method.
        let method = makeString(buf, start, methodEnd)
        if method == "CONNECT" { return .failure(HTTP1Error(status: 501, reason: "CONNECT is not supported")) }

        if buf[targetStart] == Byte.slash {
            guard validateTargetBytes(buf, targetStart, targetEnd) else {
                return .failure(.badRequest("invalid request target"))
            }
            let target = makeString(buf, targetStart, targetEnd)
            return .line(RequestLine(method: method, target: target, version: version))
        }
        if targetEnd - targetStart == 1 && buf[targetStart] == Byte.asterisk {
            guard method == "OPTIONS" else { return .failure(.badRequest("asterisk-form outside OPTIONS")) }
            return .line(RequestLine(method: method, target: "*", version: version))
        }
        return parseAbsoluteForm(buf, targetStart, targetEnd, method: method, version: version)
    }

    /// `http://` or `https://` authority, then an optional path-abempty and query (RFC 9112 §3.2.2, §3.3).
    private static func parseAbsoluteForm(
        _ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, method: String, version: HTTPVersion
    ) -> RequestLineResult {
        let scheme: String
        var i: Int
        if end - start > 7 && equalsIgnoringCase(buf, start, start + 7, "http://") {
            scheme = "http"
            i = start + 7
        } else if end - start > 8 && equalsIgnoringCase(buf, start, start + 8, "https://") {
            scheme = "https"
            i = start + 8
        } else {
            return .failure(.badRequest("invalid request target"))
        }
        let authorityStart = i
        while i < end && buf[i] != Byte.slash && buf[i] != Byte.question { i &+= 1 }
        let authorityEnd = i
        guard isValidAuthority(UnsafeBufferPointer(rebasing: buf[authorityStart..<authorityEnd])) else {
            return .failure(.badRequest("invalid request target"))
        }
        let authority = makeString(buf, authorityStart, authorityEnd)
        guard validateTargetBytes(buf, authorityEnd, end) else {
            return .failure(.badRequest("invalid request target"))
        }
        let target: String
        if authorityEnd == end {
            target = method == "OPTIONS" ? "*" : "/"
        } else if buf[authorityEnd] == Byte.question {
            target = "/" + makeString(buf, authorityEnd, end)
        } else {
            target = makeString(buf, authorityEnd, end)
        }
        return .line(
            RequestLine(method: method, target: target, version: version, authority: authority, scheme: scheme)
        )
    }

    /// Every byte a target byte, and every `%` followed by two hex digits.
    static func validateTargetBytes(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        URISyntax.isValidTarget(UnsafeBufferPointer(rebasing: buf[start..<end]))
    }
}

/// `HTTP/1.0`: `.some(.http1_0)`; `HTTP/1.1` and later minor versions: `.some(.http1_1)` (RFC 9110 §2.5); another
/// well-formed `HTTP/d.d`: `.some(nil)`; malformed: nil.
func parseVersion(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> HTTPVersion?? {
    guard end - start == 8,
        buf[start] == 0x48, buf[start + 1] == 0x54, buf[start + 2] == 0x54, buf[start + 3] == 0x50,
        buf[start + 4] == Byte.slash, isDigit(buf[start + 5]), buf[start + 6] == 0x2E, isDigit(buf[start + 7])
    else { return nil }
    guard buf[start + 5] == 0x31 else { return .some(nil) }
    switch buf[start + 7] {
    case 0x30: return .some(.http1_0)
    default: return .some(.http1_1)
    }
}

/// The string in `value`, leaving an empty one: moved out, not copied (no retain now, no release when `value` is
/// next overwritten).
@inline(__always)
private func take(_ value: inout String) -> String {
    var out = ""
    swap(&out, &value)
    return out
}
