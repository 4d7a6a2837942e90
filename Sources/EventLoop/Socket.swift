import CSystemShims
import Glibc

/// A non-blocking stream socket in its loop's readiness set (`Poller`).
///
/// Loop-confined: create, use and close it on `loop.queue` only. Readiness is level-triggered: a handler that
/// leaves bytes unread is called again in the next turn. The socket waits for write readiness only while write
/// interest is on (a connected socket is nearly always writable, and waiting for it would spin).
public final class Socket {
    public let fd: Int32
    public let loop: EventLoop
    private var slot = -1
    private var token: UInt64 = 0
    private var waitingFor: UInt32 = 0
    private var started = false
    private var wantsWrite = false
    private var wantsRead = true
    public private(set) var isClosed = false

    /// Called on the loop when the socket may be read (data, EOF or error).
    public var onReadable: (() -> Void)?
    /// Called on the loop when the socket may be written, while write interest is on.
    public var onWritable: (() -> Void)?

    /// Takes ownership of `fd`, which must be a valid non-blocking socket.
    public init(fd: Int32, loop: EventLoop) {
        precondition(fd >= 0, "a socket needs a valid fd")
        loop.assertInLoop()
        self.fd = fd
        self.loop = loop
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Starts delivering read events. Call once, after setting the handlers.
    public func start() {
        loop.assertInLoop()
        guard !started, !isClosed else { return }
        started = true
        (slot, token) = loop.poller.slot(for: self)
        updateInterest()
    }

    private func updateInterest() {
        guard started, !isClosed else { return }
        let wanted = (wantsRead ? CSHIM_EPOLLIN : 0) | (wantsWrite ? CSHIM_EPOLLOUT : 0)
        guard wanted != waitingFor else { return }
        loop.poller.update(fd: fd, token: token, from: waitingFor, to: wanted)
        waitingFor = wanted
    }

    /// Called by the poller with the epoll event mask.
    func handle(events: UInt32) {
        let failed = events & (CSHIM_EPOLLERR | CSHIM_EPOLLHUP) != 0
        if wantsRead, failed || events & CSHIM_EPOLLIN != 0 { onReadable?() }
        if !isClosed, wantsWrite, failed || events & CSHIM_EPOLLOUT != 0 { onWritable?() }
    }

    public enum ReadResult: Equatable {
        case bytes(Int)
        case wouldBlock
        case eof
        case error(Int32)
    }

    /// One `read(2)` into `buffer` (a loop's scratch memory); the caller copies or consumes the bytes at once.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        // Once closed, the fd number may already belong to another connection (another loop's accept).
        guard !isClosed else { return .eof }
        let result = Glibc.read(fd, buffer.baseAddress, buffer.count)
        if result > 0 { return .bytes(result) }
        if result == 0 { return .eof }
        let err = errno
        if err == EAGAIN || err == EWOULDBLOCK || err == EINTR { return .wouldBlock }
        return .error(err)
    }

    public enum WriteResult: Equatable {
        case wrote(Int)
        case wouldBlock
        case error(Int32)
    }

    /// One `send(2)` without SIGPIPE.
    public func write(_ bytes: UnsafeRawBufferPointer) -> WriteResult {
        guard bytes.count > 0 else { return .wrote(0) }
        guard !isClosed else { return .error(EBADF) }
        let n = send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
        if n >= 0 { return .wrote(n) }
        let err = errno
        if err == EAGAIN || err == EWOULDBLOCK || err == EINTR { return .wouldBlock }
        return .error(err)
    }

    /// Turns write-readiness events on or off.
    public func setWriteInterest(_ on: Bool) {
        guard wantsWrite != on else { return }
        wantsWrite = on
        updateInterest()
    }

    /// Whether the socket is watched for input (`setReadInterest`).
    public var isReading: Bool { wantsRead }

    /// Pauses or resumes read events: backpressure when the other side of a proxy cannot keep up.
    public func setReadInterest(_ on: Bool) {
        guard wantsRead != on else { return }
        wantsRead = on
        updateInterest()
    }

    /// Half-closes the write side (after a final response on a connection we close).
    public func shutdownWrite() {
        guard !isClosed else { return }
        Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Closes the fd now. Events for it that the poller already fetched in this turn find its slot empty.
    public func close() {
        loop.assertInLoop()
        guard !isClosed else { return }
        isClosed = true
        onReadable = nil
        onWritable = nil
        if started { loop.poller.release(slot: slot) }
        // close(2) also takes the fd out of the epoll set (no other descriptor refers to the socket).
        Glibc.close(fd)
    }

    /// The pending socket error (SO_ERROR), used to learn how a non-blocking connect ended.
    public func pendingError() -> Int32 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        return err
    }

    /// Open file descriptors of this process, for leak checks.
    public static func openFileDescriptorCount() -> Int { Int(cshim_open_fd_count()) }

    /// Ignores SIGPIPE process-wide; writes use MSG_NOSIGNAL anyway, this covers every other path.
    public static func ignoreSIGPIPE() { signal(SIGPIPE, SIG_IGN) }
}

/// Creates non-blocking TCP sockets.
public enum TCP {
    /// Starts a non-blocking connect. The fd is writable when the connect completes; check `pendingError()` then.
    public static func startConnect(to address: NetAddress) throws(SystemError) -> Int32 {
        let family = address.family == .v4 ? AF_INET : AF_INET6
        let fd = socket(
            family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        let rc = address.withSockAddr { Glibc.connect(fd, $0, $1) }
        if rc != 0 && errno != EINPROGRESS {
            let err = SystemError("connect to \(address)")
            Glibc.close(fd)
            throw err
        }
        return fd
    }

    /// A listening socket with SO_REUSEPORT, so each loop can own one and the kernel spreads connections.
    public static func listen(on address: NetAddress, backlog: Int32 = 1024) throws(SystemError) -> Int32 {
        let family = address.family == .v4 ? AF_INET : AF_INET6
        let fd = socket(
            family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        if address.family == .v6 {
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        guard address.withSockAddr({ bind(fd, $0, $1) }) == 0 else {
            let err = SystemError("bind \(address)")
            Glibc.close(fd)
            throw err
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let err = SystemError("listen \(address)")
            Glibc.close(fd)
            throw err
        }
        return fd
    }

    /// Fails with EADDRINUSE when any socket listens on `address` (a bind without SO_REUSEPORT cannot share it).
    public static func probeExclusive(_ address: NetAddress) throws(SystemError) {
        let family = address.family == .v4 ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        defer { Glibc.close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if address.family == .v6 {
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        guard address.withSockAddr({ bind(fd, $0, $1) }) == 0 else {
            throw SystemError("bind \(address) (another process listens there?)")
        }
    }

    /// The port a socket is bound to (for listeners bound to port 0).
    public static func localPort(of fd: Int32) -> UInt16 {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }
}
