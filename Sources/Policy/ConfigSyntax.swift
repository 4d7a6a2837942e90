import GatewayCore

/// A listening or connecting address: an IP literal and a port. Host names are refused so that binding
/// never depends on name resolution.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Family: Sendable, Hashable { case ipv4, ipv6 }

    /// The IP literal without brackets.
    public var host: String
    /// 0 asks the kernel for a free port (tests, demos).
    public var port: Int
    public var family: Family

    public init(host: String, port: Int, family: Family) {
        self.host = host
        self.port = port
        self.family = family
    }

    public var description: String { family == .ipv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public var isLoopback: Bool { ConfigSyntax.isLoopbackHost(host) }

    /// Whether binding both would share connections: the same port (not 0, which the kernel picks) on the same
    /// address, or with either side a wildcard (`0.0.0.0`, or `::`, which takes IPv4 too on a dual-stack host).
    /// Listeners set SO_REUSEPORT, so the kernel would not refuse the second bind: it would split one port's
    /// connections between two listeners (a TLS and a plain one, say).
    public func overlaps(_ other: SocketAddress) -> Bool {
        guard port == other.port, port != 0 else { return false }
        if host == other.host { return true }
        if isWildcardIPv6 || other.isWildcardIPv6 { return true }
        return family == other.family && (host == "0.0.0.0" || other.host == "0.0.0.0")
    }

    private var isWildcardIPv6: Bool {
        family == .ipv6
            && host.split(separator: ":", omittingEmptySubsequences: true).allSatisfy { $0.allSatisfy { $0 == "0" } }
    }

    /// Parses `host:port` or `[v6]:port`; the error is a sentence for a `ConfigError`.
    public static func parse(_ text: String) -> Result<SocketAddress, ConfigSyntax.Problem> {
        let host: Substring
        let portText: Substring
        let family: Family
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                return .failure("an IPv6 address needs a closing ']' as in [::1]:8443")
            }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return .failure("expected ':port' after ']'") }
            portText = rest.dropFirst()
            guard ConfigSyntax.isIPv6(host) else { return .failure("'\(host)' is not an IPv6 address") }
            family = .ipv6
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure("expected host:port, e.g. 127.0.0.1:8443 or [::1]:8443")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return .failure("write an IPv6 address in brackets, e.g. [::1]:8443") }
            guard ConfigSyntax.isIPv4(host) else {
                return .failure("'\(host)' is not an IP address; use an IP literal such as 127.0.0.1 or [::1]")
            }
            family = .ipv4
        }
        guard let port = ConfigSyntax.port(portText, allowZero: true) else {
            return .failure("'\(portText)' is not a port (0...65535)")
        }
        return .success(SocketAddress(host: String(host), port: port, family: family))
    }
}

/// An absolute http(s) or redis URL from the configuration, split into the parts the gateway uses.
public struct ConfigURL: Sendable, Hashable, CustomStringConvertible {
    public var scheme: String
    /// Lowercased; IPv6 literals without brackets.
    public var host: String
    /// The explicit port, else the scheme's default.
    public var port: Int
    public var hasExplicitPort: Bool
    /// Empty or starting with `/`.
    public var path: String
    public var query: String?
    /// The URL as written.
    public var text: String

    public var description: String { text }

    public var isLoopback: Bool { ConfigSyntax.isLoopbackHost(host) }

    /// The database a `redis://host:port[/N]` URL names: nil for none (no path, or `/`), else N in 0...1,000,000;
    /// failure for any other path. The loader refuses such a URL at its line; the Redis store reads the number.
    public func redisDatabase() -> Result<Int?, ConfigSyntax.Problem> {
        if path.isEmpty || path == "/" { return .success(nil) }
        guard let n = Int(path.dropFirst()), n >= 0, n <= 1_000_000 else {
            return .failure("the path must be empty or a database number (0 to 1000000), e.g. redis://host:6379/2")
        }
        return .success(n)
    }

