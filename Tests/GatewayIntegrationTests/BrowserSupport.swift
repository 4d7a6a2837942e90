import Foundation
import TestSupport

/// What the browser tests need on the machine; `missing` names what is not there, for the skip note.
enum BrowserTools {
    static let chromium = TestProcess.which("chromium")
    static let python = TestProcess.which("python3")
    static let openssl = TestProcess.which("openssl")

    static var missing: [String] {
        var names: [String] = []
        if chromium == nil { names.append("chromium (apt-get install -y chromium)") }
        if python == nil { names.append("python3") }
        if openssl == nil { names.append("openssl") }
        if TestProcess.gatewayBinary() == nil { names.append("myorg-gateway (swift build --product myorg-gateway)") }
        return names
    }

    static var available: Bool { missing.isEmpty }

    /// Prints why a browser test does not run; the caller returns early.
    static func skipNote(_ test: String) -> Bool {
        guard !available else { return false }
        print("note: \(test) skipped: missing \(missing.joined(separator: ", "))")
        return true
    }

    static let fixtures = TestProcess.repositoryRoot.appendingPathComponent(
        "Tests/GatewayIntegrationTests/Fixtures/browser")
}

/// One headless Chromium per call, with a throw-away profile.
///
/// `--no-sandbox` because tests run as root; `--disable-gpu` because there is none. Hosts are mapped to loopback
/// with `--host-resolver-rules`, and TLS errors are ignored only for the listed SPKI hashes (the test's own leaf
/// certificate), so every other certificate is still checked.
struct Chromium {
    struct Run {
        var status: Int32
        var stdout: String
        /// Lines Chromium tags `CONSOLE` on stderr: console calls, uncaught exceptions, CSP and mixed-content
        /// reports of the page.
        var console: [String]
        /// Stderr without the launcher's and D-Bus's noise, for failure messages.
        var diagnostics: String
    }

    var hosts: [String] = []
    var trustedSPKI: [String] = []
    /// For example `--disable-http2`, to reach the gateway's HTTP/1.1 server instead of HTTP/2.
    var extraArguments: [String] = []

    func dumpDOM(_ url: String, budgetMs: Int = 5000) throws -> Run {
        try run(["--virtual-time-budget=\(budgetMs)", "--dump-dom", url])
    }

    func screenshot(_ url: String, to file: URL, width: Int = 1280, height: Int = 2000) throws -> Run {
        try run([
            "--virtual-time-budget=2000", "--hide-scrollbars", "--force-device-scale-factor=1",
            "--window-size=\(width),\(height)", "--screenshot=\(file.path)", url,
        ])
    }

    private func run(_ extra: [String]) throws -> Run {
        guard let binary = BrowserTools.chromium else { throw BrowserTestError("chromium is not installed") }
        let profile = TestProcess.temporaryDirectory("chromium-profile")
        defer { try? FileManager.default.removeItem(at: profile) }
        var arguments = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(profile.path)",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", "--enable-logging=stderr", "--v=0",
        ]
        if !hosts.isEmpty {
            arguments.append(
                "--host-resolver-rules=" + hosts.map { "MAP \($0) 127.0.0.1" }.joined(separator: ", "))
        }
        if !trustedSPKI.isEmpty {
            arguments.append("--ignore-certificate-errors-spki-list=" + trustedSPKI.joined(separator: ","))
        }
        let output = try TestProcess.run(binary, arguments + extraArguments + extra, timeout: 45)
        let lines = output.stderr.split(separator: "\n").map(String.init)
        return Run(
            status: output.status, stdout: output.stdout,
            console: lines.filter { $0.contains(":CONSOLE") },
            diagnostics: lines.filter { !$0.contains("dbus") && !$0.contains("D-Bus") }.suffix(20)
                .joined(separator: "\n"))
    }
}

struct BrowserTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A tenant emulator, the gateway in front of it with a CORS configuration that names the test page's exact
/// origins (scheme, host AND port), and an HTTPS static server for the page, all on loopback.
///
/// One certificate, signed by a CA made here with the openssl CLI, serves the gateway and the page for every
/// host name the tests use; Chromium trusts exactly that key by its SPKI hash.
final class BrowserGatewayEnvironment {
    static let gatewayHost = "acme.emulated.local"
    /// The emulator's seeded organization.
    static let organizationID = "org_Emu1AcmeSeed0001"
    /// `demo-admin-app` allows `https://app.acme.test:PAGE` and `https://*.apps.acme.test:PAGE` (so
    /// `team1.apps.acme.test`, not `a.b.apps.acme.test`); `demo-readonly-app` allows
    /// `https://readonly.acme.test:PAGE`; nobody allows `evil.example`.
    static let pageHosts = [
        "app.acme.test", "readonly.acme.test", "evil.example", "team1.apps.acme.test", "a.b.apps.acme.test",
    ]
    static let adminScopes = "read:my_org:details update:my_org:details"

