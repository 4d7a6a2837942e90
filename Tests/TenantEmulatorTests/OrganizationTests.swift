import GatewayCore
import Testing

@testable import TenantEmulator

@Suite("Emulated Organization details, configuration and discovery")
struct OrganizationTests {
    @Test("GET details answers the seeded Organization as JSON")
    func getDetails() {
        let answer = Harness().call("GET", "/my-org/details")
        #expect(answer.status == 200)
        #expect(answer.headers["Content-Type"] == "application/json")
        #expect(answer.json["id"]?.stringValue == Harness.seed)
        #expect(answer.json["name"]?.stringValue == "acme")
        #expect(answer.json["display_name"]?.stringValue == "Acme Corporation")
        #expect(answer.json["branding"]?["colors"]?["primary"]?.stringValue == "#0059d6")
    }

    @Test("the seed org id has the documented shape and the seed repeats exactly")
    func seedIsDeterministic() {
        #expect(StringFormat.identifier(prefix: "org_", length: 16).matches(Harness.seed))
        let a = Harness()
        let b = Harness()
        for path in ["/my-org/identity-providers", "/my-org/domains", "/my-org/members", "/my-org/member-invitations"] {
            #expect(a.call("GET", path).body == b.call("GET", path).body)
        }
    }

    @Test("PATCH details changes what it names and keeps the rest")
    func patchDetails() {
        let h = Harness()
        let answer = h.call(
            "PATCH", "/my-org/v1/details",
            ##"{"display_name":"Acme Inc.","branding":{"logo_url":null,"colors":{"primary":"#112233","page_background":"#fff"}}}"##
        )
        #expect(answer.status == 200)
        #expect(answer.json["display_name"]?.stringValue == "Acme Inc.")
        #expect(answer.json["name"]?.stringValue == "acme")
        #expect(answer.json["branding"]?["logo_url"] == .null)
        #expect(h.call("GET", "/my-org/details").json["branding"]?["colors"]?["page_background"]?.stringValue == "#fff")
        #expect(h.call("PATCH", "/my-org/details", "").status == 200)
    }

