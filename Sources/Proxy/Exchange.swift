import GatewayCore
import Policy
import EventLoop
import Recording
import Synchronization

/// Where a request's response goes: one implementation per client protocol (HTTP/1.1 connection, HTTP/2
/// stream). Loop-confined. Call order: `writeHead` once, `writeBody` any number of times, then `end` — or
/// `abort` at any point (the client sees a reset stream or a closed connection).
protocol ResponseWriter: AnyObject {
    /// `bodyLength` nil means the length is unknown (chunked on HTTP/1.1, DATA frames on HTTP/2).
    func writeHead(_ head: ResponseHead, bodyLength: Int?)
    func writeBody(_ bytes: UnsafeRawBufferPointer)
    func end()
    func abort()
    /// False while the client side holds more than its high-water mark of unsent bytes; when it turns true again
    /// the writer tells the exchange's upstream relay (`UpstreamRelay.clientWritable`).
    var canAcceptBody: Bool { get }
    /// An interim (1xx) response before the final head, e.g. 103 Early Hints (RFC 9110 §15.2). Dropped where the
    /// client's protocol cannot carry it (HTTP/1.0).
    func writeInformational(_ head: ResponseHead)
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
    /// Where the answer goes, until the exchange finishes (`ClientConnection.finished` clears it, which also ends
    /// the reference cycle with the writer that holds this exchange). A strong reference, not a weak one: a weakly
    /// referenced object gets a side table, and every retain and release of it takes the slow path.
    var writer: (any ResponseWriter)?
    /// Filled in as the exchange proceeds, for the access log and events.
    var status = 0
    var bytesOut = 0
    var decision = "pending"
    var finished = false
    var upstreamStatus: Int?
    /// The token named a key the set lacked and the exchange waited for a refetch once (it never waits twice).
    var awaitedKeyRefetch = false
    var upstreamStartNanos: Int64 = 0
    var upstreamEndNanos: Int64 = 0
    /// What the policy pipeline learned (organization, client, endpoint), for the events and the access log.
    var facts = ExchangeFacts()

    /// Moves the facts out (the exchange keeps none): for the log entry of a finished exchange, which would
    /// otherwise retain every string of them and release them again with the exchange.
    func takeFacts() -> ExchangeFacts {
        var taken = ExchangeFacts()
        swap(&taken, &facts)
        return taken
    }
    /// Set when traffic recording keeps this exchange: the response as the client got it, body capped.
    var capture: ResponseCapture?
    /// The first bytes of an error the tenant answered with (status 400 or more), for the event's `error`.
    var tenantErrorBody: [UInt8]?
    /// The most of `tenantErrorBody` kept: the tenant's problem bodies are a few hundred bytes.
    static let tenantErrorBodyCap = 4096
    /// Set when the body streams: it is still arriving when the handler runs, and `body` holds only its first
    /// bytes (for the recording).
    var bodyStream: RequestBodyStream?
    /// The relay carrying this exchange to the upstream, while it does.
    var upstreamRelay: UpstreamRelay?

    /// Counts this exchange as alive until it is freed (debug builds; see `LiveObjectCount`).
    var liveToken: LiveObjectCount.Token?

    /// Makes `stream` this exchange's body; `body` keeps its first bytes for the recording.
    func attach(_ stream: RequestBodyStream) {
        bodyStream = stream
        stream.keep = { [weak self] bytes in
            guard let self else { return }
            let room = RequestBodyStream.keptPrefix - body.count
            if room > 0 { body.append(contentsOf: bytes.prefix(room)) }
        }
    }

    /// The request body's length as the upstream will see it.
    var bodyLength: Int { bodyStream?.length ?? body.count }

    /// Who decided the answer: the tenant when its response came back, else the gateway.
    var decidedBy: DecidedBy { upstreamStatus != nil ? .tenant : .gateway }

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

/// How many objects of one kind are alive, counted in debug builds only: the reference cycles between an exchange,
/// its writer and its relay are broken by hand when the request ends, and the tests check that none is left.
final class LiveObjectCount: Sendable {
    private let count = Atomic<Int>(0)
    var current: Int { count.load(ordering: .relaxed) }

