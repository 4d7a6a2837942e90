import Testing

@testable import Policy

@Suite struct CORSOriginPatternTests {
    /// (pattern, origins it must match, origins it must not match)
    static let valid: [(String, [String], [String])] = [
        (
            "https://app.acme.com", ["https://app.acme.com", "HTTPS://APP.ACME.COM", "https://app.acme.com:443"],
            ["http://app.acme.com", "https://app.acme.com:8443", "https://x.app.acme.com", "https://acme.com"]
        ),
        ("http://localhost:3000", ["http://localhost:3000"], ["http://localhost", "https://localhost:3000"]),
        ("http://localhost", ["http://localhost:80", "http://LocalHost"], ["http://localhost:8080"]),
        ("HTTPS://App.Acme.COM:443", ["https://app.acme.com"], ["https://app.acme.com:444"]),
        ("http://127.0.0.1:8080", ["http://127.0.0.1:8080"], ["http://127.0.0.2:8080"]),
        ("http://[::1]:3000", ["http://[::1]:3000"], ["http://[::2]:3000", "http://localhost:3000"]),
        (
            "https://*.example.com",
            ["https://a.example.com", "https://A-B.Example.com", "https://x1.example.com:443"],
            [
                "https://example.com", "https://a.b.example.com", "http://a.example.com",
                "https://a.example.com:8443", "https://a.example.org", "https://aexample.com",
            ]
        ),
        (
            "https://pre-*-suf.example.com", ["https://pre-x-suf.example.com", "https://pre-abc-suf.example.com"],
            [
                "https://pre--suf.example.com", "https://pre-x.example.com", "https://x-suf.example.com",
                "https://pre-x-suf.y.example.com", "https://a.pre-x-suf.example.com",
            ]
        ),
        (
            "https://app-*.acme.co.uk", ["https://app-1.acme.co.uk"],
            ["https://app-.acme.co.uk", "https://app.acme.co.uk"]
        ),
        ("https://*-preview.acme.com", ["https://pr42-preview.acme.com"], ["https://-preview.acme.com"]),
        ("https://*.acme.com:8443", ["https://a.acme.com:8443"], ["https://a.acme.com"]),
    ]

    @Test(arguments: valid)
    func validPatternsMatchExactlyTheirOrigins(pattern: String, matching: [String], notMatching: [String]) throws {
        let parsed = try OriginPattern.parse(pattern)
        #expect(parsed.text == pattern)
        for origin in matching { #expect(parsed.matches(origin: origin), "\(pattern) should match \(origin)") }
        for origin in notMatching { #expect(!parsed.matches(origin: origin), "\(pattern) should not match \(origin)") }
        // The precompiled policy agrees with the one-off matcher.
        let policy = CORSPolicy(clientOrigins: ["c": [parsed]])
        for origin in matching { #expect(policy.isAllowed(origin: origin, clientID: "c")) }
        for origin in notMatching { #expect(!policy.isAllowed(origin: origin, clientID: "c")) }
    }

    static let invalid: [(String, OriginPatternError.Reason)] = [
        ("", .empty),
        ("*", .bareWildcard),
        ("null", .nullOrigin),
        ("NULL", .nullOrigin),
        ("app.acme.com", .missingScheme),
        ("ftp://app.acme.com", .unsupportedScheme("ftp")),
        ("chrome-extension://abc", .unsupportedScheme("chrome-extension")),
        ("https://app.acme.com/", .path),
        ("https://app.acme.com/app", .path),
        ("https://app.acme.com?x=1", .query),
        ("https://app.acme.com#top", .fragment),
        ("https://user@app.acme.com", .userInfo),
        ("https:// app.acme.com", .whitespace),
        ("https://", .emptyHost),
        ("https://:443", .emptyHost),
        ("https://app.acme.com:", .invalidPort("")),
        ("https://app.acme.com:0", .invalidPort("0")),
        ("https://app.acme.com:65536", .invalidPort("65536")),
        ("https://app.acme.com:44a", .invalidPort("44a")),
        ("https://app..acme.com", .emptyLabel),
        ("https://app.acme.com.", .emptyLabel),
        ("https://app_1.acme.com", .invalidHostCharacter("_")),
        ("https://bücher.de", .nonASCIIHost),
        ("https://" + String(repeating: "a", count: 64) + ".com", .labelTooLong),
        ("https://*.com", .wildcardOnTopLevelDomain),
        ("https://*", .wildcardOnTopLevelDomain),
        ("https://a.*.example.com", .wildcardNotInLeftmostLabel),
        ("https://*.*.example.com", .multipleWildcards),
        ("https://**.example.com", .multipleWildcards),
        ("https://example.*", .wildcardNotInLeftmostLabel),
        ("https://*.0.0.1", .wildcardOnIPAddress),
        ("https://[::1", .invalidIPv6),
        ("https://[xyz]", .invalidIPv6),
        ("https://*.example.com/", .path),
    ]

    @Test(arguments: invalid)
    func invalidPatternsAreRefusedWithAReason(pattern: String, reason: OriginPatternError.Reason) {
        do {
            let parsed = try OriginPattern.parse(pattern)
            Issue.record("accepted \(pattern) as \(parsed.kind)")
        } catch {
            #expect(error.reason == reason, "\(pattern): \(error)")
            #expect(error.text == pattern)
            #expect(error.description.contains(reason.description))
            #expect(!reason.description.isEmpty)
        }
    }

    @Test(arguments: ["null", "", "*", "https://*.example.com", "https://a.example.com/", "file://", "https://a b"])
    func malformedRequestOriginsNeverMatch(origin: String) throws {
        let policy = try CORSPolicy.compile(clientOrigins: ["c": ["https://*.example.com", "https://a.example.com"]])
        #expect(!policy.isAllowed(origin: origin, clientID: nil))
    }
}
