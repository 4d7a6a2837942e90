import GatewayCore
import Testing

@testable import TenantEmulator

@Suite("Emulated provisioning and SCIM tokens")
struct ProvisioningTests {
    @Test("provisioning must be created first: reads, refreshes, deletes and SCIM tokens are 404 before")
    func mustExistFirst() {
        let h = Harness()
        let base = "/my-org/identity-providers/\(h.idp("acme-okta"))/provisioning"
        for (method, path, body) in [
            ("GET", base, nil), ("DELETE", base, nil), ("PUT", "\(base)/update-attributes", "{}"),
            ("GET", "\(base)/scim-tokens", nil), ("POST", "\(base)/scim-tokens", "{}"),
            ("DELETE", "\(base)/scim-tokens/tok_ZZZZZZZZZZZZZZZZ", nil),
        ] as [(String, String, String?)] {
            h.call(method, path, body).expectError(404, "A0E-404-0002")
        }
    }

    @Test("create answers 201 with the configuration (no body needed); twice is 409; delete is 204")
    func lifecycle() {
        let h = Harness()
        let idp = h.idp("acme-okta")
        let base = "/my-org/identity-providers/\(idp)/provisioning"
        let created = h.call("POST", base)
        #expect(created.status == 201)
        #expect(created.json["identity_provider_id"]?.stringValue == idp)
        #expect(created.json["identity_provider_name"] == "acme-okta")
        #expect(created.json["method"] == "scim")
        #expect(created.json["attributes"]?.arrayValue?.first?["provisioning_field"] != nil)
        for key in ["strategy", "user_id_attribute", "created_at", "updated_on"] { #expect(created.json[key] != nil) }
        h.call("POST", base).expectError(409, "A0E-409-0003")
        h.call("POST", "\(base)/", "{}").expectError(404, "A0E-404-0002")
        #expect(h.call("GET", base).json == created.json)
        h.clock.advance(seconds: 60)
        let refreshed = h.call("PUT", "\(base)/update-attributes", "{}")
        #expect(refreshed.status == 200)
        #expect(refreshed.json["updated_on"] != created.json["updated_on"])
        #expect(refreshed.json["created_at"] == created.json["created_at"])
        h.call("POST", base, #"{"method":"scim"}"#).expectValidation(pointer: "/method")
        h.call("PUT", "\(base)/update-attributes", "[]").expectValidation(pointer: "")
        #expect(h.call("DELETE", base).status == 204)
        h.call("GET", base).expectError(404, "A0E-404-0002")
    }

    @Test("a SCIM token's secret is in the create response once and never in a list")
    func scimSecretOnce() {
        let h = Harness()
        let base = "/my-org/identity-providers/\(h.idp("acme-okta"))/provisioning"
        #expect(h.call("POST", base).status == 201)
        let created = h.call("POST", "\(base)/scim-tokens", #"{"token_lifetime":3600}"#)
        #expect(created.status == 201)
        let secret = created.json["token"]?.stringValue ?? ""
        #expect(secret.count > 20)
        let tokenID = created.json["token_id"]?.stringValue ?? ""
        #expect(StringFormat.scimTokenID.matches(tokenID))
        #expect(created.json["valid_until"] != nil)
        let unlimited = h.call("POST", "\(base)/scim-tokens")
        #expect(unlimited.status == 201)
        #expect(unlimited.json["valid_until"] == nil)
        #expect(unlimited.json["token"]?.stringValue != secret)
        let list = h.call("GET", "\(base)/scim-tokens")
        #expect(list.status == 200)
        #expect(list.json["scim_tokens"]?.arrayValue?.count == 2)
        #expect(!list.text.contains(secret))
        #expect(!list.text.contains("\"token\""))
        #expect(list.json["next"] == nil)
        #expect(h.call("DELETE", "\(base)/scim-tokens/\(tokenID)").status == 204)
        h.call("DELETE", "\(base)/scim-tokens/\(tokenID)").expectError(404, "A0E-404-0002")
        h.call("DELETE", "\(base)/scim-tokens/bad").expectError(400, "A0E-400-0003")
        #expect(h.call("GET", "\(base)/scim-tokens").json["scim_tokens"]?.arrayValue?.count == 1)
    }

    @Test(
        "SCIM token create validates its body",
        arguments: [
            (#"{"token_lifetime":"1h"}"#, "/token_lifetime"), (#"{"token_lifetime":1.5}"#, "/token_lifetime"),
            (#"{"token_lifetime":10}"#, "/token_lifetime"), (#"{"scopes":[]}"#, "/scopes"),
        ])
    func scimValidation(body: String, pointer: String) {
        let h = Harness()
        let base = "/my-org/identity-providers/\(h.idp("acme-okta"))/provisioning"
        h.call("POST", base)
        h.call("POST", "\(base)/scim-tokens", body).expectValidation(pointer: pointer)
    }

    @Test("provisioning on a limited provider is refused with 403; reads work at any visible level")
    func accessLevels() {
        let h = Harness()
        let base = "/my-org/identity-providers/\(h.idp("acme-saml"))/provisioning"
        h.call("POST", base).expectError(403, "A0E-403-0001")
        h.call("GET", base).expectError(404, "A0E-404-0002")
    }
}
