import Glibc
import Logging
import Synchronization
import TestSupport

@testable import RateLimitStore

/// A throwaway `redis-server` on 127.0.0.1 and a port picked free, without persistence, stopped by its PID.
/// `start()` may be called again after `stop()`: the server comes back on the same port, empty.
final class RedisServerFixture: @unchecked Sendable {
    // Safety: each fixture belongs to one test, which calls start/stop from its own task only.
    static let binary = TestProcess.which("redis-server")

    let port: UInt16
    let password: String?
    private(set) var pid: Int32?

    /// Nil (after printing why) when `redis-server` is not installed: the calling test returns early.
    init?(password: String? = nil, test: String = #function) {
        guard RedisServerFixture.binary != nil else {
            print("skipping \(test): redis-server is not installed (apt-get install redis-server)")
            return nil
        }
        port = TestProcess.freePort()
        self.password = password
    }

    /// Spawns the server (posix_spawn, output to a log file under /tmp) and waits until it listens.
    func start() throws {
        var arguments = [
            RedisServerFixture.binary!, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
            "no", "--loglevel", "warning",
        ]
        if let password { arguments += ["--requirepass", password] }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // The child inherits this thread's signal mask and ignored signals: Dispatch's worker threads block
        // SIGTERM, so without this the server would ignore the stop signal.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGPIPE, SIGINT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, arguments[0], &actions, &attributes, argv, environ)
        guard rc == 0 else { throw FixtureError(message: "posix_spawn redis-server: \(rc)") }
        pid = child
        guard TestProcess.waitForPort(port, timeout: 10) else {
            stop()
            throw FixtureError(message: "redis-server did not listen on \(port); see \(logPath)")
        }
    }

    var logPath: String { "/tmp/rate-limit-store-redis-\(port).log" }

    /// SIGTERM, then SIGKILL if it has not exited within 5 s; reaps the child.
    func stop() {
        guard let pid else { return }
        self.pid = nil
        kill(pid, SIGCONT)
        kill(pid, SIGTERM)
        for _ in 0..<500 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) != 0 { return }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers. `resume()` thaws it.
    func freeze() { if let pid { kill(pid, SIGSTOP) } }
    func resume() { if let pid { kill(pid, SIGCONT) } }

    /// A raw connection for assertions (generous timeouts; never used by the store under test).
    func client() throws -> RedisConnection {
        let connection = try RedisConnection(
            host: "127.0.0.1", port: Int(port), connectTimeout: .seconds(2), commandTimeout: .seconds(2))
        if let password { _ = try connection.command(["AUTH", password]) }
        return connection
    }

    /// Options for this server. The command timeout is generous (500 ms, against the store's 10 ms default): a
    /// debug build sharing two busy cores with the parallel suites can miss 10 ms on a healthy command, which
    /// trips the breaker and fails tests that are not about timing. Tests about timeouts pass their own.
    func options(
        namespace: String = "test", probeInterval: Duration = .milliseconds(300),
        commandTimeout: Duration = .milliseconds(500)
    ) -> RedisRateLimitStore.Options {
        var options = RedisRateLimitStore.Options(
            host: "127.0.0.1", port: Int(port), password: password.map(RedisPassword.init), namespace: namespace,
            probeInterval: probeInterval)
        options.commandTimeout = commandTimeout
        return options
    }

    deinit {
        stop()
        unlink(logPath)
    }
}

struct FixtureError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// A log handler that keeps every message, for asserting what was logged and how often.
final class CapturingLogHandler: LogHandler, @unchecked Sendable {
    // Safety: `metadata` and `logLevel` are set before the logger is shared; the lines live in a Mutex.
    let lines = Mutex<[(Logger.Level, String)]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var text = event.message.description
        if let metadata = event.metadata, !metadata.isEmpty {
            text += " " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        lines.withLock { $0.append((event.level, text)) }
    }

    func messages(atLeast level: Logger.Level) -> [String] {
        lines.withLock { $0.filter { $0.0 >= level }.map(\.1) }
    }

    static func logger() -> (Logger, CapturingLogHandler) {
        let handler = CapturingLogHandler()
        return (Logger(label: "test.rate-limits") { _ in handler }, handler)
    }
}

/// A breaker clock the test moves by hand.
final class TestMonotonicClock: Sendable {
    let now = Atomic<Int64>(1_000_000_000)
    func advance(_ duration: Duration) {
        let (s, a) = duration.components
        now.add(s * 1_000_000_000 + a / 1_000_000_000, ordering: .relaxed)
    }
    var reader: @Sendable () -> Int64 { { self.now.load(ordering: .relaxed) } }
}

extension RedisConnection {
    func integer(_ arguments: [String]) throws -> Int64 {
        guard case .integer(let value) = try command(arguments) else {
            throw FixtureError(message: "\(arguments.first ?? "") did not return an integer")
        }
        return value
    }

    func string(_ key: String) throws -> String? { try command(["GET", key]).text }
}

/// Wall clock in epoch nanoseconds (what the proxy passes as `nowNanoseconds`).
func wallNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}
