import GatewayCore
import Testing

@testable import HTTP2

@Suite("RecentFields")
struct RecentFieldsTests {
    /// (slots, maxBytes, seed): tiny budgets force regions to be reused in place, grown, and dropped.
    static let budgets: [(Int, Int, UInt64)] = [(4, 64, 1), (8, 200, 2), (32, 32 * 1024, 3), (2, 40, 4)]

    static let names = ["a", "user-agent", "x-long-field-name", ":path"]
    static let values = ["", "1", "https://app.example", String(repeating: "t", count: 37), "caf\u{E9}", "/x?y=z"]

    @Test("a hit always returns the field of exactly the bytes asked for", arguments: budgets)
    func hitsAreExact(slots: Int, maxBytes: Int, seed: UInt64) {
        var random = StreamMapTests.SplitMix(state: seed)
        let recent = RecentFields(slots: slots, maxBytes: maxBytes)
        var hits = 0
        for _ in 0..<400 {
            let count = Int(random.next() % UInt64(slots + 2))
            for slot in 0..<count {
                // Mostly repeat the same field per slot, so hits happen; sometimes change it.
                let pick = random.next() % 4 == 0 ? Int(truncatingIfNeeded: random.next() >> 2) : slot
                let name = Self.names[pick % Self.names.count]
                let value = Self.values[(pick / 3) % Self.values.count]
                let nameBytes = Array(name.utf8)
                let valueBytes = Array(value.utf8)
                nameBytes.withUnsafeBufferPointer { n in
                    valueBytes.withUnsafeBufferPointer { v in
                        // Never empty buffers' nil base addresses: use a one-byte stand-in with a zero count.
                        let np = n.baseAddress ?? UnsafePointer(bitPattern: 1)!
                        let vp = v.baseAddress ?? UnsafePointer(bitPattern: 1)!
                        if recent.matches(slot, name: np, nameCount: n.count, value: vp, valueCount: v.count) {
                            hits += 1
                            let field = recent.field(at: slot)
                            #expect(field.name == name && field.value == value && recent.value(at: slot) == value)
                        } else {
                            recent.remember(
                                HTTPFields.Field(name, value), at: slot, name: np, nameCount: n.count, value: vp,
                                valueCount: v.count)
                        }
                    }
                }
            }
        }
        #expect(hits > 100)
    }

    @Test("fields past the slot budget or larger than the byte budget are not remembered")
    func bounds() {
        let recent = RecentFields(slots: 1, maxBytes: 8)
        let short = Array("ab".utf8)
        let long = Array("abcdefgh".utf8)
        short.withUnsafeBufferPointer { s in
            long.withUnsafeBufferPointer { l in
                let s = s.baseAddress!
                let l = l.baseAddress!
                recent.remember(HTTPFields.Field("ab", "ab"), at: 0, name: s, nameCount: 2, value: s, valueCount: 2)
                recent.remember(HTTPFields.Field("ab", "ab"), at: 1, name: s, nameCount: 2, value: s, valueCount: 2)
                #expect(recent.matches(0, name: s, nameCount: 2, value: s, valueCount: 2))
                #expect(!recent.matches(1, name: s, nameCount: 2, value: s, valueCount: 2))
                // 2 + 8 bytes exceed the budget: slot 0 keeps its old field.
                recent.remember(
                    HTTPFields.Field("ab", "abcdefgh"), at: 0, name: s, nameCount: 2, value: l, valueCount: 8)
                #expect(!recent.matches(0, name: s, nameCount: 2, value: l, valueCount: 8))
                #expect(recent.matches(0, name: s, nameCount: 2, value: s, valueCount: 2))
            }
        }
    }
}
