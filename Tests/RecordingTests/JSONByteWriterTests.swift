import Foundation
import GatewayCore
import Testing

@testable import Recording

/// The byte writer must produce exactly the text of `JSONValue.serialized()`: the event and access-log formats are
/// defined by the value builders (`LogEvent.json`, `AccessLogLine.json`), the writer is only their fast path.
@Suite struct JSONByteWriterTests {
    static let strings: [String] = [
        "", "plain-ascii_123", "quote\"inside", "back\\slash", "<script>", "new\nline", "cr\rtab\t",
        "\u{0}\u{1}\u{1F}", "del\u{7F}kept", "café", "日本語", "emoji 🎉 ok", "\u{2028}line\u{2029}para",
        "a\u{2028}", "\u{E2}", "mixed \"<\\\n\u{2028}é\u{1}", String(repeating: "x", count: 3000),
        "\u{80}\u{9F}\u{A0}", "/my-org/details?take=5&from=x",
    ]

    /// Every special character at every offset of strings of the lengths around the scans' block sizes.
    static let shifted: [String] = [
        "\"", "\\", "<", "\n", "\u{1}", "\u{1F}", "\u{7F}", "\u{2028}", "\u{2029}", "…", "€", "é", "🎉",
    ]
    .flatMap { special in
        [3, 8, 12, 16, 18, 33].flatMap { length in
            (0..<length).map { offset in
                String(repeating: "a", count: offset) + special + String(repeating: "b", count: length - 1 - offset)
            }
        }
    }

    @Test(arguments: strings + shifted)
    func stringsAreEscapedLikeJSONValue(_ s: String) {
        var out = JSONByteWriter()
        out.string(s)
        #expect(out.text == JSONValue.string(s).serialized())
    }

    static let values: [JSONValue] = [
        .null, true, false, 0, -0.0, 1, -1, 42, 1e15, -1e15, 999_999_999_999_999, 1.5, 0.001, 12.346, -3.25,
        1e20, 1e-7, .number(.nan), .number(.infinity), .number(-.infinity), .number(Double(Int64.max)),
        [], [:], [1, "two", [3], ["four": 4]], ["a": ["b": ["c": []]], "d": [:], "e<": "f\n"],
        .object([("dup", 1), ("dup", 2)]),
        // Thousandths (durations) take a shortcut past `description`; its neighbours do not.
        2.648, -0.001, 0.5, 0.007, 100.25, -123_456.789, 999_999_999.999, .number(0.1 + 0.2), .number(1e9 + 0.5),
        .number(1.0 / 3), .number(2.648.nextUp),
    ]

    @Test(arguments: values)
    func valuesAreWrittenLikeJSONValue(_ value: JSONValue) {
        var out = JSONByteWriter()
        out.value(value)
        #expect(out.text == value.serialized())
    }

    /// Durations as events carry them (rounded to the microsecond), across magnitudes: the shortcut for
    /// thousandths must write exactly what `description` writes.
    @Test(arguments: [0.0001, 0.0137, 1.7, 977.3, 123_456.7, 98_765_432.1])
    func roundedDurationsAreWrittenLikeJSONValue(_ step: Double) {
        for i in -500...500 {
            let v = RequestFacts.round3(Double(i) * step)
            var out = JSONByteWriter()
            out.number(v)
            #expect(out.text == JSONValue.number(v).serialized(), "\(v)")
        }
    }

    @Test(arguments: [0, 200, -7, 999_999_999_999_999, 1_000_000_000_000_000, Int.max, Int.min])
    func integersAsNumbersAreWrittenLikeTheirDouble(_ n: Int) {
        var out = JSONByteWriter()
        out.number(n)
        #expect(out.text == JSONValue.number(Double(n)).serialized())
    }

    @Test(arguments: [
        Int64(0), 1, -1, 9, 10, -10, 1_767_323_045_678, Int64.max, Int64.min, Int64.min + 1,
    ])
    func integers(_ v: Int64) {
        var out = JSONByteWriter()
        out.int(v)
        #expect(out.text == String(v))
    }

