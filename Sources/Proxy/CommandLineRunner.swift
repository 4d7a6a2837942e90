import GatewayCore

/// The work behind each subcommand. Everything here is `nonisolated`: closures created on the main actor would
/// trap when a loop queue runs them (INTEROP.md §1).
public enum CommandLineRunner {
    static func fail(_ message: String, status: Int32 = 1) -> Int32 {
        printError("myorg-gateway: \(message)")
        return status
    }

    public nonisolated static func serve(configPath: String, loops: Int?) -> Int32 { fail("serve: not wired yet") }
    public nonisolated static func check(configPath: String) -> Int32 { fail("check: not wired yet") }
    public nonisolated static func demo(workdir: String?, port: Int, selfCheck: Bool) -> Int32 {
        fail("demo: not wired yet")
    }
    public nonisolated static func emulate(listen: String, domain: String, keyPath: String) -> Int32 {
        fail("emulate: not wired yet")
    }
    public nonisolated static func token(
        org: String, scope: String, client: String, ttl: Int, domain: String, amr: String?, subject: String,
        keyPath: String
    ) -> Int32 { fail("token: not wired yet") }
    public nonisolated static func export(recording: String, har: Bool, out: String?) -> Int32 {
        fail("export: not wired yet")
    }
    public nonisolated static func replay(
        recording: String, target: String, speed: Double, token: String?, keyPath: String?, insecure: Bool
    ) -> Int32 { fail("replay: not wired yet") }
    public nonisolated static func report(input: String, out: String) -> Int32 { fail("report: not wired yet") }
}
