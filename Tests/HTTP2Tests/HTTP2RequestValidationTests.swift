import GatewayCore
import Testing

@testable import HTTP2

/// RFC 9113 §8.3 and §8.2 rules, checked on hand-built HEADERS frames: each malformed request must be refused
/// with RST_STREAM(PROTOCOL_ERROR) on its stream, never reach the owner, and leave the connection up.
/// A session with `maxConcurrentStreams`, past the preface, whose SETTINGS the client has acknowledged.
private func acknowledgedPeer(maxConcurrentStreams: Int) -> RawPeer {
    var limits = HTTP2Limits()
    limits.maxConcurrentStreams = maxConcurrentStreams
    let peer = RawPeer(limits: limits)
    peer.send(peer.build.start() + peer.build.settings(ack: true))
    return peer
}

@Suite("HTTP2ServerSession request validation")
struct HTTP2RequestValidationTests {
    static let base: [(String, String)] = [(":method", "GET"), (":scheme", "https"), (":authority", "a.example")]

    static let malformed: [(String, [(String, String)])] = [
        ("missing :path", base),
        ("missing :method", [(":scheme", "https"), (":authority", "a.example"), (":path", "/")]),
        ("missing :scheme", [(":method", "GET"), (":authority", "a.example"), (":path", "/")]),
        ("empty :path", base + [(":path", "")]),
        ("duplicate :path", base + [(":path", "/"), (":path", "/x")]),
        ("unknown pseudo-header", base + [(":path", "/"), (":foo", "bar")]),
        (
            "pseudo-header after a regular field",
            [(":method", "GET"), ("x-a", "1"), (":scheme", "https"), (":path", "/")]
        ),
        ("response pseudo-header in a request", base + [(":path", "/"), (":status", "200")]),
        ("connection", base + [(":path", "/"), ("connection", "keep-alive")]),
        ("keep-alive", base + [(":path", "/"), ("keep-alive", "timeout=5")]),
        ("proxy-connection", base + [(":path", "/"), ("proxy-connection", "keep-alive")]),
        ("transfer-encoding", base + [(":path", "/"), ("transfer-encoding", "chunked")]),
        ("upgrade", base + [(":path", "/"), ("upgrade", "websocket")]),
        ("te other than trailers", base + [(":path", "/"), ("te", "gzip")]),
        ("upper-case field name", base + [(":path", "/"), ("X-Upper", "1")]),
        ("field name with a space", base + [(":path", "/"), ("x bad", "1")]),
        ("field value with CR LF", base + [(":path", "/"), ("x-a", "1\r\nx-b: 2")]),
        ("field value with NUL", base + [(":path", "/"), ("x-a", "1\u{0}")]),
        ("field value with leading space", base + [(":path", "/"), ("x-a", " 1")]),
        ("Host differing from :authority", base + [(":path", "/"), ("host", "b.example")]),
        ("invalid content-length", base + [(":path", "/"), ("content-length", "1x")]),
    ]

    @Test("malformed requests are reset with PROTOCOL_ERROR", arguments: malformed)
    func malformedRequestIsReset(name: String, fields: [(String, String)]) {
        let peer = RawPeer()
        peer.send(peer.build.start() + peer.build.headers(stream: 1, fields))
        #expect(peer.requests.isEmpty, "\(name)")
        let resets = peer.frames(.rstStream, stream: 1)
        #expect(resets.count == 1, "\(name)")
        #expect(resets.first?.errorCode == HTTP2ErrorCode.protocolError.rawValue, "\(name)")
        #expect(peer.frames(.goaway).isEmpty, "\(name)")
        #expect(peer.connectionErrors.isEmpty, "\(name)")

        // The connection still serves the next request.
        peer.send(peer.build.headers(stream: 3, FrameBuilder.request()))
        #expect(peer.requests.map(\.0) == [3], "\(name)")
    }

    static let accepted: [(String, [(String, String)])] = [
        ("te: trailers", base + [(":path", "/"), ("te", "trailers")]),
        ("Host equal to :authority, any case", base + [(":path", "/"), ("host", "A.Example")]),
        ("OPTIONS *", [(":method", "OPTIONS"), (":scheme", "https"), (":authority", "a.example"), (":path", "*")]),
    ]

