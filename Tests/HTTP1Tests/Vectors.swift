import HTTP1
import Testing

/// One malformed or smuggling request and the status the parser must answer with.
struct RejectionVector: CustomTestStringConvertible, Sendable {
    var name: String
    var bytes: [UInt8]
    var status: Int
    var limits: HTTP1Limits = HTTP1Limits()

    init(_ name: String, _ text: String, _ status: Int, limits: HTTP1Limits = HTTP1Limits()) {
        self.name = name
        self.bytes = Array(text.utf8)
        self.status = status
        self.limits = limits
    }

    init(_ name: String, bytes: [UInt8], _ status: Int) {
        self.name = name
        self.bytes = bytes
        self.status = status
    }

    var testDescription: String { name }
}

private let h = "Host: example.com\r\n"
private let small = HTTP1Limits(
    maxRequestLineBytes: 32, maxHeaderBytes: 64, maxHeaderCount: 3, maxBodyBytes: 10, maxChunkSizeDigits: 4
)

/// Request smuggling, framing, grammar and limit vectors (RFC 9112, RFC 9110).
let rejectionVectors: [RejectionVector] = [
    // Framing: Content-Length and Transfer-Encoding (RFC 9112 §6.1, §6.3; RFC 9110 §8.6).
    .init("CL together with TE", "POST / HTTP/1.1\r\n\(h)Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    .init("TE together with CL", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
    .init("differing CL fields", "POST / HTTP/1.1\r\n\(h)Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
    .init("identical CL fields", "POST / HTTP/1.1\r\n\(h)Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    .init("CL list of identical values", "POST / HTTP/1.1\r\n\(h)Content-Length: 5, 5\r\n\r\nhello", 400),
    .init("CL with plus sign", "POST / HTTP/1.1\r\n\(h)Content-Length: +5\r\n\r\nhello", 400),
    .init("CL negative", "POST / HTTP/1.1\r\n\(h)Content-Length: -1\r\n\r\n", 400),
    .init("CL with inner space", "POST / HTTP/1.1\r\n\(h)Content-Length: 5 5\r\n\r\n", 400),
    .init("CL in hex", "POST / HTTP/1.1\r\n\(h)Content-Length: 0x5\r\n\r\n", 400),
    .init("CL empty", "POST / HTTP/1.1\r\n\(h)Content-Length: \r\n\r\n", 400),
    .init("CL above the body limit", "POST / HTTP/1.1\r\n\(h)Content-Length: 1048577\r\n\r\n", 413),
    .init("CL overflowing Int", "POST / HTTP/1.1\r\n\(h)Content-Length: 99999999999999999999999\r\n\r\n", 413),
    .init("TE gzip before chunked", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    .init("TE chunked before gzip", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    .init("TE identity", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: identity\r\n\r\n", 400),
    .init("TE gzip alone", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: gzip\r\n\r\n", 400),
    .init("TE of empty elements only", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: , ,\r\n\r\n", 400),
    .init("TE chunked twice in a list", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked, chunked\r\n\r\n", 400),
    .init(
        "TE chunked in two fields",
        "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        400),
    .init("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    .init("TE empty", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: \r\n\r\n", 400),
    .init("TE with parameters", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked;q=1\r\n\r\n", 400),
    .init("TE with a vertical tab", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: \u{0B}chunked\r\n\r\n", 400),
    .init("TE with space before colon", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),

    // Head grammar (RFC 9112 §2.2, §3, §5).
    .init("obs-fold", "GET / HTTP/1.1\r\n\(h)X-A: b\r\n c\r\n\r\n", 400),
    .init("obs-fold with HTAB", "GET / HTTP/1.1\r\n\(h)X-A: b\r\n\tc\r\n\r\n", 400),
    .init("whitespace before the first field", "GET / HTTP/1.1\r\n \(h)\r\n", 400),
    .init("bare CR in a field value", "GET / HTTP/1.1\r\n\(h)X-A: a\rb\r\n\r\n", 400),
    .init("bare CR ending a field line", "GET / HTTP/1.1\r\n\(h)X-A: a\r\r\n\r\n", 400),
    .init("bare CR in the request line", "GET /\r HTTP/1.1\r\n\(h)\r\n", 400),
    // Lines that end in a bare CR and never in LF: refused when the byte after the CR arrives, not at a timeout.
    .init("lines ending in bare CRs, no LF ever", "GET / HTTP/1.1\rHost: example.com\r\r", 400),
    .init("a field line ending in a bare CR, no LF yet", "GET / HTTP/1.1\r\nHost: example.com\rX-A: b", 400),
    .init(
        "a chunk-size line ending in a bare CR, no LF yet",
        "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5\rhello", 400),
    // Found by the fuzzer: the whole line said "bare LF", the line in pieces "bare CR"; both say "bare CR" now.
    .init(
        "a chunk-size line with a bare CR before a bare LF",
        "PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0T\r-\nX: 1\r\n\r\n", 400),
    .init(
        "a trailer line ending in a bare CR, no LF yet",
        "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\rX", 400),
    .init("bare LF line endings", "GET / HTTP/1.1\nHost: example.com\n\n", 400),
    .init("bare LF ending the header section", "GET / HTTP/1.1\r\n\(h)\n", 400),
    .init("NUL in a field value", "GET / HTTP/1.1\r\n\(h)X-A: a\u{0}b\r\n\r\n", 400),
    .init("DEL in a field value", "GET / HTTP/1.1\r\n\(h)X-A: a\u{7F}b\r\n\r\n", 400),
    .init("SOH in a field value", "GET / HTTP/1.1\r\n\(h)X-A: \u{1}\r\n\r\n", 400),
    .init("non-ASCII in the method", bytes: [0xC3, 0xA9] + Array(" / HTTP/1.1\r\n\(h)\r\n".utf8), 400),
    .init("invalid token character in the method", "GE@T / HTTP/1.1\r\n\(h)\r\n", 400),
    .init("request line starting with a space", " GET / HTTP/1.1\r\n\(h)\r\n", 400),
    .init("double space in the request line", "GET  / HTTP/1.1\r\n\(h)\r\n", 400),
    .init("request line without a version", "GET /\r\n\(h)\r\n", 400),
    .init("invalid character in a field name", "GET / HTTP/1.1\r\n\(h)X@Y: 1\r\n\r\n", 400),
    .init("space before the colon", "GET / HTTP/1.1\r\n\(h)X-A : 1\r\n\r\n", 400),
    .init("empty field name", "GET / HTTP/1.1\r\n\(h): 1\r\n\r\n", 400),
    .init("field line without a colon", "GET / HTTP/1.1\r\n\(h)X-A\r\n\r\n", 400),
    .init("missing Host in HTTP/1.1", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    .init("two Host fields", "GET / HTTP/1.1\r\n\(h)Host: other.com\r\n\r\n", 400),
    .init("two identical Host fields", "GET / HTTP/1.1\r\n\(h)\(h)\r\n", 400),
    .init("Host with userinfo", "GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n", 400),
    .init("Host with a space", "GET / HTTP/1.1\r\nHost: example .com\r\n\r\n", 400),
    .init("Host empty", "GET / HTTP/1.1\r\nHost: \r\n\r\n", 400),
    .init("Host with a non-numeric port", "GET / HTTP/1.1\r\nHost: example.com:http\r\n\r\n", 400),
    .init("Expect other than 100-continue", "POST / HTTP/1.1\r\n\(h)Expect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417),

    // Request target (RFC 9112 §3.2, RFC 3986).
    .init("relative target", "GET foo HTTP/1.1\r\n\(h)\r\n", 400),
    .init("target with <", "GET /a<b HTTP/1.1\r\n\(h)\r\n", 400),
    .init("target with {", "GET /a{b} HTTP/1.1\r\n\(h)\r\n", 400),
    .init("target with backslash", "GET /a\\b HTTP/1.1\r\n\(h)\r\n", 400),
    .init("target with a fragment", "GET /a#b HTTP/1.1\r\n\(h)\r\n", 400),
    .init("target with a double quote", "GET /a\"b HTTP/1.1\r\n\(h)\r\n", 400),
    .init("target with non-ASCII", "GET /caf\u{E9} HTTP/1.1\r\n\(h)\r\n", 400),
    .init("target with NUL", "GET /a\u{0}b HTTP/1.1\r\n\(h)\r\n", 400),
    .init("target with a tab", "GET /a\tb HTTP/1.1\r\n\(h)\r\n", 400),
    .init("bad pct-encoding", "GET /a%zz HTTP/1.1\r\n\(h)\r\n", 400),
    .init("truncated pct-encoding", "GET /a%4 HTTP/1.1\r\n\(h)\r\n", 400),
    .init("asterisk-form outside OPTIONS", "GET * HTTP/1.1\r\n\(h)\r\n", 400),
    .init("absolute-form with userinfo", "GET http://u@example.com/ HTTP/1.1\r\n\(h)\r\n", 400),
    .init("absolute-form with another scheme", "GET ftp://example.com/ HTTP/1.1\r\n\(h)\r\n", 400),
    .init(
        "a method longer than any implemented (RFC 9112 §3)",
        "\(String(repeating: "M", count: 9000)) / HTTP/1.1\r\n\(h)\r\n", 501),
    .init("a long target", "GET /\(String(repeating: "a", count: 9000)) HTTP/1.1\r\n\(h)\r\n", 414),
    .init("CONNECT authority-form", "CONNECT example.com:443 HTTP/1.1\r\n\(h)\r\n", 501),

    // Version (RFC 9112 §2.3).
    .init("HTTP/2.0 request line", "GET / HTTP/2.0\r\n\(h)\r\n", 505),
    .init("HTTP/3.0", "GET / HTTP/3.0\r\n\(h)\r\n", 505),
    .init("HTTP/0.9 version", "GET / HTTP/0.9\r\n\(h)\r\n", 505),
    .init("h2 prior-knowledge preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    .init("lowercase http version", "GET / http/1.1\r\n\(h)\r\n", 400),
    .init("version with three digits", "GET / HTTP/1.10\r\n\(h)\r\n", 400),

    // Limits.
    .init("request line over the limit", "GET /" + String(repeating: "a", count: 8192) + " HTTP/1.1\r\n\(h)\r\n", 414),
    .init("request line over a small limit", "GET /0123456789012345678 HTTP/1.1\r\n\r\n", 414, limits: small),
    .init("request line without LF over the limit", "GET /" + String(repeating: "a", count: 40), 414, limits: small),
    .init(
        "header section over the byte limit",
        "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "b", count: 60) + "\r\n\r\n", 431, limits: small),
    .init(
        "header section over the default byte limit",
        "GET / HTTP/1.1\r\n\(h)X: " + String(repeating: "b", count: 33_000) + "\r\n\r\n", 431),
    .init("too many header fields", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431, limits: small),
    .init(
        "too many header fields at the default",
        "GET / HTTP/1.1\r\n\(h)" + String(repeating: "A: 1\r\n", count: 100) + "\r\n", 431),

    // Chunked framing (RFC 9112 §7.1).
    .init("empty chunk size", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n", 400),
    .init("non-hex chunk size", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    .init(
        "chunk size with 0x", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
    .init(
        "negative chunk size", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400),
    .init(
        "space before chunk size", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
        400),
    .init(
        "space after chunk size", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
        400),
    .init(
        "too many chunk-size digits",
        "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n123456789\r\nhello\r\n0\r\n\r\n", 400),
    .init(
        "too many chunk-size digits after leading zeros",
        "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n00123456789\r\nhello\r\n0\r\n\r\n", 400),
    .init(
        "whitespace after a chunk extension's name with no extension after it",
        "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5;a \r\nhello\r\n0\r\n\r\n", 400),
    .init(
        "chunk size overflowing Int", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
        400),
    .init("chunk over the body limit", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n100001\r\n", 413),
    .init(
        "chunks summing over the body limit",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello!\r\n6\r\nhello!\r\n0\r\n\r\n", 413,
        limits: small),
    .init(
        "chunk extension with a space",
        "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5;a b\r\nhello\r\n0\r\n\r\n", 400),
    .init(
        "chunk extension without a name",
        "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5;=b\r\nhello\r\n0\r\n\r\n", 400),
    .init(
        "chunk extension unterminated quote",
        "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5;a=\"b\r\nhello\r\n0\r\n\r\n", 400),
    .init(
        "chunk extension with NUL",
        "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5;a=\"\u{0}\"\r\nhello\r\n0\r\n\r\n", 400),
    .init(
        "bare LF after chunk size", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        400),
    .init(
        "missing CRLF after chunk data",
        "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n", 400),
    .init(
        "bare LF after chunk data", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
        400),
    .init(
        "chunk data longer than its size",
        "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", 400),
    .init(
        "Content-Length in trailers",
        "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n", 400),
    .init(
        "Transfer-Encoding in trailers",
        "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    .init(
        "obs-fold in trailers", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n b\r\n\r\n",
        400),
    .init("invalid trailer name", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n0\r\nX T: a\r\n\r\n", 400),
    .init("bare LF ending trailers", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n\n", 400),

    // A valid first request does not make a smuggled second one acceptable.
    .init(
        "pipelined second request with CL and TE",
        "GET / HTTP/1.1\r\n\(h)\r\nPOST / HTTP/1.1\r\n\(h)Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
]

/// Malformed upstream responses; the parser reports each as 502.
struct ResponseVector: CustomTestStringConvertible, Sendable {
    var name: String
    var text: String
    var method = "GET"
    var testDescription: String { name }
}

let responseRejectionVectors: [ResponseVector] = [
    .init(
        name: "CL together with TE", text: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
    .init(name: "differing CL", text: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc"),
    .init(name: "CL list", text: "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc"),
    .init(name: "TE gzip", text: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
    .init(name: "TE chunked not last", text: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
    .init(name: "TE in HTTP/1.0", text: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    .init(name: "101 never requested", text: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"),
    .init(name: "HTTP/2.0 status line", text: "HTTP/2.0 200 OK\r\n\r\n"),
    .init(name: "a status line ending in a bare CR, no LF yet", text: "HTTP/1.1 200 OK\rServer: x"),
    .init(name: "a field line ending in a bare CR, no LF yet", text: "HTTP/1.1 200 OK\r\nServer: x\rDate: y"),
    .init(name: "two-digit status", text: "HTTP/1.1 20 OK\r\n\r\n"),
    .init(name: "status 600", text: "HTTP/1.1 600 Odd\r\n\r\n"),
    .init(name: "no space after version", text: "HTTP/1.1200 OK\r\n\r\n"),
    .init(name: "bare LF", text: "HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
    .init(name: "obs-fold", text: "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
    .init(name: "CR in reason", text: "HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n"),
    .init(name: "bad chunk size", text: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n"),
    .init(name: "not HTTP at all", text: "SSH-2.0-OpenSSH\r\n"),
]
