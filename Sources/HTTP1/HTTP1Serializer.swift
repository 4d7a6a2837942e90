import GatewayCore

/// Writes HTTP/1.1 heads and chunked framing.
///
/// Throwing, not sanitising: a name or value that would change the message's framing (CR, LF or any other CTL
/// but HTAB, a non-token name, a space in the target) is a bug or an attack upstream of the serializer, and
/// silently rewriting it would hide both. Callers turn the error into a 500/502 of their own. Non-ASCII values
/// are written as their UTF-8 bytes. The `write…(into:)` forms append to a caller's buffer and leave it exactly as
/// it was when they throw.
public enum HTTP1Serializer {
    /// `method SP target SP HTTP/1.x CRLF`, a `Host` line from `authority` when the fields hold none, the fields,
    /// and the empty line. `.http2` heads are written as HTTP/1.1. An HTTP/1.1 head needs a Host field or an
    /// `authority`.
    public static func requestHead(_ head: RequestHead) throws(HTTP1SerializationError) -> [UInt8] {
        var out: [UInt8] = []
        try writeRequestHead(head, into: &out)
        return out
    }

    /// As `requestHead(_:)`, appending to `out`.
    public static func writeRequestHead(
        _ head: RequestHead, into out: inout [UInt8]
    ) throws(HTTP1SerializationError) {
        let mark = out.count
        do throws(HTTP1SerializationError) {
            out.reserveCapacity(mark + estimatedSize(head.headers) + head.target.utf8.count + 32)
            try append(head.method, checking: isToken, "invalid method", to: &out)
            out.append(Byte.space)
            try append(head.target, checking: isValidTarget, "invalid request target", to: &out)
            out.append(contentsOf: head.version == .http1_0 ? " HTTP/1.0\r\n".utf8 : " HTTP/1.1\r\n".utf8)
            let hasHost = head.headers.contains("host")
            if !hasHost {
                if let authority = head.authority {
                    out.append(contentsOf: "Host: ".utf8)
                    try append(authority, checking: isValidAuthority, "invalid authority", to: &out)
                    out.append(contentsOf: crlf)
                } else if head.version != .http1_0 {
                    throw HTTP1SerializationError(reason: "HTTP/1.1 request without Host")
                }
            }
            try writeFields(head.headers, into: &out)
            out.append(contentsOf: crlf)
        } catch {
            out.removeSubrange(mark...)
            throw error
        }
    }

    /// `HTTP/1.x SP status SP reason CRLF`, the fields and the empty line.
    public static func responseHead(
        _ head: ResponseHead, version: HTTPVersion = .http1_1
    ) throws(HTTP1SerializationError) -> [UInt8] {
        var out: [UInt8] = []
        try writeResponseHead(head, version: version, into: &out)
        return out
    }

    /// As `responseHead(_:version:)`, appending to `out`.
    public static func writeResponseHead(
        _ head: ResponseHead, version: HTTPVersion = .http1_1, into out: inout [UInt8]
    ) throws(HTTP1SerializationError) {
        guard (100...599).contains(head.status) else { throw HTTP1SerializationError(reason: "invalid status") }
        let mark = out.count
        do throws(HTTP1SerializationError) {
            out.reserveCapacity(mark + estimatedSize(head.headers) + head.reason.utf8.count + 16)
            out.append(contentsOf: version == .http1_0 ? "HTTP/1.0 ".utf8 : "HTTP/1.1 ".utf8)
            out.append(UInt8(0x30 + head.status / 100))
            out.append(UInt8(0x30 + head.status / 10 % 10))
            out.append(UInt8(0x30 + head.status % 10))
            out.append(Byte.space)
            try append(head.reason, checking: isValidFieldValue, "invalid reason phrase", to: &out)
            out.append(contentsOf: crlf)
            try writeFields(head.headers, into: &out)
            out.append(contentsOf: crlf)
        } catch {
            out.removeSubrange(mark...)
            throw error
        }
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
        var out = Array("0\r\n".utf8)
        try writeFields(trailers, into: &out)
        out.append(contentsOf: crlf)
        return out
    }

    fileprivate static let crlf: [UInt8] = [Byte.cr, Byte.lf]

    fileprivate static func append(
        _ string: String, checking isValid: (UnsafeBufferPointer<UInt8>) -> Bool, _ reason: String,
        to out: inout [UInt8]
    ) throws(HTTP1SerializationError) {
        // The bytes a value came with, obs-text included (see `ObsText`).
        let ok = ObsText.withWireBytes(of: string) { bytes in
            guard isValid(bytes) else { return false }
            out.append(contentsOf: bytes)
            return true
        }
        guard ok else { throw HTTP1SerializationError(reason: reason) }
    }

