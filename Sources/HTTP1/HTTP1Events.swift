import GatewayCore

/// How a message's body is delimited (RFC 9112 §6.3).
public enum HTTP1Framing: Sendable, Equatable {
    /// No body at all: no Content-Length and no Transfer-Encoding on a request, or a response to HEAD, or a
    /// 1xx/204/304 response.
    case none
    /// Exactly this many bytes follow the head (may be 0).
    case contentLength(Int)
    /// `Transfer-Encoding: chunked`; the parser yields de-chunked bytes.
    case chunked
    /// The body runs until the peer closes the connection (responses only).
    case untilClose
}

/// What the request parser learned about a request besides its head.
public struct HTTP1RequestInfo: Sendable, Equatable {
    public var framing: HTTP1Framing
    /// The connection may carry another request after this one: HTTP/1.1 without `Connection: close`, or
    /// HTTP/1.0 with `Connection: keep-alive`. When false the parser stops after this request's `.end`.
    public var keepAlive: Bool
    /// HTTP/1.1 with `Expect: 100-continue` and a body to come (RFC 9110 §10.1.1): the driver should send
    /// `100 Continue` (or a final status) before it waits for the body.
    public var expectContinue: Bool

    public init(framing: HTTP1Framing, keepAlive: Bool, expectContinue: Bool) {
        self.framing = framing
        self.keepAlive = keepAlive
        self.expectContinue = expectContinue
    }
}

/// One step of a request's life as the request parser sees it.
///
/// Per request the order is: `head`, zero or more `body`, at most one `trailers`, `end`. `error` is final.
public enum HTTP1RequestEvent: Sendable, Equatable {
    case head(RequestHead, HTTP1RequestInfo)
    /// Decoded body bytes (chunk framing removed); never empty.
    case body(ArraySlice<UInt8>)
    /// The trailer section of a chunked body, when it has at least one field.
    case trailers(HTTPFields)
    case end
    /// The request is refused with `error.status`; the parser yields nothing more and the connection must close.
    case error(HTTP1Error)
}

/// What the response parser learned about a response besides its head.
public struct HTTP1ResponseInfo: Sendable, Equatable {
    public var version: HTTPVersion
    public var framing: HTTP1Framing
    /// The upstream connection may be reused after this response's `.end`.
    public var keepAlive: Bool

    public init(version: HTTPVersion, framing: HTTP1Framing, keepAlive: Bool) {
        self.version = version
        self.framing = framing
        self.keepAlive = keepAlive
    }
}

/// One step of a response's life as the response parser sees it.
///
/// Per response: any number of `informational` (1xx other than 101), then `head`, zero or more `body`, at most
/// one `trailers`, `end`. `error` is final.
public enum HTTP1ResponseEvent: Sendable, Equatable {
    case informational(ResponseHead)
    case head(ResponseHead, HTTP1ResponseInfo)
    case body(ArraySlice<UInt8>)
    case trailers(HTTPFields)
    case end
    /// The response cannot be trusted (status is always 502); the upstream connection must be closed.
    case error(HTTP1Error)
}
