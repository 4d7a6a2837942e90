import GatewayCore
import Testing

@testable import Recording

@Suite struct RedactorTests {
    let redactor = Redactor(extraHeaders: ["X-Internal-Auth"], jsonPointers: ["/options/custom/0", "/meta/*/pin"])

    @Test(arguments: [
        "Authorization", "authorization", "Proxy-Authorization", "DPoP", "Cookie", "Set-Cookie", "cname-api-key",
        "X-Internal-Auth", "X-Api-Key", "X-CSRF-Token",
    ])
    func credentialHeadersAreRedacted(_ name: String) {
        let out = redactor.redact(headers: HTTPFields([(name, "S3CRET-VALUE"), ("Accept", "application/json")]))
        #expect(out[name] == Redactor.marker)
        #expect(out["Accept"] == "application/json")
        #expect(out.fields.map(\.name) == [name, "Accept"])
    }

    @Test func otherHeaderValuesAreScannedForTokens() {
        let out = redactor.redact(
            headers: HTTPFields([
                ("X-Forwarded-Token-Thing", "x"),
                ("Referer", "https://a/cb?id_token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"),
            ]))
        #expect(out["Referer"] == "https://a/cb?id_token=[REDACTED]")
    }

    @Test func scimTokenCreateResponse() throws {
        let body =
            #"{"token_id":"tok_0123456789abcdef","token":"scim-VERY-SECRET-1","scopes":["get:users"],"created_at":"2025-01-01T00:00:00.000Z"}"#
        let out = try #require(redactor.redact(body: Array(body.utf8), contentType: "application/json"))
        let json = try JSONValue.parse(out)
        #expect(json["token"] == "[REDACTED]")
        #expect(json["token_id"] == "tok_0123456789abcdef")
        #expect(json["scopes"] == ["get:users"])
        #expect(!out.contains("scim-VERY-SECRET-1"))
    }

    @Test func identityProviderBodies() throws {
        let body = """
            {"strategy":"samlp","name":"acme-saml","options":{"client_id":"cid","client_secret":"CS-1",\
            "signingCert":"MIIC-CERT-1","signing_cert":"MIIC-CERT-2","cert":"MIIC-CERT-3","key":"KEY-1",\
            "private_key":"PK-1","password":"PW-1","nested":{"clientSecret":"CS-2","apiKey":"AK-1"},\
            "custom":["CUSTOM-1","keep"],"domain_aliases":["acme.com"],"credentials":{"user":"u","pass":"PW-2"}},\
            "meta":[{"pin":"PIN-1","n":1},{"pin":"PIN-2"}],"tokens":[{"token_id":"tok_1","token":"T-1"},"T-2"],\
            "show_as_button":true,"secret_flag":null}
            """
        let out = try #require(redactor.redact(body: Array(body.utf8), contentType: "application/json; charset=utf-8"))
        for secret in [
            "CS-1", "CS-2", "MIIC-CERT-1", "MIIC-CERT-2", "MIIC-CERT-3", "KEY-1", "PK-1", "PW-1", "PW-2",
            "AK-1", "CUSTOM-1", "PIN-1", "PIN-2", "T-1", "T-2",
        ] {
            #expect(!out.contains(secret), "\(secret) leaked")
        }
        let json = try JSONValue.parse(out)
        #expect(json["options"]?["client_id"] == "cid")
        #expect(json["options"]?["custom"] == ["[REDACTED]", "keep"])
        #expect(json["options"]?["domain_aliases"] == ["acme.com"])
        #expect(json["tokens"]?.arrayValue?.first?["token_id"] == "tok_1")
        #expect(json["show_as_button"] == true)
        #expect(json["secret_flag"] == .null)
        #expect(json["meta"]?.arrayValue?.first?["n"] == 1)
    }