    /// Counts one object while the object holding the token lives: the token goes when its holder is freed.
    final class Token {
        private let count: LiveObjectCount
        init(_ count: LiveObjectCount) {
            self.count = count
            count.count.add(1, ordering: .relaxed)
        }
        deinit { count.count.subtract(1, ordering: .relaxed) }
    }
}

/// Decides what to do with a complete request: answer it here or forward it. Loop-confined, one per listener
/// per loop. `handle` must eventually drive the exchange's writer to `end` or `abort`.
protocol RequestHandler: AnyObject {
    func handle(_ exchange: Exchange)
    /// The client went away before the response finished: release upstream resources.
    func cancel(_ exchange: Exchange)
    /// Whether the handler reads the body before deciding (then it arrives whole, within the body limit);
    /// otherwise a large body streams to the upstream as it arrives.
    func needsWholeBody(_ head: RequestHead) -> Bool
    /// The connection refused this request itself (a body over the limit) after its head was read: fill in what
    /// the logs need to know about it (its operation and log resource), without judging it.
    func describeRefusal(_ exchange: Exchange, error: TenantError)
    /// Whether the head alone already decides a refusal (no route, no token, another domain…): a request that
    /// expects `100 Continue` then gets the refusal at once instead (RFC 9110 §10.1.1).
    func refusesOnHead(_ head: RequestHead, listenerDomain: String?) -> Bool
}

extension RequestHandler {
    func needsWholeBody(_ head: RequestHead) -> Bool { true }
    func refusesOnHead(_ head: RequestHead, listenerDomain: String?) -> Bool { false }
    func describeRefusal(_ exchange: Exchange, error: TenantError) { exchange.facts.error = error }
}

/// A request body that keeps arriving after its exchange went to the handler: bodies of a declared length over
/// `threshold` that no policy reads whole stream to the upstream with backpressure instead of being held in
/// memory. Loop-confined.
///
/// The source (client connection) calls `deliver` and `finish`; the consumer (upstream relay) calls `attach`, and
/// `pauseSource`/`resumeSource` as the upstream's buffer fills and drains. Bytes that arrive before a consumer
/// attaches wait here, and the source pauses once they pass `highWater`.
final class RequestBodyStream {
    static let threshold = 64 * 1024
    static let highWater = 256 * 1024
    /// How much of the body `Exchange.body` keeps for the recording.
    static let keptPrefix = 64 * 1024

    let length: Int
    private(set) var received = 0
    private(set) var ended = false
    private var waiting = ByteQueue()
    private var consumer: ((UnsafeRawBufferPointer) -> Void)?
    private var onEnd: (() -> Void)?
    private var sourcePaused = false
    /// Set by the source: true stops reading from the client, false resumes.
    var setSourcePaused: ((Bool) -> Void)?
    /// Called with each delivered piece while `Exchange.body` keeps the body's first bytes.
    var keep: ((UnsafeRawBufferPointer) -> Void)?

    init(length: Int) { self.length = length }

    private var watchdog: LoopTimer?

    deinit { watchdog?.cancel() }

    /// Calls `stalled` once when the client stops sending (no byte for `idleMs` while the gateway was reading) or
    /// sends slower than `minBytesPerSecond` on average after a grace period: a streamed body otherwise has no
    /// deadline, and a client that stops or trickles would hold its connection and an upstream connection for good.
    func watch(
        on loop: EventLoop, idleMs: Int, minBytesPerSecond: Int,
        stalled: @escaping (BodyArrivalJudge.Verdict) -> Void
    ) {
        let tickMs = max(100, min(1000, idleMs))
        var judge = BodyArrivalJudge(
            idleLimitMs: idleMs, minBytesPerSecond: minBytesPerSecond, graceMs: min(Self.rateGraceMs, idleMs))
        watchdog = loop.scheduleRepeating(everyMilliseconds: tickMs) { [weak self] in
            guard let self else { return }
            if self.ended {
                self.watchdog?.cancel()
                self.watchdog = nil
                return
            }
            let heldBack = self.sourcePaused || self.pausedSinceTick
            self.pausedSinceTick = false
            let verdict = judge.tick(elapsedMs: tickMs, received: self.received, heldBack: heldBack)
            guard verdict != .fine else { return }
            self.watchdog?.cancel()
            self.watchdog = nil
            stalled(verdict)
        }
    }

