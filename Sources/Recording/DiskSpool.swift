#if canImport(Glibc)
    import Glibc
#endif

/// One sink's spool directory: append-only segment files read back in order (see ``SpoolSettings``).
///
/// Not thread-safe: its owner (``SinkQueue``) calls it with its lock held. Every segment ends with a complete
/// line: appends write whole lines in one call, and a short write or a torn tail found at start-up is cut back.
///
/// Opening reads only each segment's last bytes (to cut a torn line), so it stays fast whatever the spool holds
/// (a full 256 MiB spool used to hold start-up for seconds while every byte was read twice). The lines left by
/// the previous run are counted later, by ``linesLeftFromLastRun`` and ``addCountedLines(_:)``, on the sink's
/// own thread before it delivers anything; until then ``pendingLines`` counts them as one, so the spool never
/// looks empty. Order is safe meanwhile: appends always go to new segments after the old ones, and only a
/// delivery deletes a segment.
final class DiskSpool {
    struct Segment {
        var seq: UInt64
        var size: Int
    }

    let directory: String
    let maxBytes: Int
    let segmentBytes: Int
    let fsync: FsyncPolicy
    private(set) var segments: [Segment] = []
    /// Bytes of `segments[0]` already delivered.
    private(set) var headOffset = 0
    /// Lines known to be waiting; see ``pendingLines``.
    private var countedLines = 0
    /// The segments (and start offsets) found at opening whose lines are not counted yet.
    private var uncounted: [(path: String, from: Int, size: Int)] = []
    private(set) var totalBytes = 0
    private var tailFD: Int32 = -1
    private var lastSync: Int64 = 0
    private var dirty = false
    /// Lines cut from torn segments at start-up (counted as dropped by the owner).
    private(set) var tornLinesAtStart = 0

