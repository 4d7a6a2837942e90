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
        guard self.utf8.count == other.utf8.count else { return false }
        // Native strings are contiguous UTF-8: compare the bytes directly (the generic zip is ten times slower).
        if let result = self.utf8.withContiguousStorageIfAvailable({ a in
            other.utf8.withContiguousStorageIfAvailable({ b in asciiCaseInsensitiveBytesEqual(a, b) })
        }), let result {
            return result
        }
        return asciiCaseInsensitiveBytesEqual(Array(self.utf8), Array(other.utf8))
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
/// A bitmask of the names' lengths rules most candidate names out with one test, so the byte comparison runs only
/// for names whose length matches one of the set's (the set is built once; matching is on every request's path).
public struct FieldNameSet: Sendable {
    public let names: [String]
    private let lengths: UInt64
    private let hasLongName: Bool

    public init(_ names: [String]) {
        self.names = names
        var lengths: UInt64 = 0
        var long = false
        for name in names {
            let n = name.utf8.count
            if n < 64 { lengths |= 1 << UInt64(n) } else { long = true }
        }
        self.lengths = lengths
        self.hasLongName = long
    }

    /// Whether a name of this length can be in the set at all.
    func admitsLength(_ n: Int) -> Bool { n >= 64 ? hasLongName : (lengths & (1 << UInt64(n))) != 0 }

    public func contains(_ name: String) -> Bool {
        admitsLength(name.utf8.count) && names.contains { name.asciiCaseInsensitiveEquals($0) }
    }
}

extension HTTPFields {
    public mutating func reserveCapacity(_ n: Int) { fields.reserveCapacity(n) }
}
