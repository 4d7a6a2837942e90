import CSystemShims
import Foundation
import GatewayCore
import Logging

/// Where log events, access lines and exchange records go. Implementations never block the caller.
public protocol EventRecorder: Sendable {
    /// Queues one event; returns at once (a full queue drops the event and counts it).
    func record(_ event: JSONValue)
    /// Queues a closure that builds the event later on the writer thread (used to keep redaction and
    /// serialization of large exchanges off the event loop). A nil result records nothing.
    func record(deferred build: @escaping @Sendable () -> JSONValue?)
}

/// Counters of a ``LogPipeline`` for metrics and tests. Drops are counted per event and, for sink-level reasons,
/// per sink (an event dropped by two sinks counts twice in ``droppedEvents``).
public struct LogPipelineStats: Sendable, Equatable {
    public struct Sink: Sendable, Equatable {
        public var name: String
        public var delivered: Int
        /// Failed delivery attempts (each retry counts).
        public var deliveryFailures: Int
        /// Lines ever written to this sink's spool.
        public var spooled: Int
        /// Lines waiting (memory, spool and in flight).
        public var pending: Int
        public var pendingOnDisk: Int
        public var spoolBytes: Int
        public var droppedSpoolFull: Int
        public var droppedRejected: Int
        public var droppedAtShutdown: Int
        /// Rotated files a file sink deleted (its `max_files` reached); their events are gone from that sink.
        public var rotatedFilesRemoved: Int
    }

    /// Events taken by `record`.
    public var accepted: Int
    /// Events refused because the front queue was full.
    public var droppedQueueFull: Int
    /// Events recorded after `shutdown` began.
    public var droppedAfterShutdown: Int
    public var sinks: [Sink]

    /// Every drop, of every reason; the number to alert on.
    public var droppedEvents: Int {
        droppedQueueFull + droppedAfterShutdown
            + sinks.reduce(0) { $0 + $1.droppedSpoolFull + $1.droppedRejected + $1.droppedAtShutdown }
    }
}

/// What `shutdown` achieved.
public struct ShutdownSummary: Sendable, Equatable {
    /// Every accepted event reached every sink.
    public var complete: Bool
    /// Lines left in spools for the next start, per sink name.
    public var leftInSpool: [String: Int]
    /// Lines lost (no spool, or the spool was full).
    public var lost: Int
    /// Sinks whose writer was still inside a delivery when the deadline and grace ran out.
    public var stuckSinks: [String]
}

/// The log pipeline: a bounded front queue that event loops write to without blocking, one writer thread that
/// builds and serializes events, and per sink a queue (memory, then disk spool) drained by the sink's own thread.
///
/// Lifecycle: create once at start-up (threads start at once), `record` from anywhere, `shutdown` once on SIGTERM.
/// Nothing accepted is dropped silently: every drop is counted in ``stats`` and logged at `error` level.
public final class LogPipeline: EventRecorder, @unchecked Sendable {
    // Safety: `items`, `spare`, `closed`, `stopping`, `busy`, `workers`, `started` and `successor` are guarded by
    // `front` (`workers` is set once, by `start`); the rest is set in init and never changes; counters are atomics.
    private enum Item {
        case value(JSONValue)
        case deferred(@Sendable () -> JSONValue?)
        case record(any LogRecord)
    }

    private let front = NSCondition()
    private var items: [Item] = []
    private var spare: [Item] = []
    private var closed = false
    private var stopping = false
    private var busy = false
    /// The writer waits for a signal (nothing queued); otherwise it is working or lingering and producers
    /// do not wake it.
    private var writerIdle = false
    private let capacity: Int
    /// Queued items that wake a lingering writer early.
    private let highWater: Int
    private let lingerSeconds: Double
    private let reporter: DropReporter
    private let logger: Logger
    private let accepted = AtomicCounter()
    private let droppedQueueFull = AtomicCounter()
    private let droppedClosed = AtomicCounter()
    private let dispatcherDone = DispatchSemaphore(value: 0)
    private let shutdownOnce = SimpleLock()
    private var shutdownResult: ShutdownSummary?

    /// The sinks' stable names, in configuration order.
    public let sinkNames: [String]
    /// What the pipeline was built from: a reload that leaves it unchanged keeps this pipeline.
    public let settings: LogPipelineSettings
    /// Set once by `start` (under `front`); read by the writer, `flush`, `shutdown` and `stats`.
    private var workers: [SinkWorker] = []
    private var started = false
    /// Once set, records go there: see ``handOver(to:deadline:)``. Guarded by `front`.
    private var successor: LogPipeline?
    private let startOnce = SimpleLock()

