import GatewayCore
import Testing

@testable import Proxy

@Suite("response head on the way down: the gateway's rate-limit and CORS fields")
struct DownstreamHeadTests {
    /// What the policy adds to an admitted request's answer: its limiter's figures and the CORS fields.
    static let gatewayFields = HTTPFields([
        ("X-RateLimit-Limit", "4"), ("X-RateLimit-Remaining", "3"), ("X-RateLimit-Reset", "1800000001"),
        ("Access-Control-Allow-Origin", "https://app.example"), ("Vary", "Origin"),
    ])

    @Test("on an answer the tenant gave, the gateway's rate-limit figures replace the tenant's copies")
    func admittedAnswerCarriesTheGatewaysFigures() {
        let upstream = ResponseHead(
            status: 200,
            headers: HTTPFields([
                ("Content-Type", "application/json"), ("X-RateLimit-Remaining", "99"),
                ("Access-Control-Allow-Origin", "*"),
            ]))
        let out = ForwardRewrite.downstreamHead(upstream, adding: Self.gatewayFields)
        #expect(out.headers.values("X-RateLimit-Remaining") == ["3"])
        #expect(out.headers.values("X-RateLimit-Limit") == ["4"])
        #expect(out.headers.values("Access-Control-Allow-Origin") == ["https://app.example"])
        #expect(out.headers["Content-Type"] == "application/json")
    }

    @Test("on the tenant's own 429, its Retry-After and X-RateLimit-* reach the client, not the gateway's figures")
    func tenantRefusalKeepsItsOwnFigures() {
        let upstream = ResponseHead(
            status: 429,
            headers: HTTPFields([
                ("Retry-After", "5"), ("X-RateLimit-Limit", "2"), ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", "1800000005"), ("Access-Control-Allow-Origin", "*"),
            ]))
        let out = ForwardRewrite.downstreamHead(upstream, adding: Self.gatewayFields)
        #expect(out.headers.values("Retry-After") == ["5"])
        #expect(out.headers.values("X-RateLimit-Limit") == ["2"])
        #expect(out.headers.values("X-RateLimit-Remaining") == ["0"])
        #expect(out.headers.values("X-RateLimit-Reset") == ["1800000005"])
        // CORS stays the gateway's decision, whoever refused.
        #expect(out.headers.values("Access-Control-Allow-Origin") == ["https://app.example"])
        #expect(out.headers.values("Vary") == ["Origin"])
    }

    @Test("a tenant 429 without rate-limit fields gets none of the gateway's either")
    func tenantRefusalWithoutFiguresGetsNone() {
        let upstream = ResponseHead(status: 429, headers: HTTPFields([("Content-Type", "application/json")]))
        let out = ForwardRewrite.downstreamHead(upstream, adding: Self.gatewayFields)
        #expect(!out.headers.contains("X-RateLimit-Remaining"))
        #expect(!out.headers.contains("X-RateLimit-Limit"))
        #expect(out.headers.values("Access-Control-Allow-Origin") == ["https://app.example"])
    }
}
