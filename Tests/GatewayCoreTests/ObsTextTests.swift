import GatewayCore
import Testing

@Suite("ObsText: obs-text carried in a String without loss")
struct ObsTextTests {
    static func wire(_ string: String) -> [UInt8] { ObsText.withWireBytes(of: string) { Array($0) } }

    static func string(_ bytes: [UInt8]) -> String { bytes.withUnsafeBufferPointer(ObsText.string) }

    @Test(
        "any bytes come back as they were",
        arguments: [
            Array("plain ascii".utf8), [0x63, 0x61, 0x66, 0xE9], Array(0x80...0xFF), [0xEF], [0xEF, 0x9E],
            [0xEF, 0x9E, 0x80], [0xEF, 0x9F, 0xBF, 0x41], Array("caf\u{e9} \u{1F600}".utf8),
            // Valid UTF-8 that holds scalars of the escape block: escaped too, so it still comes back exactly.
            Array("x\u{F780}y\u{F7FF}".utf8) + [0xC3, 0xA9], [0xC3], [0xFF, 0xFE],
        ] as [[UInt8]])
    func roundTrip(_ bytes: [UInt8]) {
        #expect(Self.wire(Self.string(bytes)) == bytes)
    }

    @Test("UTF-8 without escape-block scalars is the string itself; Latin-1 is escaped")
    func representation() {
        #expect(Self.string(Array("caf\u{e9}".utf8)) == "caf\u{e9}")
        #expect(Self.string([0x63, 0x61, 0x66, 0xE9]) == "caf\u{F7E9}")
        #expect(Self.string([0x80]) == "\u{F780}")
    }

    @Test("every two-byte sequence comes back as it was")
    func everyPair() {
        for a in 0x20...0xFF {
            for b in stride(from: 0x20, through: 0xFF, by: 3) {
                let bytes = [UInt8(a), UInt8(b), 0x41]
                #expect(Self.wire(Self.string(bytes)) == bytes, "\(a) \(b)")
            }
        }
    }

    @Test("unescaping in place gives the wire bytes and their count")
    func inPlace() {
        var bytes = Array(Self.string([0x41, 0xE9, 0xFF, 0x42]).utf8)
        let count = bytes.withUnsafeMutableBufferPointer { ObsText.unescapeInPlace($0.baseAddress!, count: $0.count) }
        #expect(Array(bytes[..<count]) == [0x41, 0xE9, 0xFF, 0x42])
    }

    @Test("for a reader, escaped bytes read as their Latin-1 characters; other text is left alone")
    func latin1Text() {
        #expect(ObsText.latin1Text(Self.string([0x63, 0x61, 0x66, 0xE9])) == "caf\u{E9}")
        #expect(ObsText.latin1Text("caf\u{E9} \u{1F600}") == "caf\u{E9} \u{1F600}")
    }
}
