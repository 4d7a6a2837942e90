import Foundation
import GatewayCore
import Logging
import TestSupport
import Testing

@testable import Recording

@Suite struct LogPipelineTests {
    func event(_ i: Int, padding: Int = 0) -> JSONValue {
        ["n": .number(Double(i)), "pad": .string(String(repeating: "x", count: padding))]
    }

    func numbers(_ lines: [String]) -> [Int] {
        lines.compactMap { (try? JSONValue.parse($0))?["n"]?.int64Value.map(Int.init) }
    }

    @Test func fileSinkWritesEveryEventInOrder() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let path = dir.path + "/logs/events.jsonl"
        let pipeline = try LogPipeline(settings: LogPipelineSettings(sinks: [.file(FileSinkSettings(path: path))]))
        for i in 0..<1000 { pipeline.record(event(i)) }
        #expect(pipeline.flush(timeout: .seconds(10)))
        #expect(numbers(dir.lines(path)) == Array(0..<1000))
        let summary = pipeline.shutdown(timeout: .seconds(5))
        #expect(summary.complete)
        #expect(pipeline.stats.accepted == 1000)
        #expect(pipeline.stats.sinks[0].delivered == 1000)
        #expect(pipeline.stats.droppedEvents == 0)
    }

    @Test func fileRotationKeepsNFiles() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let path = dir.path + "/events.jsonl"
        let settings = FileSinkSettings(path: path, maxBytes: 2000, keep: 2, fsync: .never, batchSize: 1)
        let pipeline = try LogPipeline(settings: LogPipelineSettings(sinks: [.file(settings)]))
        for i in 0..<100 { pipeline.record(event(i, padding: 80)) }
        _ = pipeline.shutdown(timeout: .seconds(10))
        let files = dir.allFiles().map { ($0 as NSString).lastPathComponent }.sorted()
        #expect(files == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"])
        for file in [path, path + ".1", path + ".2"] {
            #expect((FileIO.fileSize(file) ?? 0) <= 2000)
        }
        // The three files hold the newest events, contiguous and in order.
        let kept = numbers(dir.lines(path + ".2") + dir.lines(path + ".1") + dir.lines(path))
        #expect(kept.last == 99)
        #expect(kept == Array((kept.first ?? 0)...99))
        #expect(kept.count > 20)
    }

    @Test(arguments: [FsyncPolicy.always, .interval(seconds: 0.01), .never])
    func fsyncPoliciesWriteEverything(_ policy: FsyncPolicy) throws {
        let dir = TempDir()
        defer { dir.remove() }
        let path = dir.path + "/events.jsonl"
        let spool = SpoolSettings(directory: dir.path + "/spool", fsync: policy)
        let pipeline = try LogPipeline(
            settings: LogPipelineSettings(
                sinks: [.file(FileSinkSettings(path: path, maxBytes: 4000, keep: 1, fsync: policy, batchSize: 7))],
                spool: spool))
        for i in 0..<50 {
            pipeline.record(event(i, padding: 10))
            if i % 10 == 0 { Thread.sleep(forTimeInterval: 0.02) }
        }
        #expect(pipeline.shutdown(timeout: .seconds(10)).complete)
        #expect(numbers(dir.lines(path + ".1") + dir.lines(path)) == Array(0..<50))
    }

    @Test func shutdownWritesEverythingStillQueued() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let path = dir.path + "/events.jsonl"
        let pipeline = try LogPipeline(
            settings: LogPipelineSettings(sinks: [.file(FileSinkSettings(path: path, fsync: .always, batchSize: 10))]))
        // Deferred events are built on the writer thread, so many are still queued when shutdown starts.
        for i in 0..<2000 { pipeline.record(deferred: { ["n": .number(Double(i))] }) }
        let summary = pipeline.shutdown(timeout: .seconds(30))
        #expect(summary.complete)
        #expect(numbers(dir.lines(path)) == Array(0..<2000))
        // After shutdown nothing is taken, and that is counted.
        pipeline.record(event(1))
        #expect(pipeline.stats.droppedAfterShutdown == 1)
    }

    @Test func deferredBuildersReturningNilRecordNothing() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let path = dir.path + "/e.jsonl"
        let pipeline = try LogPipeline(settings: LogPipelineSettings(sinks: [.file(FileSinkSettings(path: path))]))
        pipeline.record(deferred: { nil })
        pipeline.record(event(7))
        _ = pipeline.shutdown(timeout: .seconds(5))
        #expect(numbers(dir.lines(path)) == [7])
    }

    @Test func spoolLimitDropsCountsAndLogs() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let capture = LogCapture()
        let reserved = ReservedPort()
        defer { reserved.release() }
        let port = reserved.port
        // The webhook is down for the whole test: everything goes to a tiny spool that fills up.
        let webhook = WebhookSinkSettings(
            url: "http://127.0.0.1:\(port)/logs", batchSize: 10, batchInterval: 0, timeout: 1,
            initialRetryDelay: 0.05, maxRetryDelay: 0.1)
        let pipeline = try LogPipeline(
            settings: LogPipelineSettings(
                sinks: [.webhook(webhook)], sinkMemoryCapacity: 20,
                spool: SpoolSettings(directory: dir.path + "/spool", maxBytes: 4096, segmentBytes: 1024)),
            logger: capture.logger)
        for i in 0..<400 { pipeline.record(event(i, padding: 40)) }
        #expect(
            eventually { pipeline.stats.droppedEvents > 0 && capture.contains(level: .error, "log events dropped") })
        let stats = pipeline.stats
        #expect(stats.sinks[0].droppedSpoolFull > 0)
        #expect(stats.sinks[0].spoolBytes <= 4096)
        #expect(eventually { pipeline.stats.sinks[0].deliveryFailures > 0 })
        let summary = pipeline.shutdown(timeout: .milliseconds(300))
        #expect(!summary.complete)
        #expect((summary.leftInSpool[pipeline.sinkNames[0]] ?? 0) > 0)
        // Accepted = delivered (none) + left in the spool + dropped: nothing vanished without a count.
        let after = pipeline.stats
        #expect(after.accepted == 400)
        #expect(after.sinks[0].delivered == 0)
        #expect((summary.leftInSpool[pipeline.sinkNames[0]] ?? 0) + after.droppedEvents == 400)
    }

    @Test func withoutSpoolAFullMemoryQueueDropsAndCounts() throws {
        let capture = LogCapture()
        let reserved = ReservedPort()
        defer { reserved.release() }
        let port = reserved.port
        let webhook = WebhookSinkSettings(
            url: "http://127.0.0.1:\(port)/", batchSize: 5, batchInterval: 0, timeout: 1, initialRetryDelay: 0.05,
            maxRetryDelay: 0.1)
        let pipeline = try LogPipeline(
            settings: LogPipelineSettings(sinks: [.webhook(webhook)], sinkMemoryCapacity: 50), logger: capture.logger)
        for i in 0..<200 { pipeline.record(event(i)) }
        // Memory holds 50 lines plus one batch in flight; everything else is dropped, and counted.
        #expect(eventually { pipeline.stats.droppedEvents >= 145 })
        #expect(eventually { pipeline.stats.droppedEvents + pipeline.stats.sinks[0].pending == 200 })
        #expect(eventually { capture.contains(level: .error, "log events dropped") })
        let summary = pipeline.shutdown(timeout: .milliseconds(200))
        #expect(summary.lost + pipeline.stats.sinks[0].droppedSpoolFull == 200)
    }

    @Test func frontQueueFullIsCountedNotBlocking() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let capture = LogCapture()
        let pipeline = try LogPipeline(
            settings: LogPipelineSettings(
                sinks: [.file(FileSinkSettings(path: dir.path + "/e.jsonl"))], queueCapacity: 4),
            logger: capture.logger)
        // Slow builders keep the writer busy so the 4-slot queue overflows.
        let start = ContinuousClock.now
        for i in 0..<50 {
            pipeline.record(deferred: {
                Thread.sleep(forTimeInterval: 0.002)
                return ["n": .number(Double(i))]
            })
        }
        #expect(ContinuousClock.now - start < .seconds(1))
        _ = pipeline.shutdown(timeout: .seconds(10))
        let stats = pipeline.stats
        #expect(stats.droppedQueueFull > 0)
        #expect(stats.accepted + stats.droppedQueueFull == 50)
        #expect(stats.sinks[0].delivered == stats.accepted)
        #expect(capture.contains(level: .error, "log events dropped"))
    }

    /// A JSON-array webhook on `port` that retries within 0.1 s, so that tests can turn its receiver on and off.
    func quickWebhook(port: UInt16) -> WebhookSinkSettings {
        WebhookSinkSettings(
            url: "http://127.0.0.1:\(port)/", format: .jsonArray, batchSize: 7, batchInterval: 0, timeout: 1,
            initialRetryDelay: 0.05, maxRetryDelay: 0.1)
    }

    @Test func spoolSurvivesARestartAndIsSentFirst() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let reserved = ReservedPort()
        let port = reserved.port
        let webhook = quickWebhook(port: port)
        let spool = SpoolSettings(directory: dir.path + "/spool", segmentBytes: 300)
        let first = try LogPipeline(settings: LogPipelineSettings(sinks: [.webhook(webhook)], spool: spool))
        for i in 0..<30 { first.record(event(i)) }
        let summary = first.shutdown(timeout: .milliseconds(300))
        #expect(summary.leftInSpool.values.reduce(0, +) == 30)

        let receiver = LoopbackReceiver(reserved: reserved)
        defer { receiver.stop() }
        let second = try LogPipeline(settings: LogPipelineSettings(sinks: [.webhook(webhook)], spool: spool))
        for i in 30..<40 { second.record(event(i)) }
        #expect(second.flush(timeout: .seconds(10)))
        _ = second.shutdown(timeout: .seconds(5))
        let received = receiver.requests.flatMap { numbers(arrayItems($0.body)) }
        #expect(received == Array(0..<40))
        // Delivered segments are gone.
        #expect(dir.allFiles().filter { $0.hasSuffix(".jsonl") }.isEmpty)
    }

    @Test func eventsSpooledForASinkNoLongerConfiguredAreReportedAtStart() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let reserved = ReservedPort()
        let spool = SpoolSettings(directory: dir.path + "/spool", segmentBytes: 300)
        let old = quickWebhook(port: reserved.port)
        let first = try LogPipeline(settings: LogPipelineSettings(sinks: [.webhook(old)], spool: spool))
        for i in 0..<5 { first.record(event(i)) }
        #expect(first.shutdown(timeout: .milliseconds(300)).leftInSpool.values.reduce(0, +) == 5)

        // The webhook's URL changes, and with it the default name that finds its spool.
        var moved = old
        moved.url = "http://127.0.0.1:\(reserved.port)/elsewhere"
        let capture = LogCapture()
        let second = try LogPipeline(
            settings: LogPipelineSettings(sinks: [.webhook(moved)], spool: spool), logger: capture.logger)
        _ = second.shutdown(timeout: .milliseconds(300))
        let oldName = SinkSettings.webhook(old).name
        #expect(oldName != SinkSettings.webhook(moved).name)
        let line = capture.all.first { $0.contains("no longer configured") } ?? ""
        #expect(line.hasPrefix("warning "), "\(capture.all)")
        #expect(line.contains("spool=\(dir.path)/spool/\(oldName)"), "\(line)")
        #expect(line.contains("name: \(oldName)"), "\(line)")
        #expect(!capture.all.contains { $0.contains("spool=\(dir.path)/spool/\(SinkSettings.webhook(moved).name)") })
    }

    @Test func aHandOverLeavesOneWriterPerSpoolAndEveryEventArrivesOnce() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let reserved = ReservedPort()
        let port = reserved.port
        let webhook = quickWebhook(port: port)
        var changed = webhook
        changed.batchSize = 5
        let spool = SpoolSettings(directory: dir.path + "/spool", segmentBytes: 300)
        let first = try LogPipeline(settings: LogPipelineSettings(sinks: [.webhook(webhook)], spool: spool))
        for i in 0..<30 { first.record(event(i)) }
        // A reload: the successor (same sink name, so the same spool) takes new records but opens nothing yet,
        // while exchanges begun before the reload still record into the first.
        let second = LogPipeline(deferred: LogPipelineSettings(sinks: [.webhook(changed)], spool: spool))
        for i in 30..<40 { second.record(event(i)) }
        for i in 40..<45 { first.record(event(i)) }
        let summary = first.handOver(to: second, deadline: .now + .milliseconds(300))
        #expect(summary.lost == 0)
        #expect(summary.leftInSpool.values.reduce(0, +) == 35)
        for i in 45..<50 { first.record(event(i)) }

        let receiver = LoopbackReceiver(reserved: reserved)
        defer { receiver.stop() }
        #expect(second.flush(timeout: .seconds(10)))
        _ = second.shutdown(timeout: .seconds(5))
        let received = receiver.requests.flatMap { numbers(arrayItems($0.body)) }
        // Once each, the first pipeline's (from the spool) before the successor's own.
        #expect(received == Array(0..<30) + Array(40..<45) + Array(30..<40) + Array(45..<50))
        #expect(first.stats.droppedEvents == 0)
        #expect(second.stats.droppedEvents == 0)
        #expect(second.stats.accepted == 15)
    }

    @Test func aDeferredPipelineOpensNothingUntilStarted() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let path = dir.path + "/events.jsonl"
        let pipeline = LogPipeline(deferred: LogPipelineSettings(sinks: [.file(FileSinkSettings(path: path))]))
        for i in 0..<5 { pipeline.record(event(i)) }
        #expect(!FileManager.default.fileExists(atPath: path))
        try pipeline.start()
        #expect(pipeline.flush(timeout: .seconds(10)))
        #expect(numbers(dir.lines(path)) == Array(0..<5))
        #expect(pipeline.shutdown(timeout: .seconds(5)).complete)
    }

    @Test func settingsThatCannotOpenAreRefusedByValidation() {
        #expect(throws: LogPipeline.ConfigurationError.self) {
            try LogPipeline.validate(LogPipelineSettings(sinks: [.file(FileSinkSettings(path: "/proc/nope/x.jsonl"))]))
        }
        #expect(throws: LogPipeline.ConfigurationError.self) {
            try LogPipeline.validate(LogPipelineSettings(sinks: [.webhook(WebhookSinkSettings(url: "ftp://x/"))]))
        }
    }

    func arrayItems(_ body: String) -> [String] {
        guard case .array(let items)? = try? JSONValue.parse(body) else { return [] }
        return items.map { $0.serialized() }
    }

    @Test func duplicateSinkNamesAreRefused() {
        #expect(throws: LogPipeline.ConfigurationError.self) {
            _ = try LogPipeline(
                settings: LogPipelineSettings(sinks: [.stdout(StdoutSinkSettings()), .stdout(StdoutSinkSettings())]))
        }
    }

    @Test func invalidWebhookURLIsRefused() {
        #expect(throws: LogPipeline.ConfigurationError.self) {
            _ = try LogPipeline(settings: LogPipelineSettings(sinks: [.webhook(WebhookSinkSettings(url: "ftp://x/"))]))
        }
    }
}
