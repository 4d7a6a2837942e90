import GatewayCore
import Testing

@testable import Policy

/// Methods with rules of their own at an intermediary: TRACE (never forwarded: it would echo the edge secret),
/// OPTIONS with Max-Forwards (RFC 9110 §7.6.2), OPTIONS * (RFC 9112 §3.2.4).
@Suite("Pipeline: TRACE, Max-Forwards and OPTIONS")
struct PipelineMethodTests {
    typealias F = PipelineFixture

    @Test(
        "TRACE is refused with 405 on every domain and path, and never forwarded",
        arguments: [(F.custom, "/authorize"), (F.custom, "/my-org/details"), (F.canonical, "/my-org/details")])
    func traceRefused(domain: String, path: String) throws {
        let run = PipelineRun.run(
            try F.policy(), F.request("TRACE", path, authorization: nil), listenerDomain: domain,
            token: .success(F.token(scopes: [])))
        run.expectError(status: 405, code: "A0E-405-0001", decision: "refused_route")
        #expect(run.headers["Allow"]?.contains("TRACE") == false)
        #expect(run.headers["Allow"]?.contains("GET") == true)
        // RFC 9110 §15.5.6: Allow lists the target resource's methods, not the server's.
        #expect(run.headers["Allow"] == (path == "/my-org/details" ? "GET, HEAD, PATCH" : RequestPolicy.serverMethods))
    }

    @Test("OPTIONS with Max-Forwards: 0 on an API resource lists that resource's methods, and OPTIONS")
    func maxForwardsOnAResource() throws {
        let run = PipelineRun.run(
            try F.policy(),
            F.request("OPTIONS", "/my-org/details", authorization: nil, extra: [("Max-Forwards", "0")]),
            listenerDomain: F.canonical, token: .success(F.token(scopes: [])))
        #expect(run.status == 200, "\(run.summary)")
        #expect(run.headers["Allow"] == "GET, HEAD, PATCH, OPTIONS")
    }

    @Test("OPTIONS with Max-Forwards: 0 is answered by the gateway; with more hops left it is forwarded")
    func maxForwards() throws {
        let policy = try F.policy()
        let last = PipelineRun.run(
            policy, F.request("OPTIONS", "/authorize", authorization: nil, extra: [("Max-Forwards", "0")]),
            listenerDomain: F.custom, token: .success(F.token(scopes: [])))
        #expect(last.status == 200, "\(last.summary)")
        #expect(last.headers["Allow"] == RequestPolicy.serverMethods)
        #expect(last.headers["Content-Length"] == "0")
        let more = PipelineRun.run(
            policy, F.request("OPTIONS", "/authorize", authorization: nil, extra: [("Max-Forwards", "3")]),
            listenerDomain: F.custom, token: .success(F.token(scopes: [])))
        guard case .forwardUnchecked = more else {
            Issue.record("OPTIONS with hops left was not forwarded: \(more.summary)")
            return
        }
        // A CORS preflight stays a preflight whatever Max-Forwards says.
        let preflight = PipelineRun.run(
            policy,
            F.request(
                "OPTIONS", "/my-org/details", origin: "https://app.acme.com", authorization: nil,
                extra: [("Access-Control-Request-Method", "GET"), ("Max-Forwards", "0")]),
            listenerDomain: F.canonical, token: .success(F.token(scopes: [])))
        #expect(preflight.notes.decision == "preflight", "\(preflight.summary)")
    }

    @Test(
        "Max-Forwards is one decimal count: leading zeros still make 0, and a preflight off the API with 0 is answered",
        arguments: [
            [("Max-Forwards", "00")],
            [("Max-Forwards", "0"), ("Origin", "https://app.acme.com"), ("Access-Control-Request-Method", "GET")],
        ])
    func maxForwardsZeroForms(extra: [(String, String)]) throws {
        let run = PipelineRun.run(
            try F.policy(), F.request("OPTIONS", "/authorize", authorization: nil, extra: extra),
            listenerDomain: F.custom, token: .success(F.token(scopes: [])))
        #expect(run.status == 200, "\(run.summary)")
        #expect(run.notes.decision == "options_server", "\(run.summary)")
    }

    @Test(
        "an OPTIONS whose Max-Forwards is no single count (a list, two lines, not digits, empty) gets 400",
        arguments: [
            [("Max-Forwards", "5, 3")], [("Max-Forwards", "abc")], [("Max-Forwards", "-1")], [("Max-Forwards", "")],
            [("Max-Forwards", "5"), ("Max-Forwards", "0")], [("Max-Forwards", "+5")],
        ])
    func maxForwardsInvalid(extra: [(String, String)]) throws {
        let run = PipelineRun.run(
            try F.policy(), F.request("OPTIONS", "/authorize", authorization: nil, extra: extra),
            listenerDomain: F.custom, token: .success(F.token(scopes: [])))
        run.expectError(status: 400, code: "A0E-400-0001", decision: "refused_request")
        #expect(run.bodyText.contains("Max-Forwards"), "\(run.summary)")
    }

    @Test("another method's Max-Forwards is not the gateway's to judge (RFC 9110 §7.6.2: MAY ignore)")
    func maxForwardsIgnoredOnOtherMethods() throws {
        let run = PipelineRun.run(
            try F.policy(), F.request("GET", "/authorize", authorization: nil, extra: [("Max-Forwards", "abc")]),
            listenerDomain: F.custom, token: .success(F.token(scopes: [])))
        guard case .forwardUnchecked = run else {
            Issue.record("a GET with an odd Max-Forwards was not forwarded: \(run.summary)")
            return
        }
    }
}

@Suite("MaxForwards: RFC 9110 §7.6.2's count")
struct MaxForwardsTests {
    private func fields(_ values: [String]) -> HTTPFields {
        var fields = HTTPFields()
        for value in values { fields.add("Max-Forwards", value) }
        return fields
    }

    @Test("values, the forwarded value one less, and a count past Int.max saturated rather than passed on unchanged")
    func parsing() {
        #expect(MaxForwards(fields([])) == .absent)
        #expect(MaxForwards(fields(["0"])) == .hops(0))
        #expect(MaxForwards(fields(["000"])) == .hops(0))
        #expect(MaxForwards(fields(["7"])).forwardedValue == "6")
        #expect(MaxForwards(fields(["0"])).forwardedValue == nil)
        #expect(MaxForwards(fields(["99999999999999999999"])) == .hops(Int.max))
        #expect(MaxForwards(fields(["99999999999999999999"])).forwardedValue == String(Int.max - 1))
        #expect(MaxForwards(fields(["1", "1"])) == .invalid)
        #expect(MaxForwards(fields(["1 2"])) == .invalid)
        #expect(MaxForwards(fields(["٣"])) == .invalid)
        // A forwarder at the field line itself: the same answers from the one value.
        for value in ["7", "0", "000", "99999999999999999999", "1 2", "", "x"] {
            #expect(MaxForwards.forwardedValue(of: value) == MaxForwards(fields([value])).forwardedValue, "\(value)")
        }
    }
}
