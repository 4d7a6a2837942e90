import Foundation
import GatewayCore
import Logging
import TestSupport
import Testing

@testable import Recording

/// File rotation retention (finding 5), webhook custom headers (finding 6) and opening a large spool
/// (finding 7).
@Suite struct SinkSettingsTests {
    func event(_ i: Int, padding: Int = 0) -> JSONValue {
        ["n": .number(Double(i)), "pad": .string(String(repeating: "p", count: padding))]
    }

    // MARK: File rotation

    @Test(arguments: [1, 2, 4])
    func rotationKeepsMaxFilesAndReportsEveryRemoval(_ keep: Int) throws {
        let dir = TempDir()
        defer { dir.remove() }
        let capture = LogCapture()
        let path = dir.path + "/events.jsonl"
        // Each line is about 130 bytes and a file holds 1000: a rotation every 7 events or so.
        let settings = FileSinkSettings(path: path, maxBytes: 1000, keep: keep, fsync: .never, batchSize: 1)
        let pipeline = try LogPipeline(settings: LogPipelineSettings(sinks: [.file(settings)]), logger: capture.logger)
        for i in 0..<120 { pipeline.record(event(i, padding: 100)) }
        #expect(pipeline.flush(timeout: .seconds(10)))
        let removed = pipeline.stats.sinks[0].rotatedFilesRemoved
        _ = pipeline.shutdown(timeout: .seconds(5))

        let files = dir.allFiles().map { ($0 as NSString).lastPathComponent }.sorted()
        #expect(files == ["events.jsonl"] + (1...keep).map { "events.jsonl.\($0)" })
        // Rotations = files written minus the live one; those beyond `keep` were removed, each counted and logged.
        let lines = files.reduce(0) { $0 + dir.lines(dir.path + "/" + $1).count }
        #expect(removed > 0)
        #expect(lines < 120, "\(removed) files removed, yet every event is still on disk")
        let warnings = capture.all.filter { $0.hasPrefix("warning log file rotation removed the oldest file") }
        #expect(warnings.count == removed)
        #expect(warnings.allSatisfy { $0.contains("max_files=\(keep)") && $0.contains("events.jsonl.") })
        #expect(!warnings.joined().contains("ppppp"), "no event content in the warning")
    }

