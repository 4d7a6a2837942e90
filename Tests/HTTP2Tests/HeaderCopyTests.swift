import Testing

@testable import HTTP2

@Suite("Header name and value copy")
struct HeaderCopyTests {
    static func reference(_ bytes: [UInt8], lowercasing: Bool) -> [UInt8] {
        lowercasing ? bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 } : bytes
    }

    @Test("every byte value at every position of names of several lengths is copied, letters A-Z lowercased")
    func everyByteEverywhere() {
        var mismatches = 0
        for length in [1, 7, 8, 9, 16, 17, 23] {
            for position in 0..<length {
                for b in 0...255 {
                    var bytes = Array("Content-Type-Xyz-ABCDEFG".utf8.prefix(length))
                    bytes[position] = UInt8(b)
                    let string = String(decoding: bytes, as: UTF8.self)
                    let source = Array(string.utf8)
                    for lowercasing in [true, false] {
                        var out = [UInt8](repeating: 0, count: source.count + 8)
                        let n = out.withUnsafeMutableBufferPointer {
                            copyUTF8(string, to: $0.baseAddress!, lowercasing: lowercasing)
                        }
                        if n != source.count || Array(out[0..<n]) != Self.reference(source, lowercasing: lowercasing) {
                            mismatches += 1
                        }
                    }
                }
            }
        }
        #expect(mismatches == 0)
    }
}
