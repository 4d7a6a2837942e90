import COpenSSL

#if canImport(Glibc)
    import Glibc
#endif

/// Ciphertext between the socket and an SSL: what the peer sent and the SSL has not read yet, or what the SSL wrote
/// and the socket has not taken yet. The SSL reaches it through a BIO of our own (`makeBIO`).
///
/// A memory BIO (`BIO_s_mem`) zero-fills each region it grows into before it copies bytes in, and gives ciphertext
/// out only by copying it into the caller's buffer. Here bytes come in with one copy and the socket writes straight
/// out of the buffer: for a 1 MiB answer, three passes over the megabyte fewer.
final class NetworkBuffer {
    private var storage: UnsafeMutableRawPointer?
    private(set) var capacity = 0
    private var head = 0
    private var tail = 0
    /// Once set, a read of the empty buffer says end of input instead of "retry later".
    var atEOF = false
    /// The caller's bytes not read yet, while it lends them (`lend`); they come after the stored ones.
    private var lent: UnsafeRawPointer?
    private var lentCount = 0

    /// Bytes buffered: stored, and lent but not read yet.
    var count: Int { tail - head + lentCount }
    private var storedCount: Int { tail - head }

    deinit { free(storage) }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        // Lent bytes came first: they are stored before these.
        if lent != nil { endLending() }
        reserve(bytes.count).copyMemory(from: source, byteCount: bytes.count)
        tail += bytes.count
    }

    /// Lets reads take `bytes` where they are, after what is stored, until `endLending`. Input read straight from
    /// the socket's buffer then costs no copy, except for what is left unread (a record's first part).
    func lend(_ bytes: UnsafeRawBufferPointer) {
        if lent != nil { endLending() }
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        lent = UnsafeRawPointer(base)
        lentCount = bytes.count
    }

    /// Stores what is left of the lent bytes: the caller may reuse its buffer after this.
    func endLending() {
        guard let base = lent else { return }
        let rest = lentCount
        lent = nil
        lentCount = 0
        append(UnsafeRawBufferPointer(start: base, count: rest))
    }

    /// Room for `extra` more bytes after the last one, moving or growing the storage when needed.
    private func reserve(_ extra: Int) -> UnsafeMutableRawPointer {
        if let storage, tail + extra <= capacity { return storage + tail }
        let live = storedCount
        if let storage, live + extra <= capacity {
            // Enough room once the consumed front is reclaimed.
            (storage).copyMemory(from: storage + head, byteCount: live)
        } else {
            // Small to start with: an idle keep-alive connection keeps what its buffers grew to.
            let grown = max(capacity * 2, live + extra, 2048)
            guard let bigger = malloc(grown) else { fatalError("out of memory for a network buffer") }
            if let storage {
                bigger.copyMemory(from: storage + head, byteCount: live)
                free(storage)
            }
            storage = bigger
            capacity = grown
        }
        head = 0
        tail = live
        return storage! + tail
    }

    /// Moves up to `limit` bytes to `destination`; returns how many.
    func read(into destination: UnsafeMutableRawPointer, limit: Int) -> Int {
        var n = 0
        if let storage, storedCount > 0 {
            n = min(limit, storedCount)
            destination.copyMemory(from: storage + head, byteCount: n)
            drop(n)
        }
        if n < limit, let base = lent, lentCount > 0 {
            let m = min(limit - n, lentCount)
            (destination + n).copyMemory(from: base, byteCount: m)
            lent = base + m
            lentCount -= m
            n += m
        }
        return n
    }

    /// Calls `body` with the buffered bytes; `body` returns how many it took from the front.
    func consume(_ body: (UnsafeRawBufferPointer) -> Int) {
        guard let storage, storedCount > 0 else { return }
        drop(body(UnsafeRawBufferPointer(start: storage + head, count: storedCount)))
    }

    private func drop(_ n: Int) {
        head += n
        if head == tail {
            head = 0
            tail = 0
            // Not the memory of one huge burst for the rest of the connection's life; below this, reusing the
            // storage beats allocating it again (above 128 KiB malloc maps fresh pages each time).
            if capacity > 1 << 20 { releaseIfEmpty() }
        }
    }

    /// Frees the storage when nothing is buffered (an idle connection holds none).
    func releaseIfEmpty() {
        guard storedCount == 0, storage != nil else { return }
        free(storage)
        storage = nil
        capacity = 0
    }

    /// A BIO over this buffer, to hand to the SSL (which frees it, and with it the BIO's reference to the buffer).
    func makeBIO() -> OpaquePointer {
        guard let bio = BIO_new(networkBufferBIOMethod) else { fatalError("OpenSSL could not allocate a BIO") }
        BIO_set_data(bio, Unmanaged.passRetained(self).toOpaque())
        BIO_set_init(bio, 1)
        return bio
    }

    /// `body` on the BIO's buffer, or nil for a BIO without one. Borrowed, not retained: OpenSSL calls the BIO
    /// methods a dozen times per request, and a retain and release each were two atomic operations.
    fileprivate static func with<Result>(_ bio: OpaquePointer?, _ body: (NetworkBuffer) -> Result) -> Result? {
        guard let bio, let data = BIO_get_data(bio) else { return nil }
        // Safety: set in makeBIO to a retained NetworkBuffer, released only by the BIO's destroy callback, which
        // cannot run during a call of another method of the same BIO.
        return Unmanaged<NetworkBuffer>.fromOpaque(data)._withUnsafeGuaranteedRef(body)
    }
}

