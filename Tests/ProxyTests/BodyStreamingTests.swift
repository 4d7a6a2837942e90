import Foundation
import GatewayCore
import HTTP1
import Testing

@testable import Proxy
import TestSupport

@Suite("Request bodies that stream")
struct RequestBodyStreamTests {
    /// Collects what a stream hands its consumer, and the source's pause/resume calls.
    final class Probe {
        var consumed: [UInt8] = []
        var ended = 0
        var pauses: [Bool] = []
    }

    func deliver(_ stream: RequestBodyStream, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { stream.deliver($0) }
    }

    @Test("bytes that arrive before the consumer wait, in order, and the source pauses at the high-water mark")
    func waitsThenFlows() {
        let probe = Probe()
        let stream = RequestBodyStream(length: RequestBodyStream.highWater + 10)
        stream.setSourcePaused = { probe.pauses.append($0) }
        let first = [UInt8](repeating: 1, count: RequestBodyStream.highWater - 1)
        deliver(stream, first)
        #expect(probe.pauses.isEmpty)
        deliver(stream, [2])
        #expect(probe.pauses == [true], "the waiting bytes reached the high-water mark")
        stream.attach(consumer: { probe.consumed.append(contentsOf: $0) }, onEnd: { probe.ended += 1 })
        #expect(probe.consumed == first + [2])
        #expect(probe.pauses == [true, false], "attaching drains the wait and resumes the source")
        deliver(stream, [3, 4])
        #expect(probe.consumed.suffix(2) == [3, 4])
        #expect(probe.ended == 0)
        stream.finish()
        stream.finish()
        #expect(probe.ended == 1)
        #expect(stream.received == RequestBodyStream.highWater + 2)
    }

    @Test("a body that ended before the consumer attached ends at once on attach")
    func endedBeforeAttach() {
        let probe = Probe()
        let stream = RequestBodyStream(length: 3)
        deliver(stream, [7, 8, 9])
        stream.finish()
        stream.attach(consumer: { probe.consumed.append(contentsOf: $0) }, onEnd: { probe.ended += 1 })
        #expect(probe.consumed == [7, 8, 9])
        #expect(probe.ended == 1)
    }

    @Test("a discarded stream drops what waits and what comes, and lets the source read again")
    func discard() {
        let probe = Probe()
        let stream = RequestBodyStream(length: RequestBodyStream.highWater * 2)
        stream.setSourcePaused = { probe.pauses.append($0) }
        deliver(stream, [UInt8](repeating: 0, count: RequestBodyStream.highWater))
        stream.discard()
        #expect(probe.pauses == [true, false])
        deliver(stream, [1, 2, 3])
        stream.finish()
        #expect(stream.received == RequestBodyStream.highWater + 3)
    }

    @Test("the exchange keeps only the body's first bytes, for the recording")
    func keepsPrefix() {
        let exchange = Exchange(
            head: .init(method: "PUT", target: "/x"), body: [], peerAddress: "127.0.0.1", isTLS: false,
            serverName: nil, listenerDomain: nil, requestID: "r", startNanos: 0, writer: NullWriter())
        let stream = RequestBodyStream(length: RequestBodyStream.keptPrefix * 2)
        exchange.attach(stream)
        deliver(stream, [UInt8](repeating: 5, count: RequestBodyStream.keptPrefix - 1))
        deliver(stream, [6, 6, 6])
        #expect(exchange.body.count == RequestBodyStream.keptPrefix)
        #expect(exchange.body.last == 6)
        #expect(exchange.bodyLength == RequestBodyStream.keptPrefix * 2)
    }
}

final class NullWriter: ResponseWriter {
    func writeInformational(_ head: ResponseHead) {}
    func writeHead(_ head: ResponseHead, bodyLength: Int?) {}
    func writeBody(_ bytes: UnsafeRawBufferPointer) {}
    func end() {}
    func abort() {}
    var canAcceptBody: Bool { true }
}

