/// Wall-clock time in nanoseconds since the Unix epoch, injected into every pure decision.
public protocol WallClock: Sendable {
    func nowNanoseconds() -> Int64
}

extension WallClock {
    public func nowSeconds() -> Int64 { nowNanoseconds() / 1_000_000_000 }
}

/// A clock whose time moves only when a test moves it.
public final class ManualClock: WallClock, @unchecked Sendable {
    // Safety: tests drive a ManualClock from one thread at a time; the lock makes stray concurrent use safe anyway.
    private let lock = SimpleLock()
    private var nanos: Int64

    public init(seconds: Int64 = 1_800_000_000) { self.nanos = seconds * 1_000_000_000 }

    public init(nanoseconds: Int64) { self.nanos = nanoseconds }

    public func nowNanoseconds() -> Int64 { lock.withLock { nanos } }

    public func advance(nanoseconds: Int64) { lock.withLock { nanos += nanoseconds } }

    public func advance(seconds: Double) { advance(nanoseconds: Int64(seconds * 1e9)) }

    public func set(nanoseconds: Int64) { lock.withLock { nanos = nanoseconds } }
}
