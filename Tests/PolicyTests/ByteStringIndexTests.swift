import Testing

@testable import Policy

@Suite struct ByteStringIndexTests {
    @Test("every key is found at its first position; anything else is not found")
    func lookups() {
        var keys: [[UInt8]] = (0..<300).map { Array("https://app\($0).example.com".utf8) }
        keys.append([])
        keys.append(Array("https://app7.example.com".utf8))  // a repeat keeps the first position
        let index = ByteStringIndex(keys)
        for (position, key) in keys.enumerated() {
            let expected = keys.firstIndex(of: key)!
            #expect(key.withUnsafeBufferPointer { index.find($0) } == expected, "\(position)")
        }
        #expect(index.find("https://app7.example.com") == 7)
        #expect(index.find("") == 300)
        for miss in ["https://app300.example.com", "https://APP7.example.com", "https://app7.example.com ", "x"] {
            #expect(index.find(miss) == nil, "\(miss)")
        }
        let target = "/https://app12.example.com?q"
        #expect(index.find(target.dropFirst().prefix { $0 != "?" }) == 12)
    }

    @Test("keys compare as bytes, not by canonical equivalence")
    func bytesNotCanonicalEquivalence() {
        let index = ByteStringIndex([Array("https://caf\u{E9}.example".utf8)])
        #expect("https://caf\u{E9}.example" == "https://cafe\u{301}.example")
        #expect(index.find("https://cafe\u{301}.example") == nil)
        #expect(index.find("https://caf\u{E9}.example") == 0)
    }

    @Test("an empty index finds nothing")
    func empty() {
        #expect(ByteStringIndex([]).find("anything") == nil)
    }
}
