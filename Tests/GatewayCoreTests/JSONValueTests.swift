import Testing

@testable import GatewayCore

@Suite("Strict JSON parser")
struct JSONValueTests {
    @Test(
        "valid documents parse to the expected values",
        arguments: [
            (
                #"{"a":1,"b":[true,false,null],"c":"x"}"#,
                JSONValue.object([
                    ("a", 1), ("b", [true, false, nil]), ("c", "x"),
                ])
            ),
            (#"  [ ]  "#, JSONValue.array([])),
            (#"{}"#, JSONValue.object([])),
            (#""\u00e9\ud83d\ude00\n\"\\\/""#, JSONValue.string("é😀\n\"\\/")),
            (#"-0.5e+2"#, JSONValue.number(-50)),
            (#"1600000000"#, JSONValue.number(1_600_000_000)),
            (#""plain ascii, no escapes""#, JSONValue.string("plain ascii, no escapes")),
            (#""ünïcödé""#, JSONValue.string("ünïcödé")),
        ])
    func valid(text: String, expected: JSONValue) throws {
        #expect(try JSONValue.parse(text) == expected)
    }

    @Test(
        "everything RFC 8259 does not allow is refused, and duplicate members too",
        arguments: [
            #"{"a":1,"a":2}"#, #"{"a":{"b":1,"b":1}}"#, "01", "1.", ".5", "+1", "1e", "-", "[1,]", "{\"a\":1,}",
            "{'a':1}", "\"\u{01}\"", #""\x""#, #""\ud800""#, #""\udc00""#, #""\ud800\u0041""#, "nul", "tru",
            "[1] [2]", "{\"a\" 1}", "\"unterminated", "", "NaN", "Infinity", #""\u12""#,
        ])
    func invalid(text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test(
        "integers parse to the same Double as the text conversion, on both sides of the 15-digit fast path",
        arguments: [
            "0", "-0", "7", "-7", "1795922986", "999999999999999", "-999999999999999", "1000000000000000",
            "9007199254740993", "12345678901234567890", "1.0", "1e3", "-0.0", "100000000000000000000000",
        ])
    func integers(text: String) throws {
        let parsed = try #require(try JSONValue.parse(text).doubleValue)
        let expected = try #require(Double(text))
        #expect(parsed == expected)
        #expect(parsed.sign == expected.sign)
        #expect(try JSONValue.parse("[\(text)]") == .array([.number(expected)]))
    }

    @Test("invalid UTF-8 inside a string is refused, not repaired")
    func invalidUTF8() {
        let bytes: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        #expect(throws: JSONParseError.self) { try JSONValue.parse(bytes) }
    }

    @Test("nesting deeper than the limit is refused")
    func depth() {
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep, maxDepth: 32) }
        #expect((try? JSONValue.parse(deep, maxDepth: 64)) != nil)
    }

    @Test("serialization round-trips and escapes what HTML and JSON need")
    func serialization() throws {
        let value: JSONValue = ["s": "<script>\u{2028}\"\\\n", "n": 1.5, "i": 42, "b": false, "z": nil]
        let text = value.serialized()
        #expect(!text.contains("<script>"))
        #expect(try JSONValue.parse(text) == value)
    }

    @Test("objects with many members still find duplicates")
    func manyMembers() {
        var members = (0..<40).map { "\"k\($0)\":\($0)" }
        members.append("\"k7\":0")
        let text = "{" + members.joined(separator: ",") + "}"
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    /// The word-at-a-time string scan must find a quote, a backslash, a control character or a non-ASCII byte at any
    /// offset exactly as a byte loop would: each is placed at every offset of a 0- to 24-byte ASCII run.
    @Test("strings with a special byte at every offset parse as the byte-by-byte rules say")
    func specialByteAtEveryOffset() throws {
        for length in 0...24 {
            for offset in 0..<max(length, 1) {
                var plain = Array(repeating: UInt8(ascii: "a"), count: length)
                let doc = { (body: [UInt8]) in [UInt8(ascii: "[")] + [0x22] + body + [0x22] + [UInt8(ascii: "]")] }
                #expect(try JSONValue.parse(doc(plain)) == .array([.string(String(repeating: "a", count: length))]))
                guard length > 0 else { continue }
                // An escaped quote decodes to one quote.
                var escaped = plain
                escaped.replaceSubrange(offset..<(offset + 1), with: [0x5C, 0x22])
                var expected = String(repeating: "a", count: length - 1)
                expected.insert("\"", at: expected.index(expected.startIndex, offsetBy: offset))
                #expect(try JSONValue.parse(doc(escaped)) == .array([.string(expected)]))
                // A raw control character anywhere is refused.
                for control: UInt8 in [0x00, 0x01, 0x0A, 0x1F] {
                    plain[offset] = control
                    #expect(throws: JSONParseError.self) { try JSONValue.parse(doc(plain)) }
                }
                // Valid two-byte UTF-8 is kept; a lone continuation byte is refused, not repaired.
                plain[offset] = 0xC3
                var twoByte = plain
                twoByte.insert(0xA9, at: offset + 1)
                let decoded = try #require(try JSONValue.parse(doc(twoByte)).arrayValue?.first?.stringValue)
                #expect(Array(decoded.utf8) == twoByte)
                plain[offset] = 0x80
                #expect(throws: JSONParseError.self) { try JSONValue.parse(doc(plain)) }
                // A byte at 0x7F or 0x20 is ordinary string content.
                plain[offset] = 0x7F
                #expect(try JSONValue.parse(doc(plain)).arrayValue?.first?.stringValue.map { Array($0.utf8) } == plain)
            }
        }
    }

    /// Known member names come back as literals: equal to what the bytes say, and names that differ from a known
    /// one in any byte or in length are their own text.
    @Test("member names, known or one byte away from known ones, parse to exactly their bytes")
    func knownMemberNames() throws {
        var names = KnownNames.names
        for name in KnownNames.names {
            let bytes = Array(name.utf8)
            for k in bytes.indices {
                var changed = bytes
                changed[k] ^= 0x01
                names.append(String(decoding: changed, as: UTF8.self))
            }
            names.append(name + "x")
            names.append(String(name.dropLast()))
            names.append("x" + name)
        }
        for name in names {
            let parsed = try JSONValue.parse("{\"\(name)\":1,\"z\":\"\(name)\"}")
            #expect(parsed.objectValue?.map(\.0) == [name, "z"])
            #expect(parsed[name] == .number(1))
            #expect(parsed["z"] == .string(name))
        }
        // A known name twice is still a duplicate.
        #expect(throws: JSONParseError.self) { try JSONValue.parse(#"{"iss":"a","iss":"b"}"#) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse(#"{"iss":"a","i\u0073s":"b"}"#) }
    }

    /// The escaping rules written scalar by scalar, as the serializer once was: the byte writer must agree.
    static func referenceString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "<": out += "\\u003c"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    @Test(
        "strings serialize exactly as the scalar-by-scalar rules say: every ASCII byte, at the start, middle and end",
        arguments: 0..<128)
    func everyASCIIByte(byte: Int) throws {
        let c = String(UnicodeScalar(UInt8(byte)))
        for text in [c, "ab" + c, c + "cd", "x" + c + "y" + c, String(repeating: c, count: 3)] {
            let value = JSONValue.string(text)
            #expect(value.serialized() == Self.referenceString(text))
            #expect(try JSONValue.parse(value.serializedBytes()) == value)
        }
    }

    @Test(
        "non-ASCII: copied as UTF-8 but for U+2028 and U+2029, also beside bytes that look like their start",
        arguments: [
            "\u{2028}", "a\u{2029}b", "\u{2027}\u{202A}", "é\u{2028}é", "😀<\u{2029}", "\u{2028}\u{2029}\u{2028}",
            "€", "\u{E2}\u{80}", "ünïcödé \u{7F}",
        ])
    func nonASCII(text: String) throws {
        #expect(JSONValue.string(text).serialized() == Self.referenceString(text))
        #expect(try JSONValue.parse(JSONValue.string(text).serializedBytes()) == .string(text))
    }

    @Test(
        "numbers: integers as digits with their sign, others as Swift prints them, non-finite as null",
        arguments: [
            (0, "0"), (-1, "-1"), (42, "42"), (999_999_999_999_999, "999999999999999"),
            (-999_999_999_999_999, "-999999999999999"), (1.5, "1.5"), (-0.25, "-0.25"), (1e15, "1000000000000000.0"),
            (.infinity, "null"), (.nan, "null"),
        ] as [(Double, String)])
    func numbers(value: Double, text: String) {
        #expect(JSONValue.number(value).serialized() == text)
        #expect(JSONValue.array([.number(value), .string("x")]).serialized() == "[\(text),\"x\"]")
    }
}
