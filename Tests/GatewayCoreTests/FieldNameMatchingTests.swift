import GatewayCore
import Testing

/// `asciiCaseInsensitiveEquals` and `FieldNameSet` compare eight bytes at a time; these check them against the
/// byte-by-byte rule: equal bytes, or the same ASCII letter in the other case.
@Suite struct FieldNameMatchingTests {
    static func referenceEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        for (p, q) in zip(x, y) where p != q {
            let lower = p | 0x20
            guard p ^ q == 0x20, lower >= 0x61, lower <= 0x7A else { return false }
        }
        return true
    }

    static func string(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// Every pair of ASCII bytes, at a position inside a full eight-byte word and in the tail after it, of a small
    /// (inline) string and of a heap one.
    /// Names of every length from 1 to 20 (each packed differently), changed at every position: compared as strings
    /// and looked up in a set of names of every length.
    @Test func everyLengthAndPosition() {
        let base = Array("Proxy-Authorization1".utf8)
        let names = (1...20).map { Self.string(Array(base.prefix($0))) }
        let set = FieldNameSet(names)
        var mismatches: [String] = []
        for length in 1...20 {
            let original = Array(base.prefix(length))
            for position in 0..<length {
                for b: UInt8 in [original[position] ^ 0x20, original[position] ^ 0x01, 0x00, 0x7F, 0x5F, 0x40] {
                    var changed = original
                    changed[position] = b
                    let a = Self.string(original)
                    let c = Self.string(changed)
                    if a.asciiCaseInsensitiveEquals(c) != Self.referenceEquals(a, c) { mismatches.append("\(c)") }
                    if set.contains(c) != names.contains(where: { Self.referenceEquals($0, c) }) {
                        mismatches.append("set \(c)")
                    }
                }
            }
            #expect(set.contains(Self.string(original.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 })))
        }
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    @Test(arguments: [(length: 9, position: 3), (length: 9, position: 8), (length: 23, position: 16)])
    func everyASCIIBytePair(length: Int, position: Int) {
        var left = Array(repeating: UInt8(ascii: "k"), count: length)
        var right = left
        var mismatches: [String] = []
        for p in UInt8(0)..<128 {
            for q in UInt8(0)..<128 {
                left[position] = p
                right[position] = q
                let a = Self.string(left)
                let b = Self.string(right)
                if a.asciiCaseInsensitiveEquals(b) != Self.referenceEquals(a, b) { mismatches.append("\(p) \(q)") }
            }
        }
        #expect(mismatches.isEmpty)
    }

    @Test(arguments: [
        ("X-Request-Id", "x-request-id", true),
        ("Access-Control-Allow-Origin", "access-control-allow-origin", true),
        ("Access-Control-Allow-Origin", "access-control-allow-origio", false),
        ("", "", true),
        ("a", "", false),
        ("@", "`", false),
        ("[", "{", false),
        ("\u{7F}", "_", false),
        ("CAFÉ-ÀB", "café-àb", false),
        ("café-àb", "CAFé-àB", true),
        ("à", "À", false),
        (String(repeating: "Ab-", count: 30), String(repeating: "aB-", count: 30), true),
        (String(repeating: "Ab-", count: 30), String(repeating: "aB-", count: 29) + "aB_", false),
    ])
    func pairs(a: String, b: String, expected: Bool) {
        #expect(a.asciiCaseInsensitiveEquals(b) == expected)
        #expect(b.asciiCaseInsensitiveEquals(a) == expected)
        #expect(Self.referenceEquals(a, b) == expected)
    }

    /// The literal form against the byte rule, for literals of every length the hot paths use (1 to 27 bytes: the
    /// tail packing differs under 4, under 8 and past each word), with each byte changed in turn.
    @Test func literalForm() {
        let literals: [StaticString] = [
            "a", "TE", "Via", "Date", "close", "Origin", "Upgrade", "Max-Forwards", "Connection", "keep-alive",
            "X-Request-Id", "Content-Length", "X-RateLimit-Limit", "Access-Control-Request-Method",
            "Access-Control-Allow-Origin",
        ]
        var mismatches: [String] = []
        for literal in literals {
            let text = literal.description
            let original = Array(text.utf8)
            var candidates = [text, text.uppercased(), text.lowercased(), "", text + "x", String(text.dropLast())]
            for position in original.indices {
                for b: UInt8 in [original[position] ^ 0x20, original[position] ^ 0x01, 0x00, 0x7F, 0x40, 0x60] {
                    var changed = original
                    changed[position] = b
                    candidates.append(Self.string(changed))
                }
            }
            // Heap strings as well as small ones: the same bytes behind a long prefix, then cut off again.
            candidates += candidates.map { String(("#" + String(repeating: "x", count: 20) + $0).dropFirst(21)) }
            for candidate in candidates
            where candidate.asciiCaseInsensitiveEquals(literal: literal) != Self.referenceEquals(candidate, text) {
                mismatches.append("\(candidate) ~ \(text)")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    static let setNames = [
        "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "TE", "Trailer",
        "Proxy-Authenticate", "Proxy-Authorization", "x-forwarded-for", "A", "abcdefgh", "ABCDEFGHI",
        String(repeating: "long-", count: 13), String(repeating: "LONGER-", count: 11),
    ]

    @Test(arguments: [
        "connection", "CONNECTION", "keep-alive", "te", "Te", "t", "trailer", "trailers", "upgrade", "upgrad",
        "Upgradf", "X-Forwarded-For", "x-forwarded-fo", "x-forwarded-fox", "X_Forwarded-For", "a", "b", "",
        "ABCDEFGH", "abcdefgi", "abcdefghi", "abcdefgh\u{7F}", "proxy-authenticate", "proxy-authorization",
        "proxy-authorizatio", "Proxy-Authenticatf", String(repeating: "LONG-", count: 13),
        String(repeating: "long-", count: 12) + "lonG_", String(repeating: "longer-", count: 11),
        String(repeating: "long-", count: 14), "Connectio\u{E9}", "user-agent", "content-type",
    ])
    func setMembership(candidate: String) {
        let set = FieldNameSet(Self.setNames)
        let expected = Self.setNames.contains { Self.referenceEquals($0, candidate) }
        #expect(set.contains(candidate) == expected)
    }

    @Test func setOfEveryASCIIByteAtOnePosition() {
        let set = FieldNameSet(["x-Bench-Field", "x-bench-fielD", "Q"])
        var mismatches: [UInt8] = []
        for b in UInt8(0)..<128 {
            var bytes = Array("x-bench-field".utf8)
            bytes[9] = b
            let candidate = Self.string(bytes)
            let expected = set.names.contains { Self.referenceEquals($0, candidate) }
            if set.contains(candidate) != expected { mismatches.append(b) }
        }
        #expect(mismatches.isEmpty)
        #expect(!FieldNameSet([]).contains(""))
        #expect(FieldNameSet([""]).contains(""))
    }

    /// `asciiCaseInsensitiveContains` against the rule it stands for: the lowercased haystack has the needle as a
    /// substring, lowercasing ASCII letters only.
    @Test(
        "case-insensitive substring search: at the start, the end, overlapping a false start, beside non-ASCII",
        arguments: [
            ("Mobile Safari", true), ("xx MOBI", true), ("mob", false), ("mobmobi", true), ("MoBi", true),
            ("", false), ("mobı", false), ("été mobi été", true), ("m\u{0}obi", false), ("Mobj", false),
        ] as [(String, Bool)])
    func containsIgnoringCase(haystack: String, expected: Bool) {
        #expect(haystack.asciiCaseInsensitiveContains(lowercase: "mobi") == expected)
        let reference = String(decoding: haystack.utf8.map { $0 &- 0x41 < 26 ? $0 | 0x20 : $0 }, as: UTF8.self)
        #expect(Self.hasSubstring(reference, "mobi") == expected)
        #expect(haystack.asciiCaseInsensitiveContains(lowercase: ""))
    }

    static func hasSubstring(_ text: String, _ needle: String) -> Bool {
        let t = Array(text.utf8)
        let n = Array(needle.utf8)
        guard t.count >= n.count else { return false }
        return (0...(t.count - n.count)).contains { Array(t[$0..<($0 + n.count)]) == n }
    }
}
