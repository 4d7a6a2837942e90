import EventLoop
import Foundation
import GatewayCore
import HTTP1
import TLS
import Testing

@testable import Proxy
import TestSupport

/// Starts the gateway in this process in pass-through mode in front of a loopback upstream that records the raw
/// bytes it receives, and drives it with real clients (curl over HTTP/1.1 and HTTP/2, h2load).
final class PassThroughFixture: @unchecked Sendable {
    // Safety: built once per test and only read afterwards.
    let upstream: BackgroundProcess
    let recordFile: URL
    let upstreamPort: UInt16
    let gateway: Gateway
    let tlsPort: UInt16
    let plainPort: UInt16
    let caFile: URL

    init(
        maxBodyBytes: Int = HTTP1Limits().maxBodyBytes, idleTimeoutMs: Int = 5000, responseTimeoutMs: Int = 2000,
        loops: Int = 2, maxUpstreamConnections: Int = 16, clientIPHeader: String = "X-Forwarded-For",
        minBodyBytesPerSecond: Int = 0
    ) throws {
        let dir = TestProcess.temporaryDirectory("passthrough")
        recordFile = dir.appendingPathComponent("upstream.bin")
        _ = FileManager.default.createFile(atPath: recordFile.path, contents: nil)
        upstreamPort = TestProcess.freePort()
        let script = TestProcess.repositoryRoot.appendingPathComponent(
            "Tests/GatewayIntegrationTests/Fixtures/upstream.py")
        upstream = try BackgroundProcess(
            "/usr/bin/env", ["python3", script.path, String(upstreamPort), recordFile.path], logName: "upstream")
        guard TestProcess.waitForPort(upstreamPort) else { throw FixtureError("upstream did not start") }

        let ca = try DevelopmentCertificateAuthority()
        let bundle = try ca.issue(dnsNames: ["gateway.test", "localhost"])
        caFile = dir.appendingPathComponent("ca.pem")
        try ca.certificatePEM.write(to: caFile, atomically: true, encoding: .utf8)
        let tls = try TLSServerContext(certificates: [bundle.certificateEntry()])

        let origin = UpstreamOrigin(
            host: "127.0.0.1", port: upstreamPort, useTLS: false, tlsContext: nil,
            maxConnections: maxUpstreamConnections,
            connectTimeoutMs: 2000, responseTimeoutMs: responseTimeoutMs, idleTimeoutMs: 30000,
            secretHeaders: [("cname-api-key", "secret-edge-key")], clientIPHeader: clientIPHeader)
        let limits = HTTP1Limits(maxBodyBytes: maxBodyBytes)
        let listeners = [
            ListenerProfile(
                address: NetAddress("127.0.0.1:0")!, domain: "gateway.test", tls: tls, http1Limits: limits,
                headerReadTimeoutMs: 1000, idleTimeoutMs: idleTimeoutMs, minBodyBytesPerSecond: minBodyBytesPerSecond,
                allowH2: true),
            ListenerProfile(
                address: NetAddress("127.0.0.1:0")!, domain: "gateway.test", tls: nil, http1Limits: limits,
                headerReadTimeoutMs: 1000, idleTimeoutMs: idleTimeoutMs, minBodyBytesPerSecond: minBodyBytesPerSecond,
                allowH2: true),
        ]
        let snapshot = GatewaySnapshot(
            listeners: listeners, handlers: ForwardAllFactory(origin: origin), generation: 1)
        gateway = Gateway(snapshot: snapshot, loops: loops, maxConnections: 1000, clock: SystemClock())
        let bound = try gateway.start()
        tlsPort = bound[0].port
        plainPort = bound[1].port
    }

    func stop() {
        gateway.shutdown(graceMilliseconds: 1000)
        upstream.stop()
    }

    /// The requests the upstream received, as text each.
    func upstreamRequests() -> [String] {
        upstreamRequestBytes().map { String(decoding: $0, as: UTF8.self) }
    }

    /// The requests the upstream received, as raw bytes each.
    func upstreamRequestBytes() -> [[UInt8]] {
        guard let data = try? Data(contentsOf: recordFile) else { return [] }
        var out: [[UInt8]] = []
        var i = 0
        let bytes = [UInt8](data)
        while i + 4 <= bytes.count {
            let n = Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            out.append(Array(bytes[(i + 4)..<min(bytes.count, i + 4 + n)]))
            i += 4 + n
        }
        return out
    }

