import Testing

@testable import HTTP1

/// Parsing hands out a shared literal for common names and values; it must be exactly the bytes received.
@Suite struct CommonStringsTests {
    static let names: [String] = [
        "Date",
        "date",
        "Host",
        "host",
        "Vary",
        "vary",
        "ETag",
        "etag",
        "Server",
        "server",
        "Accept",
        "accept",
        "Origin",
        "origin",
        "Cookie",
        "cookie",
        "Referer",
        "referer",
        "Expires",
        "expires",
        "Connection",
        "connection",
        "User-Agent",
        "user-agent",
        "Set-Cookie",
        "set-cookie",
        "Keep-Alive",
        "keep-alive",
        "Content-Type",
        "content-type",
        "X-Request-Id",
        "x-request-id",
        "Cache-Control",
        "cache-control",
        "Authorization",
        "authorization",
        "Last-Modified",
        "last-modified",
        "Accept-Ranges",
        "accept-ranges",
        "Content-Length",
        "content-length",
        "Accept-Encoding",
        "accept-encoding",
        "Accept-Language",
        "accept-language",
        "X-Forwarded-For",
        "x-forwarded-for",
        "Content-Encoding",
        "content-encoding",
        "Transfer-Encoding",
        "transfer-encoding",
        "X-Content-Type-Options",
        "x-content-type-options",
        "Strict-Transport-Security",
        "strict-transport-security",
        "Access-Control-Allow-Origin",
        "access-control-allow-origin",
    ]

    static let values: [String] = [
        "keep-alive",
        "close",
        "chunked",
        "gzip",
        "no-cache",
        "no-store",
        "nosniff",
        "*",
        "OK",
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=UTF-8",
        "text/plain",
        "text/html; charset=utf-8",
    ]

    /// `lookup` on `text`'s bytes: nil, or a string with exactly those bytes.
    static func check(_ text: [UInt8], _ lookup: (UnsafeRawPointer, Int) -> String?) -> (String?, Bool) {
        let padded = text + [0]  // an address even for no bytes
        let found = padded.withUnsafeBytes { lookup($0.baseAddress!, text.count) }
        return (found, found.map { Array($0.utf8) == text } ?? true)
    }

    @Test(arguments: names)
    func commonNames(name: String) {
        let bytes = Array(name.utf8)
        #expect(Self.check(bytes, CommonStrings.fieldName) == (name, true))
        // Every one-byte change (case flips included) gives nil or that other exact spelling.
        for i in bytes.indices {
            for b in [bytes[i] ^ 0x20, bytes[i] &+ 1, 0x21, 0x7F] where b != bytes[i] {
                var changed = bytes
                changed[i] = b
                #expect(Self.check(changed, CommonStrings.fieldName).1, "\(name) at \(i) as \(b)")
            }
        }
        #expect(Self.check(Array(bytes.dropLast()), CommonStrings.fieldName).1)
        #expect(Self.check(bytes + [0x61], CommonStrings.fieldName).1)
    }

    @Test(arguments: values)
    func commonValues(value: String) {
        let bytes = Array(value.utf8)
        #expect(Self.check(bytes, CommonStrings.value) == (value, true))
        for i in bytes.indices {
            for b in [bytes[i] ^ 0x20, bytes[i] &+ 1, 0x20] where b != bytes[i] {
                var changed = bytes
                changed[i] = b
                #expect(Self.check(changed, CommonStrings.value).1, "\(value) at \(i) as \(b)")
            }
        }
    }

    @Test func uncommonAndEmpty() {
        #expect(Self.check([], CommonStrings.fieldName) == (nil, true))
        #expect(Self.check([], CommonStrings.value) == (nil, true))
        #expect(Self.check(Array("X-Custom".utf8), CommonStrings.fieldName) == (nil, true))
        #expect(Self.check(Array("DATE".utf8), CommonStrings.fieldName) == (nil, true))
        #expect(Self.check(Array("Keep-Alive".utf8), CommonStrings.value) == (nil, true))
    }
}
