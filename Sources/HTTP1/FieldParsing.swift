import GatewayCore

/// Field names whose values the parsers interpret (everything else is passed through untouched).
enum FieldKind {
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
/// are accepted only when they form valid UTF-8, so the `String` holds exactly the bytes received and forwards them
/// unchanged.
func parseFieldLine(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> FieldLine {
    let first = buf[start]
    if isOWS(first) { return .failure(.badRequest("obs-fold or whitespace before a field line")) }
    var colon = start
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
    while i < valueEnd {
        let b = buf[i]
        if b >= 0x80 {
            nonASCII = true
        } else if (b < 0x20 && b != Byte.tab) || b == 0x7F {
            return .failure(.badRequest("control character in a field value"))
        }
        i &+= 1
    }
    if nonASCII && String(validating: UnsafeBufferPointer(rebasing: buf[valueStart..<valueEnd]), as: UTF8.self) == nil {
        return .failure(.badRequest("field value is not valid UTF-8"))
    }

    let kind: FieldKind
    switch colon - start {
    case 4: kind = equalsIgnoringCase(buf, start, colon, "host") ? .host : .other
    case 6: kind = equalsIgnoringCase(buf, start, colon, "expect") ? .expect : .other
    case 10: kind = equalsIgnoringCase(buf, start, colon, "connection") ? .connection : .other
    case 14: kind = equalsIgnoringCase(buf, start, colon, "content-length") ? .contentLength : .other
    case 17: kind = equalsIgnoringCase(buf, start, colon, "transfer-encoding") ? .transferEncoding : .other
    default: kind = .other
    }
    let field = HTTPFields.Field(makeString(buf, start, colon), makeString(buf, valueStart, valueEnd))
    return .field(field, kind)
}

/// Splits a list-valued field (RFC 9110 §5.6.1) into trimmed elements, empty ones included.
func listElements(_ value: String) -> [Substring.UTF8View] {
    var out: [Substring.UTF8View] = []
    for part in value.utf8.split(separator: Byte.comma, omittingEmptySubsequences: false) {
        var s = part.startIndex
        var e = part.endIndex
        while s < e && isOWS(part[s]) { s = part.index(after: s) }
        while e > s && isOWS(part[part.index(before: e)]) { e = part.index(before: e) }
        out.append(Substring(part[s..<e]).utf8)
    }
    return out
}

func isToken(_ s: Substring.UTF8View) -> Bool {
    !s.isEmpty && s.allSatisfy(isTokenByte)
}

/// Whether `value` is a valid Host (RFC 9110 §7.2: `uri-host [ ":" port ]`, RFC 3986 §3.2.2).
///
/// Refuses empty hosts, userinfo (`@`), and anything outside reg-name, IPv4 and IP-literal syntax.
func isValidAuthority(_ value: Substring.UTF8View) -> Bool {
    var i = value.startIndex
    let end = value.endIndex
    guard i < end else { return false }
    if value[i] == Byte.openBracket {
        i = value.index(after: i)
        let hostStart = i
        while i < end && value[i] != Byte.closeBracket {
            let b = value[i]
            guard hexValue(b) >= 0 || b == Byte.colon || b == 0x2E || b == 0x76 || b == 0x56 else { return false }
            i = value.index(after: i)
        }
        guard i < end, i > hostStart else { return false }
        i = value.index(after: i)
    } else {
        let hostStart = i
        while i < end && value[i] != Byte.colon {
            let b = value[i]
            if b == Byte.percent {
                let h1 = value.index(after: i)
                guard h1 < end, hexValue(value[h1]) >= 0 else { return false }
                let h2 = value.index(after: h1)
                guard h2 < end, hexValue(value[h2]) >= 0 else { return false }
                i = value.index(after: h2)
                continue
            }
            guard isRegNameByte(b) else { return false }
            i = value.index(after: i)
        }
        guard i > hostStart else { return false }
    }
    guard i < end else { return true }
    guard value[i] == Byte.colon else { return false }
    i = value.index(after: i)
    var digits = 0
    while i < end {
        guard isDigit(value[i]) else { return false }
        digits += 1
        i = value.index(after: i)
    }
    return digits <= 5
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

    init() { fields.reserveCapacity(16) }

    /// Records one field; returns why the section is invalid, if it is.
    ///
    /// Content-Length must be a single `1*DIGIT`: a list (`5, 5`), a repeated field (even with the same value),
    /// a sign or inner whitespace is refused (RFC 9110 §8.6 lets a recipient reject these; accepting them would
    /// make the gateway forward a framing the upstream might read differently).
    mutating func add(_ field: HTTPFields.Field, _ kind: FieldKind) -> HTTP1Error? {
        switch kind {
        case .other:
            break
        case .host:
            hostCount += 1
            if hostCount > 1 { return .badRequest("more than one Host field") }
            if !isValidAuthority(field.value[...].utf8) { return .badRequest("invalid Host field") }
            host = field.value
        case .contentLength:
            if contentLength != nil { return .badRequest("more than one Content-Length field") }
            let v = field.value.utf8
            if v.isEmpty { return .badRequest("invalid Content-Length") }
            var n = 0
            for b in v {
                guard isDigit(b) else { return .badRequest("invalid Content-Length") }
                n = n >= Self.contentLengthCap / 10 ? Self.contentLengthCap : n * 10 + Int(b &- 0x30)
            }
            contentLength = n
        case .transferEncoding:
            hasTransferEncoding = true
            for element in listElements(field.value) {
                guard isToken(element) else { return .badRequest("invalid Transfer-Encoding") }
                codings.append(equalsIgnoringCase(element, "chunked"))
            }
        case .connection:
            for element in listElements(field.value) {
                if equalsIgnoringCase(element, "close") {
                    connectionClose = true
                } else if equalsIgnoringCase(element, "keep-alive") {
                    connectionKeepAlive = true
                }
            }
        case .expect:
            for element in listElements(field.value) {
                guard equalsIgnoringCase(element, "100-continue") else {
                    return HTTP1Error(status: 417, reason: "unsupported expectation")
                }
                expectContinue = true
            }
        }
        fields.append(field)
        return nil
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
