/// A request's Max-Forwards field (RFC 9110 §7.6.2), which bounds how many more intermediaries may forward an
/// OPTIONS or TRACE request.
public enum MaxForwards: Equatable, Sendable {
    case absent
    /// The hops left; a value past `Int.max` saturates there (the recipient's "maximum supported value").
    case hops(Int)
    /// Not `1*DIGIT`, a list, or more than one field line: no single count to check and update.
    case invalid

    public init(_ headers: HTTPFields) {
        let values = headers.values("Max-Forwards")
        guard let value = values.first else {
            self = .absent
            return
        }
        guard values.count == 1, let hops = Self.count(value) else {
            self = .invalid
            return
        }
        self = .hops(hops)
    }

    /// The count one field value gives, saturated at `Int.max`; nil when it is not `1*DIGIT` (leading zeros are
    /// digits like any other: "00" is zero).
    static func count(_ value: String) -> Int? {
        guard !value.isEmpty, value.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        var hops = 0
        for digit in value.utf8 {
            let (product, overflowed) = hops.multipliedReportingOverflow(by: 10)
            let (sum, overflowedAgain) = product.addingReportingOverflow(Int(digit &- 0x30))
            if overflowed || overflowedAgain { return .max }
            hops = sum
        }
        return hops
    }

    /// The value to forward: one less than received, or nil when there is none to send on.
    public var forwardedValue: String? {
        guard case .hops(let hops) = self, hops > 0 else { return nil }
        return String(hops - 1)
    }

    /// `forwardedValue` of the request whose one Max-Forwards field line holds `value`: for a forwarder that is at
    /// that line already, instead of searching the fields for it again.
    public static func forwardedValue(of value: String) -> String? {
        count(value).flatMap { MaxForwards.hops($0).forwardedValue }
    }
}
