import GatewayCore
import Testing

@testable import Policy

/// The log texts `authorize` derives from a token's claims: the single-value shortcuts must give exactly what
/// the general form (compact-map and join) gives.
@Suite("Pipeline log texts")
struct PipelineLogTextTests {
    static let audienceCases: [(JSONValue, String?)] = [
        (.object([("aud", .string("https://a.test/my-org/"))]), "https://a.test/my-org/"),
        (.object([("aud", .array([.string("https://a.test/my-org/")]))]), "https://a.test/my-org/"),
        (.object([("aud", .array([.string("x"), .string("y")]))]), "x y"),
        (.object([("aud", .array([.number(1)]))]), ""),
        (.object([("aud", .array([.number(1), .string("y")]))]), "y"),
        (.object([("aud", .array([]))]), ""),
        (.object([("aud", .number(3))]), nil),
        (.object([("iss", .string("x"))]), nil),
    ]

    @Test("audienceText", arguments: audienceCases)
    func audience(claims: JSONValue, expected: String?) {
        #expect(RequestPolicy.audienceText(claims) == expected)
    }
}
