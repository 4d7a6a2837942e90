import Glibc
import GatewayCore
import Logging

/// swift-log handler writing one JSON object per line to standard error: the gateway's own logs.
///
/// Metadata values are written as strings; callers never put a token or secret in them (the proxy logs only
/// request ids, decisions and error reasons).
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var members: [(String, JSONValue)] = [
            ("time", .string(ISOTime.now())),
            ("level", .string(event.level.rawValue)),
            ("logger", .string(label)),
            ("message", .string(event.message.description)),
        ]
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            members.append((key, .string(value.description)))
        }
        let line = JSONValue.object(members).serialized() + "\n"
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}

enum ISOTime {
    /// The current UTC time as ISO 8601 with milliseconds.
    static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var seconds = ts.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }
}

enum GatewayLogging {
    /// Installs the JSON handler once per process (swift-log allows one bootstrap).
    static func bootstrap(level: Logger.Level) {
        guard !bootstrapped.exchange() else { return }
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
    }

    private static let bootstrapped = OnceFlag()
}

/// A flag that is set once, from any thread.
final class OnceFlag: Sendable {
    private let lock = SimpleLock()
    nonisolated(unsafe) private var set = false
    // Safety: `set` is only read and written under `lock`.

    /// Returns the previous value and sets the flag.
    func exchange() -> Bool {
        lock.withLock {
            let was = set
            set = true
            return was
        }
    }
}
