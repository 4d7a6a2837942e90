import Foundation
import GatewayCore
import TestSupport
import Testing

@testable import Recording

@Suite struct WebhookSinkTests {
    func numbers(_ body: String, format: WebhookFormat) -> [Int] {
        let items: [JSONValue]
        switch format {
        case .jsonLines: items = body.split(separator: "\n").compactMap { try? JSONValue.parse(String($0)) }
        case .jsonArray: items = (try? JSONValue.parse(body))?.arrayValue ?? []
        case .jsonObject: items = [(try? JSONValue.parse(body)) ?? .null]
        }
        return items.compactMap { $0["n"]?.int64Value.map(Int.init) }
    }

    @Test(arguments: [WebhookFormat.jsonLines, .jsonArray, .jsonObject])
    func receiverDownThenUpGetsEveryEventInOrder(_ format: WebhookFormat) throws {
        let dir = TempDir()
        defer { dir.remove() }
        let reserved = ReservedPort()
        let port = reserved.port
        let authorization = "Bearer webhook-shared-secret-\(format.rawValue)"
        let webhook = WebhookSinkSettings(
            url: "http://127.0.0.1:\(port)/ingest", authorization: authorization,
            headers: HTTPFields([("X-Custom", "custom-value")]), format: format, batchSize: 8, batchInterval: 0.05,
            timeout: 2, initialRetryDelay: 0.02, maxRetryDelay: 0.1)
        let pipeline = try LogPipeline(
            settings: LogPipelineSettings(
                sinks: [.webhook(webhook)], sinkMemoryCapacity: 16,
                spool: SpoolSettings(directory: dir.path + "/spool", segmentBytes: 512)))
        let total = format == .jsonObject ? 40 : 120
        // Phase 1: nothing listens (connection refused); events pile up, memory spills to the spool.
        for i in 0..<(total / 2) { pipeline.record(["n": .number(Double(i))]) }
        #expect(eventually { pipeline.stats.sinks[0].deliveryFailures >= 2 })
        #expect(pipeline.stats.sinks[0].pendingOnDisk > 0)
        // Phase 2: the receiver is up but answers 503 to its first three requests, then 200.
        let receiver = LoopbackReceiver(reserved: reserved) { $0 < 3 ? 503 : 200 }
        defer { receiver.stop() }
        for i in (total / 2)..<total { pipeline.record(["n": .number(Double(i))]) }
        #expect(pipeline.flush(timeout: .seconds(20)))
        #expect(pipeline.shutdown(timeout: .seconds(5)).complete)

        let requests = receiver.requests
        #expect(requests.count > 3)
        var delivered: [Int] = []
        for (i, request) in requests.enumerated() {
            #expect(request.head.hasPrefix("POST /ingest HTTP/1.1"))
            #expect(request.header("Authorization") == authorization)
            #expect(request.header("X-Custom") == "custom-value")
            let batch = numbers(request.body, format: format)
            #expect(!batch.isEmpty)
            #expect(Set(batch).count == batch.count, "an event appears twice within one batch")
            #expect(batch.count <= (format == .jsonObject ? 1 : 8))
            if i >= 3 { delivered += batch }
        }
        // The refused requests carried the head of the stream; it was re-sent, so the accepted ones hold it all.
        #expect(delivered == Array(0..<total))
        #expect(numbers(requests[0].body, format: format).first == 0)
        #expect(pipeline.stats.sinks[0].delivered == total)
        #expect(pipeline.stats.droppedEvents == 0)
        #expect(dir.allFiles().filter { $0.hasSuffix(".jsonl") }.isEmpty)
    }

    @Test func contentTypesFollowTheFormat() {
        #expect(WebhookSink.body(["{\"a\":1}", "{\"a\":2}"], format: .jsonLines) == "{\"a\":1}\n{\"a\":2}\n")
        #expect(WebhookSink.body(["{\"a\":1}", "{\"a\":2}"], format: .jsonArray) == "[{\"a\":1},{\"a\":2}]")
        #expect(WebhookSink.body(["{\"a\":1}"], format: .jsonObject) == "{\"a\":1}")
        #expect(WebhookSinkSettings(url: "http://x/", format: .jsonObject, batchSize: 50).batchSize == 1)
    }

    @Test(
        "a refused credential, a missing receiver or a redirect is retried until it passes: nothing dropped",
        arguments: [401, 403, 404, 302])
    func authorizationAndAvailabilityRefusalsAreRetried(status: Int) throws {
        let receiver = LoopbackReceiver { $0 < 5 ? status : 200 }
        defer { receiver.stop() }
        let webhook = WebhookSinkSettings(
            url: "http://127.0.0.1:\(receiver.port)/", format: .jsonArray, batchSize: 5, batchInterval: 30,
            timeout: 2, initialRetryDelay: 0.01, maxRetryDelay: 0.02, maxAttemptsWhenRejected: 3)
        let pipeline = try LogPipeline(settings: LogPipelineSettings(sinks: [.webhook(webhook)]))
        for i in 0..<5 { pipeline.record(["n": .number(Double(i))]) }
        #expect(eventually { pipeline.stats.sinks[0].delivered == 5 })
        _ = pipeline.shutdown(timeout: .seconds(5))
        #expect(receiver.requests.count == 6, "five refusals, then the delivery")
        #expect(numbers(receiver.requests[5].body, format: .jsonArray) == Array(0..<5))
        #expect(pipeline.stats.sinks[0].droppedRejected == 0)
        #expect(pipeline.stats.droppedEvents == 0)
    }

    @Test func aBatchTheReceiverKeepsRefusingIsDroppedAndCounted() throws {
        let capture = LogCapture()
        let receiver = LoopbackReceiver { $0 < 3 ? 400 : 200 }
        defer { receiver.stop() }
        let webhook = WebhookSinkSettings(
            url: "http://127.0.0.1:\(receiver.port)/", format: .jsonArray, batchSize: 5, batchInterval: 30,
            timeout: 2, initialRetryDelay: 0.01, maxRetryDelay: 0.02, maxAttemptsWhenRejected: 3)
        let pipeline = try LogPipeline(
            settings: LogPipelineSettings(sinks: [.webhook(webhook)]), logger: capture.logger)
        for i in 0..<5 { pipeline.record(["n": .number(Double(i))]) }
        #expect(eventually { pipeline.stats.sinks[0].droppedRejected == 5 })
        // A full batch goes out at once; the long interval keeps a partial one from leaving early.
        for i in 5..<10 { pipeline.record(["n": .number(Double(i))]) }
        #expect(eventually { receiver.requests.count == 4 })
        _ = pipeline.shutdown(timeout: .seconds(5))
        #expect(receiver.requests.count == 4)
        #expect(numbers(receiver.requests[3].body, format: .jsonArray) == Array(5..<10))
        #expect(capture.contains(level: .error, "log events dropped"))
        #expect(!capture.all.joined().contains("webhook-shared-secret"))
    }
}
