import Glibc

/// The few raw calls the proxy makes outside a `Socket` (refusing a connection before it gets one).
enum GatewaySyscalls {
    @discardableResult
    static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
    }

    static func receive(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int {
        Glibc.recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
    }

    static func close(_ fd: Int32) { _ = Glibc.close(fd) }
}

func usleepMillis(_ ms: Int) { usleep(useconds_t(ms * 1000)) }
