extension GatewayConfig {
    /// Every file the configuration names that must exist when the gateway starts: certificates and keys,
    /// a JWKS file, CA files, secret files, the tier and endpoint tables.
    public var referencedFiles: [(what: String, file: FilePath)] {
        var out: [(String, FilePath)] = []
        if case .file(let f) = tenant.jwks.source { out.append(("JWKS file", f)) }
        if let f = tenant.tiersFile { out.append(("tier table", f)) }
        if let f = tenant.endpointsFile { out.append(("endpoint table", f)) }
        for listener in listeners {
            for c in listener.tls?.certificates ?? [] {
                out.append(("certificate", c.cert))
                out.append(("private key", c.key))
            }
        }
        for upstream in upstreams {
            if let f = upstream.caFile { out.append(("CA file", f)) }
            if case .file(let f) = upstream.cnameAPIKey { out.append(("secret file", f)) }
        }
        if case .redis(_, .file(let f)) = rateLimits.store { out.append(("secret file", f)) }
        for case .webhook(let w) in logging.sinks {
            if case .file(let f) = w.authorization { out.append(("secret file", f)) }
            for case .secret(.file(let f)) in w.headers.map(\.value) { out.append(("secret file", f)) }
        }
        return out
    }

    /// Every secret the configuration reads from the environment, with where it was named.
    public var referencedEnvironment: [(name: String, location: ConfigLocation)] {
        var out: [(String, ConfigLocation)] = []
        for upstream in upstreams {
            if case .environment(let name, let at) = upstream.cnameAPIKey { out.append((name, at)) }
        }
        if case .redis(_, .environment(let name, let at)) = rateLimits.store { out.append((name, at)) }
        for case .webhook(let w) in logging.sinks {
            if case .environment(let name, let at) = w.authorization { out.append((name, at)) }
            for case .secret(.environment(let name, let at)) in w.headers.map(\.value) { out.append((name, at)) }
        }
        return out
    }

    /// The `check` step: the checks that need the outside world, through closures so this stays pure.
    ///
    /// - Parameters:
    ///   - fileExists: true when a readable file exists at the resolved path.
    ///   - environment: the value of an environment variable, or nil when unset; nil skips those checks.
    /// - Returns: one error per missing file or unset variable, at the line that names it.
    public func check(fileExists: (String) -> Bool, environment: ((String) -> String?)? = nil) -> [ConfigError] {
        var errors: [ConfigError] = []
        for (what, file) in referencedFiles where !fileExists(file.path) {
            errors.append(file.location.error("\(what) '\(file.path)' does not exist or cannot be read"))
        }
        if let environment {
            for (name, location) in referencedEnvironment where (environment(name) ?? "").isEmpty {
                errors.append(location.error("environment variable \(name) is not set (or empty)"))
            }
        }
        return errors
    }
}
