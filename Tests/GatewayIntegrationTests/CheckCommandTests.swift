import Foundation
import TLS
import TestSupport
import Testing

extension GatewayIntegration {
    /// `myorg-gateway check FILE` on the shipped example: exit 0 when everything it names exists, exit 2 with
    /// `file:line:col: key: message` lines otherwise.
    @Suite("check")
    struct CheckCommandTests {
        /// The example copied into a fresh directory, with a certificate at the paths it names.
        struct ExampleCopy {
            let workspace: Workspace
            let file: String
            let text: String

            init(binary: String) throws {
                workspace = Workspace(binary: binary, name: "check")
                let example = TestProcess.repositoryRoot.appendingPathComponent("policies/tenant.example.yaml")
                // With its TLS listener and edge-mode custom domain: the certificate and the secret to check.
                guard let text = ExampleConfig.withTLSAndEdge(try String(contentsOf: example, encoding: .utf8)) else {
                    throw HarnessError("policies/tenant.example.yaml lost its commented TLS or edge-mode lines")
                }
                self.text = text
                try FileManager.default.createDirectory(
                    atPath: workspace.path("certs"), withIntermediateDirectories: true)
                try workspace.certificate("certs/login", dnsNames: ["login.acme.com"])
                file = workspace.path("tenant.yaml")
                try workspace.write("tenant.yaml", text)
            }

            /// Runs `check` on `name` with CNAME_API_KEY set (or not) in its environment.
            func check(_ name: String = "tenant.yaml", cnameKey: String? = "integration-edge-key") throws
                -> TestProcess.Output
            {
                var arguments = ["-u", "CNAME_API_KEY"]
                if let cnameKey { arguments = ["CNAME_API_KEY=\(cnameKey)"] }
                return try TestProcess.run(
                    "/usr/bin/env", arguments + [workspace.binary, "check", workspace.path(name)], timeout: 20)
            }
        }

        @Test(
            "serve refuses a --loops the event loops cannot take: a usage error, exit 64",
            arguments: ["0", "-1", "5000"])
        func invalidLoops(loops: String) throws {
            guard let binary = gatewayBinaryOrSkip("serve --loops") else { return }
            let out = try TestProcess.run(binary, ["serve", "--config", "unused.yaml", "--loops=\(loops)"])
            #expect(out.status == 64, "\(out.stdout)\(out.stderr)")
            #expect(out.stderr.contains("--loops: expected 1 to 1024"), "\(out.stderr)")
        }

        @Test("serve refuses a --loop-threads other than auto, per-cpu or overcommit: a usage error, exit 64")
        func invalidLoopThreads() throws {
            guard let binary = gatewayBinaryOrSkip("serve --loop-threads") else { return }
            let out = try TestProcess.run(
                binary, ["serve", "--config", "unused.yaml", "--loop-threads", "perCPU"])
            #expect(out.status == 64, "\(out.stdout)\(out.stderr)")
            #expect(out.stderr.contains("'auto', 'per-cpu' or 'overcommit'"), "\(out.stderr)")
        }

        @Test("the example as shipped passes check where it is, with no certificate and no variable set")
        func shippedExamplePasses() throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let example = TestProcess.repositoryRoot.appendingPathComponent("policies/tenant.example.yaml").path
            let out = try TestProcess.run("/usr/bin/env", ["-i", binary, "check", example], timeout: 20)
            #expect(out.status == 0, "\(out.stdout)\(out.stderr)")
            #expect(out.stdout.contains("OK"), "\(out.stdout)")
        }

