import GatewayCore

extension GatewayConfig {
    /// The configuration as JSON, safe to show (the admin `/config` endpoint, `check --print`).
    ///
    /// Secrets are never in a `GatewayConfig` (only where to find them), but URL query strings may carry
    /// keys, so every URL is shown without its query; secret sources show only `env` or `file`.
    public func redactedJSON() -> JSONValue {
        var top: [(String, JSONValue)] = []
        top.append(
            (
                "tenant",
                .object([
                    ("name", .string(tenant.name)),
                    ("environment_name", tenant.environmentName.map { .string($0) } ?? .null),
                    ("canonical_domain", .string(tenant.canonicalDomain)),
                    ("custom_domains", .array(tenant.customDomains.map { .string($0) })),
                    ("tier", .string(tenant.tier.rawValue)),
                    ("jwks", jwksJSON),
                    ("tiers_file", tenant.tiersFile.map { .string($0.path) } ?? .null),
                    ("endpoints_file", tenant.endpointsFile.map { .string($0.path) } ?? .null),
                ])
            ))
        top.append(("listeners", .array(listeners.map(Self.json))))
        top.append(("upstream", .object(upstreams.map { ($0.domain, Self.json($0)) })))
        top.append(("forward_unknown_endpoints", .bool(forwardUnknownEndpoints)))
        top.append(
            (
                "limits",
                .object([
                    ("max_connections", number(limits.maxConnections)),
                    ("header_read_timeout_ms", number(limits.headerReadTimeoutMs)),
                    ("idle_timeout_ms", number(limits.idleTimeoutMs)),
                    ("min_body_bytes_per_s", number(limits.minBodyBytesPerSecond)),
                    ("max_body_bytes", number(limits.maxBodyBytes)),
                    ("max_header_bytes", number(limits.maxHeaderBytes)),
                    ("shutdown_grace_ms", number(limits.shutdownGraceMs)),
                ])
            ))
        top.append(
            (
                "tokens",
                .object([
                    ("algorithms", .array(tokens.algorithms.map { .string($0) })),
                    ("leeway_s", number(tokens.leewayS)),
                    ("exp_leeway_s", number(tokens.expLeewayS)),
                    ("max_lifetime_s", number(tokens.maxLifetimeS)),
                    ("max_token_bytes", number(tokens.maxTokenBytes)),
                ])
            ))
        top.append(
            (
                "access",
                .object([
                    ("user_flows", .string(access.userFlows.rawValue)),
                    ("client_credentials", .string(access.clientCredentials.rawValue)),
                ])
            ))
        top.append(("clients", .array(clients.map(Self.json))))
        if let stepUp {
            var m: [(String, JSONValue)] = [("scopes", .array(stepUp.scopes.map { .string($0) }))]
            switch stepUp.requirement {
            case .amr(let v): m.append(("amr", .string(v)))
            case .acr(let v): m.append(("acr", .string(v)))
            }
            top.append(("step_up", .object(m)))
        }
        top.append(("cors", .object([("max_age_s", number(cors.maxAgeS))])))
        var rl: [(String, JSONValue)] = []
        switch rateLimits.store {
        case .local: rl.append(("store", "local"))
        case .redis(let url, let password):
            rl.append(("store", "redis"))
            rl.append(("url", .string(url.redacted)))
            if let password { rl.append(("password", Self.json(password))) }
        }
        rl.append(("burst_s", .number(rateLimits.burstS)))
        if let tier = rateLimits.simulateTier { rl.append(("simulate_tier", .string(tier.rawValue))) }
        top.append(("rate_limits", .object(rl)))
        top.append(
            (
                "faults",
                .array(
                    faults.map { f in
                        .object([
                            ("route", f.operation.map { .string($0) } ?? .null),
                            ("org", f.organization.map { .string($0) } ?? .null),
                            ("share", .number(f.share)), ("status", f.status.map(number) ?? .null),
                            ("delay_ms", number(f.delayMs)),
                        ])
                    })
            ))
        top.append(
            (
                "logging",
                .object([
                    ("sinks", .array(logging.sinks.map(Self.json))),
                    ("access_log", .bool(logging.accessLog)),
                    ("level", .string(logging.level.rawValue)),
                    (
                        "spool",
                        .object([
                            ("max_bytes", .number(Double(logging.spool.maxBytes))),
                            ("directory", .string(logging.spool.directory.path)),
                        ])
                    ),
                ])
            ))
        top.append(
            (
                "recording",
                .object([
                    ("enabled", .bool(recording.enabled)),
                    ("path", .string(recording.path.path)),
                    ("sample_rate", .number(recording.sampleRate)),
                    ("routes", .array(recording.operations.map { .string($0) })),
                    ("organizations", .array(recording.organizations.map { .string($0) })),
                    ("max_body_bytes", number(recording.maxBodyBytes)),
                    (
                        "redact",
                        .object([
                            ("headers", .array(recording.redactHeaders.map { .string($0) })),
                            ("json_pointers", .array(recording.redactJSONPointers.map { .string($0) })),
                        ])
                    ),
                ])
            ))
        top.append(("admin", admin.map { .object([("address", .string($0.address.description))]) } ?? .null))
        top.append(("endpoints", number(endpoints.endpoints.count)))
        return .object(top)
    }

