import GatewayCore
import HTTP1
import Testing

private func responseHeads(_ events: [Collected<HTTP1ResponseEvent>]) -> [(ResponseHead, HTTP1ResponseInfo)] {
    events.compactMap { event in
        if case .event(.head(let head, let info)) = event { return (head, info) } else { return nil }
    }
}

private func lastError(_ events: [Collected<HTTP1ResponseEvent>]) -> HTTP1Error? {
    if case .event(.error(let error)) = events.last { return error }
    return nil
}

@Suite("HTTP/1.1 response parser")
struct ResponseParserTests {
    @Test("a response to HEAD has no body, whatever its Content-Length says")
    func headResponse() throws {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        let events = parseResponses(text, methods: ["HEAD", "GET"])
        let heads = responseHeads(events)
        #expect(heads.count == 2)
        #expect(heads[0].1.framing == .none)
        #expect(heads[0].0.headers["content-length"] == "1234")
        #expect(heads[1].1.framing == .contentLength(2))
        #expect(events[1] == .event(.end))
        #expect(events[3] == .body(Array("ok".utf8)))
        #expect(events.last == .event(.end))
    }

    @Test("204 and 304 have no body", arguments: [204, 304])
    func noContent(_ status: Int) throws {
        let text = "HTTP/1.1 \(status) X\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        let events = parseResponses(text, methods: ["GET", "GET"])
        let heads = responseHeads(events)
        #expect(heads.map(\.0.status) == [status, 200])
        #expect(heads[0].1.framing == .none)
        #expect(heads[0].1.keepAlive)
        #expect(events.count == 4)
    }

