/// Why a message was refused, with the status the gateway answers (request parser) or reports (response parser).
///
/// `reason` is a short fixed phrase for logs and the error body; it never quotes the offending bytes, so a
/// token or other secret in a malformed header cannot leak through it.
public struct HTTP1Error: Error, Sendable, Equatable, CustomStringConvertible {
    /// 400, 413, 414, 417, 431, 501 or 505 from the request parser; always 502 from the response parser.
    public var status: Int
    public var reason: String

    public init(status: Int, reason: String) {
        self.status = status
        self.reason = reason
    }

    public var description: String { "\(status) \(reason)" }

    static func badRequest(_ reason: String) -> HTTP1Error { HTTP1Error(status: 400, reason: reason) }
}

/// Why a serializer refused to write a head: a byte that would split the message or break its grammar.
public struct HTTP1SerializationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String

    public init(reason: String) { self.reason = reason }

    public var description: String { reason }
}