    /// `redactedJSON()` as compact JSON text.
    public func redactedDescription() -> String { redactedJSON().serialized() }

    private func number(_ n: Int) -> JSONValue { .number(Double(n)) }

    private var jwksJSON: JSONValue {
        switch tenant.jwks.source {
        case .url(let url):
            return .object([
                ("url", .string(url.redacted)),
                ("refresh_interval_s", number(tenant.jwks.refreshIntervalS)),
                ("min_refetch_interval_s", number(tenant.jwks.minRefetchIntervalS)),
            ])
        case .file(let f): return .object([("file", .string(f.path))])
        }
    }

    static func json(_ secret: SecretSource) -> JSONValue {
        switch secret {
        case .environment(let name, _): return .object([("env", .string(name))])
        case .file(let f): return .object([("file", .string(f.path))])
        }
    }

    static func json(_ listener: Listener) -> JSONValue {
        var m: [(String, JSONValue)] = [("address", .string(listener.address.description))]
        if let d = listener.domain { m.append(("domain", .string(d))) }
        if let tls = listener.tls {
            m.append(
                (
                    "tls",
                    .object([
                        (
                            "certificates",
                            .array(
                                tls.certificates.map {
                                    .object([("cert", .string($0.cert.path)), ("key", .string($0.key.path))])
                                })
                        ),
                        ("alpn", .array(tls.alpn.map { .string($0) })),
                    ])
                ))
        }
        return .object(m)
    }

    static func json(_ u: Upstream) -> JSONValue {
        var m: [(String, JSONValue)] = [
            ("url", .string(u.url.redacted)),
            ("max_connections", .number(Double(u.maxConnections))),
            ("connect_timeout_ms", .number(Double(u.connectTimeoutMs))),
            ("response_timeout_ms", .number(Double(u.responseTimeoutMs))),
            ("idle_timeout_ms", .number(Double(u.idleTimeoutMs))),
        ]
        if let ca = u.caFile { m.append(("ca_file", .string(ca.path))) }
        if let key = u.cnameAPIKey { m.append(("cname_api_key", json(key))) }
        if let h = u.clientIPHeader { m.append(("client_ip_header", .string(h))) }
        return .object(m)
    }

    static func json(_ c: Client) -> JSONValue {
        var m: [(String, JSONValue)] = [("client_id", .string(c.clientID))]
        if let n = c.name { m.append(("name", .string(n))) }
        m.append(("allowed_origins", .array(c.allowedOrigins.map { .string($0) })))
        m.append(("cross_origin_authentication", .bool(c.crossOriginAuthentication)))
        m.append(("grant_scopes", .array(c.grantScopes.map { .string($0) })))
        if let o = c.myOrganization {
            var om: [(String, JSONValue)] = [
                ("allowed_strategies", .array(o.allowedStrategies.map { .string($0) })),
                ("connection_deletion_behavior", .string(o.connectionDeletionBehavior.rawValue)),
            ]
            if let p = o.connectionProfileID { om.append(("connection_profile_id", .string(p))) }
            if let p = o.userAttributeProfileID { om.append(("user_attribute_profile_id", .string(p))) }
            m.append(("my_organization_configuration", .object(om)))
        }
        return .object(m)
    }

    static func json(_ sink: Logging.Sink) -> JSONValue {
        switch sink {
        case .stdout: return .object([("stdout", .object([]))])
        case .file(let f):
            return .object([
                (
                    "file",
                    .object([
                        ("path", .string(f.path.path)), ("max_bytes", .number(Double(f.maxBytes))),
                        ("fsync", .string(f.fsync.rawValue)), ("max_files", .number(Double(f.maxFiles))),
                    ])
                )
            ])
        case .webhook(let w):
            var m: [(String, JSONValue)] = [("url", .string(w.url.redacted))]
            if let a = w.authorization { m.append(("authorization", json(a))) }
            m.append(("format", .string(w.format.rawValue)))
            m.append(("batch_size", .number(Double(w.batchSize))))
            m.append(("interval_ms", .number(Double(w.intervalMs))))
            if !w.headers.isEmpty {
                // Names only: a literal value may still be a key someone wrote inline.
                m.append(
                    (
                        "headers",
                        .object(
                            w.headers.map { header in
                                switch header.value {
                                case .literal: return (header.name, .string("(literal, not shown)"))
                                case .secret(let source): return (header.name, json(source))
                                }
                            })
                    ))
            }
            return .object([("webhook", .object(m))])
        }
    }
}
