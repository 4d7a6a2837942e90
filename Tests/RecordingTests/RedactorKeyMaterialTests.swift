import GatewayCore
import Testing

@testable import Recording

/// Key material inside XML strings (SAML and WS-Federation metadata) and the authentication-scheme rule's
/// boundary between credentials and prose.
@Suite struct RedactorKeyMaterialTests {
    let redactor = Redactor()

    /// The XML of the audit's reproduction (finding 1), with the certificate `secret` inside.
    static func metadataXML(_ secret: String, prefix: String = "ds:") -> String {
        #"<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"><IDPSSODescriptor>"#
            + #"<KeyDescriptor use="signing"><\#(prefix)KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">"#
            + "<\(prefix)X509Data><\(prefix)X509Certificate>\(secret)</\(prefix)X509Certificate></\(prefix)X509Data>"
            + "</\(prefix)KeyInfo></KeyDescriptor></IDPSSODescriptor></EntityDescriptor>"
    }

    @Test(arguments: [
        ("adfs", "fedMetadataXml", "ds:"), ("samlp", "metadataXml", "ds:"), ("samlp", "metadataXml", ""),
        ("samlp", "metadataXml", "dsig:"),
    ])
    func identityProviderMetadataBodies(_ strategy: String, _ member: String, _ prefix: String) throws {
        var xml = ""
        JSONValue.writeString(Self.metadataXML("MIICADFSCERTSECRETAAAABBBB", prefix: prefix), to: &xml)
        let body =
            #"{"strategy":"\#(strategy)","name":"adfs-xml2","display_name":"ADFS","options":{"\#(member)":\#(xml)}}"#
        #expect(body.contains("MIICADFSCERTSECRETAAAABBBB"))
        let out = try #require(redactor.redact(body: Array(body.utf8), contentType: "application/json"))
        #expect(!out.contains("MIICADFSCERTSECRETAAAABBBB"))
        // The rest of the metadata stays readable: what is redacted is the key material only.
        let text = try #require(try JSONValue.parse(out)["options"]?[member]?.stringValue)
        #expect(text.contains("<\(prefix)X509Data>[REDACTED]</\(prefix)X509Data>"))
        #expect(text.contains(#"<KeyDescriptor use="signing">"#))
    }

    @Test(arguments: [
        // The recording's own serialization and what a client may send: `<` as a JSON escape, `/` escaped too.
        (
            #"{"x":"\u003cds:X509Certificate>MIIC-ESC-1\u003c/ds:X509Certificate>"#,
            #"{"x":"\u003cds:X509Certificate>[REDACTED]\u003c/ds:X509Certificate>"#
        ),
        (
            #"{"x":"\u003CX509Certificate\u003EMIIC-ESC-2\u003C\/X509Certificate\u003E tail"#,
            #"{"x":"\u003CX509Certificate\u003E[REDACTED]\u003C\/X509Certificate\u003E tail"#
        ),
        // XML escaped inside XML or HTML.
        (
            "&lt;X509Certificate&gt;MIIC-ESC-3&lt;/X509Certificate&gt;",
            "&lt;X509Certificate&gt;[REDACTED]&lt;/X509Certificate&gt;"
        ),
        (
            "&#60;X509Certificate&#62;MIIC-ESC-4&#60;/X509Certificate&#62;",
            "&#60;X509Certificate&#62;[REDACTED]&#60;/X509Certificate&#62;"
        ),
        // Attributes in single and double quotes (escaped as in JSON text), any case, whitespace in the end tag.
        (
            #"<ds:X509Certificate Id='c1' a=\"b\">MIIC-ATTR-5</ds:X509Certificate >"#,
            #"<ds:X509Certificate Id='c1' a=\"b\">[REDACTED]</ds:X509Certificate >"#
        ),
        ("<x509certificate>MIIC-CASE-6</X509CERTIFICATE>", "<x509certificate>[REDACTED]</X509CERTIFICATE>"),
        // Other key material.
        (
            "<ds:KeyValue><ds:RSAKeyValue><ds:Modulus>MOD-7</ds:Modulus></ds:RSAKeyValue></ds:KeyValue>",
            "<ds:KeyValue>[REDACTED]</ds:KeyValue>"
        ),
        (
            "<X509CRL>CRL-8</X509CRL><X509SKI>SKI-9</X509SKI>",
            "<X509CRL>[REDACTED]</X509CRL><X509SKI>[REDACTED]</X509SKI>"
        ),
        // A body cut by the capture cap inside the certificate: everything after the start tag goes.
        (
            #"{"options":{"metadataXml":"<md:EntityDescriptor><ds:X509Certificate>MIIC-CUT-10"#,
            #"{"options":{"metadataXml":"<md:EntityDescriptor><ds:X509Certificate>[REDACTED]"#
        ),
        // Not key material, or no content: unchanged.
        ("<ds:KeyName>signing-key-1</ds:KeyName>", "<ds:KeyName>signing-key-1</ds:KeyName>"),
        (
            "<X509Certificate/> and <X509CertificateList>x</X509CertificateList>",
            "<X509Certificate/> and <X509CertificateList>x</X509CertificateList>"
        ),
        ("a < b and c > d", "a < b and c > d"),
    ])
    func keyMaterialInText(_ input: String, _ expected: String) {
        #expect(redactor.redact(text: input) == expected)
    }

