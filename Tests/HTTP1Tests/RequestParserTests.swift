import GatewayCore
import HTTP1
import Testing

private func headAt(_ events: [Collected<HTTP1RequestEvent>], _ index: Int = 0) -> (RequestHead, HTTP1RequestInfo)? {
    var seen = 0
    for case .event(.head(let head, let info)) in events {
        if seen == index { return (head, info) }
        seen += 1
    }
    return nil
}

@Suite("HTTP/1.1 request parser")
struct RequestParserTests {
    @Test("each rejection vector yields its status, whole or byte by byte", arguments: rejectionVectors)
    func rejects(_ vector: RejectionVector) {
        let whole = parseRequests(vector.bytes, limits: vector.limits)
        #expect(errorStatus(whole) == vector.status, "\(whole)")
        let byteByByte = parseRequests(vector.bytes, cuts: Array(0..<vector.bytes.count), limits: vector.limits)
        #expect(byteByByte == whole)
    }

    @Test("there are at least 35 request rejection vectors")
    func vectorCount() {
        #expect(rejectionVectors.count >= 35)
    }

    @Test("a simple GET keeps the header order and case and takes authority from Host")
    func simpleGet() throws {
        let events = parseRequests(
            "GET /my-org/details?x=1 HTTP/1.1\r\nHost: Acme.Example:8443\r\nX-Trace:  a b \r\n\r\n")
        let (head, info) = try #require(headAt(events))
        #expect(head.method == "GET")
        #expect(head.target == "/my-org/details?x=1")
        #expect(head.path == "/my-org/details")
        #expect(head.version == .http1_1)
        #expect(head.authority == "Acme.Example:8443")
        #expect(head.scheme == nil)
        #expect(head.headers.fields == [.init("Host", "Acme.Example:8443"), .init("X-Trace", "a b")])
        #expect(info == HTTP1RequestInfo(framing: .none, keepAlive: true, expectContinue: false))
        #expect(events.count == 2)
        #expect(events.last == .event(.end))
    }

