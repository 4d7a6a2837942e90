/// The request-target and authority syntax both client protocols check (RFC 3986, RFC 9112 §3.2, RFC 9113
/// §8.3.1): one definition, so a request refused over HTTP/1.1 is refused over HTTP/2 too.
///
/// Character classes are 128-bit sets in constants, so the hot loops need no global table (a global `let` costs a
/// lazy-initialisation check on access) and no branchy switch. The per-byte tests are `@inlinable`: other modules
/// (the HTTP/1 parser and serializer) test every byte of every field name with them, and a call per byte cost
/// more than the test itself.
public enum URISyntax {
    /// Membership of an ASCII byte in a 128-bit set given as two words (bit `b` of `lo` for b < 64, of `hi` above).
    @inlinable @inline(__always)
    public static func inSet(_ b: UInt8, _ lo: UInt64, _ hi: UInt64) -> Bool {
        let word = b < 64 ? lo : hi
        return b < 128 && (word >> UInt64(b & 63)) & 1 != 0
    }

    /// A byte allowed as itself in a request target's path or query.
    ///
    /// Visible ASCII minus what RFC 3986 excludes and real servers refuse: `"` `<` `>` `\` `^` `` ` `` `{` `}`, and
    /// `#` (a fragment is never sent). `|` is outside RFC 3986 too, but official Auth0 SDKs send user ids such as
    /// `auth0|123` unencoded, so it is accepted. `%` is in the set; the caller checks that it starts a pct-encoding.
    @inlinable @inline(__always)
    public static func isTargetByte(_ b: UInt8) -> Bool { inSet(b, 0xAFFF_FFF2_0000_0000, 0x57FF_FFFE_AFFF_FFFF) }

    /// reg-name characters of RFC 3986 §3.2.2: unreserved and sub-delims (`%` handled by the caller).
    @inlinable @inline(__always)
    public static func isRegNameByte(_ b: UInt8) -> Bool { inSet(b, 0x2BFF_7FD2_0000_0000, 0x47FF_FFFE_87FF_FFFE) }

    /// Every byte a target byte, and every `%` followed by two hex digits.
    public static func isValidTarget(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "%") {
                guard i + 2 < bytes.count, hexDigitValue(bytes[i + 1]) != nil, hexDigitValue(bytes[i + 2]) != nil
                else { return false }
                i &+= 3
                continue
            }
            guard isTargetByte(b) else { return false }
            i &+= 1
        }
        return true
    }

    /// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a reg-name (with valid pct-encodings), IPv4 or
    /// bracketed IP literal, no userinfo; a port of up to 5 digits, at most 65535 (`port = *DIGIT`, so an empty
    /// one after the `:` is allowed, meaning the scheme's default).
    public static func isValidAuthority(_ buf: UnsafeBufferPointer<UInt8>) -> Bool {
        let end = buf.count
        var i = 0
        guard i < end else { return false }
        if buf[i] == UInt8(ascii: "[") {
            i += 1
            let hostStart = i
            while i < end && buf[i] != UInt8(ascii: "]") {
                let b = buf[i]
                // Hex digits, `:` and `.` for IPv6; `v`/`V` for IPvFuture.
                guard hexDigitValue(b) != nil || b == UInt8(ascii: ":") || b == UInt8(ascii: ".") || b | 0x20 == 0x76
                else { return false }
                i += 1
            }
            guard i < end, i > hostStart else { return false }
            i += 1
        } else {
            let hostStart = i
            while i < end && buf[i] != UInt8(ascii: ":") {
                let b = buf[i]
                if b == UInt8(ascii: "%") {
                    guard i + 2 < end, hexDigitValue(buf[i + 1]) != nil, hexDigitValue(buf[i + 2]) != nil else {
                        return false
                    }
                    i += 3
                    continue
                }
                guard isRegNameByte(b) else { return false }
                i += 1
            }
            guard i > hostStart else { return false }
        }
        guard i < end else { return true }
        guard buf[i] == UInt8(ascii: ":") else { return false }
        i += 1
        guard end - i <= 5 else { return false }
        var port = 0
        while i < end {
            let b = buf[i]
            guard b >= 0x30 && b <= 0x39 else { return false }
            port = port * 10 + Int(b - 0x30)
            i += 1
        }
        return port <= 65_535
    }
}
