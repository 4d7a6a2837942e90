import EventLoop
import Foundation
import GatewayCore
import HTTP1
import Logging
import Policy
import RateLimitStore
import TLS
import Tokens

/// Why a configuration could not be turned into a running snapshot (certificates, secrets, tables).
public struct BuildError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Loads a configuration file and everything it names into the immutable pieces a snapshot needs.
enum GatewayBuilder {
    /// Reads and validates the YAML file; errors carry file, line and key.
    static func loadConfig(path: String) throws -> GatewayConfig {
        let url = URL(fileURLWithPath: path)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BuildError("\(path): cannot read the configuration file")
        }
        let text = String(decoding: data, as: UTF8.self)
        let base = url.deletingLastPathComponent().path
        do {
            return try GatewayConfig.load(
                yaml: text, file: path, baseDirectory: base.isEmpty ? "." : base,
                readFile: { path in
                    FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
                })
        } catch {
            throw BuildError(error.description)
        }
    }

    /// What `check` says beyond the file's own grammar: the problems (missing files and env vars, certificates
    /// that do not load, tables that do not parse, origins that are invalid), and warnings that do not fail it.
    struct CheckResult {
        var problems: [String]
        /// Certificates outside their validity period (see `certificateWarnings`).
        var warnings: [String] = []
    }

    static func check(_ config: GatewayConfig) -> CheckResult {
        // Every piece whose inputs are all there is still checked, so one run lists every problem; a piece that
        // needs a missing file or variable is skipped (its absence is said once, at its line).
        let missing = missingFiles(config)
        var problems =
            fileProblems(config, missing: missing) + destinationProblems(config) + webhookSecretProblems(config)
        func present(_ file: GatewayConfig.FilePath?) -> Bool { file.map { !missing.contains($0.path) } ?? true }
        if present(config.tenant.tiersFile) && present(config.tenant.endpointsFile) {
            do {
                _ = try buildPolicy(config, previous: nil)
            } catch {
                // An error inside the tier or endpoint table already names its file, line and key.
                let text = "\(error)"
                let tables = [config.tenant.tiersFile, config.tenant.endpointsFile].compactMap { $0?.path }
                problems.append(tables.contains { text.hasPrefix($0 + ":") } ? text : "\(config.file): \(text)")
            }
        }
        // The contexts built to check the certificates also say which are out of date.
        let contexts = config.listeners.map { listener -> TLSServerContext? in
            guard (listener.tls?.certificates ?? []).allSatisfy({ present($0.cert) && present($0.key) }) else {
                return nil
            }
            do {
                return try serverContext(listener)
            } catch {
                problems.append("\(error)")
                return nil
            }
        }
        var secretsPresent = true
        for upstream in config.upstreams {
            if !present(upstream.caFile) { secretsPresent = false }
            guard let source = upstream.cnameAPIKey, (secret(source) ?? "").isEmpty else { continue }
            secretsPresent = false
            // A missing file or an unset variable was said at its line already; a file that holds nothing (or
            // only line ends) was not, and `serve` refuses it.
            if case .file(let file) = source, present(file) {
                problems.append(source.location.error("the cname_api_key file '\(file.path)' is empty").description)
            }
        }
        if secretsPresent {
            do {
                _ = try origins(config)
            } catch {
                // Most upstream errors name their own line; the rest get the file.
                let text = "\(error)"
                problems.append(text.hasPrefix(config.file) ? text : "\(config.file): upstream: \(text)")
            }
        }
        var jwksFilePresent = true
        if case .file(let file) = config.tenant.jwks.source { jwksFilePresent = present(file) }
        if jwksFilePresent {
            do {
                _ = try jwksFileKeys(config)
            } catch {
                problems.append(error.description)
            }
        }
        return CheckResult(problems: problems, warnings: certificateWarnings(config, contexts: contexts))
    }

    /// Webhook secrets read from the environment or a file hold what the YAML could not show: a control
    /// character would make every POST malformed, and `serve` refuses the sink. Said here at the line that names
    /// the source (never the value).
    static func webhookSecretProblems(_ config: GatewayConfig) -> [String] {
        var problems: [String] = []
        for case .webhook(let sink) in config.logging.sinks {
            var sources: [(String, GatewayConfig.SecretSource)] =
                sink.authorization.map { [("authorization", $0)] } ?? []
            for case (let name, .secret(let source)) in sink.headers.map({ ($0.name, $0.value) }) {
                sources.append(("header \(name)", source))
            }
            for (what, source) in sources {
                guard let value = secret(source), !ConfigSyntax.isFieldValue(value) else { continue }
                problems.append(
                    source.location.error(
                        "the webhook \(what) holds a control character (CR, LF, NUL …); a header value cannot"
                    ).description)
            }
        }
        return problems
    }

    /// The keys of the configured JWKS file, read once as the gateway will serve them (nil for a URL): a file that
    /// does not parse, or holds no RSA key the gateway can use, would leave every request refused, so it is an
    /// error at the line that names it.
    static func jwksFileKeys(_ config: GatewayConfig) throws(BuildError) -> JWKSKeySet? {
        guard case .file(let file) = config.tenant.jwks.source else { return nil }
        let set: JWKSKeySet
        do {
            set = try JWKSKeySet.parse(Array(try Data(contentsOf: URL(fileURLWithPath: file.path))))
        } catch {
            throw BuildError(file.location.error("JWKS file '\(file.path)': \(error)").description)
        }
        guard !set.isEmpty else {
            throw BuildError(file.location.error("JWKS file '\(file.path)' holds no usable RSA key").description)
        }
        return set
    }

    /// Where `serve` would write but could not, found without creating anything: a file sink or recording path
    /// that is a directory, a spool directory that is a file. (`serve` refused these with no line; `check`
    /// passed them.)
    static func destinationProblems(_ config: GatewayConfig) -> [String] {
        func isDirectory(_ path: String) -> Bool? {
            var directory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &directory) else { return nil }
            return directory.boolValue
        }
        var problems: [String] = []
        var files: [GatewayConfig.FilePath] = config.logging.sinks.compactMap {
            if case .file(let sink) = $0 { return sink.path }
            return nil
        }
        if config.recording.enabled { files.append(config.recording.path) }
        for file in files where isDirectory(file.path) == true {
            problems.append(file.location.error("'\(file.path)' is a directory; a file is written there").description)
        }
        let spool = config.logging.spool.directory
        if !config.logging.sinks.isEmpty, isDirectory(spool.path) == false {
            problems.append(spool.location.error("'\(spool.path)' is a file; the spool needs a directory").description)
        }
        // A read-only place (a configuration directory mounted read-only, a service sandbox) fails `serve` at
        // start: said here, at the line that names it (or that would: the spool's default is beside the file).
        var writable: [(GatewayConfig.FilePath, String)] = files.map {
            ($0, URL(fileURLWithPath: $0.path).deletingLastPathComponent().path)
        }
        if !config.logging.sinks.isEmpty { writable.append((spool, spool.path)) }
        for (file, directory) in writable {
            guard let blocked = unwritableAncestor(of: directory) else { continue }
            let hint =
                file.path == spool.path
                ? " (the spool of the log sinks: set logging.spool.directory to a writable place)" : ""
            problems.append(
                file.location.error("'\(file.path)' cannot be written: '\(blocked)' is not writable\(hint)")
                    .description)
        }
        return problems
    }

    /// The nearest existing directory at or above `directory` when the process cannot write there (so neither
    /// `directory` nor what is missing of it can be made); nil when it can.
    static func unwritableAncestor(of directory: String) -> String? {
        var path = directory.isEmpty ? "." : directory
        while !FileManager.default.fileExists(atPath: path) {
            let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
            if parent == path { return nil }
            path = parent
        }
        return access(path, W_OK) == 0 ? nil : path
    }

    /// The paths of the files the configuration names that do not exist.
    static func missingFiles(_ config: GatewayConfig) -> Set<String> {
        Set(config.referencedFiles.map(\.file.path).filter { !FileManager.default.fileExists(atPath: $0) })
    }

    /// Files and environment variables the configuration names but that are missing, each at its line.
    static func fileProblems(_ config: GatewayConfig, missing: Set<String>) -> [String] {
        config.check(
            fileExists: { !missing.contains($0) },
            environment: { ProcessInfo.processInfo.environment[$0] }
        ).map(\.description)
    }

    /// Everything a snapshot is made of, each piece built once.
    struct Built {
        var policy: RequestPolicy
        var listeners: [ListenerProfile]
        var origins: [String: UpstreamOrigin]
        /// The keys of a `jwks.file`, read and checked here: the service installs them as they are (nil: a URL).
        var jwksFileKeys: JWKSKeySet?
    }

    /// Builds a snapshot's pieces for `serve` and reload: missing files are reported with their lines first,
    /// then the first piece that does not load (the `check` command reports every problem instead).
    static func build(_ config: GatewayConfig, previous: RequestPolicy?) throws -> Built {
        let problems =
            fileProblems(config, missing: missingFiles(config)) + destinationProblems(config)
            + webhookSecretProblems(config)
        guard problems.isEmpty else { throw BuildError(problems.joined(separator: "\n")) }
        let keys = try jwksFileKeys(config)
        return Built(
            policy: try buildPolicy(config, previous: previous, connectShared: true),
            listeners: try listenerProfiles(config), origins: try origins(config), jwksFileKeys: keys)
    }

    static func tiers(_ config: GatewayConfig) throws -> TierTable {
        guard let file = config.tenant.tiersFile else { return TierTable.embedded }
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw BuildError("\(file.path): cannot read the tier table")
        }
        do {
            return try TierTable.parse(yaml: String(decoding: data, as: UTF8.self), fileName: file.path)
        } catch {
            throw BuildError(error.description)
        }
    }

    static func buildPolicy(_ config: GatewayConfig, previous: RequestPolicy?, connectShared: Bool = false) throws
        -> RequestPolicy
    {
        let table = try tiers(config)
        do {
            let limits = try RateLimiterConfiguration.resolve(
                tiers: table, tenantTier: config.tenant.tier.rawValue,
                simulateTier: config.rateLimits.simulateTier?.rawValue, burstSeconds: config.rateLimits.burstS)
            // A reload keeps every organization's bucket: SIGHUP must not hand out a fresh burst.
            let limiter = previous.map { RateLimiter(configuration: limits, inheriting: $0.limiter) }
            var shared: (any RateAdmission)? = nil
            if case .redis = config.rateLimits.store {
                if let previous, let store = previous.sharedAdmission as? RedisRateLimitStore,
                    previous.config.rateLimits == config.rateLimits, store.configuration == limits
                {
                    shared = store
                } else {
                    let backend = try RateLimitBackends.make(
                        config.rateLimits, configuration: limits, namespace: config.tenant.name)
                    if let store = backend as? RedisRateLimitStore {
                        // Shared limits fall back to this process's limiter while Redis is away.
                        let redis = RedisRateLimitStore(
                            configuration: limits, options: store.options, fallback: limiter ?? store.fallback)
                        if connectShared { redis.connect() }
                        shared = redis
                    }
                }
            }
            return try RequestPolicy(config: config, tiers: table, limiter: limiter, sharedAdmission: shared)
        } catch let error as PolicyBuildError {
            throw BuildError(error.description)
        } catch {
            throw BuildError("\(error)")
        }
    }

    /// Certificates outside their validity period, or that no client can be given, each at its line. They are loaded
    /// all the same (a renewal may be on its way) but clients will refuse or never see them, so `check`, `serve`
    /// and a reload say so.
    /// `contexts`: the listeners' TLS contexts, in the configuration's order.
    static func certificateWarnings(_ config: GatewayConfig, contexts: [TLSServerContext?]) -> [String] {
        var warnings: [String] = []
        for (listener, context) in zip(config.listeners, contexts) {
            guard let tls = listener.tls, let context else { continue }
            for (index, certificate) in tls.certificates.enumerated() {
                let problem: String
                switch context.certificateValidity[index] {
                case .current:
                    guard context.certificateNeverChosen[index] else { continue }
                    problem =
                        "no client will be given this certificate: every name it covers is served by an earlier one "
                        + "of the same key type (list it first, or remove it)"
                case .expired: problem = "the certificate has expired: clients will refuse it"
                case .notYetValid: problem = "the certificate is not valid yet: clients will refuse it"
                }
                warnings.append(certificate.cert.location.error(problem).description)
            }
        }
        return warnings
    }

    /// The listener's TLS context; an error names the certificate entry that does not load, at its line.
    static func serverContext(_ listener: GatewayConfig.Listener) throws -> TLSServerContext? {
        guard let tls = listener.tls else { return nil }
        // A client that sends no SNI (one that dials an IP address) gets a certificate covering the listener's domain
        // when it has one, wherever the list puts it: otherwise it could never verify what it gets.
        let domain = listener.domain?.asciiLowercased
        func context(_ certificates: [GatewayConfig.TLS.Certificate]) throws(TLSConfigurationError) -> TLSServerContext
        {
            try TLSServerContext(
                configuration: TLSServerConfiguration(
                    certificates: certificates.map {
                        TLSCertificateEntry(certificate: .file($0.cert.path), privateKey: .file($0.key.path))
                    },
                    alpnProtocols: tls.alpn, defaultServerName: domain))
        }
        let built: TLSServerContext
        do {
            built = try context(tls.certificates)
        } catch {
            // Only on failure: each entry alone, to say which one it is (the first when only the set fails).
            let culprit = tls.certificates.first { (try? context([$0])) == nil } ?? tls.certificates[0]
            throw BuildError(culprit.cert.location.error(error.message).description)
        }
        // A listener bound to a domain answers 421 to a Host its certificate does not cover (RFC 9110 §7.4): with
        // no certificate for the domain itself, it could answer nothing.
        if let written = listener.domain, let domain, !built.someCertificateCovers(host: domain) {
            throw BuildError(
                tls.certificates[0].cert.location.error(
                    "no certificate of this listener covers its domain \(written): clients could not verify it, and "
                        + "every request would be refused with 421"
                ).description)
        }
        return built
    }

    static func listenerProfiles(_ config: GatewayConfig) throws -> [ListenerProfile] {
        var limits = HTTP1Limits()
        limits.maxBodyBytes = config.limits.maxBodyBytes
        limits.maxHeaderBytes = config.limits.maxHeaderBytes
        return try config.listeners.map { listener in
            guard let address = NetAddress(host: listener.address.host, port: UInt16(listener.address.port)) else {
                throw BuildError("listener address \(listener.address) is not an IP address and port")
            }
            let tls = try serverContext(listener)
            return ListenerProfile(
                address: address, domain: listener.domain, tls: tls, http1Limits: limits,
                headerReadTimeoutMs: config.limits.headerReadTimeoutMs, idleTimeoutMs: config.limits.idleTimeoutMs,
                minBodyBytesPerSecond: config.limits.minBodyBytesPerSecond,
                allowH2: tls.map { $0.alpnProtocols.contains("h2") } ?? true)
        }
    }

    /// Reads a secret from the environment or a file; trailing newlines are dropped. Never logged.
    static func secret(_ source: GatewayConfig.SecretSource) -> String? {
        switch source {
        case .environment(let name, _):
            return ProcessInfo.processInfo.environment[name]
        case .file(let path):
            guard var data = FileManager.default.contents(atPath: path.path) else { return nil }
            // Bytes, not Characters: "\r\n" is one Character, so a file saved with CRLF kept both and every
            // request carrying the secret was malformed.
            while let last = data.last, last == 0x0A || last == 0x0D { data.removeLast() }
            return String(decoding: data, as: UTF8.self)
        }
    }

    static func origins(_ config: GatewayConfig) throws -> [String: UpstreamOrigin] {
        var contexts: [String: TLSClientContext] = [:]
        var out: [String: UpstreamOrigin] = [:]
        for upstream in config.upstreams {
            let useTLS = upstream.url.scheme == "https"
            var tlsContext: TLSClientContext? = nil
            if useTLS {
                let key = upstream.caFile?.path ?? "system"
                if let existing = contexts[key] {
                    tlsContext = existing
                } else {
                    do {
                        let context = try TLSClientContext(
                            configuration: TLSClientConfiguration(
                                trustRoots: upstream.caFile.map { .caFile($0.path) } ?? .system))
                        contexts[key] = context
                        tlsContext = context
                    } catch {
                        let message = "\(upstream.domain): \(error.message)"
                        throw BuildError(upstream.caFile.map { $0.location.error(message).description } ?? message)
                    }
                }
            }
            var secrets: [(String, String)] = []
            if let source = upstream.cnameAPIKey {
                let location = source.location
                guard let value = secret(source), !value.isEmpty else {
                    throw BuildError(location.error("the cname_api_key source is empty or missing").description)
                }
                // Sent as a header on every request of the domain: a control character would make each one
                // malformed (the value itself is never shown).
                guard ConfigSyntax.isFieldValue(value) else {
                    throw BuildError(
                        location.error(
                            "the cname_api_key holds a control character (CR, LF, NUL …); a header value cannot"
                        ).description)
                }
                secrets.append(("cname-api-key", value))
            }
            out[upstream.domain] = UpstreamOrigin(
                host: upstream.url.host, port: UInt16(upstream.url.port), useTLS: useTLS, tlsContext: tlsContext,
                maxConnections: upstream.maxConnections, connectTimeoutMs: upstream.connectTimeoutMs,
                responseTimeoutMs: upstream.responseTimeoutMs, idleTimeoutMs: upstream.idleTimeoutMs,
                secretHeaders: secrets, clientIPHeader: upstream.clientIPHeader ?? "X-Forwarded-For")
        }
        return out
    }
}

extension RedisRateLimitStore: RateAdmission {}
