import Foundation
import TestSupport
import Testing

extension GatewayIntegration {
    /// The embedded default: `demo --self-check` starts the emulated tenant and the gateway, then runs its five
    /// printed curl examples through a shell and checks each promised outcome.
    @Suite("demo --self-check")
    struct DemoCommandTests {
        @Test("the five printed examples all pass against the emulated tenant, within a bounded time")
        func selfCheck() throws {
            guard let binary = gatewayBinaryOrSkip("demo self-check") else { return }
            let workdir = TestProcess.temporaryDirectory("demo")
            defer { try? FileManager.default.removeItem(at: workdir) }
            let start = Date()
            let out = try TestProcess.run(
                binary, ["demo", "--workdir", workdir.path, "--port", "0", "--self-check"], timeout: 60)
            let ms = elapsedMs(since: start)
            print("demo --self-check took \(ms) ms")
            #expect(out.status == 0, "demo exited \(out.status): \(out.stderr)\n\(out.stdout.suffix(2000))")
            let lines = out.stdout.split(separator: "\n")
            #expect(lines.filter { $0.hasPrefix("self-check OK: ") }.count == 5, "\(out.stdout.suffix(2000))")
            #expect(!out.stdout.contains("self-check FAILED"))
            // What the banner promises exists on disk.
            for file in ["ca.pem", "gateway.pem", "gateway.yaml", "jwks.json"] {
                #expect(FileManager.default.fileExists(atPath: workdir.appendingPathComponent(file).path), "\(file)")
            }
            #expect(ms < 60_000)
        }

        @Test(
            "connections_total counts the gateway's clients only: not admin scrapes or probes, not the emulator's connections"
        )
        func connectionsCountClientsOnly() throws {
            guard let binary = gatewayBinaryOrSkip("demo connection counts") else { return }
            let demo = try RunningDemo(binary: binary, name: "demo-connections")
            defer { demo.stop() }
            /// Every protocol's `myorg_gateway_connections_total`, summed (0 before the first series exists).
            func connections() throws -> Double {
                let scrape = try curlStatus(["http://127.0.0.1:\(demo.adminPort)/metrics"])
                #expect(scrape.status == 200)
                return scrape.body.split(separator: "\n")
                    .filter { $0.hasPrefix("myorg_gateway_connections_total{") }
                    .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
                    .reduce(0, +)
            }
            let before = try connections()
            for _ in 0..<3 { _ = try connections() }
            #expect(try curlStatus(["http://127.0.0.1:\(demo.adminPort)/healthz"]).status == 200)
            #expect(try connections() == before, "admin scrapes and probes were counted as client connections")
            // One client connection; behind it the gateway opens one to the emulated tenant, which is no client.
            let answer = try demo.viaGateway("/my-org/details", token: demo.readToken)
            #expect(answer.status == 200, "\(answer.body)")
            #expect(try connections() == before + 1, "only the client's connection is counted")
        }

        @Test("the emulated tenant's discovery names the custom domain asked on, directly and through the gateway")
        func customDomainDiscovery() throws {
            guard let binary = gatewayBinaryOrSkip("demo custom-domain discovery") else { return }
            let demo = try RunningDemo(binary: binary, name: "demo-discovery")
            defer { demo.stop() }
            let path = "/.well-known/openid-configuration"
            func issuer(_ answer: (status: Int, body: String)) throws -> String? {
                #expect(answer.status == 200, "\(answer.body)")
                let json = try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any]
                #expect(
                    json?["jwks_uri"] as? String == (json?["issuer"] as? String).map { $0 + ".well-known/jwks.json" })
                return json?["issuer"] as? String
            }
            let direct = try curlStatus(["-H", "Host: login.acme.test", "http://\(demo.emulator)\(path)"])
            #expect(try issuer(direct) == "https://login.acme.test/")
            let proxied = try demo.viaGateway(path, token: nil, domain: "login.acme.test")
            #expect(try issuer(proxied) == "https://login.acme.test/")
            let canonical = try curlStatus(["-H", "Host: acme.emulated.local", "http://\(demo.emulator)\(path)"])
            #expect(try issuer(canonical) == "https://acme.emulated.local/")
        }

        @Test("a client-credentials token: the emulated tenant refuses it as the gateway does, same status and body")
        func clientCredentialsRefusedAlike() throws {
            guard let binary = gatewayBinaryOrSkip("demo client credentials") else { return }
            let demo = try RunningDemo(binary: binary, name: "demo-m2m")
            defer { demo.stop() }
            let m2m = try demo.token(["--sub", "demo-admin-app@clients", "--client", "demo-admin-app"])
            let direct = try curlStatus([
                "http://\(demo.emulator)/my-org/details", "-H", "Authorization: Bearer \(m2m)",
            ])
            let proxied = try demo.viaGateway("/my-org/details", token: m2m)
            #expect(direct.status == 403, "\(direct.body)")
            #expect(direct.body.contains("A0E-403-0001"), "\(direct.body)")
            #expect(proxied.status == direct.status)
            #expect(proxied.body == direct.body)
            // A user's token with the same scope passes both.
            #expect(
                try curlStatus([
                    "http://\(demo.emulator)/my-org/details", "-H", "Authorization: Bearer \(demo.readToken)",
                ]).status == 200)
        }
    }
}

