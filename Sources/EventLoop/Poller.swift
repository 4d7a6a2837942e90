import CSystemShims
import Dispatch
import Glibc

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
    private var inTurn = false
    private let tokens = UnsafeMutablePointer<UInt64>.allocate(capacity: Poller.batch)
    private let events = UnsafeMutablePointer<UInt32>.allocate(capacity: Poller.batch)

    private static let batch = 64
    /// Batches taken in one turn before the queue gets a chance to run timers and other queued work.
    private static let batchesPerTurn = 16

    init(queue: DispatchQueue) {
        let epfd = cshim_epoll_create()
        precondition(epfd >= 0, "epoll_create1 failed (errno \(errno))")
        self.epfd = epfd
        self.source = DispatchSource.makeReadSource(fileDescriptor: epfd, queue: queue)
        source.setEventHandler { [unowned self] in self.turn() }
        source.setCancelHandler { [tokens, events] in
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

    /// Queues `work` to run when the current turn has delivered all of its events; false when no turn is under way.
    func deferToTurnEnd(_ work: @escaping () -> Void) -> Bool {
        guard inTurn else { return false }
        afterTurn.append(work)
        return true
    }

    /// One wake-up of the loop: events in batches until none are left (or the batch budget is spent).
    ///
    /// The turn returns as soon as the set runs dry. Waiting on the epoll fd for the next event first (up to 50 µs
    /// with `epoll_pwait2`, so the loop's own thread would take it instead of Dispatch's manager thread and then a
    /// worker) was tried: it cut voluntary context switches a little, but the machine sat idle 17–20% of a loaded
    /// HTTP/1.1 run instead of 2–7%, and pass-through and rotated-token throughput fell by 15–18% (`wrk -t1 -c16`,
    /// 2 loops, four interleaved rounds). Dispatch's parked worker takes the next event sooner than a blocked wait.
    private func turn() {
        inTurn = true
        for _ in 0..<Poller.batchesPerTurn {
            let count = Int(cshim_epoll_poll(epfd, tokens, events, Int32(Poller.batch)))
            if count <= 0 { break }
            for i in 0..<count { deliver(token: tokens[i], events: events[i]) }
            runAfterTurnWork()
        }
        runAfterTurnWork()
        inTurn = false
    }

    private func deliver(token: UInt64, events: UInt32) {
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
