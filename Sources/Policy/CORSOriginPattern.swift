/// One entry of a client's Allowed Origins, with the tenant's wildcard rules (endpoints.md, "CORS: Allowed
/// Origins semantics").
///
/// Two forms:
/// - exact: `scheme://host[:port]`, scheme `http` or `https`; scheme and host compare case-insensitively
///   and a default port (80 for http, 443 for https) equals no port;
/// - wildcard: one `*` in the left-most host label, optionally with a prefix and/or suffix
///   (`https://*.example.com`, `https://pre-*-suf.example.com`). The `*` stands for one or more characters
///   of exactly ONE label: `https://*.example.com` matches `https://a.example.com`, not
///   `https://a.b.example.com` nor `https://example.com`. At least two labels must follow the wildcard
///   label (`https://*.com` is refused) and the wildcard cannot sit in a later label
///   (`https://a.*.example.com` is refused).
///
/// Never allowed: `*` alone, `null`, paths (a trailing `/` included), queries, fragments, user info,
/// other schemes, non-ASCII hosts (write the `xn--` form), wildcards on IP addresses.
public struct OriginPattern: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// Normalised `scheme://host:port`, port always explicit.
        case exact(key: String)
        /// The `*` label's prefix and suffix, and the normalised `scheme://parent:port` the rest must equal.
        case wildcard(prefix: String, suffix: String, parentKey: String)
    }

    /// The text as configured.
    public let text: String
    public let kind: Kind

    public var description: String { text }

    /// Parses one configured origin. The error's `reason` explains the refusal (for `check`).
    public static func parse(_ text: String) throws(OriginPatternError) -> OriginPattern {
        do {
            let parsed = try CORSOriginParser.parse(text, allowWildcard: true)
            if let wildcard = parsed.wildcard {
                return OriginPattern(
                    text: text,
                    kind: .wildcard(
                        prefix: wildcard.prefix, suffix: wildcard.suffix,
                        parentKey: parsed.key(hostFrom: parsed.host.lowerBound)))
            }
            return OriginPattern(
                text: text,
                kind: .exact(key: parsed.key(hostFrom: parsed.host.lowerBound)))
        } catch {
            throw OriginPatternError(text: text, reason: error)
        }
    }

    /// Whether a request's `Origin` value matches (one-off check; `CORSPolicy` precompiles many patterns).
    public func matches(origin: String) -> Bool {
        guard let parsed = CORSRequestOrigin(origin) else { return false }
        switch kind {
        case .exact(let key): return parsed.key == key
        case .wildcard(let prefix, let suffix, let parentKey):
            guard let split = parsed.wildcardSplit, split.parentKey == parentKey else { return false }
            return CORSOriginParser.label(split.label, matchesPrefix: prefix, suffix: suffix)
        }
    }
}

/// Why an allowed-origin entry was refused.
public struct OriginPatternError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Error, Sendable, Equatable, CustomStringConvertible {
        case empty
        case whitespace
        case bareWildcard
        case nullOrigin
        case missingScheme
        case unsupportedScheme(String)
        case path
        case query
        case fragment
        case userInfo
        case emptyHost
        case nonASCIIHost
        case invalidHostCharacter(Character)
        case emptyLabel
        case labelTooLong
        case hostTooLong
        case invalidPort(String)
        case multipleWildcards
        case wildcardNotInLeftmostLabel
        case wildcardOnTopLevelDomain
        case wildcardOnIPAddress
        case invalidIPv6

        public var description: String {
            switch self {
            case .empty: return "the origin is empty"
            case .whitespace: return "an origin contains no whitespace"
            case .bareWildcard:
                return "'*' alone would allow every site; list the origins (wildcards only as '*.domain')"
            case .nullOrigin: return "the 'null' origin (sandboxed frames, file: pages) is never allowed"
            case .missingScheme: return "an origin starts with 'https://' or 'http://'"
            case .unsupportedScheme(let scheme): return "scheme '\(scheme)' is not allowed (only http and https)"
            case .path: return "an origin has no path (not even a trailing '/'): use scheme://host[:port]"
            case .query: return "an origin has no query ('?...')"
            case .fragment: return "an origin has no fragment ('#...')"
            case .userInfo: return "an origin has no user info ('user@')"
            case .emptyHost: return "the host is empty"
            case .nonASCIIHost: return "the host is not ASCII: write the punycode ('xn--') form a browser sends"
            case .invalidHostCharacter(let c): return "the host contains '\(c)' (letters, digits, '-' and '.' only)"
            case .emptyLabel: return "the host has an empty label ('..', or a leading or trailing '.')"
            case .labelTooLong: return "a host label is longer than 63 characters"
            case .hostTooLong: return "the host is longer than 253 characters"
            case .invalidPort(let port): return "port '\(port)' is not a number from 1 to 65535"
            case .multipleWildcards: return "only one '*' is allowed"
            case .wildcardNotInLeftmostLabel: return "'*' may only appear in the left-most host label"
            case .wildcardOnTopLevelDomain:
                return "'*' needs at least two labels after it ('https://*.example.com', not 'https://*.com')"
            case .wildcardOnIPAddress: return "'*' cannot stand for part of an IP address"
            case .invalidIPv6: return "the IPv6 literal is malformed (use '[...]' with hex digits and ':')"
            }
        }
    }

    public var text: String
    public var reason: Reason

    public init(text: String, reason: Reason) {
        self.text = text
        self.reason = reason
    }

    public var description: String { "invalid allowed origin '\(text)': \(reason)" }
}

