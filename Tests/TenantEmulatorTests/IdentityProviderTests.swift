import GatewayCore
import Testing

@testable import TenantEmulator

@Suite("Emulated identity providers")
struct IdentityProviderTests {
    static let oktaBody = #"""
        {"name":"new-okta","strategy":"okta","display_name":"New Okta","domains":["acme.com"],
         "options":{"domain":"new.okta.com","client_id":"cid","client_secret":"s3cr3t-value"}}
        """#

    /// A valid create body per strategy.
    static let createBodies: [(String, String)] = [
        ("okta", #"{"domain":"x.okta.com","client_id":"c","client_secret":"s"}"#),
        ("google-apps", #"{"domain":"x.com","client_id":"c","client_secret":"s"}"#),
        ("waad", #"{"tenant_domain":"x.onmicrosoft.com","client_id":"c","client_secret":"s"}"#),
        (
            "oidc",
            #"{"type":"front_channel","client_id":"c","discovery_url":"https://x.com/.well-known/openid-configuration"}"#
        ),
        ("adfs", #"{"adfs_server":"https://adfs.x.com"}"#),
        ("samlp", #"{"metadataUrl":"https://x.com/metadata","signatureAlgorithm":"rsa-sha256"}"#),
        (
            "pingfederate",
            #"{"signatureAlgorithm":"rsa-sha256","digestAlgorithm":"sha256","signSAMLRequest":true,"pingFederateBaseUrl":"https://pf.x.com","signingCert":"MIIC"}"#
        ),
        ("ad", "{}"),
    ]

    @Test("the list shows every provider but the ones with access level none")
    func list() {
        let answer = Harness().call("GET", "/my-org/identity-providers")
        #expect(answer.status == 200)
        let items = answer.json["identity_providers"]?.arrayValue ?? []
        #expect(items.compactMap { $0["name"]?.stringValue } == ["acme-okta", "acme-saml", "acme-oidc", "acme-google"])
        #expect(items.compactMap { $0["access_level"]?.stringValue } == ["full", "limited", "readonly", "full"])
        #expect(answer.json["next"] == nil)
        let h = Harness()
        h.call("PATCH", "/my-org/identity-providers/\(h.idp("acme-saml"))", #"{"is_enabled":false}"#)
        let enabled = h.call("GET", "/my-org/identity-providers?is_enabled=false").json["identity_providers"]
        #expect(enabled?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["acme-saml"])
    }

    @Test("create answers 201 for every strategy, echoing no secret", arguments: createBodies)
    func createEachStrategy(strategy: String, options: String) {
        let h = Harness(defaultClient: EmulatorClientConfiguration(allowedStrategies: IdentityProviderStrategies.all))
        let answer = h.call(
            "POST", "/my-org/identity-providers",
            #"{"name":"idp-\#(strategy)","strategy":"\#(strategy)","options":\#(options)}"#)
        #expect(answer.status == 201, "\(answer.text)")
        #expect(StringFormat.idpID.matches(answer.json["id"]?.stringValue ?? ""))
        #expect(answer.json["strategy"]?.stringValue == strategy)
        #expect(answer.json["access_level"]?.stringValue == "full")
        #expect(!answer.text.contains("client_secret") && !answer.text.contains("signingCert"))
        #expect(h.call("GET", "/my-org/identity-providers/\(answer.json["id"]?.stringValue ?? "")").status == 200)
    }

    @Test("create keeps the fields it was given; a second provider of that name is 409")
    func createAndDuplicate() {
        let h = Harness()
        let answer = h.call("POST", "/my-org/v1/identity-providers", Self.oktaBody)
        #expect(answer.status == 201)
        #expect(answer.json["display_name"]?.stringValue == "New Okta")
        #expect(answer.json["domains"] == ["acme.com"])
        #expect(answer.json["options"] == ["domain": "new.okta.com", "client_id": "cid"])
        #expect(answer.json["attributes"]?.arrayValue?.isEmpty == false)
        #expect(!answer.text.contains("s3cr3t"))
        h.call("POST", "/my-org/identity-providers", Self.oktaBody).expectError(409, "A0E-409-0003")
    }

    @Test(
        "create validates names, strategies, options and unknown fields",
        arguments: [
            (#"{"strategy":"okta","options":{}}"#, "/name"),
            (#"{"name":"x","options":{}}"#, "/strategy"),
            (#"{"name":"x","strategy":"facebook","options":{}}"#, "/strategy"),
            (#"{"name":"x","strategy":"okta"}"#, "/options"),
            (#"{"name":"bad name","strategy":"ad","options":{}}"#, "/name"),
            (
                #"{"name":"x","strategy":"okta","options":{"domain":"x.okta.com","client_id":"c"}}"#,
                "/options/client_secret"
            ),
            (
                #"{"name":"x","strategy":"oidc","options":{"type":"sideways","client_id":"c","discovery_url":"https://x.com"}}"#,
                "/options/type"
            ),
            (
                #"{"name":"x","strategy":"oidc","options":{"type":"back_channel","client_id":"c","discovery_url":"nope"}}"#,
                "/options/discovery_url"
            ),
            (#"{"name":"x","strategy":"adfs","options":{}}"#, "/options"),
            (
                #"{"name":"x","strategy":"samlp","options":{"signInEndpoint":"https://x.com","digestAlgorithm":"md5"}}"#,
                "/options/digestAlgorithm"
            ),
            (#"{"name":"x","strategy":"ad","options":{},"domains":["not a domain"]}"#, "/domains/0"),
            (#"{"name":"x","strategy":"ad","options":{},"show_as_button":"yes"}"#, "/show_as_button"),
            (#"{"name":"x","strategy":"ad","options":{},"color":"red"}"#, "/color"),
            (
                #"{"name":"x","strategy":"waad","options":{"tenant_domain":"x.com","client_id":"c","client_secret":"s","extra":1}}"#,
                "/options/extra"
            ),
        ])
    func createValidation(body: String, pointer: String) {
        Harness().call("POST", "/my-org/identity-providers", body).expectValidation(pointer: pointer)
    }

    @Test("a strategy outside the client's allowed_strategies is a 409 configuration issue")
    func strategyNotAllowed() {
        let h = Harness(clients: ["spa": EmulatorClientConfiguration(allowedStrategies: ["samlp"])])
        h.call("POST", "/my-org/identity-providers", Self.oktaBody, client: "spa").expectError(409, "A0E-409-0001")
        // `ad` is in the request enum, so it passes validation, but no client allows it by default.
        h.call("POST", "/my-org/identity-providers", #"{"name":"ad1","strategy":"ad","options":{}}"#)
            .expectError(409, "A0E-409-0001")
        #expect(h.call("GET", "/my-org/config").json["allowed_strategies"]?.arrayValue?.count == 7)
        #expect(h.call("POST", "/my-org/identity-providers", Self.oktaBody).status == 201)
    }

    @Test("every per-provider operation is 404 for an unknown id and for a provider with access level none")
    func notFound() {
        let h = Harness()
        let hidden = h.call("GET", "/my-org/identity-providers/con_ZZZZZZZZZZZZZZZZ")
        hidden.expectError(404, "A0E-404-0002")
        let ops: [(String, String, String?)] = [
            ("GET", "", nil), ("PATCH", "", "{}"), ("DELETE", "", nil), ("PUT", "/update-attributes", "{}"),
            ("POST", "/detach", nil), ("POST", "/domains", #"{"domain":"acme.com"}"#),
            ("DELETE", "/domains/acme.com", nil), ("GET", "/provisioning", nil), ("POST", "/provisioning", nil),
            ("DELETE", "/provisioning", nil), ("PUT", "/provisioning/update-attributes", "{}"),
            ("GET", "/provisioning/scim-tokens", nil), ("POST", "/provisioning/scim-tokens", "{}"),
            ("DELETE", "/provisioning/scim-tokens/tok_ZZZZZZZZZZZZZZZZ", nil),
        ]
        // The seeded waad provider exists with access level none: it must look exactly like a missing one.
        let seededHidden = h.tenant.handle(
            EmulatorRequest(
                head: RequestHead(method: "GET", target: "/my-org/identity-providers"),
                token: TokenInfo(orgID: Harness.seed, scopes: Harness.allScopes)))
        #expect(!String(decoding: seededHidden.body, as: UTF8.self).contains("acme-azure"))
        for (method, suffix, body) in ops {
            h.call(method, "/my-org/identity-providers/con_ZZZZZZZZZZZZZZZZ\(suffix)", body)
                .expectError(404, "A0E-404-0002")
        }
        h.call("GET", "/my-org/identity-providers/okta").expectError(400, "A0E-400-0003")
    }

    @Test("readonly providers refuse every edit with 403")
    func readonly() {
        let h = Harness()
        let id = h.idp("acme-oidc")
        #expect(h.call("GET", "/my-org/identity-providers/\(id)").json["access_level"] == "readonly")
        let edits: [(String, String, String?)] = [
            ("PATCH", "", #"{"is_enabled":false}"#), ("DELETE", "", nil), ("POST", "/detach", nil),
            ("PUT", "/update-attributes", "{}"), ("POST", "/domains", #"{"domain":"acme.com"}"#),
            ("POST", "/provisioning", nil),
        ]
        for (method, suffix, body) in edits {
            h.call(method, "/my-org/identity-providers/\(id)\(suffix)", body).expectError(403, "A0E-403-0001")
        }
        #expect(h.call("GET", "/my-org/identity-providers/\(id)").json["is_enabled"] == true)
    }

    @Test("limited providers change show_as_button and is_enabled only")
    func limited() {
        let h = Harness()
        let path = "/my-org/identity-providers/\(h.idp("acme-saml"))"
        let ok = h.call("PATCH", path, #"{"show_as_button":false,"is_enabled":false}"#)
        #expect(ok.status == 200)
        #expect(ok.json["show_as_button"] == false)
        #expect(ok.json["is_enabled"] == false)
        for body in [
            #"{"display_name":"New"}"#, #"{"domains":["acme.com"]}"#, #"{"assign_membership_on_login":true}"#,
            #"{"options":{"signInEndpoint":"https://x.com"},"is_enabled":true}"#,
        ] {
            let refused = h.call("PATCH", path, body)
            refused.expectError(403, "A0E-403-0001")
        }
        #expect(h.call("GET", path).json["display_name"] == "Acme SAML")
        h.call("DELETE", path).expectError(403, "A0E-403-0001")
    }

    @Test("full providers change options, display name and domains too; secrets are never echoed")
    func full() {
        let h = Harness()
        let path = "/my-org/identity-providers/\(h.idp("acme-okta"))"
        let answer = h.call(
            "PATCH", path,
            #"{"display_name":"Okta","domains":["acme.com","acme-labs.io"],"options":{"domain":"b.okta.com","client_id":"c2","client_secret":"new-secret"}}"#
        )
        #expect(answer.status == 200)
        #expect(answer.json["display_name"] == "Okta")
        #expect(answer.json["domains"] == ["acme.com", "acme-labs.io"])
        #expect(answer.json["options"] == ["domain": "b.okta.com", "client_id": "c2"])
        #expect(!h.call("GET", path).text.contains("new-secret"))
        h.call("PATCH", path, #"{"strategy":"samlp"}"#).expectValidation(pointer: "/strategy")
        h.call("PATCH", path, #"{"options":{"domain":"b.okta.com"}}"#).expectValidation(pointer: "/options/client_id")
    }

    @Test("delete is 204 under allow; under allow_if_empty a provider with users is 409")
    func deleteBehaviour() {
        let h = Harness(clients: ["admin": EmulatorClientConfiguration(connectionDeletionBehavior: .allow)])
        let withUsers = "/my-org/identity-providers/\(h.idp("acme-okta"))"
        h.call("DELETE", withUsers).expectError(409, "A0E-409-0001")
        let empty = "/my-org/identity-providers/\(h.idp("acme-google"))"
        #expect(h.call("DELETE", empty).status == 204)
        h.call("GET", empty).expectError(404, "A0E-404-0002")
        #expect(h.call("DELETE", withUsers, client: "admin").status == 204)
        h.call("GET", withUsers).expectError(404, "A0E-404-0002")
    }

    @Test("update-attributes takes {} and answers the provider; detach removes it")
    func attributesAndDetach() {
        let h = Harness()
        let path = "/my-org/identity-providers/\(h.idp("acme-okta"))"
        let refreshed = h.call("PUT", "\(path)/update-attributes", "{}")
        #expect(refreshed.status == 200)
        #expect(refreshed.json["name"] == "acme-okta")
        h.call("PUT", "\(path)/update-attributes", "[]").expectValidation(pointer: "")
        h.call("POST", "\(path)/detach", #"{"delete":true}"#).expectValidation(pointer: "/delete")
        let detached = h.call("POST", "\(path)/detach")
        #expect(detached.status == 204)
        #expect(detached.body.isEmpty)
        h.call("GET", path).expectError(404, "A0E-404-0002")
    }

    @Test("provider domains: linking needs a verified domain, twice is 409, unlinking is by name")
    func providerDomains() {
        let h = Harness()
        let path = "/my-org/identity-providers/\(h.idp("acme-google"))/domains"
        let linked = h.call("POST", path, #"{"domain":"acme.com"}"#)
        #expect(linked.status == 201)
        #expect(linked.json == ["domain": "acme.com"])
        h.call("POST", path, #"{"domain":"acme.com"}"#).expectError(409, "A0E-409-0003")
        h.call("POST", path, #"{"domain":"acme-labs.io"}"#).expectError(409, "A0E-409-0001")
        h.call("POST", path, #"{"domain":"unknown.com"}"#).expectError(404, "A0E-404-0002")
        h.call("POST", path, "{}").expectValidation(pointer: "/domain")
        h.call("POST", path, #"{"domain":"acme.com","primary":true}"#).expectValidation(pointer: "/primary")
        #expect(h.call("DELETE", "\(path)/acme.com").status == 204)
        h.call("DELETE", "\(path)/acme.com").expectError(404, "A0E-404-0002")
        h.call("DELETE", "\(path)/not_a_domain").expectError(400, "A0E-400-0003")
    }
}
