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
        return true
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