    /// No CTL but HTAB (so no CR, LF or NUL), no DEL.
    static func isValidFieldValue(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        // Eight bytes at a time past the visible ASCII that makes up nearly every value (a bearer token is ~1 kB);
        // a value of eight bytes or more that is all visible ASCII and spaces is settled by words alone.
        if isLongVisibleOrSpace(bytes) { return true }
        var i = 0
        while true {
            i = firstNonVisibleOrSpace(bytes, i, bytes.count)
            if i == bytes.count { return true }
            let b = bytes[i]
            if b < 0x20 ? b != Byte.tab : b == 0x7F { return false }
            i &+= 1
        }
    }

    /// Visible ASCII only: no space, CTL or non-ASCII can end up in the request line.
    static func isValidTarget(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !bytes.isEmpty else { return false }
        if isLongVisible(bytes) { return true }
        for b in bytes where b <= 0x20 || b >= 0x7F { return false }
        return true
    }

    private static func estimatedSize(_ fields: HTTPFields) -> Int {
        var n = 2
        for field in fields { n += field.name.utf8.count + field.value.utf8.count + 4 }
        return n
    }

    private static func writeFields(_ fields: HTTPFields, into out: inout [UInt8]) throws(HTTP1SerializationError) {
        for field in fields {
            try append(field.name, checking: isToken, "invalid field name", to: &out)
            out.append(Byte.colon)
            out.append(Byte.space)
            try append(field.value, checking: isValidFieldValue, "invalid field value", to: &out)
            out.append(contentsOf: crlf)
        }
    }
}

