import CSystemShims
import Dispatch
import Glibc
import Synchronization

/// The readiness set of one loop: every socket of the loop sits in one epoll set, and one Dispatch read source on
/// that set's fd wakes the loop's queue when any of them is ready.
///
/// Why not a Dispatch source per socket: on Linux each source event travels from Dispatch's manager thread to a
/// worker and is re-armed with `epoll_ctl` after every delivery, which cost about two context switches and two
/// system calls per proxied request (40% of the gateway's CPU under load). Here one wake-up serves every socket
/// that is ready, level-triggered readiness needs no re-arming, and writes queued by a whole batch of events leave
/// together at the end of the turn.
///
/// Loop-confined: every method runs on the loop's queue.
final class Poller: @unchecked Sendable {
    // Safety (@unchecked): all mutable state is touched only on the owning loop's serial queue — from the read
    // source's handler, which Dispatch runs there, and from loop-confined sockets.
    private let epfd: Int32
    private let source: any DispatchSourceRead
    private var sockets: [Socket?] = []
    private var generations: [UInt32] = []
    private var freeSlots: [Int] = []
    private var afterTurn: [() -> Void] = []
    /// Whether a turn is under way (tests ask it from work the loop runs).
    private(set) var inTurn = false
    private let tokens = UnsafeMutablePointer<UInt64>.allocate(capacity: Poller.batch)
    private let events = UnsafeMutablePointer<UInt32>.allocate(capacity: Poller.batch)

    /// Work other threads hand this loop (`post`), and the eventfd in the set that tells the loop it is there.
    private let inbox = Mutex<[@Sendable () -> Void]>([])
    private let inboxFD: Int32
    private static let inboxToken = UInt64.max

    private static let batch = 64
    /// Batches taken in one turn before the queue gets a chance to run timers and other queued work.
    private static let batchesPerTurn = 16
    /// How many times the next turn may yield once the set ran dry (see `turn`).
    private var yields = TurnYields()
    var yieldBudget: Int { yields.budget }

    /// For tests that count yields: no rest however long the yields take (a loaded test machine makes long ones).
    func neverRestYields() { yields.longYieldThreshold = .max }

    /// How long a turn waits on its own epoll set, once its yields found nothing, before it gives the thread back
    /// to Dispatch (see `turn`). Tests lengthen it to make an event arrive within it for sure.
    var lingerNanoseconds = Poller.defaultLingerNanoseconds
    static let defaultLingerNanoseconds = 250_000
    /// Turns run so far: Dispatch wake-ups of the loop. For tests.
    private(set) var turnCount = 0
    /// The batch of events being delivered, counted from 1, with the work run after it; 0 between batches.
    /// `LoopClock` reads the time once per batch.
    private(set) var batchNumber: UInt64 = 0
    private var batchesDelivered: UInt64 = 0

    init(queue: DispatchQueue) {
        let epfd = cshim_epoll_create()
        precondition(epfd >= 0, "epoll_create1 failed (errno \(errno))")
        self.epfd = epfd
        let inboxFD = cshim_eventfd()
        precondition(inboxFD >= 0, "eventfd failed (errno \(errno))")
        precondition(cshim_epoll_ctl(epfd, 1, inboxFD, CSHIM_EPOLLIN, Poller.inboxToken) == 0)
        self.inboxFD = inboxFD
        self.source = DispatchSource.makeReadSource(fileDescriptor: epfd, queue: queue)
        source.setEventHandler { [unowned self] in self.turn() }
        source.setCancelHandler { [tokens, events] in
            Glibc.close(inboxFD)
            Glibc.close(epfd)
            tokens.deallocate()
            events.deallocate()
        }
        source.activate()
    }

    /// Stops the source; the epoll fd closes in its cancel handler. Sockets still registered stay open.
    func shutdown() { source.cancel() }

    /// A slot for `socket`; its token (slot and generation) is what epoll hands back, so an event fetched before
    /// the socket closed can never reach a newer socket that got the same fd or slot.
    func slot(for socket: Socket) -> (index: Int, token: UInt64) {
        let index: Int
        if let reused = freeSlots.popLast() {
            index = reused
            sockets[index] = socket
        } else {
            index = sockets.count
            sockets.append(socket)
            generations.append(0)
        }
        return (index, UInt64(generations[index]) << 32 | UInt64(index))
    }

    func release(slot index: Int) {
        sockets[index] = nil
        generations[index] &+= 1
        freeSlots.append(index)
    }

