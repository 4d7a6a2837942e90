#if canImport(Glibc)
    import Glibc
#endif

/// Thin, error-reporting wrappers over the POSIX file calls the sinks and the spool need.
enum FileIO {
    struct Failure: Error, CustomStringConvertible {
        var operation: String
        var path: String
        var code: Int32
        var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
    }

    static func openAppend(_ path: String) throws(Failure) -> Int32 {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw Failure(operation: "open", path: path, code: errno) }
        return fd
    }

    static func openRead(_ path: String) throws(Failure) -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(operation: "open", path: path, code: errno) }
        return fd
    }

    /// Writes every byte, retrying short writes and EINTR; waits on EAGAIN (a non-blocking stdout).
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(Failure) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { raw in write(fd, raw.baseAddress! + done, raw.count - done) }
            if n > 0 {
                done += n
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, 100)
            } else {
                throw Failure(operation: "write", path: path, code: n < 0 ? errno : EIO)
            }
        }
    }

    static func sync(_ fd: Int32) { _ = fsync(fd) }

    static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    static func fileSize(_ path: String) -> Int? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int(st.st_size)
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func remove(_ path: String) { _ = unlink(path) }

    static func rename(_ from: String, _ to: String) throws(Failure) {
        guard Glibc.rename(from, to) == 0 else { throw Failure(operation: "rename", path: from, code: errno) }
    }

    static func makeDirectories(_ path: String) throws(Failure) {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o750) != 0 && errno != EEXIST {
                throw Failure(operation: "mkdir", path: current, code: errno)
            }
        }
    }

    static func list(_ directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Reads up to `count` bytes at `offset`; fewer at end of file.
    static func read(_ fd: Int32, offset: Int, count: Int) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer.withUnsafeMutableBytes { raw in
                pread(fd, raw.baseAddress! + got, count - got, off_t(offset + got))
            }
            if n > 0 {
                got += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        buffer.removeSubrange(got...)
        return buffer
    }

    static func readWhole(_ path: String) -> [UInt8]? {
        guard let fd = try? openRead(path) else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        while true {
            let chunk = read(fd, offset: out.count, count: 1 << 16)
            if chunk.isEmpty { return out }
            out += chunk
        }
    }

    /// Replaces `path` atomically (write to a temporary name, then rename over).
    static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws(Failure) {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw Failure(operation: "open", path: tmp, code: errno) }
        do throws(Failure) {
            try writeAll(fd, bytes, path: tmp)
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        try rename(tmp, path)
    }

    static func truncate(_ path: String, to size: Int) { _ = Glibc.truncate(path, off_t(size)) }
}
