/// Objects keyed by HTTP/2 stream id: what `[Int32: Value]` does for the session and its owner, without hashing.
///
/// A `Dictionary` keyed by `Int32` runs SipHash on every lookup (about 120 instructions), and a request's stream is
/// looked up about a dozen times on its way through. Here a lookup is a multiply, a shift and usually one probe:
/// open addressing with linear probing over a power-of-two table at most half full, Fibonacci hashing (as
/// nghttp2's own stream map does, so a client choosing its ids gains nothing against us it would not gain against
/// nghttp2), and backward-shift deletion (no tombstones, so probe runs never grow with churn).
///
/// Contract: keys are stream ids, never 0 (0 marks an empty slot). A value type: copies share storage until written.
/// Iterating `values` walks a snapshot, so the map may be changed while iterating.
public struct StreamMap<Value: AnyObject> {
    @usableFromInline
    struct Entry {
        @usableFromInline var key: Int32
        @usableFromInline var value: Value?

        @inlinable
        init(key: Int32, value: Value?) {
            self.key = key
            self.value = value
        }
    }

    @usableFromInline var entries: [Entry]
    /// 32 minus log2 of the capacity: the hash keeps the product's top bits.
    @usableFromInline var shift: UInt32
    @usableFromInline var storedCount: Int

    public init() {
        entries = Array(repeating: Entry(key: 0, value: nil), count: 16)
        shift = 28
        storedCount = 0
    }

    @inlinable public var count: Int { storedCount }

    @inlinable public var isEmpty: Bool { storedCount == 0 }

    @inlinable @inline(__always)
    func home(_ key: Int32) -> Int {
        Int(truncatingIfNeeded: (UInt32(bitPattern: key) &* 2_654_435_769) >> shift)
    }

    /// The slot holding `key`, or -1.
    @inlinable
    func slot(of key: Int32) -> Int {
        let mask = entries.count &- 1
        var i = home(key)
        return entries.withUnsafeBufferPointer { table in
            while true {
                let k = table[i].key
                if k == key { return i }
                if k == 0 { return -1 }
                i = (i &+ 1) & mask
            }
        }
    }

    @inlinable
    public subscript(key: Int32) -> Value? {
        get {
            let i = slot(of: key)
            return i < 0 ? nil : entries[i].value
        }
        set {
            if let newValue { insert(key, newValue) } else { removeValue(forKey: key) }
        }
    }

    /// Adds or replaces the value of `key`.
    @inlinable
    public mutating func insert(_ key: Int32, _ value: Value) {
        precondition(key != 0, "stream id 0 is never a stream")
        let existing = slot(of: key)
        if existing >= 0 {
            entries[existing].value = value
            return
        }
        if (storedCount &+ 1) &* 2 > entries.count { grow() }
        let mask = entries.count &- 1
        var i = home(key)
        while entries[i].key != 0 { i = (i &+ 1) & mask }
        entries[i] = Entry(key: key, value: value)
        storedCount &+= 1
    }

    @inlinable @discardableResult
    public mutating func removeValue(forKey key: Int32) -> Value? {
        var hole = slot(of: key)
        guard hole >= 0 else { return nil }
        let removed = entries[hole].value
        storedCount &-= 1
        // Backward shift: later entries of the probe run move up into the hole, unless that would put one before
        // its home slot, so every remaining key stays reachable from its home without tombstones.
        let mask = entries.count &- 1
        var i = (hole &+ 1) & mask
        while entries[i].key != 0 {
            let homeSlot = home(entries[i].key)
            // Distance from home to i and from home to the hole, both walking forward around the table.
            if (i &- homeSlot) & mask >= (hole &- homeSlot) & mask {
                entries[hole] = entries[i]
                hole = i
            }
            i = (i &+ 1) & mask
        }
        entries[hole] = Entry(key: 0, value: nil)
        return removed
    }

    @inlinable
    public mutating func removeAll() {
        guard storedCount > 0 else { return }
        for i in entries.indices { entries[i] = Entry(key: 0, value: nil) }
        storedCount = 0
    }

    @usableFromInline
    mutating func grow() {
        let old = entries
        entries = Array(repeating: Entry(key: 0, value: nil), count: old.count * 2)
        shift -= 1
        let mask = entries.count &- 1
        for entry in old where entry.key != 0 {
            var i = home(entry.key)
            while entries[i].key != 0 { i = (i &+ 1) & mask }
            entries[i] = entry
        }
    }

    /// The values, in no particular order, from a snapshot taken now.
    @inlinable public var values: Values { Values(entries: entries) }

    /// A snapshot of the map's values.
    public struct Values: Sequence {
        @usableFromInline let entries: [Entry]

        @inlinable init(entries: [Entry]) { self.entries = entries }

        @inlinable public func makeIterator() -> Iterator { Iterator(entries: entries) }

        public struct Iterator: IteratorProtocol {
            @usableFromInline let entries: [Entry]
            @usableFromInline var index = 0

            @inlinable init(entries: [Entry]) { self.entries = entries }

            @inlinable
            public mutating func next() -> Value? {
                while index < entries.count {
                    let entry = entries[index]
                    index += 1
                    if let value = entry.value { return value }
                }
                return nil
            }
        }
    }
}
