/// Bounds an `HTTP2ServerSession` enforces on its peer, with defaults sized for an API gateway.
///
/// The SETTINGS values are advertised to the client at session start; the rate limits are the session's own
/// per-connection token buckets (nghttp2 1.52 has no such limiter for most frame types). When a bucket runs dry the
/// session sends GOAWAY(ENHANCE_YOUR_CALM) and reports `.connectionError(.flood(...))`.
public struct HTTP2Limits: Sendable, Equatable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS. A stream beyond it is refused (RST_STREAM(REFUSED_STREAM), RFC 9113
    /// §5.1.2) and the streams already open go on.
    public var maxConcurrentStreams: Int = 100
    /// SETTINGS_MAX_HEADER_LIST_SIZE, counted as RFC 9113 §6.5.2 does (name + value + 32 per field, pseudo-headers
    /// included). A request over it is answered 431 and never reaches the application.
    public var maxHeaderListSize: Int = 16 * 1024
    /// Most header fields (pseudo-headers included) in one request header block; over it is treated like an
    /// oversized header list.
    public var maxHeaderCount: Int = 128
    /// SETTINGS_INITIAL_WINDOW_SIZE: how many request-body bytes a client may send on one stream before the
    /// application consumes them.
    public var initialStreamWindowSize: Int = 65_535
    /// The connection-level receive window: the most unconsumed request-body bytes across all streams.
    public var connectionWindowSize: Int = 1 << 20
    /// Most request-body bytes per stream; the application hears `.requestBodyTooLarge` and should answer 413.
    public var maxRequestBodyBytes: Int = 1 << 20
    /// Request-body bytes still read (and dropped) after a complete response was sent before the upload ended,
    /// so that clients which treat RST_STREAM(NO_ERROR) as a failure (curl 7.x) see the answer; past it the
    /// upload is stopped with RST_STREAM(NO_ERROR) (RFC 9113 §8.1).
    public var maxDrainedBodyBytes: Int = 4 << 20
    /// Default output high-water mark for `pendingOutput(into:)`.
    public var outputHighWaterMark: Int = 64 * 1024
    /// Per-stream buffered response-body bytes above which `appendBody` asks the producer to pause; it hears
    /// `.readyForBody` once the buffer has drained below half of this.
    public var responseBodyHighWaterMark: Int = 64 * 1024
    /// nghttp2's cap on one outgoing header block (`nghttp2_option_set_max_send_header_block_length`).
    public var maxSendHeaderBlockLength: Int = 64 * 1024
    /// nghttp2's cap on queued SETTINGS and PING acknowledgements (`nghttp2_option_set_max_outbound_ack`).
    public var maxOutboundAck: Int = 200
    /// Most entries accepted in one SETTINGS frame (`nghttp2_option_set_max_settings`).
    public var maxSettingsEntries: Int = 16
    /// Most CONTINUATION frames after one HEADERS frame (`nghttp2_option_set_max_continuations`).
    public var maxContinuationsPerHeaderBlock: Int = 8
    /// PING frames (not acknowledgements) from the client.
    public var pingRate = HTTP2RateLimit(burst: 100, perSecond: 10)
    /// SETTINGS frames (not acknowledgements) from the client.
    public var settingsRate = HTTP2RateLimit(burst: 50, perSecond: 5)
    /// RST_STREAM frames from the client (Rapid Reset, CVE-2023-44487). nghttp2's own limiter (real clock) stays as a
    /// looser backstop: twice this, and never below its defaults of 1000 and 33/s.
    public var resetStreamRate = HTTP2RateLimit(burst: 200, perSecond: 33)
    /// CONTINUATION frames across all header blocks.
    public var continuationRate = HTTP2RateLimit(burst: 200, perSecond: 20)
    /// DATA frames with no payload and no END_STREAM.
    public var emptyDataRate = HTTP2RateLimit(burst: 100, perSecond: 10)
    /// Streams the server had to refuse or reset because the client misbehaved (MadeYouReset): every RST_STREAM
    /// with an error code the session writes (other than the owner's `resetStream`), plus 431 answers.
    public var glitchRate = HTTP2RateLimit(burst: 200, perSecond: 20)

    public init() {}
}

/// A token bucket's shape: `burst` events at once, refilled at `perSecond` events per second.
public struct HTTP2RateLimit: Sendable, Equatable {
    public var burst: Int
    public var perSecond: Int

    public init(burst: Int, perSecond: Int) {
        self.burst = burst
        self.perSecond = perSecond
    }
}

/// A token bucket in integer nanotokens, so refills need no floating point and never drift.
struct TokenBucket {
    private static let unit: Int64 = 1_000_000_000
    private let capacity: Int64
    private let perSecond: Int64
    private var tokens: Int64
    private var last: Int64?

    init(_ limit: HTTP2RateLimit) {
        capacity = Int64(max(limit.burst, 0)) * Self.unit
        perSecond = Int64(max(limit.perSecond, 0))
        tokens = capacity
    }

    /// Takes one token at time `now` (nanoseconds); false when the bucket is empty.
    mutating func take(now: Int64) -> Bool {
        if let last, now > last {
            // Clamping the gap keeps `elapsed * perSecond` far from overflow; a bucket refills fully long before.
            let elapsed = min(now - last, 1_000_000_000_000)
            tokens = min(capacity, tokens + elapsed * perSecond)
        }
        if last == nil || now > last! { last = now }
        guard tokens >= Self.unit else { return false }
        tokens -= Self.unit
        return true
    }
}