    @Test(arguments: [
        Int64(0), 1, 999, 1000, 86_399_999, 86_400_000, 951_782_400_000, 1_767_323_045_678, 253_402_300_799_999,
        253_402_300_800_000, -1, -86_400_001, 4_102_444_800_000,
    ])
    func timestampsMatchTheStringFormatter(_ millis: Int64) {
        var writer = JSONByteWriter()
        writer.timestamp(millis: millis)
        #expect(writer.text == "\"" + Timestamp.iso8601(millis: millis) + "\"")
    }

    static func fullEvent() -> LogEvent {
        let clientInfo = #"{"name":"auth0-spa-js","version":"2.1.0","env":{"node":"20"}}"#
        let request = RequestHead(
            method: "POST", target: "/my-org/identity-providers?take=5",
            headers: HTTPFields([
                ("Host", "Login.Acme.com:8443"), ("User-Agent", "curl/8.5 \"quoted\" <x> \u{1}ctl é"),
                ("Auth0-Client", Base64.encode(Array(clientInfo.utf8))), ("X-Request-Id", "req-123"),
                ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ]))
        var event = LogEvent(
            logID: "0190a1b2c3d4e5f60718293a4b5c6d7e", dateMillis: 1_767_323_045_678,
            type: "my_organization_api_idp_failed", description: "Create identity provider")
        event.apply(request: request)
        event.tenantName = "acme"
        event.ip = "203.0.113.9"
        event.clientID = "client-abc"
        event.userID = "auth0|42"
        event.organizationID = "org_1234567890abcdef"
        event.organizationName = "Acme \u{2028} Inc"
        event.audience = "https://login.acme.com/my-org/"
        event.scope = "create:my_org:identity_providers"
        event.operation = "create"
        event.status = 403
        event.error = .init(TenantError.insufficientScope(missing: ["create:my_org:identity_providers"]))
        event.decidedBy = .gateway
        event.durationMs = 12.3456
        event.reason = "insufficient_scope"
        return event
    }

    static let events: [LogEvent] = {
        var minimal = LogEvent(logID: "x", dateMillis: 0, type: "t", description: "")
        var onlyTrace = minimal
        onlyTrace.traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
        var onlyPath = minimal
        onlyPath.path = "/p"
        var wholeDuration = minimal
        wholeDuration.durationMs = 3
        minimal.status = 200
        return [fullEvent(), minimal, onlyTrace, onlyPath, wholeDuration]
    }()

    @Test(arguments: events)
    func logEventBytesEqualItsJSONValue(_ event: LogEvent) {
        var out = JSONByteWriter()
        event.write(to: &out)
        #expect(out.text == event.json.serialized())
    }

    @Test(arguments: events)
    func aLogIDGivenAsPartsIsWrittenLikeItsText(_ event: LogEvent) {
        let id = LogIDGenerator(clock: ManualClock()).nextID(atMillis: event.dateMillis)
        var withText = event
        withText.logID = id.text
        var out = JSONByteWriter()
        event.write(to: &out, logID: id)
        #expect(out.text == withText.json.serialized())
    }

