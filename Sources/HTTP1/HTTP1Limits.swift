/// Bounds the request parser enforces; each bound reached turns into a definite status, never a crash.
///
/// Every byte count includes the line terminators (CRLF) of the lines it covers, so a limit is compared with
/// what actually sits in the parser's buffer.
public struct HTTP1Limits: Sendable, Equatable {
    /// The request line (or, for the response parser, the status line), CRLF included. Exceeded: 414.
    public var maxRequestLineBytes: Int
    /// The header section after the start line, every field line and the final empty line included. Exceeded: 431.
    /// Trailer sections of chunked bodies get the same budget of their own.
    public var maxHeaderBytes: Int
    /// Field lines in the header section (and, separately, in a trailer section). Exceeded: 431.
    public var maxHeaderCount: Int
    /// Decoded body bytes of one request. A Content-Length above it fails at the head; a chunked body fails at the
    /// chunk-size line that would pass it. Exceeded: 413. The response parser does not apply it.
    public var maxBodyBytes: Int
    /// Hex digits of a chunk size, leading zeros included; clamped to 1...15 so a size always fits in an `Int`.
    public var maxChunkSizeDigits: Int
    /// A whole chunk-size line: size, extensions and CRLF. Exceeded: 400.
    public var maxChunkLineBytes: Int

    public init(
        maxRequestLineBytes: Int = 8 * 1024,
        maxHeaderBytes: Int = 32 * 1024,
        maxHeaderCount: Int = 100,
        maxBodyBytes: Int = 1024 * 1024,
        maxChunkSizeDigits: Int = 8,
        maxChunkLineBytes: Int = 1024
    ) {
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxBodyBytes = maxBodyBytes
        self.maxChunkSizeDigits = maxChunkSizeDigits
        self.maxChunkLineBytes = maxChunkLineBytes
    }

    var chunkDigits: Int { min(max(maxChunkSizeDigits, 1), 15) }
}
