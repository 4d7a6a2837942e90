/// A JSON value with object members kept in document order.
///
/// The gateway parses untrusted JSON (token headers and claims, request bodies it inspects), so the parser
/// is strict: RFC 8259 grammar only, duplicate member names refused, nesting and size bounded.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        for (name, value) in members where name == key { return value }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var doubleValue: Double? {
        if case .number(let n) = self { return n }
        return nil
    }

    /// The number as an integer when it is one exactly (JWT NumericDate values, counts).
    public var int64Value: Int64? {
        guard case .number(let n) = self, n.rounded(.towardZero) == n, abs(n) < 9.2e18 else { return nil }
        return Int64(n)
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: [(String, JSONValue)]? {
        if case .object(let o) = self { return o }
        return nil
    }
}

// MARK: - Building

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(elements) }
    public init(nilLiteral: ()) { self = .null }
}

// MARK: - Serializing

extension JSONValue {
    /// Compact JSON text; members in stored order.
    public func serialized() -> String { String(decoding: serializedBytes(), as: UTF8.self) }

    /// The UTF-8 of `serialized()`, written as bytes: appending to a `String` piece by piece cost several times
    /// as much (every error body the gateway writes, such as a 429 under load, went through it).
    public func serializedBytes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(to: &out)
        return out
    }

    public func write(to out: inout String) { out += serialized() }

    public func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n):
            if n.rounded(.towardZero) == n, abs(n) < 1e15 {
                JSONValue.writeInteger(Int64(n), to: &out)
            } else if n.isFinite {
                out.append(contentsOf: "\(n)".utf8)
            } else {
                out.append(contentsOf: "null".utf8)
            }
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                item.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, (name, value)) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(name, to: &out)
                out.append(UInt8(ascii: ":"))
                value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Decimal digits of `value`, with its sign.
    public static func writeInteger(_ value: Int64, to out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        let start = out.count
        repeat {
            out.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10))
            magnitude /= 10
        } while magnitude > 0
        out[start...].reverse()
    }

    public static func writeString(_ s: String, to out: inout String) {
        var bytes: [UInt8] = []
        writeString(s, to: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }

    /// A JSON string literal for `s`: `"`, `\\`, controls, `<` (so the JSON is safe to embed in an HTML report)
    /// and U+2028/U+2029 escaped; runs of other bytes copied whole.
    public static func writeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        if s.utf8.withContiguousStorageIfAvailable({ writeEscaped($0, to: &out) }) == nil {
            Array(s.utf8).withUnsafeBufferPointer { writeEscaped($0, to: &out) }
        }
        out.append(UInt8(ascii: "\""))
    }

    private static func writeEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        let hex: StaticString = "0123456789abcdef"
        var run = 0
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            var escape: StaticString? = nil
            var skip = 1
            switch b {
            case UInt8(ascii: "\""): escape = "\\\""
            case UInt8(ascii: "\\"): escape = "\\\\"
            case 0x0A: escape = "\\n"
            case 0x0D: escape = "\\r"
            case 0x09: escape = "\\t"
            case UInt8(ascii: "<"): escape = "\\u003c"
            case 0xE2 where i + 2 < n && bytes[i + 1] == 0x80 && (bytes[i + 2] == 0xA8 || bytes[i + 2] == 0xA9):
                escape = bytes[i + 2] == 0xA8 ? "\\u2028" : "\\u2029"
                skip = 3
            default:
                if b >= 0x20 {
                    i += 1
                    continue
                }
            }
            if run < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<i])) }
            if let escape {
                out.append(contentsOf: UnsafeBufferPointer(start: escape.utf8Start, count: escape.utf8CodeUnitCount))
            } else {
                // Another control character: \u00XX, lowercase hex.
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex.utf8Start[Int(b >> 4)])
                out.append(hex.utf8Start[Int(b & 0x0F)])
            }
            i += skip
            run = i
        }
        if run < n { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<n])) }
    }
}

// MARK: - Parsing

