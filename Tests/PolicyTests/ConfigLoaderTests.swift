import GatewayCore
import Testing

@testable import Policy

struct BadConfig: Sendable, CustomTestStringConvertible {
    let name: String
    let yaml: String
    let line: Int
    let path: String
    let message: String
    var testDescription: String { name }
}

private func m(_ replacements: [(String, String)] = [], append: String = "") -> String {
    ConfigFixtures.minimal(replacements, append: append)
}

private func client(_ line: String) -> String { "clients:\n  - client_id: abc\n    \(line)\n" }

let badConfigs: [BadConfig] = [
    BadConfig(
        name: "unknown top-level key", yaml: m(append: "loging: {}\n"), line: 12, path: "loging",
        message: "unknown key 'loging' (did you mean 'logging'?)"),
    BadConfig(
        name: "unknown nested key", yaml: m(append: "cors: { max_age: 10 }\n"), line: 12, path: "cors.max_age",
        message: "did you mean 'max_age_s'?"),
    BadConfig(
        name: "bad tier", yaml: m([("tier: free", "tier: gold")]), line: 5, path: "tenant.tier",
        message: "'gold' is not one of free | public_self_service"),
    BadConfig(
        name: "host name as listener address", yaml: m([("127.0.0.1:8080", "localhost:8080")]), line: 7,
        path: "listeners[0].address", message: "not an IP address"),
    BadConfig(
        name: "port out of range", yaml: m([("127.0.0.1:8080", "127.0.0.1:70000")]), line: 7,
        path: "listeners[0].address", message: "is not a port"),
    BadConfig(
        name: "IPv6 without brackets", yaml: m([("127.0.0.1:8080", "\"::1:8080\"")]), line: 7,
        path: "listeners[0].address", message: "in brackets"),
    BadConfig(
        name: "inline cname_api_key",
        yaml: m([("cname_api_key: { env: CNAME_API_KEY }", "cname_api_key: s3cr3t-value")]), line: 11,
        path: "upstream[\"login.acme.com\"].cname_api_key", message: "must not be written inline"),
    BadConfig(
        name: "a second listener on the same port behind the IPv4 wildcard",
        yaml: m([("    domain: acme.us.auth0.com\n", "    domain: acme.us.auth0.com\n  - address: 0.0.0.0:8080\n")]),
        line: 9, path: "listeners[1].address", message: "shares its port with listeners[0] (127.0.0.1:8080)"),
    BadConfig(
        name: "a second listener on the same port behind the IPv6 wildcard",
        yaml: m([("    domain: acme.us.auth0.com\n", "    domain: acme.us.auth0.com\n  - address: \"[::]:8080\"\n")]),
        line: 9, path: "listeners[1].address", message: "shares its port with listeners[0]"),
    BadConfig(
        name: "the admin endpoint on a listener's port behind a wildcard",
        yaml: m([("127.0.0.1:8080", "0.0.0.0:8080")], append: "admin: { address: 127.0.0.1:8080 }\n"), line: 12,
        path: "admin.address", message: "shares its port with the listener 0.0.0.0:8080"),
    BadConfig(
        name: "two file sinks on one file",
        yaml: m(
            append: "logging:\n  sinks:\n    - file: { path: events.jsonl }\n    - file: { path: ./events.jsonl }\n"),
        line: 15, path: "logging.sinks[1].file.path", message: "is also the file of logging.sinks[0].file.path"),
    BadConfig(
        name: "the recording on an event sink's file",
        yaml: m(
            append: "logging:\n  sinks: [ { file: { path: events.jsonl } } ]\n"
                + "recording: { enabled: true, path: events.jsonl }\n"), line: 14, path: "recording.path",
        message: "is also the file of logging.sinks[0].file.path"),
    BadConfig(
        name: "a tenant domain without an upstream behind a listener without a domain",
        yaml: m([
            ("    domain: acme.us.auth0.com\n", ""),
            (
                "  login.acme.com: { url: https://acme-cd.edge.tenants.us.auth0.com, cname_api_key: { env: CNAME_API_KEY } }\n",
                ""
            ),
        ]), line: 9, path: "upstream", message: "no upstream for 'login.acme.com'"),
    BadConfig(
        name: "client_ip_header naming a framing header",
        yaml: m([
            (
                "{ url: https://acme.us.auth0.com }",
                "{ url: https://acme.us.auth0.com, client_ip_header: Content-Length }"
            )
        ]),
        line: 10, path: "upstream[\"acme.us.auth0.com\"].client_ip_header", message: "frames or routes the request"),
    BadConfig(
        name: "client_ip_header naming a credential",
        yaml: m([
            (
                "{ url: https://acme.us.auth0.com }",
                "{ url: https://acme.us.auth0.com, client_ip_header: cname-api-key }"
            )
        ]),
        line: 10, path: "upstream[\"acme.us.auth0.com\"].client_ip_header", message: "carries credentials"),
    BadConfig(
        name: "client_ip_header the gateway writes",
        yaml: m([("{ url: https://acme.us.auth0.com }", "{ url: https://acme.us.auth0.com, client_ip_header: Via }")]),
        line: 10, path: "upstream[\"acme.us.auth0.com\"].client_ip_header", message: "writes 'Via' itself"),
    BadConfig(
        name: "http upstream on a public host",
        yaml: m([("{ url: https://acme.us.auth0.com }", "{ url: http://acme.us.auth0.com }")]), line: 10,
        path: "upstream[\"acme.us.auth0.com\"].url", message: "http is allowed only for loopback hosts"),
    BadConfig(
        name: "upstream URL with a path",
        yaml: m([("{ url: https://acme.us.auth0.com }", "{ url: https://acme.us.auth0.com/my-org }")]), line: 10,
        path: "upstream[\"acme.us.auth0.com\"].url", message: "origin only"),
    BadConfig(
        name: "unknown scope in a grant",
        yaml: m(append: client("grant_scopes: [read:my_org:details, read:my_org:detail]")),
        line: 14, path: "clients[0].grant_scopes[1]", message: "did you mean 'read:my_org:details'?"),
    BadConfig(
        name: "listener domain outside the tenant",
        yaml: m([("    domain: acme.us.auth0.com", "    domain: evil.example.com")]), line: 8,
        path: "listeners[0].domain", message: "'evil.example.com' is not a tenant domain"),
    BadConfig(
        name: "upstream key outside the tenant",
        yaml: m(append: "  evil.example.com: { url: https://evil.example.com }\n"),
        line: 12, path: "upstream[\"evil.example.com\"]", message: "is not a tenant domain"),
    BadConfig(
        name: "tls listener without certificates",
        yaml: m([("    domain: acme.us.auth0.com", "    domain: acme.us.auth0.com\n    tls: { certificates: [] }")]),
        line: 9, path: "listeners[0].tls.certificates", message: "at least one certificate"),
    BadConfig(
        name: "uppercase domain", yaml: m([("canonical_domain: acme.us", "canonical_domain: Acme.us")]), line: 3,
        path: "tenant.canonical_domain", message: "lowercase"),
    BadConfig(
        name: "number out of range", yaml: m(append: "tokens: { leeway_s: 1000 }\n"), line: 12, path: "tokens.leeway_s",
        message: "1000 is out of range 0...300"),
    BadConfig(
        name: "negative body rate", yaml: m(append: "limits: { min_body_bytes_per_s: -1 }\n"), line: 12,
        path: "limits.min_body_bytes_per_s", message: "-1 is out of range 0...1073741824"),
    BadConfig(
        name: "token lifetime over the tenant's 600 s", yaml: m(append: "tokens: { max_lifetime_s: 601 }\n"),
        line: 12, path: "tokens.max_lifetime_s", message: "601 is out of range 1...600"),
    BadConfig(
        name: "quoted number", yaml: m(append: "limits: { max_connections: \"10\" }\n"), line: 12,
        path: "limits.max_connections", message: "expected an integer"),
    BadConfig(
        name: "yes is not a boolean", yaml: m(append: "forward_unknown_endpoints: yes\n"), line: 12,
        path: "forward_unknown_endpoints", message: "expected true or false"),
    BadConfig(
        name: "missing required key", yaml: m([("  tier: free\n", "")]), line: 2, path: "tenant.tier",
        message: "required key 'tier' is missing"),
    BadConfig(
        name: "wildcard not in the left-most label",
        yaml: m(append: client("allowed_origins: [https://app.acme.com, \"https://a.*.acme.com\"]")), line: 14,
        path: "clients[0].allowed_origins[1]", message: "left-most label"),
    BadConfig(
        name: "wildcard over a top-level domain", yaml: m(append: client("allowed_origins: [\"https://*.com\"]")),
        line: 14, path: "clients[0].allowed_origins[0]", message: "at least two labels"),
    BadConfig(
        name: "origin with user information",
        yaml: m(append: client("allowed_origins: [\"https://u@app.acme.com/x\"]")),
        line: 14, path: "clients[0].allowed_origins[0]", message: "no user information"),
    BadConfig(
        name: "origin with an upper-case scheme",
        yaml: m(append: client("allowed_origins: [\"HTTPS://app.acme.com\"]")),
        line: 14, path: "clients[0].allowed_origins[0]", message: "write the scheme in lowercase"),
    BadConfig(
        name: "step-up with amr and acr",
        yaml: m(append: "step_up: { scopes: [read:my_org:details], amr: mfa, acr: x }\n"),
        line: 12, path: "step_up", message: "exactly one of amr or acr"),
    BadConfig(
        name: "inline webhook authorization",
        yaml: m(
            append:
                "logging:\n  sinks:\n    - webhook: { url: https://logs.example.com/in, authorization: Bearer abc }\n"),
        line: 14, path: "logging.sinks[0].webhook.authorization", message: "must not be written inline"),
    BadConfig(
        name: "admin on a public address", yaml: m(append: "admin: { address: 0.0.0.0:9901 }\n"), line: 12,
        path: "admin.address", message: "loopback"),
    BadConfig(
        name: "duplicate key", yaml: m([("  tier: free\n", "  tier: free\n  tier: free\n")]), line: 6,
        path: "tenant.tier", message: "duplicate key 'tier' in one mapping (first at line 5, column 3)"),
    BadConfig(
        name: "duplicate key of two tags", yaml: m(append: "limits: { 1: a, \"1\": b }\n"), line: 12,
        path: "limits.1", message: "duplicate key '1' in one mapping (first at line 12, column 11)"),
    BadConfig(
        name: "YAML syntax error", yaml: m(append: "cors: { max_age_s: 10\n"), line: 13, path: "",
        message: "invalid YAML"),
    BadConfig(
        name: "fault naming no endpoint", yaml: m(append: "faults: [{ route: GET detail, share: 0.5, status: 503 }]\n"),
        line: 12, path: "faults[0].route", message: "names no endpoint"),
    BadConfig(
        name: "fault status", yaml: m(append: "faults: [{ route: GET details, share: 0.5, status: 404 }]\n"), line: 12,
        path: "faults[0].status", message: "must be one of 429, 500, 502, 503, 504"),
    BadConfig(
        name: "unsupported algorithm", yaml: m(append: "tokens: { algorithms: [HS256] }\n"), line: 12,
        path: "tokens.algorithms[0]", message: "only RS256"),
    BadConfig(
        name: "unknown strategy",
        yaml: m(append: client("my_organization_configuration: { allowed_strategies: [okta, github] }")), line: 14,
        path: "clients[0].my_organization_configuration.allowed_strategies[1]", message: "'github' is not one of"),
    BadConfig(
        name: "duplicate client", yaml: m(append: "clients:\n  - client_id: abc\n  - client_id: abc\n"), line: 14,
        path: "clients[1].client_id", message: "already configured"),
    BadConfig(
        name: "redis without url", yaml: m(append: "rate_limits: { store: redis }\n"), line: 12,
        path: "rate_limits.url",
        message: "required key 'url' is missing"),
    BadConfig(
        name: "credentials in a URL",
        yaml: m(append: "rate_limits: { store: redis, url: \"redis://:pw@127.0.0.1:6379\" }\n"),
        line: 12, path: "rate_limits.url", message: "credentials in a URL are refused"),
    BadConfig(
        name: "a query in the Redis URL",
        yaml: m(append: "rate_limits: { store: redis, url: \"redis://127.0.0.1:6379?db=2\" }\n"),
        line: 12, path: "rate_limits.url", message: "a query is not read here"),
    BadConfig(
        name: "a Redis URL path that is not a database number",
        yaml: m(append: "rate_limits: { store: redis, url: \"redis://127.0.0.1:6379/cache\" }\n"),
        line: 12, path: "rate_limits.url", message: "must be empty or a database number"),
    BadConfig(
        name: "endpoints_file without a reader",
        yaml: m([("  tier: free\n", "  tier: free\n  endpoints_file: e.yaml\n")]),
        line: 6, path: "tenant.endpoints_file", message: "given no file reader"),
    BadConfig(
        name: "environment name with a space",
        yaml: m([("  tier: free\n", "  tier: free\n  environment_name: \"prod 2\"\n")]),
        line: 6, path: "tenant.environment_name", message: "printable ASCII without spaces"),
]

