import Foundation

/// A blocking TCP client socket to 127.0.0.1 with a receive timeout, for tests that must see exactly what the
/// gateway writes on one connection (and when it closes it).
public final class RawConnection {
    public private(set) var fd: Int32

    /// Connects (`timeout` bounds every read), or throws with errno (ECONNREFUSED when nothing listens).
    public init(port: UInt16, timeout: Double = 3) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ConnectError(errno: errno) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = RawConnection.connect(fd, port)
        if rc != 0 {
            let error = errno
            Glibc.close(fd)
            // A class whose initializer throws after every property is set still runs `deinit`: without this its
            // `close()` would close the number again, by then perhaps another thread's socket or pipe (the
            // gateway under test runs in this process too).
            fd = -1
            throw ConnectError(errno: error)
        }
    }

    public struct ConnectError: Error, CustomStringConvertible {
        public var errno: Int32
        public var description: String { "connect: errno \(errno)" }
    }

    public struct SendError: Error, CustomStringConvertible {
        public var errno: Int32
        public var description: String { "send: errno \(errno)" }
    }

    private static func connect(_ fd: Int32, _ port: UInt16) -> Int32 {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }

    /// Whether a connection to `port` is refused right now (nothing listening).
    public static func isRefused(port: UInt16) -> Bool {
        do {
            _ = try RawConnection(port: port, timeout: 1)
            return false
        } catch let error as ConnectError {
            return error.errno == ECONNREFUSED
        } catch {
            return false
        }
    }

    deinit { close() }

    /// Closes the socket (once).
    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw SendError(errno: errno) }
            sent += n
        }
    }

    /// Reads until the peer closes (true) or the receive timeout passes (false), returning what arrived.
    public func readToEnd() -> (text: String, closed: Bool) {
        let (bytes, closed) = readBytesToEnd()
        return (String(decoding: bytes, as: UTF8.self), closed)
    }

    /// `readToEnd`, as the bytes that arrived.
    public func readBytesToEnd() -> (bytes: [UInt8], closed: Bool) {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                data += buffer[0..<n]
            } else {
                // 0: orderly close; ECONNRESET also means the gateway closed it.
                let closed = n == 0 || errno == ECONNRESET
                return (data, closed)
            }
        }
    }

    /// Reads one HTTP/1.1 response with a Content-Length body; nil on timeout or close before it is complete.
    public func readResponse() -> String? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let text = String(decoding: data, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n") {
                let head = text[..<end.lowerBound].lowercased()
                var length = 0
                for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                    length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
                }
                let headBytes = text[..<end.upperBound].utf8.count
                if data.count >= headBytes + length { return text }
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return nil }
            data += buffer[0..<n]
        }
    }

    /// Sends `request` on a new connection and returns everything the server writes until it closes (or the
    /// timeout passes).
    public static func exchange(port: UInt16, _ request: String, timeout: Double = 5) throws -> String {
        let connection = try RawConnection(port: port, timeout: timeout)
        try connection.send(request)
        return connection.readToEnd().text
    }
}
