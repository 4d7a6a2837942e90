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
}