@Suite("Config loader")
struct ConfigLoaderTests {
    @Test("tenant.environment_name is optional and read verbatim")
    func environmentName() throws {
        #expect(try ConfigFixtures.load(m()).tenant.environmentName == nil)
        let tagged = try ConfigFixtures.load(m([("  tier: free\n", "  tier: free\n  environment_name: staging\n")]))
        #expect(tagged.tenant.environmentName == "staging")
    }

    @Test("the access flows take the reference's hyphenated spelling too; exp_leeway_s is read")
    func hyphenatedAccessAndExpLeeway() throws {
        let config = try ConfigFixtures.load(
            m(
                append: "access: { user_flows: require-client-grant, client_credentials: deny-all }\n"
                    + "tokens: { leeway_s: 10, exp_leeway_s: 5 }\n"))
        #expect(config.access == GatewayConfig.Access(userFlows: .requireClientGrant, clientCredentials: .denyAll))
        #expect(config.tokens.leewayS == 10)
        #expect(config.tokens.expLeewayS == 5)
        let allowAll = try ConfigFixtures.load(m(append: "access: { user_flows: allow-all }\n"))
        #expect(allowAll.access.userFlows == .allowAll)
    }

    @Test("an allowed origin written with a path, query or fragment stands for its origin, once")
    func originPathIsNotPartOfTheOrigin() throws {
        let config = try ConfigFixtures.load(
            m(
                append: client(
                    "allowed_origins: [\"https://app.acme.com/\", \"https://app.acme.com\", \"https://b.acme.com:8443/p?q=1#f\", "
                        + "\"https://*.apps.acme.com/callback\", \"http://c.acme.com?x\", \"http://d.acme.com#top\"]")))
        #expect(
            config.clients.first?.allowedOrigins == [
                "https://app.acme.com", "https://b.acme.com:8443", "https://*.apps.acme.com", "http://c.acme.com",
                "http://d.acme.com",
            ])
        let policy = try CORSPolicy.compile(clientOrigins: ["abc": config.clients[0].allowedOrigins])
        #expect(policy.isAllowed(origin: "https://app.acme.com", clientID: "abc"))
        #expect(policy.isAllowed(origin: "https://x.apps.acme.com", clientID: "abc"))
        #expect(policy.isAllowed(origin: "https://b.acme.com:8443", clientID: "abc"))
        #expect(!policy.isAllowed(origin: "https://b.acme.com", clientID: "abc"))
        // What is left after the path must still be an origin.
        for bad in ["https:///x", "https://a.*.acme.com/", "ftp://a.acme.com/"] {
            #expect(throws: (any Error).self, "\(bad)") {
                try ConfigFixtures.load(m(append: client("allowed_origins: [\"\(bad)\"]")))
            }
        }
    }

    @Test("the minimal fixture loads with the schema's defaults")
    func minimalLoads() throws {
        let config = try ConfigFixtures.load(m())
        #expect(config.tenant.domains == ["acme.us.auth0.com", "login.acme.com"])
        #expect(config.tenant.tier == .free)
        #expect(config.listeners.count == 1)
        #expect(config.upstream(for: "login.acme.com")?.url.host == "acme-cd.edge.tenants.us.auth0.com")
        #expect(
            config.tokens
                == GatewayConfig.Tokens(
                    algorithms: ["RS256"], leewayS: 30, expLeewayS: 0, maxLifetimeS: 600, maxTokenBytes: 8192))
        #expect(config.access == GatewayConfig.Access(userFlows: .requireClientGrant, clientCredentials: .denyAll))
        #expect(config.limits.maxBodyBytes == 1_048_576)
        #expect(config.limits.minBodyBytesPerSecond == 1024)
        #expect(
            try ConfigFixtures.load(m(append: "limits: { min_body_bytes_per_s: 0 }\n")).limits.minBodyBytesPerSecond
                == 0)
        #expect(config.logging.sinks == [.stdout])
        #expect(config.admin == nil)
        #expect(config.endpoints == EndpointTable.embedded)
        guard case .url(let url) = config.tenant.jwks.source else {
            Issue.record("the default JWKS is the canonical domain's URL")
            return
        }
        #expect(url.text == "https://acme.us.auth0.com/.well-known/jwks.json")
    }

    @Test("a bad config is refused with file, line and key path", arguments: badConfigs)
    func refuses(_ bad: BadConfig) {
        let errors = ConfigFixtures.errors(bad.yaml)
        let match = errors.first { $0.path == bad.path && $0.message.contains(bad.message) }
        #expect(
            match != nil,
            "expected \(bad.path): …\(bad.message)… among:\n\(errors.map(\.description).joined(separator: "\n"))")
        #expect(match?.line == bad.line)
        #expect(match?.file == "tenant.yaml")
        if let match {
            let prefix = "tenant.yaml:\(bad.line):\(match.column): " + (bad.path.isEmpty ? "" : bad.path + ": ")
            #expect(match.description.hasPrefix(prefix))
        }
    }

    @Test("aliases of aliases (billion laughs) are refused at once, not expanded")
    func aliasBomb() {
        var bomb = "x:\n  a0: &a0 [" + Array(repeating: "lol", count: 10).joined(separator: ",") + "]\n"
        for level in 1..<10 {
            bomb +=
                "  a\(level): &a\(level) ["
                + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ",") + "]\n"
        }
        let start = ContinuousClock.now
        let errors = ConfigFixtures.errors(m(append: bomb))
        #expect(errors.contains { $0.message.contains("expands to more than") }, "\(errors)")
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test("an inline secret is never echoed")
    func inlineSecretNotEchoed() {
        let errors = ConfigFixtures.errors(
            m([("cname_api_key: { env: CNAME_API_KEY }", "cname_api_key: s3cr3t-value")]))
        #expect(!errors.isEmpty)
        #expect(!errors.map(\.description).joined().contains("s3cr3t"))
        #expect(errors.contains { $0.message.contains("{ env: NAME } or { file: path }") })
    }

    @Test("every error is collected, not only the first")
    func collectsAll() {
        let yaml = m(
            [("tier: free", "tier: gold"), ("127.0.0.1:8080", "localhost:8080")],
            append: "tokens: { leeway_s: -1 }\nloging: {}\n")
        let paths = Set(ConfigFixtures.errors(yaml).map(\.path))
        #expect(paths.isSuperset(of: ["tenant.tier", "listeners[0].address", "tokens.leeway_s", "loging"]))
    }

    @Test("the description reads file:line:col: path: message")
    func descriptionFormat() {
        let errors = ConfigFixtures.errors(m([("tier: free", "tier: gold")]))
        #expect(
            errors.map(\.description) == [
                "tenant.yaml:5:9: tenant.tier: 'gold' is not one of free | public_self_service | public_enterprise | "
                    + "private_basic | private_performance"
            ])
    }

    @Test("http is allowed for loopback upstreams only")
    func loopbackHTTP() throws {
        for host in ["127.0.0.1:9000", "localhost:9000", "[::1]:9000"] {
            let config = try ConfigFixtures.load(
                m([("{ url: https://acme.us.auth0.com }", "{ url: \"http://\(host)\" }")]))
            #expect(config.upstream(for: "acme.us.auth0.com")?.url.scheme == "http")
        }
    }

    @Test("addresses parse in both families; malformed ones are refused")
    func addresses() {
        #expect(SocketAddress.parse("[::1]:8443") == .success(SocketAddress(host: "::1", port: 8443, family: .ipv6)))
        #expect(SocketAddress.parse("0.0.0.0:0") == .success(SocketAddress(host: "0.0.0.0", port: 0, family: .ipv4)))
        for bad in ["127.0.0.1", "127.0.0.01:80", "[::1]", "[::1]:", "[fe80::1%eth0]:80", "1.2.3.4:-1", "[1::2::3]:80"]
        {
            if case .success = SocketAddress.parse(bad) { Issue.record("\(bad) should be refused") }
        }
    }

    @Test("relative paths resolve against the config's directory")
    func relativePaths() throws {
        let tls = "    domain: acme.us.auth0.com\n    tls: { certificates: [{ cert: certs/a.pem, key: /abs/a.key }] }"
        let config = try ConfigFixtures.load(m([("    domain: acme.us.auth0.com", tls)]))
        let cert = try #require(config.listeners.first?.tls?.certificates.first)
        #expect(cert.cert.path == "/etc/gw/certs/a.pem")
        #expect(cert.cert.written == "certs/a.pem")
        #expect(cert.key.path == "/abs/a.key")
        #expect(config.listeners.first?.tls?.alpn == ["h2", "http/1.1"])
    }

    @Test("an endpoints_file is read through the injected reader, and its errors name that file")
    func endpointsFile() throws {
        let yaml = m([("  tier: free\n", "  tier: free\n  endpoints_file: mine.yaml\n")])
        let good = """
            version: 1
            endpoints:
              - { operation: x, method: GET, path: x, scopes: [read:x], class: read, log_resource: none, ok_status: 200 }

            """
        let config = try ConfigFixtures.load(yaml, readFile: { $0 == "/etc/gw/mine.yaml" ? good : nil })
        #expect(config.endpoints.endpoints.map(\.operation) == ["x"])

        let bad = good.replacingOccurrences(of: "method: GET", with: "method: FETCH")
        #expect(throws: ConfigErrors.self) { try ConfigFixtures.load(yaml, readFile: { _ in bad }) }
        do {
            _ = try ConfigFixtures.load(yaml, readFile: { _ in bad })
        } catch {
            #expect(
                error.errors.map(\.description) == [
                    "mine.yaml:3:29: endpoints[0].method: 'FETCH' is not one of GET | POST | PUT | PATCH | DELETE"
                ])
        }
    }

    @Test("policies/tenant.example.yaml loads clean, as shipped and with its TLS and edge-mode lines uncommented")
    func exampleLoads() throws {
        let shipped = try GatewayConfig.load(
            yaml: ConfigFixtures.policyFile("tenant.example.yaml"), file: "tenant.example.yaml",
            baseDirectory: "/srv/gw")
        #expect(shipped.listeners[0].tls == nil)
        #expect(shipped.upstream(for: "login.acme.com")?.cnameAPIKey == nil)
        let text = try ConfigFixtures.exampleWithTLSAndEdge()
        let config: GatewayConfig
        do {
            config = try GatewayConfig.load(yaml: text, file: "tenant.example.yaml", baseDirectory: "/srv/gw")
        } catch {
            Issue.record("the example does not load:\n\(error)")
            return
        }
        #expect(config.tenant.name == "acme")
        #expect(config.tenant.tier == .publicEnterprise)
        #expect(config.listeners.map(\.address.description) == ["127.0.0.1:8443", "127.0.0.1:8080"])
        #expect(config.listeners[0].tls?.certificates.first?.cert.path == "/srv/gw/certs/login.pem")
        #expect(config.upstreams.map(\.domain) == ["acme.us.auth0.com", "login.acme.com"])
        #expect(config.upstream(for: "login.acme.com")?.clientIPHeader == "x-forwarded-for")
        #expect(config.client(id: "abc123")?.myOrganization?.allowedStrategies == ["okta", "samlp"])
        #expect(
            config.stepUp
                == GatewayConfig.StepUp(scopes: ["delete:my_org:identity_providers"], requirement: .amr("mfa")))
        #expect(config.admin?.address.description == "127.0.0.1:9901")
        guard case .environment(let name, let at) = config.upstream(for: "login.acme.com")?.cnameAPIKey else {
            Issue.record("cname_api_key comes from the environment")
            return
        }
        #expect(name == "CNAME_API_KEY")
        #expect(at.path == "upstream[\"login.acme.com\"].cname_api_key.env")
    }
}
