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
    public func next() -> String {
        let now = clock.nowNanoseconds() / 1_000_000
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
        return hex(UInt64(millis), width: 12) + hex(UInt64(high), width: 4) + hex(low, width: 16)
    }

    /// The millisecond timestamp an id carries, or nil when `id` is not of this layout.
    public static func millis(of id: String) -> Int64? {
        guard id.utf8.count == 32, let v = UInt64(id.prefix(12), radix: 16) else { return nil }
        return Int64(v)
    }

    private func hex(_ v: UInt64, width: Int) -> String {
        let s = String(v, radix: 16)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}