    let directory: URL
    let site: URL
    let gatewayPort: UInt16
    let pagePort: UInt16
    let spki: String
    private var processes: [BackgroundProcess] = []
    private(set) var gateway: BackgroundProcess?

    var eventsFile: URL { directory.appendingPathComponent("events.jsonl") }
    var gatewayURL: String { "https://\(Self.gatewayHost):\(gatewayPort)" }

    var chromium: Chromium { Chromium(hosts: [Self.gatewayHost] + Self.pageHosts, trustedSPKI: [spki]) }

    func pageURL(host: String, page: String = "cors.html") -> String { "https://\(host):\(pagePort)/\(page)" }

    init() throws {
        guard let gatewayBinary = TestProcess.gatewayBinary(), let python = BrowserTools.python else {
            throw BrowserTestError("the gateway binary or python3 is missing")
        }
        directory = TestProcess.temporaryDirectory("browser-env")
        site = directory.appendingPathComponent("site")
        try FileManager.default.createDirectory(at: site, withIntermediateDirectories: true)
        for name in ["cors.html", "cors.js"] {
            try FileManager.default.copyItem(
                at: BrowserTools.fixtures.appendingPathComponent(name), to: site.appendingPathComponent(name))
        }
        try Self.makeCertificates(in: directory)
        spki = try Self.spkiHash(of: directory.appendingPathComponent("leaf.pem"))

        let key = directory.appendingPathComponent("signing-key.pem").path
        let jwks = try TestProcess.run(gatewayBinary, ["token", "--key", key, "--print-jwks"])
        guard jwks.status == 0 else { throw BrowserTestError("token --print-jwks failed: \(jwks.stderr)") }
        try Data(jwks.stdout.utf8).write(to: directory.appendingPathComponent("jwks.json"))

        let emulatorPort = TestProcess.freePort()
        gatewayPort = TestProcess.freePort()
        pagePort = TestProcess.freePort()
        let adminPort = TestProcess.freePort()
        try Data(
            Self.configYAML(
                emulatorPort: emulatorPort, gatewayPort: gatewayPort, pagePort: pagePort, adminPort: adminPort
            )
            .utf8
        ).write(to: directory.appendingPathComponent("gateway.yaml"))

        processes.append(
            try BackgroundProcess(
                gatewayBinary,
                ["emulate", "--listen", "127.0.0.1:\(emulatorPort)", "--domain", Self.gatewayHost, "--key", key],
                logName: "emulator"))
        let gateway = try BackgroundProcess(
            gatewayBinary, ["serve", "--config", directory.appendingPathComponent("gateway.yaml").path],
            logName: "gateway")
        self.gateway = gateway
        processes.append(gateway)
        processes.append(
            try BackgroundProcess(
                python,
                [
                    BrowserTools.fixtures.appendingPathComponent("https_static.py").path, String(pagePort), site.path,
                    directory.appendingPathComponent("leaf.pem").path,
                    directory.appendingPathComponent("leaf.key").path,
                ], logName: "page-server"))
        for (name, port) in [("emulator", emulatorPort), ("gateway", gatewayPort), ("page server", pagePort)] {
            guard TestProcess.waitForPort(port, timeout: 20) else {
                stop()
                throw BrowserTestError("the \(name) did not listen on \(port)")
            }
        }
    }

    deinit { stop() }

    func stop() {
        for process in processes.reversed() { process.stop() }
        processes = []
    }

    /// Stops the gateway alone (SIGTERM drains it and flushes its event sinks).
    func stopGateway() { gateway?.stop() }

    func removeFiles() { try? FileManager.default.removeItem(at: directory) }

    /// A development token for the emulated tenant, signed by this environment's key.
    func token(client: String, scope: String = BrowserGatewayEnvironment.adminScopes) throws -> String {
        guard let gatewayBinary = TestProcess.gatewayBinary() else { throw BrowserTestError("no gateway binary") }
        let output = try TestProcess.run(
            gatewayBinary,
            [
                "token", "--key", directory.appendingPathComponent("signing-key.pem").path, "--client", client,
                "--scope", scope, "--domain", Self.gatewayHost, "--org", Self.organizationID,
            ])
        let token = output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard output.status == 0, !token.isEmpty else { throw BrowserTestError("token failed: \(output.stderr)") }
        return token
    }

