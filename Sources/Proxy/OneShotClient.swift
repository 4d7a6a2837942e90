import EventLoop
import GatewayCore
import HTTP1
import TLS

/// A single GET over a fresh connection, for the few requests the gateway makes on its own behalf (the JWKS,
/// readiness probes of the upstream). Loop-confined; the completion runs on the loop.
final class OneShotClient: TransportDelegate {
    struct Result {
        var status: Int
        var headers: HTTPFields
        var body: [UInt8]
    }

    private var transport: Transport?
    private var parser = HTTP1ResponseParser()
    private var completion: ((Swift.Result<Result, UpstreamFailure>) -> Void)?
    private var head: ResponseHead?
    private var body: [UInt8] = []
    private var timer: LoopTimer?
    private let request: [UInt8]
    private let maxBody: Int
    private var keepAlive: OneShotClient?

    /// Fetches `path` from `origin`; `maxBody` bounds what is kept (a bigger answer fails).
    static func get(
        origin: UpstreamOrigin, path: String, context: LoopContext, maxBody: Int = 256 * 1024,
        _ completion: @escaping (Swift.Result<Result, UpstreamFailure>) -> Void
    ) {
        let head = RequestHead(
            method: "GET", target: path, version: .http1_1,
            headers: HTTPFields([
                ("Host", origin.hostHeader), ("Accept", "application/json"), ("Connection", "close"),
                ("User-Agent", "myorg-gateway"),
            ]))
        guard let bytes = try? HTTP1Serializer.requestHead(head) else {
            completion(.failure(UpstreamFailure(status: 502, detail: "invalid request for \(path)")))
            return
        }
        let client = OneShotClient(request: bytes, maxBody: maxBody, completion: completion)
        client.start(origin: origin, context: context)
    }

    private init(request: [UInt8], maxBody: Int, completion: @escaping (Swift.Result<Result, UpstreamFailure>) -> Void)
    {
        self.request = request
        self.maxBody = maxBody
        self.completion = completion
    }

    deinit { transport?.delegate = nil }

    private func start(origin: UpstreamOrigin, context: LoopContext) {
        keepAlive = self
        parser.requestSent(method: "GET")
        timer = context.loop.schedule(afterMilliseconds: origin.connectTimeoutMs + origin.responseTimeoutMs) {
            [weak self] in
            self?.finish(.failure(UpstreamFailure(status: 504, detail: "timed out")))
        }
        let bound = LoopBound((client: self, context: context), loop: context.loop)
        Resolver.resolve(host: origin.host, port: origin.port, on: context.loop) { resolved in
            let (client, context) = bound.value
            client.connect(resolved, origin: origin, context: context)
        }
    }

    private func connect(
        _ resolved: Swift.Result<[NetAddress], SystemError>, origin: UpstreamOrigin, context: LoopContext
    ) {
        do {
            switch resolved {
            case .failure(let error):
                self.finish(.failure(UpstreamFailure(status: 502, detail: "\(error)")))
            case .success(let addresses):
                do {
                    let fd = try TCP.startConnect(to: addresses[0])
                    let transport = try Transport.client(fd: fd, origin: origin, context: context)
                    transport.delegate = self
                    self.transport = transport
                    transport.startConnecting { [weak self] err in
                        self?.finish(.failure(UpstreamFailure(status: 502, detail: "connect failed (errno \(err))")))
                    }
                } catch {
                    self.finish(.failure(UpstreamFailure(status: 502, detail: "\(error)")))
                }
            }
        }
    }

    private func finish(_ result: Swift.Result<Result, UpstreamFailure>) {
        timer?.cancel()
        let completion = self.completion
        self.completion = nil
        transport?.close()
        transport = nil
        completion?(result)
        keepAlive = nil
    }

    func transportReady(alpn: String?) { transport?.write(request) }

    func transportReceived(_ bytes: UnsafeRawBufferPointer) {
        parser.feed(bytes)
        while let event = parser.next() {
            switch event {
            case .informational, .trailers: continue
            case .head(let h, _): head = h
            case .body(let chunk):
                body.append(contentsOf: chunk)
                if body.count > maxBody {
                    finish(.failure(UpstreamFailure(status: 502, detail: "response larger than \(maxBody) bytes")))
                    return
                }
            case .end:
                finish(.success(Result(status: head?.status ?? 0, headers: head?.headers ?? HTTPFields(), body: body)))
                return
            case .error(let error):
                finish(.failure(UpstreamFailure(status: 502, detail: error.reason)))
                return
            }
        }
    }

    func transportDrained() {}

    func transportClosed(error: String?) {
        parser.feedEOF()
        if completion != nil, head != nil {
            transportReceived(UnsafeRawBufferPointer(start: nil, count: 0))
        }
        finish(.failure(UpstreamFailure(status: 502, detail: error ?? "connection closed before the response")))
    }
}
