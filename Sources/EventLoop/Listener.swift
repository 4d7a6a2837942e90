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
/// Accepting is bounded per readiness event so one busy listener cannot starve the loop's connections.
public final class Listener {
    public let fd: Int32
    public let loop: EventLoop
    public let address: NetAddress
    private let source: any DispatchSourceRead
    private var closed = false

    /// Called on the loop with each accepted non-blocking fd and the peer's numeric host.
    public var onAccept: ((Int32, String) -> Void)?

    public init(fd: Int32, address: NetAddress, loop: EventLoop) {
        precondition(fd >= 0)
        self.fd = fd
        self.address = address
        self.loop = loop
        self.source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: loop.queue)
        source.setEventHandler { [unowned self] in self.acceptBatch() }
        source.setCancelHandler { [fd] in Glibc.close(fd) }
    }

    public func start() { source.activate() }

    private func acceptBatch() {
        for _ in 0..<64 {
            var storage = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { cshim_accept_nonblocking(fd, $0, &len) }
            }
            if client < 0 { return }  // EAGAIN, or a transient error such as EMFILE: try on the next event
            let peer = NetAddress.peerHost(&storage)
            if let onAccept { onAccept(client, peer) } else { Glibc.close(client) }
        }
    }

    /// Stops accepting; the listening fd closes when the source's cancel handler runs.
    public func close() {
        guard !closed else { return }
        closed = true
        source.cancel()
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
