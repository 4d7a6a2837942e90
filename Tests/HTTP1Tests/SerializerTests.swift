import GatewayCore
import HTTP1
import Testing

@Suite("HTTP/1.1 serializer")
struct SerializerTests {
    @Test("a request head is written byte for byte, with Host from the authority")
    func requestHead() throws {
        let head = RequestHead(
            method: "PATCH", target: "/my-org/details", headers: HTTPFields([("Content-Type", "application/json")]),
            authority: "acme.example")
        let bytes = try HTTP1Serializer.requestHead(head)
        #expect(
            String(decoding: bytes, as: UTF8.self)
                == "PATCH /my-org/details HTTP/1.1\r\nHost: acme.example\r\nContent-Type: application/json\r\n\r\n")
    }

    @Test("an existing Host field is not duplicated")
    func existingHost() throws {
        let head = RequestHead(method: "GET", target: "/", headers: HTTPFields([("host", "a")]), authority: "b")
        #expect(
            String(decoding: try HTTP1Serializer.requestHead(head), as: UTF8.self)
                == "GET / HTTP/1.1\r\nhost: a\r\n\r\n")
    }

    @Test("a serialized request parses back to the same head")
    func roundTrip() throws {
        let head = RequestHead(
            method: "POST", target: "/my-org/members/auth0|1?x=%20",
            headers: HTTPFields([("Host", "h.example:8443"), ("X-Name", "Zoë"), ("Content-Length", "2")]),
            authority: "h.example:8443")
        let events = parseRequests(try HTTP1Serializer.requestHead(head) + Array("ok".utf8))
        #expect(
            events.first
                == .event(
                    .head(head, HTTP1RequestInfo(framing: .contentLength(2), keepAlive: true, expectContinue: false))))
    }

    @Test("a response head is written byte for byte")
    func responseHead() throws {
        let head = ResponseHead(status: 429, headers: HTTPFields([("Retry-After", "1")]))
        #expect(
            String(decoding: try HTTP1Serializer.responseHead(head), as: UTF8.self)
                == "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n\r\n")
        #expect(
            String(
                decoding: try HTTP1Serializer.responseHead(ResponseHead(status: 204), version: .http1_0), as: UTF8.self)
                == "HTTP/1.0 204 No Content\r\n\r\n")
    }

    @Test("a serialized response parses back to the same head")
    func responseRoundTrip() throws {
        let head = ResponseHead(status: 200, headers: HTTPFields([("Content-Length", "0"), ("X-A", "b\tc")]))
        let events = parseResponses(try HTTP1Serializer.responseHead(head), methods: ["GET"])
        #expect(
            events.first
                == .event(
                    .head(head, HTTP1ResponseInfo(version: .http1_1, framing: .contentLength(0), keepAlive: true))))
    }

    @Test(
        "heads that would split the message are refused",
        arguments: [
            RequestHead(method: "GET", target: "/", headers: HTTPFields([("X-A", "a\r\nInjected: 1")]), authority: "a"),
            RequestHead(method: "GET", target: "/", headers: HTTPFields([("X-A", "a\nb")]), authority: "a"),
            RequestHead(method: "GET", target: "/", headers: HTTPFields([("X-A", "a\rb")]), authority: "a"),
            RequestHead(method: "GET", target: "/", headers: HTTPFields([("X-A", "a\u{0}b")]), authority: "a"),
            RequestHead(method: "GET", target: "/", headers: HTTPFields([("X-A\r\nB", "1")]), authority: "a"),
            RequestHead(method: "GET", target: "/", headers: HTTPFields([("X A", "1")]), authority: "a"),
            RequestHead(method: "GET", target: "/", headers: HTTPFields([("", "1")]), authority: "a"),
            RequestHead(method: "GET", target: "/a b", authority: "a"),
            RequestHead(method: "GET", target: "/a\r\nX: 1", authority: "a"),
            RequestHead(method: "GET", target: "", authority: "a"),
            RequestHead(method: "GE T", target: "/", authority: "a"),
            RequestHead(method: "GET", target: "/", authority: "a\r\nX: 1"),
            RequestHead(method: "GET", target: "/"),
        ])
    func refusesRequest(_ head: RequestHead) {
        var out: [UInt8] = [1, 2, 3]
        #expect(throws: HTTP1SerializationError.self) { try HTTP1Serializer.writeRequestHead(head, into: &out) }
        #expect(out == [1, 2, 3])
    }

    @Test(
        "response heads that would split the message are refused",
        arguments: [
            ResponseHead(status: 200, reason: "OK\r\nSet-Cookie: a=b"),
            ResponseHead(status: 200, headers: HTTPFields([("Location", "/a\r\n\r\n<html>")])),
            ResponseHead(status: 200, headers: HTTPFields([("Bad:Name", "1")])),
            ResponseHead(status: 99),
            ResponseHead(status: 1000),
        ])
    func refusesResponse(_ head: ResponseHead) {
        #expect(throws: HTTP1SerializationError.self) { try HTTP1Serializer.responseHead(head) }
    }

    @Test("chunks carry their size in lowercase hex", arguments: [(1, "1"), (10, "a"), (255, "ff"), (4096, "1000")])
    func chunkSizes(_ size: Int, _ hex: String) {
        let bytes = [UInt8](repeating: 0x61, count: size)
        #expect(HTTP1Serializer.chunk(bytes) == Array("\(hex)\r\n".utf8) + bytes + [13, 10])
        #expect(HTTP1Serializer.chunkHeader(size: size) == Array("\(hex)\r\n".utf8))
    }

    @Test("an empty chunk writes nothing, since a zero-size chunk would end the body")
    func emptyChunk() {
        #expect(HTTP1Serializer.chunk([UInt8]()).isEmpty)
    }

    @Test("chunk-encoded bodies with trailers parse back to the same bytes")
    func chunkRoundTrip() throws {
        var rng = SplitMix64(seed: 42)
        let body = (0..<3000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var wire = Array("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        var offset = 0
        while offset < body.count {
            let n = min(Int.random(in: 1...700, using: &rng), body.count - offset)
            wire += HTTP1Serializer.chunk(body[offset..<offset + n])
            offset += n
        }
        let trailers = HTTPFields([("X-Digest", "sha-256=abc")])
        wire += try HTTP1Serializer.lastChunk(trailers: trailers)
        let events = parseRequests(wire)
        #expect(events.count == 4)
        #expect(events[1] == .body(body))
        #expect(events[2] == .event(.trailers(trailers)))
        #expect(HTTP1Serializer.lastChunk == Array("0\r\n\r\n".utf8))
        #expect(throws: HTTP1SerializationError.self) {
            try HTTP1Serializer.lastChunk(trailers: HTTPFields([("X", "a\r\nb")]))
        }
    }
}

