import CSystemShims
import Foundation

/// Per-sink counters, readable from any thread.
final class SinkCounters: Sendable {
    let delivered = AtomicCounter()
    let failures = AtomicCounter()
    let spooled = AtomicCounter()
    let droppedSpoolFull = AtomicCounter()
    let droppedRejected = AtomicCounter()
    let droppedAtShutdown = AtomicCounter()
    /// Files a rotating file sink deleted to stay within its `max_files`.
    let rotatedFilesRemoved = AtomicCounter()
}

/// The lines one sink still has to write: a bounded memory level in front of an optional disk spool.
///
/// Order is kept by one invariant: lines in memory are always older than lines on disk, and memory is used only
/// while the disk holds nothing. When memory fills, or the sink fails (so that a crash loses nothing already
/// accepted), memory is moved to disk wholesale and new lines follow it there until the disk is drained. A batch
/// handed to the sink stays accounted for ("in flight") until the sink acknowledges or fails it.
final class SinkQueue: @unchecked Sendable {
    // Safety: every stored `var` and the DiskSpool are read and written only with `cond` locked.
    private let cond = NSCondition()
    private var memory: [String] = []
    private var memoryHead = 0
    let memoryCapacity: Int
    private let disk: DiskSpool?
    private var inFlight = InFlight.none
    private var forceSpool = false
    private var flushing = 0
    private var stopping = false
    private var stopNow = false
    private var batchStart: Int64?
    let counters: SinkCounters

    enum InFlight {
        case none
        case memory(lines: [String], bytes: Int, movedToDisk: Bool)
        case disk(lines: Int, bytes: Int)
    }

    enum Next {
        case batch([String])
        case tick
        case exit
    }

    init(memoryCapacity: Int, disk: DiskSpool?, counters: SinkCounters) {
        self.memoryCapacity = memoryCapacity
        self.disk = disk
        self.counters = counters
    }

    private var memoryCount: Int { memory.count - memoryHead }

    private var pendingLocked: Int {
        var n = memoryCount + (disk?.pendingLines ?? 0)
        if case .memory(let lines, _, false) = inFlight { n += lines.count }
        return n
    }

    /// Counts the lines the previous run left in the spool (see ``DiskSpool``). The sink's writer calls it once,
    /// before its first batch; the lock is held only to read what to count and to record the result.
    func countLinesLeftFromLastRun() {
        guard let disk else { return }
        let ranges = cond.withLock { disk.linesLeftFromLastRun }
        guard !ranges.isEmpty else { return }
        let lines = DiskSpool.countLines(in: ranges)
        cond.withLock {
            disk.addCountedLines(lines)
            cond.broadcast()
        }
    }

    /// Lines not yet acknowledged by the sink, wherever they are.
    var pending: Int { cond.withLock { pendingLocked } }
    var pendingOnDisk: Int { cond.withLock { disk?.pendingLines ?? 0 } }
    var spoolBytes: Int { cond.withLock { disk?.totalBytes ?? 0 } }

    /// Takes new lines; returns how many had to be dropped (spool full, or memory full with no spool).
    func append(_ lines: [String]) -> Int {
        guard !lines.isEmpty else { return 0 }
        return cond.withLock {
            defer { cond.broadcast() }
            var rest = lines[...]
            let spoolMode: Bool
            if let disk {
                var movedInFlight = false
                if case .memory(_, _, true) = inFlight { movedInFlight = true }
                spoolMode = !disk.isEmpty || forceSpool || movedInFlight
            } else {
                spoolMode = false
            }
            if !spoolMode {
                let take = min(max(0, memoryCapacity - memoryCount), rest.count)
                memory.append(contentsOf: rest.prefix(take))
                rest = rest.dropFirst(take)
                if rest.isEmpty { return 0 }
            }
            guard let disk else { return rest.count }
            if memoryCount > 0 || inFlightInMemory, !spillLocked() {
                // The disk cannot take what memory holds; newer lines must not overtake it.
                let take = min(max(0, memoryCapacity - memoryCount), rest.count)
                memory.append(contentsOf: rest.prefix(take))
                rest = rest.dropFirst(take)
                return rest.count
            }
            let written = disk.append(rest)
            counters.spooled.add(written)
            return rest.count - written
        }
    }

    private var inFlightInMemory: Bool {
        if case .memory(_, _, false) = inFlight { return true }
        return false
    }

    /// Moves the unacknowledged in-flight batch (if it came from memory) and all of memory to the disk, all or
    /// nothing. Only valid while the disk holds nothing older (the invariant guarantees it).
    private func spillLocked() -> Bool {
        guard let disk else { return false }
        var lines: [String] = []
        var flightLines: [String] = []
        var flightBytes = 0
        if case .memory(let l, let b, false) = inFlight {
            flightLines = l
            flightBytes = b
            lines = l
        }
        lines += memory[memoryHead...]
        let bytes = lines.reduce(0) { $0 + $1.utf8.count + 1 }
        guard disk.totalBytes + bytes <= disk.maxBytes, disk.append(lines[...]) == lines.count else { return false }
        counters.spooled.add(lines.count)
        memory.removeAll(keepingCapacity: true)
        memoryHead = 0
        if !flightLines.isEmpty { inFlight = .memory(lines: flightLines, bytes: flightBytes, movedToDisk: true) }
        return true
    }

