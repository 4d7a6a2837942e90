import GatewayCore

/// Checks nghttp2 leaves to the application, so that a request the gateway would refuse over HTTP/1.1 is refused
/// over HTTP/2 too: one request, two protocols, one answer (and nothing an HTTP/1.1 upstream could read otherwise).
enum HTTP2RequestChecks {
    /// Longest `:path`, as HTTP/1.1's request-line limit (414 beyond).
    static let maxPathBytes = 8 * 1024

    /// RFC 9112 §3.2.1 origin-form (`absolute-path [ "?" query ]`), or `*` for OPTIONS: the bytes HTTP/1.1's
    /// parser accepts in a target (`isTargetByte` there: RFC 3986's, plus `[`, `]` and `|`, which Auth0 SDKs send
    /// unencoded in user ids such as `auth0|123`), `%` followed by two hex digits. No `#` (a fragment is never
    /// sent), no space, no control or non-ASCII byte.
    static func isOriginForm(_ path: String, method: String) -> Bool {
        if path == "*" { return method == "OPTIONS" }
        var path = path
        return path.withUTF8 { bytes in
            guard bytes.first == UInt8(ascii: "/") else { return false }
            var i = 0
            while i < bytes.count {
                let byte = bytes[i]
                if byte == UInt8(ascii: "%") {
                    guard i + 2 < bytes.count, hexDigitValue(bytes[i + 1]) != nil, hexDigitValue(bytes[i + 2]) != nil
                    else { return false }
                    i += 3
                    continue
                }
                guard uriCharacters[Int(byte)] else { return false }
                i += 1
            }
            return true
        }
    }

    /// unreserved / sub-delims / ":" / "@" / "/" / "?" (RFC 3986 §3.3, §3.4), and `[`, `]`, `|` as above.
    private static let uriCharacters: [Bool] = (0..<256).map { b in
        switch UInt8(b) {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        default: return "-._~!$&'()*+,;=:@/?[]|".utf8.contains(UInt8(b))
        }
    }

    /// reg-name: unreserved / sub-delims / pct-encoded (the `%` is let through here; a bad escape names no host).
    private static let regNameCharacters: [Bool] = (0..<256).map { b in
        switch UInt8(b) {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        default: return "-._~!$&'()*+,;=%".utf8.contains(UInt8(b))
        }
    }

    /// RFC 9113 §8.3.1 and RFC 3986 §3.2: `:authority` is `host [ ":" port ]` for http(s); userinfo is not
    /// allowed, the port is 1 to 5 digits up to 65535, and the host is a reg-name, IPv4 or bracketed IP literal.
    static func isAuthority(_ authority: String) -> Bool {
        var authority = authority
        return authority.withUTF8 { bytes in
            guard !bytes.isEmpty else { return false }
            var hostEnd = bytes.count
            var i = 0
            if bytes[0] == UInt8(ascii: "[") {
                guard let close = bytes.firstIndex(of: UInt8(ascii: "]")), close > 1 else { return false }
                for j in 1..<close {
                    let b = bytes[j]
                    guard hexDigitValue(b) != nil || b == UInt8(ascii: ":") || b == UInt8(ascii: ".") else {
                        return false
                    }
                }
                i = close + 1
                hostEnd = i
                guard i == bytes.count || bytes[i] == UInt8(ascii: ":") else { return false }
            } else {
                while i < bytes.count && bytes[i] != UInt8(ascii: ":") {
                    guard regNameCharacters[Int(bytes[i])] else { return false }
                    i += 1
                }
                hostEnd = i
                guard hostEnd > 0 else { return false }
            }
            guard hostEnd < bytes.count else { return true }
            // ":" port
            let digits = bytes[(hostEnd + 1)...]
            guard !digits.isEmpty, digits.count <= 5 else { return false }
            var port = 0
            for d in digits {
                guard (0x30...0x39).contains(d) else { return false }
                port = port * 10 + Int(d - 0x30)
            }
            return port >= 1 && port <= 65_535
        }
    }

    /// Whether a field value is UTF-8: HTTP/1.1 refuses other bytes (obs-text) with 400, and a value must not be
    /// altered on its way up (a lossy conversion would replace them with U+FFFD). ASCII is checked eight bytes
    /// at a time; only values with a high byte are decoded.
    static func isUTF8(_ value: UnsafePointer<UInt8>, count: Int) -> Bool {
        var i = 0
        var high: UInt64 = 0
        while i + 8 <= count {
            high |= UnsafeRawPointer(value + i).loadUnaligned(as: UInt64.self)
            i += 8
        }
        while i < count {
            high |= UInt64(value[i])
            i += 1
        }
        guard high & 0x8080_8080_8080_8080 != 0 else { return true }
        var iterator = UnsafeBufferPointer(start: value, count: count).makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}