private let retryFlags = Int32(BIO_FLAGS_READ | BIO_FLAGS_WRITE | BIO_FLAGS_IO_SPECIAL | BIO_FLAGS_SHOULD_RETRY)

/// One method table for every connection's BIOs; the buffer is each BIO's data.
nonisolated(unsafe) private let networkBufferBIOMethod: OpaquePointer = {
    let type = BIO_get_new_index() | Int32(BIO_TYPE_SOURCE_SINK)
    guard let method = BIO_meth_new(type, "network buffer") else {
        fatalError("OpenSSL could not allocate a BIO method")
    }
    _ = BIO_meth_set_write_ex(method) { bio, data, length, written in
        guard let data else { return 0 }
        // nil: a BIO without a buffer, which takes nothing.
        guard NetworkBuffer.with(bio, { $0.append(UnsafeRawBufferPointer(start: data, count: length)) }) != nil
        else { return 0 }
        BIO_clear_flags(bio, retryFlags)
        written?.pointee = length
        return 1
    }
    _ = BIO_meth_set_read_ex(method) { bio, data, length, read in
        guard let data, let (n, atEOF) = NetworkBuffer.with(bio, { ($0.read(into: data, limit: length), $0.atEOF) })
        else { return 0 }
        BIO_clear_flags(bio, retryFlags)
        read?.pointee = n
        if n > 0 { return 1 }
        // Empty: "retry later" until the socket has reached its end, then a plain failure, which SSL reads as EOF.
        if !atEOF { BIO_set_flags(bio, Int32(BIO_FLAGS_READ | BIO_FLAGS_SHOULD_RETRY)) }
        return 0
    }
    _ = BIO_meth_set_ctrl(method) { bio, command, _, _ in
        // Most commands OpenSSL sends (flush, kTLS and other queries) need no look at the buffer.
        switch command {
        case BIO_CTRL_PENDING, BIO_CTRL_WPENDING: return NetworkBuffer.with(bio) { $0.count } ?? 0
        case BIO_CTRL_EOF: return NetworkBuffer.with(bio) { $0.atEOF && $0.count == 0 ? 1 : 0 } ?? 0
        case BIO_CTRL_FLUSH, BIO_CTRL_DUP: return 1
        default: return 0
        }
    }
    _ = BIO_meth_set_destroy(method) { bio in
        guard let bio, let data = BIO_get_data(bio) else { return 1 }
        Unmanaged<NetworkBuffer>.fromOpaque(data).release()
        BIO_set_data(bio, nil)
        return 1
    }
    return method
}()