    public struct ConfigurationError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Opens every sink and spool and starts the threads. Throws when a file or spool directory cannot be opened
    /// or a webhook URL is invalid (the message names the path, never a credential).
    public convenience init(settings: LogPipelineSettings, logger: Logger = Logger(label: "myorg-gateway.recording"))
        throws
    {
        self.init(deferred: settings, logger: logger)
        try start()
    }

    /// A pipeline that takes records at once (up to its queue capacity) but opens its sinks and spools, and starts
    /// delivering, only at ``start()``: the successor of a pipeline that still writes the same files and spools.
    public init(deferred settings: LogPipelineSettings, logger: Logger = Logger(label: "myorg-gateway.recording")) {
        self.settings = settings
        self.capacity = settings.queueCapacity
        self.highWater = max(1, settings.queueCapacity / 4)
        self.lingerSeconds = settings.writerLinger
        self.logger = logger
        self.reporter = DropReporter(logger: logger)
        self.sinkNames = settings.sinks.map(\.name)
    }

    /// Checks what ``start()`` will open without keeping anything open or writing a line: sink names, webhook
    /// URLs and headers, that each file can be opened for appending and each spool directory made.
    public static func validate(_ settings: LogPipelineSettings) throws {
        try checkNames(settings)
        for sinkSettings in settings.sinks {
            let name = sinkSettings.name
            do {
                switch sinkSettings {
                case .stdout: break
                case .file(let s): FileIO.close(try FileIO.openAppend(s.path))
                case .webhook(let s): _ = try WebhookSink(s, name: name)
                }
            } catch {
                throw ConfigurationError(description: "sink \(name): \(error)")
            }
            if let spool = settings.spool {
                do {
                    try FileIO.makeDirectories(spool.directory + "/" + name)
                } catch {
                    throw ConfigurationError(description: "spool of sink \(name): \(error)")
                }
            }
        }
    }

    /// A sink's name names its spool directory: two sinks may not share one.
    private static func checkNames(_ settings: LogPipelineSettings) throws {
        var names = Set<String>()
        for name in settings.sinks.map(\.name) where !names.insert(name).inserted {
            throw ConfigurationError(description: "two sinks share the name \(name); give one a name")
        }
    }

    /// Opens the sinks and spools and starts the writer threads; records taken before are delivered first.
    /// Idempotent. Throws as the throwing initializer does; the pipeline then stays unstarted.
    public func start() throws {
        try startOnce.withLock {
            if front.withLock({ started }) { return }
            let workers = try openWorkers()
            front.withLock {
                self.workers = workers
                started = true
            }
            for worker in workers { worker.start() }
            reportSpoolsWithoutSink()
            let thread = Thread { [self] in self.dispatch(workers) }
            thread.name = "log-pipeline"
            thread.start()
        }
    }

    /// A sink's spool is found by its name, so events spooled for a sink that is gone or was renamed (a webhook's
    /// default name follows its URL) are never sent: said once at start, with the way to send them.
    private func reportSpoolsWithoutSink() {
        guard let spool = settings.spool else { return }
        for entry in FileIO.list(spool.directory).sorted() where !sinkNames.contains(entry) {
            let directory = spool.directory + "/" + entry
            let bytes = FileIO.list(directory).filter { $0.hasSuffix(".jsonl") }
                .reduce(0) { $0 + (FileIO.fileSize(directory + "/" + $1) ?? 0) }
            guard bytes > 0 else { continue }
            logger.warning(
                "a spool holds undelivered events of a sink that is no longer configured; they are not sent",
                metadata: [
                    "spool": "\(directory)", "bytes": "\(bytes)",
                    "fix": "give the sink that should send them `name: \(entry)`, or remove the directory",
                ])
        }
    }

    private func openWorkers() throws -> [SinkWorker] {
        try Self.checkNames(settings)
        var workers: [SinkWorker] = []
        for sinkSettings in settings.sinks {
            let name = sinkSettings.name
            let counters = SinkCounters()
            let sink: any EventSink
            do {
                switch sinkSettings {
                case .stdout(let s): sink = StdoutSink(s, name: name)
                case .file(let s):
                    sink = try FileSink(s, name: name, logger: logger, removedFiles: counters.rotatedFilesRemoved)
                case .webhook(let s): sink = try WebhookSink(s, name: name)
                }
            } catch {
                throw ConfigurationError(description: "sink \(name): \(error)")
            }
            var disk: DiskSpool?
            if let spool = settings.spool {
                do {
                    disk = try DiskSpool(directory: spool.directory + "/" + name, settings: spool)
                } catch {
                    throw ConfigurationError(description: "spool of sink \(name): \(error)")
                }
            }
            if let disk, disk.tornLinesAtStart > 0 {
                counters.droppedAtShutdown.add(disk.tornLinesAtStart)
                reporter.dropped(disk.tornLinesAtStart, reason: "torn spool line from a crash", sink: name)
            }
            let queue = SinkQueue(memoryCapacity: settings.sinkMemoryCapacity, disk: disk, counters: counters)
            workers.append(SinkWorker(sink: sink, queue: queue, reporter: reporter, logger: logger))
        }
        return workers
    }

