import GatewayCore

/// Field names whose values the parsers interpret (everything else is passed through untouched).
enum FieldKind: UInt8 {
    case host
    case contentLength
    case transferEncoding
    case connection
    case expect
    case other
}

enum FieldLine {
    case field(HTTPFields.Field, FieldKind)
    case failure(HTTP1Error)
}

/// Parses one field line, `buf[start..<end]` without its CRLF (RFC 9112 §5, RFC 9110 §5.5).
///
/// Refuses obs-fold and whitespace before the first field (a line starting with SP/HTAB), whitespace between the
/// name and the colon, non-token names, and CTLs (NUL, bare CR, DEL…) in values. Non-ASCII value bytes (obs-text)
/// are accepted; those that do not form UTF-8 are carried escaped (`ObsText`), so the value is forwarded with
/// exactly the bytes received.
func parseFieldLine(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> FieldLine {
    let first = buf[start]
    if isOWS(first) { return .failure(.badRequest("obs-fold or whitespace before a field line")) }
    var colon = start
    // Eight name bytes at a time while they are plainly tokens (letters, digits, `-`); the byte loop decides the
    // rest, so this only skips bytes it would have accepted.
    if let base = buf.baseAddress {
        while colon &+ 8 <= end
            && isAlphanumericOrHyphenWord(UnsafeRawPointer(base + colon).loadUnaligned(as: UInt64.self))
        {
            colon &+= 8
        }
    }
    while colon < end && buf[colon] != Byte.colon {
        guard isTokenByte(buf[colon]) else {
            if isOWS(buf[colon]) { return .failure(.badRequest("whitespace in or after a field name")) }
            return .failure(.badRequest("invalid character in a field name"))
        }
        colon &+= 1
    }
    guard colon < end else { return .failure(.badRequest("field line without a colon")) }
    guard colon > start else { return .failure(.badRequest("empty field name")) }

    var valueStart = colon + 1
    var valueEnd = end
    while valueStart < valueEnd && isOWS(buf[valueStart]) { valueStart &+= 1 }
    while valueEnd > valueStart && isOWS(buf[valueEnd - 1]) { valueEnd &-= 1 }
    var nonASCII = false
    var i = valueStart
    while true {
        i = firstNonVisibleOrSpace(buf, i, valueEnd)
        if i == valueEnd { break }
        let b = buf[i]
        if b >= 0x80 {
            nonASCII = true
        } else if b != Byte.tab {
            return .failure(.badRequest("control character in a field value"))
        }
        i &+= 1
    }

    let kind: FieldKind
    switch colon - start {
    case 4: kind = equalsIgnoringCase(buf, start, colon, "host") ? .host : .other
    case 6: kind = equalsIgnoringCase(buf, start, colon, "expect") ? .expect : .other
    // The name is a token by now.
    case 10: kind = tokenEqualsLower(buf, start, colon, "connection") ? .connection : .other
    case 14: kind = tokenEqualsLower(buf, start, colon, "content-length") ? .contentLength : .other
    case 17: kind = tokenEqualsLower(buf, start, colon, "transfer-encoding") ? .transferEncoding : .other
    default: kind = .other
    }
    let field = HTTPFields.Field(
        makeFieldName(buf, start, colon), makeFieldValue(buf, valueStart, valueEnd, nonASCII: nonASCII))
    return .field(field, kind)
}

/// Calls `body` with each trimmed element of a list-valued field (RFC 9110 §5.6.1), empty ones included, until it
/// returns false; returns false if it was stopped.
@discardableResult
func forEachListElement(_ buf: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
    var elementStart = 0
    let count = buf.count
    while true {
        var elementEnd = elementStart
        while elementEnd < count && buf[elementEnd] != Byte.comma { elementEnd &+= 1 }
        var s = elementStart
        var e = elementEnd
        while s < e && isOWS(buf[s]) { s &+= 1 }
        while e > s && isOWS(buf[e - 1]) { e &-= 1 }
        if !body(UnsafeBufferPointer(rebasing: buf[s..<e])) { return false }
        guard elementEnd < count else { return true }
        elementStart = elementEnd + 1
    }
}

func isToken(_ buf: UnsafeBufferPointer<UInt8>) -> Bool {
    guard let base = buf.baseAddress, !buf.isEmpty else { return false }
    let count = buf.count
    // Eight bytes at a time while they are letters, digits and `-` (what nearly every name is made of), the last
    // word overlapping the one before; a shorter name is padded with letters. The byte loop decides otherwise.
    if count >= 8 {
        var i = 0
        while i &+ 8 < count && isAlphanumericOrHyphenWord(UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)) {
            i &+= 8
        }
        if i &+ 8 >= count
            && isAlphanumericOrHyphenWord(UnsafeRawPointer(base + (count &- 8)).loadUnaligned(as: UInt64.self))
        {
            return true
        }
    } else if count >= 4 {
        // Two overlapping four-byte loads cover every byte (the test is per byte), without a `memcpy` call.
        let raw = UnsafeRawPointer(base)
        let low = UInt64(raw.loadUnaligned(as: UInt32.self))
        let high = UInt64(raw.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self))
        if isAlphanumericOrHyphenWord(low | high << 32) { return true }
    } else {
        // First, middle and last byte: every byte of a one- to three-byte name, the rest padded with letters.
        let w =
            0x6161_6161_6100_0000 | UInt64(base[0]) | UInt64(base[count >> 1]) << 8 | UInt64(base[count &- 1]) << 16
        if isAlphanumericOrHyphenWord(w) { return true }
    }
    for b in buf where !isTokenByte(b) { return false }
    return true
}