    @Test("well-formed edge cases are accepted", arguments: accepted)
    func wellFormedIsAccepted(name: String, fields: [(String, String)]) {
        let peer = RawPeer()
        peer.send(peer.build.start() + peer.build.headers(stream: 1, fields))
        #expect(peer.requests.count == 1, "\(name)")
        #expect(peer.frames(.rstStream).isEmpty, "\(name)")
    }

    @Test("a body shorter than its content-length resets the announced stream")
    func contentLengthMismatch() {
        let peer = RawPeer()
        peer.send(
            peer.build.start()
                + peer.build.headers(
                    stream: 1, FrameBuilder.request(method: "POST", [("content-length", "5")]), endStream: false)
                + peer.build.data(stream: 1, Array("abc".utf8), endStream: true))
        #expect(peer.requests.count == 1)
        #expect(peer.frames(.rstStream, stream: 1).first?.errorCode == HTTP2ErrorCode.protocolError.rawValue)
        #expect(peer.events.last == .reset(streamID: 1, errorCode: .protocolError))
    }

    @Test("trailers end the request body; their fields are not passed on")
    func trailersEndTheRequest() {
        let peer = RawPeer()
        peer.send(
            peer.build.start()
                + peer.build.headers(stream: 1, FrameBuilder.request(method: "POST"), endStream: false)
                + peer.build.data(stream: 1, Array("abc".utf8))
                + peer.build.headers(stream: 1, [("x-checksum", "1")], endStream: true))
        #expect(
            peer.events == [
                .request(streamID: 1, head: peer.requests[0].1, endStream: false),
                .data(streamID: 1, bytes: Array("abc".utf8)),
                .endStream(streamID: 1),
            ])
        #expect(!peer.requests[0].1.headers.contains("x-checksum"))
    }

    @Test(
        "a HEADERS frame on a stream id the client skipped is a connection error (RFC 9113 §5.1.1)",
        arguments: [
            [5, 3], [3, 1], [1, 7, 5], [1, 7, 3],
            // Twelve skips, more ranges than are kept apart: the oldest skipped id still counts.
            Array(stride(from: 3, through: 47, by: 4)) + [1], Array(stride(from: 3, through: 47, by: 4)) + [21],
        ])
    func skippedStreamID(ids: [Int32]) {
        let peer = RawPeer()
        var bytes = peer.build.start()
        for id in ids { bytes += peer.build.headers(stream: id, FrameBuilder.request(path: "/ok")) }
        peer.send(bytes)
        #expect(peer.requests.map(\.0) == Array(ids.dropLast()))
        #expect(peer.connectionErrors == [.protocolError(.protocolError)])
        #expect(peer.frames(.goaway).first?.errorCode == HTTP2ErrorCode.protocolError.rawValue)
        #expect(!peer.server.wantsRead)
    }

    @Test("PRIORITY on stream 0 is a connection error (RFC 9113 §6.3); on a stream it is ignored")
    func priorityOnStreamZero() {
        let ok = RawPeer()
        ok.send(ok.build.start() + ok.build.frame(.priority, stream: 3, payload: [0, 0, 0, 1, 15]))
        #expect(ok.connectionErrors.isEmpty)
        let peer = RawPeer()
        peer.send(peer.build.start() + peer.build.frame(.priority, stream: 0, payload: [0, 0, 0, 1, 15]))
        #expect(peer.connectionErrors == [.protocolError(.protocolError)])
        #expect(peer.frames(.goaway).first?.errorCode == HTTP2ErrorCode.protocolError.rawValue)
    }

    @Test(
        "a PRIORITY frame making its stream depend on itself is a PROTOCOL_ERROR (RFC 9113 §5.3.1), idle or open, in one write or byte by byte",
        arguments: [false, true])
    func prioritySelfDependency(byteByByte: Bool) {
        func send(_ peer: RawPeer, _ bytes: [UInt8]) {
            if byteByByte {
                for byte in bytes { peer.send([byte]) }
            } else {
                peer.send(bytes)
            }
        }
        // Exclusive bit set: the dependency is the low 31 bits.
        let idle = RawPeer()
        send(idle, idle.build.start() + idle.build.frame(.priority, stream: 1, payload: [0x80, 0, 0, 1, 15]))
        #expect(idle.connectionErrors == [.protocolError(.protocolError)])
        #expect(idle.frames(.goaway).first?.errorCode == HTTP2ErrorCode.protocolError.rawValue)
        let open = RawPeer()
        send(
            open,
            open.build.start() + open.build.headers(stream: 1, FrameBuilder.request(path: "/ok"), endStream: false)
                + open.build.frame(.priority, stream: 1, payload: [0, 0, 0, 1, 15]))
        #expect(open.requests.map(\.0) == [1], "what came before the frame is processed")
        #expect(open.connectionErrors == [.protocolError(.protocolError)])
        // Another stream's dependency, and a payload that merely contains the stream id later, pass.
        let other = RawPeer()
        send(
            other,
            other.build.start() + other.build.frame(.priority, stream: 1, payload: [0, 0, 0, 3, 1])
                + other.build.frame(.priority, stream: 3, payload: [0, 0, 0, 1, 3])
                + other.build.headers(stream: 3, FrameBuilder.request(path: "/ok")))
        #expect(other.connectionErrors.isEmpty)
        #expect(other.requests.map(\.0) == [3])
    }

    @Test("after the client's GOAWAY with no stream open the session wants neither to read nor to write")
    func clientGoAwayEndsTheSession() {
        let peer = RawPeer()
        peer.send(peer.build.start() + peer.build.goaway(lastStream: 0))
        peer.send(peer.build.ping(7))
        #expect(!peer.server.wantsRead)
        #expect(!peer.server.wantsWrite)
    }

    @Test("ids counting up by two and trailers on an open lower stream are no error")
    func usedStreamIDs() {
        let peer = RawPeer()
        peer.send(
            peer.build.start()
                + peer.build.headers(stream: 1, FrameBuilder.request(method: "POST"), endStream: false)
                + peer.build.headers(stream: 3, FrameBuilder.request(path: "/ok"))
                + peer.build.headers(stream: 1, [("x-checksum", "1")], endStream: true)
                + peer.build.headers(stream: 5, FrameBuilder.request(path: "/ok")))
        #expect(peer.requests.map(\.0) == [1, 3, 5])
        #expect(peer.connectionErrors.isEmpty)
    }

    @Test("oversized trailers reset the stream")
    func oversizedTrailers() {
        var limits = HTTP2Limits()
        limits.maxHeaderListSize = 256
        let peer = RawPeer(limits: limits)
        peer.send(
            peer.build.start()
                + peer.build.headers(stream: 1, FrameBuilder.request(method: "POST"), endStream: false)
                + peer.build.headers(stream: 1, [("x-big", String(repeating: "t", count: 300))], endStream: true))
        #expect(peer.requests.count == 1)
        #expect(peer.frames(.rstStream, stream: 1).first?.errorCode == HTTP2ErrorCode.internalError.rawValue)
        #expect(peer.events.last == .reset(streamID: 1, errorCode: .internalError))
    }

    @Test("an oversized header list is answered 431 and never reaches the owner")
    func oversizedHeaderList() {
        var limits = HTTP2Limits()
        limits.maxHeaderListSize = 1024
        let peer = RawPeer(limits: limits)
        let big = String(repeating: "a", count: 1100)
        peer.send(peer.build.start() + peer.build.headers(stream: 1, FrameBuilder.request([("x-big", big)])))
        #expect(peer.requests.isEmpty)
        let response = peer.frames(.headers, stream: 1)
        #expect(response.count == 1)
        #expect(response.first?.field(":status") == "431")
        // The tenant's error shape, as HTTP/1.1's 431 has; the body's DATA frame ends the stream.
        let body = peer.frames(.data, stream: 1)
        #expect(String(decoding: body.flatMap(\.payload), as: UTF8.self).contains("\"status\":431"))
        #expect(body.last.map { $0.flags & FrameFlag.endStream != 0 } == true)
        #expect(peer.server.openStreamCount == 0)

        // Just under the limit passes: 4 pseudo-headers + the field, each counted as name + value + 32.
        let fits = 1024 - (32 * 5 + 7 + 3 + 7 + 5 + 10 + 17 + 5 + 15 + 5)
        peer.send(peer.build.headers(stream: 3, FrameBuilder.request([("x-big", String(repeating: "b", count: fits))])))
        #expect(peer.requests.map(\.0) == [3])
    }

    @Test("an oversized header list on an open upload gets 431; the body that follows is drained without error")
    func oversizedHeaderListWithBodyPending() {
        var limits = HTTP2Limits()
        limits.maxHeaderListSize = 1024
        let peer = RawPeer(limits: limits)
        let big = String(repeating: "a", count: 2000)
        peer.send(
            peer.build.start()
                + peer.build.headers(
                    stream: 1, FrameBuilder.request(method: "POST", [("x-big", big)]), endStream: false))
        #expect(peer.requests.isEmpty)
        #expect(peer.frames(.headers, stream: 1).first?.field(":status") == "431")
        #expect(peer.frames(.rstStream, stream: 1).isEmpty)
        peer.send(peer.build.data(stream: 1, [UInt8](repeating: 7, count: 100), endStream: true))
        #expect(peer.requests.isEmpty)
        #expect(peer.frames(.rstStream, stream: 1).isEmpty)
        #expect(peer.server.openStreamCount == 0)
    }

    @Test("too many header fields is treated like an oversized list")
    func tooManyFields() {
        var limits = HTTP2Limits()
        limits.maxHeaderCount = 10
        let peer = RawPeer(limits: limits)
        let fields = (0..<7).map { ("x-\($0)", "v") }
        peer.send(peer.build.start() + peer.build.headers(stream: 1, FrameBuilder.request(fields)))
        #expect(peer.requests.isEmpty)
        #expect(peer.frames(.headers, stream: 1).first?.field(":status") == "431")
    }

    @Test("streams over SETTINGS_MAX_CONCURRENT_STREAMS are refused before the client acknowledges SETTINGS")
    func concurrentStreamsRefused() {
        var limits = HTTP2Limits()
        limits.maxConcurrentStreams = 3
        let peer = RawPeer(limits: limits)
        var bytes = peer.build.start()
        for id: Int32 in [1, 3, 5, 7] {
            bytes += peer.build.headers(stream: id, FrameBuilder.request(method: "POST"), endStream: false)
        }
        peer.send(bytes)
        #expect(peer.requests.map(\.0) == [1, 3, 5])
        #expect(peer.frames(.rstStream).map(\.stream) == [7])
        #expect(peer.frames(.rstStream).first?.errorCode == HTTP2ErrorCode.refusedStream.rawValue)
        #expect(peer.frames(.goaway).isEmpty)
        let settings = peer.frames(.settings).first { $0.flags & FrameFlag.ack == 0 }
        // SETTINGS_MAX_CONCURRENT_STREAMS (0x3) = 3 is advertised.
        #expect(settings.map { containsSetting($0.payload, id: 0x3, value: 3) } == true)
    }

    @Test("after the client acknowledged SETTINGS, a stream over the limit is refused and the others go on")
    func concurrentStreamsAfterAck() {
        let peer = acknowledgedPeer(maxConcurrentStreams: 2)
        var bytes: [UInt8] = []
        for id: Int32 in [1, 3, 5] {
            bytes += peer.build.headers(stream: id, FrameBuilder.request(method: "POST"), endStream: false)
        }
        // DATA for the refused stream, sent before the client saw the reset, is dropped with its window returned.
        bytes += peer.build.frame(
            .data, flags: FrameFlag.endStream, stream: 5, payload: Array(repeating: 1, count: 100))
        peer.send(bytes)
        #expect(peer.requests.map(\.0) == [1, 3])
        #expect(peer.frames(.rstStream).map(\.stream) == [5])
        #expect(peer.frames(.rstStream).first?.errorCode == HTTP2ErrorCode.refusedStream.rawValue)
        #expect(peer.frames(.goaway).isEmpty)
        #expect(peer.connectionErrors.isEmpty)
        // The open streams complete; then a new stream fits again.
        peer.send(peer.build.frame(.data, flags: FrameFlag.endStream, stream: 1, payload: []))
        #expect(peer.server.submitResponse(streamID: 1, head: ResponseHead(status: 200)))
        peer.flush()
        #expect(peer.frames(.headers, stream: 1).first?.field(":status") == "200")
        peer.send(peer.build.headers(stream: 7, FrameBuilder.request()))
        #expect(peer.requests.map(\.0) == [1, 3, 7])
        #expect(peer.frames(.rstStream).map(\.stream) == [5])
    }

    @Test("a client that keeps opening streams over the limit is stopped with ENHANCE_YOUR_CALM")
    func refusedStreamFlood() {
        let peer = acknowledgedPeer(maxConcurrentStreams: 1)
        peer.send(peer.build.headers(stream: 1, FrameBuilder.request(method: "POST"), endStream: false))
        var id: Int32 = 3
        for _ in 0..<2000 where peer.connectionErrors.isEmpty {
            peer.send(peer.build.headers(stream: id, FrameBuilder.request()))
            id += 2
        }
        #expect(peer.connectionErrors == [.flood(.glitches)])
        #expect(peer.frames(.goaway).last?.errorCode == HTTP2ErrorCode.enhanceYourCalm.rawValue)
        #expect(peer.requests.map(\.0) == [1])
    }

    @Test("the server advertises its limits in its first SETTINGS frame")
    func advertisedSettings() {
        let peer = RawPeer()
        peer.flush()
        let settings = peer.frames(.settings)
        #expect(settings.count == 1)
        let payload = settings[0].payload
        #expect(containsSetting(payload, id: 0x3, value: 100))
        #expect(containsSetting(payload, id: 0x4, value: 65_535))
        #expect(containsSetting(payload, id: 0x6, value: 16_384))
        #expect(containsSetting(payload, id: 0x2, value: 0))
        // The connection window is raised to 1 MiB right after.
        let update = peer.frames(.windowUpdate, stream: 0)
        #expect(update.first?.payload == be32(UInt32(1 << 20) - 65_535))
    }

    @Test("a connection that does not start with the preface ends with GOAWAY")
    func badPreface() {
        let peer = RawPeer()
        peer.send(Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
        #expect(peer.connectionErrors == [.badPreface])
        #expect(peer.frames(.goaway).first?.errorCode == HTTP2ErrorCode.protocolError.rawValue)
        #expect(!peer.server.wantsRead)
        #expect(!peer.server.wantsWrite)
    }

    @Test(
        "requests HTTP/1.1 would refuse are refused over HTTP/2 as well, before the owner sees them",
        arguments: [
            (":path", "/m/echo#frag", "400"), (":path", "/m/caf\u{E9}", "400"), (":path", "/a b", "reset"),
            (":path", "/bad%zz", "400"), (":path", "/bad%4", "400"), (":path", "relative", "reset"),
            (":path", "/" + String(repeating: "p", count: 9000), "414"), (":authority", "u@login.acme.test", "400"),
            // An empty port is allowed (RFC 3986 `port = *DIGIT`), as in HTTP/1.1's Host check, which both share.
            (":authority", "a:99999", "400"), (":authority", "a:12x", "400"), (":authority", "a:", "ok"),
            (":authority", "[zz::1]", "400"), ("x-latin1", "caf\u{FFFD}", "ok"),
            (":path", "/my-org/members/auth0|123/roles", "ok"), (":path", "/a?b=[1]&c=%7C", "ok"),
            ("host", "u@acme.us.auth0.com", "400"),
            (":scheme", "ftp", "400"), (":scheme", "http", "ok"), (":scheme", "HTTPS", "ok"),
        ])
    func refusedLikeHTTP1(name: String, value: String, expected: String) {
        let peer = RawPeer()
        var fields = FrameBuilder.request(path: "/ok")
        fields.removeAll { $0.0 == name }
        fields.append((name, value))
        if name.hasPrefix(":") {
            // Pseudo-headers come first (nghttp2 checks the order).
            fields.sort { ($0.0.hasPrefix(":") ? 0 : 1) < ($1.0.hasPrefix(":") ? 0 : 1) }
        }
        peer.send(peer.build.start() + peer.build.headers(stream: 1, fields))
        if expected == "ok" {
            #expect(peer.requests.count == 1, "\(name): \(value)")
            return
        }
        #expect(peer.requests.isEmpty, "\(name): \(value) reached the owner")
        if expected == "reset" {
            // nghttp2's own check (RFC 9113 §8.1.1): malformed, a stream error.
            #expect(peer.frames(.rstStream, stream: 1).first?.errorCode == HTTP2ErrorCode.protocolError.rawValue)
            return
        }
        #expect(peer.frames(.headers, stream: 1).first?.field(":status") == expected, "\(name): \(value)")
        #expect(peer.frames(.headers, stream: 1).first?.field("date")?.hasSuffix(" GMT") == true)
    }

    @Test(
        "a refusal of a HEAD request carries its headers and no content (RFC 9110 §9.3.2)",
        arguments: [
            (":path", "/" + String(repeating: "p", count: 9000), "414"), (":scheme", "foo", "400"),
            ("x-big", String(repeating: "a", count: 1100), "431"), (":method", "CONNECT", "501"),
        ])
    func headRefusalHasNoContent(name: String, value: String, expected: String) {
        var limits = HTTP2Limits()
        if expected == "431" { limits.maxHeaderListSize = 1024 }
        let peer = RawPeer(limits: limits)
        var fields = FrameBuilder.request(method: "HEAD", path: "/ok")
        if name == ":method" {
            // CONNECT names no path; it is refused the same, and the fields of a HEAD do not apply.
            fields = [(":method", value), (":authority", "login.acme.test:443")]
        } else {
            fields.removeAll { $0.0 == name }
            fields.append((name, value))
            fields.sort { ($0.0.hasPrefix(":") ? 0 : 1) < ($1.0.hasPrefix(":") ? 0 : 1) }
        }
        peer.send(peer.build.start() + peer.build.headers(stream: 1, fields))
        #expect(peer.requests.isEmpty)
        let response = peer.frames(.headers, stream: 1).first
        #expect(response?.field(":status") == expected, "\(name)")
        if name == ":method" {
            // Not a HEAD: the refusal has its body.
            #expect(!peer.frames(.data, stream: 1).isEmpty)
            return
        }
        #expect(response.map { $0.flags & FrameFlag.endStream != 0 } == true, "the HEADERS frame ends the stream")
        #expect(peer.frames(.data, stream: 1).isEmpty, "no DATA in an answer to HEAD")
        #expect(Int(response?.field("content-length") ?? "") ?? 0 > 0, "the length a GET would have got")
        #expect(peer.frames(.rstStream, stream: 1).isEmpty)
    }

    @Test(
        "expect: 100-continue with a body is reported; its 100 goes out once, when the owner asks (RFC 9110 §10.1.1)",
        arguments: [("100-continue", false, true), ("100-Continue", false, true), ("100-continue", true, false)])
    func expectContinue(value: String, endStream: Bool, interim: Bool) {
        let peer = RawPeer()
        let fields = FrameBuilder.request(method: "POST", path: "/ok", [("expect", value)])
        peer.send(peer.build.start() + peer.build.headers(stream: 1, fields, endStream: endStream))
        #expect(peer.requests.count == 1)
        // The session never answers for the owner: a refusal decided on the head goes out instead of a 100.
        #expect(peer.frames(.headers, stream: 1).isEmpty)
        #expect(peer.server.expectsContinue(streamID: 1) == interim)
        peer.server.sendContinue(streamID: 1)
        peer.server.sendContinue(streamID: 1)
        peer.flush()
        let statuses = peer.frames(.headers, stream: 1).compactMap { $0.field(":status") }
        #expect(statuses == (interim ? ["100"] : []))
        #expect(!peer.server.expectsContinue(streamID: 1))
    }

    @Test("no 100 once a final response has started: the client is already answered")
    func noContinueAfterAnswer() {
        let peer = RawPeer()
        let fields = FrameBuilder.request(method: "POST", path: "/ok", [("expect", "100-continue")])
        peer.send(peer.build.start() + peer.build.headers(stream: 1, fields, endStream: false))
        _ = peer.server.submitResponse(streamID: 1, head: ResponseHead(status: 401), body: Array("{}".utf8))
        peer.server.sendContinue(streamID: 1)
        peer.flush()
        let statuses = peer.frames(.headers, stream: 1).compactMap { $0.field(":status") }
        #expect(statuses == ["401"])
    }

    @Test("a header value with obs-text (RFC 9110 §5.5) is kept byte for byte, and CONNECT gets 501")
    func obsTextAndConnect() throws {
        let peer = RawPeer()
        let fields = FrameBuilder.request(path: "/ok").map { (Array($0.0.utf8), Array($0.1.utf8)) }
        let raw: [UInt8] = [0x63, 0x61, 0x66, 0xE9]
        peer.send(peer.build.start() + peer.build.headers(stream: 1, bytes: fields + [(Array("x-latin1".utf8), raw)]))
        let value = try #require(peer.requests.first?.1.headers["x-latin1"])
        #expect(ObsText.withWireBytes(of: value) { Array($0) } == raw)
        // And on the way down: the response carries the same bytes.
        #expect(
            peer.server.submitResponse(
                streamID: 1, head: ResponseHead(status: 200, headers: HTTPFields([("x-latin1", value)])), body: []))
        peer.flush()
        let sent = try #require(peer.frames(.headers, stream: 1).first?.field("x-latin1"))
        #expect(ObsText.withWireBytes(of: sent) { Array($0) } == raw)
        peer.send(
            peer.build.headers(stream: 3, [(":method", "CONNECT"), (":authority", "example.com:443")]))
        #expect(peer.frames(.headers, stream: 3).first?.field(":status") == "501")
    }
}

