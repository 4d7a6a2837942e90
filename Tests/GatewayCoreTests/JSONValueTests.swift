import GatewayCore
import Testing

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
}