    @Test(arguments: [
        (
            "client_id=abc&client_secret=CS-9&grant_type=client_credentials", "CS-9",
            "client_id=abc&client_secret=[REDACTED]&grant_type=client_credentials"
        ),
        ("password=PW-9&username=bob", "PW-9", "password=[REDACTED]&username=bob"),
        ("refresh_token=RT-9", "RT-9", "refresh_token=[REDACTED]"),
        ("here: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl end", "eyJhbGci", "here: [REDACTED] end"),
        ("Authorization: Bearer opaque-TOKEN-123", "opaque-TOKEN-123", "Authorization: [REDACTED]"),
        ("sent Bearer opaque-TOKEN-456 twice", "opaque-TOKEN-456", "sent Bearer [REDACTED] twice"),
        (
            "-----BEGIN PRIVATE KEY-----\nMIIEv-PEM-1\n-----END PRIVATE KEY-----\nrest", "MIIEv-PEM-1",
            "[REDACTED]\nrest"
        ),
        ("-----BEGIN CERTIFICATE-----\nMIIC-PEM-2 truncated", "MIIC-PEM-2", "[REDACTED]"),
        (#"{"client_secret":"CS-TRUNC"#, "CS-TRUNC", #"{"client_secret":"[REDACTED]""#),
        (#"{"a":1,"signingCert" : "SC-7", "b":2}"#, "SC-7", #"{"a":1,"signingCert" : "[REDACTED]", "b":2}"#),
        ("client_secret: 'CS-YAML'", "CS-YAML", "client_secret: [REDACTED]"),
        ("see https://example.com/path?x=1", "", "see https://example.com/path?x=1"),
        ("token_id=tok_1", "", "token_id=tok_1"),
    ])
    func textPatterns(_ input: String, _ secret: String, _ expected: String) {
        let out = redactor.redact(text: input)
        #expect(out == expected)
        if !secret.isEmpty { #expect(!out.contains(secret)) }
    }

    @Test func truncatedJSONFallsBackToTextRules() throws {
        let body = #"{"strategy":"oidc","options":{"client_secret":"CS-CUT-1","client_id":"x"#
        let out = try #require(redactor.redact(body: Array(body.utf8), contentType: "application/json"))
        #expect(!out.contains("CS-CUT-1"))
    }

    @Test func binaryBodiesAreNotWritten() {
        #expect(redactor.redact(body: [0xFF, 0xFE, 0x00, 0x41], contentType: "application/octet-stream") == nil)
    }

    @Test(arguments: [
        ("client_secret", true), ("clientSecret", true), ("signingCert", true), ("signing_cert", true), ("cert", true),
        ("key", true), ("private_key", true), ("token", true), ("password", true), ("x-api-key", true),
        ("access_token", true), ("client_assertion", true), ("token_id", false), ("keyId", false), ("client_id", false),
        ("name", false), ("keys", false), ("token_type", false), ("token_lifetime", false), ("domain", false),
        ("scope", false), ("code", true), ("CODE", true), ("state", false), ("code_challenge_method", false),
        ("pass", true), ("pwd", true), ("db_pwd", true), ("passenger", false), ("Authorization", true),
        ("Cookie", true), ("sessionid", true), ("session_id", false), ("Content-Type", false),
        ("tokenEndpointAuthMethod", false), ("api_key_id", false), ("", false),
    ])
    func secretNames(_ name: String, _ secret: Bool) {
        #expect(Redactor.isSecretName(name) == secret)
    }

    @Test func bearerClaimsKeepPayloadOnly() throws {
        let header = Base64.encode(Array(#"{"alg":"RS256","kid":"k1"}"#.utf8), url: true)
        let payload = Base64.encode(
            Array(#"{"sub":"auth0|1","org_id":"org_1","scope":"read:my_org:details"}"#.utf8), url: true)
        let claims = try #require(Redactor.bearerClaims("Bearer \(header).\(payload).U0lHTkFUVVJF"))
        #expect(claims == ["sub": "auth0|1", "org_id": "org_1", "scope": "read:my_org:details"])
        #expect(!claims.serialized().contains("U0lHTkFUVVJF"))
        #expect(Redactor.bearerClaims("Basic dXNlcjpwYXNz") == nil)
        #expect(Redactor.bearerClaims("Bearer opaque") == nil)
        #expect(Redactor.bearerClaims("Bearer a.!!!.c") == nil)
        #expect(Redactor.bearerClaims("Bearer \(header).\(payload)") == nil)
        #expect(Redactor.bearerClaims("Bearer \(header).\(payload).U0lH.extra") == nil)
        #expect(Redactor.bearerClaims("bearer   \(header).\(payload).") == claims)
    }

    @Test func queryValuesWithSecretNames() {
        #expect(
            redactor.redact(query: "take=5&access_token=AT-1&code_verifier=CV")
                == "take=5&access_token=[REDACTED]&code_verifier=[REDACTED]")
    }

    @Test(arguments: [("/a/b~1c", ["a", "b/c"]), ("", []), ("/~0x", ["~x"])] as [(String, [String])])
    func pointers(_ pointer: String, _ tokens: [String]) {
        #expect(Redactor.parsePointer(pointer) == tokens)
    }

    @Test func invalidPointersAreReported() {
        #expect(Redactor.validatePointer("a/b") != nil)
        #expect(Redactor.validatePointer("/a~2") != nil)
        #expect(Redactor.validatePointer("/a") == nil)
    }
}
