#if canImport(Glibc)
    import Glibc
#endif
import CSystemShims
import GatewayCore

/// ISO 8601 timestamps in UTC with milliseconds (`2026-01-02T03:04:05.678Z`), the form of `date` in Auth0 logs.
///
/// Written by hand (civil-from-days) so that formatting needs no locale, no Foundation formatter and no lock.
public enum Timestamp {
    /// Formats milliseconds since the Unix epoch.
    public static func iso8601(millis: Int64) -> String {
        let ms = Int(((millis % 1000) + 1000) % 1000)
        let (days, secOfDay) = CivilCalendar.split(epochSeconds: (millis - Int64(ms)) / 1000)
        let (y, m, d) = CivilCalendar.civil(fromDays: days)
        var s = pad(y, 4) + "-" + pad(m, 2) + "-" + pad(d, 2)
        s += "T" + pad(secOfDay / 3600, 2) + ":" + pad(secOfDay / 60 % 60, 2) + ":" + pad(secOfDay % 60, 2)
        s += "." + pad(ms, 3) + "Z"
        return s
    }

    /// The length of every timestamp of the years 0000 through 9999.
    static let fixedLength = 24

    /// Writes the ``fixedLength`` bytes of ``iso8601(millis:)`` at `out` and returns true, or returns false (and
    /// writes nothing) for a time outside the years 0000 through 9999.
    static func write(millis: Int64, into out: UnsafeMutablePointer<UInt8>) -> Bool {
        guard millis >= 0 && millis < 253_402_300_800_000 else { return false }
        let ms = Int(millis % 1000)
        let secs = millis / 1000
        let days = Int(secs / 86_400)
        let secOfDay = Int(secs % 86_400)
        let (y, m, d) = CivilCalendar.civil(fromDays: days)
        func put(_ v: Int, _ width: Int, at index: Int) {
            var v = v
            var i = index + width
            while i > index {
                i -= 1
                out[i] = UInt8(truncatingIfNeeded: v % 10) &+ 0x30
                v /= 10
            }
        }
        put(y, 4, at: 0)
        out[4] = UInt8(ascii: "-")
        put(m, 2, at: 5)
        out[7] = UInt8(ascii: "-")
        put(d, 2, at: 8)
        out[10] = UInt8(ascii: "T")
        put(secOfDay / 3600, 2, at: 11)
        out[13] = UInt8(ascii: ":")
        put(secOfDay / 60 % 60, 2, at: 14)
        out[16] = UInt8(ascii: ":")
        put(secOfDay % 60, 2, at: 17)
        out[19] = UInt8(ascii: ".")
        put(ms, 3, at: 20)
        out[23] = UInt8(ascii: "Z")
        return true
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z` (the form this module writes; fractions beyond milliseconds are cut).
    public static func parseISO8601(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        guard b.count >= 20, b[4] == 0x2D, b[7] == 0x2D, b[10] == 0x54 || b[10] == 0x20, b[13] == 0x3A,
            b[16] == 0x3A, b.last == 0x5A
        else { return nil }
        func num(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }
                v = v * 10 + Int(b[i] - 0x30)
            }
            return v
        }
        guard let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10), let h = num(11..<13),
            let mi = num(14..<16), let s = num(17..<19), (1...12).contains(mo), (1...31).contains(d), h < 24,
            mi < 60, s < 61
        else { return nil }
        var ms = 0
        if b[19] == 0x2E {
            var digits = 0
            var i = 20
            while i < b.count - 1 {
                guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }
                if digits < 3 { ms = ms * 10 + Int(b[i] - 0x30) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 3) { ms *= 10 }
        } else if b.count != 20 {
            return nil
        }
        let days = Int64(CivilCalendar.days(fromCivil: y, mo, d))
        return ((days * 86_400 + Int64(h * 3600 + mi * 60 + s)) * 1000) + Int64(ms)
    }

    private static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}

/// The system's real-time clock, for production wiring (tests inject `ManualClock`).
public struct RealtimeClock: WallClock {
    public init() {}
    public func nowNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