    init(directory: String, settings: SpoolSettings) throws(FileIO.Failure) {
        self.directory = directory
        self.maxBytes = settings.maxBytes
        self.segmentBytes = settings.segmentBytes
        self.fsync = settings.fsync
        try FileIO.makeDirectories(directory)
        for name in FileIO.list(directory) where name.hasSuffix(".jsonl") {
            guard let seq = UInt64(name.dropLast(6)), var size = FileIO.fileSize(path(seq)) else { continue }
            // A torn last line (crash mid-write) is cut so that every segment ends with "\n".
            if size > 0, let keep = Self.completeLength(path(seq), size: size), keep != size {
                FileIO.truncate(path(seq), to: keep)
                tornLinesAtStart += 1
                size = keep
            }
            segments.append(Segment(seq: seq, size: size))
        }
        segments.sort { $0.seq < $1.seq }
        if let cursor = FileIO.readWhole(directory + "/cursor") {
            let parts = String(decoding: cursor, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
            if parts.count == 2, let seq = UInt64(parts[0]), let off = Int(parts[1]) {
                // Segments before the cursor's were fully delivered; a crash stopped their deletion.
                while let first = segments.first, first.seq < seq {
                    FileIO.remove(path(first.seq))
                    segments.removeFirst()
                }
                if let first = segments.first, first.seq == seq { headOffset = min(off, first.size) }
            }
        }
        totalBytes = segments.reduce(0) { $0 + $1.size }
        dropDeliveredSegments()
        uncounted = segments.enumerated().compactMap { i, segment in
            let from = i == 0 ? headOffset : 0
            return segment.size > from ? (path(segment.seq), from, segment.size) : nil
        }
    }

    /// The length of the file's complete lines: `size` when it ends with a newline, else up to its last newline
    /// (0 when it has none). Reads backwards from the end, so an intact segment costs one byte. Nil when the
    /// file cannot be read (it is then left as it is).
    private static func completeLength(_ path: String, size: Int) -> Int? {
        guard let fd = try? FileIO.openRead(path) else { return nil }
        defer { FileIO.close(fd) }
        var end = size
        while end > 0 {
            let start = max(0, end - (1 << 16))
            let chunk = FileIO.read(fd, offset: start, count: end - start)
            guard chunk.count == end - start else { return nil }
            if let newline = chunk.lastIndex(of: 0x0A) { return start + newline + 1 }
            end = start
        }
        return 0
    }

    /// Lines waiting: those counted, plus one while the previous run's lines are not counted yet (so that a
    /// flush or a shutdown never takes a spool that still holds them for empty).
    var pendingLines: Int { countedLines + (uncounted.isEmpty ? 0 : 1) }

    /// What ``countLines(in:)`` must count; empty once counted. Read with the owner's lock held.
    var linesLeftFromLastRun: [(path: String, from: Int, size: Int)] { uncounted }

    /// Records the count of ``linesLeftFromLastRun``. Call once, with the owner's lock held, before the first
    /// ``advance(lines:bytes:)``.
    func addCountedLines(_ n: Int) {
        countedLines += n
        uncounted = []
    }

    /// Counts newlines in the given byte ranges of closed segments. Needs no lock: those files are not appended
    /// to, and none is deleted before the sink's first delivery, which waits for this count.
    static func countLines(in ranges: [(path: String, from: Int, size: Int)]) -> Int {
        var lines = 0
        for range in ranges {
            guard let fd = try? FileIO.openRead(range.path) else { continue }
            defer { FileIO.close(fd) }
            var position = range.from
            while position < range.size {
                let chunk = FileIO.read(fd, offset: position, count: min(1 << 20, range.size - position))
                if chunk.isEmpty { break }
                position += chunk.count
                chunk.withUnsafeBytes { raw in
                    // memchr is vectorised in libc, so counting stays cheap even in a debug build.
                    guard var p = raw.baseAddress else { return }
                    let end = p + raw.count
                    while p < end, let hit = memchr(p, 0x0A, end - p) {
                        lines += 1
                        p = UnsafeRawPointer(hit) + 1
                    }
                }
            }
        }
        return lines
    }

    deinit { closeTail() }

    func path(_ seq: UInt64) -> String {
        let digits = String(seq)
        return directory + "/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".jsonl"
    }

    /// Bytes are exact even before the previous run's lines are counted.
    var isEmpty: Bool { totalBytes - headOffset <= 0 }

    /// Appends as many whole lines as fit under `maxBytes`; returns how many were written. An I/O error writes
    /// none of the batch (the segment is cut back to its previous size).
    func append(_ lines: ArraySlice<String>) -> Int {
        var bytes: [UInt8] = []
        var accepted = 0
        for line in lines {
            let size = line.utf8.count + 1
            if totalBytes + bytes.count + size > maxBytes { break }
            bytes += line.utf8
            bytes.append(0x0A)
            accepted += 1
        }
        guard accepted > 0 else { return 0 }
        do throws(FileIO.Failure) {
            if segments.isEmpty || segments[segments.count - 1].size >= segmentBytes || tailFD < 0 {
                try openNewTail()
            }
            let last = segments.count - 1
            do throws(FileIO.Failure) {
                try FileIO.writeAll(tailFD, bytes, path: path(segments[last].seq))
            } catch {
                FileIO.truncate(path(segments[last].seq), to: segments[last].size)
                throw error
            }
            segments[last].size += bytes.count
        } catch {
            return 0
        }
        totalBytes += bytes.count
        countedLines += accepted
        dirty = true
        if case .always = fsync { syncNow(nowNanos: 0) }
        return accepted
    }

    /// Up to `max` lines from the head (crossing segments), and their size in bytes including newlines.
    func peek(max: Int, maxBytes: Int = 4 << 20) -> (lines: [String], bytes: Int) {
        var lines: [String] = []
        var total = 0
        var offset = headOffset
        for segment in segments {
            guard lines.count < max, total < maxBytes else { break }
            guard offset < segment.size, let fd = try? FileIO.openRead(path(segment.seq)) else {
                offset = 0
                continue
            }
            defer { FileIO.close(fd) }
            var carry: [UInt8] = []
            var position = offset
            reading: while position < segment.size {
                let chunk = FileIO.read(fd, offset: position, count: min(1 << 16, segment.size - position))
                if chunk.isEmpty { break }
                position += chunk.count
                var start = 0
                for (i, byte) in chunk.enumerated() where byte == 0x0A {
                    carry += chunk[start..<i]
                    lines.append(String(decoding: carry, as: UTF8.self))
                    total += carry.count + 1
                    carry.removeAll(keepingCapacity: true)
                    start = i + 1
                    if lines.count >= max || total >= maxBytes { break reading }
                }
                carry += chunk[start...]
            }
            offset = 0
        }
        return (lines, total)
    }

    /// Marks `lines` lines (`bytes` bytes) from the head as delivered, deletes finished segments and records the
    /// cursor.
    func advance(lines: Int, bytes: Int) {
        var remaining = bytes
        while remaining > 0, !segments.isEmpty {
            let available = segments[0].size - headOffset
            if remaining < available {
                headOffset += remaining
                remaining = 0
            } else {
                remaining -= available
                headOffset = segments[0].size
                dropDeliveredSegments()
            }
        }
        countedLines = max(0, countedLines - lines)
        dropDeliveredSegments()
        if let first = segments.first {
            try? FileIO.writeAtomically(directory + "/cursor", Array("\(first.seq) \(headOffset)\n".utf8))
        }
    }

    /// Deletes delivered segments at the head; a delivered tail is deleted too and the next append starts anew.
    private func dropDeliveredSegments() {
        while let first = segments.first, headOffset >= first.size {
            if segments.count == 1 { closeTail() }
            FileIO.remove(path(first.seq))
            totalBytes -= first.size
            segments.removeFirst()
            headOffset = 0
        }
        if segments.isEmpty { FileIO.remove(directory + "/cursor") }
    }

    private func openNewTail() throws(FileIO.Failure) {
        closeTail()
        let seq = (segments.last?.seq ?? 0) + 1
        tailFD = try FileIO.openAppend(path(seq))
        segments.append(Segment(seq: seq, size: 0))
    }

    private func closeTail() {
        if tailFD >= 0 {
            if dirty, fsync != .never { FileIO.sync(tailFD) }
            FileIO.close(tailFD)
            tailFD = -1
        }
    }

    /// Applies the interval fsync policy; called on the owner's tick.
    func tick(nowNanos: Int64) {
        if case .interval(let seconds) = fsync, dirty, nowNanos - lastSync >= Int64(seconds * 1e9) {
            syncNow(nowNanos: nowNanos)
        }
    }

    private func syncNow(nowNanos: Int64) {
        if tailFD >= 0 { FileIO.sync(tailFD) }
        dirty = false
        lastSync = nowNanos
    }

    func close() { closeTail() }
}
