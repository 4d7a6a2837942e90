import GatewayCore

/// A log line that renders itself as JSON on the pipeline's writer thread.
///
/// The request path hands the pipeline a compact value (typically a struct holding one reference to an immutable
/// object, which fits an existential's inline storage, so queueing it allocates nothing); the formatting, string
/// cleaning and escaping all happen later, off the event loop.
public protocol LogRecord: Sendable {
    /// Appends exactly one JSON text (no newline) to `out` and returns true, or leaves `out` alone and returns
    /// false to record nothing.
    func write(to out: inout JSONByteWriter) -> Bool
}

/// Appends compact JSON text to a byte buffer, byte for byte what ``JSONValue/serialized()`` writes for the same
/// members in the same order, without building a value tree or any intermediate `String`.
///
/// Objects are written with ``beginObject()``, ``key(_:)`` (which writes the separating comma itself) and
/// ``endObject()``; keys are static ASCII literals that need no escaping.
public struct JSONByteWriter {
    public var bytes: [UInt8]

    public init(capacity: Int = 1024) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Empties the buffer, keeping its storage for the next line.
    public mutating func reset() { bytes.removeAll(keepingCapacity: true) }

    /// The text written so far.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    @inline(__always)
    mutating func raw(_ literal: StaticString) {
        literal.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    public mutating func beginObject() { bytes.append(UInt8(ascii: "{")) }

    public mutating func endObject() { bytes.append(UInt8(ascii: "}")) }

    /// `,"name":` — the comma only when a member precedes it in the current object or array.
    public mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        raw(name)
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    /// A key that may need escaping (object members of arbitrary JSON).
    mutating func key(_ name: String) {
        separate()
        string(name)
        bytes.append(UInt8(ascii: ":"))
    }

    @inline(__always)
    private mutating func separate() {
        if let last = bytes.last, last != UInt8(ascii: "{"), last != UInt8(ascii: "[") {
            bytes.append(UInt8(ascii: ","))
        }
    }

    /// A member written only when `value` is present (absent optionals are omitted, never null).
    public mutating func member(_ name: StaticString, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    // MARK: Values

    public mutating func int(_ value: Int64) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        if magnitude < 10 {
            bytes.append(UInt8(truncatingIfNeeded: magnitude) &+ 0x30)
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for the 20 digits of UInt64.max
        withUnsafeMutableBytes(of: &digits) { raw in
            var i = raw.count
            while magnitude > 0 {
                i -= 1
                raw[i] = UInt8(truncatingIfNeeded: magnitude % 10) &+ 0x30
                magnitude /= 10
            }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[i...]))
        }
    }

    public mutating func int(_ value: Int) { int(Int64(value)) }

    /// A number by ``JSONValue``'s rules: integral values below 10^15 without a fraction, other finite values in
    /// Swift's shortest round-trip form, non-finite values as `null`.
    public mutating func number(_ n: Double) {
        if n.rounded(.towardZero) == n, abs(n) < 1e15 {
            int(Int64(n))
        } else if n.isFinite {
            var text = n.description
            text.withUTF8 { bytes.append(contentsOf: $0) }
        } else {
            raw("null")
        }
    }

    public mutating func bool(_ b: Bool) { b ? raw("true") : raw("false") }

    /// A quoted ISO 8601 timestamp, as ``Timestamp/iso8601(millis:)`` writes it.
    public mutating func timestamp(millis: Int64) {
        bytes.append(UInt8(ascii: "\""))
        Timestamp.write(millis: millis, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// A quoted string, escaped exactly as ``JSONValue/writeString(_:to:)`` does (`"`, `\`, control characters,
    /// `<` as `\u003c`, U+2028 and U+2029).
    public mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { string(utf8: $0) }
    }

    public mutating func string(_ s: Substring) {
        var s = s
        s.withUTF8 { string(utf8: $0) }
    }

    /// A quoted string from UTF-8 bytes (which must be valid UTF-8, as a `String`'s always are).
    ///
    /// Plain runs are copied whole; eight bytes at a time are tested for anything that may need an escape.
    public mutating func string(utf8 input: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        let n = input.count
        var runStart = 0
        var i = 0
        while i < n {
            if i + 8 <= n,
                !Self.mayNeedEscape(UnsafeRawPointer(input.baseAddress! + i).loadUnaligned(as: UInt64.self))
            {
                i += 8
                continue
            }
            let b = input[i]
            if b >= 0x20 && b != UInt8(ascii: "\"") && b != UInt8(ascii: "\\") && b != UInt8(ascii: "<")
                && b != 0xE2
            {
                i += 1
                continue
            }
            var width = 1
            let escape: StaticString
            switch b {
            case UInt8(ascii: "\""): escape = "\\\""
            case UInt8(ascii: "\\"): escape = "\\\\"
            case UInt8(ascii: "<"): escape = "\\u003c"
            case 0x0A: escape = "\\n"
            case 0x0D: escape = "\\r"
            case 0x09: escape = "\\t"
            case 0xE2:
                // U+2028 and U+2029 (E2 80 A8, E2 80 A9); any other character starting with E2 is plain.
                guard i + 2 < n, input[i + 1] == 0x80, input[i + 2] == 0xA8 || input[i + 2] == 0xA9 else {
                    i += 1
                    continue
                }
                escape = input[i + 2] == 0xA8 ? "\\u2028" : "\\u2029"
                width = 3
            default: escape = ""  // another control character: \u00XX below
            }
            if runStart < i { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: input[runStart..<i])) }
            if escape.utf8CodeUnitCount > 0 {
                raw(escape)
            } else {
                raw("\\u00")
                bytes.append(Self.hexDigit(b >> 4))
                bytes.append(Self.hexDigit(b & 0x0F))
            }
            i += width
            runStart = i
        }
        if runStart < n { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: input[runStart..<n])) }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Whether any byte of `w` is below 0x20 or one of `"`, `\`, `<` and 0xE2 (no false negatives).
    @inline(__always)
    static func mayNeedEscape(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func hasZeroByte(_ v: UInt64) -> Bool { (v &- ones) & ~v & high != 0 }
        let below0x20 = (w &- ones &* 0x20) & ~w & high != 0
        return below0x20 || hasZeroByte(w ^ (ones &* 0x22)) || hasZeroByte(w ^ (ones &* 0x5C))
            || hasZeroByte(w ^ (ones &* 0x3C)) || hasZeroByte(w ^ (ones &* 0xE2))
    }

    @inline(__always)
    static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? v &+ 0x30 : v &+ 0x57 }

    /// Any JSON value, as ``JSONValue/serialized()`` writes it.
    public mutating func value(_ v: JSONValue) {
        switch v {
        case .null: raw("null")
        case .bool(let b): bool(b)
        case .number(let n): number(n)
        case .string(let s): string(s)
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for item in items {
                separate()
                value(item)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            beginObject()
            for (name, item) in members {
                key(name)
                value(item)
            }
            endObject()
        }
    }
}
