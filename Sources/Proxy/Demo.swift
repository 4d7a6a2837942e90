import EventLoop
import Foundation
import GatewayCore
import Glibc
import Logging
import TLS
import TenantEmulator
import Tokens

/// `myorg-gateway demo`: an emulated tenant and the gateway in front of it on loopback, with a development
/// certificate, the demo policy, two ready tokens and copy-paste requests that show each rule at work.
enum Demo {
    static let canonical = "acme.emulated.local"
    static let custom = "login.acme.test"
    static let readScopes =
        "read:my_org:details read:my_org:configuration read:my_org:identity_providers read:my_org:domains"

    struct Example {
        var title: String
        var command: String
        /// What the self-check expects to find in curl's output (status line or body text).
        var expect: [String]
    }

    static func run(workdir: String?, port: Int, selfCheck: Bool) -> Int32 {
        let signals = SignalWaiter([SIGTERM, SIGINT])
        GatewayLogging.bootstrap(level: selfCheck ? .warning : .info)
        let dir = workdir ?? FileManager.default.temporaryDirectory.appendingPathComponent("myorg-gateway-demo").path
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let key = try DevelopmentKeys.loadOrCreate(path: "\(dir)/signing-key.pem")
            try Data(key.jwksJSON().utf8).write(to: URL(fileURLWithPath: "\(dir)/jwks.json"))
            let ca = try DevelopmentCertificateAuthority(commonName: "myorg-gateway demo CA")
            let bundle = try ca.issue(dnsNames: [canonical, custom, "localhost"])
            try bundle.write(
                certificatePath: "\(dir)/gateway.pem", privateKeyPath: "\(dir)/gateway.key",
                caCertificatePath: "\(dir)/ca.pem")
            let emulator = try EmulatorServer.start(
                address: NetAddress("127.0.0.1:0")!, canonicalDomain: canonical, customDomains: [custom], key: key)
            let free = port == 0 ? freePorts(3) : []
            let ports = port == 0 ? (free[0], free[1]) : (port, port + 1)
            let adminPort = port == 0 ? free[2] : port + 2
            let configPath = "\(dir)/gateway.yaml"
            try Data(configYAML(emulatorPort: emulator.address.port, ports: ports, adminPort: adminPort).utf8)
                .write(to: URL(fileURLWithPath: configPath))
            let service = try GatewayService(configPath: configPath, logger: Logger(label: "myorg-gateway.demo"))
            let bound = try service.start(loops: 2)
            let (canonicalPort, customPort) = (bound[0].port, bound[1].port)
            let org = EmulatedTenant.seedOrganizationID
            let now = SystemClock().nowSeconds()
            let readToken = try DevelopmentKeys.mint(
                key: key, org: org, scope: readScopes, client: "demo-readonly-app", ttl: 600, domain: canonical,
                amr: nil, subject: "auth0|demo-reader", now: now)
            let allScopes = service.config.endpoints.knownScopes.sorted().joined(separator: " ")
            let adminToken = try DevelopmentKeys.mint(
                key: key, org: org, scope: allScopes, client: "demo-admin-app", ttl: 600, domain: canonical,
                amr: ["pwd", "mfa"], subject: "auth0|demo-admin", now: now)
            _ = waitUntilReady(service)
            let examples = self.examples(dir: dir, canonicalPort: canonicalPort, customPort: customPort)
            printOut(
                banner(
                    dir: dir, canonicalPort: canonicalPort, customPort: customPort, emulator: emulator.address,
                    readToken: readToken, adminToken: adminToken, examples: examples))
            if selfCheck {
                let ok = runSelfCheck(examples, readToken: readToken, adminToken: adminToken)
                service.shutdown()
                emulator.stop()
                return ok ? 0 : 1
            }
            printOut("Press Ctrl-C to stop.\n")
            _ = signals.next()
            printOut("\nstopping…\n")
            service.shutdown()
            emulator.stop()
            return 0
        } catch {
            printError("myorg-gateway demo: \(error)")
            return 1
        }
    }

    /// `count` distinct ports the kernel reports free right now (bound to 0 and released). The probes stay open
    /// until all are taken: one released before the next bind could be handed out again, and two listeners of
    /// the demo would then ask for the same port.
    static func freePorts(_ count: Int) -> [Int] {
        var probes: [Int32] = []
        defer { probes.forEach { close($0) } }
        return (0..<count).map { _ in
            guard let fd = try? TCP.listen(on: NetAddress("127.0.0.1:0")!) else { return 0 }
            probes.append(fd)
            return Int(TCP.localPort(of: fd))
        }
    }

    static func waitUntilReady(_ service: GatewayService) -> Bool {
        for _ in 0..<100 {
            if service.isReady.ready { return true }
            usleep(50_000)
        }
        return false
    }

    static func configYAML(emulatorPort: UInt16, ports: (Int, Int), adminPort: Int) -> String {
        """
        # Generated by `myorg-gateway demo`: the demo tenant, its two domains, two clients and the free tier.
        tenant:
          name: acme-demo
          canonical_domain: \(canonical)
          custom_domains: [\(custom)]
          tier: free
          jwks: { file: jwks.json }
        listeners:
          - address: 127.0.0.1:\(ports.0)
            domain: \(canonical)
            tls: { certificates: [{ cert: gateway.pem, key: gateway.key }], alpn: [h2, http/1.1] }
          - address: 127.0.0.1:\(ports.1)
            domain: \(custom)
            tls: { certificates: [{ cert: gateway.pem, key: gateway.key }], alpn: [h2, http/1.1] }
        upstream:
          \(canonical): { url: "http://127.0.0.1:\(emulatorPort)" }
          \(custom): { url: "http://127.0.0.1:\(emulatorPort)" }
        access: { user_flows: require_client_grant, client_credentials: deny_all }
        clients:
          - client_id: demo-admin-app
            name: Demo admin app
            allowed_origins: [https://app.acme.test, "https://*.acme.test"]
            grant_scopes: [\(allScopesList())]
            my_organization_configuration: { allowed_strategies: [okta, samlp, oidc, waad, google-apps], connection_deletion_behavior: allow_if_empty }
          - client_id: demo-readonly-app
            name: Demo read-only app
            allowed_origins: [https://readonly.acme.test]
            grant_scopes: [\(readScopes.split(separator: " ").joined(separator: ", "))]
            my_organization_configuration: { allowed_strategies: [okta], connection_deletion_behavior: allow_if_empty }
        step_up: { scopes: [delete:my_org:identity_providers], amr: mfa }
        cors: { max_age_s: 600 }
        rate_limits: { store: local, burst_s: 1.0 }
        logging:
          sinks: [ { file: { path: events.jsonl, fsync: interval } } ]
          access_log: false
          level: warning
        recording: { enabled: true, path: recording.jsonl, sample_rate: 1.0, max_body_bytes: 65536 }
        admin: { address: 127.0.0.1:\(adminPort) }

        """
    }

    static func allScopesList() -> String {
        Policy.EndpointTable.embedded.knownScopes.sorted().joined(separator: ", ")
    }

    static func examples(dir: String, canonicalPort: UInt16, customPort: UInt16) -> [Example] {
        let base = "https://\(canonical):\(canonicalPort)"
        let curl = "curl -sS -i --cacert \(dir)/ca.pem --resolve \(canonical):\(canonicalPort):127.0.0.1"
        return [
            Example(
                title: "A success: the read-only admin reads the organization's details (200)",
                command: "\(curl) \(base)/my-org/details -H \"Authorization: Bearer $READ_TOKEN\"",
                expect: ["HTTP/2 200", "\"id\":\"\(EmulatedTenant.seedOrganizationID)\""]),
            Example(
                title: "A scope refusal: the read-only token cannot update the details (403 insufficient_scope)",
                command:
                    "\(curl) -X PATCH \(base)/my-org/details -H \"Authorization: Bearer $READ_TOKEN\" -H 'Content-Type: application/json' --data '{\"display_name\":\"Renamed\"}'",
                expect: ["HTTP/2 403", "insufficient_scope", "update:my_org:details"]),
            Example(
                title:
                    "A domain mismatch: a token for \(canonical) used on the custom domain \(custom) (401, names both)",
                command:
                    "curl -sS -i --cacert \(dir)/ca.pem --resolve \(custom):\(customPort):127.0.0.1 https://\(custom):\(customPort)/my-org/details -H \"Authorization: Bearer $READ_TOKEN\"",
                expect: ["HTTP/2 401", canonical, custom]),
            Example(
                title: "A CORS preflight from an allowed origin, answered by the gateway (204)",
                command:
                    "\(curl) -X OPTIONS \(base)/my-org/details -H 'Origin: https://app.acme.test' -H 'Access-Control-Request-Method: GET' -H 'Access-Control-Request-Headers: authorization'",
                expect: ["HTTP/2 204", "access-control-allow-origin: https://app.acme.test"]),
            Example(
                title: "A 429: the free tier allows 4 reads per second, tenant-wide and per organization",
                command:
                    "for i in $(seq 1 12); do curl -sS -o /dev/null -w '%{http_code} ' --cacert \(dir)/ca.pem --resolve \(canonical):\(canonicalPort):127.0.0.1 \(base)/my-org/details -H \"Authorization: Bearer $ADMIN_TOKEN\"; done; echo",
                expect: ["429"]),
        ]
    }

    static func banner(
        dir: String, canonicalPort: UInt16, customPort: UInt16, emulator: NetAddress, readToken: String,
        adminToken: String, examples: [Example]
    ) -> String {
        var text = """

            myorg-gateway demo is running (files in \(dir))

              gateway, canonical domain  https://\(canonical):\(canonicalPort)/my-org/
              gateway, custom domain     https://\(custom):\(customPort)/my-org/
              emulated tenant            http://\(emulator)/my-org/  (organization \(EmulatedTenant.seedOrganizationID))
              CA certificate             \(dir)/ca.pem
              event log                  \(dir)/events.jsonl
              traffic recording          \(dir)/recording.jsonl  (redacted; try `myorg-gateway report` on it)

            Development tokens (signed by a local key; never valid for a real tenant):

            export READ_TOKEN=\(readToken)
            export ADMIN_TOKEN=\(adminToken)


            """
        for (index, example) in examples.enumerated() {
            text += "\(index + 1). \(example.title)\n\n    \(example.command)\n\n"
        }
        return text
    }

    /// Runs every example through a real shell and curl and checks the promised outcome.
    static func runSelfCheck(_ examples: [Example], readToken: String, adminToken: String) -> Bool {
        var ok = true
        for example in examples {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", example.command]
            process.environment = ["READ_TOKEN": readToken, "ADMIN_TOKEN": adminToken, "PATH": "/usr/bin:/bin"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            do {
                try process.run()
            } catch {
                printOut("self-check: cannot run sh: \(error)\n")
                return false
            }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            let output = String(decoding: data, as: UTF8.self).lowercased()
            let missing = example.expect.filter { !output.contains($0.lowercased()) }
            if missing.isEmpty {
                printOut("self-check OK: \(example.title)\n")
            } else {
                ok = false
                printOut("self-check FAILED: \(example.title): missing \(missing)\n--- output ---\n\(output)\n")
            }
        }
        return ok
    }
}

import Policy
