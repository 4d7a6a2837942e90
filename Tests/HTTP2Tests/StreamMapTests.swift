import Testing

@testable import HTTP2

@Suite("StreamMap")
struct StreamMapTests {
    final class Box {
        let n: Int
        init(_ n: Int) { self.n = n }
    }

    /// A small deterministic generator, so a failure replays.
    struct SplitMix {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func agree(_ map: StreamMap<Box>, _ model: [Int32: Box], probes: [Int32]) -> Bool {
        guard map.count == model.count, map.isEmpty == model.isEmpty else { return false }
        for key in probes where map[key] !== model[key] { return false }
        let seen = map.values.map(\.n).sorted()
        return seen == model.values.map(\.n).sorted()
    }

    /// (key space, operations, seed): small key spaces force long probe runs and wrap-around deletions.
    static let workloads: [(Int32, Int, UInt64)] = [
        (8, 2_000, 1), (40, 5_000, 2), (300, 20_000, 3), (Int32.max, 5_000, 4),
    ]

    @Test("insert, replace, remove and look up as a Dictionary would", arguments: workloads)
    func matchesDictionary(keySpace: Int32, operations: Int, seed: UInt64) {
        var random = SplitMix(state: seed)
        var map = StreamMap<Box>()
        var model: [Int32: Box] = [:]
        var probes: [Int32] = [1, Int32.max, -1, Int32.min]
        for step in 0..<operations {
            let key = Int32(truncatingIfNeeded: random.next() % UInt64(keySpace)) | 1
            probes.append(key)
            switch random.next() % 3 {
            case 0, 1:
                let box = Box(step)
                map[key] = box
                model[key] = box
            default:
                #expect(map.removeValue(forKey: key) === model.removeValue(forKey: key))
            }
            if step % 97 == 0 { #expect(Self.agree(map, model, probes: probes)) }
        }
        #expect(Self.agree(map, model, probes: probes))
        map.removeAll()
        #expect(map.isEmpty && map.count == 0 && map.values.map(\.n).isEmpty)
        #expect(probes.allSatisfy { map[$0] == nil })
    }

    @Test("ids that share the last home slot stay reachable through removals that wrap around")
    func collidingIDs() {
        var map = StreamMap<Box>()
        // Five ids whose home is the table's last slot, so their probe run wraps to the start.
        let last = 15
        var ids: [Int32] = []
        var id: Int32 = 1
        while ids.count < 5 {
            if map.home(id) == last { ids.append(id) }
            id += 2
        }
        for (n, id) in ids.enumerated() { map[id] = Box(n) }
        for (n, id) in ids.enumerated() { #expect(map[id]?.n == n) }
        map[ids[0]] = nil
        map[ids[3]] = nil
        for (n, id) in ids.enumerated() where n != 0 && n != 3 { #expect(map[id]?.n == n) }
        #expect(map[ids[0]] == nil && map[ids[3]] == nil)
        #expect(map.count == ids.count - 2)
    }

    @Test("iterating values walks a snapshot while the map changes")
    func iterationSnapshot() {
        var map = StreamMap<Box>()
        for id in stride(from: Int32(1), through: 199, by: 2) { map[id] = Box(Int(id)) }
        var visited = 0
        for box in map.values {
            visited += 1
            map[Int32(box.n)] = nil
        }
        #expect(visited == 100)
        #expect(map.isEmpty)
    }
}
