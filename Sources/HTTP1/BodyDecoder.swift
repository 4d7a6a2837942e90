import GatewayCore

/// Reads one message body from an `InputBuffer`: Content-Length, chunked (RFC 9112 §7.1) or until close.
///
/// Shared by both parsers. Chunk lines follow RFC 9112 §7.1: `1*HEXDIG` (leading zeros allowed; at most
/// `maxChunkSizeDigits` significant digits), then extensions `;name`, `;name=token` or `;name="quoted"`, with the
/// BWS §7.1.1 allows around `;` and `=` (RFC 9110 §5.6.3: a recipient MUST parse it), then CRLF. Accepting BWS is
/// safe here although parsers disagreeing on it are a known smuggling vector: the gateway decodes every chunk and
/// re-frames the body, so no chunk line it read ever reaches the upstream (or the client) as sent.
struct BodyDecoder: Sendable {
    enum State: Sendable {
        case contentLength(remaining: Int)
        case chunkLine
        case chunkData(remaining: Int)
        case chunkDataCR
        case chunkDataLF
        case trailers
        case untilClose
        /// `.end` (after `.trailers`, or for a message without body) is owed to the caller.
        case endPending
        case done
    }

    enum Step {
        case body(ArraySlice<UInt8>)
        case trailers(HTTPFields)
        case end
        case needMore
        case failure(HTTP1Error)
    }

    var state: State = .done
    /// Decoded bytes so far, for the chunked body limit.
    private var total = 0
    private var maxBody = Int.max
    private var trailerFields = FieldAccumulator()
    /// Whether a framing or routing field in the trailer section is dropped rather than failing the message.
    private var dropsFramingTrailers = false

    init() {}

    /// `dropsFramingTrailers` is for responses: their body has arrived whole by the time the trailers do, and
    /// RFC 9110 §6.5.1 lets a recipient discard a field it may not merge; refusing would lose a complete answer.
    /// A request's trailers are refused instead: they come from the party a smuggling attempt would.
    init(framing: HTTP1Framing, maxBody: Int, dropsFramingTrailers: Bool = false) {
        self.maxBody = maxBody
        self.dropsFramingTrailers = dropsFramingTrailers
        switch framing {
        case .none, .contentLength(0): state = .endPending
        case .contentLength(let n): state = .contentLength(remaining: n)
        case .chunked: state = .chunkLine
        case .untilClose: state = .untilClose
        }
    }

    /// Counts up to `count` bytes as body data without their passing through the input buffer, where the framing
    /// says the next bytes are data: the rest of a known length, a chunk's rest, or a body read until close.
    /// Returns how many it counted (0 in any other state).
    mutating func countUnbuffered(_ count: Int) -> Int {
        switch state {
        case .contentLength(let remaining):
            let n = min(count, remaining)
            state = n == remaining ? .endPending : .contentLength(remaining: remaining - n)
            return n
        case .chunkData(let remaining):
            let n = min(count, remaining)
            state = n == remaining ? .chunkDataCR : .chunkData(remaining: remaining - n)
            return n
        case .untilClose:
            return count
        default:
            return 0
        }
    }

    var isInProgress: Bool {
        switch state {
        case .done, .endPending: return false
        default: return true
        }
    }

