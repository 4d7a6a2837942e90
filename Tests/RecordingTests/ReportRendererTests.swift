import GatewayCore
import Testing

@testable import Recording

@Suite struct ReportRendererTests {
    func samples() -> [ReportSample] {
        var out: [ReportSample] = []
        let t0: Int64 = 1_767_323_000_000
        for i in 0..<300 {
            let status = i % 10 == 0 ? 429 : (i % 17 == 0 ? 503 : 200)
            out.append(
                ReportSample(
                    timeMillis: t0 + Int64(i) * 400, status: status, durationMs: Double(i % 50) + 1,
                    organizationID: "org_\(i % 3)", clientID: "client_\(i % 2)",
                    decidedBy: status == 429 ? .gateway : .tenant,
                    outcome: status == 429
                        ? (i % 20 == 0 ? "rate_limit_tenant" : "rate_limit_organization") : "forwarded",
                    rateLimitKind: status == 429 ? (i % 20 == 0 ? .tenant : .organization) : nil))
        }
        return out
    }

    @Test func reportIsSelfContainedAndChartsHoldData() {
        let html = ReportRenderer.render(samples: samples(), title: "Test <report>")
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.contains("<title>Test &lt;report&gt;</title>"))
        #expect(!html.contains("<script"))
        #expect(!html.contains("src=\"http"))
        #expect(!html.contains("href=\"http"))
        #expect(html.components(separatedBy: "<svg").count - 1 == 6)
        // Stacked status bars, 429 bars, latency lines, top orgs, top clients, refusals: all with shapes.
        #expect(html.components(separatedBy: "<rect").count - 1 > 20)
        #expect(html.contains("<path d=\"M"))
        #expect(html.contains("stroke=\"#cf222e\""))
        for label in [
            "org_0", "org_1", "org_2", "client_0", "client_1", "rate_limit_organization", "rate_limit_tenant",
            "tenant limit: ", "organization limit: ", "2xx: ", "4xx: ", "5xx: ",
        ] {
            #expect(html.contains(label), "\(label) missing")
        }
        #expect(html.contains("<td>p50</td>") && html.contains("<td>p90</td>") && html.contains("<td>p99</td>"))
    }

    @Test func percentilesAreNearestRank() {
        let values = (1...100).map(Double.init)
        #expect(ReportRenderer.percentile(values, 0.5) == 50)
        #expect(ReportRenderer.percentile(values, 0.9) == 90)
        #expect(ReportRenderer.percentile(values, 0.99) == 99)
        #expect(ReportRenderer.percentile([7], 0.99) == 7)
    }

    @Test func readsEventsAccessLinesAndRecords() {
        var event = LogEvent(logID: "a", dateMillis: 1_767_323_000_000, type: "t", description: "")
        event.status = 429
        event.decidedBy = .gateway
        event.reason = "rate_limit_tenant"
        event.organizationID = "org_E"
        event.durationMs = 1
        let eventSamples = ReportRenderer.samples(fromLines: [event.json.serialized()])
        #expect(
            eventSamples == [
                ReportSample(
                    timeMillis: 1_767_323_000_000, status: 429, durationMs: 1, organizationID: "org_E",
                    decidedBy: .gateway,
                    outcome: "rate_limit_tenant", rateLimitKind: .tenant)
            ])
        let access = AccessLogLine(
            timeMillis: 1_767_323_000_000, request: RequestHead(method: "GET", target: "/x"), status: 200, bytes: 1,
            durationMs: 2, decision: "forwarded")
        // Access lines win over events, so one request is not counted twice.
        let mixed = ReportRenderer.samples(fromLines: [event.json.serialized(), access.json.serialized()])
        #expect(mixed.map(\.status) == [200])
        let lines = HARExporterTests().recordingLines()
        let fromRecords = ReportRenderer.samples(fromLines: lines)
        #expect(fromRecords.count == 4)
        #expect(fromRecords.filter { $0.rateLimitKind == .organization }.count == 1)
        let html = ReportRenderer.render(lines: lines)
        #expect(html.contains("<rect"))
        #expect(html.contains("org_A"))
    }

    @Test func singleRequestStillDrawsEveryChart() {
        let html = ReportRenderer.render(samples: [
            ReportSample(timeMillis: 0, status: 200, durationMs: 5, organizationID: "org_1", clientID: "c")
        ])
        #expect(html.contains("<path d=\"M"))
        #expect(html.contains("<rect"))
        #expect(html.contains("No 429 responses"))
    }

    @Test func noDataSaysSo() {
        #expect(ReportRenderer.render(samples: []).contains("No requests in this data."))
    }

    @Test func tenantRateLimitKindFromHeader() {
        #expect(ReportSample.kind(status: 429, outcome: nil, errorKindHeader: "global-rate-limit") == .tenant)
        #expect(ReportSample.kind(status: 429, outcome: nil, errorKindHeader: nil) == .organization)
        #expect(ReportSample.kind(status: 200, outcome: nil, errorKindHeader: nil) == nil)
    }
}