func containsSetting(_ payload: [UInt8], id: UInt16, value: UInt32) -> Bool {
    stride(from: 0, to: payload.count - 5, by: 6).contains {
        Array(payload[$0..<($0 + 2)]) == be16(id) && Array(payload[($0 + 2)..<($0 + 6)]) == be32(value)
    }

}

/// RFC 9113 §5.1: frames on streams in the "half-closed (remote)" and "closed" states (h2spec http2/5.1).
@Suite("HTTP2ServerSession closed stream states")
struct HTTP2ClosedStreamTests {
    /// A stream error or a connection error, both of type STREAM_CLOSED (RFC 9113 §5.4: an endpoint may treat a
    /// stream error as a connection error).
    func streamClosedError(_ peer: RawPeer, stream: Int32) -> Bool {
        let code = HTTP2ErrorCode.streamClosed.rawValue
        return peer.frames(.rstStream, stream: stream).contains { $0.errorCode == code }
            || peer.frames(.goaway).contains { $0.errorCode == code }
    }

    @Test("DATA on a half-closed (remote) stream is a STREAM_CLOSED error")
    func dataOnHalfClosedRemote() {
        let peer = RawPeer()
        peer.send(peer.build.start() + peer.build.headers(stream: 1, FrameBuilder.request(path: "/ok")))
        peer.send(peer.build.data(stream: 1, [1, 2, 3]))
        #expect(streamClosedError(peer, stream: 1), "\(peer.reader.frames)")
    }