    @Test(
        "PATCH details refuses invalid bodies with validation_errors",
        arguments: [
            (#"{"name":"Not Valid"}"#, "/name"),
            (#"{"display_name":""}"#, "/display_name"),
            (#"{"display_name":42}"#, "/display_name"),
            (##"{"branding":{"colors":{"primary":"blue","page_background":"#ffffff"}}}"##, "/branding/colors/primary"),
            (##"{"branding":{"colors":{"primary":"#000000"}}}"##, "/branding/colors/page_background"),
            (#"{"branding":{"logo_url":"ftp://x"}}"#, "/branding/logo_url"),
            (#"{"metadata":{}}"#, "/metadata"),
            (#"{"id":"org_0000000000000000"}"#, "/id"),
            ("[]", ""),
        ])
    func patchDetailsValidation(body: String, pointer: String) {
        Harness().call("PATCH", "/my-org/details", body).expectValidation(pointer: pointer)
    }

    @Test("a body that is not JSON is 400 Bad Request, duplicate members included")
    func badJSON() {
        let h = Harness()
        for body in ["{", "{\"name\":\"a\",\"name\":\"b\"}", "nul"] {
            h.call("PATCH", "/my-org/details", body).expectError(400, "A0E-400-0001")
        }
    }

    @Test("DELETE /my-org removes the Organization; it answers 404 from then on")
    func deleteOrganization() {
        let h = Harness()
        let answer = h.call("DELETE", "/my-org")
        #expect(answer.status == 204)
        #expect(answer.body.isEmpty)
        h.call("GET", "/my-org/details").expectError(404, "A0E-404-0002")
        h.call("DELETE", "/my-org").expectError(404, "A0E-404-0002")
    }

    @Test("an unknown org_id gets an empty Organization on demand, or 404 when that is off")
    func onDemand() {
        let h = Harness(seed: false)
        let answer = h.call("GET", "/my-org/details", org: "org_AAAAAAAAAAAAAAAA")
        #expect(answer.json["id"]?.stringValue == "org_AAAAAAAAAAAAAAAA")
        #expect(h.call("GET", "/my-org/roles", org: "org_AAAAAAAAAAAAAAAA").json["roles"]?.arrayValue?.count == 3)
        #expect(
            h.call("GET", "/my-org/identity-providers", org: "org_AAAAAAAAAAAAAAAA").json == [
                "identity_providers": []
            ])
        let strict = Harness(onDemand: false)
        strict.call("GET", "/my-org/details", org: "org_AAAAAAAAAAAAAAAA").expectError(404, "A0E-404-0002")
        #expect(strict.call("GET", "/my-org/details").status == 200)
    }

    @Test("Organizations are isolated from each other")
    func isolation() {
        let h = Harness()
        #expect(
            h.call("POST", "/my-org/domains", #"{"domain":"other.com"}"#, org: "org_BBBBBBBBBBBBBBBB").status == 201)
        let seeded = h.call("GET", "/my-org/domains").json["organization_domains"]?.arrayValue ?? []
        #expect(!seeded.contains { $0["domain"]?.stringValue == "other.com" })
    }

    @Test("config reports the client's allowed strategies and deletion behaviour")
    func configuration() {
        let h = Harness(clients: [
            "spa": EmulatorClientConfiguration(
                allowedStrategies: ["okta", "google-apps"], connectionDeletionBehavior: .allow)
        ])
        #expect(
            h.call("GET", "/my-org/config", client: "spa").json == [
                "allowed_strategies": ["okta", "google-apps"], "connection_deletion_behavior": "allow",
            ])
        #expect(h.call("GET", "/my-org/config").json["connection_deletion_behavior"]?.stringValue == "allow_if_empty")
        let idps = h.call("GET", "/my-org/config/identity-providers", client: "spa")
        #expect(idps.status == 200)
        #expect(idps.json["organization"]?["can_set_show_as_button"] == true)
        #expect(idps.json["strategies"]?.objectValue?.map(\.0) == ["okta", "googleapps"])
        #expect(idps.json["strategies"]?["okta"]?["provisioning_methods"] == ["scim"])
    }

    @Test("discovery names the domain the request arrived on; JWKS is served verbatim")
    func wellKnown() {
        let h = Harness()
        let custom = h.call("GET", "/.well-known/openid-configuration", authorization: .some(nil))
        #expect(custom.status == 200)
        #expect(custom.json["issuer"]?.stringValue == "https://login.acme.test/")
        #expect(custom.json["jwks_uri"]?.stringValue == "https://login.acme.test/.well-known/jwks.json")
        let canonical = h.call(
            "GET", "/.well-known/openid-configuration", authorization: .some(nil), host: "acme.eu.auth0.com:443")
        #expect(canonical.json["issuer"]?.stringValue == "https://acme.eu.auth0.com/")
        let jwks = h.call("GET", "/.well-known/jwks.json", authorization: .some(nil))
        #expect(jwks.status == 200)
        #expect(jwks.text == Harness.jwks)
        #expect(jwks.headers["Content-Type"] == "application/json")
        h.call("POST", "/.well-known/jwks.json", authorization: .some(nil)).expectError(405, "A0E-405-0001")
    }

    @Test(
        "served for its canonical domain with custom domains (as emulate and demo serve it), discovery and invitation URLs name the custom domain the request arrived on, by Host or X-Forwarded-Host"
    )
    func customDomainIssuer() {
        let canonical = "acme.emulated.local"
        let tenant = EmulatedTenant(
            domain: canonical, canonicalDomain: canonical, customDomains: ["login.acme.test", "id.acme.test"],
            clock: ManualClock(seconds: 1_800_000_000), jwksJSON: Harness.jwks, verifyToken: Harness.verify)
        func issuer(host: String?, forwardedHost: String? = nil) -> String? {
            var headers = HTTPFields()
            if let forwardedHost { headers.add("X-Forwarded-Host", forwardedHost) }
            let response = tenant.handle(
                EmulatorRequest(
                    head: RequestHead(
                        method: "GET", target: "/.well-known/openid-configuration", headers: headers,
                        authority: host)))
            let json = (try? JSONValue.parse(response.body)) ?? .null
            let issuer = json["issuer"]?.stringValue
            #expect(json["jwks_uri"]?.stringValue == issuer.map { $0 + ".well-known/jwks.json" })
            return issuer
        }
        #expect(issuer(host: "login.acme.test:8444") == "https://login.acme.test/")
        #expect(issuer(host: "ID.Acme.Test") == "https://id.acme.test/", "the tenant's own spelling")
        #expect(issuer(host: "acme.emulated.local") == "https://acme.emulated.local/")
        #expect(issuer(host: "127.0.0.1:5000") == "https://acme.emulated.local/")
        #expect(issuer(host: nil) == "https://acme.emulated.local/")
        // Behind the gateway the Host is the emulator's address; the gateway names the client's in X-Forwarded-Host.
        #expect(issuer(host: "127.0.0.1:5000", forwardedHost: "login.acme.test:8444") == "https://login.acme.test/")
        #expect(issuer(host: "127.0.0.1:5000", forwardedHost: "evil.example") == "https://acme.emulated.local/")
        #expect(issuer(host: "evil.example", forwardedHost: "evil.example") == "https://acme.emulated.local/")
        // An invitation made through the custom domain links there.
        var headers = HTTPFields()
        headers.add("Authorization", "Bearer " + Harness.token())
        headers.add("Content-Type", "application/json")
        let created = tenant.handle(
            EmulatorRequest(
                head: RequestHead(
                    method: "POST", target: "/my-org/member-invitations", headers: headers,
                    authority: "login.acme.test"),
                body: Array(#"{"invitees":[{"email":"new@example.com"}]}"#.utf8)))
        #expect(created.head.status == 201)
        let url = ((try? JSONValue.parse(created.body)) ?? .null).arrayValue?.first?["invitation_url"]?.stringValue
        #expect(url?.hasPrefix("https://login.acme.test/login?") == true, "\(url ?? "none")")
    }

    @Test("concurrent requests are serialized: every create lands exactly once")
    func concurrentCreates() async {
        let h = Harness()
        let tenant = h.tenant
        let statuses = await withTaskGroup(of: Int.self) { group in
            for i in 0..<40 {
                group.addTask {
                    var headers = HTTPFields()
                    headers.add("Authorization", "Bearer " + Harness.token())
                    let head = RequestHead(method: "POST", target: "/my-org/domains", headers: headers)
                    let body = Array(#"{"domain":"c\#(i % 20).example.com"}"#.utf8)
                    return tenant.handle(EmulatorRequest(head: head, body: body)).head.status
                }
            }
            var all: [Int] = []
            for await status in group { all.append(status) }
            return all
        }
        #expect(statuses.filter { $0 == 201 }.count == 20)
        #expect(statuses.filter { $0 == 409 }.count == 20)
        #expect(h.call("GET", "/my-org/domains?take=100").json["organization_domains"]?.arrayValue?.count == 22)
    }
}
