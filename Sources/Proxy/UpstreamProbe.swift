import Dispatch
import EventLoop
import Glibc
import Synchronization

/// Checks, off the loops, that every upstream accepts TCP connections: one input of `/readyz`.
///
/// A probe is a plain connect with a short timeout every `intervalMs`; it says nothing about TLS or the API,
/// which requests themselves exercise, but it catches a wrong address or a dead upstream before traffic does.
final class UpstreamProbe: Sendable {
    private let results = Mutex<[String: Bool]>([:])
    private let queue = DispatchQueue(label: "myorg-gateway.upstream-probe", qos: .utility)

    func probe(_ origins: [String: UpstreamOrigin]) {
        queue.async { [self] in
            var out: [String: Bool] = [:]
            for (domain, origin) in origins {
                out[domain] = UpstreamProbe.reachable(host: origin.host, port: origin.port, timeoutMs: 1000)
            }
            results.withLock { $0 = out }
        }
    }

    /// Domains whose upstream did not accept a connection at the last probe (empty before the first probe).
    var unreachable: [String] { results.withLock { $0.filter { !$0.value }.map(\.key).sorted() } }

    var hasProbed: Bool { results.withLock { !$0.isEmpty } }

    static func reachable(host: String, port: UInt16, timeoutMs: Int32) -> Bool {
        guard case .success(let addresses) = Resolver.resolveBlocking(host: host, port: port),
            let address = addresses.first,
            let fd = try? TCP.startConnect(to: address)
        else { return false }
        defer { close(fd) }
        var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&pfd, 1, timeoutMs) == 1 else { return false }
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        return err == 0
    }
}
