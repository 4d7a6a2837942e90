import GatewayCore
import Testing

@testable import Policy

@Suite struct FaultInjectorTests {
    @Test func disabledByDefault() {
        var random = FaultRandom(seed: 1)
        #expect(!FaultInjector.disabled.isEnabled)
        #expect(FaultInjector.disabled.decide(route: "GET details", org: "org_A", random: &random) == nil)
    }

    @Test func aRouteRuleFiresForItsShareAndOnlyOnItsRoute() throws {
        let injector = FaultInjector(rules: [try FaultRule(target: .route("GET details"), share: 0.25, status: 503)])
        var random = FaultRandom(seed: 42)
        var fired = 0
        for _ in 0..<100_000 {
            if let action = injector.decide(route: "GET details", org: "org_A", random: &random) {
                #expect(action == .respond(status: 503, delayMilliseconds: 0))
                fired += 1
            }
            #expect(injector.decide(route: "PATCH details", org: "org_A", random: &random) == nil)
        }
        #expect(abs(fired - 25_000) < 600, "fired \(fired)")
    }

    @Test func theSameSeedGivesTheSameFaults() throws {
        let injector = FaultInjector(rules: [
            try FaultRule(target: .organization("org_A"), share: 0.5, status: 429),
            try FaultRule(target: .route("GET domains"), share: 0.3, delayMilliseconds: 250),
        ])
        func run(seed: UInt64) -> [FaultAction?] {
            var random = FaultRandom(seed: seed)
            return (0..<200).map { i in
                injector.decide(
                    route: i % 2 == 0 ? "GET domains" : "GET details", org: i % 3 == 0 ? "org_A" : "org_B",
                    random: &random)
            }
        }
        #expect(run(seed: 7) == run(seed: 7))
        #expect(run(seed: 7) != run(seed: 8))
        #expect(run(seed: 7).contains(.delay(milliseconds: 250)))
        #expect(run(seed: 7).contains(.respond(status: 429, delayMilliseconds: 0)))
    }

    @Test(arguments: [
        "GET details", "get details", "GET /my-org/details", "GET /my-org/v1/details/", "  GET   details ",
    ])
    func routeSpellingsAreNormalised(route: String) throws {
        let injector = FaultInjector(rules: [try FaultRule(target: .route("GET details"), share: 1, status: 500)])
        var random = FaultRandom(seed: 3)
        #expect(injector.decide(route: route, org: nil, random: &random) == .respond(status: 500, delayMilliseconds: 0))
    }

    @Test func operationNamesMatchToo() throws {
        let injector = FaultInjector(rules: [
            try FaultRule(target: .route("get_organization_details"), share: 1, status: 502)
        ])
        var random = FaultRandom(seed: 3)
        #expect(
            injector.decide(route: "GET details", operation: "get_organization_details", org: nil, random: &random)
                == .respond(status: 502, delayMilliseconds: 0))
        #expect(injector.decide(route: "GET details", org: nil, random: &random) == nil)
    }

    @Test func shareZeroNeverAndShareOneAlways() throws {
        let never = FaultInjector(rules: [try FaultRule(target: .organization("org_A"), share: 0, status: 500)])
        let always = FaultInjector(rules: [try FaultRule(target: .organization("org_A"), share: 1, status: 500)])
        var random = FaultRandom(seed: 9)
        for _ in 0..<10_000 {
            #expect(never.decide(route: "GET details", org: "org_A", random: &random) == nil)
            #expect(always.decide(route: "GET details", org: "org_A", random: &random) != nil)
        }
    }

    @Test func injectedResponsesHaveTheTenantsShape() throws {
        let tooMany = try #require(FaultAction.respond(status: 429, delayMilliseconds: 0).response)
        #expect(tooMany.head.status == 429)
        #expect(tooMany.head.headers["Retry-After"] == "1")
        let body = try JSONValue.parse(tooMany.body)
        #expect(body["type"] == "https://auth0.com/api-errors#A0E-429-0003")
        let unavailable = try #require(FaultAction.respond(status: 503, delayMilliseconds: 10).response)
        #expect(unavailable.head.status == 503)
        #expect(try JSONValue.parse(unavailable.body)["detail"]?.stringValue?.contains("Injected") == true)
        #expect(FaultAction.delay(milliseconds: 5).response == nil)
        #expect(FaultAction.delay(milliseconds: 5).delayMilliseconds == 5)
    }

    @Test(arguments: [
        (FaultRule.Target.route(""), 0.5, 500 as Int?, 0, FaultRuleError.emptyTarget),
        (.organization(""), 0.5, 500, 0, .emptyTarget),
        (.route("GET details"), 1.5, 500, 0, .share(1.5)),
        (.route("GET details"), -0.1, 500, 0, .share(-0.1)),
        (.route("GET details"), 0.5, 404, 0, .status(404)),
        (.route("GET details"), 0.5, nil, 0, .noEffect),
        (.route("GET details"), 0.5, nil, 60_001, .delay(60_001)),
        (.route("GET details"), 0.5, 500, -1, .delay(-1)),
    ])
    func invalidRulesAreRefused(
        target: FaultRule.Target, share: Double, status: Int?, delay: Int, expected: FaultRuleError
    ) {
        #expect(throws: expected) {
            try FaultRule(target: target, share: share, status: status, delayMilliseconds: delay)
        }
    }
}
