import GatewayCore

extension GatewayConfig {
    /// Parses and validates a configuration file.
    ///
    /// - Parameters:
    ///   - yaml: the file's text.
    ///   - file: the name used in error messages (usually the path as the user gave it).
    ///   - baseDirectory: the file's directory; relative paths in the file resolve against it.
    ///   - readFile: reads a file the configuration names whose contents the load needs: `tenant.endpoints_file`,
    ///     and `tenant.tiers_file` to judge `rate_limits` against it; nil keeps the load free of I/O, and naming an
    ///     endpoints file is then an error (a tier file the load cannot read is left to `check`).
    /// - Throws: every problem found, each with file, line, column and key path.
    ///
    /// Pure: no file is touched except through `readFile`. Whether certificates, keys and other named files
    /// exist is the separate `check(fileExists:environment:)` step.
    public static func load(
        yaml: String, file: String, baseDirectory: String, readFile: ((String) -> String?)? = nil
    ) throws(ConfigErrors) -> GatewayConfig {
        let root: YAMLNode
        switch YAMLDocument.parse(yaml, file: file) {
        case .success(let node): root = node
        case .failure(let errors): throw errors
        }
        let loader = ConfigLoader(file: file, baseDirectory: baseDirectory, readFile: readFile)
        let config = loader.decode(root)
        if let config, loader.errors.isEmpty { return config }
        throw ConfigErrors(
            loader.errors.isEmpty
                ? [ConfigError(file: file, line: 1, column: 1, path: "", message: "invalid configuration")]
                : loader.errors)
    }
}

/// The decoding pass behind `GatewayConfig.load`: one instance per load, never shared.
final class ConfigLoader {
    /// Sink names met so far, with where (`logging.sinks[].…name`).
    private var sinkNamesSeen: [String: String] = [:]
    let reader: YAMLReader
    let baseDirectory: String
    let readFile: ((String) -> String?)?
    /// Errors from files other than the config file (the endpoint table).
    private var foreignErrors: [ConfigError] = []
    /// `tenant.tier`'s node, where a rate-limiter refusal about the tenant's own tier is reported.
    private var tierNode: YAMLNode?

    init(file: String, baseDirectory: String, readFile: ((String) -> String?)?) {
        self.reader = YAMLReader(file: file)
        self.baseDirectory = baseDirectory
        self.readFile = readFile
    }

    var errors: [ConfigError] { reader.errors + foreignErrors }

    static let topKeys = [
        "tenant", "listeners", "upstream", "forward_unknown_endpoints", "limits", "tokens", "access", "clients",
        "step_up", "cors", "rate_limits", "faults", "logging", "recording", "admin",
    ]

    func decode(_ root: YAMLNode) -> GatewayConfig? {
        guard let top = reader.mapping(root, "", keys: Self.topKeys) else { return nil }
        let tenantNode = reader.required(top, "tenant")
        let tenant = tenantNode.flatMap { self.tenant($0) }
        let endpoints = loadEndpoints(tenant?.endpointsFile)
        let scopes = endpoints?.knownScopes
        let upstreams = top["upstream"].flatMap { self.upstreams($0, tenant: tenant) }
        if top["upstream"] == nil { _ = reader.required(top, "upstream") }
        let listeners = reader.required(top, "listeners").flatMap {
            self.listeners($0, tenant: tenant, upstreams: upstreams)
        }
        let forward = reader.bool(top, "forward_unknown_endpoints", default: false)
        let limits = self.limits(top["limits"])
        let tokens = self.tokens(top["tokens"])
        let access = self.access(top["access"])
        let clients = top["clients"].map { self.clients($0, scopes: scopes) } ?? []
        let stepUp = top["step_up"].flatMap { self.stepUp($0, scopes: scopes) }
        let cors = self.cors(top["cors"])
        let rateLimits = self.rateLimits(top["rate_limits"], tenant: tenant)
        let faults = top["faults"].map { self.faults($0, endpoints: endpoints) } ?? []
        let logging = self.logging(top["logging"])
        let recording = self.recording(top["recording"], endpoints: endpoints)
        let admin = top["admin"].flatMap { self.admin($0) }
        if let admin, let listeners, let listener = listeners.first(where: { $0.address.overlaps(admin.address) }),
            let node = top["admin"]
        {
            reader.fail(node, "admin.address", "\(admin.address) shares its port with the listener \(listener.address)")
        }
        if let logging, let recording, recording.enabled {
            let recordingFile = Self.lexicallyNormalized(recording.path.path)
            for case .file(let sink) in logging.sinks where Self.lexicallyNormalized(sink.path.path) == recordingFile {
                reader.append(
                    recording.path.location.error(
                        "'\(recording.path.written)' is also the file of \(sink.path.location.path); one file, one writer"
                    ))
            }
        }
        // A listener without a domain serves whichever tenant domain the Host names: each needs an upstream, or
        // its requests could only get 502.
        if let tenant, let listeners, let upstreams, listeners.contains(where: { $0.domain == nil }),
            let node = top["upstream"]
        {
            for domain in tenant.domains where !upstreams.contains(where: { $0.domain == domain }) {
                reader.fail(
                    node, "upstream",
                    "no upstream for '\(domain)', which a listener without a domain serves (its requests would get 502)"
                )
            }
        }
        guard let tenant, let listeners, let upstreams, let endpoints, let limits, let tokens, let access, let cors,
            let rateLimits, let logging, let recording
        else { return nil }
        return GatewayConfig(
            file: reader.file, baseDirectory: baseDirectory, tenant: tenant, listeners: listeners,
            upstreams: upstreams, forwardUnknownEndpoints: forward, limits: limits, tokens: tokens, access: access,
            clients: clients, stepUp: stepUp, cors: cors, rateLimits: rateLimits, faults: faults, logging: logging,
            recording: recording, admin: admin, endpoints: endpoints)
    }

