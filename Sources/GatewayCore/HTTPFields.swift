/// An ordered list of header fields that keeps the case a peer sent and compares names case-insensitively.
///
/// Names are stored as received; lookups lowercase ASCII only (RFC 9110 §5.1: field names are
/// case-insensitive tokens, so non-ASCII never appears in a valid name).
public struct HTTPFields: Sendable, Equatable, Sequence {
    public struct Field: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public private(set) var fields: [Field]

    public init(_ fields: [Field] = []) { self.fields = fields }

    public init(_ pairs: [(String, String)]) { self.fields = pairs.map { Field($0.0, $0.1) } }

    public var count: Int { fields.count }
    public var isEmpty: Bool { fields.isEmpty }

    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }

    /// The first value of `name`, or nil.
    public subscript(name: String) -> String? {
        for field in fields where field.name.asciiCaseInsensitiveEquals(name) { return field.value }
        return nil
    }

    /// The first value of a field whose name is written in the source: as `self[name]`, comparing each field's
    /// name against the literal's bytes (see `asciiCaseInsensitiveEquals(literal:)`).
    public subscript(literal name: StaticString) -> String? {
        for field in fields where field.name.asciiCaseInsensitiveEquals(literal: name) { return field.value }
        return nil
    }

    /// Every value of `name`, in order.
    public func values(_ name: String) -> [String] {
        fields.filter { $0.name.asciiCaseInsensitiveEquals(name) }.map(\.value)
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    public mutating func add(_ name: String, _ value: String) { fields.append(Field(name, value)) }

    /// Replaces every value of `name` with one value.
    public mutating func set(_ name: String, _ value: String) {
        remove(name)
        fields.append(Field(name, value))
    }

    public mutating func remove(_ name: String) {
        fields.removeAll { $0.name.asciiCaseInsensitiveEquals(name) }
    }

    public mutating func removeAll(where predicate: (Field) -> Bool) { fields.removeAll(where: predicate) }
}

extension String {
    /// Compares ASCII letters without regard to case; every other byte must match exactly.
    @inlinable
    public func asciiCaseInsensitiveEquals(_ other: String) -> Bool {
        // The length test inline, where most callers' candidates fail; the bytes out of line.
        guard self.utf8.count == other.utf8.count else { return false }
        return _asciiCaseInsensitiveEqualsSameLength(self, other)
    }
    /// `asciiCaseInsensitiveEquals` against a name written in the source: the literal's bytes are at hand, so only
    /// this string's are borrowed (one closure, where two strings take two and a small one is copied out first).
    @inlinable
    public func asciiCaseInsensitiveEquals(literal: StaticString) -> Bool {
        guard self.utf8.count == literal.utf8CodeUnitCount else { return false }
        return _asciiCaseInsensitiveEqualsLiteral(self, literal)
    }
    /// Whether `needle` (lowercase letters, digits and punctuation) occurs in this string, ASCII letters matched
    /// without regard to case. A byte scan in place: in a module that imports Foundation, `contains` on a string
    /// resolves to Foundation's `range(of:)`, which bridged each call through NSString (about 7,000 instructions
    /// per search of a short User-Agent, five of them per logged request).
    public func asciiCaseInsensitiveContains(lowercase needle: StaticString) -> Bool {
        if let found = utf8.withContiguousStorageIfAvailable({ asciiCaseInsensitiveFind(needle, in: $0) }) {
            return found
        }
        return Array(utf8).withUnsafeBufferPointer { asciiCaseInsensitiveFind(needle, in: $0) }
    }

    /// ASCII-only lowercase: cheaper than `lowercased()` and never changes non-ASCII bytes.
    public var asciiLowercased: String {
        var bytes = Array(self.utf8)
        var changed = false
        for i in bytes.indices where bytes[i] >= 65 && bytes[i] <= 90 {
            bytes[i] |= 0x20
            changed = true
        }
        return changed ? String(decoding: bytes, as: UTF8.self) : self
    }
}

/// Whether `needle` occurs in `haystack`, an uppercase ASCII letter of `haystack` matching its lowercase form.
public func asciiCaseInsensitiveFind(_ needle: StaticString, in haystack: UnsafeBufferPointer<UInt8>) -> Bool {
    let n = needle.utf8CodeUnitCount
    guard n > 0 else { return true }
    guard haystack.count >= n else { return false }
    let l = needle.utf8Start
    @inline(__always) func folded(_ b: UInt8) -> UInt8 { b &- 0x41 < 26 ? b | 0x20 : b }
    var start = 0
    let last = haystack.count &- n
    while start <= last {
        if folded(haystack[start]) == l[0] {
            var i = 1
            while i < n && folded(haystack[start &+ i]) == l[i] { i &+= 1 }
            if i == n { return true }
        }
        start &+= 1
    }
    return false
}