    func curl(_ args: [String]) throws -> TestProcess.Output {
        try TestProcess.run(
            "/usr/bin/curl",
            ["-sS", "--cacert", caFile.path, "--resolve", "gateway.test:\(tlsPort):127.0.0.1", "--max-time", "10"]
                + args)
    }
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

struct ForwardAllFactory: HandlerFactory {
    let origin: UpstreamOrigin
    func makeHandler(for listener: ListenerProfile, context: LoopContext) -> any RequestHandler {
        let origin = self.origin
        return ForwardingHandler(context: context) { _ in
            .forward(origin: origin, responseHeaders: HTTPFields(), decision: "forwarded")
        }
    }
}

@Suite("Pass-through proxying with real clients", .serialized)
struct PassThroughTests {
    @Test("curl over HTTP/1.1 and TLS reaches the upstream with rewritten forwarding headers")
    func http1OverTLS() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let out = try f.curl([
            "--http1.1", "-H", "X-Forwarded-For: 6.6.6.6", "-H", "Connection: keep-alive, X-Hop",
            "-H", "X-Hop: drop-me", "-H", "Via: 1.1 client-proxy", "-H", "Keep-Alive: timeout=5",
            "-H", "Proxy-Authorization: Basic eA==", "-i", "https://gateway.test:\(f.tlsPort)/my-org/details?x=1",
        ])
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.hasPrefix("HTTP/1.1 200"))
        #expect(out.stdout.contains("\"path\": \"/my-org/details?x=1\""))
        let requests = f.upstreamRequests()
        try #require(requests.count == 1)
        let raw = requests[0]
        #expect(raw.hasPrefix("GET /my-org/details?x=1 HTTP/1.1\r\n"))
        #expect(raw.contains("\r\nHost: 127.0.0.1:\(f.upstreamPort)\r\n"))
        #expect(raw.contains("\r\nX-Forwarded-For: 127.0.0.1\r\n"))
        #expect(!raw.contains("6.6.6.6"), "a client-supplied X-Forwarded-For must not be forwarded")
        #expect(!raw.contains("X-Hop"), "fields named by Connection are hop-by-hop")
        #expect(!raw.contains("Keep-Alive") && !raw.contains("Proxy-Authorization"), "fixed hop-by-hop fields")
        #expect(raw.contains("\r\nX-Forwarded-Proto: https\r\n"))
        // RFC 9110 §7.6.3: the gateway adds itself to Via, after the entry the client sent.
        let via = raw.split(separator: "\r\n").filter { $0.lowercased().hasPrefix("via:") }
        #expect(via == ["Via: 1.1 client-proxy", "Via: 1.1 myorg-gateway"], "\(via)")
        #expect(raw.contains("\r\ncname-api-key: secret-edge-key\r\n"))
        #expect(raw.contains("\r\nX-Request-Id: "))
    }

    /// Edge mode: the client IP goes in the header the tenant names, once; the client's copies and its
    /// cname-api-key are replaced; cookies, User-Agent, Origin, Referer, Accept and Accept-Language pass as sent.
    @Test("edge mode: the client IP in the tenant's header only, the gateway's cname-api-key, the rest as sent")
    func edgeHeaders() throws {
        let f = try PassThroughFixture(clientIPHeader: "true-client-ip")
        defer { f.stop() }
        let out = try f.curl([
            "--http1.1", "-H", "true-client-ip: 6.6.6.6", "-H", "X-Forwarded-For: 7.7.7.7",
            "-H", "cname-api-key: forged", "-H", "Cookie: a=1; b=2", "-H", "User-Agent: edge-test/1",
            "-H", "Origin: https://app.example", "-H", "Referer: https://app.example/settings",
            "-H", "Accept: application/json", "-H", "Accept-Language: de-CH, en;q=0.8",
            "-o", "/dev/null", "-w", "%{http_code}", "https://gateway.test:\(f.tlsPort)/my-org/details",
        ])
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout == "200")
        let requests = f.upstreamRequests()
        try #require(requests.count == 1)
        let lines = requests[0].split(separator: "\r\n").map(String.init)
        func values(_ name: String) -> [String] {
            lines.compactMap { line in
                guard let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == name.lowercased() else {
                    return nil
                }
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        #expect(values("true-client-ip") == ["127.0.0.1"])
        #expect(values("X-Forwarded-For").isEmpty, "the client IP travels in the tenant's header alone")
        #expect(values("cname-api-key") == ["secret-edge-key"])
        #expect(!requests[0].contains("6.6.6.6") && !requests[0].contains("7.7.7.7") && !requests[0].contains("forged"))
        #expect(values("Cookie") == ["a=1; b=2"])
        #expect(values("User-Agent") == ["edge-test/1"])
        #expect(values("Origin") == ["https://app.example"])
        #expect(values("Referer") == ["https://app.example/settings"])
        #expect(values("Accept") == ["application/json"])
        #expect(values("Accept-Language") == ["de-CH, en;q=0.8"])
    }

    @Test("curl over HTTP/2 (ALPN) and h2c prior knowledge; a DELETE body is forwarded")
    func http2() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let h2 = try f.curl([
            "--http2", "-X", "DELETE", "-H", "Content-Type: application/json", "--data", "{\"roles\":[\"rol_1\"]}",
            "-w", "\n%{http_version}", "https://gateway.test:\(f.tlsPort)/my-org/members/auth0|123/roles",
        ])
        #expect(h2.status == 0, "\(h2.stderr)")
        #expect(h2.stdout.hasSuffix("\n2"))
        #expect(h2.stdout.contains("\"body_length\": 19"))
        let h2c = try TestProcess.run(
            "/usr/bin/curl",
            ["-sS", "--http2-prior-knowledge", "-w", "\n%{http_version}", "http://127.0.0.1:\(f.plainPort)/chunked"])
        #expect(h2c.status == 0, "\(h2c.stderr)")
        #expect(h2c.stdout == "hello world\n2")
        let requests = f.upstreamRequests()
        try #require(requests.count == 2)
        #expect(requests[0].hasPrefix("DELETE /my-org/members/auth0|123/roles HTTP/1.1\r\n"))
        #expect(requests[0].hasSuffix("\r\n\r\n{\"roles\":[\"rol_1\"]}"))
        #expect(requests[0].contains("\r\nContent-Length: 19\r\n"))
        #expect(requests[1].contains("\r\nX-Forwarded-Proto: http\r\n"))
        #expect(requests[0].contains("\r\nVia: 2 myorg-gateway\r\n"), "HTTP/2 is received-protocol 2")
        #expect(requests[1].contains("\r\nVia: 2 myorg-gateway\r\n"))
    }

    @Test("HEAD is forwarded as HEAD; its answer has no content, and the connections carry on after it")
    func head() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        for version in ["--http1.1", "--http2"] {
            // Two HEADs and a GET on one client connection: an upstream response parser that waited for the
            // announced Content-Length after a HEAD would stall the second request until curl's timeout.
            let url = "https://gateway.test:\(f.tlsPort)/my-org/details"
            // `--next` resets curl's options, so the second part repeats the trust and address ones.
            let again = ["--cacert", f.caFile.path, "--resolve", "gateway.test:\(f.tlsPort):127.0.0.1"]
            let out = try f.curl([version, "-I", url, "-I", url, "--next", "-sS", version] + again + [url])
            #expect(out.status == 0, "\(version): \(out.stderr)")
            let statuses = out.stdout.split(separator: "\r\n").filter { $0.hasPrefix("HTTP/") }
            #expect(statuses.count == 2, "\(version): two HEAD heads, then the GET's body: \(out.stdout)")
            #expect(statuses.allSatisfy { $0.contains(" 200") }, "\(version): \(statuses)")
            // The GET's framing, without content (RFC 9110 §9.3.2): the upstream's length on both protocols.
            let lengths = out.stdout.lowercased().split(separator: "\r\n").filter { $0.hasPrefix("content-length: ") }
            #expect(lengths.count == 2 && !lengths.contains("content-length: 0"), "\(version): \(lengths)")
            #expect(out.stdout.contains("\"method\": \"GET\""), "the GET after the HEADs got its body: \(out.stdout)")
        }
        let methods = f.upstreamRequests().map { $0.prefix(while: { $0 != " " }) }
        #expect(methods == ["HEAD", "HEAD", "GET", "HEAD", "HEAD", "GET"], "\(methods)")
    }

    @Test("bytes after a bodiless upstream answer (a body after HEAD) never reach the next client (RFC 9112 §6.3)")
    func noResponseAfterHeadBody() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let head = try TestProcess.run(
            "/usr/bin/curl", ["-sS", "-I", "--max-time", "5", "http://127.0.0.1:\(f.plainPort)/headbody"])
        #expect(head.stdout.hasPrefix("HTTP/1.1 200"), "\(head.stdout) \(head.stderr)")
        // New client connections, one after another: with the poisoned connection back in the pool, one of these
        // would be answered with the upstream's stray "response" or another client's.
        for n in 0..<4 {
            let out = try TestProcess.run(
                "/usr/bin/curl", ["-sS", "-i", "--max-time", "5", "http://127.0.0.1:\(f.plainPort)/victim\(n)"])
            #expect(!out.stdout.contains("poisoned") && !out.stdout.contains("X-Poison"), "\(out.stdout)")
            #expect(out.stdout.contains("\"path\": \"/victim\(n)\""), "request \(n) got: \(out.stdout)")
        }
    }

    @Test("an HTTP/2 request the upstream side cannot carry (:path with a non-ASCII byte) is refused; nothing leaks")
    func unforwardablePath() throws {
        guard let nghttp = TestProcess.which("nghttp") else { return }
        let f = try PassThroughFixture()
        defer { f.stop() }
        // Warm the pool, so the refused request takes an idle upstream connection first.
        #expect(try f.curl(["--http2", "https://gateway.test:\(f.tlsPort)/warm"]).status == 0)
        let out = try TestProcess.run(
            nghttp, ["-v", "-H", ":path: /m/caf\u{E9}", "http://127.0.0.1:\(f.plainPort)/x"], timeout: 10)
        #expect(out.stdout.contains(":status: 400"), "\(out.stdout)")
        // The upstream closes its connections; a connection the refused request held but never released would
        // then run its socket handler on freed memory and take this process down.
        f.upstream.stop()
        usleep(300_000)
        let after = try f.curl([
            "--http2", "-o", "/dev/null", "-w", "%{http_code}", "https://gateway.test:\(f.tlsPort)/x",
        ])
        #expect(after.stdout == "502", "the gateway still answers, with the upstream gone: \(after.stdout)")
    }

    @Test("a forwarded response without Date gets one (RFC 9110 §6.6.1), on both protocols")
    func dateAdded() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        for version in ["--http1.1", "--http2"] {
            let out = try f.curl([version, "-i", "https://gateway.test:\(f.tlsPort)/my-org/details"])
            let dates = out.stdout.split(separator: "\r\n").filter { $0.lowercased().hasPrefix("date: ") }
            #expect(dates.count == 1, "\(version): \(out.stdout)")
            let value = dates.first.map { String($0.dropFirst(6)) } ?? ""
            let now = HTTPDate.imfFixdate(epochSeconds: Int64(Date().timeIntervalSince1970))
            // The same form, and this minute (a second may tick between the two).
            #expect(value.count == now.count && value.hasSuffix(" GMT"), "\(value)")
            #expect(value.prefix(20) == now.prefix(20), "\(value) vs \(now)")
        }
    }

    @Test("a 103 Early Hints from the upstream reaches the client before the final answer, on both protocols")
    func earlyHints() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        for version in ["--http1.1", "--http2"] {
            let out = try f.curl([version, "-i", "https://gateway.test:\(f.tlsPort)/hints"])
            #expect(out.status == 0, "\(version): \(out.stderr)")
            let lines = out.stdout.split(separator: "\r\n").map { $0.lowercased() }
            let hint = lines.firstIndex { $0.hasPrefix("http/") && $0.contains(" 103") }
            let final = lines.firstIndex { $0.hasPrefix("http/") && $0.contains(" 200") }
            #expect(hint != nil && final != nil && hint! < final!, "\(version): \(out.stdout)")
            #expect(lines.contains("link: </style.css>; rel=preload"), "\(version): \(out.stdout)")
            #expect(out.stdout.contains("{\"hinted\":true}"))
        }
    }

    @Test("obs-text (Latin-1) in field values goes up and comes down byte for byte, on both protocols")
    func obsTextBothWays() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let latin1: [UInt8] = Array("attachment; filename=\"caf".utf8) + [0xE9] + Array(".txt\"".utf8)
        let connection = try RawConnection(port: f.plainPort, timeout: 5)
        try connection.send(
            Array("GET /latin1 HTTP/1.1\r\nHost: gateway.test\r\nX-Name: Jos".utf8) + [0xE9]
                + Array("\r\nConnection: close\r\n\r\n".utf8))
        let reply = connection.readBytesToEnd().bytes
        #expect(reply.starts(with: Array("HTTP/1.1 200".utf8)), "\(String(decoding: reply, as: UTF8.self))")
        let disposition = Array("\r\nContent-Disposition: ".utf8) + latin1 + [0x0D, 0x0A]
        #expect(reply.firstRange(of: disposition) != nil, "\(reply)")
        let up = try #require(f.upstreamRequestBytes().first)
        #expect(up.firstRange(of: Array("\r\nX-Name: Jos".utf8) + [0xE9, 0x0D, 0x0A]) != nil, "\(up)")
        // HTTP/2: curl writes the header section to a file as it came, byte for byte.
        let headFile = TestProcess.temporaryDirectory("obstext").appendingPathComponent("head.bin")
        let out = try f.curl(
            ["--http2", "-D", headFile.path, "-o", "/dev/null", "https://gateway.test:\(f.tlsPort)/latin1"])
        #expect(out.status == 0, "\(out.stderr)")
        let h2Head = [UInt8](try Data(contentsOf: headFile))
        #expect(h2Head.starts(with: Array("HTTP/2 200".utf8)), "\(h2Head)")
        #expect(h2Head.firstRange(of: Array("content-disposition: ".utf8) + latin1 + [0x0D, 0x0A]) != nil, "\(h2Head)")
    }

    /// A reused upstream connection that closes without answering (an idle close crossing the request).
    @Test(
        "an idempotent request is sent again on a new connection, a POST or PATCH never (RFC 9110 §9.2.2)",
        arguments: ["GET", "PUT", "DELETE", "POST", "PATCH"])
    func retryOnlyIdempotent(method: String) throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let connection = try RawConnection(port: f.plainPort, timeout: 5)
        try connection.send("GET /arm-drop HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
        #expect(connection.readResponse()?.hasPrefix("HTTP/1.1 200") == true)
        try connection.send(
            "\(method) /after HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        let reply = connection.readToEnd().text
        let sent = f.upstreamRequests().filter { $0.hasPrefix("\(method) /after ") }.count
        if ["GET", "PUT", "DELETE"].contains(method) {
            #expect(reply.hasPrefix("HTTP/1.1 200"), "\(reply)")
            #expect(sent == 2)
        } else {
            #expect(reply.hasPrefix("HTTP/1.1 502"), "\(reply)")
            #expect(sent == 1)
        }
    }

    @Test("the header size limit is the same on both protocols", arguments: ["--http1.1", "--http2"])
    func headerLimitOnBothProtocols(version: String) throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        // The default limit is 32 KiB: 20 KB passes (HTTP/2 once had a fixed 16 KiB), 40 KB is 431.
        for (size, status) in [(20_000, "200"), (40_000, "431")] {
            let out = try f.curl([
                version, "-o", "/dev/null", "-w", "%{http_code}", "-H", "X-Big: " + String(repeating: "b", count: size),
                "https://gateway.test:\(f.tlsPort)/my-org/details",
            ])
            #expect(out.stdout == status, "\(version) \(size): \(out.stdout) \(out.stderr)")
        }
    }

    @Test("a client that reads none of its answer for the idle timeout is closed, freeing the upstream connection")
    func nonReadingClientIsClosed() throws {
        let f = try PassThroughFixture(idleTimeoutMs: 1000, maxUpstreamConnections: 1)
        defer { f.stop() }
        let connection = try RawConnection(port: f.plainPort, timeout: 8)
        // 48 MiB that this client does not read: the gateway's output backs up past its high-water mark.
        try connection.send("GET /huge HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
        Thread.sleep(forTimeInterval: 3)
        let (bytes, closed) = connection.readBytesToEnd()
        #expect(closed, "the gateway kept a client that took nothing for 3 s")
        #expect(bytes.count < 48 << 20)
        // The one upstream connection was given up with it: the next request gets one.
        let next = try RawConnection.exchange(
            port: f.plainPort, "GET /my-org/details HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n\r\n")
        #expect(next.hasPrefix("HTTP/1.1 200"), "\(next)")
    }

    @Test("a client that reads slowly but steadily is not taken for a stalled one")
    func slowSteadyReaderIsKept() throws {
        let f = try PassThroughFixture(idleTimeoutMs: 1000)
        defer { f.stop() }
        // 64 KiB every 250 ms: steady, far under what the gateway sends, so its socket stays backed up. Progress is
        // judged by what the client acknowledged (SIOCOUTQ), not by the gateway's own writes: the kernel reports a
        // backed-up socket writable only after a share of its (autotuned, MiB-sized) buffer has gone, which at a
        // slow read rate can take longer than the idle timeout (seen by a black-box audit at 32 kB/s; this
        // loopback run does not reproduce that, so it guards the behaviour rather than the cause).
        let out = try runFixtureScript("slow_reader.py", [String(f.plainPort), "/huge", "5", "65536", "0.25"])
        #expect(out.hasPrefix("open read "), "the gateway closed a client that kept reading: \(out)")
    }

    @Test("an HTTP/2 answer the gateway holds whole is delivered in full to a client that drains it slowly")
    func h2SlowDrainIsNotCutAsIdle() throws {
        // The upstream's answer (about 230 bytes: it echoes the path) is with the gateway at once; the client takes
        // it 10 bytes per 200 ms, about 4.5 s in all, four times the idle timeout, never stalling.
        let f = try PassThroughFixture(idleTimeoutMs: 1000)
        defer { f.stop() }
        let path = "/drain?" + String(repeating: "a", count: 100)
        let out = try runFixtureScript("h2_slow_drain.py", [String(f.plainPort), path, "10", "15"])
        let last = out.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("data ") && last.hasSuffix(" end True"), "\(out)")
        #expect(!out.contains("goaway") && !out.contains("closed"), "\(out)")
        let bytes = Int(last.split(separator: " ").dropFirst().first ?? "") ?? 0
        #expect(bytes > 200, "\(out)")
    }

    @Test("an HTTP/2 header block left unfinished on a quiet connection is cut at the header timeout")
    func h2HalfHeaderBlockTimesOut() throws {
        let f = try PassThroughFixture(idleTimeoutMs: 10_000)
        defer { f.stop() }
        let out = try runFixtureScript("h2_half_headers.py", [String(f.plainPort), "6"])
        let closed = try #require(out.split(separator: "\n").first { $0.hasPrefix("closed after ") }, "\(out)")
        let seconds = Double(closed.split(separator: " ")[2]) ?? 99
        // The header timeout (1 s) on the sweeper's 250 ms tick, not the idle timeout (10 s).
        #expect(seconds >= 0.9 && seconds < 3, "\(out)")
        #expect(f.upstreamRequests().isEmpty)
    }

    /// Expect never goes upstream, and a client that expected a 100 gets the gateway's alone.
    @Test("an unsolicited 100 from the upstream is passed on (RFC 9110 §15.2)")
    func unsolicitedContinue() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let plain = try RawConnection.exchange(
            port: f.plainPort, "GET /continue HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n\r\n")
        #expect(plain.hasPrefix("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"), "\(plain)")
        // Over HTTP/2 too: an interim HEADERS frame with :status 100 before the final one (RFC 9113 §8.1).
        let h2 = try f.curl(["--http2", "-i", "https://gateway.test:\(f.tlsPort)/continue"])
        #expect(h2.stdout.hasPrefix("HTTP/2 100"), "\(h2.stdout)")
        #expect(h2.stdout.contains("HTTP/2 200"), "\(h2.stdout)")
        let expecting = try RawConnection.exchange(
            port: f.plainPort,
            "POST /continue HTTP/1.1\r\nHost: gateway.test\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
                + "Connection: close\r\n\r\n{}")
        #expect(expecting.components(separatedBy: "100 Continue").count == 2, "\(expecting)")
        #expect(expecting.contains("{\"continued\":true}"), "\(expecting)")
        let oldClient = try RawConnection.exchange(
            port: f.plainPort,
            "POST /continue HTTP/1.0\r\nHost: gateway.test\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}")
        #expect(!oldClient.contains("100 Continue"), "never a 1xx to an HTTP/1.0 client: \(oldClient)")
        let requests = f.upstreamRequests()
        #expect(requests.count == 4)
        #expect(!requests.contains { $0.lowercased().contains("\r\nexpect:") }, "\(requests)")
    }

    @Test("plain-text HTTP sent to the TLS port gets a plain-text 400 that says so, then the close")
    func plaintextOnTLSPort() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        for request in [
            "GET /x HTTP/1.1\r\nHost: gateway.test\r\n\r\n", "POST /x HTTP/1.1\r\nHost: gateway.test\r\n",
        ] {
            let connection = try RawConnection(port: f.tlsPort, timeout: 5)
            try connection.send(request)
            let (text, closed) = connection.readToEnd()
            #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(text)")
            #expect(text.contains("\"status\":400") && text.contains("speaks HTTPS"), "\(text)")
            #expect(text.contains("\r\nConnection: close\r\n"), "\(text)")
            #expect(closed)
        }
        #expect(f.upstreamRequests().isEmpty)
        // Other bytes that are not TLS still get no answer in plain text.
        let garbage = try RawConnection(port: f.tlsPort, timeout: 5)
        try garbage.send("\u{1}\u{2}\u{3}\u{4}\u{5}\u{6}\u{7}\r\n\r\n")
        #expect(!garbage.readToEnd().0.contains("HTTP/1.1"))
        // The TLS port still serves TLS.
        let served = try f.curl([
            "--http1.1", "-o", "/dev/null", "-w", "%{http_code}", "https://gateway.test:\(f.tlsPort)/x",
        ])
        #expect(served.stdout == "200", "curl \(served.status): \(served.stderr)")
    }

    /// A failed handshake used to read its socket once more after closing it, though the fd number may already
    /// belong to another connection. A sequence like this one (with a second plain-text request and two other
    /// fixtures running) then left a following TLS client waiting until its timeout in about one run in three.
    /// This shorter form did not fail on that code in six runs: it guards the sequence, not the exact race.
    @Test("failed handshakes in quick succession never take the bytes of the connections that follow")
    func failedHandshakesLeaveOthersAlone() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        var failures: [String] = []
        for i in 0..<30 {
            for request in ["GET /x HTTP/1.1\r\nHost: gateway.test\r\n\r\n", "\u{1}\u{2}\u{3}\u{4}\u{5}\u{6}\r\n\r\n"] {
                let connection = try RawConnection(port: f.tlsPort, timeout: 5)
                try connection.send(request)
                _ = connection.readToEnd()
            }
            let served = try f.curl([
                "--http1.1", "--max-time", "3", "-o", "/dev/null", "-w", "%{http_code}",
                "https://gateway.test:\(f.tlsPort)/x",
            ])
            if served.stdout != "200" { failures.append("\(i): curl \(served.status) \(served.stderr)") }
        }
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test("an idle keep-alive TLS connection is closed with close_notify, not a bare TCP close (RFC 8446 §6.1)")
    func idleCloseSendsCloseNotify() throws {
        let f = try PassThroughFixture(idleTimeoutMs: 1000)
        defer { f.stop() }
        // `suppress_ragged_eofs=False` and no OP_IGNORE_UNEXPECTED_EOF: a close without close_notify raises instead of
        // reading as an end.
        let script = """
            import socket, ssl, sys
            ctx = ssl.create_default_context(cafile=sys.argv[2])
            ctx.set_alpn_protocols(["http/1.1"])
            ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
            raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
            s = ctx.wrap_socket(raw, server_hostname="gateway.test", suppress_ragged_eofs=False)
            s.settimeout(10)
            s.sendall(b"GET /idle HTTP/1.1\\r\\nHost: gateway.test\\r\\n\\r\\n")
            answer = b""
            try:
                while True:
                    data = s.recv(65536)
                    if not data:
                        print("close_notify")
                        break
                    answer += data
            except ssl.SSLEOFError:
                print("eof without close_notify")
            except OSError as e:
                print("error", e)
            print(answer.split(b"\\r\\n")[0].decode())
            """
        let out = try TestProcess.run(
            "/usr/bin/python3", ["-c", script, String(f.tlsPort), f.caFile.path], timeout: 20)
        #expect(out.stdout.hasPrefix("close_notify\nHTTP/1.1 200 "), "\(out.stdout) \(out.stderr)")
    }

    @Test("an HTTP/1.0 client's keep-alive is acknowledged, or the answer says close (RFC 9112 Appendix C.2.2)")
    func http10KeepAlive() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let connection = try RawConnection(port: f.plainPort)
        for path in ["/a", "/b"] {
            try connection.send("GET \(path) HTTP/1.0\r\nHost: gateway.test\r\nConnection: keep-alive\r\n\r\n")
            let answer = connection.readResponse() ?? ""
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
            #expect(answer.contains("\r\nConnection: keep-alive\r\n"), "\(answer)")
        }
        connection.close()
        let plain = try RawConnection.exchange(port: f.plainPort, "GET /c HTTP/1.0\r\nHost: gateway.test\r\n\r\n")
        #expect(plain.contains("\r\nConnection: close\r\n") && !plain.contains("keep-alive"), "\(plain)")
    }

    @Test("an upstream answer whose framing breaks before any of its body was passed on becomes a 502")
    func brokenFramingIs502() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        for (version, path) in [
            ("--http1.1", "/badchunk"), ("--http2", "/badchunk"),
            // A Content-Length no answer has (it used to be relayed capped at 2^60, a length the upstream never sent).
            ("--http1.1", "/bigcl"), ("--http2", "/bigcl"),
            // Interim responses without end: a few are forwarded, a flood is an upstream that does not answer.
            ("--http1.1", "/hint-flood"), ("--http2", "/hint-flood"),
        ] {
            let out = try f.curl([version, "-i", "https://gateway.test:\(f.tlsPort)\(path)"])
            let statuses = out.stdout.split(separator: "\r\n").filter { $0.hasPrefix("HTTP/") }
            #expect(statuses.last?.contains(" 502") == true, "\(version) \(path): \(statuses)")
            #expect(statuses.dropLast().allSatisfy { $0.contains(" 103") } && statuses.count <= 17, "\(statuses)")
            #expect(out.stdout.contains("\"status\":502"), "\(version) \(path): \(out.stdout.suffix(300))")
            #expect(!out.stdout.contains("hello"))
        }
    }

    @Test("a streamed upload that stops arriving gets 408 after the idle timeout and lets go of the upstream")
    func stalledUploadTimesOut() throws {
        let f = try PassThroughFixture(idleTimeoutMs: 600)
        defer { f.stop() }
        let client = try RawConnection(port: f.plainPort, timeout: 5)
        let start = Date()
        try client.send("POST /upload HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 1000000\r\n\r\n")
        try client.send([UInt8](repeating: 0x61, count: 100_000))
        // Then nothing more: without a body deadline this would wait for good (the read times out at 5 s).
        let (answer, closed) = client.readToEnd()
        let ms = Int(Date().timeIntervalSince(start) * 1000)
        print("stalled upload: answered after \(ms) ms")
        #expect(answer.hasPrefix("HTTP/1.1 408"), "\(answer.prefix(200))")
        #expect(closed, "the connection must close after the 408")
        #expect(ms < 4000)
        // The upstream connection was let go too: the gateway serves the next request at once.
        let next = try f.curl([
            "--http1.1", "-o", "/dev/null", "-w", "%{http_code}", "https://gateway.test:\(f.tlsPort)/x",
        ])
        #expect(next.stdout == "200")
    }

    struct UploadCase: Sendable, CustomTestStringConvertible {
        let mode: String
        let length: Int
        /// Bytes sent every 200 ms.
        let piece: Int
        let status: Int
        /// When the answer must come, in seconds since the first byte.
        let within: ClosedRange<Double>
        var testDescription: String { "\(mode), \(length) bytes, \(piece * 5) B/s" }
    }

    /// A byte every 200 ms never leaves the connection quiet for the idle timeout (3 s): what ends such an upload
    /// is the minimum rate (1000 B/s here). A streamed body (a declared length over 64 KiB) is judged once 3 s (the
    /// grace, capped by the idle timeout) of reading have passed, on a 1 s tick. A body read whole (small, chunked,
    /// or HTTP/2 without a length) has the header timeout (1 s) plus one second per 1000 bytes received, so a
    /// trickle ends near the header timeout while a large body at 50 kB/s goes through however long it takes.
    @Test(
        "a trickled upload gets 408 whatever its framing, a steady one passes",
        arguments: [
            UploadCase(mode: "h1", length: 100_000, piece: 1, status: 408, within: 2.5...6),
            UploadCase(mode: "h2", length: 100_000, piece: 1, status: 408, within: 2.5...6),
            UploadCase(mode: "h1", length: 1000, piece: 1, status: 408, within: 0.5...2.5),
            UploadCase(mode: "h2", length: 1000, piece: 1, status: 408, within: 0.5...2.5),
            UploadCase(mode: "h1c", length: 1000, piece: 1, status: 408, within: 0.5...2.5),
            UploadCase(mode: "h2n", length: 1000, piece: 1, status: 408, within: 0.5...2.5),
            UploadCase(mode: "h1c", length: 200_000, piece: 10_000, status: 200, within: 3...8),
            UploadCase(mode: "h2n", length: 200_000, piece: 10_000, status: 200, within: 3...8),
        ])
    func trickledUploadIsCut(_ c: UploadCase) throws {
        let f = try PassThroughFixture(idleTimeoutMs: 3000, minBodyBytesPerSecond: 1000)
        defer { f.stop() }
        let out = try runFixtureScript(
            "trickle_upload.py", [String(f.plainPort), c.mode, String(c.length), "0.2", "12", String(c.piece)])
        let lines = out.split(separator: "\n").map(String.init)
        print("upload (\(c.testDescription)): \(lines)")
        let status = try #require(lines.first { $0.hasPrefix("status ") }, "\(out)")
        #expect(status.hasPrefix("status \(c.status) "), "\(out)")
        let seconds = Double(status.split(separator: " ")[3]) ?? 99
        #expect(c.within.contains(seconds), "\(out)")
        #expect(lines.last?.hasPrefix("open") == false, "the upload must end: \(out)")
        let requests = f.upstreamRequests()
        if c.status == 200 {
            // Read whole, then forwarded re-framed with its length.
            #expect(requests.count == 1, "\(requests.map { $0.prefix(40) })")
            #expect(requests.first?.contains("\r\nContent-Length: \(c.length)\r\n") == true)
        } else if c.length > 65536 {
            #expect(requests.allSatisfy { $0.hasPrefix("POST /upload ") }, "\(requests.map { $0.prefix(40) })")
        } else {
            #expect(requests.isEmpty, "nothing of an incomplete buffered request reaches the upstream")
        }
        // The upstream connection was let go: the next request is served at once.
        let next = try f.curl([
            "--http1.1", "-o", "/dev/null", "-w", "%{http_code}", "https://gateway.test:\(f.tlsPort)/x",
        ])
        #expect(next.stdout == "200")
    }

    @Test("an OPTIONS is forwarded with Max-Forwards one lower (RFC 9110 §7.6.2)")
    func maxForwardsDecremented() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let out = try f.curl([
            "--http1.1", "-X", "OPTIONS", "-H", "Max-Forwards: 5", "https://gateway.test:\(f.tlsPort)/authorize",
        ])
        #expect(out.status == 0, "\(out.stderr)")
        let requests = f.upstreamRequests()
        try #require(requests.count == 1)
        #expect(requests[0].contains("\r\nMax-Forwards: 4\r\n"), "\(requests[0])")
    }

    @Test("a 1 MiB response streams through intact on both protocols")
    func largeBody() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        for flag in ["--http1.1", "--http2"] {
            let out = try f.curl([
                flag, "-o", "/dev/null", "-w", "%{size_download} %{http_code}",
                "https://gateway.test:\(f.tlsPort)/big",
            ])
            #expect(out.stdout == "1048576 200", "\(flag): \(out.stderr)")
        }
    }

    @Test("a malformed request is refused with 400 and never reaches the upstream")
    func smugglingRefused() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let raw =
            "POST /my-org/details HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 5\r\n"
            + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        let reply = try RawConnection.exchange(port: f.plainPort, raw)
        #expect(reply.hasPrefix("HTTP/1.1 400"))
        #expect(reply.contains("Connection: close"))
        #expect(reply.contains("\"detail\""))
        #expect(f.upstreamRequests().isEmpty)
    }

    @Test(
        "the gateway's refusal of a HEAD request has no content (RFC 9110 §9.3.2)",
        arguments: [
            ("HEAD / HTTP/1.1\r\n\r\n", "400"),
            ("HEAD / HTTP/1.1\r\nHost: gateway.test\r\nBad : x\r\n\r\n", "400"),
            ("HEAD / HTTP/1.1\r\nHost: gateway.test\r\nExpect: foo\r\n\r\n", "417"),
            ("HEAD / HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 999999999\r\n\r\n", "413"),
            // The same refusal to GET does carry the JSON body: the check above is not vacuous.
            ("GET / HTTP/1.1\r\nHost: gateway.test\r\nExpect: foo\r\n\r\n", "417"),
        ])
    func headRefusalsHaveNoContent(request: String, status: String) throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let reply = try RawConnection.exchange(port: f.plainPort, request)
        #expect(reply.hasPrefix("HTTP/1.1 \(status)"), "\(reply)")
        let content = reply.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        if request.hasPrefix("HEAD") {
            #expect(content.isEmpty, "\(reply)")
        } else {
            #expect(content.contains("\"detail\""), "\(reply)")
        }
        #expect(f.upstreamRequests().isEmpty)
    }

    @Test("upstream failures map to 502 and 504 in the tenant's error shape")
    func upstreamFailures() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let closed = try f.curl(["--http1.1", "-i", "https://gateway.test:\(f.tlsPort)/close"])
        #expect(closed.stdout.hasPrefix("HTTP/1.1 502"), "\(closed.stdout)")
        #expect(closed.stdout.contains("\"type\":\"https://auth0.com/api-errors#A0E-502-0001\""))
        let slow = try f.curl(["--http1.1", "-i", "https://gateway.test:\(f.tlsPort)/slow"])
        #expect(slow.stdout.hasPrefix("HTTP/1.1 504"), "\(slow.stdout)")
    }

    @Test("h2load completes every request over HTTP/2 and TLS, and shutdown closes everything")
    func h2loadAndLeaks() throws {
        guard let h2load = TestProcess.which("h2load") else { return }
        let f = try PassThroughFixture()
        let out = try TestProcess.run(
            h2load, ["-n", "2000", "-c", "8", "-m", "10", "https://127.0.0.1:\(f.tlsPort)/my-org/details"],
            timeout: 60)
        #expect(out.stdout.contains("2000 succeeded"), "\(out.stdout)\(out.stderr)")
        let wrk = try TestProcess.run(
            "/usr/bin/curl", ["-sS", "--http1.1", "http://127.0.0.1:\(f.plainPort)/my-org/details"])
        #expect(wrk.status == 0)
        f.gateway.shutdown(graceMilliseconds: 1000)
        usleep(300_000)
        // Other suites run in parallel in this process, so the exact descriptor count is checked against the
        // built binary (GatewayIntegrationTests); here: every connection is gone and the listeners are closed.
        #expect(f.gateway.activeConnections == 0)
        #expect(!TestProcess.waitForPort(f.tlsPort, timeout: 0.2), "the listener still accepts after shutdown")
        #expect(f.gateway.liveExchangeCount == 0, "an exchange outlived its request")
        #expect(f.gateway.liveRelayCount == 0, "an upstream relay outlived its request")
        f.upstream.stop()
    }

    @Test(
        "a client that finishes sending after its requests (TCP FIN, or TLS close_notify) still gets every answer",
        arguments: ["plain", "tls-fin", "tls-notify"])
    func halfClosedClientIsAnswered(mode: String) throws {
        let f = try PassThroughFixture(responseTimeoutMs: 6000)
        defer { f.stop() }
        let port = mode == "plain" ? f.plainPort : f.tlsPort
        // /slow answers after 3 s: the FIN arrives long before it; the pipelined request after it waits its turn.
        let out = try runFixtureScript("half_close_client.py", [String(port), mode, "gateway.test", "/slow", "/after"])
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.last == "closed", "the gateway closes once both are answered: \(out)")
        #expect(out.components(separatedBy: "HTTP/1.1 200 ").count == 3, "two answers: \(out)")
        #expect(out.contains("\"path\": \"/after\""), "\(out)")
        #expect(f.upstreamRequests().map { $0.prefix(12) } == ["GET /slow HT", "GET /after H"])
    }

    @Test("a client that finishes sending in the middle of a body is not answered and nothing reaches the upstream")
    func halfClosedMidBody() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let out = try runFixtureScript(
            "half_close_client.py", [String(f.plainPort), "plain", "gateway.test", "POST:/upload:1000:10"])
        #expect(out.trimmingCharacters(in: .whitespacesAndNewlines) == "closed", "\(out)")
        #expect(f.upstreamRequests().isEmpty)
    }

    @Test("connections spread evenly over the loops, whichever loop's listener the kernel hands them to")
    func connectionsSpreadOverLoops() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        func settled(_ expectedTotal: Int) -> [Int] {
            var perLoop = f.gateway.connectionsPerLoop
            var waits = 0
            while perLoop.reduce(0, +) != expectedTotal && waits < 200 {
                usleep(10_000)
                waits += 1
                perLoop = f.gateway.connectionsPerLoop
            }
            return perLoop
        }
        // SO_REUSEPORT alone picks a loop by a hash of the client's port: 16 connections often split 11 to 5.
        var clients: [RawConnection] = []
        for n in 1...16 {
            clients.append(try RawConnection(port: f.plainPort))
            let perLoop = settled(n)
            #expect(perLoop.reduce(0, +) == n, "connection \(n): \(perLoop)")
            #expect(perLoop.max()! - perLoop.min()! <= 1, "connection \(n): \(perLoop)")
        }
        // A connection handed to the other loop is served there, like any other.
        for client in clients {
            try client.send("GET /spread HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n\r\n")
            let answer = client.readToEnd()
            #expect(answer.text.hasPrefix("HTTP/1.1 200"), "\(answer.text)")
        }
        clients.removeAll()
        #expect(settled(0) == [0, 0], "a closed connection still counts against its loop")
    }

    @Test(
        "a host the connection's certificate does not cover gets 421 (RFC 9110 §7.4), on a listener the Host routes and on one bound to a domain",
        arguments: ["--http1.1", "--http2"], [nil, "a.gateway.test"] as [String?])
    func hostOutsideTheCertificateIsMisdirected(version: String, domain: String?) throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        let ca = try DevelopmentCertificateAuthority()
        let first = try ca.issue(dnsNames: ["a.gateway.test"])
        let second = try ca.issue(dnsNames: ["b.gateway.test"])
        let caFile = TestProcess.temporaryDirectory("misdirected").appendingPathComponent("ca.pem")
        try ca.certificatePEM.write(to: caFile, atomically: true, encoding: .utf8)
        let origin = UpstreamOrigin(
            host: "127.0.0.1", port: f.upstreamPort, useTLS: false, tlsContext: nil, maxConnections: 4,
            connectTimeoutMs: 2000, responseTimeoutMs: 2000, idleTimeoutMs: 30000, secretHeaders: [],
            clientIPHeader: "X-Forwarded-For")
        let listener = ListenerProfile(
            address: NetAddress("127.0.0.1:0")!, domain: domain,
            tls: try TLSServerContext(certificates: [first.certificateEntry(), second.certificateEntry()]),
            http1Limits: HTTP1Limits(), headerReadTimeoutMs: 1000, idleTimeoutMs: 5000, allowH2: true)
        let gateway = Gateway(
            snapshot: GatewaySnapshot(
                listeners: [listener], handlers: ForwardAllFactory(origin: origin), generation: 1),
            loops: 1, maxConnections: 100, clock: SystemClock())
        let port = try gateway.start()[0].port
        defer { gateway.shutdown(graceMilliseconds: 500) }
        func status(sni: String, host: String) throws -> String {
            try TestProcess.run(
                "/usr/bin/curl",
                [
                    "-sS", version, "--cacert", caFile.path, "--resolve", "\(sni):\(port):127.0.0.1", "--max-time", "5",
                    "-H", "Host: \(host)", "-o", "/dev/null", "-w", "%{http_code}", "https://\(sni):\(port)/x",
                ]
            ).stdout
        }
        #expect(try status(sni: "a.gateway.test", host: "a.gateway.test") == "200")
        #expect(try status(sni: "b.gateway.test", host: "b.gateway.test:\(port)") == "200")
        #expect(try status(sni: "a.gateway.test", host: "b.gateway.test") == "421")
        #expect(try status(sni: "b.gateway.test", host: "a.gateway.test:\(port)") == "421")
        // No SNI (an address dialled, the default certificate taken unverified): not checked.
        let noSNI = try TestProcess.run(
            "/usr/bin/curl",
            [
                "-sS", version, "-k", "--max-time", "5", "-H", "Host: b.gateway.test", "-o", "/dev/null", "-w",
                "%{http_code}", "https://127.0.0.1:\(port)/x",
            ]
        ).stdout
        #expect(noSNI == "200")
    }

    @Test(
        "an HTTP/2 connection error while the upstream is answering leaves the pooled upstream connection usable for the next request"
    )
    func connectionErrorDoesNotPoisonThePool() throws {
        // One loop and one upstream connection: the next request must reuse the connection the broken one used.
        let f = try PassThroughFixture(responseTimeoutMs: 4000, loops: 1, maxUpstreamConnections: 1)
        defer { f.stop() }
        let broken = try RawConnection(port: f.plainPort, timeout: 3)
        defer { broken.close() }
        func frame(_ type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
            let n = payload.count
            return [UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff), type, flags]
                + [UInt8(stream >> 24), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)]
                + payload
        }
        func literal(_ index: UInt8, _ value: String) -> [UInt8] {
            [index, UInt8(value.utf8.count)] + Array(value.utf8)
        }
        // GET (static 2), http (6); :path and :authority as literals with indexed names (RFC 7541 §6.2.2).
        let block: [UInt8] = [0x82, 0x86] + literal(0x04, "/stall-answer") + literal(0x01, "gateway.test")
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + frame(4, flags: 0, stream: 0, [])
        // HEADERS with END_STREAM|END_HEADERS, then a PING on a stream: a connection error (RFC 9113 §6.7).
        try broken.send(
            preface + frame(1, flags: 0x5, stream: 1, block)
                + frame(6, flags: 0, stream: 1, [UInt8](repeating: 0, count: 8)))
        // The client keeps its socket open: the gateway must not wait for it to close before giving the request up.
        // The upstream answers /stall... a second after its head; wait for that, then ask again.
        usleep(1_500_000)
        let started = Date()
        let next = try TestProcess.run(
            "/usr/bin/curl",
            [
                "-sS", "--max-time", "3", "-o", "/dev/null", "-w", "%{http_code}",
                "http://127.0.0.1:\(f.plainPort)/my-org/details",
            ])
        #expect(next.stdout == "200", "the next request got \(next.stdout) \(next.stderr)")
        #expect(Date().timeIntervalSince(started) < 2, "the next request waited on a wedged upstream connection")
    }

    @Test("every exchange and relay is freed: answered, failed upstream, and abandoned by the client on both protocols")
    func nothingOutlivesItsRequest() throws {
        #if DEBUG
            let f = try PassThroughFixture()
            defer { f.stop() }
            // Abandoned while the upstream takes 3 s to answer: curl gives up after 0.5 s.
            for version in ["--http1.1", "--http2"] {
                _ = try? f.curl([version, "--max-time", "0.5", "https://gateway.test:\(f.tlsPort)/slow"])
            }
            _ = try f.curl(["--http2", "https://gateway.test:\(f.tlsPort)/close"])
            _ = try f.curl(["--http1.1", "https://gateway.test:\(f.tlsPort)/my-org/details"])
            _ = try f.curl(["--http2", "-X", "DELETE", "-d", "{}", "https://gateway.test:\(f.tlsPort)/my-org/details"])
            var live = (exchanges: -1, relays: -1)
            for _ in 0..<40 {
                live = (f.gateway.liveExchangeCount, f.gateway.liveRelayCount)
                if live == (0, 0) { break }
                usleep(50_000)
            }
            #expect(live.exchanges == 0, "exchanges still alive after their requests ended")
            #expect(live.relays == 0, "upstream relays still alive after their requests ended")
        #endif
    }
}

/// Runs one of the integration tests' Python fixture clients and returns what it printed.
func runFixtureScript(_ name: String, _ arguments: [String], timeout: Double = 30) throws -> String {
    let out = try TestProcess.run("/usr/bin/env", ["python3", TestProcess.fixture(name)] + arguments, timeout: timeout)
    return out.stdout + out.stderr
}
