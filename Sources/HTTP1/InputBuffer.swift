import GatewayCore

/// The bytes a parser has been fed and not yet consumed.
///
/// Consumed bytes are reclaimed lazily at the next `append`, so consuming is an index move. Line searches remember
/// how far they already looked, so feeding a head one byte at a time costs O(n), not O(n²).
struct InputBuffer: Sendable {
    private(set) var storage: [UInt8] = []
    private(set) var readIndex = 0
    /// Absolute index below which no LF lies in the current unconsumed line.
    private var scannedUpTo = 0

    var readableCount: Int { storage.count - readIndex }

    /// Buffers above this capacity are released when they drain, so an idle connection does not keep the memory of
    /// its largest body.
    private static let retainedCapacity = 64 * 1024

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        reclaim()
        storage.append(contentsOf: bytes)
    }

    mutating func append<C: Collection>(contentsOf bytes: C) where C.Element == UInt8 {
        reclaim()
        storage.append(contentsOf: bytes)
    }

    private mutating func reclaim() {
        if readIndex == storage.count {
            if storage.capacity > Self.retainedCapacity {
                storage = []
            } else {
                storage.removeAll(keepingCapacity: true)
            }
            readIndex = 0
            scannedUpTo = 0
        } else if readIndex >= 4096 && readIndex * 2 >= storage.count {
            storage.removeSubrange(0..<readIndex)
            scannedUpTo = max(0, scannedUpTo - readIndex)
            readIndex = 0
        }
    }

    /// Drops everything, for a parser that will never read again.
    mutating func discardAll() {
        storage = []
        readIndex = 0
        scannedUpTo = 0
    }

    @inline(__always)
    func byte(at offset: Int) -> UInt8 { storage[readIndex + offset] }

    mutating func consume(_ count: Int) {
        readIndex += count
    }

    /// Moves past the line whose LF is at absolute index `lf`.
    mutating func consumeLine(through lf: Int) {
        readIndex = lf + 1
    }

    /// Copies out up to `max` readable bytes and consumes them.
    mutating func take(upTo max: Int) -> ArraySlice<UInt8> {
        let n = min(max, readableCount)
        let start = readIndex
        // A copy, not a slice of `storage`: a slice kept by the caller would pin the whole buffer and force a
        // copy-on-write of it at the next `append`.
        let out = storage.withUnsafeBufferPointer { Array(UnsafeBufferPointer(rebasing: $0[start..<start + n])) }
        readIndex += n
        return out[...]
    }

    enum LineSearch {
        /// The absolute index of the LF ending the line that starts at `readIndex`.
        case found(Int)
        case incomplete
        /// No LF within `limit` bytes: the line (terminator included) would be longer than `limit`.
        case tooLong
        /// No LF yet, but a CR followed by another byte: the line can only end invalid (RFC 9112 §2.2), so it is
        /// refused now instead of when its LF comes, or at a timeout when none ever does.
        case bareCR
    }

    /// Looks for the LF that ends the line at `readIndex`, within `limit` bytes counted from `readIndex`.
    ///
    /// The outcome depends only on the bytes, not on how they were split across `append`s: with fewer than `limit`
    /// bytes and no LF it is `.incomplete`; with `limit` or more and no LF among the first `limit`, `.tooLong`.
    mutating func searchLine(limit: Int) -> LineSearch {
        let from = max(scannedUpTo, readIndex)
        let to = min(storage.count, readIndex + max(limit, 0))
        if from < to {
            let found = storage.withUnsafeBufferPointer { firstLF($0, from, to) }
            if found >= 0 { return .found(found) }
            scannedUpTo = to
            // No LF in [readIndex, to): a CR before `to - 1` is followed by a byte that is not LF, and so is one at
            // `from - 1`, scanned before, now that `from` holds a byte. Each byte is looked at once per scan.
            let crFrom = max(from - 1, readIndex)
            if crFrom < to - 1 && storage[crFrom..<(to - 1)].contains(Byte.cr) { return .bareCR }
        }
        return readableCount >= limit ? .tooLong : .incomplete
    }

    /// Whether the line from absolute index `start` to the LF at `lf` holds a CR before the one its CRLF ends with.
    /// For a line that failed to parse: its refusal then names the bare CR, as `searchLine` does when the byte
    /// after a CR comes before any LF, so the outcome does not depend on how the bytes arrived. The bytes stay in
    /// place after the line is consumed, until the next `append`.
    func lineHasCR(from start: Int, endingAt lf: Int) -> Bool {
        start < lf - 1 && storage[start..<(lf - 1)].contains(Byte.cr)
    }

    /// Why the line at `readIndex` ending at `lf` without CR is refused: "bare CR" when a CR comes earlier in it
    /// (`searchLine` would have said so had the line arrived in pieces), else "bare LF".
    func bareEnding(_ lf: Int) -> String {
        lineHasCR(from: readIndex, endingAt: lf) ? "bare CR" : "bare LF"
    }

    /// Whether the line ending at `lf` ends in CRLF (not a bare LF).
    func hasCRBefore(_ lf: Int) -> Bool { lf > readIndex && storage[lf - 1] == Byte.cr }

    /// Whether the unread bytes start with the `count` key bytes remembered at `slot` of `store` (a whole line, as
    /// both parsers key their field lines), then CRLF.
    @inline(__always)
    func startsWithLine(remembered store: borrowing RecentFieldStore, _ slot: Int, _ count: Int) -> Bool {
        guard readableCount >= count &+ 2 else { return false }
        let start = readIndex
        return withBytes { buf in
            let p = buf.baseAddress! + start
            return p[count] == Byte.cr && p[count &+ 1] == Byte.lf
                && store.matches(slot, name: p, nameCount: count, value: p, valueCount: 0)
        }
    }

    /// Remembers `field`, parsed from the line of `count` bytes (CRLF excluded) at absolute index `start`, at `slot`
    /// of `store`. The line may have been consumed already: consumed bytes stay in place until the next `append`.
    @inline(__always)
    func remember(
        _ field: HTTPFields.Field, lineAt start: Int, count: Int, in store: inout RecentFieldStore, slot: Int,
        tag: UInt8
    ) {
        withBytes { buf in
            let p = buf.baseAddress! + start
            store.remember(field, at: slot, name: p, nameCount: count, value: p, valueCount: 0, tag: tag)
        }
    }

    /// When the unread bytes start with the field line remembered at the accumulator's next position (the same
    /// position of the connection's previous message) and its CRLF, within the header limit: consumes the line,
    /// adds the remembered field and returns what `add` said (`.some(nil)` when accepted). Nil when they do not,
    /// and nothing was consumed.
    ///
    /// The same outcome as `searchLine` and `parseFieldLine` on those bytes: the remembered line was accepted, so
    /// it holds no CR or LF and parses to the same field and kind; the count and accumulator checks still run.
    @inline(__always)
    mutating func takeRepeatedFieldLine(
        into fields: inout FieldAccumulator, remembered store: borrowing RecentFieldStore, limits: HTTP1Limits,
        tooMany: @autoclosure () -> HTTP1Error
    ) -> HTTP1Error?? {
        let slot = fields.fields.count
        let count = store.keyCount(at: slot)
        guard count > 0, count &+ 2 <= limits.maxHeaderBytes - fields.bytes,
            startsWithLine(remembered: store, slot, count)
        else { return nil }
        consumeLine(through: readIndex &+ count &+ 1)
        fields.bytes += count &+ 2
        guard slot < limits.maxHeaderCount else { return .some(tooMany()) }
        let kind = FieldKind(rawValue: store.tag(at: slot)) ?? .other
        return .some(fields.add(store.field(at: slot), kind, seenBefore: true))
    }

    @inline(__always)
    func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        storage.withUnsafeBufferPointer(body)
    }
}