    /// What the next page load runs: `cors.js` reads these globals from `config.js`, which `--dump-dom` does not
    /// print, so the token never reaches a test's output.
    func preparePage(scenario: String, token: String) throws {
        let script = """
            window.GATEWAY = \(Self.jsString(gatewayURL));
            window.TOKEN = \(Self.jsString(token));
            window.SCENARIO = \(Self.jsString(scenario));

            """
        try Data(script.utf8).write(to: site.appendingPathComponent("config.js"))
    }

    /// Loads the page on `host` and returns the JSON the page wrote into `#result`.
    func runPage(host: String, http1: Bool = false) throws -> PageResult {
        var chromium = self.chromium
        if http1 { chromium.extraArguments.append("--disable-http2") }
        let run = try chromium.dumpDOM(pageURL(host: host))
        guard run.status == 0 else {
            throw BrowserTestError("chromium exited \(run.status):\n\(run.diagnostics)")
        }
        return try PageResult(dom: run.stdout)
    }

    /// The gateway's access log (JSON lines on its stdout), as objects.
    func accessLog() -> [[String: Any]] {
        Self.jsonLines(gateway?.log ?? "").filter { $0["kind"] as? String == "access" }
    }

    /// The event log, waiting up to `timeout` seconds for at least `count` events (the file sink flushes on an
    /// interval).
    func events(atLeast count: Int, timeout: Double = 10) -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(timeout)
        var events: [[String: Any]] = []
        repeat {
            let text = (try? String(contentsOf: eventsFile, encoding: .utf8)) ?? ""
            events = Self.jsonLines(text).filter { $0["log_id"] != nil }
            if events.count >= count { break }
            usleep(100_000)
        } while Date() < deadline
        return events
    }

    static func jsonLines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("{") else { return nil }
            return (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    static func jsString(_ value: String) -> String {
        let data = try? JSONSerialization.data(withJSONObject: [value], options: [.fragmentsAllowed])
        let array = data.map { String(decoding: $0, as: UTF8.self) } ?? "[\"\"]"
        return String(array.dropFirst().dropLast())
    }

    static func configYAML(emulatorPort: UInt16, gatewayPort: UInt16, pagePort: UInt16, adminPort: UInt16) -> String {
        // Allowed origins carry the page's port: an origin is scheme, host and port, and the page cannot be on 443
        // without colliding with whatever else runs on this machine.
        """
        tenant:
          name: acme-browser
          canonical_domain: \(gatewayHost)
          tier: free
          jwks: { file: jwks.json }
        listeners:
          - address: 127.0.0.1:\(gatewayPort)
            domain: \(gatewayHost)
            tls: { certificates: [{ cert: leaf.pem, key: leaf.key }], alpn: [h2, http/1.1] }
        upstream:
          \(gatewayHost): { url: "http://127.0.0.1:\(emulatorPort)" }
        access: { user_flows: require_client_grant, client_credentials: deny_all }
        clients:
          - client_id: demo-admin-app
            name: Browser test admin app
            allowed_origins: ["https://app.acme.test:\(pagePort)", "https://*.apps.acme.test:\(pagePort)"]
            grant_scopes: [read:my_org:details, update:my_org:details]
            my_organization_configuration: { allowed_strategies: [okta], connection_deletion_behavior: allow_if_empty }
          - client_id: demo-readonly-app
            name: Browser test read-only app
            allowed_origins: ["https://readonly.acme.test:\(pagePort)"]
            grant_scopes: [read:my_org:details]
            my_organization_configuration: { allowed_strategies: [okta], connection_deletion_behavior: allow_if_empty }
        cors: { max_age_s: 600 }
        rate_limits: { store: local, burst_s: 1.0 }
        logging:
          sinks: [ { file: { path: events.jsonl, fsync: interval } } ]
          access_log: true
          level: warning
        admin: { address: 127.0.0.1:\(adminPort) }

        """
    }

    /// A CA and one leaf for every host name the tests use, with the openssl CLI (P-256, two days).
    static func makeCertificates(in directory: URL) throws {
        guard let openssl = BrowserTools.openssl else { throw BrowserTestError("openssl is missing") }
        let names = ([gatewayHost] + pageHosts + ["localhost"]).map { "DNS:\($0)" }.joined(separator: ",")
        let extensions = directory.appendingPathComponent("leaf.ext")
        try Data(
            "subjectAltName=\(names)\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n".utf8
        ).write(to: extensions)
        let path = { (name: String) in directory.appendingPathComponent(name).path }
        let steps: [[String]] = [
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                path("ca.key"), "-out", path("ca.pem"), "-days", "2", "-subj", "/CN=myorg-gateway browser test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path("leaf.key"),
                "-out", path("leaf.csr"), "-subj", "/CN=\(gatewayHost)",
            ],
            [
                "x509", "-req", "-in", path("leaf.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                "-CAcreateserial", "-days", "2", "-extfile", extensions.path, "-out", path("leaf.pem"),
            ],
        ]
        for step in steps {
            let output = try TestProcess.run(openssl, step)
            guard output.status == 0 else { throw BrowserTestError("openssl \(step[0]) failed: \(output.stderr)") }
        }
    }

    /// base64(SHA-256(SubjectPublicKeyInfo DER)): the form `--ignore-certificate-errors-spki-list` takes.
    static func spkiHash(of certificate: URL) throws -> String {
        guard let openssl = BrowserTools.openssl else { throw BrowserTestError("openssl is missing") }
        let directory = certificate.deletingLastPathComponent()
        let publicKey = directory.appendingPathComponent("leaf-public.pem").path
        let der = directory.appendingPathComponent("leaf-spki.der").path
        let digest = directory.appendingPathComponent("leaf-spki.sha256").path
        for step in [
            ["x509", "-in", certificate.path, "-pubkey", "-noout", "-out", publicKey],
            ["pkey", "-pubin", "-in", publicKey, "-outform", "DER", "-out", der],
            ["dgst", "-sha256", "-binary", "-out", digest, der],
        ] {
            let output = try TestProcess.run(openssl, step)
            guard output.status == 0 else { throw BrowserTestError("openssl \(step[0]) failed: \(output.stderr)") }
        }
        let hash = try Data(contentsOf: URL(fileURLWithPath: digest))
        guard hash.count == 32 else { throw BrowserTestError("SPKI digest has \(hash.count) bytes") }
        return hash.base64EncodedString()
    }
}

