import GatewayCore
import Testing

@testable import Recording

@Suite struct ReplayTests {
    @Test func replayPlanRebuildsRequestsWithoutRedactedValues() {
        let lines = HARExporterTests().recordingLines()
        let plan = ExchangeRecord.replayPlan(recordingLines: lines.reversed(), authorization: "Bearer fresh")
        #expect(plan.count == 4)
        #expect(plan.map(\.offsetMillis) == [0, 1000, 2000, 3000])
        let first = plan[0]
        #expect(first.method == "POST")
        #expect(first.target == "/my-org/identity-providers/con_1/provisioning/scim-tokens")
        #expect(first.headers["Authorization"] == "Bearer fresh")
        #expect(first.headers["Cookie"] == nil)
        #expect(first.headers["DPoP"] == nil)
        #expect(first.headers["Host"] == nil)
        #expect(first.headers["X-Request-Id"] == "req-1")
        #expect(!first.headers.contains { $0.value == Redactor.marker })
        #expect(String(decoding: first.body, as: UTF8.self) == #"{"token_lifetime":3600}"#)
        #expect(!first.bodyIncomplete)
        #expect(plan[1].bodyIncomplete)
        #expect(first.recordedStatus == 201)
        #expect(plan[3].recordedStatus == nil)
        #expect(plan[3].bodyIncomplete)
        #expect(ReplayComparison(request: first, replayedStatus: 201).matches)
        #expect(!ReplayComparison(request: first, replayedStatus: 429).matches)
    }

    @Test func withoutAuthorizationNoneIsSent() {
        let plan = ExchangeRecord.replayPlan(recordingLines: HARExporterTests().recordingLines(), authorization: nil)
        #expect(plan.allSatisfy { $0.headers["Authorization"] == nil })
    }
}

@Suite("Replay: the --target URL")
struct ReplayTargetTests {
    @Test(
        "absolute http and https URLs with a host are accepted, and recorded targets go under their path",
        arguments: [
            ("http://127.0.0.1:8443", "http://127.0.0.1:8443/my-org/details?x=1"),
            ("HTTPS://Gateway.example", "https://Gateway.example/my-org/details?x=1"),
            ("https://gateway.example/", "https://gateway.example/my-org/details?x=1"),
            ("https://gateway.example/base//", "https://gateway.example/base/my-org/details?x=1"),
            ("http://[::1]:8080", "http://[::1]:8080/my-org/details?x=1"),
            ("http://localhost:65535", "http://localhost:65535/my-org/details?x=1"),
        ])
    func accepted(text: String, url: String) throws {
        let target = try ReplayTarget(parsing: text)
        #expect(target.url(for: "/my-org/details?x=1") == url)
    }

    @Test(
        "anything else is refused with a reason",
        arguments: [
            ("notaurl", "absolute http or https URL"),
            ("", "absolute http or https URL"),
            ("127.0.0.1:8443", "absolute http or https URL"),
            ("ftp://host", "scheme must be http or https, not 'ftp'"),
            ("http://", "no host"),
            ("https://:8443", "no host"),
            ("http://host:0", "not a port number"),
            ("http://host:65536", "not a port number"),
            ("http://host:", "not a port number"),
            ("http://host:8o", "not a port number"),
            ("http://user:secret@host", "credentials"),
            ("http://host/base?q=1", "no query or fragment"),
            ("http://host#frag", "no query or fragment"),
            ("http://ho st", "spaces"),
            ("http://hôst", "non-ASCII"),
            ("http://[::1", "unclosed IPv6"),
            ("http://[zz]:80", "not an IPv6 address"),
            ("http://host,other", "not a host name"),
        ])
    func refused(text: String, reason: String) {
        #expect {
            try ReplayTarget(parsing: text)
        } throws: { error in
            "\(error)".contains(reason)
        }
    }
}

@Suite("Replay: the summary")
struct ReplaySummaryTests {
    func request(_ recorded: Int?) -> ReplayRequest {
        ReplayRequest(
            id: "r", method: "GET", target: "/my-org/details", headers: HTTPFields(), body: [],
            bodyIncomplete: false, recordedStatus: recorded, recordedOutcome: "forwarded", offsetMillis: 0)
    }

    /// Each column's right edge (numbers) or left edge (labels) must be the same on every table line.
    func assertAligned(_ table: [Substring]) {
        let header = table[0]
        let replayedEnd = header.range(of: "replayed")!.upperBound.utf16Offset(in: header)
        let recordedEnd = header.utf16.count
        for row in table.dropFirst() {
            let columns = row.split(separator: " ")
            #expect(columns.count >= 3, "\(row)")
            #expect(row.utf16.count == recordedEnd, "row '\(row)' does not end under 'recorded'")
            let replayed = row.range(of: " \(columns[columns.count - 2]) ", options: .backwards)!
            #expect(replayed.upperBound.utf16Offset(in: row) - 1 == replayedEnd, "'\(row)' vs '\(header)'")
        }
    }

    @Test("columns line up whatever the widths of the numbers and labels")
    func aligned() {
        var summary = ReplaySummary()
        for _ in 0..<1234 { summary.add(request(200), .answered(status: 200)) }
        for _ in 0..<2 { summary.add(request(409), .answered(status: 200)) }
        summary.add(request(nil), .failed(reason: "connection refused"))
        let text = summary.rendered()
        let table = text.split(separator: "\n", omittingEmptySubsequences: false).prefix { !$0.isEmpty }
        #expect(table.count == 4, "\(text)")
        #expect(table[0].hasPrefix("status "))
        #expect(table[1].hasPrefix("200 "))
        #expect(table[3].hasPrefix("no answer "))
        assertAligned(Array(table))
        #expect(text.contains("1234 of 1237 requests got the recorded status."))
    }

    @Test("transport failures are counted apart from statuses, by reason in order of first appearance")
    func failures() {
        var summary = ReplaySummary()
        summary.add(request(200), .failed(reason: "timeout while connecting"))
        summary.add(request(200), .failed(reason: "connection refused"))
        summary.add(request(409), .failed(reason: "timeout while connecting"))
        #expect(summary.nothingAnswered)
        #expect(summary.failures.map(\.reason) == ["timeout while connecting", "connection refused"])
        #expect(summary.failures.map(\.count) == [2, 1])
        #expect(
            summary.rendered() == """
                status     replayed  recorded
                200               0         2
                409               0         1
                no answer         3         0

                0 of 3 requests got the recorded status.
                3 of 3 requests got no HTTP answer:
                  2  timeout while connecting
                  1  connection refused

                """)
        summary.add(request(200), .answered(status: 200))
        #expect(!summary.nothingAnswered)
        #expect(summary.matched == 1)
    }

    @Test("an empty replay answered nothing but is not a failure of the target")
    func empty() {
        #expect(!ReplaySummary().nothingAnswered)
    }
}
