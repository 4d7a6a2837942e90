import Foundation
import Testing
import TestSupport

/// Checks of the deployment recipes under `deploy/`: each file is validated by the tool its platform uses
/// (systemd-analyze, a Kubernetes JSON-schema validator, hadolint) and by structural checks of the promises the
/// pages make (non-root, read-only, secrets never inline, probes, grace periods). A test whose tool is absent
/// prints a note and returns; CI installs the tools (see deploy/README.md).
@Suite("Deploy recipes")
struct DeployRecipeTests {
    static let root = TestProcess.repositoryRoot
    static let deploy = root.appendingPathComponent("deploy")
    static let unitFile = deploy.appendingPathComponent("systemd/myorg-gateway.service")
    static let systemdConfig = deploy.appendingPathComponent("systemd/gateway.yaml")
    static let manifest = deploy.appendingPathComponent("kubernetes/sidecar.yaml")
    static let dockerfile = deploy.appendingPathComponent("container/Dockerfile")
    static let dockerignore = deploy.appendingPathComponent("container/Dockerfile.dockerignore")
    static let adminScript = deploy.appendingPathComponent("container/myorg-gateway-admin")

    // MARK: - systemd

    @Test("systemd-analyze verify accepts the unit, and reports a planted mistake")
    func systemdVerify() throws {
        guard let analyze = Tools.find("systemd-analyze") else { return Tools.skip("systemd-analyze") }
        let directory = TestProcess.temporaryDirectory("deploy-systemd")
        defer { try? FileManager.default.removeItem(at: directory) }
        let unit = try StubbedUnit(in: directory)

        let clean = try Spawn.run(analyze, ["verify", "--man=no", unit.path])
        let cleanOutput = (clean.stdout + clean.stderr).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(clean.status == 0, "\(cleanOutput)")
        #expect(cleanOutput.isEmpty, "systemd-analyze verify printed warnings:\n\(cleanOutput)")

        // The same run must notice a misspelt directive: proof that verify really read the file.
        let planted = directory.appendingPathComponent("planted/myorg-gateway.service")
        try FileManager.default.createDirectory(
            at: planted.deletingLastPathComponent(), withIntermediateDirectories: true)
        try unit.text.replacingOccurrences(of: "\n[Install]", with: "ProtectSytem=strict\n\n[Install]")
            .write(to: planted, atomically: true, encoding: .utf8)
        let broken = try Spawn.run(analyze, ["verify", "--man=no", planted.path])
        #expect((broken.stdout + broken.stderr).contains("ProtectSytem"))
    }

