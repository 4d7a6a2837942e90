import GatewayCore

/// Writes HTTP/1.1 heads and chunked framing.
///
/// Throwing, not sanitising: a name or value that would change the message's framing (CR, LF or any other CTL
/// but HTAB, a non-token name, a space in the target) is a bug or an attack upstream of the serializer, and
/// silently rewriting it would hide both. Callers turn the error into a 500/502 of their own. Non-ASCII values
/// are written as their UTF-8 bytes.
public enum HTTP1Serializer {
    /// `method SP target SP HTTP/1.x CRLF`, a `Host` line from `authority` when the fields hold none, the fields,
    /// and the empty line. `.http2` heads are written as HTTP/1.1. An HTTP/1.1 head needs a Host field or an
    /// `authority`.
    public static func requestHead(_ head: RequestHead) throws(HTTP1SerializationError) -> [UInt8] {
        var out: [UInt8] = []
        try writeRequestHead(head, into: &out)
        return out
    }

    /// As `requestHead(_:)`, appending to `out` (which is left unchanged when this throws).
    public static func writeRequestHead(
        _ head: RequestHead, into out: inout [UInt8]
    ) throws(HTTP1SerializationError) {
        guard isToken(head.method[...].utf8) else { throw HTTP1SerializationError(reason: "invalid method") }
        guard !head.target.isEmpty, head.target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw HTTP1SerializationError(reason: "invalid request target")
        }
        let hasHost = head.headers.contains("host")
        if !hasHost, let authority = head.authority {
            guard isValidAuthority(authority[...].utf8) else {
                throw HTTP1SerializationError(reason: "invalid authority")
            }
        } else if !hasHost && head.version != .http1_0 {
            throw HTTP1SerializationError(reason: "HTTP/1.1 request without Host")
        }
        try validate(head.headers)

        out.reserveCapacity(out.count + estimatedSize(head.headers) + head.target.utf8.count + 32)
        out.append(contentsOf: head.method.utf8)
        out.append(Byte.space)
        out.append(contentsOf: head.target.utf8)
        out.append(contentsOf: head.version == .http1_0 ? " HTTP/1.0\r\n".utf8 : " HTTP/1.1\r\n".utf8)
        if !hasHost, let authority = head.authority {
            out.append(contentsOf: "Host: ".utf8)
            out.append(contentsOf: authority.utf8)
            out.append(contentsOf: crlf)
        }
        writeFields(head.headers, into: &out)
        out.append(contentsOf: crlf)
    }

    /// `HTTP/1.x SP status SP reason CRLF`, the fields and the empty line.
    public static func responseHead(
        _ head: ResponseHead, version: HTTPVersion = .http1_1
    ) throws(HTTP1SerializationError) -> [UInt8] {
        var out: [UInt8] = []
        try writeResponseHead(head, version: version, into: &out)
        return out
    }

    /// As `responseHead(_:version:)`, appending to `out` (which is left unchanged when this throws).
    public static func writeResponseHead(
        _ head: ResponseHead, version: HTTPVersion = .http1_1, into out: inout [UInt8]
    ) throws(HTTP1SerializationError) {
        guard (100...599).contains(head.status) else { throw HTTP1SerializationError(reason: "invalid status") }
        guard isValidFieldValue(head.reason) else { throw HTTP1SerializationError(reason: "invalid reason phrase") }
        try validate(head.headers)

        out.reserveCapacity(out.count + estimatedSize(head.headers) + head.reason.utf8.count + 16)
        out.append(contentsOf: version == .http1_0 ? "HTTP/1.0 ".utf8 : "HTTP/1.1 ".utf8)
        out.append(UInt8(0x30 + head.status / 100))
        out.append(UInt8(0x30 + head.status / 10 % 10))
        out.append(UInt8(0x30 + head.status % 10))
        out.append(Byte.space)
        out.append(contentsOf: head.reason.utf8)
        out.append(contentsOf: crlf)
        writeFields(head.headers, into: &out)
        out.append(contentsOf: crlf)
    }

    /// One chunk: hex size, CRLF, the bytes, CRLF. Empty input gives no bytes, since a zero-size chunk would end
    /// the body.
    public static func chunk<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        guard !bytes.isEmpty else { return [] }
        var out = chunkHeader(size: bytes.count)
        out.reserveCapacity(out.count + bytes.count + 2)
        out.append(contentsOf: bytes)
        out.append(contentsOf: crlf)
        return out
    }

    /// Just the `hex-size CRLF` line, for a driver that writes the data without copying it and then
    /// `chunkTerminator`. `size` must be positive.
    public static func chunkHeader(size: Int) -> [UInt8] {
        precondition(size > 0, "a chunk of size 0 is the last chunk")
        var out: [UInt8] = []
        out.reserveCapacity(18)
        var shift = (Int.bitWidth - size.leadingZeroBitCount - 1) / 4 * 4
        while shift >= 0 {
            let digit = (size >> shift) & 0xF
            out.append(UInt8(digit < 10 ? 0x30 + digit : 0x61 + digit - 10))
            shift -= 4
        }
        out.append(contentsOf: crlf)
        return out
    }

    /// The CRLF after a chunk's data.
    public static let chunkTerminator: [UInt8] = [Byte.cr, Byte.lf]

    /// `0 CRLF CRLF`: the end of a chunked body without trailers.
    public static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)

    /// The last chunk followed by a trailer section.
    public static func lastChunk(trailers: HTTPFields) throws(HTTP1SerializationError) -> [UInt8] {
        try validate(trailers)
        var out = Array("0\r\n".utf8)
        writeFields(trailers, into: &out)
        out.append(contentsOf: crlf)
        return out
    }

    private static let crlf: [UInt8] = [Byte.cr, Byte.lf]

    private static func validate(_ fields: HTTPFields) throws(HTTP1SerializationError) {
        for field in fields {
            guard isToken(field.name[...].utf8) else { throw HTTP1SerializationError(reason: "invalid field name") }
            guard isValidFieldValue(field.value) else { throw HTTP1SerializationError(reason: "invalid field value") }
        }
    }

    /// No CTL but HTAB (so no CR, LF or NUL), no DEL.
    static func isValidFieldValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 >= 0x20 ? $0 != 0x7F : $0 == Byte.tab }
    }

    private static func estimatedSize(_ fields: HTTPFields) -> Int {
        var n = 2
        for field in fields { n += field.name.utf8.count + field.value.utf8.count + 4 }
        return n
    }

    private static func writeFields(_ fields: HTTPFields, into out: inout [UInt8]) {
        for field in fields {
            out.append(contentsOf: field.name.utf8)
            out.append(Byte.colon)
            out.append(Byte.space)
            out.append(contentsOf: field.value.utf8)
            out.append(contentsOf: crlf)
        }
    }
}