    @Test("DATA or HEADERS after the client reset the stream is a STREAM_CLOSED error", arguments: ["data", "headers"])
    func framesAfterClientReset(frame: String) {
        let peer = RawPeer()
        peer.send(
            peer.build.start() + peer.build.headers(stream: 1, FrameBuilder.request(path: "/ok"), endStream: false))
        peer.send(peer.build.rstStream(stream: 1))
        peer.send(
            frame == "data"
                ? peer.build.data(stream: 1, [1, 2, 3])
                : peer.build.headers(stream: 1, FrameBuilder.request(path: "/ok")))
        #expect(streamClosedError(peer, stream: 1), "\(frame): \(peer.reader.frames)")
    }

    @Test("DATA or HEADERS after the stream closed normally (END_STREAM both ways) is a STREAM_CLOSED error")
    func framesAfterNormalClose() {
        for frame in ["data", "headers"] {
            let peer = RawPeer()
            peer.send(peer.build.start() + peer.build.headers(stream: 1, FrameBuilder.request(path: "/ok")))
            #expect(peer.server.submitResponse(streamID: 1, head: ResponseHead(status: 200), body: Array("{}".utf8)))
            peer.flush()
            #expect(peer.server.openStreamCount == 0)
            let late =
                frame == "data"
                ? peer.build.data(stream: 1, [1]) : peer.build.headers(stream: 1, FrameBuilder.request(path: "/ok"))
            peer.send(late)
            #expect(streamClosedError(peer, stream: 1), "\(frame): \(peer.reader.frames)")
            #expect(peer.connectionErrors == [.protocolError(.streamClosed)])
        }
    }

