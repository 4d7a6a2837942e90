import GatewayCore

/// Strings for the field names and values that nearly every message carries, so that parsing them makes no new
/// `String` (validation, and a heap copy for 16 bytes or more): a literal is returned only when the bytes equal it
/// exactly, case included, so the result is the same string `String(decoding:as:)` would have made.
enum CommonStrings {
    /// The literal spelled exactly as `p[0..<n]`, for common field names.
    static func fieldName(_ p: UnsafeRawPointer, _ n: Int) -> String? {
        switch n {
        case 4:
            if same(p, "Date") { return "Date" }
            if same(p, "date") { return "date" }
            if same(p, "Host") { return "Host" }
            if same(p, "host") { return "host" }
            if same(p, "Vary") { return "Vary" }
            if same(p, "vary") { return "vary" }
            if same(p, "ETag") { return "ETag" }
            if same(p, "etag") { return "etag" }
            return nil
        case 6:
            if same(p, "Server") { return "Server" }
            if same(p, "server") { return "server" }
            if same(p, "Accept") { return "Accept" }
            if same(p, "accept") { return "accept" }
            if same(p, "Origin") { return "Origin" }
            if same(p, "origin") { return "origin" }
            if same(p, "Cookie") { return "Cookie" }
            if same(p, "cookie") { return "cookie" }
            return nil
        case 7:
            if same(p, "Referer") { return "Referer" }
            if same(p, "referer") { return "referer" }
            if same(p, "Expires") { return "Expires" }
            if same(p, "expires") { return "expires" }
            return nil
        case 10:
            if same(p, "Connection") { return "Connection" }
            if same(p, "connection") { return "connection" }
            if same(p, "User-Agent") { return "User-Agent" }
            if same(p, "user-agent") { return "user-agent" }
            if same(p, "Set-Cookie") { return "Set-Cookie" }
            if same(p, "set-cookie") { return "set-cookie" }
            if same(p, "Keep-Alive") { return "Keep-Alive" }
            if same(p, "keep-alive") { return "keep-alive" }
            return nil
        case 12:
            if same(p, "Content-Type") { return "Content-Type" }
            if same(p, "content-type") { return "content-type" }
            if same(p, "X-Request-Id") { return "X-Request-Id" }
            if same(p, "x-request-id") { return "x-request-id" }
            return nil
        case 13:
            if same(p, "Cache-Control") { return "Cache-Control" }
            if same(p, "cache-control") { return "cache-control" }
            if same(p, "Authorization") { return "Authorization" }
            if same(p, "authorization") { return "authorization" }
            if same(p, "Last-Modified") { return "Last-Modified" }
            if same(p, "last-modified") { return "last-modified" }
            if same(p, "Accept-Ranges") { return "Accept-Ranges" }
            if same(p, "accept-ranges") { return "accept-ranges" }
            return nil
        case 14:
            if same(p, "Content-Length") { return "Content-Length" }
            if same(p, "content-length") { return "content-length" }
            return nil
        case 15:
            if same(p, "Accept-Encoding") { return "Accept-Encoding" }
            if same(p, "accept-encoding") { return "accept-encoding" }
            if same(p, "Accept-Language") { return "Accept-Language" }
            if same(p, "accept-language") { return "accept-language" }
            if same(p, "X-Forwarded-For") { return "X-Forwarded-For" }
            if same(p, "x-forwarded-for") { return "x-forwarded-for" }
            return nil
        case 16:
            if same(p, "Content-Encoding") { return "Content-Encoding" }
            if same(p, "content-encoding") { return "content-encoding" }
            return nil
        case 17:
            if same(p, "Transfer-Encoding") { return "Transfer-Encoding" }
            if same(p, "transfer-encoding") { return "transfer-encoding" }
            return nil
        case 22:
            if same(p, "X-Content-Type-Options") { return "X-Content-Type-Options" }
            if same(p, "x-content-type-options") { return "x-content-type-options" }
            return nil
        case 25:
            if same(p, "Strict-Transport-Security") { return "Strict-Transport-Security" }
            if same(p, "strict-transport-security") { return "strict-transport-security" }
            return nil
        case 27:
            if same(p, "Access-Control-Allow-Origin") { return "Access-Control-Allow-Origin" }
            if same(p, "access-control-allow-origin") { return "access-control-allow-origin" }
            return nil
        default:
            return nil
        }
    }

    /// The literal spelled exactly as `p[0..<n]`, for common field values and reason phrases.
    static func value(_ p: UnsafeRawPointer, _ n: Int) -> String? {
        switch n {
        case 1:
            if same(p, "*") { return "*" }
            return nil
        case 2:
            if same(p, "OK") { return "OK" }
            return nil
        case 4:
            if same(p, "gzip") { return "gzip" }
            return nil
        case 5:
            if same(p, "close") { return "close" }
            return nil
        case 7:
            if same(p, "chunked") { return "chunked" }
            if same(p, "nosniff") { return "nosniff" }
            return nil
        case 8:
            if same(p, "no-cache") { return "no-cache" }
            if same(p, "no-store") { return "no-store" }
            return nil
        case 10:
            if same(p, "keep-alive") { return "keep-alive" }
            if same(p, "text/plain") { return "text/plain" }
            return nil
        case 16:
            if same(p, "application/json") { return "application/json" }
            return nil
        case 24:
            if same(p, "text/html; charset=utf-8") { return "text/html; charset=utf-8" }
            return nil
        case 31:
            if same(p, "application/json; charset=utf-8") { return "application/json; charset=utf-8" }
            if same(p, "application/json; charset=UTF-8") { return "application/json; charset=UTF-8" }
            return nil
        default:
            return nil
        }
    }

    /// Whether the `literal.utf8CodeUnitCount` bytes at `p` are the literal's (the caller switched on the length).
    @inline(__always)
    static func same(_ p: UnsafeRawPointer, _ literal: StaticString) -> Bool {
        bytesEqual(p, literal.utf8CodeUnitCount, literal)
    }
}
