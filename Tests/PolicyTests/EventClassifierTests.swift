import Testing

@testable import Policy

@Suite struct EventClassifierTests {
    static let successes: [EventOutcome] = [200, 201, 202, 204].map { EventOutcome(status: $0, decidedBy: .tenant) }
    static let failures: [EventOutcome] =
        [400, 401, 403, 404, 409, 429].map { EventOutcome(status: $0, decidedBy: .tenant) }
        + [500, 502, 503].map { EventOutcome(status: $0, decidedBy: .tenant) }
        + [401, 403, 429, 404].map { EventOutcome(status: $0, decidedBy: .gateway) }
        + [502, 504, 503].map { EventOutcome(status: $0, decidedBy: .gateway) }
        // A 2xx the gateway wrote itself (a preflight) is not a successful API call.
        + [EventOutcome(status: 204, decidedBy: .gateway), EventOutcome(status: 302, decidedBy: .tenant)]

    static let table: [(String?, EventType?, EventType?)] = [
        ("org_details", .orgDetailsSucceeded, .orgDetailsFailed),
        ("config", nil, .configFailed),
        ("idp", .idpSucceeded, .idpFailed),
        ("domain", .domainSucceeded, .domainFailed),
        (nil, nil, nil),
        ("members", nil, nil),
        ("", nil, nil),
    ]

    @Test(arguments: table)
    func everyResourceAndOutcomeMapsToItsCode(resource: String?, success: EventType?, failure: EventType?) {
        for outcome in Self.successes {
            #expect(EventClassifier.classify(resource: resource, outcome: outcome) == success, "\(outcome)")
        }
        for outcome in Self.failures {
            #expect(EventClassifier.classify(resource: resource, outcome: outcome) == failure, "\(outcome)")
        }
        if let resource, let typed = EventLogResource(rawValue: resource) {
            #expect(EventClassifier.classify(resource: typed, outcome: Self.successes[0]) == success)
            #expect(EventClassifier.classify(resource: typed, outcome: Self.failures[0]) == failure)
        }
    }

    @Test func thereAreExactlyTheSevenReferenceCodesAndNoConfigSucceeded() {
        #expect(
            Set(EventType.allCases.map(\.code)) == [
                "my_organization_api_config_failed",
                "my_organization_api_org_details_succeeded", "my_organization_api_org_details_failed",
                "my_organization_api_idp_succeeded", "my_organization_api_idp_failed",
                "my_organization_api_domain_succeeded", "my_organization_api_domain_failed",
            ])
        for type in EventType.allCases {
            #expect(type.code.hasSuffix("_succeeded") == type.succeeded)
            #expect(type.name.hasPrefix("My Organization API "))
            #expect(type.description.hasSuffix("resource of the My Organization API service"))
            #expect(type.description.hasPrefix(type.succeeded ? "Successful API call" : "Failed API call"))
        }
        #expect(EventType.idpFailed.name == "My Organization API Identity Provider Failed")
        #expect(
            EventType.orgDetailsSucceeded.description
                == "Successful API call to the Organization details resource of the My Organization API service")
    }

    @Test func resourceNamesMatchTheEndpointTable() {
        #expect(EventLogResource.allCases.map(\.rawValue) == ["org_details", "config", "idp", "domain"])
    }
}
