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
/// ``endObject()``; keys are static ASCII literals that need no escaping. The buffer is owned raw memory (hence
/// not copyable): appends are a capacity check and a store, with none of an array's uniqueness checks.
public struct JSONByteWriter: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Bytes written so far.
    public private(set) var count = 0

    public init(capacity: Int = 1024) {
        self.capacity = max(64, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// Empties the buffer, keeping its storage for the next line.
    public mutating func reset() { count = 0 }

    /// The text written so far.
    public var text: String { String(decoding: UnsafeBufferPointer(start: base, count: count), as: UTF8.self) }

    /// The bytes written so far, valid only inside `body`.
    public func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }

    @inline(__always)
    private mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(to: count + extra) }
    }

    private mutating func grow(to needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inline(__always)
    mutating func put(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    @inline(__always)
    mutating func put(_ buffer: UnsafeBufferPointer<UInt8>) {
        guard let source = buffer.baseAddress, !buffer.isEmpty else { return }
        reserve(buffer.count)
        (base + count).update(from: source, count: buffer.count)
        count += buffer.count
    }

    @inline(__always)
    mutating func raw(_ literal: StaticString) {
        let n = literal.utf8CodeUnitCount
        reserve(n)
        (base + count).update(from: literal.utf8Start, count: n)
        count += n
    }

    @inline(__always)
    public mutating func beginObject() { put(UInt8(ascii: "{")) }

    @inline(__always)
    public mutating func endObject() { put(UInt8(ascii: "}")) }

    /// `,"name":` — the comma only when a member precedes it in the current object or array.
    // Inlined so that the literal's length is a constant where it is written: the copy becomes a few stores
    // instead of a `memcpy` call.
    @inline(__always)
    public mutating func key(_ name: StaticString) {
        separate()
        let n = name.utf8CodeUnitCount
        reserve(n + 3)
        base[count] = UInt8(ascii: "\"")
        (base + count + 1).update(from: name.utf8Start, count: n)
        base[count + 1 + n] = UInt8(ascii: "\"")
        base[count + 2 + n] = UInt8(ascii: ":")
        count += n + 3
    }

    /// A key that may need escaping (object members of arbitrary JSON). Named apart from ``key(_:)`` so that a
    /// literal key never lands here.
    mutating func key(escaping name: String) {
        separate()
        string(name)
        put(UInt8(ascii: ":"))
    }

    @inline(__always)
    private mutating func separate() {
        if count > 0 {
            let last = base[count - 1]
            if last != UInt8(ascii: "{") && last != UInt8(ascii: "[") { put(UInt8(ascii: ",")) }
        }
    }

    /// A member written only when `value` is present (absent optionals are omitted, never null).
    @inline(__always)
    public mutating func member(_ name: StaticString, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    // MARK: Values

    public mutating func int(_ value: Int64) {
        reserve(20)
        if value < 0 {
            base[count] = UInt8(ascii: "-")
            count += 1
        }
        var magnitude = value.magnitude
        var digits = 1
        var probe = magnitude
        while probe >= 10 {
            probe /= 10
            digits += 1
        }
        var i = count + digits
        repeat {
            i -= 1
            base[i] = UInt8(truncatingIfNeeded: magnitude % 10) &+ 0x30
            magnitude /= 10
        } while magnitude > 0
        count += digits
    }

    public mutating func int(_ value: Int) { int(Int64(value)) }

    /// A number by ``JSONValue``'s rules: integral values below 10^15 without a fraction, other finite values in
    /// Swift's shortest round-trip form, non-finite values as `null`.
    public mutating func number(_ n: Double) {
        if n.rounded(.towardZero) == n, abs(n) < 1e15 {
            int(Int64(n))
        } else if thousandths(n) {
            return
        } else if n.isFinite {
            var text = n.description
            text.withUTF8 { put($0) }
        } else {
            raw("null")
        }
    }

    /// A value that is exactly the `Double` nearest some k/1000 (as durations rounded to the microsecond are),
    /// written as that decimal; false (nothing written) for any other value.
    ///
    /// Below 10^9 the spacing of doubles is under 10^-6, so no other decimal of at most three fractional digits
    /// (nor any with fewer digits) maps to the same double: k/1000 is the shortest round-trip form, which is what
    /// `description` would write (without an exponent in this range), at a fraction of its cost.
    mutating func thousandths(_ n: Double) -> Bool {
        guard abs(n) < 1e9 else { return false }
        let scaled = (n * 1000).rounded()
        guard scaled / 1000 == n else { return false }
        let k = Int64(scaled)
        if k < 0 { put(UInt8(ascii: "-")) }
        let whole = k.magnitude / 1000
        var fraction = k.magnitude % 1000
        int(Int64(whole))
        guard fraction != 0 else { return true }
        put(UInt8(ascii: "."))
        var divisor: UInt64 = 100
        while fraction != 0 {
            put(UInt8(truncatingIfNeeded: fraction / divisor) &+ 0x30)
            fraction %= divisor
            divisor /= 10
        }
        return true
    }

    /// An integer as ``number(_:)`` writes `Double(n)`: integral below 10^15 is plain digits, without the
    /// `Double` round trip.
    public mutating func number(_ n: Int) {
        if n.magnitude < 1_000_000_000_000_000 { int(Int64(n)) } else { number(Double(n)) }
    }

    public mutating func bool(_ b: Bool) { b ? raw("true") : raw("false") }

    /// A quoted ISO 8601 timestamp, as ``Timestamp/iso8601(millis:)`` writes it.
    public mutating func timestamp(millis: Int64) {
        reserve(Timestamp.fixedLength + 2)
        base[count] = UInt8(ascii: "\"")
        if Timestamp.write(millis: millis, into: base + count + 1) {
            base[count + 1 + Timestamp.fixedLength] = UInt8(ascii: "\"")
            count += Timestamp.fixedLength + 2
        } else {
            count += 1
            var text = Timestamp.iso8601(millis: millis)
            text.withUTF8 { put($0) }
            put(UInt8(ascii: "\""))
        }
    }

    /// A quoted string, escaped exactly as ``JSONValue/writeString(_:to:)`` does (`"`, `\`, control characters,
    /// `<` as `\u003c`, U+2028 and U+2029).
    public mutating func string(_ s: String) {
        // Native and small strings lend their UTF-8 in place; only others (bridged, never here) are copied.
        if s.utf8.withContiguousStorageIfAvailable({ string(utf8: $0) }) != nil { return }
        var s = s
        s.withUTF8 { string(utf8: $0) }
    }

    /// A quoted `log_id`, the same text as `string(id.text)` (hex digits never need escaping).
    public mutating func logID(_ id: LogID) {
        reserve(LogID.length + 2)
        base[count] = UInt8(ascii: "\"")
        id.write(into: base + count + 1)
        base[count + 1 + LogID.length] = UInt8(ascii: "\"")
        count += LogID.length + 2
    }

    public mutating func string(_ s: Substring) {
        var s = s
        s.withUTF8 { string(utf8: $0) }
    }

    /// A quoted string from UTF-8 bytes (which must be valid UTF-8, as a `String`'s always are).
    ///
    /// Room for the worst case is made once; plain runs are copied whole, eight bytes at a time tested for
    /// anything that may need an escape.
    public mutating func string(utf8 input: UnsafeBufferPointer<UInt8>) {
        let n = input.count
        // Worst case: every byte a control character written as \u00XX.
        reserve(n * 6 + 2)
        var out = base + count
        out.pointee = UInt8(ascii: "\"")
        out += 1
        if let src = input.baseAddress, Self.isPlain(src, n) {
            out.update(from: src, count: n)
            out += n
        } else if let src = input.baseAddress {
            var runStart = 0
            var i = 0
            while i < n {
                if i + 8 <= n, !Self.mayNeedEscape(UnsafeRawPointer(src + i).loadUnaligned(as: UInt64.self)) {
                    i += 8
                    continue
                }
                let b = src[i]
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
                    guard i + 2 < n, src[i + 1] == 0x80, src[i + 2] == 0xA8 || src[i + 2] == 0xA9 else {
                        i += 1
                        continue
                    }
                    escape = src[i + 2] == 0xA8 ? "\\u2028" : "\\u2029"
                    width = 3
                default: escape = ""  // another control character: \u00XX below
                }
                out.update(from: src + runStart, count: i - runStart)
                out += i - runStart
                if escape.utf8CodeUnitCount > 0 {
                    out.update(from: escape.utf8Start, count: escape.utf8CodeUnitCount)
                    out += escape.utf8CodeUnitCount
                } else {
                    out[0] = UInt8(ascii: "\\")
                    out[1] = UInt8(ascii: "u")
                    out[2] = UInt8(ascii: "0")
                    out[3] = UInt8(ascii: "0")
                    out[4] = Self.hexDigit(b >> 4)
                    out[5] = Self.hexDigit(b & 0x0F)
                    out += 6
                }
                i += width
                runStart = i
            }
            out.update(from: src + runStart, count: n - runStart)
            out += n - runStart
        }
        out.pointee = UInt8(ascii: "\"")
        out += 1
        count = out - base
    }

    /// Whether `n` bytes at `src` need no escape at all: whole words, the last one overlapping the one before
    /// (a short string is padded with plain bytes), so that a typical string costs a word test or two.
    @inline(__always)
    static func isPlain(_ src: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        if n < 8 {
            // Byte by byte into the padding: cheaper than a `memcpy` call for so few.
            var word: UInt64 = 0x6161_6161_6161_6161
            for i in 0..<n { word = word & ~(0xFF << (8 * UInt64(i))) | UInt64(src[i]) << (8 * UInt64(i)) }
            return !mayNeedEscape(word)
        }
        let raw = UnsafeRawPointer(src)
        var i = 0
        while i + 8 <= n {
            if mayNeedEscape(raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { return false }
            i += 8
        }
        return i == n || !mayNeedEscape(raw.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self))
    }

    /// Whether any byte of `w` is below 0x20 or one of `"`, `\`, `<` and 0xE2 (no false negatives).
    @inline(__always)
    static func mayNeedEscape(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        // The five tests' flag bits are combined before one branch (each test alone has no false negatives, so
        // neither has their union).
        @inline(__always) func zeroBytes(_ v: UInt64) -> UInt64 { (v &- ones) & ~v }
        let flags =
            ((w &- ones &* 0x20) & ~w) | zeroBytes(w ^ (ones &* 0x22)) | zeroBytes(w ^ (ones &* 0x5C))
            | zeroBytes(w ^ (ones &* 0x3C)) | zeroBytes(w ^ (ones &* 0xE2))
        return flags & high != 0
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
            put(UInt8(ascii: "["))
            for item in items {
                separate()
                value(item)
            }
            put(UInt8(ascii: "]"))
        case .object(let members):
            beginObject()
            for (name, item) in members {
                key(escaping: name)
                value(item)
            }
            endObject()
        }
    }
}
