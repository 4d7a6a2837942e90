/// The fields of a connection's last request header block, by position, each with the raw bytes it was made from.
///
/// A client repeats most fields of its previous request in the same order (authority, agent, token, origin...).
/// When the bytes at the same position of the next block are exactly the remembered ones, the caller reuses the
/// remembered field (its Strings, and whatever it learned about them, in `tag`): a byte comparison instead of
/// validation and the making of two Strings. Shared by both protocols' request parsers: HTTP/2 keys an entry by a
/// field's name and value bytes, HTTP/1.1 by its whole field line.
///
/// Contract: a value type owned by one connection. A caller remembers only fields it accepted, so a hit needs no
/// check again. Memory is bounded: at most `slots` fields and `maxBytes` bytes of keys.
public struct RecentFieldStore: Sendable {
    @usableFromInline
    struct Entry: Sendable {
        /// Where the name's bytes start in `bytes`; the value's follow them.
        @usableFromInline var offset: Int
        @usableFromInline var nameCount: Int
        @usableFromInline var valueCount: Int
        /// Bytes reserved at `offset`, so a shorter field can take the place of a longer one.
        @usableFromInline var room: Int
        @usableFromInline var field: HTTPFields.Field
        @usableFromInline var tag: UInt8

        @usableFromInline
        init(offset: Int, nameCount: Int, valueCount: Int, room: Int, field: HTTPFields.Field, tag: UInt8) {
            self.offset = offset
            self.nameCount = nameCount
            self.valueCount = valueCount
            self.room = room
            self.field = field
            self.tag = tag
        }
    }

    public let slots: Int
    public let maxBytes: Int
    @usableFromInline var entries: [Entry] = []
    /// The remembered bytes; its count is the space handed out so far.
    @usableFromInline var bytes: [UInt8] = []

    public init(slots: Int = 32, maxBytes: Int = 32 * 1024) {
        self.slots = slots
        self.maxBytes = maxBytes
    }

    /// The number of key bytes (name and value together) remembered at `slot`, or -1 when nothing is.
    @inlinable @inline(__always)
    public func keyCount(at slot: Int) -> Int {
        guard slot < entries.count else { return -1 }
        return entries.withUnsafeBufferPointer { entries in
            let entry = entries.baseAddress! + slot
            return entry.pointee.nameCount &+ entry.pointee.valueCount
        }
    }

    /// Whether a field is remembered at `slot` and its name and value are exactly these bytes.
    @inlinable @inline(__always)
    public func matches(
        _ slot: Int, name: UnsafePointer<UInt8>, nameCount: Int, value: UnsafePointer<UInt8>, valueCount: Int
    ) -> Bool {
        guard slot < entries.count else { return false }
        return entries.withUnsafeBufferPointer { entries -> Bool in
            // Read in place: nothing is retained to compare.
            let entry = entries.baseAddress! + slot
            guard entry.pointee.nameCount == nameCount, entry.pointee.valueCount == valueCount else { return false }
            let offset = entry.pointee.offset
            return bytes.withUnsafeBufferPointer { bytes in
                // No storage yet means only empty keys were remembered.
                guard let base = bytes.baseAddress else { return nameCount &+ valueCount == 0 }
                let stored = base + offset
                return bytesEqual(stored + nameCount, value, valueCount) && bytesEqual(stored, name, nameCount)
            }
        }
    }

    /// The field at `slot`; only after `matches` said it is there.
    @inlinable @inline(__always)
    public func field(at slot: Int) -> HTTPFields.Field {
        // Through the buffer only the field is copied, not the whole entry (a generic value-witness copy).
        entries.withUnsafeBufferPointer { ($0.baseAddress! + slot).pointee.field }
    }

    /// The value at `slot`; only after `matches` said it is there.
    @inlinable @inline(__always)
    public func value(at slot: Int) -> String {
        entries.withUnsafeBufferPointer { ($0.baseAddress! + slot).pointee.field.value }
    }

    /// The caller's tag for the field at `slot`; only after `matches` said it is there.
    @inlinable @inline(__always)
    public func tag(at slot: Int) -> UInt8 {
        entries.withUnsafeBufferPointer { ($0.baseAddress! + slot).pointee.tag }
    }

    /// Remembers `field` (whose bytes these are) at `slot`, with a `tag` of the caller's. Slots fill in order: a
    /// block whose earlier field was not remembered leaves the later ones out, which only costs misses.
    public mutating func remember(
        _ field: HTTPFields.Field, at slot: Int, name: UnsafePointer<UInt8>, nameCount: Int,
        value: UnsafePointer<UInt8>, valueCount: Int, tag: UInt8 = 0
    ) {
        let need = nameCount + valueCount
        let offset: Int
        let room: Int
        if slot < entries.count && entries[slot].room >= need {
            offset = entries[slot].offset
            room = entries[slot].room
            bytes.withUnsafeMutableBufferPointer { bytes in
                guard let base = bytes.baseAddress else { return }
                let p = base + offset
                p.update(from: name, count: nameCount)
                (p + nameCount).update(from: value, count: valueCount)
            }
        } else {
            guard slot <= entries.count, slot < slots, need <= maxBytes else { return }
            if bytes.count + need > maxBytes {
                // Full of regions older blocks left behind: start over. This block refills from slot 0 on.
                entries.removeAll(keepingCapacity: true)
                bytes.removeAll(keepingCapacity: true)
                guard slot == 0 else { return }
            }
            if bytes.count + need > bytes.capacity {
                // Doubling, but never past the budget.
                bytes.reserveCapacity(min(maxBytes, max(bytes.count + need, bytes.capacity * 2, 512)))
            }
            offset = bytes.count
            room = need
            bytes.append(contentsOf: UnsafeBufferPointer(start: name, count: nameCount))
            bytes.append(contentsOf: UnsafeBufferPointer(start: value, count: valueCount))
        }
        let entry = Entry(
            offset: offset, nameCount: nameCount, valueCount: valueCount, room: room, field: field, tag: tag)
        if slot < entries.count { entries[slot] = entry } else { entries.append(entry) }
    }
}