    @Test("frames the client had in flight on a stream the server reset are ignored, not an error")
    func framesAfterServerReset() {
        let peer = RawPeer()
        peer.send(
            peer.build.start() + peer.build.headers(stream: 1, FrameBuilder.request(path: "/ok"), endStream: false))
        #expect(peer.server.resetStream(streamID: 1, errorCode: .cancel))
        peer.flush()
        peer.send(peer.build.data(stream: 1, [1, 2, 3]) + peer.build.data(stream: 1, [4], endStream: true))
        peer.send(peer.build.windowUpdate(stream: 1, increment: 10) + peer.build.rstStream(stream: 1))
        peer.send(peer.build.headers(stream: 3, FrameBuilder.request(path: "/next")))
        #expect(peer.connectionErrors.isEmpty)
        #expect(peer.frames(.goaway).isEmpty)
        #expect(peer.requests.map(\.0) == [1, 3])
    }

    @Test("WINDOW_UPDATE and RST_STREAM after a normal close are allowed (RFC 9113 §5.1)")
    func windowUpdateAfterNormalClose() {
        let peer = RawPeer()
        peer.send(peer.build.start() + peer.build.headers(stream: 1, FrameBuilder.request(path: "/ok")))
        #expect(peer.server.submitResponse(streamID: 1, head: ResponseHead(status: 200), body: Array("{}".utf8)))
        peer.flush()
        peer.send(peer.build.windowUpdate(stream: 1, increment: 10) + peer.build.rstStream(stream: 1))
        #expect(peer.connectionErrors.isEmpty)
    }

