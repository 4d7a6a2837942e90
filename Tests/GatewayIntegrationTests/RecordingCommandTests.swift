import Foundation
import TestSupport
import Testing

extension GatewayIntegration {
    /// `replay`, `export --har` and `report` on real files, and `serve`/`check` error output, through the binary.
    @Suite("replay, export, report")
    struct RecordingCommandTests {
        /// A recording line for `GET target` that got `status` when it was recorded.
        static func exchange(_ id: String, _ target: String, status: Int, second: Int) -> String {
            #"{"kind":"exchange","v":1,"id":"\#(id)","started":"2026-01-01T00:00:0\#(second).000Z","time_ms":3,"#
                + #""request":{"method":"GET","scheme":"http","host":"acme.test","target":"\#(target)","#
                + #""http_version":"HTTP/1.1","headers":[["X-Request-Id","\#(id)"]]},"#
                + #""response":{"status":\#(status),"reason":"","headers":[]}}"#
        }

        /// Three exchanges (the third will not get its recorded status from the fixture upstream) and, on line 2,
        /// a line that is not a recording.
        static let recording =
            [
                exchange("r1", "/status/200", status: 200, second: 0), "this is not a recording",
                exchange("r2", "/status/409", status: 409, second: 1),
                exchange("r3", "/status/201", status: 200, second: 2),
            ].joined(separator: "\n") + "\n"

        static let event =
            #"{"log_id":"01a2","date":"2026-01-01T00:00:01.000Z","type":"my_organization_api_org_details_succeeded","#
            + #""details":{"response":{"status":200}}}"#

        func replay(_ ws: Workspace, _ arguments: [String]) throws -> TestProcess.Output {
            try TestProcess.run(
                ws.binary, ["replay", ws.path("rec.jsonl")] + arguments + ["--speed", "0"], timeout: 60)
        }

        /// Every line of the status table ends in the same column, under "recorded".
        func expectAlignedTable(_ stdout: String) {
            let lines = stdout.split(separator: "\n", omittingEmptySubsequences: false)
            guard let header = lines.firstIndex(where: { $0.hasPrefix("status ") }) else {
                Issue.record("no status table in:\n\(stdout)")
                return
            }
            let table = lines[header...].prefix { !$0.isEmpty }
            #expect(table.count >= 2, "\(stdout)")
            #expect(Set(table.map(\.count)).count == 1, "columns not aligned:\n\(table.joined(separator: "\n"))")
        }

        @Test(
            "replay refuses a --target that is not an http(s) URL with a host: a usage error, exit 64",
            arguments: ["notaurl", "ftp://127.0.0.1:21", "http://", "http://127.0.0.1:99999"])
        func invalidTarget(target: String) throws {
            guard let binary = gatewayBinaryOrSkip("replay --target") else { return }
            let ws = Workspace(binary: binary, name: "replay-target")
            defer { ws.remove() }
            try ws.write("rec.jsonl", Self.recording)
            let out = try replay(ws, ["--target", target])
            #expect(out.status == 64, "\(out.stdout)\(out.stderr)")
            #expect(out.stderr.contains("--target: '\(target)'"), "\(out.stderr)")
            #expect(out.stderr.contains("Usage:"), "\(out.stderr)")
            #expect(!out.stdout.contains("[1/"), "nothing may be sent:\n\(out.stdout)")
        }

        @Test("token warns that a lifetime over 600 s will be refused, and still mints it; 600 s mints quietly")
        func tokenLifetimeWarning() throws {
            guard let binary = gatewayBinaryOrSkip("token --ttl") else { return }
            let ws = Workspace(binary: binary, name: "token-ttl")
            defer { ws.remove() }
            for (ttl, warns) in [("3600", true), ("600", false)] {
                let out = try TestProcess.run(binary, ["token", "--key", ws.path("k.pem"), "--ttl", ttl])
                #expect(out.status == 0, "\(out.stderr)")
                #expect(out.stdout.split(separator: ".").count == 3, "\(out.stdout)")
                #expect(out.stderr.contains("warning: --ttl \(ttl)") == warns, "\(out.stderr)")
            }
        }

        @Test("replay refuses a negative or non-numeric --speed as a usage error", arguments: ["-1", "nan", "fast"])
        func invalidSpeed(speed: String) throws {
            guard let binary = gatewayBinaryOrSkip("replay --speed") else { return }
            let ws = Workspace(binary: binary, name: "replay-speed")
            defer { ws.remove() }
            try ws.write("rec.jsonl", Self.recording)
            let out = try TestProcess.run(
                binary, ["replay", ws.path("rec.jsonl"), "--target", "http://127.0.0.1:9", "--speed=\(speed)"])
            #expect(out.status == 64, "\(out.stdout)\(out.stderr)")
            #expect(out.stderr.contains("--speed"), "\(out.stderr)")
            #expect(!out.stdout.contains("[1/"), "nothing may be sent:\n\(out.stdout)")
        }