    @Test("systemd-analyze security rates the unit's exposure at most 2.0")
    func systemdExposure() throws {
        guard let analyze = Tools.find("systemd-analyze") else { return Tools.skip("systemd-analyze") }
        let directory = TestProcess.temporaryDirectory("deploy-systemd")
        defer { try? FileManager.default.removeItem(at: directory) }
        let unit = try StubbedUnit(in: directory)
        let result = try Spawn.run(analyze, ["security", "--offline=yes", "--threshold=20", unit.path])
        let summary = result.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") }
        guard let summary else {
            Issue.record("no exposure summary in: \(result.stdout.suffix(400)) \(result.stderr.suffix(400))")
            return
        }
        let score = summary.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }
        #expect(score != nil && score! <= 2.0, "\(summary)")
        #expect(result.status == 0, "\(summary)")
    }

    @Test("the unit's signals, timeouts, credentials and directories match its configuration")
    func systemdUnitMatchesConfig() throws {
        let unit = UnitFile(try String(contentsOf: Self.unitFile, encoding: .utf8))
        let service = unit.values("Service")
        let config = Self.withoutComments(try String(contentsOf: Self.systemdConfig, encoding: .utf8))
        let configPath = "/etc/myorg-gateway/gateway.yaml"

        #expect(service["ExecStart"] == ["/usr/local/bin/myorg-gateway serve --config \(configPath)"])
        #expect(service["ExecStartPre"] == ["/usr/local/bin/myorg-gateway check \(configPath)"])
        #expect(service["ExecReload"]?.first == "/usr/local/bin/myorg-gateway check \(configPath)")
        #expect(service["ExecReload"]?.last == "/bin/kill -HUP $MAINPID")
        #expect(service["KillSignal"] == ["SIGTERM"])
        #expect(service["CapabilityBoundingSet"] == [""])
        #expect(service["AmbientCapabilities"] == [""])
        for (key, value) in [
            ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
            ("DynamicUser", "yes"), ("MemoryDenyWriteExecute", "yes"), ("LockPersonality", "yes"),
            ("RestrictNamespaces", "yes"), ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ] {
            #expect(service[key] == [value], "\(key)")
        }
        #expect(service["SystemCallFilter"]?.first == "@system-service")

        // Stop timeout above the drain grace the configuration asks for.
        let grace = try #require(Self.integer(after: "shutdown_grace_ms:", in: config))
        let stop = try #require(service["TimeoutStopSec"]?.last.flatMap { Int($0) })
        #expect(stop * 1000 > grace + 5000, "TimeoutStopSec=\(stop) vs shutdown_grace_ms \(grace)")

        // Every credential the configuration reads is loaded by the unit, and every loaded one is read.
        let prefix = "/run/credentials/myorg-gateway.service/"
        let named = Set(Self.words(startingWith: prefix, in: config).map { String($0.dropFirst(prefix.count)) })
        let loaded = Set(
            (service["LoadCredential"] ?? []).compactMap { $0.split(separator: ":").first.map(String.init) })
        #expect(!named.isEmpty)
        #expect(named == loaded)
        for line in service["LoadCredential"] ?? [] {
            #expect(line.split(separator: ":").count == 2 && line.contains(":/etc/myorg-gateway/"), "\(line)")
        }

        // Writable paths of the configuration live in the directories systemd creates for the service.
        #expect(service["LogsDirectory"] == ["myorg-gateway"])
        #expect(service["StateDirectory"] == ["myorg-gateway"])
        for path in Self.words(startingWith: "/", in: config) where !path.hasPrefix(prefix) {
            #expect(
                path.hasPrefix("/var/log/myorg-gateway/") || path.hasPrefix("/var/lib/myorg-gateway/"),
                "\(path) is neither a credential nor in LogsDirectory/StateDirectory")
        }
        // No secret inline: the cname key is read from a file.
        #expect(config.contains("cname_api_key: { file: \(prefix)cname-api-key }"))
    }

    // MARK: - Kubernetes

    @Test("the Kubernetes manifest validates against the Kubernetes JSON schema (strict)")
    func kubernetesSchema() throws {
        guard let validator = Tools.find("kubernetes-validate") else { return Tools.skip("kubernetes-validate") }
        let result = try Spawn.run(validator, ["--strict", Self.manifest.path], timeout: 120)
        let output = result.stdout + result.stderr
        #expect(result.status == 0, "\(output)")
        #expect(!output.contains("ERROR"), "\(output)")
        // One "passed" line per document: nothing skipped as unknown.
        let passed = output.components(separatedBy: "passed for resource").count - 1
        for resource in ["configmap/myorg-gateway-config", "deployment/acme-app", "service/acme-login"] {
            #expect(output.contains("passed for resource \(resource)"), "\(output)")
        }
        #expect(passed == 3, "\(output)")
    }

    @Test("the schema validator rejects a manifest with a misspelt security field")
    func kubernetesSchemaIsStrict() throws {
        guard let validator = Tools.find("kubernetes-validate") else { return Tools.skip("kubernetes-validate") }
        let text = try String(contentsOf: Self.manifest, encoding: .utf8)
        let directory = TestProcess.temporaryDirectory("deploy-k8s")
        defer { try? FileManager.default.removeItem(at: directory) }
        let broken = directory.appendingPathComponent("broken.yaml")
        try text.replacingOccurrences(of: "readOnlyRootFilesystem", with: "readOnlyRootFileSystem")
            .write(to: broken, atomically: true, encoding: .utf8)
        let result = try Spawn.run(validator, ["--strict", broken.path], timeout: 120)
        #expect(result.status != 0)
        #expect((result.stdout + result.stderr).contains("readOnlyRootFileSystem"))
    }

    @Test("the pod runs non-root, read-only, without capabilities, with probes, secrets and a long enough grace")
    func kubernetesShape() throws {
        guard let documents = try YAMLBridge.documents(Self.manifest) else { return Tools.skip("python3 with PyYAML") }
        let deployment = try #require(documents.first { $0["kind"] as? String == "Deployment" })
        let configMap = try #require(documents.first { $0["kind"] as? String == "ConfigMap" })
        let service = try #require(documents.first { $0["kind"] as? String == "Service" })
        let template = try #require((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])
        let pod = try #require(template["spec"] as? [String: Any])
        let podSecurity = try #require(pod["securityContext"] as? [String: Any])
        #expect(podSecurity["runAsNonRoot"] as? Bool == true)
        #expect((podSecurity["seccompProfile"] as? [String: Any])?["type"] as? String == "RuntimeDefault")
        #expect(pod["automountServiceAccountToken"] as? Bool == false)

        let initContainers = pod["initContainers"] as? [[String: Any]] ?? []
        let containers = pod["containers"] as? [[String: Any]] ?? []
        #expect(!containers.isEmpty)
        for container in initContainers + containers {
            let name = container["name"] as? String ?? "?"
            let security = container["securityContext"] as? [String: Any] ?? [:]
            #expect(security["readOnlyRootFilesystem"] as? Bool == true, "\(name)")
            #expect(security["allowPrivilegeEscalation"] as? Bool == false, "\(name)")
            #expect(security["runAsNonRoot"] as? Bool == true, "\(name)")
            #expect((security["capabilities"] as? [String: Any])?["drop"] as? [String] == ["ALL"], "\(name)")
            #expect((security["seccompProfile"] as? [String: Any])?["type"] as? String == "RuntimeDefault", "\(name)")
            let resources = container["resources"] as? [String: Any] ?? [:]
            for kind in ["requests", "limits"] {
                let values = resources[kind] as? [String: Any] ?? [:]
                #expect(values["cpu"] != nil && values["memory"] != nil, "\(name) \(kind)")
            }
            // A literal value never carries a secret; secrets come from secretKeyRef.
            for variable in container["env"] as? [[String: Any]] ?? [] where variable["value"] != nil {
                let variableName = (variable["name"] as? String ?? "").uppercased()
                let secretLike = ["KEY", "SECRET", "TOKEN", "PASSWORD", "CREDENTIAL"].contains {
                    variableName.contains($0)
                }
                #expect(!secretLike, "\(name): \(variableName) has a literal value")
            }
        }

        // The gateway: a native sidecar with the image's entrypoint, probes on the admin endpoints.
        let gateway = try #require(initContainers.first { ($0["image"] as? String ?? "").contains("myorg-gateway") })
        #expect(gateway["restartPolicy"] as? String == "Always")
        let args = gateway["args"] as? [String] ?? []
        #expect(Array(args.prefix(3)) == ["serve", "--config", "/etc/myorg-gateway/gateway.yaml"])
        #expect(Self.probeCommand(gateway["livenessProbe"]).last == "/healthz")
        #expect(Self.probeCommand(gateway["readinessProbe"]).last == "/readyz")
        #expect(Self.probeCommand(gateway["livenessProbe"]).first == "/usr/local/bin/myorg-gateway-admin")

        // The configuration: from the ConfigMap, projected at /etc/myorg-gateway with the kubernetes.io/tls keys.
        let mounts = gateway["volumeMounts"] as? [[String: Any]] ?? []
        let configMount = try #require(mounts.first { $0["mountPath"] as? String == "/etc/myorg-gateway" })
        let volumes = pod["volumes"] as? [[String: Any]] ?? []
        let configVolume = try #require(volumes.first { $0["name"] as? String == configMount["name"] as? String })
        let sources = (configVolume["projected"] as? [String: Any])?["sources"] as? [[String: Any]] ?? []
        let configMapName = (configMap["metadata"] as? [String: Any])?["name"] as? String
        #expect(sources.contains { ($0["configMap"] as? [String: Any])?["name"] as? String == configMapName })
        let secretItems = sources.compactMap { ($0["secret"] as? [String: Any])?["items"] as? [[String: Any]] }
            .flatMap { $0 }
        #expect(Set(secretItems.compactMap { $0["key"] as? String }) == ["tls.crt", "tls.key"])
        let projectedPaths = Set(secretItems.compactMap { $0["path"] as? String })

        let gatewayYAML = try #require((configMap["data"] as? [String: Any])?["gateway.yaml"] as? String)
        let config = try #require(try YAMLBridge.document(gatewayYAML))
        try Self.expectRequiredKeys(config)
        let listeners = config["listeners"] as? [[String: Any]] ?? []
        let certificateFiles = listeners.flatMap {
            (($0["tls"] as? [String: Any])?["certificates"] as? [[String: Any]] ?? []).flatMap {
                [$0["cert"] as? String ?? "", $0["key"] as? String ?? ""]
            }
        }
        #expect(!certificateFiles.isEmpty)
        #expect(Set(certificateFiles).isSubset(of: projectedPaths), "\(certificateFiles) vs \(projectedPaths)")

        // The cname-api-key: named by env in the configuration, set from a Secret in the container.
        let environment = gateway["env"] as? [[String: Any]] ?? []
        let upstreams = config["upstream"] as? [String: Any] ?? [:]
        let keyVariables = upstreams.values.compactMap {
            (($0 as? [String: Any])?["cname_api_key"] as? [String: Any])?["env"] as? String
        }
        #expect(!keyVariables.isEmpty)
        for variable in keyVariables {
            let entry = environment.first { $0["name"] as? String == variable }
            #expect(
                ((entry?["valueFrom"] as? [String: Any])?["secretKeyRef"] as? [String: Any])?["name"] != nil,
                "\(variable) must come from a Secret")
        }

        // Admin: loopback in the configuration, and the probe script told the same address.
        let admin = try #require((config["admin"] as? [String: Any])?["address"] as? String)
        #expect(admin.hasPrefix("127.") || admin.hasPrefix("[::1]"))
        #expect(
            environment.contains { $0["name"] as? String == "MYORG_GATEWAY_ADMIN" && $0["value"] as? String == admin })

        // The kubelet's SIGKILL comes after the preStop pause plus the gateway's drain.
        let grace = try #require((config["limits"] as? [String: Any])?["shutdown_grace_ms"] as? Int)
        let preStop = Self.probeCommand((gateway["lifecycle"] as? [String: Any])?["preStop"])
        let pause = preStop.first == "/bin/sleep" ? Int(preStop.last ?? "") ?? 0 : 0
        let termination = try #require(pod["terminationGracePeriodSeconds"] as? Int)
        #expect(termination * 1000 > grace + pause * 1000 + 5000, "\(termination) s vs \(grace) ms + \(pause) s")

        // The Service reaches the gateway's TLS listener by port name and selects this pod.
        let serviceSpec = service["spec"] as? [String: Any] ?? [:]
        let selector = serviceSpec["selector"] as? [String: String] ?? [:]
        let labels = (template["metadata"] as? [String: Any])?["labels"] as? [String: String] ?? [:]
        #expect(!selector.isEmpty && selector.allSatisfy { labels[$0.key] == $0.value })
        let portNames = Set(
            (initContainers + containers).flatMap { ($0["ports"] as? [[String: Any]] ?? []) }
                .compactMap { $0["name"] as? String })
        for port in serviceSpec["ports"] as? [[String: Any]] ?? [] {
            #expect(portNames.contains(port["targetPort"] as? String ?? ""), "\(port)")
        }
    }

    // MARK: - The configurations against the gateway's own `check`

    @Test("the configurations in the recipes pass `myorg-gateway check`", arguments: ["kubernetes", "systemd"])
    func configurationsCheck(recipe: String) throws {
        guard let binary = TestProcess.gatewayBinary() else { return Tools.skip("the built myorg-gateway") }
        guard let openssl = Tools.find("openssl") else { return Tools.skip("openssl") }
        let directory = TestProcess.temporaryDirectory("deploy-check")
        defer { try? FileManager.default.removeItem(at: directory) }
        let etc = directory.appendingPathComponent("etc")
        let manager = FileManager.default
        try manager.createDirectory(at: etc.appendingPathComponent("tls"), withIntermediateDirectories: true)
        var text: String
        var cert: String
        var key: String
        if recipe == "kubernetes" {
            guard let documents = try YAMLBridge.documents(Self.manifest) else {
                return Tools.skip("python3 with PyYAML")
            }
            let configMap = try #require(documents.first { $0["kind"] as? String == "ConfigMap" })
            text = try #require((configMap["data"] as? [String: Any])?["gateway.yaml"] as? String)
            cert = etc.path + "/tls/tls.crt"
            key = etc.path + "/tls/tls.key"
        } else {
            text = try String(contentsOf: Self.systemdConfig, encoding: .utf8)
            let credentials = directory.appendingPathComponent("credentials")
            try manager.createDirectory(at: credentials, withIntermediateDirectories: true)
            try "test-cname-key\n".write(
                to: credentials.appendingPathComponent("cname-api-key"), atomically: true, encoding: .utf8)
            cert = etc.path + "/tls/login.pem"
            key = credentials.path + "/login.key"
            text = text.replacingOccurrences(
                of: "/run/credentials/myorg-gateway.service/", with: credentials.path + "/")
        }
        for (absolute, local) in [("/var/lib/myorg-gateway/", "lib"), ("/var/log/myorg-gateway/", "log")] {
            try manager.createDirectory(at: directory.appendingPathComponent(local), withIntermediateDirectories: true)
            text = text.replacingOccurrences(of: absolute, with: directory.path + "/\(local)/")
        }
        let made = try Spawn.run(
            openssl,
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                "-subj", "/CN=login.acme.com", "-addext", "subjectAltName=DNS:login.acme.com",
                "-keyout", key, "-out", cert,
            ])
        try #require(made.status == 0, "openssl: \(made.stderr)")
        let file = etc.appendingPathComponent("gateway.yaml")
        try text.write(to: file, atomically: true, encoding: .utf8)

        let result = try Spawn.run(
            "/usr/bin/env", ["CNAME_API_KEY=test-cname-key", binary, "check", file.path], timeout: 60)
        let output = result.stdout + result.stderr
        if output.contains("not wired") { return Tools.skip("`myorg-gateway check` (not wired yet)") }
        #expect(result.status == 0, "\(recipe): \(output)")
    }

    // MARK: - Container

    @Test("hadolint finds nothing in the Dockerfile")
    func hadolint() throws {
        guard let hadolint = Tools.find("hadolint") else { return Tools.skip("hadolint") }
        let result = try Spawn.run(hadolint, ["--no-color", Self.dockerfile.path])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(result.stdout)")
    }

    @Test("the Dockerfile: pinned bases, existing and allowed COPY sources, non-root, no secrets, the CLI contract")
    func dockerfileShape() throws {
        let file = Dockerfile(try String(contentsOf: Self.dockerfile, encoding: .utf8))
        let ignore = DockerIgnore(try String(contentsOf: Self.dockerignore, encoding: .utf8))
        #expect(file.stages.count == 2)
        let build = try #require(file.stages.first)
        let runtime = try #require(file.stages.last)
        #expect(build.image.hasPrefix("swift:6.3") && build.image.hasSuffix("-bookworm"), "\(build.image)")
        #expect(runtime.image == "debian:bookworm-slim" || runtime.image.hasPrefix("debian:bookworm-slim@"))

        var earlier: [String] = []
        for stage in file.stages {
            #expect(Dockerfile.isPinned(stage.image) || earlier.contains(stage.image), "\(stage.image) is not pinned")
            for copy in stage.instructions("COPY") {
                let words = copy.split(separator: " ").map(String.init)
                let flags = words.filter { $0.hasPrefix("--") }
                let paths = words.filter { !$0.hasPrefix("--") }
                let sources = paths.dropLast()
                #expect(!sources.isEmpty, "COPY \(copy)")
                if let from = flags.first(where: { $0.hasPrefix("--from=") }) {
                    #expect(earlier.contains(String(from.dropFirst("--from=".count))), "COPY \(copy)")
                    continue
                }
                for source in sources {
                    let onDisk = Self.root.appendingPathComponent(source).path
                    #expect(FileManager.default.fileExists(atPath: onDisk), "COPY source \(source) does not exist")
                    #expect(!ignore.excludes(source), "COPY source \(source) is excluded by the dockerignore")
                }
            }
            if let name = stage.name { earlier.append(name) }
            // Secrets are never baked in: no ENV or ARG whose name looks like one.
            for line in stage.instructions("ENV") + stage.instructions("ARG") {
                let name = String(line.prefix { $0 != "=" && $0 != " " }).uppercased()
                for word in ["KEY", "SECRET", "TOKEN", "PASSWORD", "CREDENTIAL"] {
                    #expect(!name.contains(word), "\(line)")
                }
            }
        }
        // The build stage sees only the package, the sources and the policies, and Tests/: the manifest names the
        // test targets' directories, and without them `swift package resolve` fails on the manifest.
        let buildSources = build.instructions("COPY").flatMap { $0.split(separator: " ").dropLast().map(String.init) }
        #expect(Set(buildSources) == ["Package.swift", "Sources", "policies", "Tests"])
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        #expect(manifest.contains("path: \"Tests/"), "Tests/ is copied for the manifest's sake only")

        // The runtime: non-root numeric user, only the libraries the binary links, the CLI contract.
        let user = try #require(runtime.instructions("USER").last)
        let uid = Int(user.split(separator: ":").first ?? "")
        #expect(uid == 65532, "USER \(user)")
        let installed = Set(Dockerfile.aptPackages(in: runtime.instructions("RUN")))
        #expect(
            installed == [
                "libssl3", "libnghttp2-14", "libhiredis0.14", "libcurl4", "ca-certificates", "libstdc++6", "libgcc-s1",
            ])
        #expect(runtime.instructions("ENTRYPOINT") == [#"["/usr/local/bin/myorg-gateway"]"#])
        #expect(runtime.instructions("CMD") == [#"["serve", "--config", "/etc/myorg-gateway/gateway.yaml"]"#])
        let healthcheck = try #require(runtime.instructions("HEALTHCHECK").last)
        #expect(healthcheck.contains(#"CMD ["/usr/local/bin/myorg-gateway-admin", "/healthz"]"#), "\(healthcheck)")
        #expect(runtime.instructions("COPY").contains { $0.hasSuffix(" /usr/local/bin/myorg-gateway-admin") })
        let exposed = Set(runtime.instructions("EXPOSE").flatMap { $0.split(separator: " ").map(String.init) })
        #expect(exposed == ["8443", "8080"], "the admin port is loopback-only and must not be exposed")

        // The dockerignore keeps the rest of the repository out of the context.
        for path in [
            ".build/release/myorg-gateway", ".git/config", "Tests/Benchmarks/results/x/table.txt", "README.md",
        ] {
            #expect(ignore.excludes(path), "\(path) reaches the build context")
        }
        #expect(!ignore.excludes("Tests/TestSupport/TLSPair.swift"))
        #expect(ignore.excludes("Sources/Proxy/.build/x"))
        #expect(!ignore.excludes("Sources/Proxy/Gateway.swift"))
    }

    @Test("the shared libraries a static release binary needs are the ones the runtime stage installs")
    func runtimeLibraries() throws {
        let binary = Self.root.appendingPathComponent(".build/release/myorg-gateway").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            return Tools.skip("a release build (swift build -c release --static-swift-stdlib)")
        }
        guard let readelf = Tools.find("readelf") else { return Tools.skip("readelf") }
        let result = try Spawn.run(readelf, ["-d", binary])
        let needed = result.stdout.split(separator: "\n").compactMap { line -> String? in
            guard line.contains("(NEEDED)"), let open = line.lastIndex(of: "["), let close = line.lastIndex(of: "]")
            else { return nil }
            return String(line[line.index(after: open)..<close])
        }
        if needed.contains(where: { $0.hasPrefix("libswift") || $0.hasPrefix("libFoundation") }) {
            return Tools.skip("a release build with --static-swift-stdlib (this one links the Swift runtime)")
        }
        // Debian 12 package of each soname; glibc's libraries are in every Debian image.
        let packages: [String: String] = [
            "libssl.so.3": "libssl3", "libcrypto.so.3": "libssl3", "libnghttp2.so.14": "libnghttp2-14",
            "libcurl.so.4": "libcurl4", "libstdc++.so.6": "libstdc++6", "libgcc_s.so.1": "libgcc-s1",
            "libhiredis.so.0.14": "libhiredis0.14",
        ]
        let glibc: Set = ["libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "libpthread.so.0"]
        let file = Dockerfile(try String(contentsOf: Self.dockerfile, encoding: .utf8))
        let installed = Set(Dockerfile.aptPackages(in: file.stages.last?.instructions("RUN") ?? []))
        for soname in needed where !glibc.contains(soname) {
            let package = packages[soname]
            #expect(package != nil, "\(soname): which Debian package provides it? Add it to the runtime stage")
            if let package { #expect(installed.contains(package), "\(soname) needs \(package)") }
        }
    }

    @Test("the admin probe script: 2xx passes, 503 and a closed port fail, a bad path is a usage error")
    func adminScript() throws {
        guard let python = Tools.find("python3") else { return Tools.skip("python3") }
        let directory = TestProcess.temporaryDirectory("deploy-probe")
        defer { try? FileManager.default.removeItem(at: directory) }
        let program = directory.appendingPathComponent("admin.py")
        try Self.fakeAdmin.write(to: program, atomically: true, encoding: .utf8)
        let port = TestProcess.freePort()
        let log = directory.appendingPathComponent("admin.log").path
        let server = try Spawn.start(python, [program.path, String(port)], stdout: log, stderr: log)
        defer { Spawn.stop(server) }
        try #require(TestProcess.waitForPort(port), "fake admin did not start: \(Spawn.read(log))")

        let script = Self.adminScript.path
        func probe(_ arguments: [String], address: String) throws -> Spawn.Output {
            try Spawn.run("/usr/bin/env", ["MYORG_GATEWAY_ADMIN=\(address)", script] + arguments, timeout: 15)
        }
        let address = "127.0.0.1:\(port)"
        let healthy = try probe(["/healthz"], address: address)
        #expect(healthy.status == 0, "\(healthy.stderr)")
        #expect(healthy.stdout == "alive\n")
        let defaulted = try probe([], address: address)
        #expect(defaulted.status == 0)
        let notReady = try probe(["/readyz"], address: address)
        #expect(notReady.status == 1)
        #expect(notReady.stdout == "jwks: not loaded\n")
        #expect(notReady.stderr.contains("503"))
        let reload = try probe(["/reload", "POST"], address: address)
        #expect(reload.status == 0, "\(reload.stderr)")
        #expect(reload.stdout == "POST /reload\n")
        let closed = try probe(["/healthz"], address: "127.0.0.1:\(TestProcess.freePort())")
        #expect(closed.status == 1)
        #expect(closed.stderr.contains("cannot connect"))
        #expect(try probe(["healthz"], address: address).status == 2)
        #expect(try probe(["/healthz", "DELETE"], address: address).status == 2)
    }

    /// A stand-in admin listener: /healthz 200, /readyz 503 with a reason, POST echoes; HTTP/1.1 with
    /// Content-Length and Connection: close, like the gateway's.
    static let fakeAdmin = #"""
        import http.server, sys
        class Admin(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def answer(self, status, body):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
            def do_GET(self):
                if self.path == "/healthz": self.answer(200, "alive\n")
                else: self.answer(503, "jwks: not loaded\n")
            def do_POST(self):
                self.answer(200, "POST " + self.path + "\n")
            def log_message(self, *args): pass
        http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Admin).serve_forever()
        """#

    // MARK: - Helpers

    static func integer(after key: String, in text: String) -> Int? {
        guard let range = text.range(of: key) else { return nil }
        return Int(text[range.upperBound...].drop { $0 == " " }.prefix { $0.isNumber })
    }

    /// YAML text without its comments (a `#` at the start of a line or after a space).
    static func withoutComments(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
            if line.hasPrefix("#") { return "" }
            guard let hash = line.range(of: " #") else { return line }
            return line[..<hash.lowerBound]
        }.joined(separator: "\n")
    }

    /// Whitespace-separated words of `text` (comments included) that start with `prefix`, trailing punctuation off.
    static func words(startingWith prefix: String, in text: String) -> [String] {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," || $0 == "{" || $0 == "[" })
            .filter { $0.hasPrefix(prefix) }
            .map { String($0).trimmingCharacters(in: CharacterSet(charactersIn: "}],")) }
    }

    static func probeCommand(_ probe: Any?) -> [String] {
        ((probe as? [String: Any])?["exec"] as? [String: Any])?["command"] as? [String] ?? []
    }

    /// The keys /tmp/config-schema.md (the Policy loader) requires, with their required sub-keys.
    static func expectRequiredKeys(_ config: [String: Any]) throws {
        let tenant = try #require(config["tenant"] as? [String: Any])
        for key in ["name", "canonical_domain", "tier", "jwks"] { #expect(tenant[key] != nil, "tenant.\(key)") }
        let listeners = try #require(config["listeners"] as? [[String: Any]])
        #expect(!listeners.isEmpty && listeners.allSatisfy { $0["address"] is String })
        let upstream = try #require(config["upstream"] as? [String: Any])
        #expect(!upstream.isEmpty && upstream.values.allSatisfy { ($0 as? [String: Any])?["url"] is String })
        let domains = Set([tenant["canonical_domain"] as? String ?? ""] + (tenant["custom_domains"] as? [String] ?? []))
        #expect(Set(upstream.keys).isSubset(of: domains))
        for listener in listeners {
            if let domain = listener["domain"] as? String { #expect(upstream[domain] != nil, "listener \(domain)") }
        }
        // Secrets by reference only.
        for value in upstream.values {
            if let key = (value as? [String: Any])?["cname_api_key"] {
                let reference = key as? [String: Any] ?? [:]
                #expect(reference.count == 1 && (reference["env"] is String || reference["file"] is String))
            }
        }
    }
}

/// Runs programs with posix_spawn and reaps them with waitpid, by PID. Not Foundation's `Process`: its own
/// SIGCHLD reaper and a second waitpid race, and `terminationStatus` traps when the other side reaped first.
/// Output goes to files, so a chatty child never blocks on a full pipe.
enum Spawn {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts `path` with `arguments`, the environment inherited, stdin from `stdin` (or /dev/null).
    static func start(_ path: String, _ arguments: [String], stdout: String, stderr: String, stdin: String? = nil)
        throws -> pid_t
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        if stderr == stdout {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        }
        // The test runner's threads block signals (Dispatch); a child inherits the mask, and one that cannot
        // see SIGTERM never stops. Start it with nothing blocked and default handlers.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        var all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = argv.withUnsafeBufferPointer {
            posix_spawn(&pid, path, &actions, &attributes, $0.baseAddress!, environ)
        }
        guard rc == 0 else { throw Failure(description: "posix_spawn \(path): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// Waits up to `timeout` seconds for `pid` to exit; kills it then. Returns the exit status (128+signal).
    @discardableResult
    static func wait(_ pid: pid_t, timeout: Double) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        var rc = waitpid(pid, &status, WNOHANG)
        while rc == 0 {
            if Date() >= deadline {
                kill(pid, SIGKILL)
                rc = waitpid(pid, &status, 0)
                break
            }
            usleep(2000)
            rc = waitpid(pid, &status, WNOHANG)
        }
        // Reaped by someone else: the status is unknown, and -1 matches no expected exit code.
        guard rc == pid else { return -1 }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    static func stop(_ pid: pid_t) {
        kill(pid, SIGTERM)
        wait(pid, timeout: 5)
    }

    static func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    static func run(_ path: String, _ arguments: [String], timeout: Double = 30, stdin: String? = nil) throws
        -> Output
    {
        let directory = TestProcess.temporaryDirectory("spawn")
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("stdout").path
        let err = directory.appendingPathComponent("stderr").path
        var input: String?
        if let stdin {
            input = directory.appendingPathComponent("stdin").path
            try stdin.write(toFile: input!, atomically: true, encoding: .utf8)
        }
        let pid = try start(path, arguments, stdout: out, stderr: err, stdin: input)
        let status = wait(pid, timeout: timeout)
        return Output(status: status, stdout: read(out), stderr: read(err))
    }
}

/// Finds the external tools: first the virtual environment CI creates for the Python ones
/// (`.build/deploy-tools`, see deploy/README.md), then PATH, then the usual directories.
enum Tools {
    static let virtualEnvironment = TestProcess.repositoryRoot.appendingPathComponent(".build/deploy-tools/bin").path

    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = [virtualEnvironment] + path.split(separator: ":").map(String.init)
        for directory in directories where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return TestProcess.which(name)
    }

    static func skip(_ what: String) {
        print("DeployRecipeTests: skipped, needs \(what)")
    }
}

/// A copy of the unit whose binary path points at a stub, so `systemd-analyze` finds an executable.
struct StubbedUnit {
    let path: String
    let text: String

    init(in directory: URL) throws {
        let stub = directory.appendingPathComponent("bin/myorg-gateway")
        try FileManager.default.createDirectory(
            at: stub.deletingLastPathComponent(), withIntermediateDirectories: true)
        try "#!/bin/sh\nexit 0\n".write(to: stub, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: stub.path)
        let original = try String(contentsOf: DeployRecipeTests.unitFile, encoding: .utf8)
        var replaced = 0
        text = original.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            guard line.hasPrefix("Exec"), line.contains("=/usr/local/bin/myorg-gateway ") else { return String(line) }
            replaced += 1
            return line.replacingOccurrences(of: "=/usr/local/bin/myorg-gateway ", with: "=\(stub.path) ")
        }.joined(separator: "\n")
        #expect(replaced == 3, "ExecStartPre, ExecStart and ExecReload run the binary")
        let unit = directory.appendingPathComponent("myorg-gateway.service")
        try text.write(to: unit, atomically: true, encoding: .utf8)
        path = unit.path
    }
}

/// A systemd unit file: section -> key -> values in order (repeated keys accumulate, as systemd reads them).
struct UnitFile {
    private var sections: [String: [String: [String]]] = [:]

    init(_ text: String) {
        var section = ""
        var pending = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = pending + raw.trimmingCharacters(in: .whitespaces)
            pending = ""
            if line.hasPrefix("#") || line.hasPrefix(";") || line.isEmpty { continue }
            if line.hasSuffix("\\") {
                line.removeLast()
                pending = line + " "
                continue
            }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast())
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            sections[section, default: [:]][key, default: []].append(value)
        }
    }

    func values(_ section: String) -> [String: [String]] { sections[section] ?? [:] }
}

/// A Dockerfile read as stages of instructions (continuations joined, comments and parser directives dropped).
struct Dockerfile {
    struct Stage {
        var image: String
        var name: String?
        var lines: [(keyword: String, arguments: String)] = []

        func instructions(_ keyword: String) -> [String] {
            lines.filter { $0.keyword == keyword }.map(\.arguments)
        }
    }

    var stages: [Stage] = []

    init(_ text: String) {
        var logical: [String] = []
        var pending = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") { continue }
            if line.hasSuffix("\\") {
                pending += line.dropLast().trimmingCharacters(in: .whitespaces) + " "
                continue
            }
            let joined = (pending + line).trimmingCharacters(in: .whitespaces)
            pending = ""
            if !joined.isEmpty { logical.append(joined) }
        }
        for line in logical {
            let keyword = String(line.prefix { !$0.isWhitespace }).uppercased()
            let arguments = line.dropFirst(keyword.count).trimmingCharacters(in: .whitespaces)
            if keyword == "FROM" {
                let words = arguments.split(separator: " ").map(String.init).filter { !$0.hasPrefix("--") }
                let name = words.count >= 3 && words[1].uppercased() == "AS" ? words[2] : nil
                stages.append(Stage(image: words.first ?? "", name: name))
            } else if !stages.isEmpty {
                stages[stages.count - 1].lines.append((keyword, arguments))
            }
        }
    }

    /// A tag other than `latest`, or a digest.
    static func isPinned(_ image: String) -> Bool {
        if image.contains("@sha256:") { return true }
        guard let colon = image.lastIndex(of: ":"), !image[colon...].contains("/") else { return false }
        let tag = image[image.index(after: colon)...]
        return !tag.isEmpty && tag != "latest"
    }

    /// The packages named by `apt-get install` in these RUN lines.
    static func aptPackages(in runs: [String]) -> [String] {
        var packages: [String] = []
        for run in runs {
            for command in run.components(separatedBy: "&&") {
                let words = command.split(separator: " ").map(String.init)
                guard let install = words.firstIndex(of: "install"), words.contains("apt-get") else { continue }
                packages += words[(install + 1)...].filter { !$0.hasPrefix("-") }
            }
        }
        return packages
    }
}

/// The dockerignore rules as BuildKit applies them: patterns in order, the last match wins, `!` re-includes,
/// a pattern that matches a directory matches everything below it; `**` spans directories.
struct DockerIgnore {
    private var rules: [(pattern: String, include: Bool)] = []

    init(_ text: String) {
        for raw in text.split(separator: "\n") {
            var line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let include = line.hasPrefix("!")
            if include { line.removeFirst() }
            while line.hasSuffix("/") { line.removeLast() }
            while line.hasPrefix("/") { line.removeFirst() }
            rules.append((line, include))
        }
    }

    func excludes(_ path: String) -> Bool {
        let parts = path.split(separator: "/").map(String.init)
        var excluded = false
        for rule in rules {
            // The path itself or one of its parent directories.
            let matched = (1...max(parts.count, 1)).contains {
                Self.match(rule.pattern.split(separator: "/").map(String.init)[...], parts.prefix($0)[...])
            }
            if matched { excluded = !rule.include }
        }
        return excluded
    }

    private static func match(_ pattern: ArraySlice<String>, _ path: ArraySlice<String>) -> Bool {
        guard let head = pattern.first else { return path.isEmpty }
        if head == "**" {
            return (0...path.count).contains { match(pattern.dropFirst(), path.dropFirst($0)) }
        }
        guard let first = path.first, fnmatch(head, first, 0) == 0 else { return false }
        return match(pattern.dropFirst(), path.dropFirst())
    }
}

/// YAML through the system's Python (PyYAML), turned into JSON for Foundation: the test target has no YAML
/// parser of its own. Returns nil when python3 or PyYAML is missing.
enum YAMLBridge {
    static let program = """
        import json, sys, yaml
        print(json.dumps([d for d in yaml.safe_load_all(sys.stdin.read()) if d is not None]))
        """

    static func documents(_ file: URL) throws -> [[String: Any]]? {
        try parse(try String(contentsOf: file, encoding: .utf8))
    }

    static func document(_ text: String) throws -> [String: Any]? {
        try parse(text)?.first
    }

    private static func parse(_ text: String) throws -> [[String: Any]]? {
        guard let python = Tools.find("python3") else { return nil }
        let probe = try Spawn.run(python, ["-c", "import yaml"])
        guard probe.status == 0 else { return nil }
        let result = try Spawn.run(python, ["-c", program], stdin: text)
        try #require(result.status == 0, "YAML does not parse: \(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        return try #require(json as? [[String: Any]])
    }
}