/// `myorg-gateway demo` running in the background (not `--self-check`), with what its banner and configuration say.
final class RunningDemo: @unchecked Sendable {
    // Safety: set in init, read afterwards by the one test that owns it.
    let binary: String
    let workdir: URL
    let process: BackgroundProcess
    let canonicalPort: String
    let customPort: String
    let adminPort: String
    /// The emulated tenant's `host:port`.
    let emulator: String
    let readToken: String

    init(binary: String, name: String) throws {
        self.binary = binary
        workdir = TestProcess.temporaryDirectory(name)
        let process = try BackgroundProcess(
            binary, ["demo", "--workdir", workdir.path, "--port", "0"], logName: name)
        self.process = process
        guard eventually(timeout: 30, { process.log.contains("Press Ctrl-C to stop.") }) else {
            let log = process.log
            process.stop(signal: SIGKILL)
            throw HarnessError("the demo did not come up: \(log)")
        }
        let log = process.log
        // The ports are in the configuration the demo wrote: the canonical listener, the custom one, the admin's.
        let yaml = try String(contentsOfFile: workdir.appendingPathComponent("gateway.yaml").path, encoding: .utf8)
        func value(after marker: String, in text: String, from: String.Index? = nil) -> (String, String.Index)? {
            guard let range = text.range(of: marker, range: (from ?? text.startIndex)..<text.endIndex) else {
                return nil
            }
            let rest = text[range.upperBound...]
            let value = rest.prefix { !$0.isWhitespace && $0 != "/" }
            return (String(value.prefix { $0 != "}" }), range.upperBound)
        }
        guard let canonical = value(after: "- address: 127.0.0.1:", in: yaml),
            let custom = value(after: "- address: 127.0.0.1:", in: yaml, from: canonical.1),
            let admin = value(after: "admin: { address: 127.0.0.1:", in: yaml),
            let emulator = value(after: "emulated tenant            http://", in: log),
            let token = value(after: "export READ_TOKEN=", in: log)
        else { throw HarnessError("unexpected demo output: \(log)\n\(yaml)") }
        (canonicalPort, customPort, adminPort) = (canonical.0, custom.0, admin.0)
        self.emulator = emulator.0
        readToken = token.0
    }

    /// A request through the gateway's TLS listener of `domain` (the canonical one by default).
    func viaGateway(
        _ path: String, token: String?, domain: String = "acme.emulated.local", extra: [String] = []
    ) throws -> (status: Int, body: String) {
        let port = domain == "acme.emulated.local" ? canonicalPort : customPort
        return try curlStatus(
            [
                "--cacert", workdir.appendingPathComponent("ca.pem").path, "--resolve", "\(domain):\(port):127.0.0.1",
                "https://\(domain):\(port)\(path)",
            ] + (token.map { ["-H", "Authorization: Bearer \($0)"] } ?? []) + extra)
    }

    /// `myorg-gateway token` with the demo's signing key and `arguments`.
    func token(_ arguments: [String]) throws -> String {
        let out = try TestProcess.run(
            binary, ["token", "--key", workdir.appendingPathComponent("signing-key.pem").path] + arguments)
        let token = out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard out.status == 0, token.split(separator: ".").count == 3 else {
            throw HarnessError("token failed (\(out.status)): \(out.stderr)")
        }
        return token
    }

    func stop() {
        process.stop(signal: SIGINT)
        try? FileManager.default.removeItem(at: workdir)
    }
}
