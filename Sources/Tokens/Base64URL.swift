/// Strict base64url (RFC 4648 §5) as JWS compact serialization uses it (RFC 7515 §2, Appendix C).
///
/// Decoding refuses everything a lenient decoder would repair, so that one token has exactly one encoding and a
/// token cannot be varied without changing its bytes: no `=` padding, no `+` or `/`, no whitespace, no length of
/// the form 4n+1, and no non-zero bits left over in the last character (non-canonical encodings).
public enum Base64URL {
    /// The decoded bytes, or nil when `text` is not canonical unpadded base64url. The empty string decodes to `[]`.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        decode(bytes: text.utf8)
    }

    /// Decodes raw ASCII bytes under the same rules as the string form.
    public static func decode(bytes: some Collection<UInt8>) -> [UInt8]? {
        Base64Codec.decode(bytes, alphabet: .url)
    }

    /// Unpadded base64url text of `bytes`.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        Base64Codec.encode(Array(bytes), alphabet: .url, pad: false)
    }
}

/// Standard base64 (RFC 4648 §4), for headers such as `Auth0-Client` that SDKs send with `btoa`.
///
/// Decoding takes the standard alphabet only; `=` padding may be present (then it must be exactly right) or
/// absent; whitespace, characters outside the alphabet and non-canonical trailing bits are refused.
public enum Base64 {
    /// The decoded bytes, or nil when `text` is not canonical standard base64.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        Base64Codec.decode(text.utf8, alphabet: .standard)
    }

    /// Padded standard base64 text of `bytes`.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        Base64Codec.encode(Array(bytes), alphabet: .standard, pad: true)
    }
}

enum Base64Codec {
    enum Alphabet {
        case url
        case standard

        var characters: [UInt8] {
            switch self {
            case .url: return Base64Codec.urlCharacters
            case .standard: return Base64Codec.standardCharacters
            }
        }
    }

    static let standardCharacters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static let urlCharacters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// 0xFF marks a byte outside the alphabet.
    static let urlTable: [UInt8] = table(for: urlCharacters)
    static let standardTable: [UInt8] = table(for: standardCharacters)

    private static func table(for characters: [UInt8]) -> [UInt8] {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in characters.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }

    static func decode(_ input: some Collection<UInt8>, alphabet: Alphabet) -> [UInt8]? {
        if let result = input.withContiguousStorageIfAvailable({ decode(buffer: $0, alphabet: alphabet) }) {
            return result
        }
        return Array(input).withUnsafeBufferPointer { decode(buffer: $0, alphabet: alphabet) }
    }

    static func decode(buffer input: UnsafeBufferPointer<UInt8>, alphabet: Alphabet) -> [UInt8]? {
        guard let (count, outCount) = decodedLength(input, alphabet: alphabet) else { return nil }
        var valid = true
        let out = [UInt8](unsafeUninitializedCapacity: outCount) { out, initialized in
            valid = decode(UnsafeBufferPointer(rebasing: input[..<count]), alphabet: alphabet, into: out.baseAddress)
            initialized = valid ? outCount : 0
        }
        return valid ? out : nil
    }

    /// Decodes into `out` (at least `decodedCapacity(input.count)` bytes) instead of a new array, for callers
    /// that only read the bytes while the buffer lives: the number of bytes written, or nil under the same rules.
    static func decode(
        buffer input: UnsafeBufferPointer<UInt8>, alphabet: Alphabet, into out: UnsafeMutableBufferPointer<UInt8>
    ) -> Int? {
        guard let (count, outCount) = decodedLength(input, alphabet: alphabet), outCount <= out.count,
            decode(UnsafeBufferPointer(rebasing: input[..<count]), alphabet: alphabet, into: out.baseAddress)
        else { return nil }
        return outCount
    }

    /// The most bytes `count` characters can decode to.
    static func decodedCapacity(_ count: Int) -> Int { count / 4 * 3 + 2 }

    /// The characters to decode (padding removed) and the bytes they give, or nil when the length or the
    /// padding is wrong.
    private static func decodedLength(_ input: UnsafeBufferPointer<UInt8>, alphabet: Alphabet) -> (Int, Int)? {
        var count = input.count
        if alphabet == .standard {
            // Padding is optional, but when present it must complete the last quantum exactly.
            var padding = 0
            while padding < count, input[count - 1 - padding] == UInt8(ascii: "=") { padding += 1 }
            if padding > 0 {
                guard padding <= 2, count % 4 == 0 else { return nil }
                count -= padding
            }
        }
        // A lone final character carries only 6 bits: never a whole byte.
        let rest = count % 4
        guard rest != 1 else { return nil }
        return (count, count / 4 * 3 + (rest == 0 ? 0 : rest - 1))
    }

    /// Decodes `input` (no padding, a valid length) into `out`; false when a character is outside the alphabet
    /// or the last one has stray bits.
    private static func decode(
        _ input: UnsafeBufferPointer<UInt8>, alphabet: Alphabet, into out: UnsafeMutablePointer<UInt8>?
    ) -> Bool {
        let table = alphabet == .url ? urlTable : standardTable
        let count = input.count
        let rest = count % 4
        let quads = count / 4
        guard let out else { return count == 0 }
        return table.withUnsafeBufferPointer { t in
            // 0xFF marks a byte outside the alphabet; OR-ing the four values tests them all at once.
            var i = 0
            var o = 0
            for _ in 0..<quads {
                let a = t[Int(input[i])]
                let b = t[Int(input[i + 1])]
                let c = t[Int(input[i + 2])]
                let d = t[Int(input[i + 3])]
                guard (a | b | c | d) & 0x80 == 0 else { return false }
                let v = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                out[o] = UInt8(truncatingIfNeeded: v >> 16)
                out[o + 1] = UInt8(truncatingIfNeeded: v >> 8)
                out[o + 2] = UInt8(truncatingIfNeeded: v)
                i += 4
                o += 3
            }
            if rest >= 2 {
                let a = t[Int(input[i])]
                let b = t[Int(input[i + 1])]
                let c = rest == 3 ? t[Int(input[i + 2])] : 0
                // Bits past the last whole byte must be zero, or two strings would decode to the same bytes.
                let stray = rest == 2 ? b & 0x0F : c & 0x03
                if (a | b | c) & 0x80 != 0 || stray != 0 { return false }
                let v = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6
                out[o] = UInt8(truncatingIfNeeded: v >> 16)
                if rest == 3 { out[o + 1] = UInt8(truncatingIfNeeded: v >> 8) }
            }
            return true
        }
    }

    static func encode(_ bytes: [UInt8], alphabet: Alphabet, pad: Bool) -> String {
        let chars = alphabet.characters
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(chars[Int(v >> 18 & 0x3F)])
            out.append(chars[Int(v >> 12 & 0x3F)])
            out.append(chars[Int(v >> 6 & 0x3F)])
            out.append(chars[Int(v & 0x3F)])
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let v = UInt32(bytes[i]) << 16
            out.append(chars[Int(v >> 18 & 0x3F)])
            out.append(chars[Int(v >> 12 & 0x3F)])
            if pad { out.append(contentsOf: [UInt8(ascii: "="), UInt8(ascii: "=")]) }
        } else if rest == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(chars[Int(v >> 18 & 0x3F)])
            out.append(chars[Int(v >> 12 & 0x3F)])
            out.append(chars[Int(v >> 6 & 0x3F)])
            if pad { out.append(UInt8(ascii: "=")) }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