    /// The single pass over the fields finds what the subscript finds: the first value, any case of the name.
    @Test(arguments: [
        [("user-agent", "first/1"), ("User-Agent", "second/2"), ("X-REQUEST-ID", "r-1"), ("x-request-id", "r-2")],
        [("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), ("X-Request-Ie", "no")],
        [("auth0-client", Base64.encode(Array(#"{"name":"a"}"#.utf8))), ("Auth0-Client", "ignored")],
        [("User-Agen", "short"), ("User-Agentx", "long"), ("X-Request-Id", "bad\nid")],
        [],
    ])
    func requestFactsMatchTheHeaderLookups(_ fields: [(String, String)]) {
        let headers = HTTPFields(fields)
        var event = LogEvent(logID: "x", dateMillis: 0, type: "t", description: "")
        event.apply(request: RequestHead(method: "GET", target: "/a?b", headers: headers))
        #expect(event.userAgent == headers["User-Agent"].map { RequestFacts.clean($0, max: 512) })
        #expect(event.correlationID == RequestFacts.correlationID(headers))
        #expect(event.traceID == headers["traceparent"].flatMap(RequestFacts.traceID))
        #expect(event.auth0Client == headers["Auth0-Client"].flatMap(RequestFacts.decodeAuth0Client))
        #expect(event.path == "/a")
    }

    @Test(arguments: ["/", "/my-org/details", "/a?b=c?d", "?only", "/é/ü?x=1", "/long/path/without/any/query/at/all"])
    func pathsMatchTheRequestHead(_ target: String) {
        // The event's path (through `RequestHead.path`'s byte scan) against the plain definition: everything
        // before the first `?`; the query is everything after it.
        var event = LogEvent(logID: "x", dateMillis: 0, type: "t", description: "")
        event.apply(request: RequestHead(method: "GET", target: target))
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        #expect(event.path == String(parts[0]))
        #expect(
            RequestHead(method: "GET", target: target).query.map(String.init)
                == parts.dropFirst().first.map(String.init))
    }

    static let accessLines: [AccessLogLine] = {
        let full = AccessLogLine(
            timeMillis: 1_767_323_045_678,
            request: RequestHead(
                method: "GET", target: "/my-org/members?take=5&code=secret&from=a%20b", version: .http2,
                headers: HTTPFields([("X-Request-Id", "rid-1"), ("Host", "[::1]:8443")])),
            status: 429, bytes: 123, durationMs: 0.1234, decision: "rate_limit_organization", decidedBy: .gateway,
            organizationID: "org_1", clientID: "client \"q\"", ip: "::1")
        let bare = AccessLogLine(
            timeMillis: 5, request: RequestHead(method: "GET", target: "/bench", version: .http1_0), status: 200,
            bytes: 0, durationMs: 7, decision: "forwarded")
        return [full, bare]
    }()

    @Test(arguments: accessLines)
    func accessLineBytesEqualItsJSONValue(_ line: AccessLogLine) {
        var out = JSONByteWriter()
        line.write(to: &out)
        #expect(out.text == line.json.serialized())
    }

    @Test(arguments: [
        ("login.acme.com", "login.acme.com"), ("login.acme.com:8443", "login.acme.com"),
        ("Login.Acme.COM:1", "login.acme.com"),
        ("[::1]:8443", "[::1]"), ("[::1]", "[::1]"), ("a.b:c:d", "a.b:c"), ("ho\u{1}st", "host"),
        ("a-very-long-host.example", "a-very-long-host.example"),
        (String(repeating: "h", count: 300), String(repeating: "h", count: 255)), (":80", ""),
        ("é.example:1", "é.example"),
    ])
    func hostnames(_ authority: String, _ expected: String) {
        #expect(RequestFacts.hostname(RequestHead(method: "GET", target: "/", authority: authority)) == expected)
        let viaHeader = RequestHead(method: "GET", target: "/", headers: HTTPFields([("Host", authority)]))
        #expect(RequestFacts.hostname(viaHeader) == expected)
    }

    @Test func cleanKeepsItsMeaningOnTheFastPath() {
        #expect(RequestFacts.clean("short", max: 10) == "short")
        #expect(RequestFacts.clean("exactly10!", max: 10) == "exactly10!")
        #expect(RequestFacts.clean("elevenchars", max: 10) == "elevenchar")
        #expect(RequestFacts.clean("a\u{1}b\u{7F}c\nd", max: 10) == "abcd")
        // A multi-byte character that crosses the limit is kept whole, as before.
        #expect(RequestFacts.clean("abcdefghié", max: 10) == "abcdefghié")
    }

    @Test func logIDsForAGivenTimeCarryItExactly() {
        let ids = LogIDGenerator(clock: ManualClock(nanoseconds: 0))
        let first = ids.next(atMillis: 1_767_323_045_678)
        #expect(first.utf8.count == 32)
        #expect(first.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        #expect(LogIDGenerator.millis(of: first) == 1_767_323_045_678)
        let same = ids.next(atMillis: 1_767_323_045_678)
        let earlier = ids.next(atMillis: 1_767_323_045_000)
        #expect(first < same, "ids of one instant increase in call order")
        #expect(LogIDGenerator.millis(of: earlier) == 1_767_323_045_000, "an earlier time is kept, not clamped")
        #expect(earlier < first)
        let sameAgain = ids.next(atMillis: 1_767_323_045_678)
        #expect(same < sameAgain, "an instant's sequence continues after ids of other instants")
        let later = ids.next(atMillis: 1_767_323_046_000)
        #expect(LogIDGenerator.millis(of: later) == 1_767_323_046_000)
        #expect(sameAgain < later)
        let parts = ids.nextID(atMillis: 1_767_323_046_000)
        #expect(parts.millis == 1_767_323_046_000 && later < parts.text)
        var written = JSONByteWriter()
        written.logID(parts)
        var quoted = JSONByteWriter()
        quoted.string(parts.text)
        #expect(written.text == quoted.text)
    }
}

/// A record that renders itself, as the gateway's exchange entries do.
private struct NumberRecord: LogRecord {
    let n: Int
    func write(to out: inout JSONByteWriter) -> Bool {
        guard n >= 0 else { return false }
        out.beginObject()
        out.key("n")
        out.int(n)
        out.endObject()
        return true
    }
}

@Suite struct LogRecordPipelineTests {
    @Test(arguments: [0.0, 0.005, 0.05])
    func recordsAreWrittenInOrderAndNoneIsLostOnShutdown(linger: Double) throws {
        let dir = TempDir()
        defer { dir.remove() }
        let path = dir.path + "/events.jsonl"
        let pipeline = try LogPipeline(
            settings: LogPipelineSettings(sinks: [.file(FileSinkSettings(path: path))], writerLinger: linger))
        for i in 0..<3000 {
            pipeline.record(NumberRecord(n: i))
            if i % 1000 == 0 { pipeline.record(NumberRecord(n: -1)) }
            if i % 700 == 0 { Thread.sleep(forTimeInterval: 0.01) }
        }
        let summary = pipeline.shutdown(timeout: .seconds(10))
        #expect(summary.complete)
        let numbers = dir.lines(path).compactMap { (try? JSONValue.parse($0))?["n"]?.int64Value.map(Int.init) }
        #expect(numbers == Array(0..<3000))
        #expect(pipeline.stats.sinks[0].delivered == 3000)
        #expect(pipeline.stats.droppedEvents == 0)
    }

    @Test func aLingeringWriterStillFlushesPromptly() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let path = dir.path + "/events.jsonl"
        let pipeline = try LogPipeline(
            settings: LogPipelineSettings(sinks: [.file(FileSinkSettings(path: path))], writerLinger: 0.05))
        defer { _ = pipeline.shutdown(timeout: .seconds(5)) }
        // A first event wakes the idle writer; the next ones arrive while it lingers and must not wait for a
        // signal that never comes.
        pipeline.record(NumberRecord(n: 0))
        Thread.sleep(forTimeInterval: 0.01)
        for i in 1..<10 { pipeline.record(NumberRecord(n: i)) }
        let start = ContinuousClock.now
        #expect(pipeline.flush(timeout: .seconds(5)))
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(dir.lines(path).count == 10)
    }

    @Test func aBurstPastTheHighWaterMarkWakesTheWriterEarly() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let path = dir.path + "/events.jsonl"
        // A linger far longer than the test: only the high-water wake-up can empty the queue in time.
        let pipeline = try LogPipeline(
            settings: LogPipelineSettings(
                sinks: [.file(FileSinkSettings(path: path))], queueCapacity: 400, writerLinger: 30))
        defer { _ = pipeline.shutdown(timeout: .seconds(5)) }
        pipeline.record(NumberRecord(n: 0))
        Thread.sleep(forTimeInterval: 0.05)
        var n = 1
        let deadline = ContinuousClock.now + .seconds(5)
        while pipeline.stats.sinks[0].delivered < 1000 && ContinuousClock.now < deadline {
            for _ in 0..<100 {
                pipeline.record(NumberRecord(n: n))
                n += 1
            }
            Thread.sleep(forTimeInterval: 0.002)
        }
        #expect(pipeline.stats.sinks[0].delivered >= 1000, "the writer slept through a full queue")
    }
}