    @Test("without Content-Length or chunked the body runs until close and the connection is not reused")
    func closeDelimited() {
        let text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome bytes\r\n\r\nmore"
        let open = parseResponses(text, methods: ["GET"])
        #expect(open.last == .body(Array("some bytes\r\n\r\nmore".utf8)))
        let closed = parseResponses(text, methods: ["GET"], eof: true)
        #expect(
            responseHeads(closed).first?.1
                == HTTP1ResponseInfo(version: .http1_1, framing: .untilClose, keepAlive: false))
        #expect(closed.last == .event(.end))
        #expect(closed.count == 3)
    }

    @Test("a close-delimited response with no body at all ends at close")
    func closeDelimitedEmpty() {
        let events = parseResponses("HTTP/1.0 200 OK\r\n\r\n", methods: ["GET"], eof: true)
        #expect(events.count == 2)
        #expect(events.last == .event(.end))
    }

    @Test("a chunked response is de-chunked and its trailers yielded")
    func chunked() {
        let text =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nX-Sum: 9\r\n\r\n"
        let events = parseResponses(text, methods: ["GET"])
        #expect(responseHeads(events).first?.1.framing == .chunked)
        #expect(events[1] == .body(Array("Wikipedia".utf8)))
        #expect(events[2] == .event(.trailers(HTTPFields([("X-Sum", "9")]))))
        #expect(events[3] == .event(.end))
    }

    @Test("framing fields in a response's trailers are dropped; the complete answer and the next one stand")
    func framingTrailersDropped() {
        let text =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-T: tv\r\nContent-Length: 99\r\n"
            + "Transfer-Encoding: chunked\r\nHost: evil\r\nConnection: close\r\n\r\n"
            + "HTTP/1.1 204 No Content\r\n\r\n"
        let events = parseResponses(text, methods: ["GET", "GET"])
        #expect(lastError(events) == nil, "\(events)")
        #expect(events[1] == .body(Array("{}".utf8)))
        #expect(events[2] == .event(.trailers(HTTPFields([("X-T", "tv")]))))
        #expect(events[3] == .event(.end))
        #expect(responseHeads(events).map(\.0.status) == [200, 204])
        // Only framing fields are dropped: a malformed trailer line still fails the message.
        let folded = parseResponses(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n b\r\n\r\n", methods: ["GET"])
        #expect(lastError(folded) != nil, "\(folded)")
    }

    @Test("1xx interim responses are yielded before the final one")
    func interim() {
        let text =
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
            + "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"
        let events = parseResponses(text, methods: ["POST"])
        #expect(events.count == 5)
        #expect(events[0] == .event(.informational(ResponseHead(status: 100, reason: "Continue"))))
        #expect(
            events[1]
                == .event(
                    .informational(
                        ResponseHead(
                            status: 103, reason: "Early Hints", headers: HTTPFields([("Link", "</a>; rel=preload")])))))
        #expect(responseHeads(events).first?.0.status == 201)
        #expect(events[3] == .body(Array("{}".utf8)))
    }

    @Test(
        "keep-alive follows the version and Connection",
        arguments: [
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false),
            ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", true),
        ])
    func keepAlive(_ text: String, _ expected: Bool) {
        #expect(responseHeads(parseResponses(text, methods: ["GET"])).first?.1.keepAlive == expected)
    }

    @Test("a status line may omit the reason phrase")
    func emptyReason() {
        for text in ["HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"] {
            let events = parseResponses(text, methods: ["GET"])
            #expect(
                responseHeads(events).first?.0
                    == ResponseHead(status: 200, reason: "", headers: HTTPFields([("Content-Length", "0")])))
        }
    }

    @Test("each malformed response is a 502", arguments: responseRejectionVectors)
    func rejects(_ vector: ResponseVector) {
        let bytes = Array(vector.text.utf8)
        let whole = parseResponses(bytes, methods: [vector.method])
        #expect(lastError(whole)?.status == 502, "\(whole)")
        #expect(parseResponses(bytes, methods: [vector.method], cuts: Array(0..<bytes.count)) == whole)
    }

    @Test("bytes without an outstanding request are refused")
    func unsolicited() {
        #expect(
            lastError(parseResponses("HTTP/1.1 200 OK\r\n\r\n", methods: []))?.reason == "response without a request")
        let second = parseResponses(
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", methods: ["GET"]
        )
        #expect(responseHeads(second).count == 1)
        #expect(lastError(second)?.status == 502)
    }

    @Test(
        "an upstream that closes early is an error",
        arguments: [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "HTTP/1.1 200 OK\r\nContent-Le",
            "",
        ])
    func earlyClose(_ text: String) {
        #expect(lastError(parseResponses(text, methods: ["GET"], eof: true))?.status == 502)
    }

    @Test("outstandingRequests counts requests whose final response has not ended")
    func outstanding() {
        var parser = HTTP1ResponseParser()
        parser.requestSent(method: "GET")
        parser.requestSent(method: "HEAD")
        #expect(parser.outstandingRequests == 2)
        parser.feed(Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx".utf8))
        var events: [HTTP1ResponseEvent] = []
        while let event = parser.next() { events.append(event) }
        #expect(events.count == 4)
        #expect(parser.outstandingRequests == 1)
    }

    @Test("events do not depend on how the bytes are split")
    func splitInvariance() {
        let text =
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
            + "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: 1\r\n\r\n"
            + "HTTP/1.1 404 Not Found\r\n\r\nuntil close"
        let bytes = Array(text.utf8)
        let methods = ["POST", "HEAD", "GET", "GET"]
        let whole = parseResponses(bytes, methods: methods, eof: true)
        #expect(whole.last == .event(.end))
        #expect(responseHeads(whole).count == 4)
        #expect(parseResponses(bytes, methods: methods, cuts: Array(0..<bytes.count), eof: true) == whole)
        var rng = SplitMix64(seed: 7)
        for _ in 0..<200 {
            let cuts = randomCuts(count: bytes.count, pieces: Int.random(in: 1...10, using: &rng), using: &rng)
            #expect(parseResponses(bytes, methods: methods, cuts: cuts, eof: true) == whole, "cuts \(cuts)")
        }
    }

    @Test("body bytes passed on unbuffered give the events feeding them gives, however the bytes are split")
    func unbufferedBodyMatchesFeeding() {
        let text =
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
            + "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nlength-known"
            + "HTTP/1.1 404 Not Found\r\n\r\nuntil close"
        let bytes = Array(text.utf8)
        let methods = ["GET", "HEAD", "GET", "GET", "GET"]
        let fed = parseResponses(bytes, methods: methods, eof: true)
        #expect(responseHeads(fed).count == 5)
        #expect(parseResponsesUnbuffered(bytes, methods: methods, cuts: [], eof: true).events == fed)
        var rng = SplitMix64(seed: 11)
        var direct = 0
        for _ in 0..<300 {
            let cuts = randomCuts(count: bytes.count, pieces: Int.random(in: 1...12, using: &rng), using: &rng)
            let run = parseResponsesUnbuffered(bytes, methods: methods, cuts: cuts, eof: true)
            #expect(run.events == fed, "cuts \(cuts)")
            direct += run.unbuffered
        }
        // The runs did take the unbuffered path: a body byte or more per run on average (a piece starting inside
        // a body, after the bytes before it were consumed).
        #expect(direct > 300)
    }

    @Test("nothing is passed on unbuffered outside a body, with bytes buffered, or after the body's end")
    func unbufferedOnlyInsideABody() {
        var parser = HTTP1ResponseParser(limits: HTTP1Limits())
        parser.requestSent(method: "GET")
        #expect(parser.takeBodyUnbuffered(10) == 0)
        parser.feed(Array("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab".utf8))
        #expect(parser.takeBodyUnbuffered(10) == 0)
        guard case .head = parser.next() else {
            Issue.record("no head")
            return
        }
        // "ab" is still buffered: the next bytes come after it.
        #expect(parser.takeBodyUnbuffered(10) == 0)
        guard case .body(let first) = parser.next() else {
            Issue.record("no body")
            return
        }
        #expect(Array(first) == Array("ab".utf8))
        // Two bytes remain of the length, however many arrived.
        #expect(parser.takeBodyUnbuffered(10) == 2)
        #expect(parser.takeBodyUnbuffered(10) == 0)
        parser.feed(Array("junk".utf8))
        #expect(parser.next() == .end)
        // Bytes after the last answer stay unconsumed, so the connection is not reused.
        #expect(parser.unconsumedByteCount == 4)
    }
}

/// Parses as the upstream connection does: each piece's leading body bytes are taken unbuffered when the parser
/// allows it, and only the rest is fed. Returns the merged events and how many bytes skipped the buffer.
private func parseResponsesUnbuffered(_ bytes: [UInt8], methods: [String], cuts: [Int], eof: Bool)
    -> (events: [Collected<HTTP1ResponseEvent>], unbuffered: Int)
{
    var parser = HTTP1ResponseParser(limits: HTTP1Limits())
    for method in methods { parser.requestSent(method: method) }
    var events: [HTTP1ResponseEvent] = []
    var unbuffered = 0
    var start = 0
    for cut in cuts + [bytes.count] where cut >= start {
        let taken = parser.takeBodyUnbuffered(cut - start)
        if taken > 0 { events.append(.body(bytes[start..<start + taken])) }
        unbuffered += taken
        parser.feed(bytes[(start + taken)..<cut])
        start = cut
        while let event = parser.next() { events.append(event) }
    }
    if eof {
        parser.feedEOF()
        while let event = parser.next() { events.append(event) }
    }
    return (merge(events) { if case .body(let b) = $0 { return b } else { return nil } }, unbuffered)
}