    /// Retires this pipeline in favour of `successor`, made with ``init(deferred:logger:)`` for the same or other
    /// sinks: records that arrive from now on (from exchanges that began before a reload) go to the successor;
    /// what this pipeline holds is delivered or spooled until `deadline`, and its files and spools are closed;
    /// only then does the successor open them, so that one spool never has two writers (which duplicated and
    /// tore events) and a file is never rotated under another writer. Lines left in a spool are sent by the
    /// successor before its own.
    @discardableResult
    public func handOver(to successor: LogPipeline, deadline: ContinuousClock.Instant) -> ShutdownSummary {
        front.withLock { self.successor = successor }
        let summary = shutdown(deadline: deadline)
        do {
            try successor.start()
        } catch {
            logger.error(
                "log pipeline could not open after a reload; its events are dropped and counted",
                metadata: ["error": "\(error)"])
        }
        return summary
    }

    // MARK: Recording

    public func record(_ event: JSONValue) { enqueue(.value(event)) }

    public func record(deferred build: @escaping @Sendable () -> JSONValue?) { enqueue(.deferred(build)) }

    /// Queues a record that renders itself on the writer thread (see ``LogRecord``); the cheapest way in.
    public func record(_ record: some LogRecord) { enqueue(.record(record)) }

    private func enqueue(_ item: Item) {
        front.lock()
        if let successor {
            front.unlock()
            successor.enqueue(item)
            return
        }
        if closed {
            front.unlock()
            droppedClosed.add()
            return
        }
        if items.count >= capacity {
            front.unlock()
            droppedQueueFull.add()
            return
        }
        items.append(item)
        // Waking the writer costs a system call and a context switch: only when it waits for work, or when a
        // burst fills the queue while it lingers.
        if writerIdle || items.count == highWater {
            writerIdle = false
            front.signal()
        }
        front.unlock()
        accepted.add()
    }

    // MARK: The writer thread

    private func dispatch(_ workers: [SinkWorker]) {
        var reportedQueueFull = 0
        var reportedClosed = 0
        var writer = JSONByteWriter(capacity: 4096)
        while true {
            front.lock()
            if items.isEmpty && !stopping {
                writerIdle = true
                _ = front.wait(until: Date(timeIntervalSinceNow: 1))
                writerIdle = false
            }
            let exit = items.isEmpty && stopping
            swap(&items, &spare)
            busy = !spare.isEmpty
            front.unlock()

            let worked = !spare.isEmpty
            if worked {
                var lines: [String] = []
                lines.reserveCapacity(spare.count)
                for item in spare {
                    writer.reset()
                    switch item {
                    case .value(let v): writer.value(v)
                    case .deferred(let build):
                        guard let v = build() else { continue }
                        writer.value(v)
                    case .record(let record):
                        guard record.write(to: &writer) else { continue }
                    }
                    lines.append(writer.text)
                }
                spare.removeAll(keepingCapacity: true)
                for worker in workers {
                    let dropped = worker.queue.append(lines)
                    if dropped > 0 {
                        worker.queue.counters.droppedSpoolFull.add(dropped)
                        reporter.dropped(dropped, reason: "spool full or no spool", sink: worker.name)
                    }
                }
                front.lock()
                busy = false
                front.broadcast()
                front.unlock()
            }
            let full = droppedQueueFull.load
            if full > reportedQueueFull {
                reporter.dropped(full - reportedQueueFull, reason: "queue full", sink: nil)
                reportedQueueFull = full
            }
            let late = droppedClosed.load
            if late > reportedClosed {
                reporter.dropped(late - reportedClosed, reason: "recorded after shutdown", sink: nil)
                reportedClosed = late
            }
            reporter.flushPending()
            if exit { break }
            if worked && lingerSeconds > 0 {
                // Let a batch gather: under load the writer wakes once per linger, not once per event.
                front.lock()
                if !stopping && items.count < highWater {
                    _ = front.wait(until: Date(timeIntervalSinceNow: lingerSeconds))
                }
                front.unlock()
            }
        }
        dispatcherDone.signal()
    }