    /// Sets the readiness a socket waits for; `from` is what it waited for until now (0: not in the set).
    /// A socket that waits for nothing leaves the set, so a hung-up peer of a paused socket cannot spin the loop
    /// (epoll reports hang-ups and errors whatever the mask).
    func update(fd: Int32, token: UInt64, from old: UInt32, to new: UInt32) {
        let op: Int32 =
            if new == 0 { 2 } else if old == 0 { 1 } else { 3 }
        if cshim_epoll_ctl(epfd, op, fd, new, token) != 0 {
            // Only a programming error gets here (a closed fd, or a mask change for an fd not in the set).
            assertionFailure("epoll_ctl(\(op)) on fd \(fd) failed (errno \(errno))")
        }
    }

    /// Hands `work` to this loop from any thread. It runs in the loop's next batch of events: at once when the loop
    /// is lingering on its set or yielding (its own thread wakes, where `queue.async` waits for the turn to end),
    /// and through the set's Dispatch source when the loop is parked. Only the first of a run of posts signals.
    func post(_ work: @escaping @Sendable () -> Void) {
        let first = inbox.withLock { queued in
            queued.append(work)
            return queued.count == 1
        }
        if first, cshim_eventfd_signal(inboxFD) != 0 {
            // Cannot happen with a valid eventfd; the work must not be lost either way.
            assertionFailure("eventfd write failed (errno \(errno))")
        }
    }

    private func runPosted() {
        // The counter is reset before the list is taken: a post after the reset finds the list empty or not yet
        // taken, and either signals again or is taken now, so no work waits without a signal.
        cshim_eventfd_drain(inboxFD)
        let posted = inbox.withLock { queued in
            // Taken whole: the array keeps no capacity to reuse once its buffer is shared with `posted`.
            defer { queued = [] }
            return queued
        }
        for work in posted { work() }
    }

    /// Queues `work` to run when the current turn has delivered all of its events; false when no turn is under way.
    func deferToTurnEnd(_ work: @escaping () -> Void) -> Bool {
        guard inTurn else { return false }
        afterTurn.append(work)
        return true
    }

    /// One wake-up of the loop: events in batches until none are left (or the batch budget is spent).
    ///
    /// When the set runs dry, the turn yields the CPU (`sched_yield`) and looks again, up to `yieldBudget` times,
    /// before it gives the thread back to Dispatch. Each Dispatch wake-up of a loop costs three thread wake-ups: the
    /// manager thread sees the epoll fd readable and wakes a worker, and after the turn the manager is woken again
    /// (through its eventfd) to re-arm the one-shot source. On a loaded machine the next event (the upstream's answer
    /// to the request just forwarded, a client's next request) mostly arrives while the other runnable threads
    /// (the client, the upstream, the other loop) have the CPU: the yield hands it to them and then takes the event
    /// with none of those wake-ups. With nothing else runnable the yield returns at once. `TurnYields` adapts the
    /// budget: an idle or lightly loaded gateway spins a system call or two per turn, and beside a thread that
    /// computes for long stretches (a busy application in the same pod), where a yield can cost a whole scheduler
    /// slice of latency, the loop stops yielding for a while.
    ///
    /// Interleaved A/B (`wrk -t1 -c16` and `h2load -t1 -c16 -m10`, pass-through, 2 loops, three rounds): 32 yields
    /// against none raised throughput 9–11% and lowered the gateway's CPU per request by 22% (HTTP/1.1 34.5 →
    /// 26.9 µs, beside HAProxy's 26.4); p99 latency fell (2.17 → 1.52 ms). Spinning on the set without yielding
    /// (16 or 64 polls) gained nothing: the spinning loop holds the CPU that the answer's producer needs.
    ///
    /// When the yields found nothing either (nothing else was runnable, or they are resting), the turn lingers:
    /// it blocks on its own epoll set for up to `lingerNanoseconds` before it returns. An event in that time wakes
    /// this very thread, one wake-up instead of Dispatch's three, and the cores do not sit idle while the
    /// manager thread and a worker take turns waking each other. A lingering loop uses no CPU, so a busy
    /// neighbour loses nothing to it; the loop's queue waits at most `batchesPerTurn` lingers for its timers.
    /// Interleaved A/B against no linger (six rounds, 2 loops, `wrk -t1 -c16` / `h2load -t1 -c16 -m10`), as a
    /// ratio to HAProxy in the same round: fresh tokens 0.81 → 0.93 (better in 5 of 6 rounds; the machine's idle
    /// share 20.7 → 16.9%), HTTP/1.1 pass-through 0.88 → 0.90, HTTP/2 0.82 → 0.86. Without the yields, a linger
    /// lost 4% on HTTP/1.1 pass-through; lingers of 1 and 2 ms did no better than 250 µs (HTTP/2 worse).
    private func turn() {
        inTurn = true
        turnCount &+= 1
        var yieldsLeft = yields.budget
        var caught = false
        for _ in 0..<Poller.batchesPerTurn {
            var count = poll()
            while count <= 0, yieldsLeft > 0 {
                yieldsLeft -= 1
                let before = cshim_monotonic_nanoseconds()
                sched_yield()
                let took = Int(cshim_monotonic_nanoseconds() &- before)
                count = poll()
                if count > 0 { caught = true }
                if yields.yielded(nanoseconds: took, caught: count > 0) { yieldsLeft = 0 }
            }
            if count <= 0, lingerNanoseconds > 0 {
                count = Int(
                    cshim_epoll_wait_nanoseconds(epfd, tokens, events, Int32(Poller.batch), lingerNanoseconds))
            }
            if count <= 0 { break }
            batchesDelivered &+= 1
            batchNumber = batchesDelivered
            for i in 0..<count { deliver(token: tokens[i], events: events[i]) }
            runAfterTurnWork()
            batchNumber = 0
        }
        runAfterTurnWork()
        yields.afterTurn(caught: caught, exhausted: yieldsLeft == 0)
        inTurn = false
    }

