import GatewayCore

/// The fields of a connection's last request header block, by position, with their raw bytes.
///
/// A client repeats most fields of its previous request in the same order (method, authority, agent, token,
/// origin...). When the field at the same position of the next block has the same bytes, its Strings are reused:
/// a byte comparison instead of UTF-8 validation and allocation of two Strings.
///
/// Contract: confined to its session's loop. Only fields the session accepted are remembered (values that passed
/// its UTF-8 check), so a hit needs no check again. Memory is bounded: at most `slots` fields and `maxBytes` bytes.
final class RecentFields {
    struct Entry {
        /// Where the name's bytes start in `bytes`; the value's follow them.
        var offset: Int
        var nameCount: Int
        var valueCount: Int
        /// Bytes reserved at `offset`, so a shorter field can take the place of a longer one.
        var room: Int
        var field: HTTPFields.Field
    }

    let slots: Int
    let maxBytes: Int
    // Safety (`@exclusivity(unchecked)`): confined to one loop, and no access is held across a call that could
    // reach this object again.
    @exclusivity(unchecked) private var entries: [Entry] = []
    @exclusivity(unchecked) private var bytes: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) private var capacity: Int
    @exclusivity(unchecked) private var used = 0

    init(slots: Int = 32, maxBytes: Int = 32 * 1024) {
        self.slots = slots
        self.maxBytes = maxBytes
        capacity = 512
        bytes = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
    }

    deinit { bytes.deallocate() }

    /// Whether a field is remembered at `slot` and its name and value are exactly these bytes.
    @inline(__always)
    func matches(
        _ slot: Int, name: UnsafePointer<UInt8>, nameCount: Int, value: UnsafePointer<UInt8>, valueCount: Int
    ) -> Bool {
        guard slot < entries.count else { return false }
        let bytes = self.bytes
        return entries.withUnsafeBufferPointer { entries -> Bool in
            // Read in place: nothing is retained to compare.
            let entry = entries.baseAddress! + slot
            guard entry.pointee.nameCount == nameCount, entry.pointee.valueCount == valueCount else { return false }
            let stored = bytes + entry.pointee.offset
            return bytesEqual(stored + nameCount, value, valueCount) && bytesEqual(stored, name, nameCount)
        }
    }

    /// The field at `slot`; only after `matches` said it is there.
    @inline(__always)
    func field(at slot: Int) -> HTTPFields.Field {
        // Through the buffer only the field is copied, not the whole entry (a generic value-witness copy).
        entries.withUnsafeBufferPointer { ($0.baseAddress! + slot).pointee.field }
    }

    /// The value at `slot`; only after `matches` said it is there.
    @inline(__always)
    func value(at slot: Int) -> String {
        entries.withUnsafeBufferPointer { ($0.baseAddress! + slot).pointee.field.value }
    }

    /// Remembers `field` (whose bytes these are) at `slot`. Slots fill in order: a block whose earlier field was
    /// not remembered leaves the later ones out, which only costs misses.
    func remember(
        _ field: HTTPFields.Field, at slot: Int, name: UnsafePointer<UInt8>, nameCount: Int,
        value: UnsafePointer<UInt8>, valueCount: Int
    ) {
        let need = nameCount + valueCount
        var offset: Int
        var room: Int
        if slot < entries.count && entries[slot].room >= need {
            offset = entries[slot].offset
            room = entries[slot].room
        } else {
            guard slot <= entries.count, slot < slots, need <= maxBytes else { return }
            if used + need > maxBytes {
                // Full of regions older blocks left behind: start over. This block refills from slot 0 on.
                entries.removeAll(keepingCapacity: true)
                used = 0
                guard slot == 0 else { return }
            }
            if used + need > capacity {
                let grown = min(maxBytes, max(used + need, capacity * 2))
                let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
                moved.update(from: bytes, count: used)
                bytes.deallocate()
                bytes = moved
                capacity = grown
            }
            offset = used
            room = need
            used += need
        }
        (bytes + offset).update(from: name, count: nameCount)
        (bytes + offset + nameCount).update(from: value, count: valueCount)
        let entry = Entry(offset: offset, nameCount: nameCount, valueCount: valueCount, room: room, field: field)
        if slot < entries.count { entries[slot] = entry } else { entries.append(entry) }
    }
}