    @Test func noWarningWhileFilesStayWithinMaxFiles() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let capture = LogCapture()
        let settings = FileSinkSettings(path: dir.path + "/e.jsonl", maxBytes: 1000, keep: 5, batchSize: 1)
        let pipeline = try LogPipeline(settings: LogPipelineSettings(sinks: [.file(settings)]), logger: capture.logger)
        for i in 0..<20 { pipeline.record(event(i, padding: 100)) }
        #expect(pipeline.flush(timeout: .seconds(10)))
        #expect(pipeline.stats.sinks[0].rotatedFilesRemoved == 0)
        _ = pipeline.shutdown(timeout: .seconds(5))
        #expect(dir.allFiles().count == 3)
        #expect(!capture.all.contains { $0.contains("rotation removed") })
    }

    // MARK: Webhook headers

    @Test func configuredHeadersGoWithEveryPostAndNeverIntoTheLog() throws {
        let capture = LogCapture()
        // The first answer is a 503, so that the sink logs a failed delivery too.
        let receiver = LoopbackReceiver { $0 == 0 ? 503 : 200 }
        defer { receiver.stop() }
        let webhook = WebhookSinkSettings(
            url: "http://127.0.0.1:\(receiver.port)/hook", authorization: "Bearer hook-auth-value",
            headers: HTTPFields([("X-Tenant", "acme"), ("X-Api-Key", "hdr-secret-value"), ("x-empty", "")]),
            format: .jsonLines, batchSize: 3, batchInterval: 0.01, timeout: 2, initialRetryDelay: 0.01,
            maxRetryDelay: 0.02)
        let pipeline = try LogPipeline(
            settings: LogPipelineSettings(sinks: [.webhook(webhook)]), logger: capture.logger)
        for i in 0..<10 { pipeline.record(event(i)) }
        #expect(pipeline.flush(timeout: .seconds(10)))
        _ = pipeline.shutdown(timeout: .seconds(5))

        let requests = receiver.requests
        #expect(requests.count >= 5)
        for request in requests {
            #expect(request.header("X-Tenant") == "acme")
            #expect(request.header("X-Api-Key") == "hdr-secret-value")
            #expect(request.header("Authorization") == "Bearer hook-auth-value")
            #expect(request.header("Content-Type") == "application/x-ndjson")
        }
        #expect(capture.contains(level: .warning, "log sink delivery failed"))
        let logged = capture.all.joined(separator: "\n")
        #expect(!logged.contains("hdr-secret-value") && !logged.contains("hook-auth-value"))
    }

    @Test(arguments: [
        ("Host", "evil.example"), ("Content-Length", "0"), ("transfer-encoding", "chunked"), ("Connection", "close"),
        ("Content-Type", "text/plain"), ("Authorization", "Basic x"), ("Bad Name", "v"),
        ("X-Split", "v\r\nX-Injected: 1"), ("X-Nul", "a\u{0}b"), ("X-Lf", "a\nb"),
    ])
    func headersThatWouldBreakTheRequestAreRefused(_ name: String, _ value: String) {
        do {
            _ = try LogPipeline(
                settings: LogPipelineSettings(
                    sinks: [
                        .webhook(WebhookSinkSettings(url: "http://127.0.0.1:9/", headers: HTTPFields([(name, value)])))
                    ]
                ))
            Issue.record("\(name) was accepted")
        } catch {
            let text = "\(error)"
            #expect(text.contains("header"))
            if value.count > 2 { #expect(!text.contains(value), "the value is echoed: \(text)") }
        }
    }

    @Test func anAuthorizationValueWithALineBreakIsRefused() {
        #expect(throws: LogPipeline.ConfigurationError.self) {
            _ = try LogPipeline(
                settings: LogPipelineSettings(
                    sinks: [.webhook(WebhookSinkSettings(url: "http://127.0.0.1:9/", authorization: "a\r\nX: y"))]))
        }
    }

    // MARK: Spool opening

    /// Writes `segments` spool segments of `linesPerSegment` lines each, the way a previous run leaves them.
    func writeSpool(_ directory: String, segments: Int, linesPerSegment: Int, lineBytes: Int) throws -> Int {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var n = 0
        for seq in 1...segments {
            var text = ""
            text.reserveCapacity(linesPerSegment * lineBytes)
            for _ in 0..<linesPerSegment {
                let head = "{\"n\":\(n),\"pad\":\""
                text += head + String(repeating: "s", count: max(0, lineBytes - head.utf8.count - 3)) + "\"}\n"
                n += 1
            }
            let name = String(repeating: "0", count: 20 - String(seq).count) + String(seq) + ".jsonl"
            try text.write(toFile: directory + "/" + name, atomically: false, encoding: .utf8)
        }
        return n
    }

    @Test func openingASpoolDefersCountingItsLines() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let spoolDir = dir.path + "/webhook"
        let total = try writeSpool(spoolDir, segments: 3, linesPerSegment: 50, lineBytes: 100)
        // A cursor in the first segment (10 lines delivered) and a torn last line in the last segment.
        try "1 1000\n".write(toFile: spoolDir + "/cursor", atomically: false, encoding: .utf8)
        let last = spoolDir + "/00000000000000000003.jsonl"
        let handle = try #require(FileHandle(forWritingAtPath: last))
        handle.seekToEndOfFile()
        handle.write(Data("{\"n\":999,\"pa".utf8))
        handle.closeFile()

        let spool = try DiskSpool(directory: spoolDir, settings: SpoolSettings(directory: dir.path))
        #expect(spool.tornLinesAtStart == 1)
        #expect(FileIO.fileSize(last) == 5000)
        #expect(!spool.isEmpty)
        #expect(spool.pendingLines == 1, "not counted yet: at least one, never zero")
        let ranges = spool.linesLeftFromLastRun
        #expect(ranges.map(\.from) == [1000, 0, 0])
        let counted = DiskSpool.countLines(in: ranges)
        #expect(counted == total - 10)
        spool.addCountedLines(counted)
        #expect(spool.pendingLines == total - 10)
        #expect(spool.linesLeftFromLastRun.isEmpty)
        // New lines go to a new segment, after the old ones.
        #expect(spool.append(["{\"n\":1000}"]) == 1)
        #expect(spool.pendingLines == total - 9)
        #expect(FileIO.exists(spoolDir + "/00000000000000000004.jsonl"))
        let (head, _) = spool.peek(max: 1)
        let first = "{\"n\":10,\"pad\":\""
        #expect(head == [first + String(repeating: "s", count: 100 - first.utf8.count - 3) + "\"}"])
    }

    /// Finding 7: a full spool held start-up for 22 s (256 MiB, debug build) because opening read every byte.
    /// Opening now reads one byte per segment; the lines are counted on the sink's thread, and everything is
    /// still delivered in order.
    @Test func aLargeSpoolOpensAtOnceAndIsDeliveredInOrder() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let reserved = ReservedPort()
        let receiverPort = reserved.port
        let webhook = WebhookSinkSettings(
            url: "http://127.0.0.1:\(receiverPort)/", format: .jsonArray, batchSize: 1000, batchInterval: 0,
            timeout: 5, initialRetryDelay: 0.01, maxRetryDelay: 0.05, name: "hook")
        // 48 MiB in 12 segments of 4 MiB: reading it twice, as opening did, takes seconds in a debug build.
        let total = try writeSpool(dir.path + "/spool/hook", segments: 12, linesPerSegment: 4096, lineBytes: 1024)
        let started = ContinuousClock.now
        let pipeline = try LogPipeline(
            settings: LogPipelineSettings(
                sinks: [.webhook(webhook)], spool: SpoolSettings(directory: dir.path + "/spool")))
        let opening = ContinuousClock.now - started
        #expect(opening < .milliseconds(500), "opening took \(opening)")
        #expect(pipeline.stats.sinks[0].pendingOnDisk >= 1)
        #expect(eventually(20) { pipeline.stats.sinks[0].pendingOnDisk == total })

        let receiver = LoopbackReceiver(reserved: reserved)
        defer { receiver.stop() }
        pipeline.record(event(total))
        #expect(pipeline.flush(timeout: .seconds(60)))
        _ = pipeline.shutdown(timeout: .seconds(5))
        var received: [Int] = []
        for request in receiver.requests {
            guard case .array(let items)? = try? JSONValue.parse(request.body) else { continue }
            received += items.compactMap { $0["n"]?.int64Value.map(Int.init) }
        }
        #expect(received == Array(0...total))
    }
}