        @Test("the example with its certificate and CNAME_API_KEY set passes")
        func examplePasses() throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            let out = try copy.check()
            #expect(out.status == 0, "\(out.stderr)")
            #expect(out.stdout.contains("OK"))
            #expect(out.stderr.isEmpty, "\(out.stderr)")
        }

        @Test("a missing environment variable is named with the line of the key that names it")
        func missingEnvironment() throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            let out = try copy.check(cnameKey: nil)
            #expect(out.status == 2)
            let line = try #require(lineNumber(of: "cname_api_key: { env: CNAME_API_KEY }", in: copy.text))
            #expect(out.stderr.contains("tenant.yaml:\(line):"), "\(out.stderr)")
            #expect(out.stderr.contains("CNAME_API_KEY"))
        }

        @Test("an unknown key, a bad tier and an inline secret: exit 2, each error with file:line and key path")
        func brokenCopy() throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            let inlineSecret = "inline-edge-secret-7f3a"
            var broken = copy.text
            broken = broken.replacingOccurrences(of: "tier: public_enterprise ", with: "tier: platinum ")
            broken = broken.replacingOccurrences(
                of: "forward_unknown_endpoints: false", with: "forward_unknown_endpoints: false\nfrobnicate: true")
            broken = broken.replacingOccurrences(
                of: "cname_api_key: { env: CNAME_API_KEY }", with: "cname_api_key: \"\(inlineSecret)\"")
            try #require(broken != copy.text)
            try copy.workspace.write("broken.yaml", broken)
            let out = try copy.check("broken.yaml")
            #expect(out.status == 2, "\(out.stdout)\(out.stderr)")
            let errors = out.stderr.split(separator: "\n").map(String.init)
            let expected: [(needle: String, key: String)] = [
                ("frobnicate: true", "frobnicate"),
                ("tier: platinum", "tenant.tier"),
                ("cname_api_key: \"\(inlineSecret)\"", "upstream[\"login.acme.com\"].cname_api_key"),
            ]
            for (needle, key) in expected {
                let line = try #require(lineNumber(of: needle, in: broken), "\(needle)")
                let match = errors.first { $0.contains("broken.yaml:\(line):") }
                #expect(match != nil, "no error at broken.yaml:\(line) (\(key)) in:\n\(out.stderr)")
                if let match {
                    #expect(match.contains("\(key):"), "\(match)")
                    #expect(match.hasPrefix(copy.workspace.path("broken.yaml") + ":\(line):"), "\(match)")
                }
            }
            #expect(!out.stderr.contains(inlineSecret), "check must not echo an inline secret")
            #expect(!out.stdout.contains(inlineSecret))
        }

        @Test("unusable JWKS file or certificate key: exit 2 from check and serve, each error with file:line and key")
        func unusableFileContents() throws {
            guard let binary = gatewayBinaryOrSkip("check file contents") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            try copy.workspace.certificate("certs/other", dnsNames: ["other.acme.com"])
            try copy.workspace.write("broken-jwks.json", "{\"keys\": [")
            try copy.workspace.write("empty-jwks.json", "{\"keys\": []}")
            let jwksLine = try #require(copy.text.split(separator: "\n").first { $0.contains("jwks: { url:") })
            let mismatch = copy.text.replacingOccurrences(of: "key: certs/login.key", with: "key: certs/other.key")
            let cases: [(file: String, text: String, needle: String, key: String, message: String)] = [
                (
                    "broken.yaml",
                    copy.text.replacingOccurrences(of: jwksLine, with: "  jwks: { file: broken-jwks.json }"),
                    "broken-jwks.json", "tenant.jwks.file", "not valid JSON"
                ),
                (
                    "empty.yaml",
                    copy.text.replacingOccurrences(of: jwksLine, with: "  jwks: { file: empty-jwks.json }"),
                    "empty-jwks.json", "tenant.jwks.file", "no usable RSA key"
                ),
                ("mismatch.yaml", mismatch, "certs/other.key", "listeners[0].tls.certificates[0].cert", "do not match"),
            ]
            for item in cases {
                try #require(item.text != copy.text, "\(item.file)")
                try copy.workspace.write(item.file, item.text)
                let line = try #require(lineNumber(of: item.needle, in: item.text), "\(item.file)")
                let checked = try copy.check(item.file)
                let served = try TestProcess.run(
                    "/usr/bin/env",
                    [
                        "CNAME_API_KEY=integration-edge-key", binary, "serve", "--config",
                        copy.workspace.path(item.file),
                    ],
                    timeout: 20)
                for (command, out) in [("check", checked), ("serve", served)] {
                    #expect(out.status == 2, "\(command) \(item.file): \(out.stderr)")
                    let located = out.stderr.split(separator: "\n").first {
                        $0.hasPrefix(copy.workspace.path(item.file) + ":\(line):")
                    }
                    #expect(located?.contains("\(item.key):") == true, "\(command) \(item.file): \(out.stderr)")
                    #expect(located?.contains(item.message) == true, "\(command) \(item.file): \(out.stderr)")
                }
            }
        }

        @Test("rate-limiter refusals (simulate_tier above the tier, burst_s out of range) carry file:line:col: key")
        func rateLimiterRefusals() throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            let original = "rate_limits: { store: local, burst_s: 1.0 }"
            try #require(copy.text.contains(original))
            let broken = copy.text.replacingOccurrences(
                of: original, with: "rate_limits:\n  simulate_tier: private_performance\n  burst_s: 0\n")
            try copy.workspace.write("broken.yaml", broken)
            let out = try copy.check("broken.yaml")
            #expect(out.status == 2, "\(out.stdout)\(out.stderr)")
            let file = copy.workspace.path("broken.yaml")
            let errors = out.stderr.split(separator: "\n").map(String.init)
            for (needle, key, message) in [
                (
                    "simulate_tier: private_performance", "rate_limits.simulate_tier",
                    "allows more than the tenant's tier"
                ),
                ("burst_s: 0", "rate_limits.burst_s", "out of range"),
            ] {
                let line = try #require(lineNumber(of: needle, in: broken), "\(needle)")
                let match = errors.first { $0.contains(message) }
                #expect(match != nil, "no '\(message)' in:\n\(out.stderr)")
                guard let match else { continue }
                // `file:line:col: key.path: message`, the column a number.
                let prefix = "\(file):\(line):"
                #expect(match.hasPrefix(prefix), "\(match)")
                let rest = match.dropFirst(prefix.count)
                let column = rest.prefix { $0.isNumber }
                #expect(!column.isEmpty && rest.dropFirst(column.count).hasPrefix(": \(key): "), "\(match)")
            }
        }

        @Test("serve refuses an invalid configuration: exit 2, the error with file:line and key, nothing bound")
        func serveRefusesInvalidConfig() throws {
            guard let binary = gatewayBinaryOrSkip("serve invalid config") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            let port = TestProcess.freePort()
            let broken = copy.text.replacingOccurrences(of: "tier: public_enterprise ", with: "tier: platinum ")
                .replacingOccurrences(of: "127.0.0.1:8080", with: "127.0.0.1:\(port)")
            try copy.workspace.write("broken.yaml", broken)
            let out = try TestProcess.run(
                "/usr/bin/env",
                [
                    "CNAME_API_KEY=integration-edge-key", binary, "serve", "--config",
                    copy.workspace.path("broken.yaml"),
                ],
                timeout: 20)
            #expect(out.status == 2, "\(out.stdout)\(out.stderr)")
            let line = try #require(lineNumber(of: "tier: platinum", in: broken))
            #expect(out.stderr.contains("broken.yaml:\(line):"), "\(out.stderr)")
            #expect(out.stderr.contains("tenant.tier"), "\(out.stderr)")
            #expect(RawConnection.isRefused(port: port), "nothing may listen after a refused start")
        }

        @Test("a file sink path that is a directory and a spool directory that is a file: exit 2, each at its line")
        func unwritableDestinations() throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            try FileManager.default.createDirectory(
                atPath: copy.workspace.path("events.jsonl"), withIntermediateDirectories: true)
            try copy.workspace.write(".myorg-gateway-spool", "not a directory")
            let out = try copy.check()
            #expect(out.status == 2, "\(out.stdout)\(out.stderr)")
            let sinkLine = try #require(lineNumber(of: "file: { path: events.jsonl", in: copy.text))
            let spoolLine = try #require(lineNumber(of: "spool: {", in: copy.text))
            #expect(out.stderr.contains("tenant.yaml:\(sinkLine):"), "\(out.stderr)")
            #expect(out.stderr.contains("logging.sinks[1].file.path"), "\(out.stderr)")
            #expect(out.stderr.contains("is a directory"), "\(out.stderr)")
            #expect(out.stderr.contains("tenant.yaml:\(spoolLine):"), "\(out.stderr)")
            #expect(out.stderr.contains("logging.spool.directory"), "\(out.stderr)")
        }

        @Test("a configuration directory mounted read-only: the default spool beside it cannot be made, exit 2")
        func readOnlyConfigurationDirectory() throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            // The example's sinks and recording write beside the file; a deploy recipe's do not.
            let text = copy.text.replacingOccurrences(of: "path: events.jsonl", with: "path: /tmp/events-ro-test.jsonl")
            try copy.workspace.write("tenant.yaml", text)
            let dir = copy.workspace.path("")
            // A read-only bind mount in a mount namespace of its own, as Kubernetes and systemd mount the file.
            let script =
                "mount --bind \(dir) \(dir) && mount -o remount,bind,ro \(dir) && "
                + "CNAME_API_KEY=k \(binary) check \(copy.file)"
            let out = try TestProcess.run("/usr/bin/unshare", ["-m", "/bin/sh", "-c", script], timeout: 20)
            #expect(out.status == 2, "\(out.stdout)\(out.stderr)")
            #expect(out.stderr.contains("logging.spool.directory"), "\(out.stderr)")
            #expect(out.stderr.contains("is not writable"), "\(out.stderr)")
            // Writable, the same file passes.
            #expect(try copy.check().status == 0)
        }

        @Test("a webhook secret from the environment or a file with CR or LF: exit 2 at its line, the value unshown")
        func webhookSecretWithControlCharacter() throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            try copy.workspace.write("hook-key", "key-line-one\nX-Injected: yes\n")
            let text = copy.text.replacingOccurrences(
                of: "    - stdout: {}\n",
                with:
                    "    - stdout: {}\n    - webhook: { url: https://logs.example.com/in, authorization: { env: HOOK_AUTH },"
                    + " headers: { X-Api-Key: { file: hook-key } } }\n")
            try #require(text != copy.text)
            try copy.workspace.write("hook.yaml", text)
            let out = try TestProcess.run(
                "/usr/bin/env",
                [
                    "CNAME_API_KEY=k", "HOOK_AUTH=Bearer SECRETVALUE1\r\nX-Evil: 1", binary, "check",
                    copy.workspace.path("hook.yaml"),
                ], timeout: 20)
            #expect(out.status == 2, "\(out.stdout)\(out.stderr)")
            let line = try #require(lineNumber(of: "- webhook:", in: text))
            let errors = out.stderr.split(separator: "\n").filter {
                $0.hasPrefix(copy.workspace.path("hook.yaml") + ":\(line):")
            }
            #expect(errors.contains { $0.contains("webhook authorization holds a control character") }, "\(out.stderr)")
            #expect(
                errors.contains { $0.contains("webhook header X-Api-Key holds a control character") }, "\(out.stderr)")
            #expect(!out.stderr.contains("SECRETVALUE1") && !out.stderr.contains("key-line-one"))
        }

        @Test("an error inside tiers_file is given as that file's file:line:col: key, like the main file's")
        func tierTableErrorLocated() throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            let shipped = TestProcess.repositoryRoot.appendingPathComponent("policies/tiers.yaml")
            let tiers = try String(contentsOf: shipped, encoding: .utf8)
            let broken = tiers.replacingOccurrences(of: "tenant: { read: 4,", with: "tenant: { read: -5,")
            try #require(broken != tiers, "policies/tiers.yaml lost its free tier's line")
            try copy.workspace.write("tiers.yaml", broken)
            let text = copy.text.replacingOccurrences(of: "  tier: ", with: "  tiers_file: tiers.yaml\n  tier: ")
            try #require(text != copy.text)
            try copy.workspace.write("with-tiers.yaml", text)
            let out = try copy.check("with-tiers.yaml")
            #expect(out.status == 2, "\(out.stdout)\(out.stderr)")
            let line = try #require(lineNumber(of: "read: -5", in: broken))
            #expect(
                out.stderr.split(separator: "\n").contains {
                    $0.hasPrefix(copy.workspace.path("tiers.yaml") + ":\(line):")
                },
                "\(out.stderr)")
        }

        @Test("check lists every problem: a missing variable does not hide a certificate whose key does not match")
        func everyProblemListed() throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            try copy.workspace.certificate("certs/other", dnsNames: ["other.acme.com"])
            let mismatch = copy.text.replacingOccurrences(of: "key: certs/login.key", with: "key: certs/other.key")
            try copy.workspace.write("both.yaml", mismatch)
            let out = try copy.check("both.yaml", cnameKey: nil)
            #expect(out.status == 2, "\(out.stdout)\(out.stderr)")
            #expect(out.stderr.contains("CNAME_API_KEY"), "\(out.stderr)")
            #expect(out.stderr.contains("do not match"), "\(out.stderr)")
        }

        @Test("a certificate that does not cover its listener's domain: exit 2 at the certificate's line")
        func certificateNotCoveringTheDomain() throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            try copy.workspace.certificate("certs/login", dnsNames: ["other.example"])
            let out = try copy.check()
            #expect(out.status == 2, "\(out.stdout)\(out.stderr)")
            let line = try #require(lineNumber(of: "certificates: [{ cert: certs/login.pem", in: copy.text))
            #expect(out.stderr.contains("tenant.yaml:\(line):"), "\(out.stderr)")
            #expect(
                out.stderr.contains("no certificate of this listener covers its domain login.acme.com"), "\(out.stderr)"
            )
        }

        @Test("a cname_api_key holding a control character: exit 2 at its line, the value never shown")
        func cnameKeyWithControlCharacter() throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            let out = try copy.check(cnameKey: "edge-SECRET\r\nX-Injected: 1")
            #expect(out.status == 2, "\(out.stdout)\(out.stderr)")
            let line = try #require(lineNumber(of: "cname_api_key: { env: CNAME_API_KEY }", in: copy.text))
            #expect(out.stderr.contains("tenant.yaml:\(line):"), "\(out.stderr)")
            #expect(out.stderr.contains("control character"), "\(out.stderr)")
            #expect(!out.stderr.contains("SECRET") && !out.stdout.contains("SECRET"))
        }

        @Test(
            "a cname_api_key file that holds nothing (or only line ends): exit 2 from check at its line, as from serve",
            arguments: ["", "\n", "\r\n"])
        func emptyCnameKeyFile(content: String) throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            try copy.workspace.write("edge.key", content)
            let text = copy.text.replacingOccurrences(
                of: "cname_api_key: { env: CNAME_API_KEY }", with: "cname_api_key: { file: edge.key }")
            try copy.workspace.write("file-key.yaml", text)
            let out = try copy.check("file-key.yaml")
            #expect(out.status == 2, "\(out.stdout)\(out.stderr)")
            let line = try #require(lineNumber(of: "cname_api_key: { file: edge.key }", in: text))
            #expect(out.stderr.contains("file-key.yaml:\(line):"), "\(out.stderr)")
            #expect(out.stderr.contains("is empty"), "\(out.stderr)")
            // And with a key in it, the same file passes.
            try copy.workspace.write("edge.key", "integration-edge-key\n")
            let good = try copy.check("file-key.yaml")
            #expect(good.status == 0, "\(good.stdout)\(good.stderr)")
        }

        @Test("an expired certificate: check passes with a warning at the certificate's line")
        func expiredCertificateWarns() throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            let expired = try DevelopmentCertificateAuthority(commonName: "expired CA")
                .issue(dnsNames: ["login.acme.com"], validityDays: -1)
            try expired.write(
                certificatePath: copy.workspace.path("certs/login.pem"),
                privateKeyPath: copy.workspace.path("certs/login.key"),
                caCertificatePath: copy.workspace.path("certs/login-ca.pem"))
            let out = try copy.check()
            #expect(out.status == 0, "\(out.stdout)\(out.stderr)")
            let line = try #require(lineNumber(of: "certificates: [{ cert: certs/login.pem", in: copy.text))
            #expect(out.stderr.contains("warning: "), "\(out.stderr)")
            #expect(out.stderr.contains("tenant.yaml:\(line):"), "\(out.stderr)")
            #expect(out.stderr.contains("the certificate has expired"), "\(out.stderr)")
        }

        @Test("a missing certificate file: exit 2 naming the file and the key")
        func missingCertificate() throws {
            guard let binary = gatewayBinaryOrSkip("check") else { return }
            let copy = try ExampleCopy(binary: binary)
            defer { copy.workspace.remove() }
            try FileManager.default.removeItem(atPath: copy.workspace.path("certs/login.pem"))
            let out = try copy.check()
            #expect(out.status == 2)
            let line = try #require(lineNumber(of: "certificates: [{ cert: certs/login.pem", in: copy.text))
            let error = out.stderr.split(separator: "\n").first { $0.contains("login.pem") }
            #expect(error != nil, "\(out.stderr)")
            if let error {
                #expect(error.contains(copy.workspace.path("certs/login.pem")), "\(error)")
                #expect(error.contains("tenant.yaml:\(line):"), "\(error)")
                #expect(error.contains("listeners[0].tls.certificates[0].cert"), "\(error)")
            }
        }
    }
}

/// The 1-based line of the first line containing `needle`.
func lineNumber(of needle: String, in text: String) -> Int? {
    text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains(needle) }.map { $0 + 1 }
}