    @Test("DATA on a stream id the client skipped (closed without opening, RFC 9113 §5.1.1) is STREAM_CLOSED")
    func dataOnSkippedStream() {
        let peer = RawPeer()
        peer.send(peer.build.start() + peer.build.headers(stream: 5, FrameBuilder.request(path: "/ok")))
        #expect(peer.requests.map(\.0) == [5])
        peer.send(peer.build.data(stream: 3, [1, 2, 3]))
        #expect(streamClosedError(peer, stream: 3), "\(peer.reader.frames)")
        #expect(peer.connectionErrors == [.protocolError(.streamClosed)])
    }

    @Test("the check follows frames split anywhere across reads", arguments: [1, 2, 5, 9, 13])
    func splitAcrossReads(chunk: Int) {
        let peer = RawPeer()
        let bytes =
            peer.build.start() + peer.build.headers(stream: 1, FrameBuilder.request(path: "/ok"), endStream: false)
            + peer.build.data(stream: 1, Array(repeating: 7, count: 20)) + peer.build.rstStream(stream: 1)
            + peer.build.headers(stream: 3, FrameBuilder.request(path: "/b")) + peer.build.data(stream: 1, [1])
        var i = 0
        while i < bytes.count {
            peer.send(Array(bytes[i..<min(bytes.count, i + chunk)]))
            i += chunk
        }
        #expect(peer.requests.map(\.0) == [1, 3])
        #expect(peer.connectionErrors == [.protocolError(.streamClosed)])
    }
}

