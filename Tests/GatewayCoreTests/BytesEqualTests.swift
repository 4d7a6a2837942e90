import Testing

@testable import GatewayCore

@Suite("bytesEqual: word-wise byte comparison shared by both protocols' parsers")
struct BytesEqualTests {
    @Test("equal bytes equal at every length, also at different alignments; a difference at any position is found")
    func everyLengthAndPosition() {
        var wrong = 0
        for count in 0...40 {
            let a = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            // An offset copy, so the two sides are not word-aligned in the same way.
            let b = [0xAA] + a
            b.withUnsafeBufferPointer { b in
                a.withUnsafeBufferPointer { a in
                    let pa = a.baseAddress ?? UnsafePointer(bitPattern: 1)!
                    if !bytesEqual(pa, pa, count) { wrong += 1 }
                    if !bytesEqual(pa, b.baseAddress! + 1, count) { wrong += 1 }
                }
            }
            for position in 0..<count {
                var c = a
                c[position] ^= 0x01
                a.withUnsafeBufferPointer { a in
                    c.withUnsafeBufferPointer { c in
                        if bytesEqual(a.baseAddress!, c.baseAddress!, count) { wrong += 1 }
                    }
                }
            }
        }
        #expect(wrong == 0)
    }
}