    @Test func certificateInBothBodiesOfARecordedExchangeAndItsHAR() throws {
        let xml = Self.metadataXML("MIICADFSCERTSECRETAAAABBBB")
        var escaped = ""
        JSONValue.writeString(xml, to: &escaped)
        let request = #"{"strategy":"adfs","name":"adfs-xml2","options":{"fedMetadataXml":\#(escaped)}}"#
        let response = #"{"id":"con_PPaC3qIAvJWme2sJ","strategy":"adfs","options":{"fedMetadataXml":\#(escaped)}}"#
        let sink = MemoryEventRecorder()
        let recorder = TrafficRecorder(
            settings: TrafficRecordingSettings(enabled: true, bodyCap: 65536), recorder: sink,
            ids: LogIDGenerator(clock: ManualClock()))
        recorder.record(
            CapturedExchange(
                request: RequestHead(
                    method: "POST", target: "/my-org/identity-providers",
                    headers: HTTPFields([("Content-Type", "application/json")])),
                requestBody: Array(request.utf8),
                response: ResponseHead(status: 201, headers: HTTPFields([("Content-Type", "application/json")])),
                responseBody: Array(response.utf8), startedMillis: 1_767_323_045_000, timings: .init(totalMs: 3),
                decidedBy: .tenant, decision: "forwarded"))
        let line = try #require(sink.events.first).serialized()
        #expect(!line.contains("ADFSCERTSECRET"))
        #expect(line.contains("X509Data>[REDACTED]"))
        let har = HARExporter.exportString(recordingLines: [line])
        #expect(!har.contains("ADFSCERTSECRET"))
        #expect(har.contains("con_PPaC3qIAvJWme2sJ"))
    }

    @Test(
        arguments: [
            // Prose and challenges keep their words.
            ("The DPoP scheme was used with an access token that is not DPoP-bound", nil),
            ("use the Bearer scheme.", nil),
            ("a Bearer Token is required", nil),
            ("Basic authentication is not supported", nil),
            ("the DPoP token-based flow", nil),
            (#"Bearer error="invalid_token", error_description="expired""#, nil),
            (#"Bearer realm="api", scope="read:my_org:details""#, nil),
            ("DPoP error=invalid_dpop_proof", nil),
            // Credentials are still redacted.
            ("Bearer opaque-TOKEN-123", "Bearer [REDACTED]"),
            ("Basic dXNlcjpwYXNz", "Basic [REDACTED]"),
            ("Basic YTpi", "Basic [REDACTED]"),
            ("sent DPoP Zm9vYmFyYmF6cXV4 twice", "sent DPoP [REDACTED] twice"),
            ("Bearer 0123456789abcdef.", "Bearer [REDACTED]."),
            ("Bearer abcdefghijklmnopqrstuvwxyz", "Bearer [REDACTED]"),
            ("Basic dXNlcjpwYXNzd29yZA==", "Basic [REDACTED]"),
            ("bearer sk_live_abcd", "bearer [REDACTED]"),
        ] as [(String, String?)])
    func schemeRuleRedactsCredentialsNotProse(_ input: String, _ expected: String?) {
        #expect(redactor.redact(text: input) == (expected ?? input))
    }

    @Test func recordedRefusalBodyKeepsItsDetail() throws {
        let body =
            #"{"type":"https://auth0.com/api-errors/A0E-401-0002","status":401,"title":"Unauthorized","#
            + #""detail":"The DPoP scheme was used with an access token that is not DPoP-bound."}"#
        let out = try #require(redactor.redact(body: Array(body.utf8), contentType: "application/json"))
        #expect(try JSONValue.parse(out)["detail"]?.stringValue?.hasPrefix("The DPoP scheme was used") == true)
    }
}
