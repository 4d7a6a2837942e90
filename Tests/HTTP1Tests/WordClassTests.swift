import Testing

@testable import HTTP1

/// The eight-bytes-at-a-time name tests, compared with the byte-by-byte grammar for every byte at every position.
@Suite("HTTP/1.1 word classes")
struct WordClassTests {
    static func isAlphanumericOrHyphen(_ b: UInt8) -> Bool {
        (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || b == 0x2D
    }

    static func word(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } }

    @Test("a word is letters, digits and - exactly when each of its bytes is")
    func alphanumericOrHyphenWord() {
        for position in 0..<8 {
            for filler in [UInt8(ascii: "a"), UInt8(ascii: "-"), UInt8(ascii: "Z"), UInt8(ascii: "0")] {
                var bytes = [UInt8](repeating: filler, count: 8)
                for b in UInt8.min...UInt8.max {
                    bytes[position] = b
                    #expect(
                        isAlphanumericOrHyphenWord(Self.word(bytes)) == Self.isAlphanumericOrHyphen(b),
                        "byte \(b) at \(position) among \(filler)")
                }
            }
        }
    }

    @Test("isToken agrees with tchar for every byte at every position of names of 1 to 20 bytes")
    func tokenEveryPosition() {
        for length in 1...20 {
            var bytes = Array("x-request-id-abcdefgh".utf8.prefix(length))
            for position in 0..<length {
                let original = bytes[position]
                for b in UInt8.min...UInt8.max {
                    bytes[position] = b
                    let ok = bytes.withUnsafeBufferPointer(isToken)
                    #expect(ok == isTokenByte(b), "byte \(b) at \(position) of \(length)")
                }
                bytes[position] = original
            }
        }
        #expect(![UInt8]().withUnsafeBufferPointer(isToken))
    }

    @Test(
        "a token compared with a lowercase name by words agrees with the byte comparison",
        arguments: [
            "connection", "Connection", "CONNECTION", "connectioN", "connectiom", "content-length", "Content-Length",
            "content_length", "content-lengtH", "transfer-encoding", "Transfer-Encoding", "transfer-encodinG",
            "transfer-encodin", "xransfer-encoding", "content.length", "Content-Lengt",
        ])
    func tokenEquals(name: String) {
        let bytes = Array(name.utf8)
        bytes.withUnsafeBufferPointer { buf in
            #expect(isToken(buf))
            for lower: StaticString in ["connection", "content-length", "transfer-encoding"] {
                #expect(
                    tokenEqualsLower(buf, 0, buf.count, lower) == equalsIgnoringCase(buf, 0, buf.count, lower),
                    "\(name) vs \(lower)")
            }
        }
    }
}
