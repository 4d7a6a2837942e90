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
                        parentKey: CORSOriginParser.key(scheme: parsed.scheme, host: parsed.host, port: parsed.port)))
            }
            return OriginPattern(
                text: text,
                kind: .exact(key: CORSOriginParser.key(scheme: parsed.scheme, host: parsed.host, port: parsed.port)))
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
    /// `scheme://host:port`, lowercase, port explicit.
    let key: String
    /// The first label and the `scheme://rest:port` key of the remainder, when the host has a dot and is a
    /// name (not an IP literal).
    let wildcardSplit: (label: Substring, parentKey: String)?

    init?(_ value: String) {
        guard let parsed = try? CORSOriginParser.parse(value, allowWildcard: false) else { return nil }
        key = CORSOriginParser.key(scheme: parsed.scheme, host: parsed.host, port: parsed.port)
        if !parsed.isIP, let dot = parsed.host.firstIndex(of: ".") {
            let parent = parsed.host[parsed.host.index(after: dot)...]
            wildcardSplit = (
                parsed.host[..<dot], CORSOriginParser.key(scheme: parsed.scheme, host: parent, port: parsed.port)
            )
        } else {
            wildcardSplit = nil
        }
    }
}

/// The shared grammar of configured patterns and request origins.
enum CORSOriginParser {
    struct Parsed {
        var scheme: String
        /// Lowercase; for a wildcard pattern, the part after the wildcard label.
        var host: String
        var port: Int
        var isIP: Bool
        var wildcard: (prefix: String, suffix: String)?
    }

    static func key<S: StringProtocol>(scheme: String, host: S, port: Int) -> String {
        scheme + "://" + host + ":" + String(port)
    }

    /// One or more characters between prefix and suffix, and no dot (the label was split at the first dot).
    static func label(_ label: Substring, matchesPrefix prefix: String, suffix: String) -> Bool {
        label.utf8.count > prefix.utf8.count + suffix.utf8.count && label.hasPrefix(prefix) && label.hasSuffix(suffix)
    }

    static func parse(_ text: String, allowWildcard: Bool) throws(OriginPatternError.Reason) -> Parsed {
        guard !text.isEmpty else { throw .empty }
        if text == "*" { throw .bareWildcard }
        if text.asciiCaseInsensitiveEquals("null") { throw .nullOrigin }
        guard !text.utf8.contains(where: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) else {
            throw .whitespace
        }
        guard let separator = text.firstRange(of: "://") else { throw .missingScheme }
        let scheme = String(text[..<separator.lowerBound]).asciiLowercased
        let defaultPort: Int
        switch scheme {
        case "https": defaultPort = 443
        case "http": defaultPort = 80
        default: throw .unsupportedScheme(String(scheme.prefix(20)))
        }
        var rest = text[separator.upperBound...]
        if let cut = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
            switch rest[cut] {
            case "/": throw .path
            case "?": throw .query
            default: throw .fragment
            }
        }
        if rest.contains("@") { throw .userInfo }
        var portText: Substring? = nil
        var isIP = false
        var host: String
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw .invalidIPv6 }
            let literal = rest[rest.index(after: rest.startIndex)..<close]
            guard !literal.isEmpty, literal.contains(":"),
                literal.utf8.allSatisfy({ isHex($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") })
            else { throw .invalidIPv6 }
            host = "[" + String(literal).asciiLowercased + "]"
            isIP = true
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .invalidIPv6 }
                portText = after.dropFirst()
            }
        } else {
            if let colon = rest.lastIndex(of: ":") {
                portText = rest[rest.index(after: colon)...]
                rest = rest[..<colon]
            }
            guard !rest.isEmpty else { throw .emptyHost }
            guard rest.utf8.allSatisfy({ $0 < 0x80 }) else { throw .nonASCIIHost }
            host = String(rest).asciiLowercased
        }
        var port = defaultPort
        if let portText {
            guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy(isDigit),
                let value = Int(portText), value >= 1, value <= 65535
            else { throw .invalidPort(String(portText.prefix(10))) }
            port = value
        }
        if isIP { return Parsed(scheme: scheme, host: host, port: port, isIP: true, wildcard: nil) }
        return try checkName(host, scheme: scheme, port: port, allowWildcard: allowWildcard)
    }

    private static func checkName(_ host: String, scheme: String, port: Int, allowWildcard: Bool)
        throws(OriginPatternError.Reason) -> Parsed
    {
        guard host.utf8.count <= 253 else { throw .hostTooLong }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        var stars = 0
        for (index, label) in labels.enumerated() {
            guard !label.isEmpty else { throw .emptyLabel }
            guard label.utf8.count <= 63 else { throw .labelTooLong }
            for c in label {
                if c == "*" {
                    stars += 1
                    guard allowWildcard else { throw .invalidHostCharacter(c) }
                    guard stars == 1 else { throw .multipleWildcards }
                    guard index == 0 else { throw .wildcardNotInLeftmostLabel }
                } else if !(c.isASCII && (c.isLetter || c.isNumber || c == "-")) {
                    throw .invalidHostCharacter(c)
                }
            }
        }
        let numericLast = labels.last.map { $0.utf8.allSatisfy(isDigit) } ?? false
        guard stars == 1 else {
            return Parsed(scheme: scheme, host: host, port: port, isIP: numericLast, wildcard: nil)
        }
        let first = labels[0]
        let star = first.firstIndex(of: "*")!
        let parent = labels.dropFirst()
        guard parent.count >= 2 else { throw .wildcardOnTopLevelDomain }
        guard !numericLast else { throw .wildcardOnIPAddress }
        return Parsed(
            scheme: scheme, host: parent.joined(separator: "."), port: port, isIP: false,
            wildcard: (String(first[..<star]), String(first[first.index(after: star)...])))
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    private static func isHex(_ b: UInt8) -> Bool {
        isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
    }
}
