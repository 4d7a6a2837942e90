import Glibc
import Logging
import Policy

/// Why `rate_limits: { store: redis, ... }` could not be turned into a store. Messages name the environment
/// variable or file, never the secret.
public enum RedisStoreSetupError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `rediss://`: hiredis 0.14 (Debian 12) has no TLS support.
    case tlsUnsupported(url: String)
    /// The URL path is not `/<database number>`.
    case invalidDatabase(url: String)
    case missingEnvironment(name: String, at: ConfigLocation)
    case unreadablePasswordFile(path: String, reason: String, at: ConfigLocation)
    case emptyPassword(source: String, at: ConfigLocation)

    public var description: String {
        func place(_ at: ConfigLocation) -> String { "\(at.file):\(at.line):\(at.column): \(at.path)" }
        switch self {
        case .tlsUnsupported(let url):
            return "rate_limits.url \(url): rediss:// (TLS) is not supported by this build's hiredis; use "
                + "redis:// over loopback or a TLS tunnel"
        case .invalidDatabase(let url): return "rate_limits.url \(url): the path must be /<database number>"
        case .missingEnvironment(let name, let at):
            return "\(place(at)): environment variable \(name) is not set"
        case .unreadablePasswordFile(let path, let reason, let at):
            return "\(place(at)): cannot read \(path): \(reason)"
        case .emptyPassword(let source, let at): return "\(place(at)): \(source) holds an empty password"
        }
    }
}

/// Builds the backend the configuration asks for.
public enum RateLimitBackends {
    /// `store: local` gives a `RateLimiter`; `store: redis` a `RedisRateLimitStore` with default timeouts
    /// whose fallback is a `RateLimiter` of the same configuration. Reads the password now (environment or
    /// file); no network I/O happens here.
    /// - Parameter namespace: separates deployments sharing one Redis; pass the tenant's name.
    public static func make(
        _ rateLimits: GatewayConfig.RateLimits, configuration: RateLimiterConfiguration, namespace: String,
        logger: Logger = Logger(label: "myorg-gateway.rate-limits"),
        environment: (String) -> String? = RateLimitBackends.processEnvironment
    ) throws(RedisStoreSetupError) -> any RateLimitBackend {
        switch rateLimits.store {
        case .local:
            return RateLimiter(configuration: configuration)
        case .redis(let url, let password):
            let options = try RedisRateLimitStore.Options(
                url: url, password: password, namespace: namespace, environment: environment)
            return RedisRateLimitStore(configuration: configuration, options: options, logger: logger)
        }
    }

    /// `getenv`.
    public static func processEnvironment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}

extension RedisRateLimitStore.Options {
    /// Options from the configured URL (`redis://host:port[/db]`) and password source, with default timeouts.
    /// A password file's trailing newline is dropped.
    public init(
        url: ConfigURL, password: GatewayConfig.SecretSource?, namespace: String,
        environment: (String) -> String? = RateLimitBackends.processEnvironment
    ) throws(RedisStoreSetupError) {
        guard url.scheme == "redis" else { throw .tlsUnsupported(url: url.redacted) }
        guard case .success(let database) = url.redisDatabase() else { throw .invalidDatabase(url: url.redacted) }
        var secret: RedisPassword?
        switch password {
        case nil: break
        case .environment(let name, let at):
            guard let value = environment(name) else { throw .missingEnvironment(name: name, at: at) }
            guard !value.isEmpty else { throw .emptyPassword(source: "environment variable \(name)", at: at) }
            secret = RedisPassword(value)
        case .file(let file):
            let value: String
            switch SecretFile.read(file.path) {
            case .success(let text): value = text
            case .failure(let reason):
                throw .unreadablePasswordFile(path: file.path, reason: reason.message, at: file.location)
            }
            let trimmed = String(value.reversed().drop { $0 == "\n" || $0 == "\r" }.reversed())
            guard !trimmed.isEmpty else { throw .emptyPassword(source: "file \(file.path)", at: file.location) }
            secret = RedisPassword(trimmed)
        }
        self.init(host: url.host, port: url.port, password: secret, database: database, namespace: namespace)
    }
}

/// Reads a small secret file with plain syscalls (no Foundation in this module).
enum SecretFile {
    struct Failure: Error {
        var message: String
    }

    static let maxBytes = 4096

    static func read(_ path: String) -> Result<String, Failure> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(Failure(message: String(cString: strerror(errno)))) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(Failure(message: String(cString: strerror(errno))))
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
            if bytes.count > maxBytes { return .failure(Failure(message: "larger than \(maxBytes) bytes")) }
        }
        return .success(String(decoding: bytes, as: UTF8.self))
    }
}