    /// `host[:port]` as sent in `Host` / `:authority`.
    public var authority: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return hasExplicitPort ? "\(h):\(port)" : h
    }

    /// The URL with its query replaced, for descriptions that must not leak a key passed as a parameter.
    public var redacted: String {
        var out = "\(scheme)://\(authority)\(path)"
        if query != nil { out += "?<redacted>" }
        return out
    }

    public static func parse(_ text: String, schemes: [String: Int]) -> Result<ConfigURL, ConfigSyntax.Problem> {
        guard let sep = text.firstRange(of: "://") else {
            return .failure("expected an absolute URL such as https://host")
        }
        let scheme = String(text[..<sep.lowerBound]).asciiLowercased
        guard let defaultPort = schemes[scheme] else {
            return .failure("the scheme must be \(schemes.keys.sorted().joined(separator: " or "))")
        }
        var rest = text[sep.upperBound...]
        if rest.contains("#") { return .failure("a URL here has no fragment") }
        var query: String?
        if let q = rest.firstIndex(of: "?") {
            query = String(rest[rest.index(after: q)...])
            rest = rest[..<q]
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let path = String(rest[slash...])
        if authority.contains("@") {
            return .failure(
                "credentials in a URL are refused; use a secret reference ({ env: NAME } or { file: path })")
        }
        var hostText = authority
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return .failure("unclosed '[' in the host") }
            hostText = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return .failure("unexpected text after ']'") }
                portText = after.dropFirst()
            }
            guard ConfigSyntax.isIPv6(hostText) else { return .failure("'\(hostText)' is not an IPv6 address") }
        } else {
            if let colon = authority.lastIndex(of: ":") {
                hostText = authority[..<colon]
                portText = authority[authority.index(after: colon)...]
            }
            let lowered = String(hostText).asciiLowercased
            guard ConfigSyntax.isIPv4(lowered[...]) || ConfigSyntax.isHostName(lowered) else {
                return .failure("'\(hostText)' is not a host name or IP address")
            }
        }
        var port = defaultPort
        if let portText {
            guard let p = ConfigSyntax.port(portText, allowZero: false) else {
                return .failure("'\(portText)' is not a port (1...65535)")
            }
            port = p
        }
        for byte in path.utf8 where byte <= 0x20 || byte == 0x7F {
            return .failure("the path contains a space or control character")
        }
        return .success(
            ConfigURL(
                scheme: scheme, host: String(hostText).asciiLowercased, port: port, hasExplicitPort: portText != nil,
                path: path, query: query, text: text))
    }
}

/// The small grammars the configuration uses, each as a pure function.
public enum ConfigSyntax {
    /// A validation failure message; a string literal converts to it.
    public struct Problem: Error, Sendable, Equatable, ExpressibleByStringInterpolation, CustomStringConvertible {
        public var message: String
        public init(stringLiteral value: String) { self.message = value }
        public init(stringInterpolation: DefaultStringInterpolation) {
            self.message = String(stringInterpolation: stringInterpolation)
        }
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    static func port(_ text: Substring, allowZero: Bool) -> Int? {
        guard !text.isEmpty, text.count <= 5, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = Int(text), value <= 65535, allowZero || value > 0
        else { return nil }
        return value
    }

    /// Dotted-quad IPv4 without leading zeros (which some libcs read as octal).
    public static func isIPv4(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let value = Int(part), value <= 255, part.count == 1 || part.first != "0"
            else { return false }
        }
        return true
    }

    /// RFC 4291 text form, with an optional trailing IPv4 part; zone identifiers are refused.
    public static func isIPv6(_ text: Substring) -> Bool {
        guard !text.isEmpty, !text.contains("%") else { return false }
        let groups = text.split(separator: "::", omittingEmptySubsequences: false)
        guard groups.count <= 2 else { return false }
        let compressed = groups.count == 2
        var count = 0
        for (gi, group) in groups.enumerated() {
            if group.isEmpty { continue }
            let pieces = group.split(separator: ":", omittingEmptySubsequences: false)
            for (pi, piece) in pieces.enumerated() {
                if gi == groups.count - 1, pi == pieces.count - 1, piece.contains(".") {
                    guard isIPv4(piece) else { return false }
                    count += 2
                    continue
                }
                guard !piece.isEmpty, piece.count <= 4, piece.utf8.allSatisfy(isHexDigit) else { return false }
                count += 1
            }
        }
        return compressed ? count <= 7 : count == 8
    }

