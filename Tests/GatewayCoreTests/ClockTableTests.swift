import GatewayCore
import Testing

@Suite("CLOCK table")
struct ClockTableTests {
    @Test("when full, entries read since the hand passed survive and unread ones are replaced")
    func keepsWhatIsRead() {
        var table = ClockTable<String, Int>(capacity: 4)
        for (i, key) in ["a", "b", "c", "d"].enumerated() { table.insert(key, i, expiresAt: 100, now: 0) }
        for key in ["a", "c"] { table.markRead(table.slot(of: key)!) }
        table.insert("e", 4, expiresAt: 100, now: 0)
        table.insert("f", 5, expiresAt: 100, now: 0)
        #expect(table.count == 4)
        #expect(table.slot(of: "a") != nil && table.slot(of: "c") != nil)
        #expect(table.slot(of: "b") == nil && table.slot(of: "d") == nil)
        #expect(table.slot(of: "e").flatMap(table.value(at:)) == 4)
        #expect(table.slot(of: "f").flatMap(table.value(at:)) == 5)
    }

    @Test("an expired entry is replaced even if it was read; a flood of one-off keys stays within the bound")
    func expiryAndBound() {
        var table = ClockTable<Int, Int>(capacity: 3)
        table.insert(1, 1, expiresAt: 10, now: 0)
        table.insert(2, 2, expiresAt: 100, now: 0)
        table.insert(3, 3, expiresAt: 100, now: 0)
        for key in [1, 2, 3] { table.markRead(table.slot(of: key)!) }
        table.insert(4, 4, expiresAt: 100, now: 50)
        #expect(table.slot(of: 1) == nil, "expired at 10, now 50")
        #expect(table.slot(of: 2) != nil && table.slot(of: 3) != nil && table.slot(of: 4) != nil)
        for key in 100..<1100 { table.insert(key, key, expiresAt: 2000, now: 60) }
        #expect(table.count == 3)
    }

    @Test("a key inserted again keeps one slot with the new value; removed and cleared entries are gone")
    func replaceAndRemove() {
        var table = ClockTable<String, String>(capacity: 2)
        table.insert("k", "old", expiresAt: 9, now: 0)
        table.insert("k", "new", expiresAt: 10, now: 0)
        #expect(table.count == 1)
        let slot = table.slot(of: "k")!
        #expect(table.value(at: slot) == "new" && table.expiry(at: slot) == 10)
        table.remove(at: slot)
        #expect(table.slot(of: "k") == nil && table.value(at: slot) == nil && table.count == 0)
        table.insert("x", "1", expiresAt: 5, now: 0)
        table.removeAll()
        #expect(table.count == 0 && table.slot(of: "x") == nil)
    }
}
