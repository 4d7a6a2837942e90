/// Whether a request body the gateway streams to the upstream still arrives as a request should: each streamed body
/// holds an upstream connection until its last byte, so a client that sends nothing, or a byte now and then, would
/// hold it for as long as it likes (slowloris on the body). Judged on the time the gateway was willing to read:
/// while it holds the client back itself (the upstream is not taking the body), the client is not to blame.
///
/// Pure: the caller ticks it with the time passed, as Kestrel's `MinRequestBodyDataRate` does with its own
/// heartbeat (rate averaged over the whole body, after a grace period for a slow start).
public struct BodyArrivalJudge: Sendable {
    public enum Verdict: Equatable, Sendable {
        case fine
        /// No byte for `idleLimitMs` of reading time.
        case stopped
        /// Fewer than `minBytesPerSecond` on average once `graceMs` of reading time has passed.
        case tooSlow
    }

    /// The deadline of a body read whole before its request goes on (a small or chunked one, or one of HTTP/2
    /// without a length): its head's deadline plus the time `received` bytes earn at `minBytesPerSecond`. A body
    /// that keeps that average is never cut, however long; a trickle earns next to nothing, so it is bounded by the
    /// header timeout as a slow head is. With no minimum rate (0), `idleDeadline`: only silence ends it.
    public static func wholeBodyDeadline(
        headDeadline: Int64, received: Int, minBytesPerSecond: Int, idleDeadline: Int64
    ) -> Int64 {
        guard minBytesPerSecond > 0 else { return idleDeadline }
        return headDeadline &+ Int64(received) * 1_000_000_000 / Int64(minBytesPerSecond)
    }

    public let idleLimitMs: Int
    /// 0: no rate is required (only `idleLimitMs` holds).
    public let minBytesPerSecond: Int
    public let graceMs: Int
    private var readingMs = 0
    private var quietMs = 0
    private var lastReceived = 0

    public init(idleLimitMs: Int, minBytesPerSecond: Int, graceMs: Int) {
        self.idleLimitMs = idleLimitMs
        self.minBytesPerSecond = minBytesPerSecond
        self.graceMs = graceMs
    }

    /// `received`: the body's bytes so far; `heldBack`: whether the gateway stopped reading at any time during
    /// the `elapsedMs` just passed (that span then counts neither as quiet nor towards the rate).
    public mutating func tick(elapsedMs: Int, received: Int, heldBack: Bool) -> Verdict {
        let progressed = received != lastReceived
        lastReceived = received
        if heldBack {
            quietMs = 0
            return .fine
        }
        readingMs += elapsedMs
        if progressed {
            quietMs = 0
        } else {
            quietMs += elapsedMs
            if quietMs >= idleLimitMs { return .stopped }
        }
        if minBytesPerSecond > 0, readingMs >= graceMs,
            Int64(received) * 1000 < Int64(minBytesPerSecond) * Int64(readingMs)
        {
            return .tooSlow
        }
        return .fine
    }
}
