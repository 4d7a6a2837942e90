import GatewayCore
import Testing

@testable import TenantEmulator

@Suite("Emulated Organization domains")
struct DomainTests {
    static let domainFields = ["id", "org_id", "domain", "status", "verification_txt", "verification_host"]

    func expectDomainShape(_ value: JSONValue?, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(value?.objectValue?.map(\.0) == Self.domainFields, sourceLocation: sourceLocation)
        #expect(
            StringFormat.domainID.matches(value?["id"]?.stringValue ?? ""), sourceLocation: sourceLocation)
    }

    @Test("the seed has one verified and one pending domain, each with all six fields")
    func seededDomains() {
        let answer = Harness().call(
            "GET", "/my-org/domains?include_fields=true&take=50&include_totals=false&sort=created_at%3A-1")
        #expect(answer.status == 200)
        let domains = answer.json["organization_domains"]?.arrayValue ?? []
        // The SDK's sort=created_at:-1 lists the newest first; without it the list is oldest first.
        #expect(domains.map { $0["status"]?.stringValue } == ["pending", "verified"])
        let unsorted = Harness().call("GET", "/my-org/domains").json["organization_domains"]?.arrayValue ?? []
        #expect(unsorted.map { $0["status"]?.stringValue } == ["verified", "pending"])
        for d in domains { expectDomainShape(d) }
        #expect(answer.json["next"] == nil)
    }

    @Test("create answers 201 with a pending domain; a second create is 409")
    func create() {
        let h = Harness()
        let answer = h.call("POST", "/my-org/domains", #"{"domain":"Example.COM"}"#)
        #expect(answer.status == 201)
        expectDomainShape(answer.json)
        #expect(answer.json["domain"]?.stringValue == "example.com")
        #expect(answer.json["status"]?.stringValue == "pending")
        #expect(answer.json["org_id"]?.stringValue == Harness.seed)
        #expect(answer.json["verification_host"]?.stringValue?.hasSuffix("example.com") == true)
        h.call("POST", "/my-org/domains", #"{"domain":"example.com"}"#).expectError(409, "A0E-409-0003")
    }

    @Test(
        "create validates the body",
        arguments: [
            ("{}", "/domain"), (#"{"domain":"no_underscores.com"}"#, "/domain"),
            (#"{"domain":"localhost"}"#, "/domain"),
            (#"{"domain":"-a.com"}"#, "/domain"), (#"{"domain":"a.c0m"}"#, "/domain"), (#"{"domain":7}"#, "/domain"),
            (#"{"domain":"a.com","status":"verified"}"#, "/status"),
        ])
    func createValidation(body: String, pointer: String) {
        Harness().call("POST", "/my-org/domains", body).expectValidation(pointer: pointer)
    }

    @Test("get, delete and their 404s; malformed ids are 400")
    func getAndDelete() {
        let h = Harness()
        let id = h.domain("acme-labs.io")
        let got = h.call("GET", "/my-org/domains/\(id)")
        #expect(got.status == 200)
        expectDomainShape(got.json)
        #expect(h.call("DELETE", "/my-org/domains/\(id)").status == 204)
        for method in ["GET", "DELETE"] {
            h.call(method, "/my-org/domains/\(id)").expectError(404, "A0E-404-0002")
        }
        h.call("GET", "/my-org/domains/not-an-id").expectError(400, "A0E-400-0003")
        let source = h.call("GET", "/my-org/domains/not-an-id").json["validation_errors"]?.arrayValue?.first?["source"]
        #expect(source == "path")
    }

    @Test("verify answers 202 with the domain; the status is verified on the next read")
    func verifyFlow() {
        let h = Harness()
        let id = h.domain("acme-labs.io")
        let accepted = h.call("POST", "/my-org/domains/\(id)/verify")
        #expect(accepted.status == 202)
        expectDomainShape(accepted.json)
        #expect(accepted.json["status"]?.stringValue == "pending")
        #expect(h.call("GET", "/my-org/domains/\(id)").json["status"]?.stringValue == "verified")
        #expect(h.call("POST", "/my-org/v1/domains/\(id)/verify", "{}").json["status"]?.stringValue == "verified")
        h.call("POST", "/my-org/domains/ord_ZZZZZZZZZZZZZZZZZZZZZZ/verify").expectError(404, "A0E-404-0002")
        h.call("POST", "/my-org/domains/\(id)/verify", #"{"force":true}"#).expectValidation(pointer: "/force")
    }

    @Test("with a delay the status settles only once the clock has moved that far; .invalid domains fail")
    func verifyDelay() {
        let h = Harness(verificationDelay: 30)
        let id = h.call("POST", "/my-org/domains", #"{"domain":"broken.invalid"}"#).json["id"]?.stringValue ?? ""
        #expect(h.call("POST", "/my-org/domains/\(id)/verify").status == 202)
        h.clock.advance(seconds: 29)
        #expect(h.call("GET", "/my-org/domains/\(id)").json["status"]?.stringValue == "pending")
        h.clock.advance(seconds: 1)
        #expect(h.call("GET", "/my-org/domains/\(id)").json["status"]?.stringValue == "failed")
    }

    @Test("a domain's identity providers are the visible ones that list it")
    func domainIdentityProviders() {
        let h = Harness()
        let answer = h.call("GET", "/my-org/domains/\(h.domain("acme.com"))/identity-providers")
        #expect(answer.status == 200)
        #expect(
            answer.json == [
                "identity_providers": [
                    ["id": .string(h.idp("acme-okta")), "name": "acme-okta", "display_name": "Acme Okta"]
                ]
            ])
        #expect(
            h.call("GET", "/my-org/domains/\(h.domain("acme-labs.io"))/identity-providers").json == [
                "identity_providers": []
            ])
        h.call("GET", "/my-org/domains/ord_ZZZZZZZZZZZZZZZZZZZZZZ/identity-providers")
            .expectError(404, "A0E-404-0002")
    }

    @Test("the domain list pages with take and from; next is absent on the last page")
    func pagination() {
        let h = Harness()
        for i in 0..<5 { h.call("POST", "/my-org/domains", #"{"domain":"d\#(i).example.com"}"#) }
        var seen: [String] = []
        var cursor: String?
        var pages = 0
        repeat {
            let path = "/my-org/domains?take=3" + (cursor.map { "&from=\($0)" } ?? "")
            let answer = h.call("GET", path)
            #expect(answer.status == 200)
            let items = answer.json["organization_domains"]?.arrayValue ?? []
            #expect(items.count <= 3)
            seen += items.compactMap { $0["domain"]?.stringValue }
            cursor = answer.json["next"]?.stringValue
            pages += 1
        } while cursor != nil && pages < 10
        #expect(pages == 3)
        #expect(seen.count == 7)
        #expect(Set(seen).count == 7)
        for query in [
            "take=0", "take=101", "take=x", "from=", "from=garbage", "include_fields=maybe", "sort=created_at",
        ] {
            h.call("GET", "/my-org/domains?\(query)").expectError(400, "A0E-400-0003")
        }
    }
}
