import GatewayCore
import Testing

@testable import Recording

@Suite struct HARExporterTests {
    func recordingLines() -> [String] {
        let sink = MemoryEventRecorder()
        let recorder = TrafficRecorder(
            settings: TrafficRecordingSettings(enabled: true), recorder: sink, ids: LogIDGenerator(clock: ManualClock())
        )
        for exchange in TrafficRecorderTests.exchanges() { recorder.record(exchange) }
        // Lines of other kinds and garbage are skipped.
        return sink.events.map { $0.serialized() } + [#"{"kind":"access","time":"x"}"#, "not json", ""]
    }

    @Test func harHasEveryRequiredField() throws {
        let lines = recordingLines()
        let har = HARExporter.export(recordingLines: lines)
        let log = try #require(har["log"])
        #expect(log["version"] == "1.2")
        #expect(log["creator"]?["name"] == "myorg-gateway")
        #expect(log["creator"]?["version"]?.stringValue != nil)
        let entries = try #require(log["entries"]?.arrayValue)
        #expect(entries.count == 4)
        for entry in entries {
            #expect(entry["startedDateTime"]?.stringValue.flatMap(Timestamp.parseISO8601) != nil)
            #expect(entry["time"]?.doubleValue != nil)
            let request = try #require(entry["request"])
            for key in ["method", "url", "httpVersion", "headers", "queryString", "headersSize", "bodySize", "cookies"]
            {
                #expect(request[key] != nil, "request.\(key) missing")
            }
            let response = try #require(entry["response"])
            for key in [
                "status", "statusText", "httpVersion", "headers", "content", "redirectURL", "headersSize",
                "bodySize", "cookies",
            ] {
                #expect(response[key] != nil, "response.\(key) missing")
            }
            #expect(response["content"]?["size"]?.doubleValue != nil)
            #expect(response["content"]?["mimeType"]?.stringValue != nil)
            #expect(entry["cache"] == [:])
            for key in ["send", "wait", "receive"] {
                #expect((entry["timings"]?[key]?.doubleValue ?? -1) >= 0, "timings.\(key) must be >= 0")
            }
            for header in request["headers"]?.arrayValue ?? [] {
                #expect(header["name"]?.stringValue != nil && header["value"]?.stringValue != nil)
            }
        }
        let first = entries[0]
        #expect(first["request"]?["method"] == "POST")
        #expect(
            first["request"]?["url"]
                == "https://login.acme.com/my-org/identity-providers/con_1/provisioning/scim-tokens")
        #expect(first["request"]?["postData"]?["mimeType"] == "application/json")
        #expect(first["request"]?["postData"]?["params"] == nil, "HAR 1.2: params and text are mutually exclusive")
        #expect(first["request"]?["postData"]?["text"] != nil)
        #expect(first["response"]?["status"] == 201)
        #expect(first["response"]?["statusText"] == "Created")
        #expect(first["response"]?["content"]?["text"]?.stringValue?.contains("[REDACTED]") == true)
        #expect(first["timings"]?["wait"] == 20)
        let idp = entries[1]
        #expect(idp["request"]?["queryString"] == [["name": "access_token", "value": "[REDACTED]"]])
        #expect(entries[3]["response"]?["status"] == 0)
        #expect(entries[2]["_outcome"] == "rate_limit_organization")
        // The text form parses back to the same document.
        #expect(try JSONValue.parse(HARExporter.exportString(recordingLines: lines)) == har)
    }

    @Test(
        arguments: [
            ("/a?x=1&y=a%20b&z=c+d&flag", [("x", "1"), ("y", "a b"), ("z", "c d"), ("flag", "")]),
            ("/a", []),
            ("/a?bad=%zz", [("bad", "%zz")]),
        ] as [(String, [(String, String)])])
    func queryStrings(_ target: String, _ expected: [(String, String)]) {
        let got = HARExporter.queryString(target)
        #expect(got.map(\.0) == expected.map(\.0))
        #expect(got.map(\.1) == expected.map(\.1))
    }
}
