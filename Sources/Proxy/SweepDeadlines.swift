/// Things that end at a deadline counted in a loop's sweeps (`LoopContext.sweepIntervalMs`, 250 ms) rather than a
/// Dispatch timer each: arming and cancelling a timer source wakes Dispatch's manager thread twice, which for a
/// closing connection's linger was 17% of the gateway's CPU under a new TLS connection per request.
///
/// A deadline of `milliseconds` falls due at the first sweep at least that long after `insert`, so at most one
/// sweep period late. Loop-confined, like its owners.
struct SweepDeadlines<Value> {
    private var entries: [ObjectIdentifier: (value: Value, dueAtSweep: Int)] = [:]
    private var sweeps = 0

    var count: Int { entries.count }

    mutating func insert(_ value: Value, for key: ObjectIdentifier, milliseconds: Int) {
        let whole = (milliseconds + LoopContext.sweepIntervalMs - 1) / LoopContext.sweepIntervalMs
        entries[key] = (value, sweeps + whole + 1)
    }

    mutating func remove(_ key: ObjectIdentifier) { entries.removeValue(forKey: key) }

    /// Counts one sweep and takes out the values now due.
    mutating func sweep() -> [Value] {
        sweeps += 1
        guard !entries.isEmpty else { return [] }
        var due: [Value] = []
        for (key, entry) in entries where entry.dueAtSweep <= sweeps {
            due.append(entry.value)
            entries.removeValue(forKey: key)
        }
        return due
    }

    /// Takes out every value (the end of a shutdown).
    mutating func removeAll() -> [Value] {
        defer { entries.removeAll() }
        return entries.values.map(\.value)
    }
}
