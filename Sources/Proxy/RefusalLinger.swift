import EventLoop

/// Closes refused connections the way served ones close: half-close after the answer, then read and discard what
/// the client still sends until it closes, for a bounded time and amount.
///
/// A refusal happens at accept, usually before the client has written its request. Closed at once, the socket
/// answers that request (or the body behind it) with a reset (RFC 1122 §4.2.2.13), and a client that is still
/// sending sees "connection reset" instead of the 503 or TLS alert that explains it (RFC 9112 §9.6 asks for the
/// staged close). Lingering holds a file descriptor but no `max_connections` slot, so its own count is bounded:
/// past it, a refusal closes at once as before.
///
/// Loop-confined: `close` and every handler run on the loop's queue.
final class RefusalLinger {
    private let loop: EventLoop
    /// The lingering sockets, closed anyway when their linger is over.
    private var lingering = SweepDeadlines<Socket>()
    let limit: Int
    let milliseconds: Int
    let maxBytes: Int

    init(loop: EventLoop, limit: Int = 64, milliseconds: Int = 2_000, maxBytes: Int = 4 << 20) {
        self.loop = loop
        self.limit = limit
        self.milliseconds = milliseconds
        self.maxBytes = maxBytes
    }

    /// Half-closes `fd` (its answer already written) and closes it once the client has closed, `milliseconds` have
    /// passed, or `maxBytes` more arrived; at once when `limit` refusals linger already.
    func close(_ fd: Int32) {
        loop.assertInLoop()
        guard lingering.count < limit else {
            GatewaySyscalls.close(fd)
            return
        }
        // A socket of the loop's own poller, as a served connection's: the same reads and the same close.
        let socket = Socket(fd: fd, loop: loop)
        socket.shutdownWrite()
        lingering.insert(socket, for: ObjectIdentifier(socket), milliseconds: milliseconds)
        var drained = 0
        let finish = { [weak self, unowned socket] in
            guard !socket.isClosed else { return }
            socket.close()
            self?.lingering.remove(ObjectIdentifier(socket))
        }
        socket.onReadable = { [maxBytes] in
            withUnsafeTemporaryAllocation(byteCount: 16 * 1024, alignment: 1) { scratch in
                while true {
                    switch socket.read(into: scratch) {
                    case .bytes(let n):
                        drained += n
                        if drained > maxBytes { return finish() }
                    case .wouldBlock: return
                    // The client closed, or nothing more will come.
                    case .eof, .error: return finish()
                    }
                }
            }
        }
        socket.start()
    }

    /// How many refused connections linger now.
    var count: Int { lingering.count }

    /// One sweep of the loop: closes the sockets whose linger is over.
    func sweep() {
        for socket in lingering.sweep() { socket.close() }
    }

    /// Closes every lingering socket now (the end of a shutdown).
    func closeAll() {
        for socket in lingering.removeAll() { socket.close() }
    }
}
