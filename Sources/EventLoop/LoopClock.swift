import GatewayCore

/// A loop's view of a wall clock: read at most once per batch of events, as nginx's `ngx_current_msec`,
/// libuv's `uv_now` and HAProxy's `now_ms` are read once per pass of their event loops.
///
/// A proxied request asks for the time about seven times (its start, the upstream's start and end, deadlines, its
/// end), and on a virtual machine each `clock_gettime` costs tens of nanoseconds (perf, HTTP/2 pass-through: 2% of
/// the gateway's CPU). Every event of one batch was ready at the same poll, so one reading serves them all; the
/// batch's handlers take microseconds, far below the millisecond resolution of the deadlines, durations and token
/// times that read it. Outside a batch (timers, work queued with `execute`, other threads' tests) every call reads
/// `source`, so a timer that fires late never sees a stale time.
///
/// Loop-confined: read only on its loop's queue (checked in debug builds).
public final class LoopClock: WallClock, @unchecked Sendable {
    // Safety (@unchecked): `cached` and `cachedBatch` are touched only on the loop's queue, as is the poller's
    // batch number they are compared with.
    private let source: any WallClock
    private let loop: EventLoop
    private var cached: Int64 = 0
    private var cachedBatch: UInt64 = 0

    public init(source: any WallClock, loop: EventLoop) {
        self.source = source
        self.loop = loop
    }

    public func nowNanoseconds() -> Int64 {
        loop.assertInLoop()
        let batch = loop.poller.batchNumber
        // Batch numbers start at 1: zero means no batch is being delivered.
        if batch != 0 && batch == cachedBatch { return cached }
        let now = source.nowNanoseconds()
        cached = now
        cachedBatch = batch
        return now
    }
}