    @inline(__always)
    private func poll() -> Int {
        Int(cshim_epoll_poll(epfd, tokens, events, Int32(Poller.batch)))
    }

    private func deliver(token: UInt64, events: UInt32) {
        if token == Poller.inboxToken { return runPosted() }
        let index = Int(token & 0xffff_ffff)
        guard index < sockets.count, generations[index] == UInt32(token >> 32), let socket = sockets[index] else {
            return
        }
        socket.handle(events: events)
    }

    private func runAfterTurnWork() {
        // Work may queue more work (a flush that closes a connection); it runs in the same pass.
        var next = 0
        while next < afterTurn.count {
            let work = afterTurn[next]
            next += 1
            work()
        }
        afterTurn.removeAll(keepingCapacity: true)
    }
}

/// How many times a turn may yield (see `Poller.turn`), adapted to what yielding brings.
///
/// - A turn whose yields caught an event doubles the budget, up to `most`; a turn that spent its budget on yields
///   that caught nothing halves it, down to one (an idle loop spins a call or two per turn).
/// - A yield that kept the loop off the CPU for `longYieldNanoseconds` and brought no event handed the CPU to a
///   thread that computes rather than answers (a busy application in the same pod): such yields add that much
///   latency to a turn, where a parked worker would be woken, and preferred by the scheduler, as soon as an event
///   came. When `longYieldsToRest` of the last `window` yields were such, the loop stops yielding for `restTurns`
///   turns, then starts again from a single yield. A long yield that did bring events gave the CPU to a client or
///   an upstream that was producing them (a load generator's long bursts), and does not count. Measured on
///   loopback, per loop, over about 4 s: HTTP/2 pass-through under h2load, 299 yields of 1 ms or more, 10 of them
///   empty; at 2,000 req/s beside two threads spinning on both cores, 1,548 such yields, 552 empty.
struct TurnYields {
    static let most = 32
    static let longYieldNanoseconds = 1_000_000
    /// `longYieldNanoseconds`, unless a test that counts yields on a busy machine lifts it.
    var longYieldThreshold = TurnYields.longYieldNanoseconds
    static let longYieldsToRest = 4
    static let window = 64
    static let restTurns = 2048

    private(set) var budget = TurnYields.most
    private var restLeft = 0
    private var windowYields = 0
    private var windowLong = 0

    /// Records one yield (`caught`: the poll after it found events); true when it started a rest (the turn must
    /// stop yielding).
    mutating func yielded(nanoseconds: Int, caught: Bool) -> Bool {
        windowYields += 1
        if nanoseconds >= longYieldThreshold && !caught { windowLong += 1 }
        if windowLong >= Self.longYieldsToRest {
            budget = 0
            restLeft = Self.restTurns
            windowYields = 0
            windowLong = 0
            return true
        }
        if windowYields >= Self.window {
            windowYields = 0
            windowLong = 0
        }
        return false
    }

    /// `caught`: a poll after a yield found events; `exhausted`: the turn used up its yields.
    mutating func afterTurn(caught: Bool, exhausted: Bool) {
        if budget == 0 {
            restLeft -= 1
            if restLeft <= 0 { budget = 1 }
        } else if caught {
            budget = min(budget &* 2, Self.most)
        } else if exhausted {
            budget = max(budget / 2, 1)
        }
    }
}