public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

extension JSONValue {
    /// Parses one JSON text. Refuses duplicate member names, nesting deeper than `maxDepth`,
    /// lone surrogates, leading zeros, trailing garbage and everything else RFC 8259 does not allow.
    public static func parse<Bytes: Collection>(_ bytes: Bytes, maxDepth: Int = 32) throws(JSONParseError) -> JSONValue
    where Bytes.Element == UInt8 {
        try parse(Array(bytes), maxDepth: maxDepth)
    }

    /// The same parse for bytes already in an array: callers in other modules (token headers and claims) would
    /// otherwise reach the unspecialized generic entry point, which copies through the collection protocol.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 32) throws(JSONParseError) -> JSONValue {
        // The parser reads through a buffer pointer for the whole parse: array subscripts would check bounds on
        // every byte, and a per-string `withUnsafeBufferPointer` costs a closure call (every read is guarded by
        // an index comparison with `bytes.count`).
        try bytes.withUnsafeBufferPointer { buffer throws(JSONParseError) in
            var parser = JSONParser(bytes: buffer, maxDepth: maxDepth)
            return try parser.parseDocument()
        }
    }

    public static func parse(_ text: String, maxDepth: Int = 32) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8), maxDepth: maxDepth)
    }
}

struct JSONParser {
    /// Valid for the parse only (`JSONValue.parse` lends it).
    let bytes: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    var i = 0

