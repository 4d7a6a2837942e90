import CSystemShims
import Dispatch
import Glibc
import Synchronization

/// Counts connections across all loops and refuses new ones past the process limit.
public final class ConnectionBudget: Sendable {
    public let limit: Int
    private let active = Atomic<Int>(0)
    private let refusedTotal = Atomic<Int>(0)

    public init(limit: Int) { self.limit = limit }

    /// Takes a slot; false when the limit is reached (the caller refuses the connection).
    public func acquire() -> Bool {
        let now = active.add(1, ordering: .relaxed).newValue
        if now > limit {
            active.subtract(1, ordering: .relaxed)
            refusedTotal.add(1, ordering: .relaxed)
            return false
        }
        var peak = peakOpen.load(ordering: .relaxed)
        while now > peak {
            let (exchanged, original) = peakOpen.compareExchange(
                expected: peak, desired: now, ordering: .relaxed)
            if exchanged { break }
            peak = original
        }
        return true
    }

    private let peakOpen = Atomic<Int>(0)

    /// The most connections open at once since the last call, which restarts the count from those open now: a
    /// periodic reader sees a burst that opened and closed between two of its calls.
    public func takePeak() -> (peak: Int, open: Int) {
        let open = active.load(ordering: .relaxed)
        let peak = peakOpen.exchange(open, ordering: .relaxed)
        return (max(peak, open), open)
    }

    public func release() { active.subtract(1, ordering: .relaxed) }
    public var current: Int { active.load(ordering: .relaxed) }
    public var refused: Int { refusedTotal.load(ordering: .relaxed) }
}

/// A listening socket owned by one loop; accepted fds are handed to `onAccept` on that loop.
///
/// The listening fd sits in the loop's own readiness set (`Poller`) like its connections, not behind a Dispatch
/// source of its own: on Linux every Dispatch source event is a hand-off from Dispatch's manager thread to a worker
/// and a re-arm after it, and with one TLS handshake per connection (`Connection: close` clients) that cost about
/// two more context switches per connection than HAProxy's (`ab.py --counts --modes close`: 3.4 against 1.3).
/// Accepting is bounded per readiness event so one busy listener cannot starve the loop's connections.
public final class Listener {
    public let fd: Int32
    public let loop: EventLoop
    public let address: NetAddress
    private var socket: Socket?
    private var resumeTimer: LoopTimer?
    private var closed = false

    /// Called on the loop with each accepted non-blocking fd and the peer's numeric host.
    public var onAccept: ((Int32, String) -> Void)?

    /// How long accepting pauses after the process or the system ran out of descriptors or memory: the pending
    /// connection stays readable, and a level-triggered set would otherwise spin the loop on it.
    static let exhaustedPauseMilliseconds = 100

    public init(fd: Int32, address: NetAddress, loop: EventLoop) {
        precondition(fd >= 0)
        self.fd = fd
        self.address = address
        self.loop = loop
    }

    /// Starts accepting; call on the loop.
    public func start() {
        loop.assertInLoop()
        guard !closed, socket == nil else { return }
        let socket = Socket(fd: fd, loop: loop)
        socket.onReadable = { [unowned self] in self.acceptBatch() }
        self.socket = socket
        socket.start()
    }

    private func acceptBatch() {
        for _ in 0..<64 {
            var storage = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { cshim_accept_nonblocking(fd, $0, &len) }
            }
            if client < 0 {
                let err = errno
                if err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM { pauseAccepting() }
                return  // EAGAIN, or a connection that failed before it was accepted (ECONNABORTED)
            }
            let peer = NetAddress.peerHost(&storage)
            if let onAccept { onAccept(client, peer) } else { Glibc.close(client) }
        }
    }

    private func pauseAccepting() {
        guard let socket, resumeTimer == nil else { return }
        socket.setReadInterest(false)
        resumeTimer = loop.schedule(afterMilliseconds: Self.exhaustedPauseMilliseconds) { [weak self] in
            guard let self, !self.closed else { return }
            self.resumeTimer = nil
            self.socket?.setReadInterest(true)
        }
    }

    /// Stops accepting and closes the listening fd; call on the loop (or before `start`).
    public func close() {
        guard !closed else { return }
        closed = true
        resumeTimer?.cancel()
        resumeTimer = nil
        if let socket {
            socket.close()
            self.socket = nil
        } else {
            Glibc.close(fd)
        }
    }
}

/// Hands memory freed by closed connections back to the system.
///
/// Each connection holds tens of KB while it lives (TLS buffers, parser state), allocated from glibc's per-thread
/// arenas; after a burst of connections closes (a flood of half-finished handshakes cut by their deadline) that
/// memory stays mapped, and repeated bursts spread over the arenas kept the resident size growing. Trimming after
/// the number of open connections fell a long way returns it.
public final class FreedMemoryTrimmer: Sendable {
    /// Connections that must have closed since the last trim before another is worth its cost (it walks every
    /// arena under its lock).
    public let threshold: Int

    public init(threshold: Int = 256) { self.threshold = threshold }

    /// Called periodically; trims when the connections open now are `threshold` or more below the most that were
    /// open at once since the last call. Returns whether it trimmed.
    @discardableResult
    public func observe(_ budget: ConnectionBudget) -> Bool {
        let (peak, open) = budget.takePeak()
        guard peak - open >= threshold else { return false }
        _ = cshim_malloc_trim()
        return true
    }
}
