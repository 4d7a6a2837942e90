import Testing
import GatewayCore

@testable import HTTP1

/// The character classes are bit sets and word-at-a-time scans; these compare them with the grammar, byte by byte.
@Suite("HTTP/1.1 byte classes")
struct ByteClassTests {
    private static let alnum = Set(Array(0x30...0x39) + Array(0x41...0x5A) + Array(0x61...0x7A)).map { UInt8($0) }

    @Test("tchar is ALPHA, DIGIT and !#$%&'*+-.^_`|~ (RFC 9110 §5.6.2)")
    func token() {
        let expected = Set(Self.alnum + Array("!#$%&'*+-.^_`|~".utf8))
        for b in UInt8.min...UInt8.max { #expect(isTokenByte(b) == expected.contains(b), "byte \(b)") }
    }

    @Test("target bytes are visible ASCII except \"#<>\\^`{}")
    func target() {
        let refused = Set("\"#<>\\^`{}".utf8)
        for b in UInt8.min...UInt8.max {
            #expect(URISyntax.isTargetByte(b) == ((0x21...0x7E).contains(b) && !refused.contains(b)), "byte \(b)")
        }
    }

    @Test("a serialized field value refuses exactly the CTLs but HTAB, and DEL, wherever they sit in a long value")
    func fieldValueCheck() {
        func naive(_ bytes: [UInt8]) -> Bool { !bytes.contains { $0 < 0x20 ? $0 != 0x09 : $0 == 0x7F } }
        let filler = Array("Bearer eyJhbGciOiJSUzI1NiJ9.abc-_".utf8)
        for length in [0, 1, 7, 8, 9, 16, 33] {
            let base = (0..<length).map { filler[$0 % filler.count] }
            #expect(base.withUnsafeBufferPointer { HTTP1Serializer.isValidFieldValue($0) } == naive(base))
            for position in 0..<length {
                for b in UInt8.min...UInt8.max {
                    var value = base
                    value[position] = b
                    let fast = value.withUnsafeBufferPointer { HTTP1Serializer.isValidFieldValue($0) }
                    #expect(fast == naive(value), "byte \(b) at \(position) of \(length)")
                }
            }
        }
    }

    @Test("reg-name bytes are unreserved and sub-delims (RFC 3986 §3.2.2)")
    func regName() {
        let expected = Set(Self.alnum + Array("-._~!$&'()*+,;=".utf8))
        for b in UInt8.min...UInt8.max { #expect(URISyntax.isRegNameByte(b) == expected.contains(b), "byte \(b)") }
    }

    @Test(
        "the word-at-a-time scans find a byte at every offset",
        arguments: [0x0A, 0x00, 0x1F, 0x7F, 0x80, 0xFF] as [UInt8])
    func scans(_ special: UInt8) {
        for length in 0...40 {
            for position in 0...length {
                var bytes = [UInt8](repeating: 0x61, count: length)
                if position < length { bytes[position] = special }
                let expected = position < length ? position : length
                bytes.withUnsafeBufferPointer { buf in
                    if special == 0x0A {
                        #expect(firstLF(buf, 0, length) == (position < length ? position : -1))
                    } else {
                        #expect(firstNonVisibleOrSpace(buf, 0, length) == expected, "length \(length) at \(position)")
                    }
                    if position > 0 && position < length {
                        let fromMiddle =
                            special == 0x0A ? firstLF(buf, 1, length) : firstNonVisibleOrSpace(buf, 1, length)
                        #expect(fromMiddle == position)
                    }
                }
            }
        }
    }

    @Test("a control byte is refused at every offset of a long field value")
    func controlAtEveryOffset() {
        let value = String(repeating: "abcdefgh", count: 4)
        for offset in 0..<value.utf8.count {
            var bytes = Array("GET / HTTP/1.1\r\nHost: a\r\nX: \(value)\r\n\r\n".utf8)
            bytes[28 + offset] = 0x01
            #expect(errorStatus(parseRequests(bytes)) == 400, "offset \(offset)")
        }
    }
}
