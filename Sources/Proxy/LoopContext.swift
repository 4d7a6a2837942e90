import EventLoop
import GatewayCore
import Synchronization

/// How many client connections a loop serves, counted from the moment a listener picks the loop for one until it
/// closes, so that listeners on every loop can pick the least busy one.
final class LoopLoad: Sendable {
    private let count = Atomic<Int>(0)

    var current: Int { count.load(ordering: .relaxed) }
    func add() { count.add(1, ordering: .relaxed) }
    func remove() { count.subtract(1, ordering: .relaxed) }
}

/// Everything one loop owns: its scratch buffer, client connections, upstream pools and request counters.
///
/// Loop-confined, created on the loop's queue. Nothing in it is shared with another loop except `metrics` and
/// `gateway` (Sendable).
final class LoopContext {
    let loop: EventLoop
    let scratch: LoopScratch
    let clock: any WallClock
    let metrics: GatewayMetrics
    /// This loop's request counters and histograms (it is their only writer).
    let requestMetrics: LoopMetrics
    unowned let gateway: GatewayState
    /// Client connections this loop serves or is about to (read by the other loops' listeners).
    let loopLoad: LoopLoad
    private var connections: [Int: ClientConnection] = [:]
    private var pools: [String: UpstreamPool] = [:]
    private var lastPool: UpstreamPool?
    private var connectionCounter = 0
    private var requestCounter: UInt64 = 0
    private let requestIDPrefix: String
    private var sweeper: LoopTimer?
    private(set) var isDraining = false
    private var graveyard: [AnyObject] = []
    private var graveyardSweepScheduled = false
    var onRequestFinished: ((Exchange) -> Void)?

    init(
        loop: EventLoop, clock: any WallClock, metrics: GatewayMetrics, gateway: GatewayState,
        loopLoad: LoopLoad = LoopLoad()
    ) {
        self.loop = loop
        self.loopLoad = loopLoad
        self.scratch = LoopScratch(loop: loop)
        self.clock = clock
        self.metrics = metrics
        self.requestMetrics = metrics.makeLoopMetrics()
        self.gateway = gateway
        self.requestIDPrefix = "\(gateway.instanceID)-\(loop.index)-"
        self.sweeper = loop.scheduleRepeating(everyMilliseconds: 250) { [weak self] in self?.sweep() }
    }

    var connectionCount: Int { connections.count }

    private var dateSecond: Int64 = -1
    private var dateText = ""

    /// The `Date` of responses written now (RFC 9110 §6.6.1), formatted once per second per loop.
    var httpDate: String {
        let second = clock.nowNanoseconds() / 1_000_000_000
        if second != dateSecond {
            dateSecond = second
            dateText = HTTPDate.imfFixdate(epochSeconds: second)
        }
        return dateText
    }

    func nextConnectionID() -> Int {
        connectionCounter += 1
        return connectionCounter
    }

    /// A request id unique across loops and restarts: loop index, start time and a counter.
    func nextRequestID() -> String {
        requestCounter &+= 1
        return requestIDPrefix + String(requestCounter, radix: 36)
    }

    func register(_ connection: ClientConnection) { connections[connection.id] = connection }

    func unregister(_ connection: ClientConnection) {
        if let gone = connections.removeValue(forKey: connection.id) {
            gateway.budget.release()
            loopLoad.remove()
            metrics.connectionClosed()
            retire(gone)
        }
    }

    /// Keeps an object alive until the loop has unwound the current event: a connection that closes from inside
    /// its own call stack (a failed write deep in a response) must not be freed while its methods still run.
    func retire(_ object: AnyObject) {
        graveyard.append(object)
        guard !graveyardSweepScheduled else { return }
        graveyardSweepScheduled = true
        loop.runAfterTurn { [weak self] in
            guard let self else { return }
            self.graveyard.removeAll()
            self.graveyardSweepScheduled = false
        }
    }

    func pool(for origin: UpstreamOrigin) -> UpstreamPool {
        // Most loops talk to one origin: one string comparison instead of a dictionary lookup.
        if let last = lastPool, last.origin === origin || last.origin.key == origin.key { return last }
        let key = origin.key
        let pool = pools[key] ?? UpstreamPool(origin: origin, context: self)
        pools[key] = pool
        lastPool = pool
        return pool
    }

    func requestFinished(_ exchange: Exchange) {
        onRequestFinished?(exchange)
    }

    private func sweep() {
        let now = clock.nowNanoseconds()
        for connection in connections.values where connection.deadlineNanos < now { connection.timedOut() }
        for pool in pools.values { pool.sweep(now: now) }
    }

    /// Stops taking new requests: idle connections close now, busy ones after their current response.
    func drain() {
        isDraining = true
        for connection in connections.values { connection.drain() }
        for pool in pools.values { pool.closeIdle() }
    }

    func forceCloseAll() {
        for connection in Array(connections.values) { connection.forceClose() }
        sweeper?.cancel()
    }
}