    // MARK: Shared value kinds

    /// `path` without `.` segments, repeated slashes or `dir/..` pairs, for telling whether two paths name one
    /// file as written (symbolic links are not followed: this layer touches no file system).
    static func lexicallyNormalized(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == "..", let last = parts.last, last != ".." {
                parts.removeLast()
                continue
            }
            parts.append(part)
        }
        return (path.hasPrefix("/") ? "/" : "") + parts.joined(separator: "/")
    }

    func resolve(_ written: String) -> String {
        if written.hasPrefix("/") || baseDirectory.isEmpty { return written }
        return baseDirectory.hasSuffix("/") ? baseDirectory + written : baseDirectory + "/" + written
    }

    func filePath(_ node: YAMLNode, _ path: String) -> GatewayConfig.FilePath? {
        guard let written = reader.nonEmptyString(node, path) else { return nil }
        if written.utf8.contains(0) {
            reader.fail(node, path, "a path cannot contain NUL")
            return nil
        }
        return GatewayConfig.FilePath(path: resolve(written), written: written, location: reader.location(node, path))
    }

    func filePath(_ map: YAMLMap, _ key: String, required: Bool = false) -> GatewayConfig.FilePath? {
        guard let node = required ? reader.required(map, key) : map[key] else { return nil }
        return filePath(node, map.path(key))
    }

    func domain(_ node: YAMLNode, _ path: String) -> String? {
        guard let text = reader.nonEmptyString(node, path) else { return nil }
        if let problem = ConfigSyntax.domainProblem(text) {
            reader.fail(node, path, problem.message)
            return nil
        }
        return text
    }

    /// An https URL, or http for a loopback host only: tokens and secrets must not cross a network in clear.
    func httpsURL(_ node: YAMLNode, _ path: String) -> ConfigURL? {
        guard let text = reader.nonEmptyString(node, path) else { return nil }
        switch ConfigURL.parse(text, schemes: ["https": 443, "http": 80]) {
        case .failure(let problem):
            reader.fail(node, path, problem.message)
            return nil
        case .success(let url):
            if url.scheme == "http", !url.isLoopback {
                reader.fail(
                    node, path,
                    "http is allowed only for loopback hosts (localhost, 127.0.0.0/8, ::1); use https for '\(url.host)'"
                )
                return nil
            }
            return url
        }
    }

    func socketAddress(_ node: YAMLNode, _ path: String) -> SocketAddress? {
        guard let text = reader.nonEmptyString(node, path) else { return nil }
        switch SocketAddress.parse(text) {
        case .success(let address): return address
        case .failure(let problem):
            reader.fail(node, path, problem.message)
            return nil
        }
    }

    /// `{ env: NAME }` or `{ file: path }`; an inline value is refused without being echoed.
    func secret(_ node: YAMLNode, _ path: String) -> GatewayConfig.SecretSource? {
        if case .scalar = node.kind {
            reader.fail(
                node, path,
                "a secret must not be written inline (config files end up in repositories, backups and the admin "
                    + "/config view); write { env: NAME } or { file: path }")
            return nil
        }
        guard let map = reader.mapping(node, path, keys: ["env", "file"]) else { return nil }
        switch (map["env"], map["file"]) {
        case (let env?, nil):
            guard let name = reader.nonEmptyString(env, map.path("env")) else { return nil }
            guard ConfigSyntax.isEnvironmentName(name) else {
                reader.fail(env, map.path("env"), "'\(YAMLReader.printable(name))' is not an environment variable name")
                return nil
            }
            return .environment(name, reader.location(env, map.path("env")))
        case (nil, let file?):
            return filePath(file, map.path("file")).map { .file($0) }
        default:
            reader.fail(node, path, "write exactly one of { env: NAME } or { file: path }")
            return nil
        }
    }

    func strings(_ map: YAMLMap, _ key: String) -> [(value: String, node: YAMLNode, path: String)] {
        guard let node = map[key] else { return [] }
        return reader.strings(node, map.path(key)) ?? []
    }

    func unique(_ items: [(value: String, node: YAMLNode, path: String)], what: String) -> [(
        value: String, node: YAMLNode, path: String
    )] {
        var seen = Set<String>()
        var out: [(value: String, node: YAMLNode, path: String)] = []
        for item in items {
            if seen.insert(item.value).inserted {
                out.append(item)
            } else {
                reader.fail(item.node, item.path, "\(what) '\(YAMLReader.printable(item.value))' is listed twice")
            }
        }
        return out
    }

    func knownScopes(_ map: YAMLMap, _ key: String, scopes: Set<String>?) -> [String] {
        var out: [String] = []
        for item in unique(strings(map, key), what: "scope") {
            if let scopes, !scopes.contains(item.value) {
                var message = "'\(YAMLReader.printable(item.value))' is not a scope of any endpoint"
                if let near = YAMLReader.nearest(item.value, in: scopes.sorted()) {
                    message += " (did you mean '\(near)'?)"
                }
                reader.fail(item.node, item.path, message)
            } else {
                out.append(item.value)
            }
        }
        return out
    }

    // MARK: tenant

    func tenant(_ node: YAMLNode) -> GatewayConfig.Tenant? {
        let keys = [
            "name", "environment_name", "canonical_domain", "custom_domains", "tier", "jwks", "tiers_file",
            "endpoints_file",
        ]
        guard let map = reader.mapping(node, "tenant", keys: keys) else { return nil }
        var name: String?
        if let n = reader.required(map, "name"), let text = reader.nonEmptyString(n, map.path("name")) {
            let ok =
                text.utf8.count <= 64
                && text.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
            if ok {
                name = text
            } else {
                reader.fail(n, map.path("name"), "a tenant name uses a-z, 0-9 and '-' (at most 64)")
            }
        }
        var environmentName: String?
        if let n = map["environment_name"], let text = reader.nonEmptyString(n, map.path("environment_name")) {
            // Auth0's environment tags are words such as `production`; the value goes verbatim into every event.
            if text.utf8.count <= 64 && text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C }) {
                environmentName = text
            } else {
                reader.fail(
                    n, map.path("environment_name"),
                    "an environment name is printable ASCII without spaces, quotes or backslashes (at most 64)")
            }
        }
        let canonical = reader.required(map, "canonical_domain").flatMap { domain($0, map.path("canonical_domain")) }
        var custom: [String] = []
        if let list = map["custom_domains"], let items = reader.list(list, map.path("custom_domains")) {
            for item in items {
                guard let d = domain(item.node, item.path) else { continue }
                if d == canonical || custom.contains(d) {
                    reader.fail(item.node, item.path, "domain '\(d)' is listed twice")
                } else {
                    custom.append(d)
                }
            }
        }
        tierNode = map["tier"]
        let tier = reader.required(map, "tier").flatMap {
            reader.enumeration($0, map.path("tier"), GatewayConfig.TierName.self)
        }
        let jwks = self.jwks(map["jwks"], canonical: canonical)
        let tiersFile = filePath(map, "tiers_file")
        let endpointsFile = filePath(map, "endpoints_file")
        guard let name, let canonical, let tier, let jwks else { return nil }
        return GatewayConfig.Tenant(
            name: name, environmentName: environmentName, canonicalDomain: canonical, customDomains: custom, tier: tier,
            jwks: jwks, tiersFile: tiersFile,
            endpointsFile: endpointsFile)
    }

    func jwks(_ node: YAMLNode?, canonical: String?) -> GatewayConfig.JWKS? {
        guard let node else {
            guard let canonical,
                case .success(let url) = ConfigURL.parse(
                    "https://\(canonical)/.well-known/jwks.json", schemes: ["https": 443])
            else { return nil }
            return GatewayConfig.JWKS(source: .url(url), refreshIntervalS: 600, minRefetchIntervalS: 30)
        }
        let path = "tenant.jwks"
        guard
            let map = reader.mapping(node, path, keys: ["url", "file", "refresh_interval_s", "min_refetch_interval_s"])
        else { return nil }
        var source: GatewayConfig.JWKS.Source?
        switch (map["url"], map["file"]) {
        case (let u?, nil): source = httpsURL(u, map.path("url")).map { .url($0) }
        case (nil, let f?):
            source = filePath(f, map.path("file")).map { .file($0) }
            for key in ["refresh_interval_s", "min_refetch_interval_s"] {
                if let n = map.entries[key]?.key { reader.fail(n, map.path(key), "applies only to a JWKS url") }
            }
        default: reader.fail(node, path, "write exactly one of url or file")
        }
        let refresh = reader.int(map, "refresh_interval_s", in: 10...86400, default: 600)
        let minRefetch = reader.int(map, "min_refetch_interval_s", in: 1...3600, default: 30)
        if minRefetch > refresh, let n = map["min_refetch_interval_s"] {
            reader.fail(n, map.path("min_refetch_interval_s"), "must not exceed refresh_interval_s (\(refresh))")
        }
        return source.map { GatewayConfig.JWKS(source: $0, refreshIntervalS: refresh, minRefetchIntervalS: minRefetch) }
    }

    func loadEndpoints(_ file: GatewayConfig.FilePath?) -> EndpointTable? {
        guard let file else { return EndpointTable.embedded }
        guard let readFile else {
            reader.append(file.location.error("cannot read '\(file.written)' here: this load was given no file reader"))
            return nil
        }
        guard let text = readFile(file.path) else {
            reader.append(file.location.error("cannot read '\(file.written)'"))
            return nil
        }
        switch EndpointTable.load(yaml: text, file: file.written) {
        case .success(let table): return table
        case .failure(let errors):
            foreignErrors += errors.errors
            return nil
        }
    }

    // MARK: listeners and upstreams

    func listeners(_ node: YAMLNode, tenant: GatewayConfig.Tenant?, upstreams: [GatewayConfig.Upstream]?)
        -> [GatewayConfig.Listener]?
    {
        guard let items = reader.list(node, "listeners") else { return nil }
        if items.isEmpty { reader.fail(node, "listeners", "at least one listener is required") }
        var out: [GatewayConfig.Listener] = []
        var addresses: [(address: SocketAddress, path: String)] = []
        var ok = true
        for item in items {
            guard let map = reader.mapping(item.node, item.path, keys: ["address", "domain", "tls"]) else {
                ok = false
                continue
            }
            let address = reader.required(map, "address").flatMap { socketAddress($0, map.path("address")) }
            if let address, let n = map["address"] {
                if let previous = addresses.first(where: { $0.address.overlaps(address) }) {
                    let how = previous.address == address ? "is already used by" : "shares its port with"
                    reader.fail(n, map.path("address"), "\(address) \(how) \(previous.path) (\(previous.address))")
                } else {
                    addresses.append((address, item.path))
                }
            }
            var domain: String?
            if let n = map["domain"], let d = self.domain(n, map.path("domain")) {
                if let tenant, !tenant.isTenantDomain(d) {
                    reader.fail(
                        n, map.path("domain"),
                        "'\(d)' is not a tenant domain (\(tenant.domains.joined(separator: ", ")))")
                } else if let upstreams, !upstreams.contains(where: { $0.domain == d }) {
                    reader.fail(n, map.path("domain"), "no upstream is configured for '\(d)'")
                }
                domain = d
            }
            let tls = map["tls"].flatMap { self.tls($0, map.path("tls")) }
            if map["tls"] != nil && tls == nil { ok = false }
            guard let address else {
                ok = false
                continue
            }
            out.append(GatewayConfig.Listener(address: address, domain: domain, tls: tls))
        }
        return ok ? out : nil
    }

    func tls(_ node: YAMLNode, _ path: String) -> GatewayConfig.TLS? {
        guard let map = reader.mapping(node, path, keys: ["certificates", "alpn"]) else { return nil }
        var certificates: [GatewayConfig.TLS.Certificate] = []
        if let list = reader.required(map, "certificates"), let items = reader.list(list, map.path("certificates")) {
            if items.isEmpty {
                reader.fail(list, map.path("certificates"), "a tls listener needs at least one certificate")
            }
            for item in items {
                guard let m = reader.mapping(item.node, item.path, keys: ["cert", "key"]) else { continue }
                let cert = filePath(m, "cert", required: true)
                let key = filePath(m, "key", required: true)
                if let cert, let key { certificates.append(.init(cert: cert, key: key)) }
            }
        }
        var alpn = ["h2", "http/1.1"]
        if let n = map["alpn"], let items = reader.strings(n, map.path("alpn")) {
            alpn = []
            for item in unique(items, what: "protocol") {
                if item.value == "h2" || item.value == "http/1.1" {
                    alpn.append(item.value)
                } else {
                    reader.fail(
                        item.node, item.path, "'\(YAMLReader.printable(item.value))' is not one of h2 | http/1.1")
                }
            }
            if items.isEmpty { reader.fail(n, map.path("alpn"), "name at least one protocol") }
        }
        guard !certificates.isEmpty, !alpn.isEmpty else { return nil }
        return GatewayConfig.TLS(certificates: certificates, alpn: alpn)
    }

    func upstreams(_ node: YAMLNode, tenant: GatewayConfig.Tenant?) -> [GatewayConfig.Upstream]? {
        guard let map = reader.mapping(node, "upstream", keys: nil) else { return nil }
        if map.order.isEmpty { reader.fail(node, "upstream", "at least one upstream is required") }
        var out: [GatewayConfig.Upstream] = []
        var ok = true
        for key in map.order {
            guard let entry = map.entries[key] else { continue }
            let path = map.path(key)
            guard let d = domain(entry.key, path) else {
                ok = false
                continue
            }
            if let tenant, !tenant.isTenantDomain(d) {
                reader.fail(
                    entry.key, path, "'\(d)' is not a tenant domain (\(tenant.domains.joined(separator: ", ")))")
            }
            let keys = [
                "url", "ca_file", "max_connections", "connect_timeout_ms", "response_timeout_ms", "idle_timeout_ms",
                "cname_api_key", "client_ip_header",
            ]
            guard let m = reader.mapping(entry.value, path, keys: keys) else {
                ok = false
                continue
            }
            var url = reader.required(m, "url").flatMap { httpsURL($0, m.path("url")) }
            if let u = url, let n = m["url"] {
                if !(u.path.isEmpty || u.path == "/") || u.query != nil {
                    reader.fail(n, m.path("url"), "an upstream URL names the origin only (no path or query)")
                    url = nil
                }
            }
            var header: String?
            if let n = m["client_ip_header"], let text = reader.nonEmptyString(n, m.path("client_ip_header")) {
                if let problem = ConfigSyntax.clientIPHeaderNameProblem(text) {
                    reader.fail(n, m.path("client_ip_header"), problem.message)
                } else {
                    header = text.asciiLowercased
                }
            }
            let upstream = url.map {
                GatewayConfig.Upstream(
                    domain: d, url: $0, caFile: filePath(m, "ca_file"),
                    maxConnections: reader.int(m, "max_connections", in: 1...10000, default: 64),
                    connectTimeoutMs: reader.int(m, "connect_timeout_ms", in: 1...600_000, default: 2000),
                    responseTimeoutMs: reader.int(m, "response_timeout_ms", in: 1...3_600_000, default: 30000),
                    idleTimeoutMs: reader.int(m, "idle_timeout_ms", in: 1...3_600_000, default: 60000),
                    cnameAPIKey: m["cname_api_key"].flatMap { secret($0, m.path("cname_api_key")) },
                    clientIPHeader: header)
            }
            if let upstream { out.append(upstream) } else { ok = false }
        }
        return ok ? out : nil
    }

    // MARK: limits, tokens, access

    func section(_ node: YAMLNode?, _ path: String, keys: [String]) -> YAMLMap? {
        guard let node else {
            return YAMLMap(node: YAMLNode(kind: .mapping([]), line: 1, column: 1), path: path, entries: [:], order: [])
        }
        return reader.mapping(node, path, keys: keys)
    }

    func limits(_ node: YAMLNode?) -> GatewayConfig.Limits? {
        let keys = [
            "max_connections", "header_read_timeout_ms", "idle_timeout_ms", "min_body_bytes_per_s", "max_body_bytes",
            "max_header_bytes", "shutdown_grace_ms",
        ]
        guard let m = section(node, "limits", keys: keys) else { return nil }
        return GatewayConfig.Limits(
            maxConnections: reader.int(m, "max_connections", in: 1...1_000_000, default: 10000),
            headerReadTimeoutMs: reader.int(m, "header_read_timeout_ms", in: 100...600_000, default: 10000),
            idleTimeoutMs: reader.int(m, "idle_timeout_ms", in: 100...3_600_000, default: 60000),
            minBodyBytesPerSecond: reader.int(m, "min_body_bytes_per_s", in: 0...(1 << 30), default: 1024),
            maxBodyBytes: reader.int(m, "max_body_bytes", in: 0...(1 << 30), default: 1_048_576),
            maxHeaderBytes: reader.int(m, "max_header_bytes", in: 1024...(1 << 20), default: 32768),
            shutdownGraceMs: reader.int(m, "shutdown_grace_ms", in: 0...600_000, default: 10000))
    }

    func tokens(_ node: YAMLNode?) -> GatewayConfig.Tokens? {
        guard
            let m = section(
                node, "tokens", keys: ["algorithms", "leeway_s", "exp_leeway_s", "max_lifetime_s", "max_token_bytes"])
        else {
            return nil
        }
        var algorithms = ["RS256"]
        if let n = m["algorithms"] {
            let items = unique(reader.strings(n, m.path("algorithms")) ?? [], what: "algorithm")
            algorithms = []
            for item in items {
                if item.value == "RS256" {
                    algorithms.append(item.value)
                } else {
                    reader.fail(
                        item.node, item.path, "only RS256 is supported (the tenant signs its access tokens with RS256)")
                }
            }
            if items.isEmpty { reader.fail(n, m.path("algorithms"), "name at least one algorithm") }
        }
        return GatewayConfig.Tokens(
            algorithms: algorithms, leewayS: reader.int(m, "leeway_s", in: 0...300, default: 30),
            expLeewayS: reader.int(m, "exp_leeway_s", in: 0...300, default: 0),
            // The tenant issues these tokens for exactly 600 s: a longer allowance would pass tokens it never mints.
            maxLifetimeS: reader.int(m, "max_lifetime_s", in: 1...600, default: 600),
            maxTokenBytes: reader.int(m, "max_token_bytes", in: 512...65536, default: 8192))
    }

    func access(_ node: YAMLNode?) -> GatewayConfig.Access? {
        guard let m = section(node, "access", keys: ["user_flows", "client_credentials"]) else { return nil }
        return GatewayConfig.Access(
            userFlows: reader.enumeration(m, "user_flows", default: GatewayConfig.UserFlows.requireClientGrant),
            clientCredentials: reader.enumeration(
                m, "client_credentials", default: GatewayConfig.ClientCredentials.denyAll))
    }

    // MARK: clients and step-up

    func clients(_ node: YAMLNode, scopes: Set<String>?) -> [GatewayConfig.Client] {
        guard let items = reader.list(node, "clients") else { return [] }
        var out: [GatewayConfig.Client] = []
        var ids: [String: String] = [:]
        for item in items {
            let keys = [
                "client_id", "name", "allowed_origins", "cross_origin_authentication", "grant_scopes",
                "my_organization_configuration",
            ]
            guard let m = reader.mapping(item.node, item.path, keys: keys) else { continue }
            var clientID = reader.string(m, "client_id", required: true)
            if let id = clientID, let n = m["client_id"] {
                if id.utf8.count > 128 || !id.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
                    reader.fail(n, m.path("client_id"), "a client id is printable ASCII without spaces (at most 128)")
                    clientID = nil
                } else if let previous = ids[id] {
                    reader.fail(n, m.path("client_id"), "client '\(id)' is already configured at \(previous)")
                } else {
                    ids[id] = item.path
                }
            }
            let name = m["name"].flatMap { reader.nonEmptyString($0, m.path("name")) }
            var origins: [String] = []
            for origin in unique(strings(m, "allowed_origins"), what: "origin") {
                let value = ConfigSyntax.originIgnoringPath(origin.value)
                if let problem = ConfigSyntax.originProblem(value) {
                    reader.fail(origin.node, origin.path, problem.message)
                } else if !origins.contains(value) {
                    // `https://a.example` and `https://a.example/` are one origin.
                    origins.append(value)
                }
            }
            let crossOrigin = reader.bool(m, "cross_origin_authentication", default: true)
            let grants = knownScopes(m, "grant_scopes", scopes: scopes)
            let myOrg = m["my_organization_configuration"].flatMap {
                myOrganization($0, m.path("my_organization_configuration"))
            }
            if let clientID {
                out.append(
                    GatewayConfig.Client(
                        clientID: clientID, name: name, allowedOrigins: origins,
                        crossOriginAuthentication: crossOrigin, grantScopes: grants, myOrganization: myOrg))
            }
        }
        return out
    }

    func myOrganization(_ node: YAMLNode, _ path: String) -> GatewayConfig.MyOrganizationConfiguration? {
        let keys = [
            "allowed_strategies", "connection_deletion_behavior", "connection_profile_id", "user_attribute_profile_id",
        ]
        guard let m = reader.mapping(node, path, keys: keys) else { return nil }
        var strategies: [String] = []
        if let n = reader.required(m, "allowed_strategies"), let items = reader.strings(n, m.path("allowed_strategies"))
        {
            for item in unique(items, what: "strategy") {
                if GatewayConfig.MyOrganizationConfiguration.strategies.contains(item.value) {
                    strategies.append(item.value)
                } else {
                    let all = GatewayConfig.MyOrganizationConfiguration.strategies.joined(separator: " | ")
                    reader.fail(item.node, item.path, "'\(YAMLReader.printable(item.value))' is not one of \(all)")
                }
            }
        }
        return GatewayConfig.MyOrganizationConfiguration(
            allowedStrategies: strategies,
            connectionDeletionBehavior: reader.enumeration(
                m, "connection_deletion_behavior", default: GatewayConfig.ConnectionDeletionBehavior.allowIfEmpty),
            connectionProfileID: reader.string(m, "connection_profile_id"),
            userAttributeProfileID: reader.string(m, "user_attribute_profile_id"))
    }

    func stepUp(_ node: YAMLNode, scopes: Set<String>?) -> GatewayConfig.StepUp? {
        guard let m = reader.mapping(node, "step_up", keys: ["scopes", "amr", "acr"]) else { return nil }
        if m["scopes"] == nil { _ = reader.required(m, "scopes") }
        let list = knownScopes(m, "scopes", scopes: scopes)
        if let n = m["scopes"], case .sequence(let items) = n.kind, items.isEmpty {
            reader.fail(n, m.path("scopes"), "name at least one scope")
        }
        var requirement: GatewayConfig.StepUp.Requirement?
        switch (m["amr"], m["acr"]) {
        case (let a?, nil): requirement = reader.nonEmptyString(a, m.path("amr")).map { .amr($0) }
        case (nil, let a?): requirement = reader.nonEmptyString(a, m.path("acr")).map { .acr($0) }
        default: reader.fail(node, "step_up", "write exactly one of amr or acr")
        }
        if let value = requirement.map({ r -> String in
            switch r {
            case .amr(let v), .acr(let v): return v
            }
        }), value.utf8.contains(where: { $0 == 0x22 || $0 == 0x5C || $0 < 0x20 }) {
            reader.fail(node, "step_up", "the amr/acr value may not contain quotes, backslashes or control characters")
            requirement = nil
        }
        guard let requirement, !list.isEmpty else { return nil }
        return GatewayConfig.StepUp(scopes: list, requirement: requirement)
    }

    // MARK: cors, rate limits, faults

    func cors(_ node: YAMLNode?) -> GatewayConfig.CORS? {
        guard let m = section(node, "cors", keys: ["max_age_s"]) else { return nil }
        return GatewayConfig.CORS(maxAgeS: reader.int(m, "max_age_s", in: 0...86400, default: 600))
    }

    enum StoreKind: String, CaseIterable { case local, redis }

    func rateLimits(_ node: YAMLNode?, tenant: GatewayConfig.Tenant?) -> GatewayConfig.RateLimits? {
        guard let m = section(node, "rate_limits", keys: ["store", "url", "password", "burst_s", "simulate_tier"])
        else {
            return nil
        }
        let kind = reader.enumeration(m, "store", default: StoreKind.local)
        var store = GatewayConfig.RateLimits.Store.local
        switch kind {
        case .local:
            for key in ["url", "password"] {
                if let n = m.entries[key]?.key { reader.fail(n, m.path(key), "applies only to store: redis") }
            }
        case .redis:
            if let n = reader.required(m, "url"), let text = reader.nonEmptyString(n, m.path("url")) {
                switch ConfigURL.parse(text, schemes: ["redis": 6379, "rediss": 6379]) {
                case .success(let url) where url.query != nil:
                    // Some clients read `?db=N` (or other options) here; this gateway reads none, and ignoring
                    // one would silently share database 0 with whatever else uses it.
                    reader.fail(
                        n, m.path("url"),
                        "a query is not read here; give the database as the path, e.g. redis://host:6379/2")
                case .success(let url):
                    switch url.redisDatabase() {
                    case .failure(let problem): reader.fail(n, m.path("url"), problem.message)
                    case .success:
                        store = .redis(url: url, password: m["password"].flatMap { secret($0, m.path("password")) })
                    }
                case .failure(let problem): reader.fail(n, m.path("url"), problem.message)
                }
            }
        }
        let simulate = m["simulate_tier"].flatMap {
            reader.enumeration($0, m.path("simulate_tier"), GatewayConfig.TierName.self)
        }
        // At least a millisecond's worth: RateLimiterConfiguration.resolve refuses less.
        let limits = GatewayConfig.RateLimits(
            store: store, burstS: reader.double(m, "burst_s", in: 0.001...60, default: 1.0), simulateTier: simulate)
        if let tenant { checkLimiter(limits, tenant: tenant, in: m) }
        return limits
    }

    /// The rate limiter's own rules, through the call `serve` builds the limiter with
    /// (`RateLimiterConfiguration.resolve`): `simulate_tier` no higher than the tenant's tier, `burst_s` in range,
    /// both tiers in the tier table. Judged here so that a refusal names its file, line, column and key like every
    /// other error, instead of surfacing later without them; skipped when `tiers_file` cannot be read or parsed
    /// here (`check` reports that file itself).
    func checkLimiter(_ limits: GatewayConfig.RateLimits, tenant: GatewayConfig.Tenant, in m: YAMLMap) {
        guard let tiers = loadTiers(tenant.tiersFile) else { return }
        do {
            _ = try RateLimiterConfiguration.resolve(
                tiers: tiers, tenantTier: tenant.tier.rawValue, simulateTier: limits.simulateTier?.rawValue,
                burstSeconds: limits.burstS)
        } catch {
            let at: (node: YAMLNode?, path: String)
            switch error {
            case .unknownTier(let name, _) where name == tenant.tier.rawValue: at = (tierNode, "tenant.tier")
            case .unknownTier, .simulatedTierHigher: at = (m["simulate_tier"], m.path("simulate_tier"))
            case .invalidBurst: at = (m["burst_s"], m.path("burst_s"))
            case .invalidStripes, .invalidCap: at = (nil, m.path)
            }
            reader.fail(at.node ?? m.node, at.path, error.description)
        }
    }

    /// The tier table `serve` will use: the embedded one, or `tenant.tiers_file` when this load can read and parse
    /// it; nil otherwise.
    func loadTiers(_ file: GatewayConfig.FilePath?) -> TierTable? {
        guard let file else { return TierTable.embedded }
        guard let text = readFile?(file.path) else { return nil }
        return try? TierTable.parse(yaml: text, fileName: file.written)
    }

    /// A fault rule's `status`: one `FaultRule` can inject, else nil (reported).
    func injectableStatus(_ node: YAMLNode, _ path: String) -> Int? {
        guard let status = reader.int(node, path, in: 100...599) else { return nil }
        guard FaultRule.allowedStatuses.contains(status) else {
            let allowed = FaultRule.allowedStatuses.sorted().map(String.init).joined(separator: ", ")
            reader.fail(node, path, "must be one of \(allowed), or left out for a delay-only rule")
            return nil
        }
        return status
    }

    func route(_ node: YAMLNode, _ path: String, endpoints: EndpointTable?) -> String? {
        guard let text = reader.nonEmptyString(node, path) else { return nil }
        guard let endpoints else { return nil }
        if let e = endpoints.endpoint(named: text) { return e.operation }
        reader.fail(
            node, path,
            "'\(YAMLReader.printable(text))' names no endpoint; write an operation (get-details) or METHOD path (GET details)"
        )
        return nil
    }

    func faults(_ node: YAMLNode, endpoints: EndpointTable?) -> [GatewayConfig.Fault] {
        guard let items = reader.list(node, "faults") else { return [] }
        var out: [GatewayConfig.Fault] = []
        for item in items {
            guard let m = reader.mapping(item.node, item.path, keys: ["route", "org", "share", "status", "delay_ms"])
            else {
                continue
            }
            let operation = m["route"].flatMap { route($0, m.path("route"), endpoints: endpoints) }
            let org = reader.string(m, "org")
            let share = reader.required(m, "share").flatMap { reader.double($0, m.path("share"), in: 0...1) }
            // `status` and `delay_ms` are each optional (a rule without a status only delays, then forwards); each
            // is nil here when left out, `.some(nil)` when refused (already reported at its line).
            let status = m["status"].map { injectableStatus($0, m.path("status")) }
            let delay = m["delay_ms"].map { reader.int($0, m.path("delay_ms"), in: 0...FaultRule.maxDelayMilliseconds) }
            guard status != .some(nil), delay != .some(nil) else { continue }
            let rule = (status: status ?? nil, delay: (delay ?? nil) ?? 0)
            guard rule.status != nil || rule.delay > 0 else {
                // FaultRuleError.noEffect, said at the key that would give the rule an effect.
                if let n = m["delay_ms"] {
                    reader.fail(
                        n, m.path("delay_ms"), "must be positive in a rule without `status` (a delay-only rule)")
                } else {
                    reader.fail(item.node, item.path, FaultRuleError.noEffect.description)
                }
                continue
            }
            if let share {
                out.append(
                    GatewayConfig.Fault(
                        operation: operation, organization: org, share: share, status: rule.status,
                        delayMs: rule.delay))
            }
        }
        return out
    }

    // MARK: logging, recording, admin

    func logging(_ node: YAMLNode?) -> GatewayConfig.Logging? {
        guard let m = section(node, "logging", keys: ["sinks", "access_log", "level", "spool"]) else { return nil }
        var sinks: [GatewayConfig.Logging.Sink] = [.stdout]
        if let n = m["sinks"], let items = reader.list(n, m.path("sinks")) {
            sinks = items.compactMap { sink($0.node, $0.path) }
        }
        // Two sinks on one file would interleave their batches and each rotate it under the other.
        var filePaths: [String: GatewayConfig.FilePath] = [:]
        for case .file(let sink) in sinks {
            let key = Self.lexicallyNormalized(sink.path.path)
            if let first = filePaths[key] {
                reader.append(
                    sink.path.location.error(
                        "'\(sink.path.written)' is also the file of \(first.location.path); one file, one sink"))
            } else {
                filePaths[key] = sink.path
            }
        }
        guard let spool = spool(m["spool"]) else { return nil }
        return GatewayConfig.Logging(
            sinks: sinks, accessLog: reader.bool(m, "access_log", default: true),
            level: reader.enumeration(m, "level", default: GatewayConfig.Logging.Level.info), spool: spool)
    }

    /// `logging.spool`: the default keeps what the gateway always did (256 MiB beside the configuration file).
    func spool(_ node: YAMLNode?) -> GatewayConfig.Logging.Spool? {
        guard let m = section(node, "logging.spool", keys: ["max_bytes", "directory"]) else { return nil }
        // At least one segment's worth (4 MiB), so that a spool is a spool; at most 1 TiB, as for file sinks.
        let maxBytes = reader.int(m, "max_bytes", in: (4 << 20)...(1 << 40), default: 256 << 20)
        let directory =
            filePath(m, "directory")
            ?? GatewayConfig.FilePath(
                path: resolve(".myorg-gateway-spool"), written: ".myorg-gateway-spool",
                location: reader.location(m.node, "logging.spool.directory"))
        return GatewayConfig.Logging.Spool(maxBytes: maxBytes, directory: directory)
    }

    /// `headers` of a webhook sink: a map of name to a literal or `{ env: NAME }` / `{ file: path }`.
    func webhookHeaders(_ node: YAMLNode, _ path: String) -> [GatewayConfig.Logging.WebhookHeader] {
        guard let m = reader.mapping(node, path, keys: nil) else { return [] }
        var out: [GatewayConfig.Logging.WebhookHeader] = []
        var seen = Set<String>()
        for name in m.order {
            guard let entry = m.entries[name] else { continue }
            let (keyNode, valueNode) = (entry.key, entry.value)
            let at = m.path(name)
            if let problem = ConfigSyntax.webhookHeaderNameProblem(name) {
                reader.fail(keyNode, at, problem.message)
                continue
            }
            guard seen.insert(name.asciiLowercased).inserted else {
                reader.fail(keyNode, at, "header '\(name)' is listed twice (names are case-insensitive)")
                continue
            }
            switch valueNode.kind {
            case .mapping:
                if let source = secret(valueNode, at) { out.append(.init(name: name, value: .secret(source))) }
            case .scalar(let text, _) where !valueNode.isNull:
                // The value is never echoed: it may be a key written inline.
                guard ConfigSyntax.isFieldValue(text) else {
                    reader.fail(valueNode, at, "a header value cannot contain control characters (CR, LF, NUL …)")
                    continue
                }
                out.append(.init(name: name, value: .literal(text)))
            default:
                reader.fail(
                    valueNode, at, "expected a string, { env: NAME } or { file: path }, found \(valueNode.kindName)")
            }
        }
        return out
    }

    func sink(_ node: YAMLNode, _ path: String) -> GatewayConfig.Logging.Sink? {
        guard let m = reader.mapping(node, path, keys: ["stdout", "file", "webhook"]) else { return nil }
        guard m.order.count == 1, let kind = m.order.first, let value = m[kind] else {
            if !m.order.isEmpty || reader.errors.last?.path != path {
                reader.fail(node, path, "a sink is exactly one of { stdout: {} }, { file: {...} }, { webhook: {...} }")
            }
            return nil
        }
        let sub = m.path(kind)
        switch kind {
        case "stdout":
            if !value.isNull { _ = reader.mapping(value, sub, keys: []) }
            return .stdout
        case "file":
            guard let f = reader.mapping(value, sub, keys: ["path", "max_bytes", "fsync", "max_files", "name"]),
                let p = filePath(f, "path", required: true)
            else { return nil }
            return .file(
                .init(
                    path: p, maxBytes: reader.int(f, "max_bytes", in: 1024...(1 << 40), default: 104_857_600),
                    fsync: reader.enumeration(f, "fsync", default: GatewayConfig.Logging.Fsync.interval),
                    maxFiles: reader.int(f, "max_files", in: 1...10_000, default: 5), name: sinkName(f)))
        default:
            let keys = ["url", "authorization", "format", "batch_size", "interval_ms", "headers", "name"]
            guard let w = reader.mapping(value, sub, keys: keys) else { return nil }
            let url = reader.required(w, "url").flatMap { httpsURL($0, w.path("url")) }
            let authorization = w["authorization"].flatMap { secret($0, w.path("authorization")) }
            let format = reader.enumeration(w, "format", default: GatewayConfig.Logging.WebhookFormat.jsonLines)
            let batch = reader.int(w, "batch_size", in: 1...10000, default: 100)
            let interval = reader.int(w, "interval_ms", in: 10...600_000, default: 1000)
            let headers = w["headers"].map { webhookHeaders($0, w.path("headers")) } ?? []
            guard let url else { return nil }
            return .webhook(
                .init(
                    url: url, authorization: authorization, format: format, batchSize: batch, intervalMs: interval,
                    headers: headers, name: sinkName(w)))
        }
    }

    /// A sink's `name`: it names a directory of the spool, so 1–64 letters, digits, `.`, `_` or `-`, not starting
    /// with a dot.
    private func sinkName(_ map: YAMLMap) -> String? {
        guard let name = reader.string(map, "name"), let node = map["name"] else { return nil }
        let allowed = name.utf8.allSatisfy {
            (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2E
                || $0 == 0x5F || $0 == 0x2D
        }
        guard allowed, name.utf8.count <= 64, name.utf8.first != UInt8(ascii: ".") else {
            reader.fail(
                node, map.path("name"),
                "a sink name is 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' (it names a spool directory)"
            )
            return nil
        }
        // Two sinks of one name would share a spool directory, each taking the other's events as its own.
        if let first = sinkNamesSeen[name] {
            reader.fail(node, map.path("name"), "the sink name '\(name)' is also \(first)'s; one name, one sink")
            return nil
        }
        sinkNamesSeen[name] = map.path("name")
        return name
    }

    func recording(_ node: YAMLNode?, endpoints: EndpointTable?) -> GatewayConfig.Recording? {
        let keys = ["enabled", "path", "sample_rate", "routes", "organizations", "max_body_bytes", "redact"]
        guard let m = section(node, "recording", keys: keys) else { return nil }
        let path =
            filePath(m, "path")
            ?? GatewayConfig.FilePath(
                path: resolve("recordings.jsonl"), written: "recordings.jsonl",
                location: reader.location(m.node, "recording.path"))
        var operations: [String] = []
        for item in unique(strings(m, "routes"), what: "route") {
            if let op = route(item.node, item.path, endpoints: endpoints), !operations.contains(op) {
                operations.append(op)
            }
        }
        let organizations = unique(strings(m, "organizations"), what: "organization").map(\.value)
        var headers: [String] = []
        var pointers: [String] = []
        if let n = m["redact"], let r = reader.mapping(n, m.path("redact"), keys: ["headers", "json_pointers"]) {
            for item in unique(strings(r, "headers"), what: "header") {
                if ConfigSyntax.isHeaderName(item.value) {
                    headers.append(item.value.asciiLowercased)
                } else {
                    reader.fail(item.node, item.path, "'\(YAMLReader.printable(item.value))' is not a header name")
                }
            }
            for item in r["json_pointers"].flatMap({ reader.list($0, r.path("json_pointers")) }) ?? [] {
                guard let text = reader.string(item.node, item.path) else { continue }
                if ConfigSyntax.isJSONPointer(text) && !text.isEmpty {
                    pointers.append(text)
                } else {
                    reader.fail(
                        item.node, item.path,
                        "'\(YAMLReader.printable(text))' is not a JSON pointer such as /options/client_secret")
                }
            }
        }
        return GatewayConfig.Recording(
            enabled: reader.bool(m, "enabled", default: false), path: path,
            sampleRate: reader.double(m, "sample_rate", in: 0...1, default: 1.0), operations: operations,
            organizations: organizations,
            maxBodyBytes: reader.int(m, "max_body_bytes", in: 0...(16 << 20), default: 65536),
            redactHeaders: headers, redactJSONPointers: pointers)
    }

    func admin(_ node: YAMLNode) -> GatewayConfig.Admin? {
        guard let m = reader.mapping(node, "admin", keys: ["address"]),
            let n = reader.required(m, "address"), let address = socketAddress(n, m.path("address"))
        else { return nil }
        guard address.isLoopback else {
            reader.fail(
                n, m.path("address"), "the admin endpoint has no authentication: it must listen on a loopback address")
            return nil
        }
        return GatewayConfig.Admin(address: address)
    }
}
