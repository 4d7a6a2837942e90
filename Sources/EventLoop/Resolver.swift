import Dispatch
import Glibc

/// Name resolution off the loops: getaddrinfo blocks, so it runs on a utility queue and the answer hops back.
public enum Resolver {
    private static let queue = DispatchQueue(label: "myorg-gateway.resolver", qos: .utility, attributes: .concurrent)

    /// Resolves `host` to socket addresses (numeric hosts answer at once), calling `completion` on `loop`.
    public static func resolve(
        host: String, port: UInt16, on loop: EventLoop,
        _ completion: @escaping @Sendable (Result<[NetAddress], SystemError>) -> Void
    ) {
        if let numeric = NetAddress(host: host, port: port) {
            loop.execute { completion(.success([numeric])) }
            return
        }
        queue.async {
            let result = resolveBlocking(host: host, port: port)
            loop.execute { completion(result) }
        }
    }

    public static func resolveBlocking(host: String, port: UInt16) -> Result<[NetAddress], SystemError> {
        if let numeric = NetAddress(host: host, port: port) { return .success([numeric]) }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            return .failure(SystemError("resolve \(host): \(String(cString: gai_strerror(rc)))", 0))
        }
        defer { freeaddrinfo(first) }
        var out: [NetAddress] = []
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let n = node {
            if let addr = n.pointee.ai_addr {
                var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
                if n.pointee.ai_family == AF_INET {
                    addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                        var a = $0.pointee.sin_addr
                        inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count))
                    }
                } else if n.pointee.ai_family == AF_INET6 {
                    addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                        var a = $0.pointee.sin6_addr
                        inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count))
                    }
                }
                if let s = NetAddress(host: cString(buffer), port: port), !out.contains(s) { out.append(s) }
            }
            node = n.pointee.ai_next
        }
        return out.isEmpty ? .failure(SystemError("resolve \(host): no addresses", 0)) : .success(out)
    }
}