    private func takeBatchLocked(_ max: Int) -> [String]? {
        if let disk, !disk.isEmpty {
            let (lines, bytes) = disk.peek(max: max)
            guard !lines.isEmpty else { return nil }
            inFlight = .disk(lines: lines.count, bytes: bytes)
            return lines
        }
        guard memoryCount > 0 else { return nil }
        let n = min(max, memoryCount)
        let lines = Array(memory[memoryHead..<(memoryHead + n)])
        memoryHead += n
        if memoryHead == memory.count {
            memory.removeAll(keepingCapacity: true)
            memoryHead = 0
        } else if memoryHead > 4096 && memoryHead * 2 > memory.count {
            memory.removeFirst(memoryHead)
            memoryHead = 0
        }
        inFlight = .memory(lines: lines, bytes: lines.reduce(0) { $0 + $1.utf8.count + 1 }, movedToDisk: false)
        return lines
    }

    /// The sink took the in-flight batch.
    func commit() { finish(delivered: true) }

    /// The sink refused the in-flight batch for good: it is dropped (the caller counts and logs it).
    func reject() { finish(delivered: false) }

    private func finish(delivered: Bool) {
        cond.withLock {
            var count = 0
            switch inFlight {
            case .none: return
            case .disk(let lines, let bytes):
                disk?.advance(lines: lines, bytes: bytes)
                count = lines
            case .memory(let lines, let bytes, let moved):
                if moved { disk?.advance(lines: lines.count, bytes: bytes) }
                count = lines.count
            }
            inFlight = .none
            if delivered {
                counters.delivered.add(count)
                forceSpool = false
            } else {
                counters.droppedRejected.add(count)
            }
            cond.broadcast()
        }
    }

    /// The sink failed the in-flight batch: it goes back to the head, and from now on new lines go to the spool
    /// (memory is spilled) until a delivery succeeds.
    func fail() {
        cond.withLock {
            if case .memory(let lines, _, false) = inFlight {
                memory = lines + memory[memoryHead...]
                memoryHead = 0
            }
            inFlight = .none
            if disk != nil {
                forceSpool = true
                if memoryCount > 0 { _ = spillLocked() }
            }
            cond.broadcast()
        }
    }

    /// Blocks the sink's writer until it has a batch to send, a tick is due, or it must exit.
    ///
    /// A batch is sent when `batchSize` lines wait, when the oldest waited `interval` seconds, when a flush or a
    /// stop asks for it, or at once when `retryAt` (a failed batch's next attempt) has come.
    func next(batchSize: Int, interval: Double, retryAt: Int64?, tickAt: Int64) -> Next {
        cond.withLock {
            while true {
                if stopNow { return .exit }
                let now = cshim_monotonic_nanoseconds()
                let pending = pendingLocked
                if pending == 0 && stopping { return .exit }
                var wakeAt = tickAt
                if let retryAt {
                    if now < retryAt {
                        if now >= tickAt { return .tick }
                        _ = cond.wait(until: Date(timeIntervalSinceNow: Double(min(retryAt, tickAt) - now) / 1e9))
                        continue
                    }
                    if let lines = takeBatchLocked(batchSize) { return .batch(lines) }
                }
                if pending > 0 {
                    let start = batchStart ?? now
                    batchStart = start
                    let due = start + Int64(interval * 1e9)
                    if pending >= batchSize || flushing > 0 || stopping || now >= due {
                        batchStart = nil
                        if let lines = takeBatchLocked(batchSize) { return .batch(lines) }
                    } else {
                        wakeAt = min(wakeAt, due)
                    }
                } else {
                    batchStart = nil
                }
                if now >= tickAt { return .tick }
                _ = cond.wait(until: Date(timeIntervalSinceNow: Double(wakeAt - now) / 1e9))
            }
        }
    }

    func setFlushing(_ on: Bool) {
        cond.withLock {
            flushing += on ? 1 : -1
            cond.broadcast()
        }
    }

    /// Drain what is pending, then let the writer exit.
    func beginStopping() {
        cond.withLock {
            stopping = true
            cond.broadcast()
        }
    }

    /// Let the writer exit after its current delivery, pending or not.
    func stopImmediately() {
        cond.withLock {
            stopNow = true
            cond.broadcast()
        }
    }

    func tickDisk(nowNanos: Int64) { cond.withLock { disk?.tick(nowNanos: nowNanos) } }

    /// After the writer exited: moves what is left in memory to the spool (kept for the next start) or, without
    /// one, counts it as dropped. Returns (left in the spool, dropped).
    func persistRemaining() -> (spooled: Int, dropped: Int) {
        cond.withLock {
            if case .memory(let lines, _, false) = inFlight {
                memory = lines + memory[memoryHead...]
                memoryHead = 0
            }
            inFlight = .none
            var dropped = 0
            if memoryCount > 0 {
                if disk == nil || !spillLocked() {
                    dropped = memoryCount
                    memory.removeAll()
                    memoryHead = 0
                    counters.droppedAtShutdown.add(dropped)
                }
            }
            let left = disk?.pendingLines ?? 0
            disk?.close()
            return (left, dropped)
        }
    }
}

extension NSCondition {
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}