@Suite("Request bodies stream through the proxy", .serialized)
struct BodyStreamingTests {
    /// A body over the streaming threshold, with content that catches reordering or loss.
    static func payload(_ count: Int) -> [UInt8] {
        var state: UInt32 = 2_463_534_242
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            return UInt8(truncatingIfNeeded: state)
        }
    }

    @Test("a large body reaches the upstream intact, with its length, on HTTP/1.1 and HTTP/2")
    func largeUploadIntact() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let body = Self.payload(900_000)
        let file = TestProcess.temporaryDirectory("upload").appendingPathComponent("body.bin")
        try Data(body).write(to: file)
        let digest = SHA256Hex.of(body)
        for flag in ["--http1.1", "--http2"] {
            let out = try f.curl([
                flag, "-X", "PUT", "--data-binary", "@\(file.path)", "-H", "Content-Type: application/octet-stream",
                "https://gateway.test:\(f.tlsPort)/upload",
            ])
            #expect(out.status == 0, "\(flag): \(out.stderr)")
            #expect(out.stdout.contains("\"body_length\": 900000"), "\(flag): \(out.stdout)")
            #expect(out.stdout.contains("\"body_sha256\": \"\(digest)\""), "\(flag): \(out.stdout)")
        }
        let requests = f.upstreamRequests()
        try #require(requests.count == 2)
        for raw in requests {
            #expect(raw.contains("\r\nContent-Length: 900000\r\n"))
            #expect(!raw.contains("Transfer-Encoding"))
        }
    }

    @Test("a body over the listener's limit is refused with 413 on both protocols and never reaches the upstream")
    func overLimit() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let file = TestProcess.temporaryDirectory("toolarge").appendingPathComponent("body.bin")
        try Data(Self.payload(HTTP1Limits().maxBodyBytes + 1)).write(to: file)
        for flag in ["--http1.1", "--http2"] {
            let out = try f.curl([
                flag, "-X", "PUT", "--data-binary", "@\(file.path)", "-o", "/dev/null", "-w", "%{http_code}",
                "https://gateway.test:\(f.tlsPort)/upload",
            ])
            #expect(out.stdout == "413", "\(flag): \(out.stdout) \(out.stderr)")
        }
        #expect(f.upstreamRequests().isEmpty)
    }

    @Test("a body larger than the kernel's buffers streams intact while the upstream stalls (pause and resume)")
    func backpressureAndResume() throws {
        // The upstream hashes 12 MiB before it answers: on a busy machine that took over the fixture's usual 2 s.
        let f = try PassThroughFixture(maxBodyBytes: 16 << 20, responseTimeoutMs: 15_000)
        defer { f.stop() }
        let body = Self.payload(12 << 20)
        let file = TestProcess.temporaryDirectory("stall").appendingPathComponent("body.bin")
        try Data(body).write(to: file)
        let digest = SHA256Hex.of(body)
        for flag in ["--http1.1", "--http2"] {
            // The upstream reads nothing for a second: the gateway must stop taking the body (reading paused, or
            // the stream's window left shut) and take it up again when the upstream drains, or this hangs.
            let out = try f.curl([
                flag, "-X", "PUT", "--data-binary", "@\(file.path)", "https://gateway.test:\(f.tlsPort)/stall",
            ])
            #expect(out.status == 0, "\(flag): \(out.stderr)")
            #expect(out.stdout.contains("\"body_length\": \(12 << 20)"), "\(flag): \(out.stdout)")
            #expect(out.stdout.contains("\"body_sha256\": \"\(digest)\""), "\(flag)")
        }
    }

    @Test("the upstream sees the request before the client has sent all of its body")
    func streamsBeforeComplete() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        // 100 kB of a 300 kB body: a gateway that collected bodies first would wait here until the timeout.
        let head = "PUT /early HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 300000\r\n\r\n"
        let reply = try RawConnection.exchange(port: f.plainPort, head + String(repeating: "b", count: 100_000))
        #expect(reply.hasPrefix("HTTP/1.1 200"), "\(reply)")
        #expect(reply.contains("{\"early\":true}"))
        // The rest of the body was never read, so the connection cannot carry another request.
        #expect(reply.contains("Connection: close"))
    }

    @Test("a keep-alive connection carries the next request after a streamed body")
    func keepAliveAfterStream() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let body = String(repeating: "k", count: 100_000)
        let raw =
            "PUT /one HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            + "GET /two HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n\r\n"
        let reply = try RawConnection.exchange(port: f.plainPort, raw)
        #expect(reply.components(separatedBy: "HTTP/1.1 200").count == 3, "\(reply)")
        #expect(reply.contains("\"path\": \"/one\", \"body_length\": 100000"))
        #expect(reply.contains("\"path\": \"/two\""))
    }
}

/// SHA-256 through the openssl command line: the test target has no crypto of its own.
enum SHA256Hex {
    static func of(_ bytes: [UInt8]) -> String {
        let file = TestProcess.temporaryDirectory("sha").appendingPathComponent("in.bin")
        try? Data(bytes).write(to: file)
        let out = try? TestProcess.run("/usr/bin/openssl", ["dgst", "-sha256", "-r", file.path])
        return String(out?.stdout.prefix(64) ?? "")
    }
}