/// The bytes of `asciiCaseInsensitiveEquals` for strings of equal UTF-8 length.
@usableFromInline
func _asciiCaseInsensitiveEqualsSameLength(_ a: String, _ b: String) -> Bool {
    // Native and small strings are contiguous UTF-8 (a small one is copied to the stack); others are copied.
    if let result = a.utf8.withContiguousStorageIfAvailable({ x in
        b.utf8.withContiguousStorageIfAvailable({ y in
            asciiCaseInsensitiveRawEqual(UnsafeRawPointer(x.baseAddress), UnsafeRawPointer(y.baseAddress), x.count)
        })
    }), let result {
        return result
    }
    return asciiCaseInsensitiveBytesEqual(Array(a.utf8), Array(b.utf8))
}

/// The bytes of `asciiCaseInsensitiveEquals(literal:)` for a string of the literal's UTF-8 length.
@usableFromInline
func _asciiCaseInsensitiveEqualsLiteral(_ a: String, _ literal: StaticString) -> Bool {
    let b = UnsafeRawPointer(literal.utf8Start)
    if let result = a.utf8.withContiguousStorageIfAvailable({ x in
        asciiCaseInsensitiveRawEqual(UnsafeRawPointer(x.baseAddress), b, x.count)
    }) {
        return result
    }
    return Array(a.utf8).withUnsafeBytes { asciiCaseInsensitiveRawEqual($0.baseAddress, b, $0.count) }
}

/// Whether `count` bytes at `a` and `b` are equal but for the case of ASCII letters; eight bytes at a time.
@inline(__always)
func asciiCaseInsensitiveRawEqual(_ a: UnsafeRawPointer?, _ b: UnsafeRawPointer?, _ count: Int) -> Bool {
    guard count > 0, let a, let b else { return true }
    // Word k of both sides holds the same byte positions (`packedWord`), so comparing words compares every byte.
    var k = 0
    while k &* 8 < count {
        if !asciiCaseInsensitiveWordEqual(packedWord(a, count, k), packedWord(b, count, k)) { return false }
        k &+= 1
    }
    return true
}

/// Whether `count` bytes at `a` and `b` are equal: eight at a time, the last word overlapping the one before (field
/// names and values are mostly 4 to 30 bytes; a byte loop for the tail costs more than the words), and 32 per round
/// from 64 bytes on (a repeated bearer token, about 1 kB, is compared on every request: four loads and compares per
/// round cost fewer instructions than one each). Used by both protocols' parsers to recognise fields they have
/// seen before without making Strings.
@inlinable @inline(__always)
public func bytesEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
    // Out of line: the rounds would make every inlined copy of this function larger, and a call is nothing
    // beside comparing 64 bytes or more.
    if count >= 64 { return bytesEqualLong(a, b, count) }
    if count >= 8 {
        var i = 0
        while i &+ 8 < count {
            if a.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                != b.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            {
                return false
            }
            i &+= 8
        }
        return a.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
            == b.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
    }
    if count >= 4 {
        return a.loadUnaligned(as: UInt32.self) == b.loadUnaligned(as: UInt32.self)
            && a.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self)
                == b.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self)
    }
    if count >= 2 {
        return a.loadUnaligned(as: UInt16.self) == b.loadUnaligned(as: UInt16.self)
            && a.loadUnaligned(fromByteOffset: count &- 2, as: UInt16.self)
                == b.loadUnaligned(fromByteOffset: count &- 2, as: UInt16.self)
    }
    return count == 0 || a.load(as: UInt8.self) == b.load(as: UInt8.self)
}

