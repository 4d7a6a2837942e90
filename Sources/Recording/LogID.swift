import GatewayCore
import Synchronization

/// Generates `log_id` values that are unique and sort by time as plain strings.
///
/// Layout: 32 lowercase hex digits. The first 12 are the milliseconds since the Unix epoch (good until the year
/// 10889), the last 20 are 80 random bits. Within one millisecond the random part is incremented instead of redrawn
/// (the ULID "monotonic" rule), so ids of one instant increase in the order they are drawn.
///
/// ``next(atMillis:)`` carries exactly the time it is given: an event's id takes the instant of its `date`, so
/// sorting events by `log_id` sorts them by `date` even though they are written in completion order (a slow
/// request that started first is written last). The last id of each of the most recent
/// ``rememberedMillis`` milliseconds is kept to continue that instant's sequence; an instant older than those gets a
/// fresh random part, which keeps it unique (80 random bits) but not ordered among its own earlier ids.
/// ``next()`` reads the clock and never goes back in time, so its ids are strictly increasing.
/// Ids from different processes are unique with overwhelming probability.
public final class LogIDGenerator: Sendable {
    private struct State {
        var recent: [Int64: (high: UInt16, low: UInt64)] = [:]
        /// The latest millisecond ``next()`` used: a clock that steps back reuses it.
        var clockMillis: Int64 = .min
    }

    /// Milliseconds whose last id is remembered; a request older than this many distinct milliseconds of
    /// later events is rare, and then only its order among ids of the same millisecond is lost.
    static let rememberedMillis = 4096

    private let state = Mutex(State())
    private let clock: any WallClock

    public init(clock: any WallClock) { self.clock = clock }

    /// The next id for the clock's current time; strictly increasing, even when the clock steps back.
    /// Safe to call from any thread; takes one short lock.
    public func next() -> String {
        let now = clock.nowNanoseconds() / 1_000_000
        let millis = state.withLock { s -> Int64 in
            s.clockMillis = max(s.clockMillis, now)
            return s.clockMillis
        }
        return next(atMillis: millis)
    }

    /// The next id for an event of time `millis` (milliseconds since the epoch), which its first 12 digits carry
    /// unchanged. Ids for the same `millis` increase in call order.
    public func next(atMillis millis: Int64) -> String { nextID(atMillis: millis).text }

    /// The same id as ``next(atMillis:)``, as its parts: written into a JSON line without an intermediate `String`.
    public func nextID(atMillis millis: Int64) -> LogID {
        let (high, low) = state.withLock { s -> (UInt16, UInt64) in
            // A new instant at capacity forgets the oldest first; the extra lookup happens only at capacity.
            if s.recent.count >= Self.rememberedMillis, s.recent[millis] == nil { Self.forgetOldest(&s.recent) }
            // One hash lookup for both the read and the write of this instant's last id.
            return Self.advance(&s.recent[millis])
        }
        return LogID(millis: millis, high: high, low: low)
    }

    /// The id after `slot`'s (incremented), or a fresh random one when the instant has none yet; stored back.
    @inline(__always)
    private static func advance(_ slot: inout (high: UInt16, low: UInt64)?) -> (UInt16, UInt64) {
        var value: (high: UInt16, low: UInt64)
        if let last = slot {
            value = last
            let (l, overflow) = value.low.addingReportingOverflow(1)
            value.low = l
            // The top bit of `high` starts clear, so this cannot wrap before 2^79 ids in one millisecond.
            if overflow { value.high &+= 1 }
        } else {
            var rng = SystemRandomNumberGenerator()
            value = (UInt16.random(in: 0...0x7FFF, using: &rng), rng.next())
        }
        slot = value
        return value
    }

    /// Drops the older half of the remembered milliseconds: amortized, one sort per `rememberedMillis / 2` new
    /// milliseconds.
    private static func forgetOldest(_ recent: inout [Int64: (high: UInt16, low: UInt64)]) {
        let keep = recent.keys.sorted().suffix(rememberedMillis / 2)
        guard let oldestKept = keep.first else { return }
        recent = recent.filter { $0.key >= oldestKept }
    }

    /// The millisecond timestamp an id carries, or nil when `id` is not of this layout.
    public static func millis(of id: String) -> Int64? {
        guard id.utf8.count == 32, let v = UInt64(id.prefix(12), radix: 16) else { return nil }
        return Int64(v)
    }
}

/// One `log_id`: 12 hex digits of milliseconds, 4 of `high`, 16 of `low` (see ``LogIDGenerator``).
public struct LogID: Sendable, Equatable {
    public var millis: Int64
    public var high: UInt16
    public var low: UInt64

    /// Room ``write(into:)`` needs.
    public static let length = 32

    public init(millis: Int64, high: UInt16, low: UInt64) {
        self.millis = millis
        self.high = high
        self.low = low
    }

    /// The 32 lowercase hex digits.
    public var text: String {
        String(unsafeUninitializedCapacity: Self.length) { buffer in
            write(into: buffer.baseAddress!)
            return Self.length
        }
    }

    /// Writes the 32 digits at `out`, right to left within each field (a time beyond 12 digits keeps only its low
    /// 48 bits, as the layout allows no more).
    @inline(__always)
    public func write(into out: UnsafeMutablePointer<UInt8>) {
        @inline(__always) func put(_ value: UInt64, digits: Int, end: Int) {
            var v = value
            var i = end
            while i > end - digits {
                i -= 1
                let nibble = UInt8(truncatingIfNeeded: v & 0xF)
                out[i] = nibble < 10 ? nibble &+ 0x30 : nibble &+ 0x57
                v >>= 4
            }
        }
        put(UInt64(truncatingIfNeeded: millis), digits: 12, end: 12)
        put(UInt64(high), digits: 4, end: 16)
        put(low, digits: 16, end: 32)
    }
}
