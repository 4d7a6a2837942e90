import GatewayCore

/// When a file (sink or spool) is forced to stable storage.
public enum FsyncPolicy: Sendable, Equatable {
    /// After every batch written: nothing acknowledged is lost on power failure; slowest.
    case always
    /// At most every `seconds` (checked after each batch and on the writer's idle tick, at least once a second).
    case interval(seconds: Double)
    /// Left to the kernel: survives a crash of the process, not of the machine.
    case never
}

/// How the log pipeline is built: which sinks, how large its queues are, and where it spools.
///
/// The lead maps the `logging:` and `recording:` sections of the policy file onto this.
public struct LogPipelineSettings: Sendable, Equatable {
    public var sinks: [SinkSettings]
    /// Events waiting between `record` and the writer thread. Full: the event is dropped and counted.
    public var queueCapacity: Int
    /// Lines each sink holds in memory before it spills to its spool (or, with no spool, drops and counts).
    public var sinkMemoryCapacity: Int
    /// Disk spool for sinks that are down or slow; nil keeps everything in memory (bounded, counted drops).
    public var spool: SpoolSettings?
    /// Seconds the writer waits after a batch before taking the next, so that under load it wakes (and the
    /// sinks write) once per linger rather than once per event. Bounds the extra delay of an event; 0 disables.
    public var writerLinger: Double

    public init(
        sinks: [SinkSettings], queueCapacity: Int = 65_536, sinkMemoryCapacity: Int = 16_384,
        spool: SpoolSettings? = nil, writerLinger: Double = 0.005
    ) {
        self.sinks = sinks
        self.writerLinger = max(0, writerLinger)
        self.queueCapacity = max(1, queueCapacity)
        self.sinkMemoryCapacity = max(1, sinkMemoryCapacity)
        self.spool = spool
    }
}

/// The spool: one subdirectory per sink (named after the sink), append-only segment files
/// `<20-digit sequence>.jsonl` and a `cursor` file (`<sequence> <byte offset>`) naming the first unsent line.
/// Lines are sent in order; a batch is acknowledged only after the sink took it, so delivery is at-least-once
/// (a crash between delivery and cursor update resends that batch after restart).
public struct SpoolSettings: Sendable, Equatable {
    public var directory: String
    /// Total bytes of all segment files of one sink; reaching it drops new events (counted, logged).
    public var maxBytes: Int
    public var segmentBytes: Int
    public var fsync: FsyncPolicy

    public init(
        directory: String, maxBytes: Int = 256 << 20, segmentBytes: Int = 4 << 20, fsync: FsyncPolicy = .never
    ) {
        self.directory = directory
        self.maxBytes = max(1, maxBytes)
        self.segmentBytes = max(1, segmentBytes)
        self.fsync = fsync
    }
}

public enum SinkSettings: Sendable, Equatable {
    case stdout(StdoutSinkSettings)
    case file(FileSinkSettings)
    case webhook(WebhookSinkSettings)

    /// A stable name: it names the sink's spool subdirectory, so it must not change across restarts.
    public var name: String {
        switch self {
        case .stdout(let s): return s.name ?? "stdout"
        case .file(let s): return s.name ?? "file-" + SinkSettings.fnv(s.path)
        case .webhook(let s): return s.name ?? "webhook-" + SinkSettings.fnv(s.url)
        }
    }

    static func fnv(_ s: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

public struct StdoutSinkSettings: Sendable, Equatable {
    public var name: String?
    /// The file descriptor written to; 1 unless a test or a supervisor wants another.
    public var fd: Int32
    public var batchSize: Int

    public init(name: String? = nil, fd: Int32 = 1, batchSize: Int = 512) {
        self.name = name
        self.fd = fd
        self.batchSize = max(1, batchSize)
    }
}

/// A JSON-lines file with size-based rotation: when the next batch would take `path` past `maxBytes`, the file is
/// renamed `path.1` (older ones shift to `path.2` … `path.<keep>`; the oldest is deleted, logged at `warning`
/// and counted in ``LogPipelineStats/Sink/rotatedFilesRemoved``).
public struct FileSinkSettings: Sendable, Equatable {
    public var name: String?
    public var path: String
    public var maxBytes: Int
    /// Rotated files kept besides the live one (`logging.sinks[].file.max_files`).
    public var keep: Int
    public var fsync: FsyncPolicy
    public var batchSize: Int

    public init(
        path: String, maxBytes: Int = 100 << 20, keep: Int = 5, fsync: FsyncPolicy = .interval(seconds: 1),
        batchSize: Int = 512, name: String? = nil
    ) {
        self.name = name
        self.path = path
        self.maxBytes = max(1, maxBytes)
        self.keep = max(0, keep)
        self.fsync = fsync
        self.batchSize = max(1, batchSize)
    }
}

/// The body layout of webhook POSTs, as in Auth0 Log Streams' custom webhook.
public enum WebhookFormat: String, Sendable, Equatable {
    /// Events separated by `\n` (Content-Type `application/x-ndjson`).
    case jsonLines = "json_lines"
    /// One JSON array of events (Content-Type `application/json`).
    case jsonArray = "json_array"
    /// One event per POST, the body being that event's object (Content-Type `application/json`); the batch
    /// size is therefore 1, so a retried POST never re-sends an event that was already acknowledged.
    case jsonObject = "json_object"
}

/// An HTTP(S) POST sink compatible with Auth0 Log Streams' custom webhook.
public struct WebhookSinkSettings: Sendable, Equatable {
    public var name: String?
    public var url: String
    /// Sent verbatim as the `Authorization` header (never logged).
    public var authorization: String?
    /// Extra headers, sent with every POST (never logged). Names the HTTP client owns (`Host`, `Content-Length`,
    /// `Connection` …), `Content-Type` and `Authorization` are refused, as are values with control characters.
    public var headers: HTTPFields
    public var format: WebhookFormat
    public var batchSize: Int
    /// How long a partial batch may wait for more events before it is sent anyway, in seconds.
    public var batchInterval: Double
    /// Per-request timeout, in seconds.
    public var timeout: Double
    /// First retry delay, in seconds; doubled after each failure up to `maxRetryDelay`, with jitter.
    public var initialRetryDelay: Double
    public var maxRetryDelay: Double
    /// A batch the receiver refuses as a payload it can never take (400, 413, 415, 422) is tried this often, then
    /// dropped (counted, logged) so that one poisoned batch cannot stop the stream forever. Every other failure
    /// (no answer, 401, 403, 404, 408, 429, 5xx, a redirect) is retried without limit, the spool holding what
    /// arrives meanwhile.
    public var maxAttemptsWhenRejected: Int

    public init(
        url: String, authorization: String? = nil, headers: HTTPFields = HTTPFields(),
        format: WebhookFormat = .jsonLines, batchSize: Int = 100, batchInterval: Double = 1, timeout: Double = 10,
        initialRetryDelay: Double = 0.5, maxRetryDelay: Double = 30, maxAttemptsWhenRejected: Int = 3,
        name: String? = nil
    ) {
        self.name = name
        self.url = url
        self.authorization = authorization
        self.headers = headers
        self.format = format
        self.batchSize = format == .jsonObject ? 1 : max(1, batchSize)
        self.batchInterval = max(0, batchInterval)
        self.timeout = max(0.1, timeout)
        self.initialRetryDelay = max(0.001, initialRetryDelay)
        self.maxRetryDelay = max(self.initialRetryDelay, maxRetryDelay)
        self.maxAttemptsWhenRejected = max(1, maxAttemptsWhenRejected)
    }
}
