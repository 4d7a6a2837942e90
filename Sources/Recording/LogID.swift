import GatewayCore
import Synchronization

/// Generates `log_id` values that are unique and sort by time as plain strings.
///
/// Layout: 32 lowercase hex digits. The first 12 are the milliseconds since the Unix epoch (good until the year
/// 10889), the last 20 are 80 random bits. Within one millisecond the random part is incremented instead of redrawn
/// (the ULID "monotonic" rule), and a clock that steps back reuses the last millisecond, so ids from one generator
/// are strictly increasing. Ids from different processes are unique with overwhelming probability (80 random bits).
public final class LogIDGenerator: Sendable {
    private struct State {
        var lastMillis: Int64 = -1
        var high: UInt16 = 0
        var low: UInt64 = 0
    }

    private let state = Mutex(State())
    private let clock: any WallClock

    public init(clock: any WallClock) { self.clock = clock }

    /// The next id. Safe to call from any thread; takes one short lock.
    public func next() -> String { next(atMillis: clock.nowNanoseconds() / 1_000_000) }

    /// The next id for an event of time `now` (milliseconds since the epoch), for callers that already read the
    /// clock. Ids stay strictly increasing even when `now` goes back.
    public func next(atMillis now: Int64) -> String {
        let (millis, high, low) = state.withLock { s -> (Int64, UInt16, UInt64) in
            if now > s.lastMillis {
                var rng = SystemRandomNumberGenerator()
                s.lastMillis = now
                // The top bit stays clear so that increments within a millisecond cannot overflow in practice.
                s.high = UInt16.random(in: 0...0x7FFF, using: &rng)
                s.low = rng.next()
            } else {
                let (l, overflow) = s.low.addingReportingOverflow(1)
                s.low = l
                if overflow {
                    if s.high == UInt16.max {
                        s.lastMillis += 1
                        s.high = 0
                    } else {
                        s.high += 1
                    }
                }
            }
            return (s.lastMillis, s.high, s.low)
        }
        return String(unsafeUninitializedCapacity: 32) { buffer in
            // Fixed-width lowercase hex, written right to left: 12 digits of time, 4 of `high`, 16 of `low`
            // (a time beyond 12 digits keeps only its low 48 bits, as the layout allows no more).
            func put(_ value: UInt64, digits: Int, end: Int) {
                var v = value
                var i = end
                while i > end - digits {
                    i -= 1
                    let nibble = UInt8(truncatingIfNeeded: v & 0xF)
                    buffer[i] = nibble < 10 ? nibble &+ 0x30 : nibble &+ 0x57
                    v >>= 4
                }
            }
            put(UInt64(truncatingIfNeeded: millis), digits: 12, end: 12)
            put(UInt64(high), digits: 4, end: 16)
            put(low, digits: 16, end: 32)
            return 32
        }
    }

    /// The millisecond timestamp an id carries, or nil when `id` is not of this layout.
    public static func millis(of id: String) -> Int64? {
        guard id.utf8.count == 32, let v = UInt64(id.prefix(12), radix: 16) else { return nil }
        return Int64(v)
    }
}
