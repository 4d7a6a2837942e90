import Dispatch
import Glibc
import Synchronization

/// One event loop: a serial dispatch queue that owns every connection, pool and cache created on it.
///
/// Loop-confined objects are created inside `execute` and touched only from `queue`; `assertInLoop()` checks this
/// in debug builds (about 4 ns, INTEROP.md). Only file descriptors and Sendable values cross loops.
public final class EventLoop: Sendable {
    public let index: Int
    public let queue: DispatchQueue
    let poller: Poller

    public init(index: Int, label: String = "myorg-gateway.loop", threads: LoopThreads = .overcommit) {
        self.index = index
        self.queue =
            switch threads.resolved(loops: 1) {
            case .perCPU:
                DispatchQueue(label: "\(label).\(index)", qos: .userInitiated, target: .global(qos: .userInitiated))
            case .overcommit, .auto:  // `resolved` never answers .auto
                DispatchQueue(label: "\(label).\(index)", qos: .userInitiated)
            }
        self.poller = Poller(queue: queue)
    }

    deinit { poller.shutdown() }

    @inlinable
    public func assertInLoop() {
        #if DEBUG
            dispatchPrecondition(condition: .onQueue(queue))
        #endif
    }

    public func execute(_ work: @escaping @Sendable () -> Void) {
        queue.async(execute: work)
    }

    /// Runs `work` on this loop soon, from any thread, through the loop's own readiness set (`Poller.post`): a loop
    /// that is busy or lingering takes it in its current turn, without the wake-ups of a Dispatch hop.
    public func handOff(_ work: @escaping @Sendable () -> Void) {
        poller.post(work)
    }

    /// A one-shot timer on this loop. The returned handle cancels it; dropping the handle does not.
    /// Call on the loop: the closure runs on it and may touch loop-confined state (source handlers need not be
    /// Sendable).
    @discardableResult
    public func schedule(afterMilliseconds ms: Int, _ work: @escaping () -> Void) -> LoopTimer {
        let source = DispatchSource.makeTimerSource(queue: queue)
        source.schedule(deadline: .now() + .milliseconds(max(0, ms)), leeway: .milliseconds(ms >= 1000 ? 50 : 1))
        // On Linux a timer source nobody references is released and never fires; the handler holds the source
        // until it has fired (then cancels it, which releases the handler and so the source). A cancelled timer
        // releases its handler the same way.
        source.setEventHandler {
            work()
            source.cancel()
        }
        source.activate()
        return LoopTimer(source: source)
    }

    /// Runs `work` on this loop after the current event, without a timer (cheaper than `schedule(0)`).
    /// Call on the loop; the closure may touch loop-confined state.
    public func executeSoon(_ work: @escaping () -> Void) {
        assertInLoop()
        let box = LoopBound(work, loop: self)
        queue.async { box.value() }
    }

    /// Runs `work` once every socket event of the current turn has been handled, so writes made by a whole
    /// batch of events leave together; outside a turn (timers, queued work) it runs soon, like `executeSoon`.
    /// Call on the loop; the closure may touch loop-confined state.
    public func runAfterTurn(_ work: @escaping () -> Void) {
        assertInLoop()
        if !poller.deferToTurnEnd(work) { executeSoon(work) }
    }

    /// A repeating timer on this loop.
    @discardableResult
    public func scheduleRepeating(everyMilliseconds ms: Int, _ work: @escaping () -> Void) -> LoopTimer {
        let source = DispatchSource.makeTimerSource(queue: queue)
        source.schedule(
            deadline: .now() + .milliseconds(ms), repeating: .milliseconds(ms), leeway: .milliseconds(max(1, ms / 10)))
        source.setEventHandler(handler: work)
        source.activate()
        return LoopTimer(source: source)
    }
}

/// A cancellable timer handle.
public final class LoopTimer: Sendable {
    // Safety: DispatchSource's cancel is thread-safe; the source is never mutated otherwise.
    nonisolated(unsafe) private let source: any DispatchSourceTimer

    init(source: any DispatchSourceTimer) { self.source = source }

    public func cancel() { source.cancel() }

    // A one-shot timer keeps itself alive until it fired or was cancelled (see `EventLoop.schedule`).
}

/// Which of Dispatch's thread pools runs a loop's queue (`serve --loop-threads`).
public enum LoopThreads: String, Sendable, CaseIterable {
    /// `.perCPU` while the loops are no more than the per-CPU pool's threads, `.overcommit` beyond.
    case auto
    /// The pool of the loops' QoS, one thread per CPU. With no more loops than CPUs, each loop mostly keeps a
    /// thread of its own: interleaved A/B (`ab.py`, two loops on two cores, four and three rounds) against
    /// `.overcommit`, the machine's idle share fell by half (HTTP/1.1 pass-through 12.4 → 4.8%, fresh tokens 14.7 →
    /// 7.6% and 17.6 → 7.5%), and throughput as a ratio to HAProxy rose (HTTP/1.1 pass-through 0.90 → 1.03 and
    /// 0.78 → 0.85, HTTP/2 0.94 → 1.01 and 0.89 → 0.98, fresh tokens 0.91 → 1.02 and 0.78 → 1.01, rotated tokens
    /// 1.36 → 1.45 and 1.44 → 1.91). The cost: beside two threads spinning on both cores, mean latency at 2,000
    /// req/s rose from 340 to 420 µs and from 333 to 539 µs (HAProxy: 304 and 377). A loop that blocks holds one
    /// of the pool's threads, so with more loops than CPUs the others would wait out its lingers: use
    /// `.overcommit` then.
    case perCPU = "per-cpu"
    /// The overcommitting pool, Dispatch's default for a serial queue: it starts another thread whenever a queue
    /// has work and no thread is free, so loops never wait for each other, however many there are.
    case overcommit

    /// The pool for `loops` loops; only `.auto` depends on the count. `cpus`: the per-CPU pool's width, which
    /// Dispatch sets to the online CPUs.
    public func resolved(loops: Int, cpus: Int = LoopThreads.onlineCPUs) -> LoopThreads {
        guard self == .auto else { return self }
        return loops <= cpus ? .perCPU : .overcommit
    }

    public static var onlineCPUs: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}

/// A fixed set of loops, one per core by default.
public final class EventLoopGroup: Sendable {
    public let loops: [EventLoop]
    private let nextIndex = Atomic<Int>(0)

    public init(count: Int, label: String = "myorg-gateway.loop", threads: LoopThreads = .overcommit) {
        precondition(count > 0)
        let pool = threads.resolved(loops: count)
        self.loops = (0..<count).map { EventLoop(index: $0, label: label, threads: pool) }
    }

    /// Round-robin choice, for work that is not tied to an accepting listener.
    public func next() -> EventLoop {
        let i = nextIndex.add(1, ordering: .relaxed).oldValue
        return loops[i % loops.count]
    }
}

/// Carries a loop-confined value through a `@Sendable` closure back to its own loop (like NIOLoopBound).
///
/// Safety: the value is only reachable through `value`, which asserts (in debug builds) that the caller runs on
/// the loop the box was made on; so the value never is touched from two threads.
public struct LoopBound<Value>: @unchecked Sendable {
    private let stored: Value
    public let loop: EventLoop

    public init(_ value: Value, loop: EventLoop) {
        loop.assertInLoop()
        self.stored = value
        self.loop = loop
    }

    /// Boxes a value created off the loop that will only ever be used on it (a closure to run there).
    public init(_ value: Value, loopUnchecked loop: EventLoop) {
        self.stored = value
        self.loop = loop
    }

    public var value: Value {
        loop.assertInLoop()
        return stored
    }
}
