import GatewayCore

/// What an `HTTP2ServerSession` tells its owner; read them with `nextEvent()`.
///
/// Stream events for one stream arrive in order: `.request`, then `.data`* and `.endStream` (unless the request
/// ended with its headers), with `.requestBodyTooLarge`, `.readyForBody` and `.reset` interleaved as they happen.
public enum HTTP2Event: Sendable, Equatable {
    /// A complete request header block. `endStream` true means the request has no body and no `.endStream`
    /// follows. The head has version `.http2`, `target` from `:path` (authority-form for CONNECT), `authority` from
    /// `:authority` or else Host, `scheme` from `:scheme`; cookie fields are joined into one (RFC 9113 §8.2.3).
    case request(streamID: Int32, head: RequestHead, endStream: Bool)
    /// A chunk of request body. The client's flow-control window reopens only when the owner calls
    /// `consume(streamID:count:)` for these bytes.
    case data(streamID: Int32, bytes: [UInt8])
    /// The request body is complete (any trailer fields are dropped).
    case endStream(streamID: Int32)
    /// The request body went over `HTTP2Limits.maxRequestBodyBytes` (or its content-length says it will). Further
    /// body bytes are dropped and the stream's window stays shut; the owner should answer 413 or reset the stream.
    case requestBodyTooLarge(streamID: Int32)
    /// A response body buffer that `appendBody` reported as full has drained; produce more.
    case readyForBody(streamID: Int32)
    /// The stream ended before the owner finished its response (client RST_STREAM, a protocol error nghttp2 found
    /// on the stream, or the connection going away). Stop working on it; later submits for it return false.
    case reset(streamID: Int32, errorCode: HTTP2ErrorCode)
    /// The client sent GOAWAY: no new streams; streams up to `lastStreamID` carry on.
    case goaway(lastStreamID: Int32, errorCode: HTTP2ErrorCode)
    /// Terminal: the connection is being torn down. A GOAWAY is queued: drain `pendingOutput` until `wantsWrite` is
    /// false, then close. No further stream events follow.
    case connectionError(HTTP2ConnectionError)
}

/// Why a session ended the connection.
public enum HTTP2ConnectionError: Sendable, Equatable {
    /// The client exceeded one of the session's flood limits; GOAWAY(ENHANCE_YOUR_CALM) was sent.
    case flood(HTTP2Flood)
    /// nghttp2 found a connection error and sent GOAWAY with this code (reported when the GOAWAY is written).
    case protocolError(HTTP2ErrorCode)
    /// The connection did not start with the HTTP/2 client preface.
    case badPreface
    /// nghttp2 failed with this fatal library error (`nghttp2_error`); GOAWAY(INTERNAL_ERROR) was queued.
    case library(Int32)
}

/// The kinds of abuse the session counts per connection.
public enum HTTP2Flood: Sendable, Equatable {
    case ping
    case settings
    case resetStream
    case continuation
    case emptyData
    case glitches
    /// nghttp2's queue of SETTINGS/PING acknowledgements overflowed (`NGHTTP2_ERR_FLOODED`).
    case outboundQueue
}

/// An HTTP/2 error code (RFC 9113 §7).
public struct HTTP2ErrorCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let noError = HTTP2ErrorCode(rawValue: 0x0)
    public static let protocolError = HTTP2ErrorCode(rawValue: 0x1)
    public static let internalError = HTTP2ErrorCode(rawValue: 0x2)
    public static let flowControlError = HTTP2ErrorCode(rawValue: 0x3)
    public static let settingsTimeout = HTTP2ErrorCode(rawValue: 0x4)
    public static let streamClosed = HTTP2ErrorCode(rawValue: 0x5)
    public static let frameSizeError = HTTP2ErrorCode(rawValue: 0x6)
    public static let refusedStream = HTTP2ErrorCode(rawValue: 0x7)
    public static let cancel = HTTP2ErrorCode(rawValue: 0x8)
    public static let compressionError = HTTP2ErrorCode(rawValue: 0x9)
    public static let connectError = HTTP2ErrorCode(rawValue: 0xa)
    public static let enhanceYourCalm = HTTP2ErrorCode(rawValue: 0xb)
    public static let inadequateSecurity = HTTP2ErrorCode(rawValue: 0xc)
    public static let http11Required = HTTP2ErrorCode(rawValue: 0xd)

    public var description: String {
        let names = [
            "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED",
            "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR",
            "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
        ]
        return rawValue < names.count ? names[Int(rawValue)] : "0x\(String(rawValue, radix: 16))"
    }
}
