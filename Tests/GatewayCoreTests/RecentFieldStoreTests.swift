import Testing

@testable import GatewayCore

@Suite("RecentFieldStore")
struct RecentFieldStoreTests {
    /// Remembers `name: value` at `slot` with `tag`.
    private static func remember(
        _ store: inout RecentFieldStore, _ slot: Int, _ name: String, _ value: String, tag: UInt8 = 0
    ) {
        let n = Array(name.utf8) + [0]
        let v = Array(value.utf8) + [0]
        n.withUnsafeBufferPointer { n in
            v.withUnsafeBufferPointer { v in
                store.remember(
                    HTTPFields.Field(name, value), at: slot, name: n.baseAddress!, nameCount: n.count - 1,
                    value: v.baseAddress!, valueCount: v.count - 1, tag: tag)
            }
        }
    }

    private static func matches(_ store: RecentFieldStore, _ slot: Int, _ name: String, _ value: String) -> Bool {
        let n = Array(name.utf8) + [0]
        let v = Array(value.utf8) + [0]
        return n.withUnsafeBufferPointer { n in
            v.withUnsafeBufferPointer { v in
                store.matches(
                    slot, name: n.baseAddress!, nameCount: n.count - 1, value: v.baseAddress!,
                    valueCount: v.count - 1)
            }
        }
    }

    @Test("key counts and tags are those of the field last remembered at a slot")
    func keyCountAndTag() {
        var store = RecentFieldStore(slots: 4, maxBytes: 256)
        #expect(store.keyCount(at: 0) == -1)
        Self.remember(&store, 0, "host", "a.example", tag: 7)
        Self.remember(&store, 1, "accept", "*/*", tag: 2)
        #expect(store.keyCount(at: 0) == 13 && store.tag(at: 0) == 7)
        #expect(store.keyCount(at: 1) == 9 && store.tag(at: 1) == 2)
        #expect(store.keyCount(at: 2) == -1)
        // A shorter field takes the longer one's place; a longer one gets new room.
        Self.remember(&store, 0, "host", "b", tag: 1)
        #expect(store.keyCount(at: 0) == 5 && store.tag(at: 0) == 1)
        #expect(Self.matches(store, 0, "host", "b") && !Self.matches(store, 0, "host", "a.example"))
        Self.remember(&store, 1, "accept", "application/json", tag: 3)
        #expect(Self.matches(store, 1, "accept", "application/json") && store.tag(at: 1) == 3)
        #expect(store.field(at: 1) == HTTPFields.Field("accept", "application/json"))
        // The key is name and value apart: the same bytes split differently do not match.
        #expect(!Self.matches(store, 0, "hos", "tb"))
    }

    @Test("a full store starts over from slot 0, and a later slot waits for it")
    func startsOver() {
        var store = RecentFieldStore(slots: 4, maxBytes: 20)
        Self.remember(&store, 0, "a", "123456789")
        Self.remember(&store, 1, "b", "12345678")
        #expect(Self.matches(store, 1, "b", "12345678"))
        // 19 bytes used: one more longer field at slot 1 does not fit, and only slot 0 may start over.
        Self.remember(&store, 1, "b", "1234567890")
        #expect(store.keyCount(at: 0) == -1 && store.keyCount(at: 1) == -1)
        Self.remember(&store, 0, "c", "1")
        #expect(Self.matches(store, 0, "c", "1"))
        // Slots fill in order: slot 2 before slot 1 is not remembered.
        Self.remember(&store, 2, "d", "1")
        #expect(store.keyCount(at: 2) == -1)
    }

    @Test("long keys compare equal exactly when every byte is, at every length and position")
    func longKeys() {
        for count in 0...100 {
            let a = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) } + [0]
            a.withUnsafeBufferPointer { x in
                #expect(bytesEqual(x.baseAddress!, x.baseAddress!, count))
                for position in 0..<count {
                    var b = a
                    b[position] ^= 0x01
                    b.withUnsafeBufferPointer { y in
                        #expect(!bytesEqual(x.baseAddress!, y.baseAddress!, count))
                    }
                }
            }
        }
    }

    @Test("a copy keeps what it held when the original remembers more")
    func valueSemantics() {
        var store = RecentFieldStore()
        Self.remember(&store, 0, "origin", "https://app.example")
        let copy = store
        Self.remember(&store, 0, "origin", "https://x.example")
        #expect(Self.matches(copy, 0, "origin", "https://app.example"))
        #expect(Self.matches(store, 0, "origin", "https://x.example"))
    }
}
