import CHiredis
import Glibc

/// One Redis reply, copied out of hiredis's reply tree so it outlives `freeReplyObject`.
enum RedisReply: Sendable, Equatable {
    case string([UInt8])
    case status(String)
    case integer(Int64)
    case null
    case array([RedisReply])
    /// A server error reply (`-ERR ...`, `-NOSCRIPT ...`): the command failed, the connection is still good.
    case error(String)

    init(copying reply: UnsafePointer<redisReply>) {
        let r = reply.pointee
        func text() -> [UInt8] {
            guard let str = r.str, r.len > 0 else { return [] }
            return str.withMemoryRebound(to: UInt8.self, capacity: r.len) {
                Array(UnsafeBufferPointer(start: $0, count: r.len))
            }
        }
        switch r.type {
        case REDIS_REPLY_STRING: self = .string(text())
        case REDIS_REPLY_STATUS: self = .status(String(decoding: text(), as: UTF8.self))
        case REDIS_REPLY_ERROR: self = .error(String(decoding: text(), as: UTF8.self))
        case REDIS_REPLY_INTEGER: self = .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            items.reserveCapacity(r.elements)
            for i in 0..<r.elements {
                if let element = r.element[i] {
                    items.append(RedisReply(copying: element))
                } else {
                    items.append(.null)
                }
            }
            self = .array(items)
        default: self = .null
        }
    }

    /// The reply as text, for string and status replies.
    var text: String? {
        switch self {
        case .string(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .status(let text): return text
        default: return nil
        }
    }
}

/// Why a Redis call failed. The messages come from hiredis or the server and never contain the password.
enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The TCP connection could not be made (refused, unreachable, connect timeout).
    case connect(String)
    /// Reading or writing failed or timed out; the connection is unusable.
    case io(String)
    /// The reply had an unexpected shape.
    case unexpectedReply(String)
    /// The server answered with an error reply (authentication, script error, wrong type ...).
    case server(String)
    /// Every pooled connection is in use; no Redis I/O was attempted.
    case poolExhausted

    var description: String {
        switch self {
        case .connect(let m): return "connect failed: \(m)"
        case .io(let m): return "I/O failed: \(m)"
        case .unexpectedReply(let m): return "unexpected reply: \(m)"
        case .server(let m): return "server error: \(m)"
        case .poolExhausted: return "every Redis connection is busy"
        }
    }

    /// True for a read, write or connect that hit its timeout (hiredis reports EAGAIN / ETIMEDOUT).
    var isTimeout: Bool {
        switch self {
        case .connect(let m), .io(let m):
            return m.contains("temporarily unavailable") || m.contains("timed out")
        default: return false
        }
    }
}

/// One blocking hiredis connection (`redisContext`), owned by exactly one caller at a time.
///
/// Every call blocks the calling thread for at most the command timeout per read or write (set with
/// `redisSetTimeout`, i.e. `SO_RCVTIMEO`/`SO_SNDTIMEO`). After any I/O error hiredis leaves the context
/// unusable, so `isBroken` turns true and the owner must drop the connection. `deinit` frees the context.
final class RedisConnection: @unchecked Sendable {
    // Safety: a connection is never used by two threads at once: the pool hands it to one caller under its
    // mutex and takes it back the same way, so every access to `context` and the scratch buffers is serial.
    private let context: UnsafeMutablePointer<redisContext>
    private(set) var isBroken = false
    private var argv: [UnsafePointer<CChar>?] = []
    private var lengths: [Int] = []
    private var bytes: [UInt8] = []

    /// Connects to `host:port` within `connectTimeout`; reads and writes then time out after `commandTimeout`.
    /// A host name is resolved with the system resolver, which may block beyond the timeout: give an address.
    init(host: String, port: Int, connectTimeout: Duration, commandTimeout: Duration) throws(RedisError) {
        guard let context = redisConnectWithTimeout(host, Int32(port), timeval(connectTimeout)) else {
            throw .connect("cannot allocate a hiredis context")
        }
        if context.pointee.err != 0 {
            let message = RedisConnection.errorString(context)
            redisFree(context)
            throw .connect(message)
        }
        if redisSetTimeout(context, timeval(commandTimeout)) != REDIS_OK {
            let message = RedisConnection.errorString(context)
            redisFree(context)
            throw .connect("cannot set the command timeout: \(message)")
        }
        self.context = context
    }

    deinit { redisFree(context) }

    /// Sends one command (binary-safe arguments) and waits for its reply. A server error reply is returned as
    /// `.error`, not thrown: the connection stays usable. Thrown errors leave the connection broken.
    func command(_ arguments: [String]) throws(RedisError) -> RedisReply {
        guard !isBroken else { throw .io("connection already broken") }
        bytes.removeAll(keepingCapacity: true)
        lengths.removeAll(keepingCapacity: true)
        for argument in arguments {
            let utf8 = argument.utf8
            bytes.append(contentsOf: utf8)
            lengths.append(utf8.count)
        }
        let raw: UnsafeMutableRawPointer? = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                argv.removeAll(keepingCapacity: true)
                var offset = 0
                for length in lengths {
                    argv.append(chars.baseAddress.map { UnsafePointer($0 + offset) })
                    offset += length
                }
                return argv.withUnsafeMutableBufferPointer { argvBuffer in
                    lengths.withUnsafeBufferPointer { lengthBuffer in
                        redisCommandArgv(
                            context, Int32(arguments.count), argvBuffer.baseAddress, lengthBuffer.baseAddress)
                    }
                }
            }
        }
        // Pointers into `bytes` are dead now; drop them so nothing can reuse them by mistake.
        argv.removeAll(keepingCapacity: true)
        guard let raw else {
            isBroken = true
            throw .io(RedisConnection.errorString(context))
        }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        return RedisReply(copying: reply)
    }

    /// The context's error text (a fixed 128-byte C buffer).
    private static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return bytes.isEmpty ? "error \(context.pointee.err)" : String(decoding: bytes, as: UTF8.self)
        }
    }
}

extension timeval {
    /// A `timeval` from a duration (at least 1 µs: a zero timeout means "no timeout" to the socket options).
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let micros = max(1, seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
        self.init(tv_sec: Int(micros / 1_000_000), tv_usec: Int(micros % 1_000_000))
    }
}
