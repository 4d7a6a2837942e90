import GatewayCore
import HTTP1
import Testing

/// The response parser reuses the fields it made of lines repeated byte for byte from the previous response on the
/// upstream connection. That must never show: every response parses exactly as it would on a fresh connection.
@Suite("HTTP/1.1 response parser: lines repeated on a connection")
struct RepeatedResponseLinesTests {
    /// The events of `second` (answering `method`) after the complete responses in `first` (answering GETs) on one
    /// parser, fed whole and byte by byte, next to those of `second` alone on a fresh parser.
    private static func compare(
        _ first: String, _ second: String, method: String = "GET", limits: HTTP1Limits = HTTP1Limits(),
        warmResponses: Int = 1, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let firstBytes = Array(first.utf8)
        let secondBytes = Array(second.utf8)
        // One request per final response (an interim 1xx answers no request of its own).
        let warmMethods = Array(repeating: "GET", count: warmResponses)
        let alone = parseResponses(firstBytes, methods: warmMethods, limits: limits)
        #expect(
            alone.last == Collected<HTTP1ResponseEvent>.event(.end), "the warm-up must parse cleanly: \(alone)",
            sourceLocation: sourceLocation)
        let fresh = parseResponses(secondBytes, methods: [method], limits: limits)
        let whole = parseResponses(firstBytes + secondBytes, methods: warmMethods + [method], limits: limits)
        let split = parseResponses(
            firstBytes + secondBytes, methods: warmMethods + [method],
            cuts: Array(firstBytes.count..<(firstBytes.count + secondBytes.count)), limits: limits)
        #expect(Array(whole.prefix(alone.count)) == alone, sourceLocation: sourceLocation)
        #expect(Array(whole.dropFirst(alone.count)) == fresh, "whole", sourceLocation: sourceLocation)
        #expect(Array(split.dropFirst(alone.count)) == fresh, "byte by byte", sourceLocation: sourceLocation)
    }

    static let nginxLike =
        "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 29 Nov 2026 10:18:59 GMT\r\n"
        + "Content-Type: application/json\r\nContent-Length: 14\r\nConnection: keep-alive\r\n\r\n{\"id\":\"org_x\"}"

    static let warmUps = [
        nginxLike,
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: a\r\n\r\nabc",
    ]

    @Test(
        "each malformed response after a valid one sharing its lines fails as on a fresh connection",
        arguments: responseRejectionVectors)
    func rejectionAfterWarmUp(_ vector: ResponseVector) {
        for warmUp in Self.warmUps { Self.compare(warmUp, vector.text, method: vector.method) }
    }

    /// (what, earlier responses, next response); "twice" in the name: two earlier final responses.
    static let pairs: [(String, String, String)] = [
        ("the same response again", nginxLike, nginxLike),
        ("the same response a third time (twice before)", nginxLike + nginxLike, nginxLike),
        (
            "a new Date and length between repeated lines", nginxLike,
            "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 29 Nov 2026 10:19:00 GMT\r\n"
                + "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}"
        ),
        (
            "a repeated Content-Length next to a Transfer-Encoding",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ),
        (
            "a repeated Content-Length given twice with another value",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
        ),
        (
            "a repeated Transfer-Encoding in HTTP/1.0",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ),
        (
            "a repeated line followed by obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"
        ),
        (
            "a prefix of a repeated line", "HTTP/1.1 200 OK\r\nX-Long: abcdef\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-Long: abc\r\nContent-Length: 0\r\n\r\n"
        ),
        (
            "a repeated line with a bare LF after it", "HTTP/1.1 200 OK\r\nX-A: a\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 0\r\n\r\n"
        ),
        (
            "a repeated line with a CR and no LF after it",
            "HTTP/1.1 200 OK\r\nX-A: a\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 0\r\n\r\n"
        ),
        (
            "a repeated Connection: keep-alive in HTTP/1.0",
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
        ),
        (
            "repeated lines after an interim response", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + nginxLike,
            nginxLike
        ),
    ]

    @Test("a response after others on the connection parses as on a fresh connection", arguments: pairs.indices)
    func pair(_ index: Int) {
        let (what, first, second) = Self.pairs[index]
        Self.compare(first, second, warmResponses: what.contains("twice before") ? 2 : 1)
    }

    @Test("the header limits count repeated lines as the parse would")
    func limitsHold() {
        let warm = "HTTP/1.1 200 OK\r\nX-A: aaaa\r\nX-B: bbbb\r\nContent-Length: 0\r\n\r\n"
        var tight = HTTP1Limits()
        tight.maxHeaderCount = 3
        // Three repeated lines, then one field too many.
        Self.compare(
            warm, "HTTP/1.1 200 OK\r\nX-A: aaaa\r\nX-B: bbbb\r\nContent-Length: 0\r\nX-C: c\r\n\r\n",
            limits: tight)
        // Repeated lines that, with one more, overrun the header bytes (the warm-up's 43 fit).
        var small = HTTP1Limits()
        small.maxHeaderBytes = 50
        Self.compare(
            warm, "HTTP/1.1 200 OK\r\nX-A: aaaa\r\nX-B: bbbb\r\nContent-Length: 0\r\nX-C: cccc\r\n\r\n",
            limits: small)
    }
}