/// `bytesEqual` for 64 bytes or more: 32 per round, the last round anchored at the end (its overlap with bytes
/// already compared is harmless).
@usableFromInline
func bytesEqualLong(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
    @inline(__always) func same32(_ at: Int) -> Bool {
        let d0 =
            a.loadUnaligned(fromByteOffset: at, as: UInt64.self) ^ b.loadUnaligned(fromByteOffset: at, as: UInt64.self)
        let d1 =
            a.loadUnaligned(fromByteOffset: at &+ 8, as: UInt64.self)
            ^ b.loadUnaligned(fromByteOffset: at &+ 8, as: UInt64.self)
        let d2 =
            a.loadUnaligned(fromByteOffset: at &+ 16, as: UInt64.self)
            ^ b.loadUnaligned(fromByteOffset: at &+ 16, as: UInt64.self)
        let d3 =
            a.loadUnaligned(fromByteOffset: at &+ 24, as: UInt64.self)
            ^ b.loadUnaligned(fromByteOffset: at &+ 24, as: UInt64.self)
        return d0 | d1 | d2 | d3 == 0
    }
    var i = 0
    while i &+ 32 <= count {
        if !same32(i) { return false }
        i &+= 32
    }
    return i == count || same32(count &- 32)
}

/// Whether the `count` bytes at `p` are exactly `literal`'s.
@inlinable @inline(__always)
public func bytesEqual(_ p: UnsafeRawPointer, _ count: Int, _ literal: StaticString) -> Bool {
    count == literal.utf8CodeUnitCount && bytesEqual(p, UnsafeRawPointer(literal.utf8Start), count)
}

/// Whether `bytes` is `lower` (lowercase letters, digits and punctuation) but for the case of ASCII letters: an
/// uppercase letter matches its lowercase form, every other byte only itself.
@inlinable @inline(__always)
public func asciiCaseInsensitiveEquals(_ bytes: UnsafeBufferPointer<UInt8>, lowercase lower: StaticString) -> Bool {
    let count = lower.utf8CodeUnitCount
    guard bytes.count == count else { return false }
    let l = lower.utf8Start
    var i = 0
    while i < count {
        let b = bytes[i]
        if (b &- 0x41 < 26 ? b | 0x20 : b) != l[i] { return false }
        i &+= 1
    }
    return true
}

/// Word `k` of the `count` bytes at `p`, for `k < (count + 7) / 8`, without reading outside them: the bytes at
/// `8k` (the last word ending at `count`, overlapping the one before), or for fewer than eight bytes all of them
/// (two overlapping four-byte loads, or single bytes), the rest zero. A byte test applied to every word of two
/// equally long sequences thus sees every byte position, each paired with the same position on the other side.
@inline(__always)
func packedWord(_ p: UnsafeRawPointer, _ count: Int, _ k: Int) -> UInt64 {
    if count >= 8 { return p.loadUnaligned(fromByteOffset: min(k &* 8, count &- 8), as: UInt64.self) }
    if count >= 4 {
        return UInt64(p.loadUnaligned(as: UInt32.self))
            | UInt64(p.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self)) << 32
    }
    var w = UInt64(p.load(as: UInt8.self))
    if count > 1 { w |= UInt64(p.load(fromByteOffset: 1, as: UInt8.self)) << 8 }
    if count > 2 { w |= UInt64(p.load(fromByteOffset: 2, as: UInt8.self)) << 16 }
    return w
}

/// Eight byte pairs at once: each pair equal, or differing only in bit 0x20 where that byte of `x` is a letter
/// (then the other is the same letter in the other case). Byte-order independent.
@inline(__always)
func asciiCaseInsensitiveWordEqual(_ x: UInt64, _ y: UInt64) -> Bool {
    let d = x ^ y
    if d == 0 { return true }
    if d & ~0x2020_2020_2020_2020 != 0 { return false }
    // High bit of each byte of `letters`: `x | 0x20` is in a...z. Seven-bit sums cannot carry across bytes.
    let l = x | 0x2020_2020_2020_2020
    let low7 = l & 0x7F7F_7F7F_7F7F_7F7F
    let atLeastA = low7 &+ 0x1F1F_1F1F_1F1F_1F1F  // 0x80 + low7 - 0x61
    let aboveZ = low7 &+ 0x0505_0505_0505_0505  // 0x80 + low7 - 0x7B
    let letters = atLeastA & ~aboveZ & ~l & 0x8080_8080_8080_8080
    // A differing byte has exactly 0x20 set; shifted left by two it lands on its own high bit.
    return (d << 2) & ~letters == 0
}

