import GatewayCore
import TestSupport
import Testing

@testable import Recording

@Suite struct LogEventTests {
    @Test(
        "is_mobile: the tokens of phone and tablet browsers, in any case; desktop browsers and tools are not mobile",
        arguments: [
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148", true),
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36", true),
            ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15", true),
            ("Mozilla/5.0 (Android 14; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0", true),
            ("Opera/9.80 (J2ME/MIDP; Opera Mini/9.80) Presto/2.5.25 Version/10.54 MOBI", true),
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36", false),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari/605.1.15", false),
            ("curl/8.5", false), ("", false),
        ] as [(String, Bool)])
    func isMobile(userAgent: String, expected: Bool) {
        #expect(RequestFacts.isMobile(userAgent: userAgent) == expected)
        var event = LogEvent(logID: "x", dateMillis: 0, type: "t", description: "d")
        event.apply(request: RequestHead(method: "GET", target: "/", headers: HTTPFields([("User-Agent", userAgent)])))
        #expect(event.json["is_mobile"] == .bool(expected))
    }

    @Test func eventCarriesEveryAuth0Field() throws {
        let clientInfo = #"{"name":"auth0-spa-js","version":"2.1.0"}"#
        let request = RequestHead(
            method: "POST", target: "/my-org/identity-providers?take=5",
            headers: HTTPFields([
                ("Host", "Login.Acme.com:8443"), ("User-Agent", "curl/8.5"),
                ("Auth0-Client", Base64.encode(Array(clientInfo.utf8))),
                ("X-Request-Id", "req-123"),
                ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                ("Authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"),
            ]))
        var event = LogEvent(
            logID: "0190a1b2c3d4e5f60718293a4b5c6d7e", dateMillis: 1_767_323_045_678,
            type: "my_organization_api_idp_succeeded", description: "Create identity provider")
        event.tenantName = "acme"
        event.environmentName = "production"
        event.ip = "203.0.113.9"
        event.apply(request: request)
        event.apply(claims: [
            "sub": "auth0|42", "azp": "client-abc", "org_id": "org_1234567890abcdef",
            "aud": ["https://login.acme.com/my-org/", "https://login.acme.com/userinfo"],
            "scope": "create:my_org:identity_providers", "org_name": "acme-inc",
        ])
        event.clientName = "Acme Admin"
        event.operation = "create"
        event.status = 201
        event.decidedBy = .tenant
        event.durationMs = 12.3456
        let json = event.json
        #expect(json["log_id"] == "0190a1b2c3d4e5f60718293a4b5c6d7e")
        #expect(json["date"] == "2026-01-02T03:04:05.678Z")
        #expect(json["type"] == "my_organization_api_idp_succeeded")
        #expect(json["description"] == "Create identity provider")
        #expect(json["tenant_name"] == "acme")
        #expect(json["environment_name"] == "production")
        // A curl User-Agent names no phone or tablet; the field is there all the same, as in Auth0's events.
        #expect(json["is_mobile"] == false)
        #expect(json["hostname"] == "login.acme.com")
        #expect(json["ip"] == "203.0.113.9")
        #expect(json["user_agent"] == "curl/8.5")
        #expect(json["client_id"] == "client-abc")
        #expect(json["user_id"] == "auth0|42")
        #expect(json["organization_id"] == "org_1234567890abcdef")
        // endpoints.md: "logs elsewhere also carry organization_name ... client_name".
        #expect(json["organization_name"] == "acme-inc")
        #expect(json["client_name"] == "Acme Admin")
        #expect(json["audience"] == "https://login.acme.com/my-org/")
        #expect(json["scope"] == "create:my_org:identity_providers")
        #expect(json["auth0_client"] == ["name": "auth0-spa-js", "version": "2.1.0"])
        #expect(json["references"]?["correlation_id"] == "req-123")
        #expect(json["references"]?["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736")
        let details = try #require(json["details"])
        #expect(details["operation"] == "create")
        #expect(details["request"]?["method"] == "POST")
        #expect(details["request"]?["path"] == "/my-org/identity-providers")
        #expect(details["response"]?["status"] == 201)
        #expect(details["decided_by"] == "tenant")
        #expect(details["duration_ms"] == 12.346)
        #expect(details["error"] == nil)
        #expect(!json.serialized().contains("eyJ"))
        #expect(!json.serialized().contains("Bearer"))
        // The writer the pipelines use writes the same text, new fields included.
        var out = JSONByteWriter()
        event.write(to: &out)
        #expect(out.text == json.serialized())
    }

    @Test func errorDetailsComeFromTenantError() {
        var event = LogEvent(logID: "x", dateMillis: 0, type: "my_organization_api_org_details_failed", description: "")
        event.error = .init(TenantError.insufficientScope(missing: ["read:my_org:details"]))
        event.decidedBy = .gateway
        event.reason = "insufficient_scope"
        let error = event.json["details"]?["error"]
        #expect(error?["type"] == "https://auth0.com/api-errors#A0E-403-0002")
        #expect(error?["title"] == "Insufficient Scope")
        #expect(error?["status"] == 403)
        #expect(error?["detail"]?.stringValue?.contains("read:my_org:details") == true)
        #expect(event.json["details"]?["decided_by"] == "gateway")
        #expect(event.json["details"]?["reason"] == "insufficient_scope")
    }

    @Test func clientCredentialsTokensHaveNoUser() {
        var event = LogEvent(logID: "x", dateMillis: 0, type: "t", description: "")
        event.apply(claims: ["sub": "abc@clients", "client_id": "abc", "aud": "https://a/my-org/"])
        #expect(event.userID == nil)
        #expect(event.clientID == "abc")
        #expect(event.audience == "https://a/my-org/")
    }

    @Test(
        arguments: [
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", nil),
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", nil),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", nil),
            ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", nil),
            ("garbage", nil),
        ] as [(String, String?)])
    func traceparent(_ header: String, _ expected: String?) {
        #expect(RequestFacts.traceID(header) == expected)
    }

    @Test(arguments: [
        (Base64.encode(Array(#"{"name":"lock","version":"1"}"#.utf8)), true),
        (Base64.encode(Array(#"{"name":"lock"}"#.utf8), url: true), true),
        (Base64.encode(Array("[1,2]".utf8)), false),
        (Base64.encode(Array("not json".utf8)), false),
        ("%%%not-base64%%%", false),
        (Base64.encode(Array(#"{"a":1,"a":2}"#.utf8)), false),
    ])
    func auth0ClientHeader(_ header: String, _ decodes: Bool) {
        #expect((RequestFacts.decodeAuth0Client(header) != nil) == decodes)
    }

    @Test func correlationIDRejectsControlCharacters() {
        #expect(RequestFacts.correlationID(HTTPFields([("X-Request-Id", "abc\ndef")])) == nil)
        #expect(RequestFacts.correlationID(HTTPFields([("X-Request-Id", String(repeating: "a", count: 200))])) == nil)
        #expect(RequestFacts.correlationID(HTTPFields([("x-request-id", "ok-1")])) == "ok-1")
    }

    @Test func logIDsAreUniqueAndSortByCreation() {
        let clock = ManualClock(seconds: 1_800_000_000)
        let ids = LogIDGenerator(clock: clock)
        var all: [String] = []
        for i in 0..<5000 {
            if i % 1000 == 0 { clock.advance(nanoseconds: 1_000_000) }
            // A clock that steps back must not break the order.
            if i == 2500 { clock.advance(nanoseconds: -5_000_000) }
            all.append(ids.next())
        }
        #expect(Set(all).count == all.count)
        #expect(all == all.sorted())
        #expect(all.allSatisfy { $0.utf8.count == 32 })
        #expect(LogIDGenerator.millis(of: all[0]) == 1_800_000_000_001)
    }

    /// Finding 11: events are written in completion order, `date` is the request's start. A slow request that
    /// started first and a fast one that started later must sort the same way by `log_id` as by `date`.
    @Test(
        arguments: [
            // (start ms, duration ms) in start order; written in completion order.
            [(Int64(1_800_000_000_177), Int64(1300)), (1_800_000_000_480, 5)],
            [(1_800_000_000_000, 900), (1_800_000_000_000, 10), (1_800_000_000_001, 500), (1_800_000_000_002, 1)],
            [(1_800_000_000_100, 50), (1_800_000_000_100, 50), (1_800_000_000_100, 50)],
        ] as [[(Int64, Int64)]])
    func logIDsSortLikeDatesWhateverTheCompletionOrder(_ requests: [(start: Int64, duration: Int64)]) {
        let ids = LogIDGenerator(clock: ManualClock(seconds: 1_900_000_000))
        let completionOrder = requests.indices.sorted {
            let (a, b) = (requests[$0], requests[$1])
            return (a.start + a.duration, $0) < (b.start + b.duration, $1)
        }
        var events: [LogEvent] = []
        for index in completionOrder {
            let start = requests[index].start
            events.append(
                LogEvent(
                    logID: ids.next(atMillis: start), dateMillis: start, type: "x", description: "request \(index)"))
        }
        let byID = events.sorted { $0.logID < $1.logID }
        #expect(byID.map(\.dateMillis) == events.map(\.dateMillis).sorted())
        #expect(byID.allSatisfy { LogIDGenerator.millis(of: $0.logID) == $0.dateMillis })
        #expect(Set(events.map(\.logID)).count == events.count)
        // Equal dates keep the order the events were written in.
        for (a, b) in zip(byID, byID.dropFirst()) where a.dateMillis == b.dateMillis {
            #expect(events.firstIndex { $0.logID == a.logID }! < events.firstIndex { $0.logID == b.logID }!)
        }
    }

    @Test func logIDsStayUniqueBeyondTheRememberedInstants() {
        let ids = LogIDGenerator(clock: ManualClock())
        var all: [String] = []
        // An old instant comes back after more than `rememberedMillis` newer ones were used.
        all.append(ids.next(atMillis: 1_000))
        for m in 0..<Int64(LogIDGenerator.rememberedMillis + 10) { all.append(ids.next(atMillis: 2_000 + m)) }
        all.append(ids.next(atMillis: 1_000))
        #expect(Set(all).count == all.count)
        #expect(LogIDGenerator.millis(of: all.last!) == 1_000)
    }

    @Test func logIDsFromTwoGeneratorsDiffer() {
        let clock = ManualClock()
        let a = LogIDGenerator(clock: clock)
        let b = LogIDGenerator(clock: clock)
        #expect(a.next() != b.next())
    }

    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00.000Z"),
        (Int64(1_767_323_045_678), "2026-01-02T03:04:05.678Z"),
        (Int64(951_782_400_000), "2000-02-29T00:00:00.000Z"),
        (Int64(-1), "1969-12-31T23:59:59.999Z"),
        (Int64(4_102_444_799_999), "2099-12-31T23:59:59.999Z"),
    ])
    func iso8601(_ millis: Int64, _ text: String) {
        #expect(Timestamp.iso8601(millis: millis) == text)
        #expect(Timestamp.parseISO8601(text) == millis)
    }

    @Test func accessLineHidesQueryValuesAndCredentials() {
        let request = RequestHead(
            method: "GET", target: "/my-org/domains?take=10&access_token=abc123&q=secret-thing",
            headers: HTTPFields([("Host", "a.example"), ("Authorization", "Bearer zzz"), ("X-Request-Id", "r1")]))
        let line = AccessLogLine(
            timeMillis: 0, request: request, status: 200, bytes: 512, durationMs: 3.5, decision: "forwarded",
            decidedBy: .tenant, organizationID: "org_1", clientID: "c1", ip: "10.0.0.1")
        let text = line.json.serialized()
        #expect(line.json["path"] == "/my-org/domains")
        #expect(line.json["query"] == "take=10&access_token=[REDACTED]&q=[REDACTED]")
        #expect(line.json["request_id"] == "r1")
        #expect(line.json["status"] == 200)
        #expect(line.json["bytes"] == 512)
        #expect(!text.contains("abc123"))
        #expect(!text.contains("zzz"))
        #expect(!text.contains("secret-thing"))
    }

    @Test("a JWT in the request path is replaced in the access log line and in the event; other paths stay as sent")
    func tokenInPath() {
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.PATH-SIGNATURE-x"
        let request = RequestHead(
            method: "GET", target: "/my-org/members/\(token)/roles?take=5", headers: HTTPFields([("Host", "a.example")])
        )
        let line = AccessLogLine(
            timeMillis: 0, request: request, status: 404, bytes: 0, durationMs: 1, decision: "refused_route")
        #expect(line.json["path"] == "/my-org/members/[REDACTED]/roles")
        var event = LogEvent(
            logID: "l1", dateMillis: 0, type: "my_organization_api_member_roles_failed", description: "")
        event.apply(request: request, hostname: "a.example")
        #expect(event.path == "/my-org/members/[REDACTED]/roles")
        #expect(!event.json.serialized().contains("PATH-SIGNATURE"))
        for path in ["/my-org/members/auth0|abc.def-1/roles", "/my-org/domains/dom_eyJ", "/my-org/keys.json"] {
            #expect(Redactor.redact(path: path) == path)
        }
    }

    @Test(
        "an upstream's problem body becomes the event's error; a body that is not one gives none",
        arguments: [
            (#"{"type":"t","title":"Conflict","status":409,"detail":"d"}"#, 409, "t|Conflict|409|d"),
            (#"{"title":"Not Found"}"#, 404, "|Not Found|404|"),
            (#"{"detail":"x","status":"bad"}"#, 500, "||500|x"),
            (#"{"detail":"x","status":7}"#, 502, "||502|x"),
            (#"{"message":"no problem members"}"#, 400, nil),
            (#"["title"]"#, 400, nil),
            ("<html>Bad Gateway</html>", 502, nil),
            ("", 500, nil),
        ])
    func errorFromProblemBody(body: String, status: Int, expected: String?) {
        let info = LogEvent.ErrorInfo(problemBody: Array(body.utf8), status: status)
        #expect(info.map { "\($0.type)|\($0.title)|\($0.status)|\($0.detail)" } == expected)
    }

    @Test("an upstream's problem text that echoes credentials is redacted and cut before it reaches an event")
    func problemBodyRedacted() throws {
        let token = TestKeys.token(claims: TestKeys.claims())
        let detail =
            "Rejected Authorization: Bearer \(token) with cname-api-key: edge-secret-123 "
            + String(repeating: "x", count: 5000)
        let body = JSONValue.object([("title", .string("Unauthorized")), ("detail", .string(detail))]).serialized()
        let info = try #require(LogEvent.ErrorInfo(problemBody: Array(body.utf8), status: 401))
        #expect(!info.detail.contains(token))
        #expect(!info.detail.contains(String(token.split(separator: ".")[2])), "no part of the signature")
        #expect(!info.detail.contains("edge-secret-123"), "\(info.detail.prefix(200))")
        #expect(info.detail.contains(Redactor.marker))
        #expect(info.detail.utf8.count <= 1100)
    }

    @Test("a problem text cut at 1 KiB inside a multi-byte character is still an error, not a trap")
    func problemBodyCutInsideACharacter() throws {
        let detail = String(repeating: "a", count: 1023) + "é and more"
        let body = JSONValue.object([("detail", .string(detail))]).serialized()
        let info = try #require(LogEvent.ErrorInfo(problemBody: Array(body.utf8), status: 400))
        #expect(info.detail.hasPrefix(String(repeating: "a", count: 1023)))
        #expect(info.detail.utf8.count <= 1026)
    }
}