        @Test("replay --key naming no file fails before sending anything, and makes no key there")
        func missingKey() throws {
            guard let binary = gatewayBinaryOrSkip("replay --key") else { return }
            let ws = Workspace(binary: binary, name: "replay-key")
            defer { ws.remove() }
            try ws.write("rec.jsonl", Self.recording)
            let out = try replay(ws, ["--target", "http://127.0.0.1:9", "--key", ws.path("mistyped.pem")])
            #expect(out.status == 2, "\(out.stdout)\(out.stderr)")
            #expect(out.stderr.contains("no signing key at"), "\(out.stderr)")
            #expect(!FileManager.default.fileExists(atPath: ws.path("mistyped.pem")))
            #expect(!out.stdout.contains("[1/"), "nothing may be sent:\n\(out.stdout)")
        }

        @Test("replay to a port where nothing listens says connection refused and exits 1")
        func refused() throws {
            guard let binary = gatewayBinaryOrSkip("replay refused") else { return }
            let ws = Workspace(binary: binary, name: "replay-refused")
            defer { ws.remove() }
            try ws.write("rec.jsonl", Self.recording)
            let port = TestProcess.freePort()
            let out = try replay(ws, ["--target", "http://127.0.0.1:\(port)"])
            #expect(out.status == 1, "\(out.stdout)\(out.stderr)")
            #expect(out.stdout.contains("[1/3] GET /status/200 → connection refused"), "\(out.stdout)")
            #expect(!out.stdout.contains("→ 0"), "\(out.stdout)")
            #expect(
                out.stdout.contains("3 of 3 requests got no HTTP answer:\n  3  connection refused"), "\(out.stdout)")
            #expect(out.stderr.contains("no request got an HTTP answer"), "\(out.stderr)")
            expectAlignedTable(out.stdout)
        }

        @Test("replay to a live target: progress, an aligned summary against the recording, exit 0")
        func answered() throws {
            guard let binary = gatewayBinaryOrSkip("replay") else { return }
            let ws = Workspace(binary: binary, name: "replay-ok")
            defer { ws.remove() }
            try ws.write("rec.jsonl", Self.recording)
            let upstream = try UpstreamServer(workspace: ws)
            defer { upstream.stop() }
            let out = try replay(ws, ["--target", "http://127.0.0.1:\(upstream.port)/"])
            #expect(out.status == 0, "\(out.stdout)\(out.stderr)")
            for line in ["[1/3] GET /status/200 → 200", "[2/3] GET /status/409 → 409", "[3/3] GET /status/201 → 201"] {
                #expect(out.stdout.contains(line), "\(line) missing:\n\(out.stdout)")
            }
            #expect(out.stdout.contains("2 of 3 requests got the recorded status."), "\(out.stdout)")
            #expect(!out.stdout.contains("no answer"), "\(out.stdout)")
            expectAlignedTable(out.stdout)
            #expect(out.stderr.contains("1 line (line 2) was skipped: not a traffic recording"), "\(out.stderr)")
            #expect(upstream.requests().count == 3)
        }

        @Test("replay sends targets with [ ] { } as recorded, including the recorder's own [REDACTED] values")
        func bracketsAndBraces() throws {
            guard let binary = gatewayBinaryOrSkip("replay brackets") else { return }
            let ws = Workspace(binary: binary, name: "replay-brackets")
            defer { ws.remove() }
            let targets = [
                "/authorize?client_id=x&code=[REDACTED]&state=abc",
                "/my-org/members/auth0|123?take=5&fields=a[0]",
                "/echo?filter={a}&q=[1,2]",
            ]
            let lines = targets.enumerated().map { Self.exchange("b\($0)", $1, status: 200, second: $0) }
            try ws.write("rec.jsonl", lines.joined(separator: "\n") + "\n")
            let upstream = try UpstreamServer(workspace: ws)
            defer { upstream.stop() }
            let out = try replay(ws, ["--target", "http://127.0.0.1:\(upstream.port)"])
            #expect(out.status == 0, "\(out.stdout)\(out.stderr)")
            #expect(!out.stdout.contains("malformed URL"), "\(out.stdout)")
            for (index, target) in targets.enumerated() {
                let line = "[\(index + 1)/3] GET \(target) → 200"
                #expect(out.stdout.contains(line), "\(line) missing:\n\(out.stdout)")
            }
            // The upstream received each target byte for byte.
            let received = upstream.requests().compactMap { $0.split(separator: "\r\n").first.map(String.init) }
            #expect(received == targets.map { "GET \($0) HTTP/1.1" }, "\(received)")
        }

