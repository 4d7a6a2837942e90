/// Whether a count that should move (bytes a client took of its answers) has stood still for a whole limit, judged
/// at the moments the caller looks (the loop's sweeper): one watch per thing that can stall.
public struct ProgressWatch: Sendable {
    /// When the count was last seen to move, or first seen owed (0: not watching).
    private var since: Int64 = 0
    private var mark = 0

    public init() {}

    /// `count` seen at `now` while progress is owed: true once it has not moved for `limit` nanoseconds.
    public mutating func stalled(count: Int, now: Int64, limit: Int64) -> Bool {
        if since == 0 || count != mark {
            since = now
            mark = count
            return false
        }
        return now - since >= limit
    }

    /// Nothing is owed: the next `stalled` starts afresh.
    public mutating func reset() { since = 0 }
}
