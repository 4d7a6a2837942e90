import GatewayCore

/// One access-log line per request, for every path (My Organization API or not), written as one JSON line.
///
/// Schema (absent optionals omitted):
/// ```
/// { "kind": "access", "time": ISO 8601 ms, "method", "path" (no query), "query" (values replaced unless the
///   parameter is known harmless), "status", "bytes" (response body bytes sent), "duration_ms",
///   "decision" (e.g. "forwarded", "rate_limit_organization"), "decided_by", "organization_id", "client_id",
///   "request_id", "host", "ip", "protocol" }
/// ```
/// No header value other than the request id is written, so no token or cookie can reach it.
public struct AccessLogLine: Sendable, Equatable {
    public var timeMillis: Int64
    public var method: String
    public var path: String
    public var query: String?
    public var status: Int
    public var bytes: Int
    public var durationMs: Double
    public var decision: String
    public var decidedBy: DecidedBy?
    public var organizationID: String?
    public var clientID: String?
    public var requestID: String?
    public var host: String?
    public var ip: String?
    public var httpProtocol: String?

    /// Query parameters whose values are kept (pagination and field selection); every other value is replaced.
    public static let harmlessQueryParameters: Set<String> = [
        "take", "from", "page", "per_page", "include_totals", "fields", "include_fields", "sort",
    ]

    public init(
        timeMillis: Int64, request: RequestHead, status: Int, bytes: Int, durationMs: Double, decision: String,
        decidedBy: DecidedBy? = nil, organizationID: String? = nil, clientID: String? = nil, ip: String? = nil
    ) {
        self.timeMillis = timeMillis
        self.method = RequestFacts.clean(request.method, max: 32)
        self.path = Redactor.redact(path: RequestFacts.clean(String(request.path), max: 2048))
        self.query = request.query.map { AccessLogLine.sanitizeQuery($0) }
        self.status = status
        self.bytes = bytes
        self.durationMs = durationMs
        self.decision = decision
        self.decidedBy = decidedBy
        self.organizationID = organizationID
        self.clientID = clientID
        self.requestID = RequestFacts.correlationID(request.headers)
        self.host = RequestFacts.hostname(request)
        self.ip = ip
        self.httpProtocol = Self.protocolName(request.version)
    }

    /// Keeps parameter names; replaces every value whose name is not in `keep` with `[REDACTED]`.
    public static func sanitizeQuery(_ query: Substring, keep: Set<String> = harmlessQueryParameters) -> String {
        query.split(separator: "&", omittingEmptySubsequences: false).map { pair -> String in
            guard let eq = pair.firstIndex(of: "=") else { return RequestFacts.clean(String(pair), max: 256) }
            let name = RequestFacts.clean(String(pair[..<eq]), max: 256)
            if keep.contains(name.asciiLowercased) && !Redactor.isSecretName(name) {
                return name + "=" + RequestFacts.clean(String(pair[pair.index(after: eq)...]), max: 1024)
            }
            return name + "=" + Redactor.marker
        }.joined(separator: "&")
    }

    static func protocolName(_ v: HTTPVersion) -> String {
        switch v {
        case .http1_0: return "HTTP/1.0"
        case .http1_1: return "HTTP/1.1"
        case .http2: return "HTTP/2"
        }
    }

    public var json: JSONValue {
        var m: [(String, JSONValue)] = [
            ("kind", "access"),
            ("time", .string(Timestamp.iso8601(millis: timeMillis))),
            ("method", .string(method)),
            ("path", .string(path)),
        ]
        if let query { m.append(("query", .string(query))) }
        m.append(("status", .number(Double(status))))
        m.append(("bytes", .number(Double(bytes))))
        m.append(("duration_ms", .number(RequestFacts.round3(durationMs))))
        m.append(("decision", .string(decision)))
        func add(_ name: String, _ value: String?) { if let value { m.append((name, .string(value))) } }
        add("decided_by", decidedBy?.rawValue)
        add("organization_id", organizationID)
        add("client_id", clientID)
        add("request_id", requestID)
        add("host", host)
        add("ip", ip)
        add("protocol", httpProtocol)
        return .object(m)
    }
}

extension AccessLogLine {
    /// Writes the same text as `json.serialized()`, straight into `out`.
    public func write(to out: inout JSONByteWriter) {
        out.beginObject()
        out.key("kind")
        out.raw("\"access\"")
        out.key("time")
        out.timestamp(millis: timeMillis)
        out.member("method", method)
        out.member("path", path)
        out.member("query", query)
        out.key("status")
        out.number(Double(status))
        out.key("bytes")
        out.number(Double(bytes))
        out.key("duration_ms")
        out.number(RequestFacts.round3(durationMs))
        out.member("decision", decision)
        out.member("decided_by", decidedBy?.rawValue)
        out.member("organization_id", organizationID)
        out.member("client_id", clientID)
        out.member("request_id", requestID)
        out.member("host", host)
        out.member("ip", ip)
        out.member("protocol", httpProtocol)
        out.endObject()
    }
}