    @Test(
        "keep-alive follows the version and the Connection field",
        arguments: [
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", true),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            ("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false),
        ])
    func keepAlive(_ text: String, _ expected: Bool) throws {
        let (_, info) = try #require(headAt(parseRequests(text)))
        #expect(info.keepAlive == expected)
    }

    @Test("HTTP/1.0 may omit Host and then has no authority")
    func http10WithoutHost() throws {
        let (head, _) = try #require(headAt(parseRequests("GET / HTTP/1.0\r\n\r\n")))
        #expect(head.version == .http1_0)
        #expect(head.authority == nil)
    }

    @Test("after a request without keep-alive the parser ignores what follows")
    func stopsAfterClose() {
        let events = parseRequests(
            "GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(events.count == 2)
        #expect(events.last == .event(.end))
    }

    @Test("pipelined requests come out in order with their bodies")
    func pipelined() throws {
        let text =
            "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
            + "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
            + "PUT /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            + "DELETE /4 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
        let events = parseRequests(text)
        let targets = events.compactMap { event -> String? in
            if case .event(.head(let head, _)) = event { return head.target } else { return nil }
        }
        #expect(targets == ["/1", "/2", "/3", "/4"])
        let bodies = events.compactMap { event -> String? in
            if case .body(let bytes) = event { return String(decoding: bytes, as: UTF8.self) } else { return nil }
        }
        #expect(bodies == ["hello", "abcde"])
        #expect(events.filter { $0 == .event(.end) }.count == 4)
        #expect(try #require(headAt(events, 1)).1.framing == .contentLength(5))
        #expect(try #require(headAt(events, 2)).1.framing == .chunked)
        #expect(try #require(headAt(events, 3)).1.framing == .contentLength(0))
    }

    @Test(
        "Expect: 100-continue is flagged only for HTTP/1.1 requests with a body",
        arguments: [
            ("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", true),
            ("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n", true),
            ("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", false),
            ("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", false),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", false),
            // RFC 9110 §5.6.1.2: empty list elements are accepted and do not count.
            ("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue,\r\nContent-Length: 3\r\n\r\n", true),
            ("POST / HTTP/1.1\r\nHost: a\r\nExpect: , 100-continue\r\nContent-Length: 3\r\n\r\n", true),
            ("POST / HTTP/1.1\r\nHost: a\r\nExpect:\r\nContent-Length: 3\r\n\r\n", false),
            ("POST / HTTP/1.1\r\nHost: a\r\nExpect: ,\r\nContent-Length: 3\r\n\r\n", false),
        ])
    func expectContinue(_ text: String, _ expected: Bool) throws {
        let (_, info) = try #require(headAt(parseRequests(text)))
        #expect(info.expectContinue == expected)
    }

    @Test(
        "empty elements of a Transfer-Encoding list do not count (RFC 9110 §5.6.1.2)",
        arguments: ["chunked,", ", chunked", " ,chunked, ,"])
    func transferEncodingEmptyElements(_ value: String) throws {
        let text = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \(value)\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        let (_, info) = try #require(headAt(parseRequests(text)))
        #expect(info.framing == .chunked)
    }

    @Test("obs-text in a field value is accepted and kept byte for byte (RFC 9110 §5.5)")
    func obsTextValue() throws {
        let raw: [UInt8] = [0x63, 0x61, 0x66, 0xE9, 0x20, 0xFF]
        let bytes = Array("GET / HTTP/1.1\r\nHost: a\r\nX-Name: ".utf8) + raw + Array("\r\n\r\n".utf8)
        let (head, _) = try #require(headAt(parseRequests(bytes)))
        let value = try #require(head.headers["X-Name"])
        #expect(ObsText.withWireBytes(of: value) { Array($0) } == raw)
    }

    @Test("a chunked body is de-chunked, with extensions skipped and trailers yielded")
    func chunkedWithExtensionsAndTrailers() {
        let text =
            "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
            + "5;name=value;flag\r\nhello\r\n"
            + "6;q=\"quoted \\\" ; text\"\r\n world\r\n"
            + "00A\r\n0123456789\r\n"
            + "0;last=1\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
        let events = parseRequests(text)
        #expect(events.count == 4)
        #expect(events[1] == .body(Array("hello world0123456789".utf8)))
        #expect(events[2] == .event(.trailers(HTTPFields([("X-Checksum", "abc"), ("X-Other", "1")]))))
        #expect(events[3] == .event(.end))
    }

    @Test("chunk lines take the BWS of RFC 9112 §7.1.1 around ';' and '=', and leading zeros in the size")
    func chunkLineWhitespaceAndLeadingZeros() {
        let text =
            "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5 ;a=b\r\nhello\r\n"
            + "1\t; a = \"q\" ;flag ; c\t=\td\r\n!\r\n"
            + "0000000003\r\nabc\r\n"
            + "0 ; last\r\n\r\n"
        let events = parseRequests(text)
        #expect(events.count == 3)
        #expect(events[1] == .body(Array("hello!abc".utf8)))
        #expect(events[2] == .event(.end))
    }

    @Test("a chunked body without trailers ends right after the last chunk")
    func chunkedWithoutTrailers() {
        let events = parseRequests(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n")
        #expect(events.count == 3)
        #expect(events[1] == .body([0x78]))
        #expect(events[2] == .event(.end))
    }

    @Test("`|` in a target is accepted, as official SDKs send it unencoded")
    func pipeInTarget() throws {
        let (head, _) = try #require(
            headAt(parseRequests("GET /my-org/members/auth0|123/roles HTTP/1.1\r\nHost: a\r\n\r\n")))
        #expect(head.target == "/my-org/members/auth0|123/roles")
    }

    @Test(
        "targets that are accepted as sent",
        arguments: [
            "/", "/a/b?c=d&e=%2F", "/a;b=c/d@e:f", "/~user/!$&'()*+,=", "/a?b=/c?d", "/a%7Cb", "/a[b]",
        ])
    func acceptedTargets(_ target: String) throws {
        let (head, _) = try #require(headAt(parseRequests("GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n")))
        #expect(head.target == target)
    }

    @Test(
        "absolute-form is mapped to origin-form with its authority and scheme",
        arguments: [
            ("GET http://example.com/a?b HTTP/1.1", "example.com", "/a?b", "http"),
            ("GET HTTPS://EXAMPLE.com:8443 HTTP/1.1", "EXAMPLE.com:8443", "/", "https"),
            ("GET http://example.com?q=1 HTTP/1.1", "example.com", "/?q=1", "http"),
            ("OPTIONS http://example.com HTTP/1.1", "example.com", "*", "http"),
        ])
    func absoluteForm(_ line: String, _ authority: String, _ target: String, _ scheme: String) throws {
        let host = authority.lowercased() == "example.com:8443" ? "example.com:8443" : "example.com"
        let (head, _) = try #require(headAt(parseRequests("\(line)\r\nHost: \(host)\r\n\r\n")))
        #expect(head.authority == authority)
        #expect(head.target == target)
        #expect(head.scheme == scheme)
    }

    @Test("absolute-form wins over a different Host, which is ignored (RFC 9112 §3.2.2)")
    func absoluteFormIgnoresHost() throws {
        let (head, _) = try #require(
            headAt(parseRequests("GET http://acme.test/x HTTP/1.1\r\nHost: other.example\r\n\r\n")))
        #expect(head.authority == "acme.test")
        #expect(head.target == "/x")
        // Host must still be there and valid: the RFC's 400 cases are untouched.
        #expect(headAt(parseRequests("GET http://acme.test/x HTTP/1.1\r\n\r\n")) == nil)
        #expect(headAt(parseRequests("GET http://acme.test/x HTTP/1.1\r\nHost: a@b\r\n\r\n")) == nil)
    }

    @Test("OPTIONS * is accepted")
    func asteriskForm() throws {
        let (head, _) = try #require(headAt(parseRequests("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")))
        #expect(head.target == "*")
    }

    @Test("empty lines before a request line are skipped")
    func leadingEmptyLines() throws {
        let events = parseRequests("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try #require(headAt(events, 1)).0.target == "/2")
        #expect(events.count == 4)
    }

    @Test("OWS around a value is not part of it, so `Content-Length: 5 ` is 5 (RFC 9110 §5.5)")
    func trailingWhitespaceInContentLength() throws {
        let events = parseRequests("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\t5 \r\n\r\nhello")
        #expect(try #require(headAt(events)).1.framing == .contentLength(5))
        #expect(events[1] == .body(Array("hello".utf8)))
    }

    @Test("UTF-8 in a field value is kept byte for byte")
    func utf8Value() throws {
        let (head, _) = try #require(headAt(parseRequests("GET / HTTP/1.1\r\nHost: a\r\nX-Name: Zoë ✓\r\n\r\n")))
        #expect(head.headers["x-name"] == "Zoë ✓")
    }

    @Test("bodies exactly at the limit are accepted")
    func bodyAtLimit() {
        let limits = HTTP1Limits(maxBodyBytes: 10)
        let fixed = parseRequests("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789", limits: limits)
        #expect(fixed.last == .event(.end))
        let chunked = parseRequests(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n",
            limits: limits)
        #expect(chunked.last == .event(.end))
        #expect(chunked[1] == .body(Array("0123456789".utf8)))
    }

    @Test("the header count limit counts fields, and exactly the limit passes")
    func headerCountAtLimit() {
        let text = "GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "A: 1\r\n", count: 99) + "\r\n"
        #expect(parseRequests(text).last == .event(.end))
    }

    @Test("the request line limit includes CRLF, and exactly the limit passes")
    func requestLineAtLimit() {
        let limits = HTTP1Limits(maxRequestLineBytes: 20)
        let line = "GET /abcd HTTP/1.1\r\n"
        #expect(line.utf8.count == 20)
        #expect(parseRequests(line + "Host: a\r\n\r\n", limits: limits).last == .event(.end))
        #expect(errorStatus(parseRequests("GET /abcde HTTP/1.1\r\nHost: a\r\n\r\n", limits: limits)) == 414)
    }

    @Test(
        "a refused request line keeps its method when it is HEAD, so the refusal has no content (RFC 9110 §9.3.2)",
        arguments: [
            ("HEAD /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\n", 414, "HEAD"),
            ("HEAD /x HTTP/2.0\r\n", 505, "HEAD"), ("HEAD /x http/1.1\r\n", 400, "HEAD"),
            ("HEAD * HTTP/1.1\r\n", 400, "HEAD"), ("HEAD a.test:443 HTTP/1.1\r\n", 400, "HEAD"),
            ("GET /x HTTP/2.0\r\n", 505, nil), ("head /x HTTP/2.0\r\n", 505, nil),
            ("HEADX /x HTTP/2.0\r\n", 505, nil),
        ])
    func refusedLineKeepsHEAD(line: String, status: Int, method: String?) {
        var parser = HTTP1RequestParser(limits: HTTP1Limits())
        Array((line + "Host: a\r\n\r\n").utf8).withUnsafeBytes { parser.feed($0) }
        var last: HTTP1RequestEvent?
        while let event = parser.next() { last = event }
        guard case .error(let error) = last else {
            Issue.record("\(line): not refused")
            return
        }
        #expect(error.status == status, "\(line)")
        #expect(parser.refusedMethod == method, "\(line)")
    }

    @Test("a connection closed inside a request is an error; between requests it is not")
    func endOfInput() {
        let complete = parseRequests("GET / HTTP/1.1\r\nHost: a\r\n\r\n", eof: true)
        #expect(complete.count == 2)
        #expect(errorStatus(parseRequests("GET / HTTP/1.1\r\nHost: a\r\n", eof: true)) == 400)
        #expect(errorStatus(parseRequests("GET / HT", eof: true)) == 400)
        let truncated = parseRequests("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel", eof: true)
        #expect(errorStatus(truncated) == 400)
        #expect(truncated[1] == .body(Array("hel".utf8)))
        #expect(parseRequests("", eof: true).isEmpty)
    }

    @Test("hasPartialRequest tells a half-received request from an idle connection")
    func partialRequest() {
        var parser = HTTP1RequestParser()
        #expect(!parser.hasPartialRequest)
        parser.feed(Array("GET / HTTP/1.1\r\nHo".utf8))
        #expect(parser.next() == nil)
        #expect(parser.hasPartialRequest)
        parser.feed(Array("st: a\r\nContent-Length: 2\r\n\r\n".utf8))
        guard case .head = parser.next() else {
            Issue.record("expected a head")
            return
        }
        #expect(parser.hasPartialRequest)
        parser.feed(Array("ok".utf8))
        #expect(parser.next() == .body(Array("ok".utf8)[...]))
        #expect(parser.next() == .end)
        #expect(!parser.hasPartialRequest)
        #expect(parser.next() == nil)
    }

    @Test("a later HTTP/1 minor version is read as HTTP/1.1 (RFC 9110 §2.5)", arguments: ["HTTP/1.2", "HTTP/1.9"])
    func laterMinorVersion(_ version: String) throws {
        let (head, _) = try #require(headAt(parseRequests("GET /x \(version)\r\nHost: a\r\n\r\n")))
        #expect(head.version == .http1_1)
        #expect(head.target == "/x")
    }

    @Test("after an error the parser yields nothing more and buffers nothing")
    func deadAfterError() {
        var parser = HTTP1RequestParser()
        parser.feed(Array("GET / HTTP/9.9\r\n".utf8))
        #expect(parser.next() == .error(HTTP1Error(status: 505, reason: "HTTP version not supported")))
        parser.feed(Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
        #expect(parser.next() == nil)
        #expect(parser.bufferedByteCount == 0)
    }

    @Test("events do not depend on how the bytes are split")
    func splitInvariance() {
        let text =
            "\r\nGET /my-org/members/auth0|123 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\n\r\n"
            + "POST /2 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\nhello world"
            + "PUT /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "3;a=\"b\"\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n"
            + "GET /4 HTTP/1.0\r\n\r\n"
        let bytes = Array(text.utf8)
        let whole = parseRequests(bytes)
        #expect(whole.filter { $0 == .event(.end) }.count == 4)
        #expect(parseRequests(bytes, cuts: Array(0..<bytes.count)) == whole)
        for cut in 0...bytes.count {
            #expect(parseRequests(bytes, cuts: [cut]) == whole, "cut at \(cut)")
        }
        var rng = SplitMix64(seed: 0x4854_5450)
        for _ in 0..<300 {
            let cuts = randomCuts(count: bytes.count, pieces: Int.random(in: 1...12, using: &rng), using: &rng)
            #expect(parseRequests(bytes, cuts: cuts) == whole, "cuts \(cuts)")
        }
    }

    @Test("feeding an UnsafeRawBufferPointer, an Array and an ArraySlice gives the same events")
    func feedVariants() {
        let bytes = Array("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok".utf8)
        var a = HTTP1RequestParser()
        var b = HTTP1RequestParser()
        var c = HTTP1RequestParser()
        bytes.withUnsafeBytes { a.feed($0) }
        b.feed(bytes)
        c.feed(([0] + bytes)[1...])
        var ea: [HTTP1RequestEvent] = []
        var eb: [HTTP1RequestEvent] = []
        var ec: [HTTP1RequestEvent] = []
        while let e = a.next() { ea.append(e) }
        while let e = b.next() { eb.append(e) }
        while let e = c.next() { ec.append(e) }
        #expect(ea.count == 3)
        #expect(ea == eb)
        #expect(ea == ec)
    }
}

@Suite("HTTP/1.1 request parser: Host")
struct HostFieldTests {
    @Test(
        "valid Host values are accepted as the authority",
        arguments: [
            "example.com", "example.com:8443", "EXAMPLE.com:", "127.0.0.1:80", "[::1]:8080", "[2001:db8::7]",
            "a-b_c~d.e",
            "xn--bcher-kva.example", "%41.example",
        ])
    func valid(_ host: String) throws {
        let events = parseRequests("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n")
        guard case .event(.head(let head, _)) = events.first else {
            Issue.record("refused \(host): \(events)")
            return
        }
        #expect(head.authority == host)
    }

    @Test(
        "invalid Host values are 400",
        arguments: [
            "exa mple.com", "user@example.com", ":80", "[::1", "[]", "example.com:123456", "exa/mple", "%4",
            "exam\"ple",
        ])
    func invalid(_ host: String) {
        #expect(errorStatus(parseRequests("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n")) == 400)
    }
}