    /// How long a streamed body may start slowly before its average rate is judged (Kestrel's default).
    static let rateGraceMs = 5000
    private var pausedSinceTick = false

    /// Whether bytes are still to come from the client.
    var isOpen: Bool { !ended }

    func deliver(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        received += bytes.count
        keep?(bytes)
        if let consumer {
            consumer(bytes)
        } else {
            waiting.append(bytes)
            if waiting.count >= RequestBodyStream.highWater { pauseSource() }
        }
    }

    func finish() {
        guard !ended else { return }
        ended = true
        watchdog?.cancel()
        watchdog = nil
        keep = nil
        if consumer != nil {
            let done = onEnd
            onEnd = nil
            done?()
        }
    }

    /// Hands the bytes that waited, then every later piece, to `consumer`; `onEnd` runs once the body is complete.
    func attach(consumer: @escaping (UnsafeRawBufferPointer) -> Void, onEnd: @escaping () -> Void) {
        self.consumer = consumer
        self.onEnd = onEnd
        waiting.consume { raw in
            consumer(raw)
            return raw.count
        }
        resumeSource()
        if ended {
            self.onEnd = nil
            onEnd()
        }
    }

    /// Nobody will forward the rest (the gateway answered, or the upstream exchange ended): drop it as it comes.
    func discard() {
        consumer = { _ in }
        onEnd = nil
        keep = nil
        waiting.removeAll()
        resumeSource()
    }

    func pauseSource() {
        guard !sourcePaused, !ended else { return }
        sourcePaused = true
        pausedSinceTick = true
        setSourcePaused?(true)
    }

    func resumeSource() {
        guard sourcePaused else { return }
        sourcePaused = false
        setSourcePaused?(false)
    }
}

/// What the policy pipeline learned about a request, kept for its log event.
///
/// The policy's notes are kept whole, moved in by `PolicyHandler.record`: copying their strings one by one into
/// fields of their own retained each string, and then released every (by then empty) optional of the notes and
/// of the facts they replaced. Until then (and for handlers without a policy) there are no notes, and an absent
/// value is destroyed with one test where a struct of a dozen empty optionals released each of them.
struct ExchangeFacts: Sendable {
    private var notes: PipelineNotes?

    init() {}

    /// `notes.domain` is the log's `hostname` (see `hostname`).
    init(notes: consuming PipelineNotes) { self.notes = notes }

    var operation: String? { notes?.operation }
    var logResource: String? { notes?.logResource }
    var organizationID: String? { notes?.organizationID }
    var clientID: String? { notes?.clientID }
    /// The token's `org_name`, when the tenant includes it and the token's claims passed.
    var organizationName: String? { notes?.tokenContext?.orgName }
    var userID: String? { notes?.userID }
    var scope: String? { notes?.scope }
    var audience: String? { notes?.audience }
    var routeName: String? { notes?.routeName }
    /// The tenant domain the request was for, as the policy recorded it in the notes' `domain`.
    var hostname: String? { notes?.domain }
    var rateLimitedBy: String? { notes?.rateDecision?.limitedBy?.rawValue }
    var tier: String? { notes?.rateDecision?.tierName }
    /// The refusal the gateway wrote itself: the policy's, or one set later (an upstream failure, a stalled body).
    var error: TenantError? {
        get { notes?.error }
        set {
            if notes == nil { notes = PipelineNotes() }
            notes!.error = newValue
        }
    }
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