/// What `cors.js` wrote into `#result`: one step per fetch.
struct PageResult: CustomStringConvertible {
    struct Step {
        var ok: Bool
        var status: Int?
        var error: String?
        var id: String?
        var displayName: String?
        /// The error body's `type`, when the answer was a refusal in the tenant's error shape.
        var errorType: String?
        var limit: String?
        var remaining: String?
        var retryAfter: String?
        var vary: String?
    }

    var origin: String
    var steps: [Step]
    /// The JSON as the page wrote it (no token in it), for failure messages.
    var description: String

    init(dom: String) throws {
        guard let start = dom.range(of: "<pre id=\"result\">"),
            let end = dom.range(of: "</pre>", range: start.upperBound..<dom.endIndex)
        else { throw BrowserTestError("no #result in the page:\n\(dom.prefix(2000))") }
        // Text in a <pre> is serialised with &, < and > escaped, nothing else.
        let text = String(dom[start.upperBound..<end.lowerBound])
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&amp;", with: "&")
        description = text
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            throw BrowserTestError("the page did not finish: #result is \(text.prefix(300))")
        }
        guard let steps = object["steps"] as? [[String: Any]] else {
            throw BrowserTestError("the page failed: \(text.prefix(500))")
        }
        origin = object["origin"] as? String ?? ""
        self.steps = steps.map { step in
            Step(
                ok: step["ok"] as? Bool ?? false, status: step["status"] as? Int, error: step["error"] as? String,
                id: step["id"] as? String, displayName: step["displayName"] as? String,
                errorType: step["errorType"] as? String,
                limit: step["limit"] as? String, remaining: step["remaining"] as? String,
                retryAfter: step["retryAfter"] as? String, vary: step["vary"] as? String)
        }
    }
}

/// What `png_stats.py` measures in a screenshot.
struct ScreenshotStats {
    var width: Int
    var height: Int
    var colours: Int
    var paintedFraction: Double

    init(png: URL) throws {
        guard let python = BrowserTools.python else { throw BrowserTestError("python3 is missing") }
        let output = try TestProcess.run(
            python, [BrowserTools.fixtures.appendingPathComponent("png_stats.py").path, png.path], timeout: 60)
        guard output.status == 0,
            let object = (try? JSONSerialization.jsonObject(with: Data(output.stdout.utf8))) as? [String: Any],
            let width = object["width"] as? Int, let height = object["height"] as? Int,
            let colours = object["colours"] as? Int, let painted = object["painted_fraction"] as? Double
        else { throw BrowserTestError("png_stats.py failed: \(output.stdout) \(output.stderr)") }
        self.width = width
        self.height = height
        self.colours = colours
        self.paintedFraction = painted
    }
}