/// Builds a request or response head piece by piece, with the checks of `HTTP1Serializer`: for a proxy that writes
/// a message straight from the other side's fields instead of building another field list first.
///
/// Bytes collect in raw memory (one `memcpy` per piece, no per-append bookkeeping) and become an array once, in
/// `finish`.
public struct HTTP1HeadBuilder: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity: Int

    /// A request head (`method SP target SP HTTP/1.1`); `capacity` is the expected size, so the buffer grows once.
    public init(method: String, target: String, capacity: Int) throws(HTTP1SerializationError) {
        let m = method.utf8.count
        let t = target.utf8.count
        let size = max(capacity, m &+ t &+ 14, 64)
        let base = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
        // Checked, then copied in place; a refusal frees the memory before it throws. (Not the fused check and
        // copy of `add`: a third caller makes the compiler outline those, which costs `add` more than it saves.)
        let problem = method.withUTF8Bytes { mb -> String? in
            guard isToken(mb) else { return "invalid method" }
            base.update(from: mb.baseAddress!, count: m)
            return target.withUTF8Bytes { tb -> String? in
                guard HTTP1Serializer.isValidTarget(tb) else { return "invalid request target" }
                (base + (m &+ 1)).update(from: tb.baseAddress!, count: t)
                return nil
            }
        }
        if let problem {
            base.deallocate()
            throw HTTP1SerializationError(reason: problem)
        }
        base[m] = Byte.space
        Self.copyLiteral(" HTTP/1.1\r\n", to: base + (m &+ 1 &+ t))
        self.base = base
        self.capacity = size
        self.count = m &+ t &+ 12
    }

    /// A response head (`HTTP/1.x SP status SP reason`).
    public init(
        status: Int, reason: String, version: HTTPVersion = .http1_1, capacity: Int
    ) throws(HTTP1SerializationError) {
        guard (100...599).contains(status) else { throw HTTP1SerializationError(reason: "invalid status") }
        // The wire bytes are never more than the string's (an escaped obs-text byte is three bytes of UTF-8).
        let size = max(capacity, reason.utf8.count &+ 15, 64)
        let base = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
        // Checked, then copied in place; a refusal frees the memory before it throws.
        guard let r = reason.withUTF8Bytes({ Self.copyWireValue($0, to: base + 13) }) else {
            base.deallocate()
            throw HTTP1SerializationError(reason: "invalid reason phrase")
        }
        Self.copyLiteral(version == .http1_0 ? "HTTP/1.0 " : "HTTP/1.1 ", to: base)
        base[9] = UInt8(truncatingIfNeeded: 0x30 &+ status / 100)
        base[10] = UInt8(truncatingIfNeeded: 0x30 &+ status / 10 % 10)
        base[11] = UInt8(truncatingIfNeeded: 0x30 &+ status % 10)
        base[12] = Byte.space
        base[13 &+ r] = Byte.cr
        base[14 &+ r] = Byte.lf
        self.base = base
        self.capacity = size
        self.count = r &+ 15
    }

    @inline(__always)
    private static func copyLiteral(_ literal: StaticString, to dst: UnsafeMutablePointer<UInt8>) {
        dst.update(from: literal.utf8Start, count: literal.utf8CodeUnitCount)
    }

    deinit { base.deallocate() }

    public mutating func add(_ name: String, _ value: String) throws(HTTP1SerializationError) {
        // Borrowing the strings' storage (a small string is copied to the stack) instead of `withUTF8` on mutable
        // copies saves a retain and release of each; every native string on Linux has contiguous UTF-8. Spelled out
        // rather than through `withUTF8Bytes`: its nested closures kept `append` out of line (callgrind, policy:
        // +1.5k instructions per request).
        var problem: String?
        var done = false
        _ = name.utf8.withContiguousStorageIfAvailable { n in
            _ = value.utf8.withContiguousStorageIfAvailable { v in
                problem = append(n, v)
                done = true
            }
        }
        if !done {
            problem = Array(name.utf8).withUnsafeBufferPointer { n in
                Array(value.utf8).withUnsafeBufferPointer { v in append(n, v) }
            }
        }
        if let problem { throw HTTP1SerializationError(reason: problem) }
    }

    /// As `add(_:_:)` for a name written in the caller's source (`"Via"`, `"X-Request-Id"`): a literal is a fixed
    /// token, so it is checked by an assertion only (every call site runs in the debug-built tests); the value is
    /// checked as always.
    public mutating func add(constant name: StaticString, _ value: String) throws(HTTP1SerializationError) {
        let n = UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        assert(isToken(n), "a constant field name must be a token")
        var problem: String?
        if value.utf8.withContiguousStorageIfAvailable({ v in problem = append(n, v, nameChecked: true) }) == nil {
            problem = Array(value.utf8).withUnsafeBufferPointer { v in append(n, v, nameChecked: true) }
        }
        if let problem { throw HTTP1SerializationError(reason: problem) }
    }

    /// `name: value CRLF` with one capacity check, each byte checked as it is copied (one pass over each, eight
    /// bytes at a time), or why not (nothing written then: `count` moves only on success).
    @inline(__always)
    private mutating func append(
        _ n: UnsafeBufferPointer<UInt8>, _ v: UnsafeBufferPointer<UInt8>, nameChecked: Bool = false
    ) -> String? {
        reserve(n.count &+ v.count &+ 4)
        var p = base + count
        if nameChecked {
            // A constant: a token by the caller's assertion, and never empty.
            copyShort(to: p, from: n.baseAddress!, count: n.count)
        } else if n.isEmpty || !Self.copyToken(n, to: p) {
            return "invalid field name"
        }
        p += n.count
        p[0] = Byte.colon
        p[1] = Byte.space
        p += 2
        var valueCount = v.count
        if !Self.copyFieldValue(v, to: p) {
            // `copyFieldValue` stops at the lead byte of an escape (`ObsText`): the value is written byte for
            // byte as it came, or it is plainly invalid.
            guard let written = Self.copyWireValue(v, to: p) else { return "invalid field value" }
            valueCount = written
        }
        p += valueCount
        p[0] = Byte.cr
        p[1] = Byte.lf
        count &+= n.count &+ valueCount &+ 4
        return nil
    }

    /// The copy of a value `copyFieldValue` refused (and of a reason phrase): its wire bytes (escaped obs-text
    /// written back), if they are a valid field value, and their count; nil when they are not.
    private static func copyWireValue(_ v: UnsafeBufferPointer<UInt8>, to dst: UnsafeMutablePointer<UInt8>) -> Int? {
        ObsText.withWireBytes(ofUTF8: v) { bytes in
            guard HTTP1Serializer.isValidFieldValue(bytes) else { return nil }
            if let source = bytes.baseAddress { dst.update(from: source, count: bytes.count) }
            return bytes.count
        }
    }

    /// Copies `src` to `dst` if every byte is a `tchar`, and says whether it was; `dst` may be partly written when
    /// not. Words of letters, digits and `-` settle eight bytes at once.
    @inline(__always)
    private static func copyToken(_ src: UnsafeBufferPointer<UInt8>, to dst: UnsafeMutablePointer<UInt8>) -> Bool {
        copyChecked(src, to: dst, isAlphanumericOrHyphenWord, isTokenByte)
    }

    /// Copies `src` to `dst` if it is a valid field value (`HTTP1Serializer.isValidFieldValue`), and says whether
    /// it was; `dst` may be partly written when not. Words of visible ASCII and spaces settle eight bytes at once.
    @inline(__always)
    private static func copyFieldValue(_ src: UnsafeBufferPointer<UInt8>, to dst: UnsafeMutablePointer<UInt8>) -> Bool {
        // 0xEF (the lead byte of an `ObsText` escape, and of U+F000...U+FFFF) goes to `copyWireValue`.
        copyChecked(src, to: dst, isVisibleOrSpaceWord) { b in b < 0x20 ? b == Byte.tab : b != 0x7F && b != 0xEF }
    }

    /// The copy of `copyToken` and `copyFieldValue`: `wordPasses` may say false of a word whose bytes all pass
    /// (it is a fast path), never true of one with a byte that does not; `bytePasses` decides exactly.
    @inline(__always)
    private static func copyChecked(
        _ src: UnsafeBufferPointer<UInt8>, to dst: UnsafeMutablePointer<UInt8>, _ wordPasses: (UInt64) -> Bool,
        _ bytePasses: (UInt8) -> Bool
    ) -> Bool {
        let count = src.count
        guard let s = src.baseAddress else { return true }
        if count >= 8 {
            let from = UnsafeRawPointer(s)
            let to = UnsafeMutableRawPointer(dst)
            @inline(__always)
            func passes(_ w: UInt64) -> Bool {
                if wordPasses(w) { return true }
                var rest = w
                for _ in 0..<8 {
                    if !bytePasses(UInt8(truncatingIfNeeded: rest)) { return false }
                    rest >>= 8
                }
                return true
            }
            // The last word overlaps the one before, so no byte loop is needed for the tail.
            var i = 0
            while i &+ 8 < count {
                let w = from.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                guard passes(w) else { return false }
                to.storeBytes(of: w, toByteOffset: i, as: UInt64.self)
                i &+= 8
            }
            let w = from.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
            guard passes(w) else { return false }
            to.storeBytes(of: w, toByteOffset: count &- 8, as: UInt64.self)
            return true
        }
        var i = 0
        while i < count {
            let b = s[i]
            guard bytePasses(b) else { return false }
            dst[i] = b
            i &+= 1
        }
        return true
    }

    /// A copy without a `memcpy` call for the 4–16 bytes most names and many values have: two overlapping loads
    /// and stores. The regions never overlap (the builder's own memory is not a field's).
    @inline(__always)
    private func copyShort(to p: UnsafeMutablePointer<UInt8>, from q: UnsafePointer<UInt8>, count: Int) {
        let d = UnsafeMutableRawPointer(p)
        let s = UnsafeRawPointer(q)
        if count >= 8 && count <= 16 {
            let head = s.loadUnaligned(as: UInt64.self)
            let tail = s.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
            d.storeBytes(of: head, as: UInt64.self)
            d.storeBytes(of: tail, toByteOffset: count &- 8, as: UInt64.self)
        } else if count >= 4 && count < 8 {
            let head = s.loadUnaligned(as: UInt32.self)
            let tail = s.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self)
            d.storeBytes(of: head, as: UInt32.self)
            d.storeBytes(of: tail, toByteOffset: count &- 4, as: UInt32.self)
        } else {
            p.update(from: q, count: count)
        }
    }

    /// As `add(constant:_:)` for a non-negative decimal value (`Content-Length`), written without making a
    /// `String` of it first. Digits are always a valid field value.
    public mutating func add(constant name: StaticString, decimal value: Int) {
        let n = UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        assert(isToken(n), "a constant field name must be a token")
        precondition(value >= 0, "a decimal field value is never negative")
        // Int.max has 19 digits.
        reserve(n.count &+ 24)
        var p = base + count
        p.update(from: n.baseAddress!, count: n.count)
        p += n.count
        p[0] = Byte.colon
        p[1] = Byte.space
        p += 2
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits &+= 1
            rest /= 10
        }
        var v = value
        var i = digits
        repeat {
            i &-= 1
            p[i] = UInt8(truncatingIfNeeded: 0x30 &+ v % 10)
            v /= 10
        } while i > 0
        p += digits
        p[0] = Byte.cr
        p[1] = Byte.lf
        count &+= n.count &+ digits &+ 4
    }

    /// The empty line that ends the head; returns the finished bytes.
    public consuming func finish() -> [UInt8] {
        putCRLF()
        return [UInt8](UnsafeBufferPointer(start: base, count: count))
    }

    /// The empty line that ends the head; lends the finished bytes to `body` (valid only during the call), for a
    /// caller that copies them on anyway and so needs no array of its own.
    public consuming func finish<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        putCRLF()
        return body(UnsafeRawBufferPointer(start: base, count: count))
    }

    private mutating func reserve(_ extra: Int) {
        guard count + extra > capacity else { return }
        let grown = max(capacity * 2, count + extra)
        let next = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
        next.update(from: base, count: count)
        base.deallocate()
        base = next
        capacity = grown
    }

    private mutating func putCRLF() {
        reserve(2)
        base[count] = Byte.cr
        base[count &+ 1] = Byte.lf
        count &+= 2
    }
}
