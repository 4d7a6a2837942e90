import CNghttp2
import GatewayCore
import Testing

@testable import HTTP2

@Suite("HTTP2ServerSession against a real nghttp2 client")
struct HTTP2ServerSessionTests {
    @Test("a GET becomes one request event and its response reaches the client")
    func getRoundTrip() {
        let pair = SessionPair()
        pair.onEvent = { event, server in
            if case .request(let id, _, true) = event {
                let ok = server.submitResponse(
                    streamID: id,
                    head: ResponseHead(status: 200, headers: HTTPFields([("Content-Type", "application/json")])),
                    body: Array(#"{"id":"org_1"}"#.utf8))
                #expect(ok)
            }
        }
        let id = pair.client.request(
            FrameBuilder.request(path: "/my-org/details?fields=id", [("authorization", "Bearer x"), ("accept", "*/*")]))
        pair.pump()

        let requests = pair.requests()
        #expect(requests.count == 1)
        let (streamID, head, endStream) = requests[0]
        #expect(streamID == id)
        #expect(endStream)
        #expect(head.method == "GET")
        #expect(head.target == "/my-org/details?fields=id")
        #expect(head.path == "/my-org/details")
        #expect(head.authority == "acme.us.auth0.com")
        #expect(head.scheme == "https")
        #expect(head.version == .http2)
        #expect(head.headers.fields.map(\.name) == ["authorization", "accept"])
        #expect(head.headers["Authorization"] == "Bearer x")

        let response = pair.client.streams[id]!
        #expect(response.status == 200)
        #expect(String(decoding: response.body, as: UTF8.self) == #"{"id":"org_1"}"#)
        #expect(response.headers.first { $0.0 == "content-type" }?.1 == "application/json")
        #expect(response.headers.first { $0.0 == "content-length" }?.1 == "14")
        #expect(response.closed && response.errorCode == 0)
        #expect(pair.server.openStreamCount == 0)
        #expect(!pair.events.contains { if case .reset = $0 { return true } else { return false } })
    }

    @Test("a POST body arrives as data events and the window opens only as the owner consumes")
    func postBodyWithConsumeBackpressure() {
        let body = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let pair = SessionPair()
        var consume = false
        pair.onEvent = { event, server in
            switch event {
            case .data(let id, let bytes) where consume:
                server.consume(streamID: id, count: bytes.count)
            case .endStream(let id):
                server.submitResponse(streamID: id, head: ResponseHead(status: 201), body: Array("ok".utf8))
            default:
                break
            }
        }
        let id = pair.client.request(
            FrameBuilder.request(method: "POST", [("content-type", "application/json")]), body: body)
        pair.pump()
        // Nothing consumed: the client may send one stream window (SETTINGS_INITIAL_WINDOW_SIZE) and then stalls.
        let stalled = pair.body(of: id).count
        #expect(stalled == 65_535)
        #expect(pair.client.streams[id]!.status == nil)

        consume = true
        pair.server.consume(streamID: id, count: stalled)
        pair.pump()
        #expect(pair.body(of: id) == body)
        #expect(pair.requests().first?.2 == false)
        #expect(pair.events.contains(.endStream(streamID: id)))
        #expect(pair.client.streams[id]!.status == 201)
        #expect(pair.client.streams[id]!.closed)
    }

    @Test("a hundred concurrent streams are each answered with their own body")
    func manyConcurrentStreams() {
        let pair = SessionPair()
        pair.onEvent = { event, server in
            if case .request(let id, let head, _) = event {
                server.submitResponse(streamID: id, head: ResponseHead(status: 200), body: Array(head.target.utf8))
            }
        }
        let ids = (0..<100).map { pair.client.request(FrameBuilder.request(path: "/my-org/members/\($0)")) }
        pair.pump()
        #expect(pair.requests().count == 100)
        for (i, id) in ids.enumerated() {
            let stream = pair.client.streams[id]!
            #expect(stream.status == 200)
            #expect(String(decoding: stream.body, as: UTF8.self) == "/my-org/members/\(i)")
        }
        #expect(pair.server.openStreamCount == 0)
    }

    @Test("a large response under a small high-water mark is written in bounded pieces")
    func largeResponseSmallHighWater() {
        let body = (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let pair = SessionPair(maxOutput: 4096)
        pair.onEvent = { event, server in
            if case .request(let id, _, _) = event {
                server.submitResponse(streamID: id, head: ResponseHead(status: 200), body: body)
            }
        }
        let id = pair.client.request(FrameBuilder.request())
        pair.pump()
        #expect(pair.client.streams[id]!.body == body)
        // At most one frame past the mark: 16384 bytes of DATA plus its 9-byte header.
        #expect(pair.largestOutputChunk <= 4096 + 16_384 + 9)
        #expect(pair.outputCalls > 1_000_000 / (4096 + 16_393))
    }

    @Test("no frames are serialized while the caller's buffer is at the high-water mark")
    func outputWaitsForTheReader() {
        let pair = SessionPair()
        let id = pair.client.request(FrameBuilder.request())
        pair.pump()
        pair.server.submitResponse(
            streamID: id, head: ResponseHead(status: 200), body: [UInt8](repeating: 7, count: 30_000))
        var unread = [UInt8](repeating: 0, count: 64 * 1024)
        #expect(pair.server.pendingOutput(into: &unread, maxBytes: 64 * 1024) == 0)
        #expect(pair.server.bufferedBodyBytes(streamID: id) == 30_000)
        #expect(pair.server.wantsWrite)
        unread.removeAll()
        #expect(pair.server.pendingOutput(into: &unread, maxBytes: 64 * 1024) > 30_000)
        #expect(pair.server.bufferedBodyBytes(streamID: id) == 0)
    }

    @Test("a streamed response is deferred while empty, resumed on append, and paced by the high-water mark")
    func streamingResponse() {
        var limits = HTTP2Limits()
        limits.responseBodyHighWaterMark = 1024
        let pair = SessionPair(limits: limits)
        let id = pair.client.request(FrameBuilder.request())
        pair.pump()
        #expect(pair.server.submitResponseHead(streamID: id, head: ResponseHead(status: 200), hasBody: true))
        pair.pump()
        #expect(pair.client.streams[id]!.status == 200)
        #expect(!pair.client.streams[id]!.closed)

        var expected: [UInt8] = []
        for chunk in 0..<5 {
            let piece = [UInt8](repeating: UInt8(chunk), count: 3000)
            expected += piece
            #expect(pair.server.appendBody(streamID: id, bytes: piece))
            #expect(!pair.server.wantsMoreBody(streamID: id))
            pair.pump()
            #expect(pair.server.bufferedBodyBytes(streamID: id) == 0)
            #expect(pair.events.filter { $0 == .readyForBody(streamID: id) }.count == chunk + 1)
            #expect(pair.client.streams[id]!.body == expected)
        }
        #expect(pair.server.endBody(streamID: id))
        pair.pump()
        #expect(pair.client.streams[id]!.closed)
        #expect(pair.client.streams[id]!.errorCode == 0)
        #expect(!pair.server.appendBody(streamID: id, bytes: [1]))
    }

    @Test("streamed responses one after another each carry their own body, also after a reset and a large one")
    func streamedResponsesInSequence() {
        let pair = SessionPair()
        let bodies: [[UInt8]] = [
            Array("first".utf8), [], Array(repeating: 0x61, count: 5000), Array("fourth, after a large one".utf8),
            Array("fifth".utf8),
        ]
        for (n, body) in bodies.enumerated() {
            let id = pair.client.request(FrameBuilder.request())
            pair.pump()
            #expect(pair.server.submitResponseHead(streamID: id, head: ResponseHead(status: 200), hasBody: true))
            if n == 1 {
                // Bytes queued, then the stream reset: its buffer must not leak into the next response.
                #expect(pair.server.appendBody(streamID: id, bytes: Array("never sent".utf8)))
                #expect(pair.server.resetStream(streamID: id, errorCode: .cancel))
                pair.pump()
                continue
            }
            #expect(pair.server.appendBody(streamID: id, bytes: body))
            #expect(pair.server.endBody(streamID: id))
            pair.pump()
            #expect(pair.client.streams[id]!.body == body, "response \(n)")
            // A small body's buffer is kept for the next response; the 5000-byte one is let go.
            #expect((pair.server.spareBodyBuffer.capacity > 0) == (body.count <= 4096), "response \(n)")
            #expect(pair.server.spareBodyBuffer.isEmpty)
        }
        #expect(pair.server.openStreamCount == 0)
    }

    @Test("a content length given with the head replaces the head's own content-length field")
    func contentLengthReplaces() {
        let pair = SessionPair()
        let id = pair.client.request(FrameBuilder.request())
        pair.pump()
        let head = ResponseHead(status: 200, headers: HTTPFields([("Content-Length", "99"), ("X-A", "1")]))
        #expect(pair.server.submitResponseHead(streamID: id, head: head, hasBody: true, contentLength: 3))
        #expect(pair.server.appendBody(streamID: id, bytes: [1, 2, 3]))
        #expect(pair.server.endBody(streamID: id))
        pair.pump()
        let stream = pair.client.streams[id]!
        #expect(stream.headers.filter { $0.0 == "content-length" }.map(\.1) == ["3"])
        #expect(stream.headers.contains { $0.0 == "x-a" && $0.1 == "1" })
        #expect(stream.body == [1, 2, 3])
    }

    /// (status, head fields, contentLength, date, expected fields after :status)
    static let headerBlocks: [(Int, [(String, String)], Int?, String?, [String])] = [
        (204, [], nil, nil, []),
        (200, [], 0, nil, ["content-length: 0"]),
        (
            200, [("X-A", "1")], 7, "Sun, 06 Nov 1994 08:49:37 GMT",
            ["x-a: 1", "date: Sun, 06 Nov 1994 08:49:37 GMT", "content-length: 7"]
        ),
        (404, [], 10, nil, ["content-length: 10"]),
        (
            200, [("Date", "Mon, 07 Nov 1994 08:49:37 GMT")], 1_234_567_890_123, "Sun, 06 Nov 1994 08:49:37 GMT",
            ["date: Mon, 07 Nov 1994 08:49:37 GMT", "content-length: 1234567890123"]
        ),
        // A Date the Connection field names is dropped, so the session's own is sent.
        (
            200, [("Connection", "Date"), ("DATE", "x")], nil, "Sun, 06 Nov 1994 08:49:37 GMT",
            ["date: Sun, 06 Nov 1994 08:49:37 GMT"]
        ),
        (503, [("Content-Length", "5"), ("Retry-After", "30")], nil, nil, ["content-length: 5", "retry-after: 30"]),
        (
            200, [("X-Long", String(repeating: "v", count: 3000)), ("x-b", "")], 2, nil,
            ["x-long: " + String(repeating: "v", count: 3000), "x-b: ", "content-length: 2"]
        ),
    ]

    @Test("a response head becomes :status, its fields, then date and content-length", arguments: headerBlocks)
    func responseHeaderBlock(status: Int, fields: [(String, String)], length: Int?, date: String?, expected: [String]) {
        let pair = SessionPair()
        // HEAD, so the client accepts a content-length without content.
        let id = pair.client.request(FrameBuilder.request(method: "HEAD"))
        pair.pump()
        let head = ResponseHead(status: status, headers: HTTPFields(fields))
        #expect(
            pair.server.submitResponseHead(streamID: id, head: head, hasBody: false, contentLength: length, date: date))
        pair.pump()
        let stream = pair.client.streams[id]!
        #expect(stream.status == status && stream.errorCode == 0)
        #expect(stream.headers.map { "\($0.0): \($0.1)" } == expected)
    }

    @Test("connection-specific response fields are dropped and names lowercased")
    func responseHeaderHygiene() {
        let pair = SessionPair()
        let id = pair.client.request(FrameBuilder.request())
        pair.pump()
        let head = ResponseHead(
            status: 200,
            headers: HTTPFields([
                ("Connection", "close, X-Hop"), ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"),
                ("Upgrade", "h2c"), ("Proxy-Connection", "keep-alive"), ("X-Hop", "1"), ("TE", "trailers"),
                ("X-Request-ID", "abc"), ("Content-Length", "0"), ("X-Injected", "a\r\nset-cookie: x"),
                (":path", "/evil"),
            ]))
        #expect(pair.server.submitResponse(streamID: id, head: head))
        pair.pump()
        let stream = pair.client.streams[id]!
        // nghttp2's client resets the stream if any connection-specific field slips through.
        #expect(stream.status == 200 && stream.errorCode == 0)
        #expect(stream.headers.map(\.0) == ["x-request-id", "content-length"])
    }

    @Test("a client reset before the response is reported once; later submits are refused")
    func clientReset() {
        let pair = SessionPair()
        let id = pair.client.request(FrameBuilder.request(method: "POST"), body: Array("partial".utf8))
        pair.pump()
        pair.client.reset(stream: id)
        pair.pump()
        #expect(pair.events.last == .reset(streamID: id, errorCode: .cancel))
        #expect(!pair.server.submitResponse(streamID: id, head: ResponseHead(status: 200)))
        #expect(pair.server.openStreamCount == 0)
    }

    @Test("a client GOAWAY is reported")
    func clientGoAway() {
        let pair = SessionPair()
        pair.client.goAway()
        pair.pump()
        #expect(pair.events == [.goaway(lastStreamID: 0, errorCode: .noError)])
    }

    @Test("graceful shutdown: notice, GOAWAY, in-flight stream finishes, then nothing to read or write")
    func gracefulShutdown() {
        let pair = SessionPair()
        let id = pair.client.request(FrameBuilder.request())
        pair.pump()
        pair.server.shutdownNotice()
        pair.pump()
        #expect(pair.client.goaway?.lastStreamID == Int32.max)
        pair.server.goAway()
        pair.pump()
        #expect(pair.client.goaway?.lastStreamID == id)
        #expect(pair.server.wantsRead)
        pair.server.submitResponse(streamID: id, head: ResponseHead(status: 204))
        pair.pump()
        #expect(pair.client.streams[id]!.status == 204)
        #expect(!pair.server.wantsRead)
        #expect(!pair.server.wantsWrite)
    }

    @Test("a HEAD response keeps its content-length but sends no body")
    func headResponse() {
        let pair = SessionPair()
        let id = pair.client.request(FrameBuilder.request(method: "HEAD"))
        pair.pump()
        pair.server.submitResponse(streamID: id, head: ResponseHead(status: 200), body: Array("hello".utf8))
        pair.pump()
        let stream = pair.client.streams[id]!
        #expect(stream.status == 200 && stream.body.isEmpty && stream.closed && stream.errorCode == 0)
        #expect(stream.headers.first { $0.0 == "content-length" }?.1 == "5")
    }

    @Test("split cookie fields are joined for the HTTP/1.1 hop")
    func cookiesJoined() {
        let pair = SessionPair()
        pair.client.request(FrameBuilder.request([("cookie", "a=1"), ("x-other", "y"), ("cookie", "b=2")]))
        pair.pump()
        let head = pair.requests()[0].1
        #expect(head.headers.values("cookie") == ["a=1; b=2"])
        #expect(head.headers["x-other"] == "y")
    }

    @Test("Host stands in for a missing :authority")
    func hostAsAuthority() {
        let pair = SessionPair()
        pair.client.request([(":method", "GET"), (":scheme", "https"), (":path", "/x"), ("host", "login.acme.com")])
        pair.pump()
        #expect(pair.requests().first?.1.authority == "login.acme.com")
    }

    @Test("answering before the upload ends drains the rest of it, so the client finishes without an error")
    func earlyResponseDrainsUpload() {
        let pair = SessionPair()
        pair.onEvent = { event, server in
            if case .request(let id, _, false) = event {
                server.submitResponse(streamID: id, head: ResponseHead(status: 401), body: Array("no".utf8))
            }
        }
        let id = pair.client.request(
            FrameBuilder.request(method: "POST"), body: [UInt8](repeating: 1, count: 200_000))
        pair.pump()
        let stream = pair.client.streams[id]!
        #expect(stream.status == 401)
        #expect(stream.closed && stream.errorCode == 0)
        #expect(!pair.events.contains(.endStream(streamID: id)))
        #expect(pair.server.openStreamCount == 0)
    }

    @Test("an upload that goes on past the drain bound after an early answer is stopped with RST_STREAM(NO_ERROR)")
    func earlyResponseResetsLongUpload() {
        var limits = HTTP2Limits()
        limits.maxDrainedBodyBytes = 10_000
        let pair = SessionPair(limits: limits)
        pair.onEvent = { event, server in
            if case .request(let id, _, false) = event {
                server.submitResponse(streamID: id, head: ResponseHead(status: 401), body: Array("no".utf8))
            }
        }
        let id = pair.client.request(
            FrameBuilder.request(method: "POST"), body: [UInt8](repeating: 1, count: 200_000))
        pair.pump()
        let stream = pair.client.streams[id]!
        #expect(stream.status == 401)
        #expect(stream.body == Array("no".utf8), "RFC 9113 §8.1: the response stands")
        #expect(stream.closed && stream.errorCode == 0, "reset with NO_ERROR")
        #expect(pair.server.openStreamCount == 0)
    }

    @Test("a body over the limit is cut off and the owner is told, so it can answer 413")
    func bodyTooLarge() {
        var limits = HTTP2Limits()
        limits.maxRequestBodyBytes = 1000
        let pair = SessionPair(limits: limits)
        pair.onEvent = { event, server in
            switch event {
            case .data(let id, let bytes): server.consume(streamID: id, count: bytes.count)
            case .requestBodyTooLarge(let id): server.submitResponse(streamID: id, head: ResponseHead(status: 413))
            default: break
            }
        }
        let id = pair.client.request(FrameBuilder.request(method: "POST"), body: [UInt8](repeating: 2, count: 5000))
        pair.pump()
        #expect(pair.events.contains(.requestBodyTooLarge(streamID: id)))
        #expect(pair.body(of: id).count <= 1000)
        #expect(pair.client.streams[id]!.status == 413)
        #expect(pair.client.streams[id]!.closed)
    }

    @Test("a content-length over the limit is flagged right after the request")
    func declaredLengthTooLarge() {
        var limits = HTTP2Limits()
        limits.maxRequestBodyBytes = 10
        let pair = SessionPair(limits: limits)
        let id = pair.client.request(
            FrameBuilder.request(method: "POST", [("content-length", "11")]), body: Array("01234567890".utf8))
        pair.pump()
        #expect(Array(pair.events.prefix(2).dropFirst()) == [.requestBodyTooLarge(streamID: id)])
        #expect(pair.body(of: id).isEmpty)
    }

    @Test("the application resets a stream; no reset event comes back for it")
    func applicationReset() {
        let pair = SessionPair()
        let id = pair.client.request(FrameBuilder.request())
        pair.pump()
        #expect(pair.server.resetStream(streamID: id, errorCode: .internalError))
        pair.pump()
        #expect(pair.client.streams[id]!.errorCode == HTTP2ErrorCode.internalError.rawValue)
        #expect(!pair.events.contains { if case .reset = $0 { return true } else { return false } })
    }
}
