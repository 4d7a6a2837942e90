/// A bounded key–value table with CLOCK replacement: the verified-token caches of the event loops.
///
/// When full, an insert replaces the first entry (from the hand on) that is expired or was not read since the hand
/// last passed it, so a flood of one-off keys cannot push out the entries that are read again and again, and an
/// insert costs O(1) amortised. Expiry is an integer instant in the caller's unit (seconds or nanoseconds).
///
/// A lookup returns a slot, so a caller that judges the entry itself (same key, but is it still the same thing?)
/// can then mark or drop it without hashing the key again.
public struct ClockTable<Key: Hashable, Value> {
    private struct Slot {
        let key: Key
        let value: Value
        let expiresAt: Int64
        var referenced: Bool
    }

    public let capacity: Int
    private var slots: [Slot?]
    private var index: [Key: Int] = [:]
    private var hand = 0

    public init(capacity: Int) {
        precondition(capacity > 0, "a ClockTable needs a positive capacity")
        self.capacity = capacity
        self.slots = Array(repeating: nil, count: capacity)
        index.reserveCapacity(capacity)
    }

    /// Entries stored, expired ones included until they are replaced or dropped.
    public var count: Int { index.count }

    public mutating func removeAll() {
        slots = Array(repeating: nil, count: capacity)
        index.removeAll(keepingCapacity: true)
        hand = 0
    }

    /// Where `key` is stored, if it is.
    public func slot(of key: Key) -> Int? { index[key] }

    public func value(at slot: Int) -> Value? { slots[slot]?.value }

    public func expiry(at slot: Int) -> Int64? { slots[slot]?.expiresAt }

    /// Records a read, which protects the entry from the next pass of the hand.
    public mutating func markRead(_ slot: Int) { slots[slot]?.referenced = true }

    /// Drops the entry in `slot` (dead for good: expired, or its key set is gone).
    public mutating func remove(at slot: Int) {
        guard let old = slots[slot] else { return }
        index[old.key] = nil
        slots[slot] = nil
    }

    /// Stores `value` for `key`, replacing the key's old value or, when full, a victim chosen by the hand.
    public mutating func insert(_ key: Key, _ value: Value, expiresAt: Int64, now: Int64) {
        if let existing = index[key] {
            slots[existing] = Slot(key: key, value: value, expiresAt: expiresAt, referenced: false)
            return
        }
        // At most two turns of the hand: the first clears every reference bit.
        var victim = hand
        for _ in 0..<(2 * capacity) {
            victim = hand
            hand = (hand + 1) % capacity
            guard let occupant = slots[victim] else { break }
            if occupant.referenced, now < occupant.expiresAt {
                slots[victim]?.referenced = false
                continue
            }
            break
        }
        if let old = slots[victim] { index[old.key] = nil }
        slots[victim] = Slot(key: key, value: value, expiresAt: expiresAt, referenced: false)
        index[key] = victim
    }
}