/// A request's `Origin` header value, normalised for lookups. Nil for `null`, malformed values and wildcards.
struct CORSRequestOrigin {
    let parsed: CORSOriginParser.Parsed
    /// `scheme://host:port`, lowercase, port explicit.
    let key: String

    init?(_ value: String) {
        guard let parsed = try? CORSOriginParser.parse(value, allowWildcard: false) else { return nil }
        self.parsed = parsed
        key = parsed.key(hostFrom: parsed.host.lowerBound)
    }

    /// The first host label and the `scheme://rest:port` key of the remainder, when the host is a name with a
    /// dot (never for IP literals). Computed only when a wildcard could match.
    var wildcardSplit: (label: ArraySlice<UInt8>, parentKey: String)? {
        guard !parsed.isIP, let dot = parsed.firstDot else { return nil }
        return (parsed.bytes[parsed.host.lowerBound..<dot], parsed.key(hostFrom: dot + 1))
    }
}

/// The shared grammar of configured patterns and request origins, on UTF-8 bytes (every valid origin is
/// ASCII; working on one lowercased byte array keeps a decision to a few allocations).
enum CORSOriginParser {
    struct Parsed {
        /// `"https"` or `"http"`.
        var scheme: String
        /// The input, ASCII-lowercased.
        var bytes: [UInt8]
        /// The host in `bytes` (brackets included for IPv6); for a wildcard pattern, the part after the
        /// wildcard label.
        var host: Range<Int>
        var port: Int
        var isIP: Bool
        /// Index in `bytes` of the first `.` of `host`.
        var firstDot: Int?
        var wildcard: (prefix: String, suffix: String)?

        /// `scheme://bytes[from..<host.upperBound]:port`, built in one allocation.
        func key(hostFrom from: Int) -> String {
            let digits = String(port)
            let count = scheme.utf8.count + 3 + (host.upperBound - from) + 1 + digits.utf8.count
            return String(unsafeUninitializedCapacity: count) { out in
                var i = 0
                for c in scheme.utf8 {
                    out[i] = c
                    i += 1
                }
                out[i] = UInt8(ascii: ":")
                out[i + 1] = UInt8(ascii: "/")
                out[i + 2] = UInt8(ascii: "/")
                i += 3
                for j in from..<host.upperBound {
                    out[i] = bytes[j]
                    i += 1
                }
                out[i] = UInt8(ascii: ":")
                i += 1
                for c in digits.utf8 {
                    out[i] = c
                    i += 1
                }
                return i
            }
        }
    }

    /// One or more characters between prefix and suffix; the label never contains a dot.
    static func label(_ label: ArraySlice<UInt8>, matchesPrefix prefix: String, suffix: String) -> Bool {
        let p = prefix.utf8
        let s = suffix.utf8
        guard label.count > p.count + s.count else { return false }
        return label.starts(with: p) && label.reversed().starts(with: s.reversed())
    }

