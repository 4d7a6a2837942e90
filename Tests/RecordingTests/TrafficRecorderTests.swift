import Foundation
import GatewayCore
import TestSupport
import Testing

@testable import Recording

@Suite struct TrafficRecorderTests {
    /// Every secret the exchanges below carry; none may appear in any file the recorder writes.
    static let secrets = [
        "AUTHZ-SIG-PART", "DPOP-PROOF-SECRET", "COOKIE-SESSION-SECRET", "SETCOOKIE-SECRET", "CNAME-API-KEY-SECRET",
        "PROXY-AUTH-SECRET", "SCIM-TOKEN-SECRET", "CLIENT-SECRET-OIDC", "SIGNING-CERT-CAMEL", "SIGNING-CERT-SNAKE",
        "PRIVATE-KEY-PEM", "FORM-CLIENT-SECRET", "FORM-PASSWORD", "QUERY-ACCESS-TOKEN", "CUSTOM-HEADER-SECRET",
        "POINTER-SECRET", "NESTED-PASSWORD", "XAPIKEY-SECRET", "TRUNCATED-SECRET-TAIL", "PATH-TOKEN-SIG",
    ]

    static func jwt(payload: String, signature: String) -> String {
        Base64.encode(Array(#"{"alg":"RS256","typ":"JWT"}"#.utf8), url: true) + "."
            + Base64.encode(Array(payload.utf8), url: true) + "." + signature
    }

    static func exchanges() -> [CapturedExchange] {
        let token = jwt(
            payload: #"{"sub":"auth0|1","org_id":"org_A","azp":"client_1","scope":"create:my_org:identity_providers"}"#,
            signature: "AUTHZ-SIG-PART")
        let common: [(String, String)] = [
            ("Host", "login.acme.com"), ("Authorization", "Bearer \(token)"),
            ("DPoP", "eyJhbGciOiJFUzI1NiJ9.DPOP-PROOF-SECRET.x"),
            ("Cookie", "session=COOKIE-SESSION-SECRET"), ("cname-api-key", "CNAME-API-KEY-SECRET"),
            ("Proxy-Authorization", "Basic PROXY-AUTH-SECRET"), ("X-Internal", "CUSTOM-HEADER-SECRET"),
            ("X-Api-Key", "XAPIKEY-SECRET"), ("X-Request-Id", "req-1"),
        ]
        let scim = CapturedExchange(
            request: RequestHead(
                method: "POST", target: "/my-org/identity-providers/con_1/provisioning/scim-tokens",
                headers: HTTPFields(common + [("Content-Type", "application/json")])),
            requestBody: Array(#"{"token_lifetime":3600}"#.utf8),
            response: ResponseHead(
                status: 201,
                headers: HTTPFields([("Content-Type", "application/json"), ("Set-Cookie", "a=SETCOOKIE-SECRET")])),
            responseBody: Array(#"{"token_id":"tok_0123456789abcdef","token":"SCIM-TOKEN-SECRET"}"#.utf8),
            startedMillis: 1_767_323_045_000, timings: .init(sendMs: 1, waitMs: 20, receiveMs: 2, totalMs: 23),
            clientIP: "203.0.113.1", decidedBy: .tenant, decision: "forwarded",
            route: "POST identity-providers/{idp_id}/provisioning/scim-tokens", organizationID: "org_A",
            clientID: "client_1")
        let idp = CapturedExchange(
            request: RequestHead(
                method: "PATCH", target: "/my-org/identity-providers/con_2?access_token=QUERY-ACCESS-TOKEN",
                headers: HTTPFields(common + [("Content-Type", "application/json")])),
            requestBody: Array(
                """
                {"options":{"client_id":"cid","client_secret":"CLIENT-SECRET-OIDC","signingCert":"SIGNING-CERT-CAMEL",
                "signing_cert":"SIGNING-CERT-SNAKE","extra":{"password":"NESTED-PASSWORD"},
                "pem":"-----BEGIN PRIVATE KEY-----\\nPRIVATE-KEY-PEM\\n-----END PRIVATE KEY-----"},
                "custom":{"pin":"POINTER-SECRET"}}
                """.utf8),
            response: ResponseHead(status: 200, headers: HTTPFields([("Content-Type", "application/json")])),
            responseBody: Array(#"{"id":"con_2","strategy":"oidc","options":{"client_id":"cid"}}"#.utf8),
            startedMillis: 1_767_323_046_000, timings: .init(totalMs: 31), decidedBy: .tenant, decision: "forwarded",
            organizationID: "org_A")
        // A client that put its token in the path.
        let pathToken = jwt(payload: #"{"sub":"auth0|2"}"#, signature: "PATH-TOKEN-SIG")
        let form = CapturedExchange(
            request: RequestHead(
                method: "POST", target: "/oauth/token/\(pathToken)",
                headers: HTTPFields(common + [("Content-Type", "application/x-www-form-urlencoded")])),
            requestBody: Array(
                "grant_type=password&client_id=c&client_secret=FORM-CLIENT-SECRET&password=FORM-PASSWORD".utf8),
            response: ResponseHead(status: 429, headers: HTTPFields([("Retry-After", "1")])),
            responseBody: Array(#"{"type":"x","status":429,"title":"Too Many Requests","detail":"slow down"}"#.utf8),
            startedMillis: 1_767_323_047_000, timings: .init(totalMs: 1), decidedBy: .gateway,
            decision: "rate_limit_organization", organizationID: "org_B")
        // A body cut by the capture cap in the middle of a secret.
        let cut = CapturedExchange(
            request: RequestHead(
                method: "POST", target: "/my-org/identity-providers",
                headers: HTTPFields(common + [("Content-Type", "application/json")])),
            requestBody: Array(#"{"name":"x","options":{"client_secret":"TRUNCATED-SECRET-TAIL"#.utf8),
            requestBodySize: 4000, response: nil, startedMillis: 1_767_323_048_000, timings: .init(totalMs: 5000),
            decidedBy: .tenant, decision: "upstream_timeout")
        return [scim, idp, form, cut]
    }

    @Test func everySecretIsReallyInTheCapturedExchanges() {
        // The control for the test below: a recorder that wrote its input raw would fail it.
        var raw = ""
        for e in Self.exchanges() {
            raw += e.request.target + String(decoding: e.requestBody + e.responseBody, as: UTF8.self)
            raw += (e.request.headers.fields + (e.response?.headers.fields ?? [])).map { $0.name + $0.value }.joined()
        }
        let token = Self.exchanges()[0].request.headers["Authorization"] ?? ""
        for secret in Self.secrets { #expect(raw.contains(secret) || token.contains(secret), "\(secret) not in input") }
    }

    @Test func noSecretReachesAnyOutputFile() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let reserved = ReservedPort()
        defer { reserved.release() }
        let port = reserved.port
        let pipeline = try LogPipeline(
            settings: LogPipelineSettings(
                sinks: [
                    .file(FileSinkSettings(path: dir.path + "/recording.jsonl", maxBytes: 3000, keep: 3)),
                    // A webhook that is down: every record also lands in the spool directory.
                    .webhook(
                        WebhookSinkSettings(
                            url: "http://127.0.0.1:\(port)/", authorization: "Bearer x", timeout: 1,
                            initialRetryDelay: 0.05, maxRetryDelay: 0.1)),
                ], spool: SpoolSettings(directory: dir.path + "/spool")))
        let recorder = TrafficRecorder(
            settings: TrafficRecordingSettings(
                enabled: true, bodyCap: 4096, redactHeaders: ["X-Internal"], redactJSONPointers: ["/custom/pin"]),
            recorder: pipeline, ids: LogIDGenerator(clock: ManualClock()))
        for exchange in Self.exchanges() { recorder.record(exchange) }
        #expect(eventually { pipeline.stats.sinks[0].delivered == 4 && pipeline.stats.sinks[1].pendingOnDisk == 4 })
        _ = pipeline.shutdown(timeout: .milliseconds(300))

        let files = dir.allFiles()
        #expect(files.contains { $0.hasSuffix("recording.jsonl") })
        #expect(files.contains { $0.contains("/spool/") && $0.hasSuffix(".jsonl") })
        var all = ""
        for file in files {
            let text = String(decoding: FileManager.default.contents(atPath: file) ?? Data(), as: UTF8.self)
            all += text
            for secret in Self.secrets { #expect(!text.contains(secret), "\(secret) found in \(file)") }
        }
        // The records are there, with what is useful and not secret.
        let base = dir.path + "/recording.jsonl"
        let records = ExchangeRecord.read(
            lines: [base + ".3", base + ".2", base + ".1", base].flatMap { dir.lines($0) })
        try #require(records.count == 4)
        #expect(records[0].tokenClaims?["org_id"] == "org_A")
        #expect(records[0].responseBody?.text?.contains("tok_0123456789abcdef") == true)
        #expect(records[1].target == "/my-org/identity-providers/con_2?access_token=[REDACTED]")
        #expect(records[2].target == "/oauth/token/[REDACTED]")
        #expect(records[3].status == nil)
        #expect(records[3].requestBody?.truncated == true)
        #expect(records[3].requestBody?.size == 4000)
        #expect(all.contains("[REDACTED]"))
    }

    @Test func optInByRouteOrganizationAndSampleRate() {
        let sink = MemoryEventRecorder()
        let ids = LogIDGenerator(clock: ManualClock())
        let off = TrafficRecorder(settings: TrafficRecordingSettings(enabled: false), recorder: sink, ids: ids)
        #expect(!off.shouldRecord(route: nil, path: "/my-org/details", organizationID: "org_A"))

        let scoped = TrafficRecorder(
            settings: TrafficRecordingSettings(
                enabled: true, routes: ["GET details", "/my-org/domains"], organizations: ["org_A"]),
            recorder: sink, ids: ids)
        #expect(scoped.shouldRecord(route: "GET details", path: "/my-org/details", organizationID: "org_A"))
        #expect(scoped.shouldRecord(route: nil, path: "/my-org/domains/ord_1", organizationID: "org_A"))
        #expect(!scoped.shouldRecord(route: "GET details", path: "/my-org/details", organizationID: "org_B"))
        #expect(!scoped.shouldRecord(route: "GET details", path: "/my-org/details", organizationID: nil))
        #expect(!scoped.shouldRecord(route: "PATCH details", path: "/my-org/details", organizationID: "org_A"))

        let sampled = TrafficRecorder(
            settings: TrafficRecordingSettings(enabled: true, sampleRate: 0.25), recorder: sink, ids: ids)
        let keys = (0..<4000).map { "req-\($0)" }
        let chosen = keys.filter { sampled.shouldRecord(route: nil, path: "/", organizationID: nil, sampleKey: $0) }
        #expect(chosen.count > 800 && chosen.count < 1200)
        // Deterministic per key.
        #expect(
            chosen == keys.filter { sampled.shouldRecord(route: nil, path: "/", organizationID: nil, sampleKey: $0) })
    }

    @Test func recordsRoundTripThroughJSON() throws {
        let sink = MemoryEventRecorder()
        let recorder = TrafficRecorder(
            settings: TrafficRecordingSettings(enabled: true, bodyCap: 10), recorder: sink,
            ids: LogIDGenerator(clock: ManualClock()))
        for exchange in Self.exchanges() { recorder.record(exchange) }
        #expect(sink.events.count == 4)
        for event in sink.events {
            let record = try ExchangeRecord(json: try JSONValue.parse(event.serialized()))
            #expect(record.json == event)
            #expect((record.requestBody?.text?.utf8.count ?? 0) <= 10)
        }
    }
}
