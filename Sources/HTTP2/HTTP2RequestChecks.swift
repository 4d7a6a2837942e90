import GatewayCore

/// Checks nghttp2 leaves to the application, so that a request the gateway would refuse over HTTP/1.1 is refused
/// over HTTP/2 too: one request, two protocols, one answer (and nothing an HTTP/1.1 upstream could read otherwise).
enum HTTP2RequestChecks {
    /// Longest `:path`, as HTTP/1.1's request-line limit (414 beyond).
    static let maxPathBytes = 8 * 1024

    /// RFC 9112 §3.2.1 origin-form (`absolute-path [ "?" query ]`), or `*` for OPTIONS, in the target syntax
    /// HTTP/1.1's parser applies (`URISyntax.isValidTarget`).
    static func isOriginForm(_ path: String, method: String) -> Bool {
        if path == "*" { return method == "OPTIONS" }
        var path = path
        return path.withUTF8 { $0.first == UInt8(ascii: "/") && URISyntax.isValidTarget($0) }
    }

    /// RFC 9113 §8.3.1: `:authority` (and Host) in the syntax HTTP/1.1 requires of Host.
    static func isAuthority(_ authority: String) -> Bool {
        var authority = authority
        return authority.withUTF8 { URISyntax.isValidAuthority($0) }
    }

    /// Whether a field value is ASCII, eight bytes at a time: the usual case, taken as it is.
    static func isASCII(_ value: UnsafePointer<UInt8>, count: Int) -> Bool {
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
        return high & 0x8080_8080_8080_8080 == 0
    }
}