    static func parse(_ text: String, allowWildcard: Bool) throws(OriginPatternError.Reason) -> Parsed {
        var b = Array(text.utf8)
        let n = b.count
        guard n > 0 else { throw .empty }
        for i in 0..<n where b[i] >= 0x41 && b[i] <= 0x5A { b[i] |= 0x20 }
        if n == 1, b[0] == UInt8(ascii: "*") { throw .bareWildcard }
        if b.elementsEqual("null".utf8) { throw .nullOrigin }
        guard !b.contains(where: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) else { throw .whitespace }
        var separator = -1
        var i = 0
        while i + 2 < n {
            if b[i] == UInt8(ascii: ":"), b[i + 1] == UInt8(ascii: "/"), b[i + 2] == UInt8(ascii: "/") {
                separator = i
                break
            }
            i += 1
        }
        guard separator >= 0 else { throw .missingScheme }
        let scheme: String
        let defaultPort: Int
        if b[0..<separator].elementsEqual("https".utf8) {
            (scheme, defaultPort) = ("https", 443)
        } else if b[0..<separator].elementsEqual("http".utf8) {
            (scheme, defaultPort) = ("http", 80)
        } else {
            throw .unsupportedScheme(String(decoding: b[0..<separator].prefix(20), as: UTF8.self))
        }
        let start = separator + 3
        for j in start..<n {
            switch b[j] {
            case UInt8(ascii: "/"): throw .path
            case UInt8(ascii: "?"): throw .query
            case UInt8(ascii: "#"): throw .fragment
            case UInt8(ascii: "@"): throw .userInfo
            default: continue
            }
        }
        var portStart: Int? = nil
        let host: Range<Int>
        if start < n, b[start] == UInt8(ascii: "[") {
            guard let close = b[start...].firstIndex(of: UInt8(ascii: "]")) else { throw .invalidIPv6 }
            let literal = b[(start + 1)..<close]
            guard !literal.isEmpty, literal.contains(UInt8(ascii: ":")),
                literal.allSatisfy({ isHex($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") })
            else { throw .invalidIPv6 }
            host = start..<(close + 1)
            if close + 1 < n {
                guard b[close + 1] == UInt8(ascii: ":") else { throw .invalidIPv6 }
                portStart = close + 2
            }
        } else {
            var end = n
            if let colon = b[start...].lastIndex(of: UInt8(ascii: ":")) {
                portStart = colon + 1
                end = colon
            }
            guard end > start else { throw .emptyHost }
            guard b[start..<end].allSatisfy({ $0 < 0x80 }) else { throw .nonASCIIHost }
            host = start..<end
        }
        var port = defaultPort
        if let portStart {
            let digits = b[portStart...]
            guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy(isDigit) else {
                throw .invalidPort(String(decoding: digits.prefix(10), as: UTF8.self))
            }
            let value = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
            guard value >= 1, value <= 65535 else { throw .invalidPort(String(decoding: digits, as: UTF8.self)) }
            port = value
        }
        var parsed = Parsed(
            scheme: scheme, bytes: b, host: host, port: port, isIP: b[host.lowerBound] == UInt8(ascii: "["),
            firstDot: nil, wildcard: nil)
        if !parsed.isIP { try checkName(&parsed, allowWildcard: allowWildcard) }
        return parsed
    }

    /// Validates a host name's labels; sets `isIP` for dotted numbers, `firstDot`, and for a wildcard pattern
    /// narrows `host` to the part after the wildcard label.
    private static func checkName(_ parsed: inout Parsed, allowWildcard: Bool) throws(OriginPatternError.Reason) {
        let b = parsed.bytes
        let host = parsed.host
        guard host.count <= 253 else { throw .hostTooLong }
        var labelStart = host.lowerBound
        var labels = 0
        var star = -1
        var firstDot = -1
        var lastLabelNumeric = false
        for j in host.lowerBound...host.upperBound {
            if j == host.upperBound || b[j] == UInt8(ascii: ".") {
                let length = j - labelStart
                guard length > 0 else { throw .emptyLabel }
                guard length <= 63 else { throw .labelTooLong }
                if j < host.upperBound, firstDot < 0 { firstDot = j }
                if j == host.upperBound { lastLabelNumeric = b[labelStart..<j].allSatisfy(isDigit) }
                labelStart = j + 1
                labels += 1
                continue
            }
            let c = b[j]
            if c == UInt8(ascii: "*") {
                guard allowWildcard else { throw .invalidHostCharacter("*") }
                guard star < 0 else { throw .multipleWildcards }
                guard labels == 0 else { throw .wildcardNotInLeftmostLabel }
                star = j
            } else if !(isDigit(c) || (c >= 0x61 && c <= 0x7A) || c == UInt8(ascii: "-")) {
                throw .invalidHostCharacter(Character(Unicode.Scalar(c)))
            }
        }
        guard star >= 0 else {
            parsed.isIP = lastLabelNumeric
            parsed.firstDot = firstDot >= 0 ? firstDot : nil
            return
        }
        guard labels >= 3 else { throw .wildcardOnTopLevelDomain }
        guard !lastLabelNumeric else { throw .wildcardOnIPAddress }
        parsed.wildcard = (
            String(decoding: b[host.lowerBound..<star], as: UTF8.self),
            String(decoding: b[(star + 1)..<firstDot], as: UTF8.self)
        )
        parsed.host = (firstDot + 1)..<host.upperBound
        parsed.firstDot = b[parsed.host].firstIndex(of: UInt8(ascii: "."))
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    private static func isHex(_ b: UInt8) -> Bool {
        isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
    }
}
