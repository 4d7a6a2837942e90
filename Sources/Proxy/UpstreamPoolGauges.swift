import Synchronization

/// The size of one loop's pool to one upstream origin, published for the `/metrics` scrape.
///
/// Written only by the loop that owns the pool (a relaxed store of a count it already holds: a plain move, no
/// lock, no read-modify-write), read by the scraper from its own thread.
final class UpstreamPoolCells: Sendable {
    /// The pool's key: scheme, host and port (``UpstreamOrigin/key``).
    let origin: String
    /// Connections open: connecting, serving a request or idle.
    let open = Atomic<Int>(0)
    /// Connections open and waiting for a request.
    let idle = Atomic<Int>(0)

    init(origin: String) { self.origin = origin }
}

/// Every upstream pool of a gateway (one per loop and origin), summed per origin at scrape time.
///
/// The lock is taken when a loop makes its first pool to an origin, when a pool goes away and when `/metrics` is
/// scraped, never per request.
final class UpstreamPoolGauges: Sendable {
    /// An origin's pools summed over the loops.
    struct Size: Equatable {
        var origin: String
        var open: Int
        var idle: Int
    }

    private let pools = Mutex<[ObjectIdentifier: UpstreamPoolCells]>([:])

    /// The cells a new pool to `origin` publishes its counts in; `remove` them when the pool goes away.
    func add(origin: String) -> UpstreamPoolCells {
        let cells = UpstreamPoolCells(origin: origin)
        pools.withLock { $0[ObjectIdentifier(cells)] = cells }
        return cells
    }

    func remove(_ cells: UpstreamPoolCells) {
        pools.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(cells)) }
    }

    /// The pools' sizes per origin, sorted by origin, with a zero entry for each of `origins` no loop has a pool
    /// to yet (so that a configured origin is a series from the start).
    func sizes(including origins: some Sequence<String> = []) -> [Size] {
        var byOrigin: [String: Size] = [:]
        for origin in origins { byOrigin[origin] = Size(origin: origin, open: 0, idle: 0) }
        pools.withLock { pools in
            for cells in pools.values {
                var size = byOrigin[cells.origin] ?? Size(origin: cells.origin, open: 0, idle: 0)
                size.open += cells.open.load(ordering: .relaxed)
                size.idle += cells.idle.load(ordering: .relaxed)
                byOrigin[cells.origin] = size
            }
        }
        return byOrigin.values.sorted { $0.origin < $1.origin }
    }
}
