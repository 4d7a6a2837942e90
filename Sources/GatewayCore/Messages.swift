/// The HTTP version a message arrived with; HTTP/2 requests are mapped onto the same heads.
public enum HTTPVersion: Sendable, Equatable {
    case http1_0
    case http1_1
    case http2
}

/// A request's head as the gateway sees it after parsing, whichever protocol carried it.
///
/// `target` is the request target exactly as received (origin-form: path plus optional query).
/// `authority` is the Host header (HTTP/1.1) or the `:authority` pseudo-header (HTTP/2).
public struct RequestHead: Sendable, Equatable {
    public var method: String
    public var target: String
    public var version: HTTPVersion
    public var headers: HTTPFields
    public var authority: String?
    public var scheme: String?

    public init(
        method: String,
        target: String,
        version: HTTPVersion = .http1_1,
        headers: HTTPFields = HTTPFields(),
        authority: String? = nil,
        scheme: String? = nil
    ) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.authority = authority
        self.scheme = scheme
    }

    /// Where the target's first `?` is: a plain byte scan of its contiguous UTF-8 (the generic search through the
    /// UTF-8 view, like `firstIndex(of: Character)` walking grapheme clusters, cost more than routing a literal
    /// path). `?` is ASCII, so the index is a character boundary.
    public var queryMark: String.Index? {
        let offset = target.utf8.withContiguousStorageIfAvailable { bytes -> Int? in
            var i = 0
            while i < bytes.count {
                if bytes[i] == UInt8(ascii: "?") { return i }
                i &+= 1
            }
            return nil
        }
        guard let offset else { return target.utf8.firstIndex(of: UInt8(ascii: "?")) }
        return offset.map { target.utf8.index(target.utf8.startIndex, offsetBy: $0) }
    }

    /// The path part of the target (before `?`).
    public var path: Substring { queryMark.map { target[..<$0] } ?? target[...] }

    /// The query part of the target (after `?`), without the `?`.
    public var query: Substring? { queryMark.map { target[target.utf8.index(after: $0)...] } }
}

/// A response's head.
public struct ResponseHead: Sendable, Equatable {
    public var status: Int
    public var reason: String
    public var headers: HTTPFields

    public init(status: Int, reason: String? = nil, headers: HTTPFields = HTTPFields()) {
        self.status = status
        self.reason = reason ?? HTTPStatus.reason(status)
        self.headers = headers
    }
}

/// A complete response the gateway writes itself (errors, preflights, admin answers).
public struct Response: Sendable, Equatable {
    public var head: ResponseHead
    public var body: [UInt8]

    public init(head: ResponseHead, body: [UInt8] = []) {
        self.head = head
        self.body = body
    }

    public init(status: Int, headers: HTTPFields = HTTPFields(), body: [UInt8] = []) {
        self.head = ResponseHead(status: status, headers: headers)
        self.body = body
    }
}

public enum HTTPStatus {
    /// The reason phrase of RFC 9110 §15 for `status`; an empty phrase for codes it does not name.
    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 417: return "Expectation Failed"
        case 421: return "Misdirected Request"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return ""
        }
    }

    /// Statuses whose responses never carry content (RFC 9110 §6.4.1).
    public static func forbidsBody(_ status: Int) -> Bool {
        (100..<200).contains(status) || status == 204 || status == 304
    }
}
