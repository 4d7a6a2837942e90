import Testing

@testable import Tokens

@Suite("Base64URL and Base64")
struct Base64URLTests {
    /// RFC 4648 §10 vectors, unpadded for base64url.
    static let vectors: [(plain: String, url: String, standard: String)] = [
        ("", "", ""),
        ("f", "Zg", "Zg=="),
        ("fo", "Zm8", "Zm8="),
        ("foo", "Zm9v", "Zm9v"),
        ("foob", "Zm9vYg", "Zm9vYg=="),
        ("fooba", "Zm9vYmE", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy", "Zm9vYmFy"),
    ]

    @Test("RFC 4648 vectors encode and decode both ways")
    func rfcVectors() {
        for v in Self.vectors {
            #expect(Base64URL.encode(Array(v.plain.utf8)) == v.url)
            #expect(Base64URL.decode(v.url) == Array(v.plain.utf8))
            #expect(Base64.encode(Array(v.plain.utf8)) == v.standard)
            #expect(Base64.decode(v.standard) == Array(v.plain.utf8))
        }
    }

    @Test("the two alphabets differ exactly in characters 62 and 63")
    func alphabetDifference() {
        let bytes: [UInt8] = [0xFB, 0xFF, 0xBF]
        #expect(Base64URL.encode(bytes) == "-_-_")
        #expect(Base64.encode(bytes) == "+/+/")
        #expect(Base64URL.decode("-_-_") == bytes)
        #expect(Base64.decode("+/+/") == bytes)
    }

    @Test("every byte value and every length round-trips")
    func roundTrip() {
        var bytes: [UInt8] = []
        for length in 0..<70 {
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
            bytes.append(UInt8(truncatingIfNeeded: length &* 37 &+ 200))
        }
        let all = (0...255).map { UInt8($0) }
        #expect(Base64URL.decode(Base64URL.encode(all)) == all)
    }

    @Test(
        "base64url refuses what a lenient decoder would repair",
        arguments: [
            "Zg==",  // padding
            "Zg=",
            "Zm8=",
            "+/+/",  // standard alphabet
            "Zm9v+w",
            "Zm9v/w",
            "Zm 9v",  // whitespace
            "Zm9v\n",
            " Zm9v",
            "Zm9\tv",
            "Z",  // 4n+1 characters
            "Zm9vY",
            "Zh",  // non-canonical: "Zg" with a stray low bit
            "Zm9",  // non-canonical: "Zm8" with stray bits
            "Zm9vYmF",
            "Zm9v.",  // not in the alphabet at all
            "Zm9v\u{0}",
            "Zm9vé",
        ])
    func urlRefusals(text: String) {
        #expect(Base64URL.decode(text) == nil)
    }

    @Test(
        "standard base64 refuses bad padding, the URL alphabet, whitespace and stray bits",
        arguments: [
            "Zg=",  // padding that does not complete the quantum
            "Zm9v=",
            "Zg===",
            "Z===",
            "=",
            "Zm9v-w==",
            "Zm9v_w==",
            "Zm9v Yg==",
            "Zh==",
            "Zm9=",
            "Z",
        ])
    func standardRefusals(text: String) {
        #expect(Base64.decode(text) == nil)
    }

    @Test("standard base64 accepts missing padding, as some SDKs send it")
    func standardWithoutPadding() {
        #expect(Base64.decode("Zg") == Array("f".utf8))
        #expect(Base64.decode("Zm9vYmE") == Array("fooba".utf8))
    }

    @Test("decoding a substring and raw bytes gives the same answer as a string")
    func substringAndBytes() {
        let text = "xxZm9vYmFyxx"
        let inner = text.dropFirst(2).dropLast(2)
        #expect(Base64URL.decode(inner) == Array("foobar".utf8))
        #expect(Base64URL.decode(bytes: Array("Zm9vYmFy".utf8)) == Array("foobar".utf8))
        #expect(Base64URL.decode(bytes: Array("Zm9vYmF".utf8)) == nil)
    }

    @Test(
        "decoding into a caller's buffer gives the array decoder's answer, and refuses a buffer too small",
        arguments: [
            "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy", "Zh", "Zm9", "Zg==", "Z", "Zm9v.", "+/+/",
        ])
    func intoBuffer(text: String) {
        let input = Array(text.utf8)
        let expected = Base64URL.decode(text)
        input.withUnsafeBufferPointer { input in
            var out = [UInt8](repeating: 0xAA, count: Base64Codec.decodedCapacity(input.count))
            let count = out.withUnsafeMutableBufferPointer {
                Base64Codec.decode(buffer: input, alphabet: .url, into: $0)
            }
            #expect(count.map { Array(out.prefix($0)) } == expected)
            if let expected, !expected.isEmpty {
                var small = [UInt8](repeating: 0, count: expected.count - 1)
                let refused = small.withUnsafeMutableBufferPointer {
                    Base64Codec.decode(buffer: input, alphabet: .url, into: $0)
                }
                #expect(refused == nil)
            }
        }
    }
}
