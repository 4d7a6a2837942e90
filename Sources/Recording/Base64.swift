/// Base64 decoding and encoding (RFC 4648) without Foundation, for token parts and the `Auth0-Client` header.
public enum Base64 {
    /// Decodes the standard (`+/`) or URL-safe (`-_`) alphabet, padded or not. Returns nil on any other byte,
    /// on misplaced padding and on a dangling final character.
    public static func decode(_ text: Substring) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        var sawPadding = 0
        var count = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: "=") {
                sawPadding += 1
                continue
            }
            guard sawPadding == 0, let v = value(byte) else { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            count += 1
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        // A lone trailing symbol carries fewer than 8 bits: not a valid encoding.
        if count % 4 == 1 { return nil }
        if sawPadding > 0 && (count + sawPadding) % 4 != 0 { return nil }
        if sawPadding > 2 { return nil }
        return out
    }

    public static func decode(_ text: String) -> [UInt8]? { decode(text[...]) }

    private static func value(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return b - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return b - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"), UInt8(ascii: "-"): return 62
        case UInt8(ascii: "/"), UInt8(ascii: "_"): return 63
        default: return nil
        }
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let urlAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Standard alphabet with padding, or URL-safe without padding when `url` is true.
    public static func encode<Bytes: Collection>(_ bytes: Bytes, url: Bool = false) -> String
    where Bytes.Element == UInt8 {
        let table = url ? urlAlphabet : alphabet
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var it = bytes.makeIterator()
        while let a = it.next() {
            let b = it.next()
            let c = b == nil ? nil : it.next()
            let n = UInt32(a) << 16 | UInt32(b ?? 0) << 8 | UInt32(c ?? 0)
            out.append(table[Int(n >> 18 & 63)])
            out.append(table[Int(n >> 12 & 63)])
            if b != nil {
                out.append(table[Int(n >> 6 & 63)])
            } else if !url {
                out.append(UInt8(ascii: "="))
            }
            if c != nil {
                out.append(table[Int(n & 63)])
            } else if !url {
                out.append(UInt8(ascii: "="))
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
