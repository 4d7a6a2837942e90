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
    /// The injected clock as the loop sees it: read once per batch of events (`LoopClock`).
    let clock: LoopClock
    let metrics: GatewayMetrics
    /// This loop's request counters and histograms (it is their only writer).
    let requestMetrics: LoopMetrics
    unowned let gateway: GatewayState
    /// Client connections this loop serves or is about to (read by the other loops' listeners).
    let loopLoad: LoopLoad
    /// Refused connections closing gracefully.
    let refusalLinger: RefusalLinger
    private var connections: [Int: ClientConnection] = [:]
    private var pools: [String: UpstreamPool] = [:]
    private var lastPool: UpstreamPool?
    private var connectionCounter = 0
    private var requestIDs: RequestIDSequence
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
        self.refusalLinger = RefusalLinger(loop: loop)
        self.clock = LoopClock(source: clock, loop: loop)
        self.metrics = metrics
        self.requestMetrics = metrics.makeLoopMetrics()
        self.gateway = gateway
        self.requestIDs = RequestIDSequence(prefix: "\(gateway.instanceID)-\(loop.index)-")
        // Strong, not weak: a weak reference gives this object a side table, and then every retain and release of
        // it (three per request) takes the slow path. The cycle ends when `forceCloseAll` (the end of every
        // shutdown) cancels the timer, which drops this closure; unowned would trap if the gateway were released
        // from another thread while the timer fired.
        self.sweeper = loop.scheduleRepeating(everyMilliseconds: Self.sweepIntervalMs) { self.sweep() }
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
    func nextRequestID() -> String { requestIDs.next() }

    func register(_ connection: ClientConnection) { connections[connection.id] = connection }

    func unregister(_ connection: ClientConnection) {
        if let gone = connections.removeValue(forKey: connection.id) {
            gateway.budget.release()
            loopLoad.remove()
            // A connection that closed before its protocol was known (a failed TLS handshake) was never counted.
            if gone.countedOpen { metrics.connectionClosed() }
            retire(gone)
        }
    }

    /// Keeps an object alive until the loop has unwound the current event: a connection that closes from inside
    /// its own call stack (a failed write deep in a response) must not be freed while its methods still run.
    func retire(_ object: AnyObject) {
        graveyard.append(object)
        guard !graveyardSweepScheduled else { return }
        graveyardSweepScheduled = true
        // Strong for the same reason as the sweeper's; the closure runs once, at the end of this turn.
        loop.runAfterTurn {
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

    /// The sweeper's period, and when it last ran: `now` to within a period without reading the clock.
    static let sweepIntervalMs = 250
    private(set) var lastSweepNanos: Int64 = 0

    /// A deadline `ms` from now, read off the last sweep instead of the clock (per-request deadlines that the
    /// sweeper alone checks need no finer time): never earlier than `ms` from now while the sweeper keeps time.
    func coarseDeadline(afterMilliseconds ms: Int) -> Int64 {
        if lastSweepNanos == 0 { lastSweepNanos = clock.nowNanoseconds() }
        return lastSweepNanos + Int64(ms + Self.sweepIntervalMs) * 1_000_000
    }

    private func sweep() {
        let now = clock.nowNanoseconds()
        lastSweepNanos = now
        for connection in connections.values { connection.swept(now: now) }
        for pool in pools.values { pool.sweep(now: now) }
        scratch.sweepLingering()
        refusalLinger.sweep()
    }

    /// Stops taking new requests: idle connections close now, busy ones after their current response.
    func drain() {
        isDraining = true
        for connection in connections.values { connection.drain() }
        for pool in pools.values { pool.closeIdle() }
    }

    func forceCloseAll() {
        for connection in Array(connections.values) { connection.forceClose() }
        scratch.closeLingering()
        refusalLinger.closeAll()
        sweeper?.cancel()
    }
}

/// `prefix` followed by 1, 2, 3… in base 36 (lower case, no leading zeros), as `String(n, radix: 36)` writes them.
///
/// The digits are kept as text and counted up in place, so an id costs one string made from bytes instead of a
/// number formatted and two strings joined (callgrind, HTTP/2 pass-through: about 500 instructions per request).
struct RequestIDSequence {
    private var text: [UInt8]
    private let prefixCount: Int

    init(prefix: String) {
        text = Array(prefix.utf8)
        prefixCount = text.count
        text.append(UInt8(ascii: "0"))
    }

    mutating func next() -> String {
        // Trailing z digits roll over to 0; the digit before them counts up (9 to a), or, when every digit was z,
        // a new leading 1 appears (35 + 1 = "10").
        var i = text.count - 1
        while i >= prefixCount && text[i] == UInt8(ascii: "z") {
            text[i] = UInt8(ascii: "0")
            i -= 1
        }
        if i < prefixCount {
            text.insert(UInt8(ascii: "1"), at: prefixCount)
        } else {
            text[i] = text[i] == UInt8(ascii: "9") ? UInt8(ascii: "a") : text[i] &+ 1
        }
        return String(decoding: text, as: UTF8.self)
    }
}
