import GatewayCore

/// How many lines of a JSON-lines input a reader could use and which it skipped.
///
/// The readers skip what they do not understand so that one bad line does not lose a whole recording; the tally
/// lets a command say so, and refuse an input of which nothing was usable instead of writing an empty result.
/// Blank lines are neither used nor skipped.
public struct LineTally: Sendable, Equatable {
    public private(set) var used = 0
    public private(set) var skipped = 0
    /// The 1-based number of the first skipped line.
    public private(set) var firstSkipped: Int?

    public init() {}

    public mutating func use() { used += 1 }

    public mutating func skip(line: Int) {
        skipped += 1
        if firstSkipped == nil { firstSkipped = line }
    }

    /// True when no line at all could be used (also for an empty input).
    public var nothingUsable: Bool { used == 0 }

    /// A warning naming the skipped lines, e.g. `2 lines (the first is line 3) were skipped: not a traffic
    /// recording`; nil when none were. `what` names, with its article, what the reader wanted.
    public func skippedWarning(notA what: String) -> String? {
        guard skipped > 0, let first = firstSkipped else { return nil }
        return skipped == 1
            ? "1 line (line \(first)) was skipped: not \(what)"
            : "\(skipped) lines (the first is line \(first)) were skipped: not \(what)"
    }

    /// Why nothing could be used, for the command's error message.
    public func nothingUsableReason(notA what: String) -> String {
        guard skipped > 0, let first = firstSkipped else { return "the file is empty" }
        return "no line is \(what) (\(skipped) skipped, the first is line \(first))"
    }
}

extension LineTally {
    /// Every line `parse` can use, with the tally of used and skipped ones; blank lines count as neither. Line
    /// numbers are positions in `lines`, so pass every line of the file, blank ones included.
    public static func read<Lines: Sequence, Item>(_ lines: Lines, _ parse: (Lines.Element) -> Item?) -> (
        [Item], LineTally
    ) where Lines.Element: StringProtocol {
        var tally = LineTally()
        var items: [Item] = []
        for (index, line) in lines.enumerated() {
            if line.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) { continue }
            if let item = parse(line) {
                items.append(item)
                tally.use()
            } else {
                tally.skip(line: index + 1)
            }
        }
        return (items, tally)
    }
}

extension ExchangeRecord {
    /// Like ``read(lines:)``, and counts the lines that are not exchange records.
    public static func readTallied<Lines: Sequence>(lines: Lines) -> (records: [ExchangeRecord], tally: LineTally)
    where Lines.Element: StringProtocol {
        LineTally.read(lines) { line in
            guard let value = try? JSONValue.parse(Array(line.utf8), maxDepth: 64) else { return nil }
            return try? ExchangeRecord(json: value)
        }
    }
}

extension String {
    /// Every line of a text file, blank ones included, so positions are line numbers minus one; a final newline
    /// does not add an empty line.
    public var fileLines: [Substring] {
        var lines = split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }
}
