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
    }
}
