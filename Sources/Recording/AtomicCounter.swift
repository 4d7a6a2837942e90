import Synchronization

/// A relaxed counter for metrics: incremented on any thread, read by scrapes and tests.
final class AtomicCounter: Sendable {
    private let value = Atomic<Int>(0)
    init() {}
    func add(_ n: Int = 1) { if n != 0 { value.add(n, ordering: .relaxed) } }
    var load: Int { value.load(ordering: .relaxed) }
}