/// Whether `buf` is a valid Host (RFC 9110 §7.2): the syntax both protocols share.
func isValidAuthority(_ buf: UnsafeBufferPointer<UInt8>) -> Bool { URISyntax.isValidAuthority(buf) }

extension String {
    /// The UTF-8 bytes of `self`: borrowed for native and small strings (a small one is copied to the stack),
    /// from a copy otherwise.
    @inline(__always)
    func withUTF8Bytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let result = utf8.withContiguousStorageIfAvailable(body) { return result }
        var copy = self
        return copy.withUTF8(body)
    }
}

/// Collects a header (or trailer) section line by line and interprets the framing fields as they arrive.
struct FieldAccumulator: Sendable {
    var fields: [HTTPFields.Field] = []
    /// Bytes of the section so far, CRLFs included.
    var bytes = 0
    var hostCount = 0
    var host: String?
    var contentLength: Int?
    var hasTransferEncoding = false
    /// Each transfer coding in order: true for `chunked`.
    var codings: [Bool] = []
    var connectionClose = false
    var connectionKeepAlive = false
    var expectContinue = false

    /// Content-Length values are saturated here; any limit a parser applies is far below.
    static let contentLengthCap = 1 << 60

    init() {}

    /// Records one field; returns why the section is invalid, if it is.
    ///
    /// Content-Length must be a single `1*DIGIT`: a list (`5, 5`), a repeated field (even with the same value),
    /// a sign or inner whitespace is refused (RFC 9110 §8.6 lets a recipient reject these; accepting them would
    /// make the gateway forward a framing the upstream might read differently).
    ///
    /// Takes `field` by ownership: kept as it is, it moves into the list without a retain of its strings.
    ///
    /// `seenBefore`: the very bytes of this field line were accepted earlier on this connection, so the checks that
    /// depend on the value alone (Host syntax) passed then and are not repeated.
    mutating func add(_ field: consuming HTTPFields.Field, _ kind: FieldKind, seenBefore: Bool = false) -> HTTP1Error? {
        switch kind {
        case .other:
            break
        case .host:
            hostCount += 1
            if hostCount > 1 { return .badRequest("more than one Host field") }
            if !seenBefore && !field.value.withUTF8Bytes(isValidAuthority) { return .badRequest("invalid Host field") }
            host = field.value
        case .contentLength:
            if contentLength != nil { return .badRequest("more than one Content-Length field") }
            let parsed = field.value.withUTF8Bytes { v -> Int in
                if v.isEmpty { return -1 }
                var n = 0
                for b in v {
                    guard isDigit(b) else { return -1 }
                    n = n >= Self.contentLengthCap / 10 ? Self.contentLengthCap : n * 10 + Int(b &- 0x30)
                }
                return n
            }
            if parsed < 0 { return .badRequest("invalid Content-Length") }
            contentLength = parsed
        case .transferEncoding:
            hasTransferEncoding = true
            let valid = field.value.withUTF8Bytes { v in
                forEachListElement(v) { element in
                    // RFC 9110 §5.6.1.2: empty list elements are accepted and do not count (`chunked,`).
                    if element.isEmpty { return true }
                    guard isToken(element) else { return false }
                    codings.append(equalsIgnoringCase(element, 0, element.count, "chunked"))
                    return true
                }
            }
            if !valid { return .badRequest("invalid Transfer-Encoding") }
        case .connection:
            _ = field.value.withUTF8Bytes { v in
                // The usual whole value, a single option, without the list walk (the value is trimmed already, so it
                // is then the list's only element).
                if equalsIgnoringCase(v, 0, v.count, "keep-alive") {
                    connectionKeepAlive = true
                    return true
                }
                return forEachListElement(v) { element in
                    if equalsIgnoringCase(element, 0, element.count, "close") {
                        connectionClose = true
                    } else if equalsIgnoringCase(element, 0, element.count, "keep-alive") {
                        connectionKeepAlive = true
                    }
                    return true
                }
            }
        case .expect:
            var continues = false
            let supported = field.value.withUTF8Bytes { v in
                forEachListElement(v) { element in
                    // Empty elements do not count (RFC 9110 §5.6.1.2): an empty `Expect` expects nothing.
                    if element.isEmpty { return true }
                    guard equalsIgnoringCase(element, 0, element.count, "100-continue") else { return false }
                    continues = true
                    return true
                }
            }
            guard supported else { return HTTP1Error(status: 417, reason: "unsupported expectation") }
            if continues { expectContinue = true }
        }
        if fields.capacity == 0 { fields.reserveCapacity(16) }
        fields.append(field)
        return nil
    }

    /// The fields so far, moved out (the accumulator keeps none).
    mutating func takeFields() -> [HTTPFields.Field] {
        var taken: [HTTPFields.Field] = []
        swap(&taken, &fields)
        return taken
    }

    enum Coding {
        case none
        case chunked
        /// Chunked is final and appears once, but other codings precede it (gzip, chunked): not implemented.
        case unsupportedBeforeChunked
        /// No chunked at all (identity, gzip, x-custom): the body length cannot be determined.
        case withoutChunked
        /// Chunked twice, or not last: the framing is ambiguous.
        case malformed
    }

    var transferCoding: Coding {
        guard hasTransferEncoding else { return .none }
        let chunkedCount = codings.lazy.filter { $0 }.count
        if chunkedCount == 0 { return .withoutChunked }
        if chunkedCount > 1 || codings.last != true { return .malformed }
        return codings.count == 1 ? .chunked : .unsupportedBeforeChunked
    }
}