    init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: i, reason: reason) }

    @inline(__always)
    mutating func skipWhitespace() {
        // Compact JSON (every token's header and claims) has none: one comparison, no call.
        guard i < bytes.count, bytes[i] <= 0x20 else { return }
        skipWhitespaceRun()
    }

    mutating func skipWhitespaceRun() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        // A UTF-8 BOM is not JSON text (RFC 8259 §8.1 lets parsers refuse it).
        let value = try parseValue(depth: 0)
        skipWhitespace()
        guard i == bytes.count else { throw fail("trailing data") }
        return value
    }

    mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maxDepth else { throw fail("nesting too deep") }
        skipWhitespace()
        guard i < bytes.count else { throw fail("unexpected end") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw fail("unexpected character")
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let count = word.utf8CodeUnitCount
        guard i + count <= bytes.count,
            UnsafeBufferPointer(rebasing: bytes[i..<(i + count)]).elementsEqual(
                UnsafeBufferPointer(start: word.utf8Start, count: count))
        else { throw fail("bad literal") }
        i += count
    }

    mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        i += 1
        var members: [(String, JSONValue)] = []
        // Token headers and claims have 3 to 14 members: one allocation instead of growing 1, 2, 4, 8, 16.
        members.reserveCapacity(16)
        // Token headers and claims have a handful of members: a linear scan beats hashing until there are many.
        var seen: Set<String>? = nil
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected member name") }
            let name = try parseString(memberName: true)
            let duplicate: Bool
            if seen == nil && members.count < 16 {
                duplicate = members.contains { $0.0 == name }
            } else {
                if seen == nil { seen = Set(members.map(\.0)) }
                duplicate = !seen!.insert(name).inserted
            }
            guard !duplicate else { throw fail("duplicate member \"\(name.prefix(40))\"") }
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            i += 1
            let value = try parseValue(depth: depth + 1)
            members.append((name, value))
            skipWhitespace()
            guard i < bytes.count else { throw fail("unexpected end") }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if bytes[i] == UInt8(ascii: "}") {
                i += 1
                return .object(members)
            }
            throw fail("expected ',' or '}'")
        }
    }

    mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        i += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
            i += 1
            return .array(items)
        }
        while true {
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard i < bytes.count else { throw fail("unexpected end") }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if bytes[i] == UInt8(ascii: "]") {
                i += 1
                return .array(items)
            }
            throw fail("expected ',' or ']'")
        }
    }

    mutating func parseNumber() throws(JSONParseError) -> Double {
        let start = i
        let negative = bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        var sawFractionOrExponent = false
        guard i < bytes.count else { throw fail("bad number") }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
            if i < bytes.count, isDigit(bytes[i]) { throw fail("leading zero") }
        } else if isDigit(bytes[i]) {
            while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        } else {
            throw fail("bad number")
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            sawFractionOrExponent = true
            i += 1
            guard i < bytes.count, isDigit(bytes[i]) else { throw fail("bad fraction") }
            while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            sawFractionOrExponent = true
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, isDigit(bytes[i]) else { throw fail("bad exponent") }
            while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        }
        // Plain integers of up to 15 digits (NumericDates, counts) are exact in a Double: no text round trip.
        if !sawFractionOrExponent, i - start - (negative ? 1 : 0) <= 15 {
            var magnitude: Int64 = 0
            for k in (negative ? start + 1 : start)..<i { magnitude = magnitude * 10 + Int64(bytes[k] &- 0x30) }
            // -0 stays -0.0, as the text conversion gives it.
            return negative ? -Double(magnitude) : Double(magnitude)
        }
        guard i - start <= 64,
            let value = Double(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)),
            value.isFinite
        else { throw fail("bad number") }
        return value
    }

    func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    /// - Parameter memberName: a name that is one of `KnownNames` comes back as that literal (no new string).
    mutating func parseString(memberName: Bool = false) throws(JSONParseError) -> String {
        i += 1
        // Fast path: no escape before the closing quote, so the string is a slice of the input (the loop
        // conditions keep every read in bounds).
        let start = i
        let count = bytes.count
        var j = start
        var high: UInt64 = 0
        // Eight bytes at a time: the first quote, backslash or control character of a word is found by its lowest
        // flag (see `specialByteFlags`), and the bytes before it join the non-ASCII check. The byte loop handles
        // the last few bytes of the input only.
        var stopped = false
        if let base = bytes.baseAddress {
            while j &+ 8 <= count {
                let w = UnsafeRawPointer(base + j).loadUnaligned(as: UInt64.self)
                let flags = Self.specialByteFlags(w)
                if flags != 0 {
                    let before = flags.trailingZeroBitCount & ~7
                    high |= w & ~(UInt64.max << UInt64(before))
                    j &+= before >> 3
                    stopped = true
                    break
                }
                high |= w
                j &+= 8
            }
        }
        while !stopped && j < count {
            let b = bytes[j]
            if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") || b < 0x20 { break }
            high |= UInt64(b)
            j &+= 1
        }
        let end = j
        // ASCII is valid UTF-8 as it stands; anything else is validated below, never repaired.
        if end < count, bytes[end] == UInt8(ascii: "\""), high & 0x8080_8080_8080_8080 == 0 {
            i = end + 1
            if memberName, let known = KnownNames.name(bytes.baseAddress! + start, end &- start) { return known }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        }
        if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
            guard let valid = String(validating: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
            else { throw fail("invalid UTF-8") }
            i = end + 1
            return valid
        }
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                i += 1
                break
            }
            if b < 0x20 { throw fail("control character in string") }
            if b == UInt8(ascii: "\\") {
                i += 1
                guard i < bytes.count else { throw fail("bad escape") }
                switch bytes[i] {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    i += 1
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u")
                        else { throw fail("lone surrogate") }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("lone surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("lone surrogate")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("bad escape") }
                    out.append(contentsOf: Array(String(u).utf8))
                    continue
                default: throw fail("bad escape")
                }
                i += 1
                continue
            }
            out.append(b)
            i += 1
        }
        // Invalid UTF-8 is refused rather than repaired: a repaired claim could compare equal to another.
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8") }
        return s
    }

    /// The high bit of each byte of the eight that may be `"`, `\\` or below 0x20; none when there is no such byte,
    /// and the lowest flag is always a true one. (The classic "has a zero byte" and "has a byte below n" tests: a
    /// borrow can raise a false flag only above a true flag of the same test, so no flag lies below the first
    /// special byte.)
    @inline(__always)
    static func specialByteFlags(_ w: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let quote = w ^ (ones &* 0x22)
        let backslash = w ^ (ones &* 0x5C)
        let below20 = (w &- ones &* 0x20) & ~w
        let zeroQuote = (quote &- ones) & ~quote
        let zeroBackslash = (backslash &- ones) & ~backslash
        return (below20 | zeroQuote | zeroBackslash) & highs
    }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("bad \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[i]
            let d: UInt32
            switch b {
            case 0x30...0x39: d = UInt32(b - 0x30)
            case 0x41...0x46: d = UInt32(b - 0x41 + 10)
            case 0x61...0x66: d = UInt32(b - 0x61 + 10)
            default: throw fail("bad \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }
}

/// The member names of JWS headers and JWT claims: a parsed name equal to one of them is that literal string, which
/// costs no allocation or validation (the same value `String(decoding:)` would give).
///
/// Found by the name's length and two loads that together cover its bytes: for 3 to 8 bytes two overlapping 4-byte
/// loads starting at the name and ending at its end (a 3-byte name's loads reach one byte either side: the quotes
/// that enclose it), for 9 to 16 bytes two overlapping 8-byte loads.
enum KnownNames {
    static let names: [String] = [
        "alg", "typ", "kid", "cty", "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "azp", "gty", "scope", "org_id",
        "org_name", "amr", "acr", "cnf", "jkt", "client_id", "permissions", "auth_time", "sid", "nonce", "email",
        "email_verified", "name", "nickname", "picture", "updated_at", "https",
    ]

    private struct Slot {
        var count: Int
        var key: UInt64
        var key2: UInt64
        var name: String
    }

    private static let slotCount = 128
    private static let slots: [Slot] = {
        var slots = Array(repeating: Slot(count: 0, key: 0, key2: 0, name: ""), count: slotCount)
        for name in names {
            // Laid out as in a document, between quotes, so the loads see what they see when parsing.
            let text = Array("\"\(name)\"".utf8)
            let (key, key2) = text.withUnsafeBufferPointer { keys($0.baseAddress! + 1, name.utf8.count) }
            var index = slotIndex(key, key2)
            while slots[index].count != 0 { index = (index + 1) & (slotCount - 1) }
            slots[index] = Slot(count: name.utf8.count, key: key, key2: key2, name: name)
        }
        return slots
    }()

    /// Reads only `p[-1 ..< count + 1]` (for `count` 3) or `p[0 ..< count]`.
    @inline(__always)
    private static func keys(_ p: UnsafePointer<UInt8>, _ count: Int) -> (UInt64, UInt64) {
        let raw = UnsafeRawPointer(p)
        if count <= 8 {
            let low = UInt64(raw.loadUnaligned(as: UInt32.self))
            let high = UInt64(raw.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self))
            return (low | high << 32, 0)
        }
        return (raw.loadUnaligned(as: UInt64.self), raw.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self))
    }

    @inline(__always)
    private static func slotIndex(_ key: UInt64, _ key2: UInt64) -> Int {
        Int(truncatingIfNeeded: ((key ^ key2 &* 0x9E37_79B9_7F4A_7C15) &* 0x9E37_79B9_7F4A_7C15) >> 57)
    }

    /// The literal for the `count` ASCII bytes at `p`, which lie between a quote before and a quote after them.
    @inline(__always)
    static func name(_ p: UnsafePointer<UInt8>, _ count: Int) -> String? {
        guard count >= 3 && count <= 16 else { return nil }
        let (key, key2) = keys(p, count)
        return slots.withUnsafeBufferPointer { slots in
            var index = slotIndex(key, key2)
            // Field by field: copying a whole slot would retain its name before it is known to match.
            while true {
                let found = slots[index].count
                if found == 0 { return nil }
                if found == count && slots[index].key == key && slots[index].key2 == key2 { return slots[index].name }
                index = (index &+ 1) & (slotCount - 1)
            }
        }
    }
}
