#if canImport(Glibc)
    import Glibc
#endif

/// One sink's spool directory: append-only segment files read back in order (see ``SpoolSettings``).
///
/// Not thread-safe: its owner (``SinkQueue``) calls it with its lock held. Every segment ends with a complete
/// line: appends write whole lines in one call, and a short write or a torn tail found at start-up is cut back.
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
    private(set) var pendingLines = 0
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
            if size > 0, let bytes = FileIO.readWhole(path(seq)), bytes.last != 0x0A {
                let keep = (bytes.lastIndex(of: 0x0A).map { $0 + 1 }) ?? 0
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
        for (i, segment) in segments.enumerated() {
            guard let bytes = FileIO.readWhole(path(segment.seq)) else { continue }
            let from = i == 0 ? headOffset : 0
            pendingLines += bytes[from...].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        }
        dropDeliveredSegments()
    }

    deinit { closeTail() }

    func path(_ seq: UInt64) -> String {
        let digits = String(seq)
        return directory + "/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".jsonl"
    }

    var isEmpty: Bool { pendingLines == 0 }

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
        pendingLines += accepted
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
        pendingLines = max(0, pendingLines - lines)
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