    static func isHexDigit(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46)
    }

    /// A lowercase DNS host name: labels of a-z, 0-9 and '-', 1...63 bytes, not starting or ending with '-',
    /// at most 253 bytes in all, no trailing dot. One label (`localhost`) is allowed.
    public static func isHostName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard !label.isEmpty, label.utf8.count <= 63, label.first != "-", label.last != "-" else { return false }
            for b in label.utf8 where !((b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D) {
                return false
            }
        }
        // An all-numeric last label would read as an IPv4 address to some resolvers.
        return !(labels.last?.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } ?? true)
    }

    /// Why `text` is not a tenant domain, or nil when it is one.
    public static func domainProblem(_ text: String) -> Problem? {
        if text.contains("://") || text.contains("/") { return "write the host name only, without scheme or path" }
        if text.contains(":") { return "write the host name only, without a port" }
        if text.hasSuffix(".") { return "write the host name without a trailing dot" }
        if text != text.asciiLowercased { return "domains are written in lowercase" }
        if !isHostName(text) { return "'\(text)' is not a valid host name" }
        return nil
    }

    public static func isLoopbackHost(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        return host.hasPrefix("127.") && isIPv4(host[...])
    }

    /// An environment variable name: a letter or '_' then letters, digits and '_'.
    public static func isEnvironmentName(_ text: String) -> Bool {
        guard let first = text.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
        return text.utf8.allSatisfy { b in
            (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F
        }
    }

    /// An RFC 9110 field-name token.
    public static func isHeaderName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy(isTokenByte)
    }

    /// Why a header named `name` cannot be configured for a webhook sink, or nil when it can.
    ///
    /// Connection-level fields (RFC 9110 §7.6.1, RFC 9112 §6-7) and framing belong to the HTTP client; a
    /// configured value would be ignored, sent twice or break the message. `Content-Type` follows `format` and
    /// `Authorization` has its own key, so each has one source.
    public static func webhookHeaderNameProblem(_ name: String) -> Problem? {
        guard isHeaderName(name) else { return "'\(name.prefix(80))' is not a header name (an RFC 9110 token)" }
        let lowered = name.asciiLowercased
        if framingHeaderNames.contains(lowered) || lowered == "proxy-authorization" {
            return "'\(name)' is set by the HTTP client for each connection or message; it cannot be configured"
        }
        switch lowered {
        case "content-type": return "Content-Type follows the sink's format; it cannot be configured"
        case "authorization": return "write the Authorization value under the sink's authorization key"
        default: return nil
        }
    }

    /// Fields that frame a message or route it on its connection (RFC 9110 §7.6.1, RFC 9112 §6-7).
    static let framingHeaderNames: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te",
        "trailer", "upgrade", "expect", "content-encoding",
    ]

    /// Why `name` cannot carry the client's IP on the way up, or nil. The gateway writes that header itself after
    /// removing the client's copies, so a name that frames or routes the message (a second Content-Length or
    /// Host is a request-smuggling shape, RFC 9112 §6.3), carries credentials, or that the gateway writes
    /// anyway would reach the tenant twice or wrong.
    public static func clientIPHeaderNameProblem(_ name: String) -> Problem? {
        guard isHeaderName(name) else { return "'\(name.prefix(80))' is not a header name (an RFC 9110 token)" }
        let lowered = name.asciiLowercased
        if framingHeaderNames.contains(lowered) || lowered == "content-type" {
            return "'\(name)' frames or routes the request; it cannot carry the client's IP"
        }
        switch lowered {
        case "authorization", "proxy-authorization", "cookie", "cname-api-key", "dpop":
            return "'\(name)' carries credentials; it cannot carry the client's IP"
        case "via", "x-forwarded-proto", "x-forwarded-host", "x-request-id":
            return "the gateway writes '\(name)' itself; it cannot carry the client's IP"
        default: return nil
        }
    }

    /// An RFC 9110 §5.5 field value: no control character but horizontal tab (so no CR, LF or NUL that could end
    /// the field early or split the request).
    public static func isFieldValue(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }

    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }

    /// An RFC 6749 §3.3 scope-token.
    public static func isScopeToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 == 0x21 || (0x23...0x5B).contains($0) || (0x5D...0x7E).contains($0) }
    }

    /// An RFC 6901 JSON pointer: empty, or `/`-separated tokens where `~` only starts `~0` or `~1`.
    public static func isJSONPointer(_ text: String) -> Bool {
        if text.isEmpty { return true }
        guard text.hasPrefix("/") else { return false }
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "~") {
                guard i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "0") || bytes[i + 1] == UInt8(ascii: "1")
                else { return false }
                i += 1
            }
            i += 1
        }
        return true
    }

    /// An Allowed Origins entry without its path, query and fragment, which the tenant's rules say are not part
    /// of an origin: `https://app.example.com/` (as copied from an address bar) stands for
    /// `https://app.example.com`. Anything without `://` is returned as it is, for `originProblem` to name.
    public static func originIgnoringPath(_ text: String) -> String {
        guard let sep = text.firstRange(of: "://") else { return text }
        let rest = text[sep.upperBound...]
        guard let cut = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) else { return text }
        return String(text[..<cut])
    }

    /// Why `text`, an Allowed Origins entry without its path, query and fragment (`originIgnoringPath`), is not an
    /// origin, or nil when it is one.
    ///
    /// The tenant's rules: scheme http or https, a host and optional port;
    /// at most one `*`, inside the left-most label (with an optional prefix and suffix there), and at least
    /// two labels after it, so `https://*.com` and `https://a.*.example.com` are refused.
    public static func originProblem(_ text: String) -> Problem? {
        guard let sep = text.firstRange(of: "://") else { return "an origin is scheme://host[:port]" }
        let scheme = text[..<sep.lowerBound]
        if scheme != scheme.lowercased(), ["http", "https"].contains(scheme.lowercased()) {
            return "write the scheme in lowercase, as browsers send it"
        }
        guard scheme == "http" || scheme == "https" else { return "the scheme of an origin must be http or https" }
        let rest = text[sep.upperBound...]
        if rest.contains("@") { return "an origin has no user information" }
        var host = rest
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]"), isIPv6(rest[rest.index(after: rest.startIndex)..<close]) else {
                return "'\(rest)' is not a valid IPv6 origin"
            }
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty, !(after.hasPrefix(":") && port(after.dropFirst(), allowZero: false) != nil) {
                return "invalid port"
            }
            return nil
        }
        if let colon = rest.lastIndex(of: ":") {
            guard port(rest[rest.index(after: colon)...], allowZero: false) != nil else { return "invalid port" }
            host = rest[..<colon]
        }
        if host != Substring(String(host).asciiLowercased) { return "write the host in lowercase, as browsers send it" }
        let stars = host.filter { $0 == "*" }.count
        if stars == 0 {
            return isIPv4(host) || isHostName(String(host)) ? nil : "'\(host)' is not a valid host"
        }
        guard stars == 1 else { return "an origin may contain one '*' only" }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        guard let first = labels.first, first.contains("*") else {
            return "'*' is allowed only in the left-most label of the host"
        }
        guard labels.count >= 3 else {
            return "a wildcard needs at least two labels after it, as in https://*.example.com"
        }
        let stem = first.replacingStar()
        guard isHostName(([stem] + labels.dropFirst().map(String.init)).joined(separator: ".")) else {
            return "'\(host)' is not a valid host pattern"
        }
        return nil
    }
}

extension Substring {
    /// The label with its `*` replaced by a letter, to validate the rest of the label.
    fileprivate func replacingStar() -> String { String(self.map { $0 == "*" ? "x" : $0 }) }
}
