import Testing

@testable import Proxy

@Suite("request ids")
struct RequestIDTests {
    @Test("ids count 1, 2, 3… in base 36 after the prefix, exactly as String(n, radix: 36) writes them")
    func base36Sequence() {
        var ids = RequestIDSequence(prefix: "kx3f9a-1-")
        // Past 36, 36² and 36³, where the count grows a digit.
        var mismatches: [Int] = []
        for n in 1...50_000 where ids.next() != "kx3f9a-1-" + String(n, radix: 36) {
            mismatches.append(n)
        }
        #expect(mismatches.isEmpty)
    }

    @Test("two sequences with different prefixes never give the same id")
    func prefixesKeepLoopsApart() {
        var first = RequestIDSequence(prefix: "a-0-")
        var second = RequestIDSequence(prefix: "a-1-")
        let fromFirst = Set((0..<1000).map { _ in first.next() })
        let fromSecond = Set((0..<1000).map { _ in second.next() })
        #expect(fromFirst.count == 1000)
        #expect(fromFirst.isDisjoint(with: fromSecond))
    }
}