/// RFC 9113 §6.9.2: SETTINGS_INITIAL_WINDOW_SIZE changes every open stream's send window by the difference.
@Suite("HTTP2ServerSession initial window size changes")
struct HTTP2InitialWindowTests {
    /// Stream 1 open (its body still to come), its send window lifted to exactly 2^31-1 by a legal WINDOW_UPDATE.
    func peerAtTheLargestWindow() -> RawPeer {
        let peer = RawPeer()
        peer.send(
            peer.build.start()
                + peer.build.headers(
                    stream: 1, FrameBuilder.request(method: "POST", path: "/ok", [("content-length", "2")]),
                    endStream: false))
        peer.send(peer.build.windowUpdate(stream: 1, increment: UInt32(Int32.max) - 65_535))
        #expect(peer.connectionErrors.isEmpty)
        return peer
    }

    @Test("a change that lifts a stream's window past 2^31-1 is a connection error of type FLOW_CONTROL_ERROR")
    func overflowEndsTheConnection() {
        let peer = peerAtTheLargestWindow()
        peer.send(peer.build.settings([(0x4, 65_536)]))
        #expect(peer.connectionErrors == [.protocolError(.flowControlError)])
        #expect(peer.frames(.goaway).last?.errorCode == HTTP2ErrorCode.flowControlError.rawValue)
    }

    @Test("changes that keep every window within 2^31-1 leave the connection alone")
    func changesThatFit() {
        let peer = peerAtTheLargestWindow()
        peer.send(peer.build.settings([(0x4, 1_000), (0x4, 65_535)]))
        peer.send(peer.build.settings([(0x4, 1_000)]))
        #expect(peer.connectionErrors.isEmpty)
        #expect(peer.frames(.goaway).isEmpty)
        peer.send(peer.build.headers(stream: 3, FrameBuilder.request(path: "/next")))
        #expect(peer.requests.map(\.0) == [1, 3])
    }
}
