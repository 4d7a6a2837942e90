/// RFC 9110 §5.6.7 IMF-fixdate, the only form a sender generates: `Sun, 06 Nov 1994 08:49:37 GMT`.
public enum HTTPDate {
    private static let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// The IMF-fixdate of a Unix time (seconds since 1970-01-01T00:00:00Z, UTC).
    public static func imfFixdate(epochSeconds: Int64) -> String {
        let (days, second) = CivilCalendar.split(epochSeconds: epochSeconds)
        let (year, month, day) = CivilCalendar.civil(fromDays: days)
        // 1970-01-01 was a Thursday.
        let weekday = weekdays[((days % 7) + 7) % 7]
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let time = "\(two(second / 3600)):\(two(second / 60 % 60)):\(two(second % 60))"
        return "\(weekday), \(two(day)) \(months[month - 1]) \(year) \(time) GMT"
    }
}
