import Foundation
import TLS
import TestSupport
import Testing

/// The integration suites run one after another: each starts real processes, and the load tests would skew the
/// timing-sensitive ones (the demo's 429 example, the drain window) if they shared the two cores.
@Suite("Gateway binary, end to end", .serialized, .timeLimit(.minutes(2)))
struct GatewayIntegration {}

/// The built gateway, or nil with a printed note: CI builds it before `swift test`, a bare `swift test` may not.
func gatewayBinaryOrSkip(_ test: String) -> String? {
    guard let path = TestProcess.gatewayBinary() else {
        print("note: \(test) skipped: .build/*/myorg-gateway is missing (run `swift build --product myorg-gateway`)")
        return nil
    }
    return path
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Milliseconds since `start`, for the timings the suites print.
func elapsedMs(since start: Date) -> Int { Int(Date().timeIntervalSince(start) * 1000) }

/// Polls `condition` every `intervalMs` until it holds or `timeout` seconds passed; returns whether it held.
func eventually(timeout: Double, intervalMs: UInt32 = 50, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    repeat {
        if try condition() { return true }
        usleep(intervalMs * 1000)
    } while Date() < deadline
    return try condition()
}

/// One test's temporary directory: certificates, signing keys, configuration files, and tokens minted by the
/// binary's own `token` command (so the tokens are exactly what a user of the CLI gets).
final class Workspace: @unchecked Sendable {
    // Safety: one test uses one workspace from its own task; nothing here is mutated after init.
    let dir: URL
    let binary: String

    init(binary: String, name: String) {
        self.binary = binary
        dir = TestProcess.temporaryDirectory(name)
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// Writes through a rename, so a process reading the file (the upstream's JWKS, a reload) never sees half.
    func write(_ name: String, _ text: String) throws {
        let temporary = path(".\(name).\(UUID().uuidString)")
        try text.write(toFile: temporary, atomically: false, encoding: .utf8)
        guard rename(temporary, path(name)) == 0 else { throw HarnessError("cannot rename into \(name)") }
    }

    /// Creates the signing key `name`.pem (through `token --print-jwks`) and returns its public JWKS.
    func signingKey(_ name: String) throws -> String {
        let out = try TestProcess.run(binary, ["token", "--key", path("\(name).pem"), "--print-jwks"])
        guard out.status == 0, out.stdout.contains("\"keys\"") else {
            throw HarnessError("token --print-jwks failed (\(out.status)): \(out.stderr)")
        }
        return out.stdout
    }

    /// A development token for `domain`, signed by the key `key`.pem.
    func token(
        key: String, domain: String, client: String, scope: String, org: String = "org_IntegAcme0001"
    ) throws -> String {
        let out = try TestProcess.run(
            binary,
            [
                "token", "--key", path("\(key).pem"), "--domain", domain, "--org", org, "--scope", scope,
                "--client", client, "--ttl", "600",
            ])
        let token = out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard out.status == 0, token.split(separator: ".").count == 3 else {
            throw HarnessError("token failed (\(out.status)): \(out.stderr)")
        }
        return token
    }

    /// A fresh CA and a leaf for `dnsNames` (and 127.0.0.1) written as `name`.pem, `name`.key and `name`-ca.pem.
    @discardableResult
    func certificate(_ name: String, dnsNames: [String]) throws -> (cert: String, key: String, ca: String) {
        let ca = try DevelopmentCertificateAuthority(commonName: "integration CA \(name)")
        let bundle = try ca.issue(dnsNames: dnsNames)
        let paths = (path("\(name).pem"), path("\(name).key"), path("\(name)-ca.pem"))
        try bundle.write(certificatePath: paths.0, privateKeyPath: paths.1, caCertificatePath: paths.2)
        return paths
    }

    func remove() { try? FileManager.default.removeItem(at: dir) }
}

/// `Fixtures/upstream.py`: a loopback HTTP/1.1 (or HTTPS) upstream that records every raw request and can serve a
/// JWKS file it re-reads on each request.
final class UpstreamServer: @unchecked Sendable {
    // Safety: set in init, read afterwards by the one test that owns it.
    let port: UInt16
    let recordFile: URL
    let process: BackgroundProcess

    static let script = TestProcess.repositoryRoot.appendingPathComponent(
        "Tests/GatewayIntegrationTests/Fixtures/upstream.py")

    init(
        workspace: Workspace, port: UInt16 = TestProcess.freePort(), tls: (cert: String, key: String)? = nil,
        jwksFile: String? = nil
    ) throws {
        self.port = port
        recordFile = workspace.dir.appendingPathComponent("upstream-\(port).bin")
        _ = FileManager.default.createFile(atPath: recordFile.path, contents: nil)
        var arguments = ["python3", UpstreamServer.script.path, String(port), recordFile.path]
        if let tls { arguments += ["--tls", tls.cert, tls.key] }
        if let jwksFile { arguments += ["--jwks", jwksFile] }
        process = try BackgroundProcess("/usr/bin/env", arguments, logName: "upstream")
        guard TestProcess.waitForPort(port, timeout: 10) else {
            process.stop(signal: SIGKILL)
            throw HarnessError("the upstream did not listen on \(port): \(process.log)")
        }
    }

    /// The raw requests received so far, in order.
    func requests() -> [String] {
        guard let data = try? Data(contentsOf: recordFile) else { return [] }
        let bytes = [UInt8](data)
        var out: [String] = []
        var i = 0
        while i + 4 <= bytes.count {
            let n = Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            out.append(String(decoding: bytes[(i + 4)..<min(bytes.count, i + 4 + n)], as: UTF8.self))
            i += 4 + n
        }
        return out
    }

    func stop() { process.stop(signal: SIGTERM, timeout: 5) }
}

/// `myorg-gateway serve --config FILE --loops 2`, started and waited for until every named port accepts.
final class GatewayServer: @unchecked Sendable {
    // Safety: set in init, read afterwards by the one test that owns it.
    let process: BackgroundProcess
    let adminPort: UInt16

    init(
        binary: String, config: String, adminPort: UInt16, ports: [UInt16], environment: [String: String] = [:],
        loops: Int = 2
    ) throws {
        self.adminPort = adminPort
        process = try BackgroundProcess(
            binary, ["serve", "--config", config, "--loops", "\(loops)"], environment: environment, logName: "gateway")
        for port in [adminPort] + ports where !TestProcess.waitForPort(port, timeout: 15) {
            let log = process.log
            process.stop(signal: SIGKILL)
            throw HarnessError("the gateway did not listen on \(port); its log:\n\(log)")
        }
    }

    var pid: Int32 { process.pid }

    /// GET or POST on the admin listener: status and body.
    func admin(_ path: String, method: String = "GET") throws -> (status: Int, body: String) {
        try curlStatus(["-X", method, "http://127.0.0.1:\(adminPort)\(path)"])
    }

    /// Waits for `/readyz` to answer 200.
    func waitReady(timeout: Double = 10) throws -> Bool {
        try eventually(timeout: timeout) { try admin("/readyz").status == 200 }
    }

    /// Stops it with `signal` and returns its exit code (128 + n for a signal), whoever reaped it.
    func stop(signal: Int32 = SIGTERM, timeout: Double = 15) -> Int32 {
        exitCode(process.stop(signal: signal, timeout: timeout), of: process)
    }
}

/// The exit code of a child that has exited: BackgroundProcess reports -1 when Foundation's own reaper got there
/// first, and Foundation then holds the status.
func exitCode(_ status: Int32, of child: BackgroundProcess) -> Int32 {
    guard status == -1 else { return status }
    _ = eventually(timeout: 5, intervalMs: 5) { !child.process.isRunning }
    guard !child.process.isRunning else { return -1 }
    let code = child.process.terminationStatus
    return child.process.terminationReason == .exit ? code : 128 + code
}

/// curl with a bounded time; returns its status code and body (or throws when curl itself fails).
func curlStatus(_ arguments: [String], timeout: Double = 15) throws -> (status: Int, body: String) {
    let out = try TestProcess.run(
        "/usr/bin/curl", ["-sS", "--max-time", "10", "-w", "\n%{http_code}"] + arguments, timeout: timeout)
    guard out.status == 0 else { throw HarnessError("curl \(arguments.last ?? "") failed: \(out.stderr)") }
    var body = out.stdout
    guard let newline = body.lastIndex(of: "\n"), let status = Int(body[body.index(after: newline)...]) else {
        throw HarnessError("curl printed no status: \(out.stdout)")
    }
    body.removeSubrange(newline...)
    return (status, body)
}

/// A configuration file for the test gateway, in the schema of `policies/tenant.example.yaml`.
struct GatewayConfigText {
    struct Listener {
        var port: UInt16
        /// Empty: no `domain` key, so the request's Host names the tenant domain.
        var domain: String
        /// Certificate and key paths; nil: plain HTTP/1.1 and h2c.
        var tls: (cert: String, key: String)? = nil
    }
    struct Client {
        var id: String
        var scopes: [String]
    }

    var canonical = "acme.test"
    var custom = "login.acme.test"
    var jwks: String
    var listeners: [Listener]
    /// Domain and the YAML flow mapping of its upstream entry.
    var upstreams: [(String, String)]
    var clients: [Client]
    var adminPort: UInt16
    var tiersFile: String? = nil
    var limits: [String] = []
    /// The `logging` section's lines below `logging:`, indented by two spaces.
    var logging = "  sinks: [ { file: { path: events.jsonl, fsync: never } } ]\n  access_log: false\n  level: warning\n"
    /// More top-level YAML sections, appended as written.
    var extra = ""

    var yaml: String {
        var text = """
            tenant:
              name: acme
              canonical_domain: \(canonical)
              custom_domains: [\(custom)]
              tier: private_performance

            """
        // Empty: no jwks key, so the gateway takes the canonical domain's default URL.
        if !jwks.isEmpty { text += "  jwks: \(jwks)\n" }
        if let tiersFile { text += "  tiers_file: \(tiersFile)\n" }
        text += "listeners:\n"
        for listener in listeners {
            text += "  - address: 127.0.0.1:\(listener.port)\n"
            if !listener.domain.isEmpty { text += "    domain: \(listener.domain)\n" }
            if let tls = listener.tls {
                text += "    tls: { certificates: [{ cert: \(tls.cert), key: \(tls.key) }], alpn: [h2, http/1.1] }\n"
            }
        }
        text += "upstream:\n"
        for (domain, entry) in upstreams { text += "  \(domain): \(entry)\n" }
        if !limits.isEmpty { text += "limits: { \(limits.joined(separator: ", ")) }\n" }
        text += "access: { user_flows: require_client_grant, client_credentials: deny_all }\nclients:\n"
        for client in clients {
            text += """
                  - client_id: \(client.id)
                    name: Client \(client.id)
                    allowed_origins: [https://app.acme.test]
                    grant_scopes: [\(client.scopes.joined(separator: ", "))]
                    my_organization_configuration: { allowed_strategies: [okta, samlp] }

                """
        }
        text += "logging:\n" + logging + "admin: { address: 127.0.0.1:\(adminPort) }\n"
        text += extra
        return text
    }
}

/// Tier figures high enough that load tests measure the transport, not the limiter.
let generousTiersYAML = """
    tiers:
      free: { tenant: { read: 100000, write: 100000 }, organization: { read: 100000, write: 100000 } }
      public_self_service: { tenant: { read: 100000, write: 100000 }, organization: { read: 100000, write: 100000 } }
      public_enterprise: { tenant: { read: 100000, write: 100000 }, organization: { read: 100000, write: 100000 } }
      private_basic: { tenant: { read: 100000, write: 100000 }, organization: { read: 100000, write: 100000 } }
      private_performance: { tenant: { read: 100000, write: 100000 }, organization: { read: 100000, write: 100000 } }

    """
