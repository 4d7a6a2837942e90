import GatewayCore
import HTTP1
import Testing

/// The parser reuses what it made of a request line or field line repeated byte for byte from the previous request
/// on the connection. That must never show: every request parses exactly as it would on a fresh connection.
@Suite("HTTP/1.1 request parser: lines repeated on a connection")
struct RepeatedLinesTests {
    /// The events of `second` fed after `first` on one parser, whole and byte by byte, next to those of `second`
    /// alone on a fresh parser. `first` must be complete, valid requests.
    private static func afterWarmUp(
        _ first: [UInt8], _ second: [UInt8], limits: HTTP1Limits
    ) -> (
        warm: [Collected<HTTP1RequestEvent>], split: [Collected<HTTP1RequestEvent>],
        fresh: [Collected<HTTP1RequestEvent>]
    ) {
        let alone = parseRequests(first, limits: limits)
        #expect(alone.last == .event(.end), "the warm-up must parse cleanly: \(alone)")
        let whole = parseRequests(first + second, limits: limits)
        let split = parseRequests(
            first + second, cuts: Array(first.count..<(first.count + second.count)), limits: limits)
        #expect(Array(whole.prefix(alone.count)) == alone)
        return (Array(whole.dropFirst(alone.count)), Array(split.dropFirst(alone.count)), parseRequests(second))
    }

    static let warmUps = [
        "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello",
        "GET / HTTP/1.1\r\nHost: example.com\r\nX-A: b\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: example.com\r\nConnection: keep-alive\r\n\r\n",
    ]

    @Test(
        "each rejection vector after a valid request sharing its lines answers as on a fresh connection",
        arguments: rejectionVectors)
    func rejectionAfterWarmUp(_ vector: RejectionVector) {
        for warmUp in Self.warmUps {
            // The vector's own limits may refuse the warm-up; those cases are covered with the default limits.
            let limits =
                parseRequests(warmUp, limits: vector.limits).last == .event(.end)
                ? vector.limits : HTTP1Limits()
            let second = parseRequests(vector.bytes, limits: limits)
            let (warm, split, _) = Self.afterWarmUp(Array(warmUp.utf8), vector.bytes, limits: limits)
            #expect(warm == second, "after \(warmUp.debugDescription)")
            #expect(split == second, "byte by byte after \(warmUp.debugDescription)")
        }
    }

    static let token = "Bearer " + String(repeating: "eyJhbGciOiJSUzI1NiJ9.", count: 48)
    static let browserLike =
        "GET /my-org/details?page=1 HTTP/1.1\r\nHost: acme.example\r\nUser-Agent: h2load nghttp2/1.52.0\r\n"
        + "Accept: */*\r\nAuthorization: \(token)\r\nOrigin: https://app.example\r\nConnection: keep-alive\r\n\r\n"

    /// (what, first requests, second request, limits).
    static let pairs: [(String, String, String, HTTP1Limits)] = [
        ("the same request again", browserLike, browserLike, HTTP1Limits()),
        ("the same request a third time", browserLike + browserLike, browserLike, HTTP1Limits()),
        (
            "a body framed by a repeated Content-Length",
            "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nworld", HTTP1Limits()
        ),
        (
            "a body framed by a repeated Transfer-Encoding",
            "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n", HTTP1Limits()
        ),
        (
            "a repeated Host at a position where the request already has one",
            "GET / HTTP/1.1\r\nX: 1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", HTTP1Limits()
        ),
        (
            "a repeated Content-Length after one already given",
            "POST / HTTP/1.1\r\nHost: a\r\nX: 1\r\nContent-Length: 1\r\n\r\nx",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", HTTP1Limits()
        ),
        (
            "a repeated Transfer-Encoding after a Content-Length",
            "POST / HTTP/1.1\r\nHost: a\r\nX: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            HTTP1Limits()
        ),
        (
            "a repeated line that no longer fits the header budget",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Long: \(String(repeating: "l", count: 40))\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: aaaaaaaaa\r\nX-Long: \(String(repeating: "l", count: 40))\r\n\r\n",
            HTTP1Limits(maxHeaderBytes: 64)
        ),
        (
            "a repeated line one past the header count",
            "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nA: 1\r\nB: 2\r\n\r\n",
            HTTP1Limits(maxHeaderCount: 3)
        ),
        (
            "a repeated request line after empty lines that push it past the limit",
            "GET /abcd HTTP/1.1\r\nHost: a\r\n\r\n", "\r\n\r\nGET /abcd HTTP/1.1\r\nHost: a\r\n\r\n",
            HTTP1Limits(maxRequestLineBytes: 22)
        ),
        (
            "a repeated request line after empty lines within the limit",
            "GET /abcd HTTP/1.1\r\nHost: a\r\n\r\n", "\r\nGET /abcd HTTP/1.1\r\nHost: a\r\n\r\n",
            HTTP1Limits(maxRequestLineBytes: 22)
        ),
        (
            "a longer field line", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\nHost: ab\r\n\r\n",
            HTTP1Limits()
        ),
        (
            "a bare LF after a repeated line", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\n\r\n",
            HTTP1Limits()
        ),
        (
            "a bare CR after a repeated line", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\rX\r\n\r\n",
            HTTP1Limits()
        ),
        (
            "a repeated field line written as the request line", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "Host: a\r\n\r\n", HTTP1Limits()
        ),
        (
            "a bare LF after a repeated request line", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\nHost: a\r\n\r\n", HTTP1Limits()
        ),
        (
            "a repeated HTTP/1.0 request line with keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", HTTP1Limits()
        ),
        (
            "OPTIONS * again", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            HTTP1Limits()
        ),
        (
            "an absolute-form request line again",
            "GET http://b.example/x HTTP/1.1\r\nHost: a\r\n\r\n", "GET http://b.example/x HTTP/1.1\r\nHost: a\r\n\r\n",
            HTTP1Limits()
        ),
        (
            "an origin-form line after an absolute-form one", "GET http://b.example/x HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1Limits()
        ),
        (
            "fields shifted by one position", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n",
            "GET / HTTP/1.1\r\nX: 0\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", HTTP1Limits()
        ),
        (
            "more fields than the parser remembers",
            "GET / HTTP/1.1\r\nHost: a\r\n" + (0..<40).map { "F\($0): \($0)\r\n" }.joined() + "\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n" + (0..<40).map { "F\($0): \($0)\r\n" }.joined() + "\r\n", HTTP1Limits()
        ),
    ]

    @Test("a request after others parses as on a fresh connection", arguments: pairs)
    func afterOthers(_ what: String, _ first: String, _ second: String, _ limits: HTTP1Limits) {
        let (warm, split, fresh) = Self.afterWarmUp(Array(first.utf8), Array(second.utf8), limits: limits)
        let alone = parseRequests(second, limits: limits)
        #expect(warm == alone, "\(what)")
        #expect(split == alone, "\(what), byte by byte")
        // Only `alone` applies `limits`; with the default ones the second request parses as `fresh` does.
        if limits == HTTP1Limits() { #expect(alone == fresh) }
    }

    @Test("a repeated request yields the same head and info, field values included")
    func repeatedHead() throws {
        let events = parseRequests(Self.browserLike + Self.browserLike + Self.browserLike)
        var heads: [RequestHead] = []
        for case .event(.head(let head, _)) in events { heads.append(head) }
        #expect(heads.count == 3)
        #expect(heads.allSatisfy { $0 == heads[0] })
        #expect(heads[0].headers["authorization"] == Self.token)
        #expect(heads[0].method == "GET" && heads[0].target == "/my-org/details?page=1")
        #expect(heads[0].authority == "acme.example")
    }
}
