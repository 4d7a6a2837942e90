/// Days since 1970-01-01 to and from year, month and day in the proleptic Gregorian calendar (Howard Hinnant's
/// `civil_from_days` and `days_from_civil`, in 400-year eras), shared by every date the gateway writes or reads:
/// HTTP `Date`, log timestamps, the emulator's ISO 8601 fields.
public enum CivilCalendar {
    /// `(year, month 1...12, day 1...31)` of day `days` after 1970-01-01 (negative: before it).
    public static func civil(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Days after 1970-01-01 of `year`-`month`-`day`.
    public static func days(fromCivil year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// Whole days and the second within the day of a Unix time (floored, so times before 1970 work too).
    public static func split(epochSeconds: Int64) -> (days: Int, secondOfDay: Int) {
        var days = epochSeconds / 86_400
        var second = epochSeconds % 86_400
        if second < 0 {
            second += 86_400
            days -= 1
        }
        return (Int(days), Int(second))
    }
}