        @Test("replay to a TLS target with an untrusted certificate names the TLS failure; --insecure gets answers")
        func untrustedCertificate() throws {
            guard let binary = gatewayBinaryOrSkip("replay TLS") else { return }
            let ws = Workspace(binary: binary, name: "replay-tls")
            defer { ws.remove() }
            try ws.write("rec.jsonl", Self.recording)
            let cert = try ws.certificate("upstream", dnsNames: ["localhost"])
            let upstream = try UpstreamServer(workspace: ws, tls: (cert.cert, cert.key))
            defer { upstream.stop() }
            let target = "https://127.0.0.1:\(upstream.port)"
            let refused = try replay(ws, ["--target", target])
            #expect(refused.status == 1, "\(refused.stdout)\(refused.stderr)")
            #expect(refused.stdout.contains("→ TLS: certificate verify failed"), "\(refused.stdout)")
            let insecure = try replay(ws, ["--target", target, "--insecure"])
            #expect(insecure.status == 0, "\(insecure.stdout)\(insecure.stderr)")
            #expect(insecure.stdout.contains("→ 409"), "\(insecure.stdout)")
        }

        @Test("export --har: a file without a recording fails and writes nothing; a mixed file warns and exports")
        func export() throws {
            guard let binary = gatewayBinaryOrSkip("export") else { return }
            let ws = Workspace(binary: binary, name: "export")
            defer { ws.remove() }
            try ws.write("garbage.jsonl", "garbage\n\(Self.event)\n")
            let bad = try TestProcess.run(
                binary, ["export", "--har", ws.path("garbage.jsonl"), "--out", ws.path("bad.har")])
            #expect(bad.status == 1, "\(bad.stdout)\(bad.stderr)")
            #expect(
                bad.stderr.contains("no line is a traffic recording (2 skipped, the first is line 1)"), "\(bad.stderr)")
            #expect(!FileManager.default.fileExists(atPath: ws.path("bad.har")))
            try ws.write("empty.jsonl", "")
            let empty = try TestProcess.run(binary, ["export", "--har", ws.path("empty.jsonl")])
            #expect(empty.status == 1, "\(empty.stdout)\(empty.stderr)")
            #expect(empty.stdout.isEmpty)
            #expect(empty.stderr.contains("empty"), "\(empty.stderr)")

            try ws.write("rec.jsonl", Self.recording)
            let good = try TestProcess.run(binary, ["export", "--har", ws.path("rec.jsonl")])
            #expect(good.status == 0, "\(good.stderr)")
            #expect(good.stderr.contains("1 line (line 2) was skipped: not a traffic recording"), "\(good.stderr)")
            #expect(good.stdout.components(separatedBy: "\"startedDateTime\"").count - 1 == 3, "\(good.stdout)")
        }

        @Test("report: a file with no recording, event or access line fails and writes nothing; events alone do")
        func report() throws {
            guard let binary = gatewayBinaryOrSkip("report") else { return }
            let ws = Workspace(binary: binary, name: "report")
            defer { ws.remove() }
            try ws.write("garbage.jsonl", "garbage\n{\"kind\":\"exchange\"}\n")
            let bad = try TestProcess.run(binary, ["report", ws.path("garbage.jsonl"), "--out", ws.path("bad.html")])
            #expect(bad.status == 1, "\(bad.stdout)\(bad.stderr)")
            #expect(bad.stderr.contains("no line is a recording, an event or an access log line"), "\(bad.stderr)")
            #expect(!FileManager.default.fileExists(atPath: ws.path("bad.html")))

            try ws.write("events.jsonl", "\(Self.event)\nnot an event\n")
            let good = try TestProcess.run(binary, ["report", ws.path("events.jsonl"), "--out", ws.path("ok.html")])
            #expect(good.status == 0, "\(good.stderr)")
            #expect(good.stderr.contains("1 line (line 2) was skipped"), "\(good.stderr)")
            #expect(FileManager.default.fileExists(atPath: ws.path("ok.html")))
        }

        @Test(
            "serve and check print several errors alike: one prefixed headline, then each error at a line's start",
            arguments: ["serve", "check"])
        func errorList(command: String) throws {
            guard let binary = gatewayBinaryOrSkip("\(command) errors") else { return }
            let ws = Workspace(binary: binary, name: "errors")
            defer { ws.remove() }
            try ws.write("bad.yaml", "tenant:\n  name: acme\n  tier: platinum\nfrobnicate: true\n")
            let file = ws.path("bad.yaml")
            let out = try TestProcess.run(
                binary, command == "serve" ? ["serve", "--config", file] : ["check", file], timeout: 20)
            #expect(out.status == 2, "\(out.stdout)\(out.stderr)")
            let lines = out.stderr.split(separator: "\n")
            #expect(lines.count >= 3, "\(out.stderr)")
            #expect(lines.first?.hasPrefix("myorg-gateway: \(command): \(file): ") == true, "\(out.stderr)")
            #expect(lines.first?.hasSuffix(" (\(lines.count - 1) errors)") == true, "\(out.stderr)")
            for line in lines.dropFirst() {
                #expect(line.hasPrefix("\(file):"), "an error line that does not start with the file: \(line)")
            }
            #expect(lines.contains { $0.hasPrefix("\(file):3:") && $0.contains("tenant.tier") }, "\(out.stderr)")
            #expect(lines.contains { $0.hasPrefix("\(file):4:") && $0.contains("frobnicate") }, "\(out.stderr)")
        }
    }
}
