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
            let workdir = TestProcess.temporaryDirectory("demo-connections")
            defer { try? FileManager.default.removeItem(at: workdir) }
            let demo = try BackgroundProcess(
                binary, ["demo", "--workdir", workdir.path, "--port", "0"], logName: "demo-connections")
            defer { demo.stop(signal: SIGINT) }
            guard eventually(timeout: 30, { demo.log.contains("Press Ctrl-C to stop.") }) else {
                Issue.record("the demo did not come up: \(demo.log)")
                return
            }
            // The ports are in the configuration the demo wrote: the canonical listener first, then the admin's.
            let yaml = try String(contentsOfFile: workdir.appendingPathComponent("gateway.yaml").path, encoding: .utf8)
            func port(after marker: String) -> String? {
                guard let range = yaml.range(of: marker) else { return nil }
                return String(yaml[range.upperBound...].prefix { $0.isNumber })
            }
            let canonical = try #require(port(after: "- address: 127.0.0.1:"))
            let admin = try #require(port(after: "admin: { address: 127.0.0.1:"))
            let token = try #require(
                demo.log.split(separator: "\n").first { $0.hasPrefix("export READ_TOKEN=") }?
                    .dropFirst("export READ_TOKEN=".count))
            /// Every protocol's `myorg_gateway_connections_total`, summed (0 before the first series exists).
            func connections() throws -> Double {
                let scrape = try curlStatus(["http://127.0.0.1:\(admin)/metrics"])
                #expect(scrape.status == 200)
                return scrape.body.split(separator: "\n")
                    .filter { $0.hasPrefix("myorg_gateway_connections_total{") }
                    .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
                    .reduce(0, +)
            }
            let before = try connections()
            for _ in 0..<3 { _ = try connections() }
            #expect(try curlStatus(["http://127.0.0.1:\(admin)/healthz"]).status == 200)
            #expect(try connections() == before, "admin scrapes and probes were counted as client connections")
            // One client connection; behind it the gateway opens one to the emulated tenant, which is no client.
            let answer = try curlStatus([
                "--cacert", workdir.appendingPathComponent("ca.pem").path, "--resolve",
                "acme.emulated.local:\(canonical):127.0.0.1", "https://acme.emulated.local:\(canonical)/my-org/details",
                "-H", "Authorization: Bearer \(token)",
            ])
            #expect(answer.status == 200, "\(answer.body)")
            #expect(try connections() == before + 1, "only the client's connection is counted")
        }
    }
}
