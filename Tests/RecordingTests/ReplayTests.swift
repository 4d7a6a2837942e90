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