    // MARK: Flush and shutdown

    /// Waits until everything recorded so far reached every sink (partial batches are sent at once), or until
    /// `deadline`. Returns whether all was delivered. Safe to call from any thread but an event loop.
    public func flush(deadline: ContinuousClock.Instant) -> Bool {
        let workers = front.withLock { self.workers }
        for worker in workers { worker.queue.setFlushing(true) }
        defer { for worker in workers { worker.queue.setFlushing(false) } }
        while true {
            if frontIdle && workers.allSatisfy({ $0.queue.pending == 0 }) { return true }
            if ContinuousClock.now >= deadline { return false }
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    public func flush(timeout: Duration) -> Bool { flush(deadline: .now + timeout) }

    private var frontIdle: Bool { front.withLock { items.isEmpty && !busy } }

    /// Stops taking events, drains the queue into the sinks until `deadline`, then stops the writers (after a grace
    /// long enough for one in-flight webhook request) and moves whatever is left to the spool (or counts it lost).
    /// Idempotent: a second call returns the first call's summary.
    public func shutdown(deadline: ContinuousClock.Instant) -> ShutdownSummary {
        shutdownOnce.withLock {
            if let shutdownResult { return shutdownResult }
            let result = performShutdown(deadline: deadline)
            shutdownResult = result
            return result
        }
    }

    public func shutdown(timeout: Duration) -> ShutdownSummary { shutdown(deadline: .now + timeout) }

    private func performShutdown(deadline: ContinuousClock.Instant) -> ShutdownSummary {
        // A successor whose predecessor never handed over (the process stops first) opens now, to deliver or
        // spool what it took; if it cannot open, what it took is lost and said so.
        do {
            try start()
        } catch {
            let parked = front.withLock {
                closed = true
                defer { items.removeAll() }
                return items.count
            }
            droppedClosed.add(parked)
            reporter.dropped(parked, reason: "the pipeline could not open (\(error))", sink: nil)
            reporter.flushPending(force: true)
            return ShutdownSummary(complete: parked == 0, leftInSpool: [:], lost: parked, stuckSinks: [])
        }
        let workers = front.withLock {
            closed = true
            stopping = true
            front.broadcast()
            return self.workers
        }
        _ = dispatcherDone.wait(timeout: dispatchTime(deadline))
        for worker in workers { worker.queue.beginStopping() }
        for worker in workers { _ = worker.waitExited(until: deadline) }
        let grace = ContinuousClock.now + .seconds(workers.map(\.grace).max() ?? 0)
        var stuck: [String] = []
        for worker in workers where !worker.hasExited {
            worker.queue.stopImmediately()
            if !worker.waitExited(until: grace) { stuck.append(worker.name) }
        }
        var left: [String: Int] = [:]
        var lost = 0
        for worker in workers where worker.hasExited {
            let (spooled, dropped) = worker.queue.persistRemaining()
            if spooled > 0 { left[worker.name] = spooled }
            if dropped > 0 { reporter.dropped(dropped, reason: "not delivered before shutdown", sink: worker.name) }
            lost += dropped
        }
        reporter.flushPending(force: true)
        let summary = ShutdownSummary(
            complete: left.isEmpty && lost == 0 && stuck.isEmpty, leftInSpool: left, lost: lost, stuckSinks: stuck)
        if summary.complete {
            logger.info("log pipeline drained")
        } else {
            logger.warning(
                "log pipeline stopped with events not delivered",
                metadata: [
                    "left_in_spool": "\(left.values.reduce(0, +))", "lost": "\(lost)", "stuck_sinks": "\(stuck)",
                ])
        }
        return summary
    }

    private func dispatchTime(_ deadline: ContinuousClock.Instant) -> DispatchTime {
        let remaining = ContinuousClock.now.duration(to: deadline)
        let nanos = max(
            0, remaining.components.seconds * 1_000_000_000 + remaining.components.attoseconds / 1_000_000_000)
        return .now() + .nanoseconds(Int(nanos))
    }

    // MARK: Metrics

    public var stats: LogPipelineStats {
        LogPipelineStats(
            accepted: accepted.load, droppedQueueFull: droppedQueueFull.load, droppedAfterShutdown: droppedClosed.load,
            sinks: front.withLock { workers }.map { w in
                let c = w.queue.counters
                return LogPipelineStats.Sink(
                    name: w.name, delivered: c.delivered.load, deliveryFailures: c.failures.load,
                    spooled: c.spooled.load,
                    pending: w.queue.pending, pendingOnDisk: w.queue.pendingOnDisk, spoolBytes: w.queue.spoolBytes,
                    droppedSpoolFull: c.droppedSpoolFull.load, droppedRejected: c.droppedRejected.load,
                    droppedAtShutdown: c.droppedAtShutdown.load, rotatedFilesRemoved: c.rotatedFilesRemoved.load)
            })
    }
}

/// One sink's writer thread: takes batches from the sink's queue, delivers them, retries with exponential backoff
/// and jitter, and drops a batch only when the receiver keeps refusing it (counted, logged).
final class SinkWorker: @unchecked Sendable {
    // Safety: `sink` is used only on this worker's thread (`run`); `queue` locks itself; `exited` is guarded by
    // `exitLock`.
    let sink: any EventSink
    let queue: SinkQueue
    private let reporter: DropReporter
    private let logger: Logger
    private let exitLock = NSCondition()
    private var exited = false
    let name: String
    /// How long shutdown waits for a delivery already under way.
    let grace: Int64

    init(sink: any EventSink, queue: SinkQueue, reporter: DropReporter, logger: Logger) {
        self.sink = sink
        self.queue = queue
        self.reporter = reporter
        self.logger = logger
        self.name = sink.name
        if let webhook = sink as? WebhookSink {
            grace = Int64(webhook.settings.timeout.rounded(.up)) + 3
        } else {
            grace = 2
        }
    }

    func start() {
        let thread = Thread { [self] in self.run() }
        thread.name = "log-sink"
        thread.start()
    }

    var hasExited: Bool { exitLock.withLock { exited } }

    func waitExited(until deadline: ContinuousClock.Instant) -> Bool {
        exitLock.withLock {
            while !exited {
                let remaining = ContinuousClock.now.duration(to: deadline)
                if remaining <= .zero { return false }
                let seconds = Double(remaining.components.seconds) + Double(remaining.components.attoseconds) / 1e18
                _ = exitLock.wait(until: Date(timeIntervalSinceNow: min(seconds, 0.1)))
            }
            return true
        }
    }

    private func run() {
        // Here rather than when the pipeline opens, so a full spool does not hold the gateway's start-up.
        queue.countLinesLeftFromLastRun()
        var failures = 0
        var rejections = 0
        var retryAt: Int64?
        var tickAt = cshim_monotonic_nanoseconds() + 250_000_000
        loop: while true {
            switch queue.next(batchSize: sink.batchSize, interval: sink.batchInterval, retryAt: retryAt, tickAt: tickAt)
            {
            case .exit:
                break loop
            case .tick:
                let now = cshim_monotonic_nanoseconds()
                sink.tick(nowNanos: now)
                queue.tickDisk(nowNanos: now)
                tickAt = now + 250_000_000
            case .batch(let lines):
                switch sink.deliver(lines) {
                case .delivered:
                    queue.commit()
                    if failures > 0 {
                        logger.notice(
                            "log sink recovered", metadata: ["sink": "\(name)", "failed_attempts": "\(failures)"])
                    }
                    failures = 0
                    rejections = 0
                    retryAt = nil
                case .retry(let reason):
                    queue.fail()
                    queue.counters.failures.add()
                    failures += 1
                    if failures == 1 || failures % 20 == 0 {
                        logger.warning(
                            "log sink delivery failed; retrying",
                            metadata: ["sink": "\(name)", "reason": "\(reason)", "attempt": "\(failures)"])
                    }
                    retryAt = cshim_monotonic_nanoseconds() + backoff(failures)
                case .rejected(let reason):
                    queue.counters.failures.add()
                    rejections += 1
                    failures += 1
                    if rejections >= sink.maxAttemptsWhenRejected {
                        queue.reject()
                        reporter.dropped(lines.count, reason: "refused by the sink (\(reason))", sink: name)
                        rejections = 0
                        retryAt = nil
                    } else {
                        queue.fail()
                        retryAt = cshim_monotonic_nanoseconds() + backoff(failures)
                    }
                }
            }
        }
        sink.close()
        exitLock.withLock {
            exited = true
            exitLock.broadcast()
        }
    }

    /// Exponential backoff with "equal jitter": half the delay fixed, half random, capped.
    private func backoff(_ attempt: Int) -> Int64 {
        let base = min(sink.maxRetryDelay, sink.initialRetryDelay * Double(1 << min(attempt - 1, 30)))
        let delay = base / 2 + Double.random(in: 0...(base / 2))
        return Int64(delay * 1e9)
    }
}