@Suite("HTTP/1.1 head builder")
struct HeadBuilderTests {
    @Test("a request head is built byte for byte, growing past its first capacity")
    func request() throws {
        var builder = try HTTP1HeadBuilder(method: "PUT", target: "/my-org/details?x=1", capacity: 0)
        try builder.add("Host", "acme.example")
        let long = String(repeating: "t", count: 5000)
        try builder.add("Authorization", "Bearer " + long)
        try builder.add("X-Obs", "caf\u{e9}\tx")
        let text = String(decoding: builder.finish(), as: UTF8.self)
        #expect(
            text
                == "PUT /my-org/details?x=1 HTTP/1.1\r\nHost: acme.example\r\nAuthorization: Bearer \(long)\r\n"
                + "X-Obs: caf\u{e9}\tx\r\n\r\n")
    }

    @Test(
        "obs-text that is not UTF-8 is written back byte for byte, in field values and the reason phrase",
        arguments: [[0xE9], [0x41, 0xFF, 0x80, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48], [0xEF, 0xBB, 0xBF]]
            as [[UInt8]])
    func obsText(_ raw: [UInt8]) throws {
        let value = raw.withUnsafeBufferPointer(ObsText.string)
        var request = try HTTP1HeadBuilder(method: "GET", target: "/", capacity: 8)
        try request.add("X-Obs", value)
        try request.add(constant: "X-Obs", value)
        #expect(
            request.finish() == Array("GET / HTTP/1.1\r\nX-Obs: ".utf8) + raw + Array("\r\nX-Obs: ".utf8) + raw
                + Array("\r\n\r\n".utf8))
        let response = try HTTP1HeadBuilder(status: 200, reason: value, capacity: 8)
        #expect(response.finish() == Array("HTTP/1.1 200 ".utf8) + raw + Array("\r\n\r\n".utf8))
        // A U+FFxx character (lead byte 0xEF, no escape) is written as the UTF-8 it is.
        var plain = try HTTP1HeadBuilder(method: "GET", target: "/", capacity: 8)
        try plain.add("X-A", "a\u{FF01}b")
        #expect(plain.finish() == Array("GET / HTTP/1.1\r\nX-A: a\u{FF01}b\r\n\r\n".utf8))
    }

    @Test("names and values of every length from 0 to 40 bytes are copied whole; a constant name writes the same")
    func everyLength() throws {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789-ABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        var builder = try HTTP1HeadBuilder(method: "GET", target: "/", capacity: 16)
        var expected = "GET / HTTP/1.1\r\n"
        for length in 0...40 {
            let text = String(
                decoding: (0..<length).map { alphabet[($0 * 7 + length) % alphabet.count] }, as: UTF8.self)
            let name = "N" + text
            try builder.add(name, text)
            expected += "\(name): \(text)\r\n"
        }
        try builder.add(constant: "X-Request-Id", "r-1")
        try builder.add(constant: "Via", "")
        expected += "X-Request-Id: r-1\r\nVia: \r\n\r\n"
        #expect(String(decoding: builder.finish(), as: UTF8.self) == expected)
    }

    @Test(
        "a value with a CTL or DEL is refused at any position, also after a constant name, and nothing is written",
        arguments: [8, 9, 15, 16, 17, 31])
    func refusedValueEveryPosition(length: Int) throws {
        for position in 0..<length {
            for bad: UInt8 in [0x00, 0x0A, 0x0D, 0x1F, 0x7F] {
                var bytes = Array(repeating: UInt8(ascii: "v"), count: length)
                bytes[position] = bad
                let value = String(decoding: bytes, as: UTF8.self)
                var builder = try HTTP1HeadBuilder(method: "GET", target: "/", capacity: 64)
                #expect(throws: HTTP1SerializationError.self) { try builder.add("X-A", value) }
                #expect(throws: HTTP1SerializationError.self) { try builder.add(constant: "X-A", value) }
                #expect(String(decoding: builder.finish(), as: UTF8.self) == "GET / HTTP/1.1\r\n\r\n")
            }
        }
    }

    @Test(
        "a name with a non-tchar byte is refused at any position; tchars other than letters pass everywhere",
        arguments: [1, 7, 8, 9, 15, 16, 17, 31])
    func nameEveryPosition(length: Int) throws {
        for position in 0..<length {
            for bad: [UInt8] in [[0x20], [0x3A], [0x28], [0x22], [0x7F], [0x00], [0xC3, 0xA9]] {
                var bytes = Array(repeating: UInt8(ascii: "n"), count: length)
                bytes.replaceSubrange(position...position, with: bad)
                let name = String(decoding: bytes, as: UTF8.self)
                var builder = try HTTP1HeadBuilder(method: "GET", target: "/", capacity: 64)
                #expect(throws: HTTP1SerializationError.self) { try builder.add(name, "v") }
                #expect(String(decoding: builder.finish(), as: UTF8.self) == "GET / HTTP/1.1\r\n\r\n")
            }
            for good in Array("!#$%&'*+-.^_`|~09AZaz".utf8) {
                var bytes = Array(repeating: UInt8(ascii: "n"), count: length)
                bytes[position] = good
                let name = String(decoding: bytes, as: UTF8.self)
                // HTAB and non-ASCII are valid value bytes at the same position.
                var value = Array(repeating: UInt8(ascii: "v"), count: length + 1)
                value.replaceSubrange(position...position, with: position % 2 == 0 ? [0x09] : [0xC3, 0xA9])
                let text = String(decoding: value, as: UTF8.self)
                var builder = try HTTP1HeadBuilder(status: 200, reason: "OK", capacity: 0)
                try builder.add(name, text)
                #expect(
                    String(decoding: builder.finish(), as: UTF8.self) == "HTTP/1.1 200 OK\r\n\(name): \(text)\r\n\r\n")
            }
        }
    }

    @Test("a response head carries status and reason")
    func response() throws {
        var builder = try HTTP1HeadBuilder(status: 204, reason: "No Content", version: .http1_0, capacity: 16)
        try builder.add("X-A", "1")
        #expect(String(decoding: builder.finish(), as: UTF8.self) == "HTTP/1.0 204 No Content\r\nX-A: 1\r\n\r\n")
    }

    @Test(
        "a decimal value is written as its digits, and the lent bytes equal the array",
        arguments: [0, 7, 10, 99, 100, 123_456, Int.max])
    func decimal(value: Int) throws {
        func build() throws -> HTTP1HeadBuilder {
            var builder = try HTTP1HeadBuilder(status: 200, reason: "OK", capacity: 0)
            builder.add(constant: "Content-Length", decimal: value)
            try builder.add("X-A", "1")
            return builder
        }
        let expected = "HTTP/1.1 200 OK\r\nContent-Length: \(value)\r\nX-A: 1\r\n\r\n"
        #expect(String(decoding: try build().finish(), as: UTF8.self) == expected)
        let lent = try build().finish { Array($0) }
        #expect(String(decoding: lent, as: UTF8.self) == expected)
    }

    @Test(
        "what would change the framing is refused",
        arguments: [
            ("X-Bad Name", "v"), ("", "v"), ("X-Split", "a\r\nInjected: 1"), ("X-Nul", "a\u{0}b"), ("X-Del", "a\u{7f}"),
            ("X-LF", "a\nb"), ("Na:me", "v"),
        ])
    func refused(name: String, value: String) throws {
        var builder = try HTTP1HeadBuilder(method: "GET", target: "/", capacity: 64)
        #expect(throws: HTTP1SerializationError.self) { try builder.add(name, value) }
    }

    @Test("a bad method, target, status or reason is refused before anything is built")
    func refusedStart() {
        #expect(throws: HTTP1SerializationError.self) {
            _ = try HTTP1HeadBuilder(method: "G ET", target: "/", capacity: 8)
        }
        #expect(throws: HTTP1SerializationError.self) {
            _ = try HTTP1HeadBuilder(method: "GET", target: "/a b", capacity: 8)
        }
        #expect(throws: HTTP1SerializationError.self) {
            _ = try HTTP1HeadBuilder(method: "GET", target: "", capacity: 8)
        }
        #expect(throws: HTTP1SerializationError.self) { _ = try HTTP1HeadBuilder(status: 99, reason: "x", capacity: 8) }
        #expect(throws: HTTP1SerializationError.self) {
            _ = try HTTP1HeadBuilder(status: 200, reason: "O\r\nK", capacity: 8)
        }
    }
}
