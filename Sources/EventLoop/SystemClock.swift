import GatewayCore
import Glibc

/// The real wall clock (CLOCK_REALTIME), for production wiring; pure code only ever sees `WallClock`.
public struct SystemClock: WallClock {
    public init() {}

    public func nowNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
