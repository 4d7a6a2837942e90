import GatewayCore
import Testing

@Suite("TenantError")
struct TenantErrorTests {
    @Test("a detail quoting a huge client value is cut to a bound, and a normal one is kept whole")
    func detailIsBounded() {
        let origin = "https://" + String(repeating: "a", count: 6000) + ".example"
        let error = TenantError.forbidden("The origin \(origin) is not an allowed origin of client web.")
        #expect(error.detail.count == TenantError.maxDetailCharacters)
        #expect(error.detail.hasSuffix("…"))
        let short = TenantError.forbidden("The client has no grant for the My Organization API.")
        #expect(short.detail == "The client has no grant for the My Organization API.")
    }

    @Test(
        "the body written from the fields is the serialized JSON value, byte for byte",
        arguments: [
            TenantError.badRequest("plain"),
            TenantError.unauthorized(
                "quote \" backslash \\ <tag> \u{2028} tab\t é", wwwAuthenticate: "Bearer error=\"invalid_token\""),
            TenantError.validation(
                "Invalid body",
                errors: [
                    .init(detail: "first", field: "strategy", pointer: "/strategy"),
                    .init(detail: "second <b>", field: nil, pointer: nil, source: nil),
                    .init(detail: "third", field: "name", pointer: nil, source: "query"),
                ]),
            TenantError(status: 429, code: "A0E-429-0003", title: "Too Many Requests", detail: ""),
        ])
    func bodyMatchesJSON(error: TenantError) throws {
        #expect(error.body == error.json.serializedBytes())
        #expect(error.response.body == error.body)
        #expect(try JSONValue.parse(error.body)["status"] == .number(Double(error.status)))
    }
}
