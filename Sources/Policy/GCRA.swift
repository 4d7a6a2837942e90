import Synchronization

/// The parameters of one GCRA limit (the "virtual scheduling" form of the generic cell rate algorithm).
///
/// A cell keeps one number, its theoretical arrival time (TAT). A request at `now` conforms when
/// `max(TAT, now) - now <= tolerance`; admitting it moves TAT to `max(TAT, now) + interval`. With
/// `interval = 1 s / rate` and `tolerance = (burst - 1) * interval` this is a token bucket of `burst`
/// tokens refilled at `rate` per second, decided with one comparison and stored in one integer.
/// A TAT at or before `now` is a full bucket, so an idle cell carries no information and can be dropped.
public struct GCRAParameters: Sendable, Hashable {
    public let ratePerSecond: Int
    /// Bucket size: how many requests may arrive at once after an idle period.
    public let burst: Int
    /// Nanoseconds between two requests at the sustained rate, rounded up so the rate is never exceeded.
    public let intervalNanoseconds: Int64
    /// `(burst - 1) * interval`.
    public let toleranceNanoseconds: Int64

    /// `rate` and `burst` are clamped to at least 1.
    public init(ratePerSecond: Int, burst: Int) {
        let rate = max(1, ratePerSecond)
        let size = max(1, burst)
        self.ratePerSecond = rate
        self.burst = size
        self.intervalNanoseconds = (1_000_000_000 + Int64(rate) - 1) / Int64(rate)
        self.toleranceNanoseconds = Int64(size - 1) * intervalNanoseconds
    }

    /// The burst worth `burstSeconds` of the sustained rate (at least one request).
    public init(ratePerSecond: Int, burstSeconds: Double) {
        let scaled = (Double(max(1, ratePerSecond)) * burstSeconds).rounded()
        let burst = scaled.isFinite ? Int(min(max(scaled, 1), Double(TierTable.maxRate) * 3600)) : 1
        self.init(ratePerSecond: ratePerSecond, burst: burst)
    }

    /// Whether a request at `now` conforms to a cell whose TAT is `tat`, and the TAT after admitting it.
    @inlinable
    public func evaluate(tat: Int64, now: Int64) -> (conforms: Bool, nextTAT: Int64) {
        let base = tat > now ? tat : now
        return (base - now <= toleranceNanoseconds, base + intervalNanoseconds)
    }

    /// How many requests a cell with `tat` would admit at `now`, from 0 to `burst`.
    public func remaining(tat: Int64, now: Int64) -> Int {
        let slack = now + toleranceNanoseconds - tat
        if slack < 0 { return 0 }
        return min(burst, Int(slack / intervalNanoseconds) + 1)
    }

    /// When the cell next gains a request (the next refill): `now` itself when the bucket is already full.
    public func nextRefill(tat: Int64, now: Int64) -> Int64 {
        let have = remaining(tat: tat, now: now)
        if have >= burst { return now }
        // Requests become available at tat - tolerance, then one per interval.
        return tat - toleranceNanoseconds + Int64(have) * intervalNanoseconds
    }

    /// Nanoseconds from `now` until a request would conform (0 when one conforms now).
    public func wait(tat: Int64, now: Int64) -> Int64 {
        max(0, tat - toleranceNanoseconds - now)
    }
}

/// One lock-free GCRA cell: the TAT in an `Atomic<Int64>`, updated by a compare-and-swap loop.
///
/// Exact under concurrency: each admission is one successful CAS from the TAT it tested to the TAT it
/// computed, so two threads can never both spend the same slot (the loser of a race retests the new TAT).
public final class GCRACell: Sendable {
    /// A TAT far in the past: an untouched cell is a full bucket at any plausible clock value.
    public static let idleTAT: Int64 = Int64.min / 4

    @usableFromInline let tat: Atomic<Int64>

    public init(tat: Int64 = GCRACell.idleTAT) { self.tat = Atomic(tat) }

    /// Tests and, when it conforms, spends one request. Returns the TAT the decision was made against
    /// (before the update) and whether it was admitted.
    @inlinable
    public func admit(_ parameters: GCRAParameters, now: Int64) -> (admitted: Bool, tatBefore: Int64) {
        var current = tat.load(ordering: .relaxed)
        while true {
            let (conforms, next) = parameters.evaluate(tat: current, now: now)
            guard conforms else { return (false, current) }
            let (exchanged, original) = tat.compareExchange(
                expected: current, desired: next, successOrdering: .acquiringAndReleasing, failureOrdering: .relaxed)
            if exchanged { return (true, current) }
            current = original
        }
    }

    /// The current TAT, without spending anything.
    public func peek() -> Int64 { tat.load(ordering: .relaxed) }

    /// Forces the TAT (tests and restore from a shared store).
    public func store(_ value: Int64) { tat.store(value, ordering: .relaxed) }
}