    mutating func step(_ input: inout InputBuffer, eof: Bool, limits: HTTP1Limits) -> Step {
        while true {
            switch state {
            case .done:
                return .needMore
            case .endPending:
                state = .done
                return .end
            case .contentLength(let remaining):
                guard input.readableCount > 0 else { return eof ? .failure(.badRequest("body truncated")) : .needMore }
                let chunk = input.take(upTo: remaining)
                let left = remaining - chunk.count
                state = left == 0 ? .endPending : .contentLength(remaining: left)
                return .body(chunk)
            case .untilClose:
                if input.readableCount > 0 { return .body(input.take(upTo: Int.max)) }
                if eof {
                    state = .done
                    return .end
                }
                return .needMore
            case .chunkData(let remaining):
                guard input.readableCount > 0 else { return eof ? .failure(.badRequest("body truncated")) : .needMore }
                let chunk = input.take(upTo: remaining)
                let left = remaining - chunk.count
                state = left == 0 ? .chunkDataCR : .chunkData(remaining: left)
                return .body(chunk)
            case .chunkDataCR, .chunkDataLF:
                guard input.readableCount > 0 else { return eof ? .failure(.badRequest("body truncated")) : .needMore }
                let expectCR: Bool
                if case .chunkDataCR = state { expectCR = true } else { expectCR = false }
                guard input.byte(at: 0) == (expectCR ? Byte.cr : Byte.lf) else {
                    return .failure(.badRequest("missing CRLF after chunk data"))
                }
                input.consume(1)
                state = expectCR ? .chunkDataLF : .chunkLine
            case .chunkLine:
                switch input.searchLine(limit: limits.maxChunkLineBytes) {
                case .incomplete: return eof ? .failure(.badRequest("body truncated")) : .needMore
                case .tooLong: return .failure(.badRequest("chunk-size line too long"))
                case .bareCR: return .failure(.badRequest("bare CR in chunked body"))
                case .found(let lf):
                    guard input.hasCRBefore(lf) else {
                        return .failure(.badRequest(input.bareEnding(lf) + " in chunked body"))
                    }
                    let start = input.readIndex
                    let parsed = input.withBytes {
                        Self.parseChunkLine($0, start, lf - 1, maxDigits: limits.chunkDigits)
                    }
                    guard parsed >= 0 else {
                        let bareCR = input.lineHasCR(from: start, endingAt: lf)
                        return .failure(.badRequest(bareCR ? "bare CR in chunked body" : "invalid chunk-size line"))
                    }
                    input.consumeLine(through: lf)
                    if parsed == 0 {
                        trailerFields = FieldAccumulator()
                        state = .trailers
                    } else {
                        guard parsed <= maxBody - total else {
                            return .failure(HTTP1Error(status: 413, reason: "body exceeds the limit"))
                        }
                        total += parsed
                        state = .chunkData(remaining: parsed)
                    }
                }
            case .trailers:
                switch input.searchLine(limit: limits.maxHeaderBytes - trailerFields.bytes) {
                case .incomplete: return eof ? .failure(.badRequest("body truncated")) : .needMore
                case .tooLong: return .failure(HTTP1Error(status: 431, reason: "trailer section too large"))
                case .bareCR: return .failure(.badRequest("bare CR in trailer section"))
                case .found(let lf):
                    guard input.hasCRBefore(lf) else {
                        return .failure(.badRequest(input.bareEnding(lf) + " in trailer section"))
                    }
                    let start = input.readIndex
                    trailerFields.bytes += lf + 1 - start
                    if lf - 1 == start {
                        input.consumeLine(through: lf)
                        let fields = trailerFields.fields
                        trailerFields = FieldAccumulator()
                        if fields.isEmpty {
                            state = .done
                            return .end
                        }
                        state = .endPending
                        return .trailers(HTTPFields(fields))
                    }
                    let line = input.withBytes { parseFieldLine($0, start, lf - 1) }
                    input.consumeLine(through: lf)
                    switch line {
                    case .failure(let error):
                        if input.lineHasCR(from: start, endingAt: lf) {
                            return .failure(.badRequest("bare CR in trailer section"))
                        }
                        return .failure(error)
                    case .field(let field, let kind):
                        // RFC 9110 §6.5.1: framing and routing fields never belong in trailers.
                        switch kind {
                        case .host, .contentLength, .transferEncoding, .connection:
                            if dropsFramingTrailers { continue }
                            return .failure(.badRequest("framing field in trailer section"))
                        case .expect, .other:
                            break
                        }
                        guard trailerFields.fields.count < limits.maxHeaderCount else {
                            return .failure(HTTP1Error(status: 431, reason: "too many trailer fields"))
                        }
                        _ = trailerFields.add(field, .other)
                    }
                }
            }
        }
    }

    /// The chunk size in `buf[start..<end]` (the line without CRLF), or -1 if the line is invalid.
    static func parseChunkLine(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, maxDigits: Int) -> Int {
        var i = start
        var size = 0
        var significant = 0
        while i < end {
            let v = hexValue(buf[i])
            if v < 0 { break }
            if significant > 0 || v != 0 { significant &+= 1 }
            // At most `maxDigits` (≤ 15) significant digits are ever shifted in: no overflow.
            if significant <= maxDigits { size = size << 4 | v }
            i &+= 1
        }
        guard i > start && significant <= maxDigits else { return -1 }
        @inline(__always) func skipBWS() { while i < end && isOWS(buf[i]) { i &+= 1 } }
        while i < end {
            skipBWS()
            // Whitespace must lead to an extension: the grammar has none at the end of the line.
            guard i < end, buf[i] == Byte.semicolon else { return -1 }
            i &+= 1
            skipBWS()
            let nameStart = i
            while i < end && isTokenByte(buf[i]) { i &+= 1 }
            guard i > nameStart else { return -1 }
            let afterName = i
            skipBWS()
            guard i < end, buf[i] == Byte.equals else {
                // No value: what follows the name's whitespace is checked as the next extension's BWS.
                i = afterName
                continue
            }
            i &+= 1
            skipBWS()
            guard i < end else { return -1 }
            if buf[i] == Byte.quote {
                i &+= 1
                var closed = false
                while i < end {
                    let b = buf[i]
                    if b == Byte.quote {
                        closed = true
                        i &+= 1
                        break
                    }
                    if b == Byte.backslash {
                        i &+= 1
                        guard i < end else { return -1 }
                    }
                    let c = buf[i]
                    guard c == Byte.tab || (c >= 0x20 && c != 0x7F) else { return -1 }
                    i &+= 1
                }
                guard closed else { return -1 }
            } else {
                let valueStart = i
                while i < end && isTokenByte(buf[i]) { i &+= 1 }
                guard i > valueStart else { return -1 }
            }
        }
        return size
    }
}
