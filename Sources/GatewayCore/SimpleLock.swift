import Synchronization

/// A small mutex for the few cold paths that need one (manual clocks, counters read by tests).
public final class SimpleLock: Sendable {
    private let mutex = Mutex<Void>(())
    public init() {}
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        try mutex.withLock { _ in try body() }
    }
}
