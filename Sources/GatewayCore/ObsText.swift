/// Field values (and reason phrases) whose bytes are not UTF-8, carried in a `String` without loss.
///
/// RFC 9110 §5.5 allows any byte from 0x80 to 0xFF in a field value (obs-text), and a proxy passes such a value on
/// as opaque data; a Latin-1 `Content-Disposition` filename is the usual case. A `String` holds only valid UTF-8,
/// and a lossy conversion would put U+FFFD where the bytes were. So each byte of 0x80 and above of such a value is
/// kept as one scalar of a private-use block, U+F780 to U+F7FF (U+F700 + the byte), and the serializers write the
/// byte back. A value that is valid UTF-8 stays as it is, unless it already holds scalars of that block: those are
/// escaped byte by byte as well, so that writing it back always gives exactly the bytes received.
///
/// In UTF-8 an escape is `EF 9E 80`...`EF 9E BF` (bytes 0x80-0xBF) or `EF 9F 80`...`EF 9F BF` (0xC0-0xFF).
public enum ObsText {
    static let lead: UInt8 = 0xEF

    /// The `String` for a value's bytes: the bytes themselves when they are UTF-8 without escape-block scalars,
    /// else with every byte of 0x80 and above escaped.
    public static func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        if !containsEscape(bytes), let text = String(validating: bytes, as: UTF8.self) { return text }
        var escaped: [UInt8] = []
        escaped.reserveCapacity(bytes.count * 3)
        for byte in bytes {
            if byte < 0x80 {
                escaped.append(byte)
            } else {
                escaped.append(lead)
                escaped.append(byte < 0xC0 ? 0x9E : 0x9F)
                escaped.append(byte < 0xC0 ? byte : byte &- 0x40)
            }
        }
        return String(decoding: escaped, as: UTF8.self)
    }

    /// Whether `bytes` (UTF-8) hold an escape: the only case in which the wire bytes differ from the string's.
    @inline(__always)
    public static func containsEscape(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        while i &+ 2 < bytes.count {
            if isEscape(bytes, at: i) { return true }
            i &+= 1
        }
        return false
    }

    /// Whether an escape starts at `i` (its three bytes are there).
    @inline(__always)
    static func isEscape(_ bytes: UnsafeBufferPointer<UInt8>, at i: Int) -> Bool {
        i &+ 2 < bytes.count && bytes[i] == lead && (bytes[i &+ 1] == 0x9E || bytes[i &+ 1] == 0x9F)
            && bytes[i &+ 2] & 0xC0 == 0x80
    }

    /// The wire bytes of a string's UTF-8 `bytes` that hold escapes (`containsEscape`): each escape becomes its
    /// byte again, everything else is copied.
    public static func unescaped(_ bytes: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if isEscape(bytes, at: i) {
                out.append(bytes[i &+ 1] == 0x9E ? bytes[i &+ 2] : bytes[i &+ 2] &+ 0x40)
                i &+= 3
            } else {
                out.append(bytes[i])
                i &+= 1
            }
        }
        return out
    }

    /// `unescaped`, in place (an escape's byte is never longer than the escape, so writing never overtakes
    /// reading): the bytes at `start` become the wire bytes, and their new count is returned.
    public static func unescapeInPlace(_ start: UnsafeMutablePointer<UInt8>, count: Int) -> Int {
        let bytes = UnsafeBufferPointer(start: start, count: count)
        var read = 0
        var written = 0
        while read < count {
            if isEscape(bytes, at: read) {
                start[written] = bytes[read &+ 1] == 0x9E ? bytes[read &+ 2] : bytes[read &+ 2] &+ 0x40
                read &+= 3
            } else {
                start[written] = bytes[read]
                read &+= 1
            }
            written &+= 1
        }
        return written
    }

    /// `value` for people and tools that read text (a HAR file): each escaped byte as the Latin-1 character of
    /// that byte, as browsers show obs-text.
    public static func latin1Text(_ value: String) -> String {
        let block: ClosedRange<UInt32> = 0xF780...0xF7FF
        guard value.unicodeScalars.contains(where: { block.contains($0.value) }) else { return value }
        var out = String.UnicodeScalarView()
        for scalar in value.unicodeScalars {
            out.append(block.contains(scalar.value) ? Unicode.Scalar(UInt8(scalar.value - 0xF700)) : scalar)
        }
        return String(out)
    }

    /// Runs `body` with the wire bytes of `value`.
    @inline(__always)
    public static func withWireBytes<R>(of value: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        func wire(_ utf8: UnsafeBufferPointer<UInt8>) -> R { withWireBytes(ofUTF8: utf8, body) }
        // In place (every native string on Linux has contiguous UTF-8; a small one is copied to the stack), not
        // through `withUTF8` on a mutable copy.
        return value.utf8.withContiguousStorageIfAvailable(wire) ?? Array(value.utf8).withUnsafeBufferPointer(wire)
    }

    /// Runs `body` with the wire bytes of a string's UTF-8 `utf8`: themselves unless they hold an escape.
    @inline(__always)
    public static func withWireBytes<R>(
        ofUTF8 utf8: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> R
    )
        -> R
    {
        containsEscape(utf8) ? unescaped(utf8).withUnsafeBufferPointer(body) : body(utf8)
    }
}
