/// A fixed set of byte strings, each found by its exact bytes: built once per policy, read on every request.
///
/// Open addressing over an FNV-1a hash of the bytes, compared byte for byte: cheaper than `Hasher` for the short
/// keys it holds (origins, paths), and exact where `String`'s equality is canonical equivalence. The table never
/// changes after it is built, so chosen inputs can at worst walk one probe chain of a table kept at most half
/// full.
struct ByteStringIndex: Sendable {
    private let keys: [[UInt8]]
    /// Key positions plus one; 0 marks an empty slot.
    private let slots: [Int32]
    private let mask: Int

    /// `keys[i]` is found as `i`; a repeated key keeps its first position.
    init(_ keys: [[UInt8]]) {
        var size = 8
        while size < keys.count * 2 { size *= 2 }
        var slots = [Int32](repeating: 0, count: size)
        for (position, key) in keys.enumerated() {
            var slot = Int(truncatingIfNeeded: ByteStringIndex.hash(key)) & (size - 1)
            var duplicate = false
            while slots[slot] != 0 {
                if keys[Int(slots[slot]) - 1] == key {
                    duplicate = true
                    break
                }
                slot = (slot + 1) & (size - 1)
            }
            if !duplicate { slots[slot] = Int32(position + 1) }
        }
        self.keys = keys
        self.slots = slots
        self.mask = size - 1
    }

    /// The position of the key equal to `bytes`, or nil.
    func find(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var slot = Int(truncatingIfNeeded: ByteStringIndex.hash(bytes)) & mask
        while true {
            let entry = Int(slots[slot])
            if entry == 0 { return nil }
            let found = keys[entry - 1].withUnsafeBufferPointer { ByteStringIndex.equal($0, bytes) }
            if found { return entry - 1 }
            slot = (slot + 1) & mask
        }
    }

    func find(_ text: String) -> Int? {
        if let found = text.utf8.withContiguousStorageIfAvailable({ find($0) }) { return found }
        return Array(text.utf8).withUnsafeBufferPointer { find($0) }
    }

    func find(_ text: Substring) -> Int? {
        if let found = text.utf8.withContiguousStorageIfAvailable({ find($0) }) { return found }
        return Array(text.utf8).withUnsafeBufferPointer { find($0) }
    }

    static func hash<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        // FNV's low bits mix poorly; fold the high half in before masking.
        return h ^ (h >> 32)
    }

    private static func equal(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0..<a.count where a[i] != b[i] { return false }
        return true
    }
}
