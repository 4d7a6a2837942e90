import GatewayCore

/// Answers every request with a function of the request: serves the tenant emulator and the admin endpoints on
/// the project's own event loop and HTTP code.
final class LocalHandler: RequestHandler {
    let respond: (RequestHead, [UInt8], String) -> Response

    /// `respond` gets the request head, its body and the peer address; it runs on the loop, so it must be quick.
    init(_ respond: @escaping (RequestHead, [UInt8], String) -> Response) { self.respond = respond }

    func handle(_ exchange: Exchange) {
        exchange.decision = "local"
        let response = respond(exchange.head, exchange.body, exchange.peerAddress)
        exchange.writer?.send(response, isHEAD: exchange.head.method == "HEAD")
    }

    func cancel(_ exchange: Exchange) {}
}

/// A handler factory for a server whose every listener answers locally.
struct LocalHandlerFactory: HandlerFactory {
    let respond: @Sendable (RequestHead, [UInt8], String) -> Response

    func makeHandler(for listener: ListenerProfile, context: LoopContext) -> any RequestHandler {
        LocalHandler(respond)
    }
}