@inlinable
public func asciiCaseInsensitiveBytesEqual<A: RandomAccessCollection, B: RandomAccessCollection>(_ a: A, _ b: B) -> Bool
where A.Element == UInt8, B.Element == UInt8, A.Index == Int, B.Index == Int {
    guard a.count == b.count else { return false }
    var i = a.startIndex
    var j = b.startIndex
    while i < a.endIndex {
        let x = a[i]
        let y = b[j]
        if x != y {
            // Only letters may differ, and only by the case bit.
            guard x ^ y == 0x20 else { return false }
            let lower = x | 0x20
            guard lower >= 0x61 && lower <= 0x7A else { return false }
        }
        i += 1
        j += 1
    }
    return true
}

/// A fixed set of field names, matched without regard to ASCII case.
///
/// A bitmask of the names' lengths rules most candidate names out with one test; a candidate of a possible length
/// is compared eight bytes at a time with only the names of that length, each stored as its lowercase bytes and a
/// mask of its letters (the set is built once; matching is on every request's path).
public struct FieldNameSet: Sendable {
    public let names: [String]
    private let lengths: UInt64
    /// Per entry, sorted by length: its length and where its words start in `words`.
    private let entries: [(length: Int, offset: Int)]
    /// For each entry, per word as `packedWord` places its bytes: the lowercase bytes, then 0x20 at each letter.
    private let words: [UInt64]
    /// Index of the first entry of each length below 64; entries of 64 bytes or more start at `longStart`.
    private let starts: [Int]
    private let longStart: Int

    public init(_ names: [String]) {
        self.names = names
        var lengths: UInt64 = 0
        for name in names where name.utf8.count < 64 { lengths |= 1 << UInt64(name.utf8.count) }
        self.lengths = lengths
        var entries: [(length: Int, offset: Int)] = []
        var words: [UInt64] = []
        for name in names.sorted(by: { $0.utf8.count < $1.utf8.count }) {
            var lower = Array(name.utf8)
            var letters = [UInt8](repeating: 0, count: lower.count)
            for i in lower.indices {
                if lower[i] >= 0x41 && lower[i] <= 0x5A { lower[i] |= 0x20 }
                if lower[i] >= 0x61 && lower[i] <= 0x7A { letters[i] = 0x20 }
            }
            entries.append((lower.count, words.count))
            // Packed as a candidate of this length will be (`packedWord`), so word k compares the same bytes.
            lower.withUnsafeBytes { l in
                letters.withUnsafeBytes { m in
                    var k = 0
                    while k * 8 < l.count {
                        words.append(packedWord(l.baseAddress!, l.count, k))
                        words.append(packedWord(m.baseAddress!, m.count, k))
                        k += 1
                    }
                }
            }
        }
        self.entries = entries
        self.words = words
        self.starts = (0..<64).map { n in entries.firstIndex { $0.length >= n } ?? entries.count }
        self.longStart = entries.firstIndex { $0.length >= 64 } ?? entries.count
    }

    /// Whether a name of this length can be in the set at all.
    func admitsLength(_ n: Int) -> Bool { n >= 64 ? longStart < entries.count : (lengths & (1 << UInt64(n))) != 0 }

    public func contains(_ name: String) -> Bool {
        let n = name.utf8.count
        guard admitsLength(n) else { return false }
        return name.utf8.withContiguousStorageIfAvailable { matches(UnsafeRawPointer($0.baseAddress), n) }
            ?? Array(name.utf8).withUnsafeBytes { matches($0.baseAddress, n) }
    }

    private func matches(_ candidate: UnsafeRawPointer?, _ n: Int) -> Bool {
        guard let candidate else { return entries.first?.length == 0 }
        var e = n < 64 ? starts[n] : longStart
        while e < entries.count && entries[e].length == n {
            if matches(candidate, n, words: entries[e].offset) { return true }
            e += 1
        }
        // Names of 64 bytes or more share one bucket whatever their lengths.
        while n >= 64 && e < entries.count {
            if entries[e].length == n && matches(candidate, n, words: entries[e].offset) { return true }
            e += 1
        }
        return false
    }

    @inline(__always)
    private func matches(_ candidate: UnsafeRawPointer, _ n: Int, words offset: Int) -> Bool {
        var k = 0
        var w = offset
        while k &* 8 < n {
            // Setting 0x20 on the letters folds an uppercase letter onto the stored lowercase one; every other
            // byte must match exactly.
            if packedWord(candidate, n, k) | words[w &+ 1] != words[w] { return false }
            k &+= 1
            w &+= 2
        }
        return true
    }
}

extension HTTPFields {
    public mutating func reserveCapacity(_ n: Int) { fields.reserveCapacity(n) }
}
