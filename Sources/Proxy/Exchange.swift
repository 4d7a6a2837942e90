import GatewayCore

/// Where a request's response goes: one implementation per client protocol (HTTP/1.1 connection, HTTP/2
/// stream). Loop-confined. Call order: `writeHead` once, `writeBody` any number of times, then `end` — or
/// `abort` at any point (the client sees a reset stream or a closed connection).
protocol ResponseWriter: AnyObject {
    /// `bodyLength` nil means the length is unknown (chunked on HTTP/1.1, DATA frames on HTTP/2).
    func writeHead(_ head: ResponseHead, bodyLength: Int?)
    func writeBody(_ bytes: UnsafeRawBufferPointer)
    func end()
    func abort()
    /// False while the client side holds more than its high-water mark of unsent bytes.
    var canAcceptBody: Bool { get }
    /// Called when `canAcceptBody` turns true again; set by whoever produces the body.
    var onWritable: (() -> Void)? { get set }
}

extension ResponseWriter {
    /// Writes a complete response the gateway produced itself.
    func send(_ response: Response, isHEAD: Bool = false) {
        var head = response.head
        let bodyAllowed = !HTTPStatus.forbidsBody(head.status)
        if bodyAllowed { head.headers.set("Content-Length", String(response.body.count)) }
        writeHead(head, bodyLength: bodyAllowed ? response.body.count : 0)
        if bodyAllowed && !isHEAD && !response.body.isEmpty {
            response.body.withUnsafeBytes { writeBody($0) }
        }
        end()
    }
}

/// One request on its way through the gateway: what the client sent, who it came from, and where the answer goes.
final class Exchange {
    let head: RequestHead
    var body: [UInt8]
    let peerAddress: String
    let isTLS: Bool
    /// The SNI name the client sent, if any.
    let serverName: String?
    /// The domain of the listener the request arrived on, if it serves one.
    let listenerDomain: String?
    let requestID: String
    let startNanos: Int64
    weak var writer: (any ResponseWriter)?
    /// Filled in as the exchange proceeds, for the access log and events.
    var status = 0
    var bytesOut = 0
    var decision = "pending"
    var finished = false
    var upstreamStatus: Int?
    var upstreamStartNanos: Int64 = 0
    var upstreamEndNanos: Int64 = 0
    /// What the policy pipeline learned (organization, client, endpoint), for the events and the access log.
    var facts = ExchangeFacts()
    /// Set when traffic recording keeps this exchange: the response as the client got it, body capped.
    var capture: ResponseCapture?

    init(
        head: RequestHead, body: [UInt8], peerAddress: String, isTLS: Bool, serverName: String?,
        listenerDomain: String?, requestID: String, startNanos: Int64, writer: any ResponseWriter
    ) {
        self.head = head
        self.body = body
        self.peerAddress = peerAddress
        self.isTLS = isTLS
        self.serverName = serverName
        self.listenerDomain = listenerDomain
        self.requestID = requestID
        self.startNanos = startNanos
        self.writer = writer
    }
}

/// Decides what to do with a complete request: answer it here or forward it. Loop-confined, one per listener
/// per loop. `handle` must eventually drive the exchange's writer to `end` or `abort`.
protocol RequestHandler: AnyObject {
    func handle(_ exchange: Exchange)
    /// The client went away before the response finished: release upstream resources.
    func cancel(_ exchange: Exchange)
}

/// What the policy pipeline learned about a request, kept for its log event.
struct ExchangeFacts {
    var operation: String?
    var logResource: String?
    var organizationID: String?
    var clientID: String?
    var userID: String?
    var scope: String?
    var audience: String?
    var hostname: String?
    var error: TenantError?
    var routeName: String?
    var rateLimitedBy: String?
    var tier: String?
}

/// The response of a recorded exchange, captured as it is written to the client.
final class ResponseCapture {
    let cap: Int
    var head: ResponseHead?
    var body: [UInt8] = []
    var size = 0
    /// Time of the response head, for the recording's timings.
    var headNanos: Int64 = 0

    init(cap: Int) { self.cap = cap }

    func head(_ head: ResponseHead, nanos: Int64) {
        self.head = head
        headNanos = nanos
    }

    func body(_ bytes: UnsafeRawBufferPointer) {
        size += bytes.count
        let room = cap - body.count
        if room > 0 { body.append(contentsOf: bytes.prefix(room)) }
    }
}
