import GatewayCore

/// One request/response exchange as the proxy captured it, before redaction. Handed to ``TrafficRecorder``.
public struct CapturedExchange: Sendable {
    public struct Timings: Sendable, Equatable {
        /// Receiving the request from the client until it was handed upstream (or refused), ms.
        public var sendMs: Double
        /// Waiting for the upstream's response head, ms (0 when the gateway answered itself).
        public var waitMs: Double
        /// Receiving the response body, ms.
        public var receiveMs: Double
        public var totalMs: Double

        public init(sendMs: Double = 0, waitMs: Double = 0, receiveMs: Double = 0, totalMs: Double) {
            self.sendMs = sendMs
            self.waitMs = waitMs
            self.receiveMs = receiveMs
            self.totalMs = totalMs
        }
    }

    public var request: RequestHead
    /// The captured request body (may already be cut by the proxy's own capture limit).
    public var requestBody: [UInt8]
    /// The request body's full size as seen on the wire.
    public var requestBodySize: Int
    /// Nil when no response was sent (connection lost, upstream reset).
    public var response: ResponseHead?
    public var responseBody: [UInt8]
    public var responseBodySize: Int
    public var startedMillis: Int64
    public var timings: Timings
    public var clientIP: String?
    public var decidedBy: DecidedBy
    /// The outcome in one word: `forwarded`, or the gateway's refusal reason (`rate_limit_organization`,
    /// `rate_limit_tenant`, `invalid_token`, `insufficient_scope`, `cors`, `not_found`, …).
    public var decision: String
    /// The policy's route name or template, e.g. `GET identity-providers/{idp_id}`.
    public var route: String?
    public var eventType: String?
    public var organizationID: String?
    public var clientID: String?

    public init(
        request: RequestHead, requestBody: [UInt8] = [], requestBodySize: Int? = nil, response: ResponseHead?,
        responseBody: [UInt8] = [], responseBodySize: Int? = nil, startedMillis: Int64, timings: Timings,
        clientIP: String? = nil, decidedBy: DecidedBy, decision: String, route: String? = nil,
        eventType: String? = nil, organizationID: String? = nil, clientID: String? = nil
    ) {
        self.request = request
        self.requestBody = requestBody
        self.requestBodySize = requestBodySize ?? requestBody.count
        self.response = response
        self.responseBody = responseBody
        self.responseBodySize = responseBodySize ?? responseBody.count
        self.startedMillis = startedMillis
        self.timings = timings
        self.clientIP = clientIP
        self.decidedBy = decidedBy
        self.decision = decision
        self.route = route
        self.eventType = eventType
        self.organizationID = organizationID
        self.clientID = clientID
    }
}

/// A redacted exchange: the line format of traffic recordings, read back by HAR export, reports and replay.
///
/// Schema, version 1 (one JSON object per line; absent optionals omitted):
/// ```
/// { "kind": "exchange", "v": 1, "id": log-id, "started": ISO 8601 ms, "time_ms": total,
///   "timings": { "send": ms, "wait": ms, "receive": ms },
///   "client_ip", "route", "event_type", "organization_id", "client_id",
///   "decision": { "decided_by": "gateway"|"tenant", "outcome": "forwarded"|<refusal reason> },
///   "token_claims": { … the bearer token's claims, never its header or signature … },
///   "request":  { "method", "scheme", "host", "target" (path + redacted query), "http_version",
///                 "headers": [[name, value], …], "body": Body },
///   "response": { "status", "reason", "headers": [[name, value], …], "body": Body } }
/// Body: { "size": bytes on the wire, "mime_type", "text": redacted text (at most the cap),
///         "truncated": true when cut, "binary": true when not UTF-8 (no text then) }
/// ```
/// Header pairs keep order and duplicates. Every header, body and query has been through ``Redactor``.
public struct ExchangeRecord: Sendable, Equatable {
    public struct Body: Sendable, Equatable {
        public var size: Int
        public var mimeType: String?
        public var text: String?
        public var truncated: Bool
        public var binary: Bool

        public init(size: Int, mimeType: String?, text: String?, truncated: Bool = false, binary: Bool = false) {
            self.size = size
            self.mimeType = mimeType
            self.text = text
            self.truncated = truncated
            self.binary = binary
        }
    }

    public var id: String
    public var startedMillis: Int64
    public var timeMs: Double
    public var sendMs: Double
    public var waitMs: Double
    public var receiveMs: Double
    public var clientIP: String?
    public var route: String?
    public var eventType: String?
    public var organizationID: String?
    public var clientID: String?
    public var decidedBy: DecidedBy
    public var outcome: String
    public var tokenClaims: JSONValue?
    public var method: String
    public var scheme: String
    public var host: String?
    public var target: String
    public var httpVersion: String
    public var requestHeaders: [(String, String)]
    public var requestBody: Body?
    public var status: Int?
    public var reason: String?
    public var responseHeaders: [(String, String)]
    public var responseBody: Body?

    public static func == (a: ExchangeRecord, b: ExchangeRecord) -> Bool { a.json == b.json }

    /// Builds the redacted record. `bodyCap` bounds each body's text, cut after redaction at a UTF-8 boundary.
    public init(
        captured c: CapturedExchange, id: String, redactor: Redactor, bodyCap: Int, keepTokenClaims: Bool
    ) {
        self.id = id
        startedMillis = c.startedMillis
        timeMs = c.timings.totalMs
        sendMs = c.timings.sendMs
        waitMs = c.timings.waitMs
        receiveMs = c.timings.receiveMs
        clientIP = c.clientIP
        route = c.route
        eventType = c.eventType
        organizationID = c.organizationID
        clientID = c.clientID
        decidedBy = c.decidedBy
        outcome = c.decision
        if keepTokenClaims, let authorization = c.request.headers[literal: "Authorization"],
            let claims = Redactor.bearerClaims(authorization)
        {
            tokenClaims = redactor.redact(json: claims)
        }
        method = RequestFacts.clean(c.request.method, max: 32)
        scheme = c.request.scheme ?? "https"
        host = (c.request.authority ?? c.request.headers[literal: "Host"]).map { RequestFacts.clean($0, max: 255) }
        var target = Redactor.redact(path: RequestFacts.clean(String(c.request.path), max: 4096))
        if let query = c.request.query { target += "?" + redactor.redact(query: query) }
        self.target = target
        httpVersion = AccessLogLine.protocolName(c.request.version)
        requestHeaders = redactor.redact(headers: c.request.headers).fields.map { ($0.name, $0.value) }
        requestBody = Self.body(
            c.requestBody, size: c.requestBodySize, contentType: c.request.headers[literal: "Content-Type"],
            redactor: redactor,
            cap: bodyCap)
        if let response = c.response {
            status = response.status
            reason = response.reason
            responseHeaders = redactor.redact(headers: response.headers).fields.map { ($0.name, $0.value) }
            responseBody = Self.body(
                c.responseBody, size: c.responseBodySize, contentType: response.headers[literal: "Content-Type"],
                redactor: redactor, cap: bodyCap)
        } else {
            responseHeaders = []
        }
    }

    private static func body(_ bytes: [UInt8], size: Int, contentType: String?, redactor: Redactor, cap: Int) -> Body? {
        guard size > 0 || !bytes.isEmpty else { return nil }
        let mime = contentType.map { RequestFacts.clean($0, max: 200) }
        guard let text = redactor.redact(body: bytes, contentType: contentType) else {
            return Body(size: size, mimeType: mime, text: nil, binary: true)
        }
        var utf8 = Array(text.utf8)
        var truncated = size > bytes.count
        if utf8.count > cap {
            var end = max(0, cap)
            while end > 0 && (utf8[end] & 0xC0) == 0x80 { end -= 1 }
            utf8.removeSubrange(end...)
            truncated = true
        }
        return Body(size: size, mimeType: mime, text: String(decoding: utf8, as: UTF8.self), truncated: truncated)
    }

    // MARK: JSON

    public var json: JSONValue {
        var m: [(String, JSONValue)] = [
            ("kind", "exchange"), ("v", 1), ("id", .string(id)),
            ("started", .string(Timestamp.iso8601(millis: startedMillis))),
            ("time_ms", .number(RequestFacts.round3(timeMs))),
            (
                "timings",
                .object([
                    ("send", .number(RequestFacts.round3(sendMs))), ("wait", .number(RequestFacts.round3(waitMs))),
                    ("receive", .number(RequestFacts.round3(receiveMs))),
                ])
            ),
        ]
        func add(_ name: String, _ value: String?) { if let value { m.append((name, .string(value))) } }
        add("client_ip", clientIP)
        add("route", route)
        add("event_type", eventType)
        add("organization_id", organizationID)
        add("client_id", clientID)
        m.append(("decision", .object([("decided_by", .string(decidedBy.rawValue)), ("outcome", .string(outcome))])))
        if let tokenClaims { m.append(("token_claims", tokenClaims)) }
        var req: [(String, JSONValue)] = [("method", .string(method)), ("scheme", .string(scheme))]
        if let host { req.append(("host", .string(host))) }
        req.append(("target", .string(target)))
        req.append(("http_version", .string(httpVersion)))
        req.append(("headers", Self.headersJSON(requestHeaders)))
        if let requestBody { req.append(("body", Self.bodyJSON(requestBody))) }
        m.append(("request", .object(req)))
        if let status {
            var res: [(String, JSONValue)] = [("status", .number(Double(status)))]
            if let reason { res.append(("reason", .string(reason))) }
            res.append(("headers", Self.headersJSON(responseHeaders)))
            if let responseBody { res.append(("body", Self.bodyJSON(responseBody))) }
            m.append(("response", .object(res)))
        }
        return .object(m)
    }

    private static func headersJSON(_ headers: [(String, String)]) -> JSONValue {
        .array(headers.map { .array([.string($0.0), .string($0.1)]) })
    }

    private static func bodyJSON(_ body: Body) -> JSONValue {
        var m: [(String, JSONValue)] = [("size", .number(Double(body.size)))]
        if let mime = body.mimeType { m.append(("mime_type", .string(mime))) }
        if let text = body.text { m.append(("text", .string(text))) }
        if body.truncated { m.append(("truncated", true)) }
        if body.binary { m.append(("binary", true)) }
        return .object(m)
    }

    public struct DecodingError: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Reads a record line's JSON back. Unknown members are ignored (forward compatibility).
    public init(json: JSONValue) throws(DecodingError) {
        guard json["kind"]?.stringValue == "exchange" else {
            throw DecodingError(description: "not an exchange record")
        }
        guard let id = json["id"]?.stringValue,
            let started = json["started"]?.stringValue.flatMap(Timestamp.parseISO8601),
            let request = json["request"], let method = request["method"]?.stringValue,
            let target = request["target"]?.stringValue
        else { throw DecodingError(description: "exchange record lacks id, started or request") }
        self.id = id
        startedMillis = started
        timeMs = json["time_ms"]?.doubleValue ?? 0
        sendMs = json["timings"]?["send"]?.doubleValue ?? 0
        waitMs = json["timings"]?["wait"]?.doubleValue ?? 0
        receiveMs = json["timings"]?["receive"]?.doubleValue ?? 0
        clientIP = json["client_ip"]?.stringValue
        route = json["route"]?.stringValue
        eventType = json["event_type"]?.stringValue
        organizationID = json["organization_id"]?.stringValue
        clientID = json["client_id"]?.stringValue
        decidedBy = json["decision"]?["decided_by"]?.stringValue.flatMap(DecidedBy.init(rawValue:)) ?? .tenant
        outcome = json["decision"]?["outcome"]?.stringValue ?? "forwarded"
        tokenClaims = json["token_claims"]
        self.method = method
        scheme = request["scheme"]?.stringValue ?? "https"
        host = request["host"]?.stringValue
        self.target = target
        httpVersion = request["http_version"]?.stringValue ?? "HTTP/1.1"
        requestHeaders = Self.headers(request["headers"])
        requestBody = request["body"].map(Self.body(json:))
        if let response = json["response"], let status = response["status"]?.int64Value {
            self.status = Int(status)
            reason = response["reason"]?.stringValue
            responseHeaders = Self.headers(response["headers"])
            responseBody = response["body"].map(Self.body(json:))
        } else {
            responseHeaders = []
        }
    }

    private static func headers(_ value: JSONValue?) -> [(String, String)] {
        (value?.arrayValue ?? []).compactMap { pair in
            guard let p = pair.arrayValue, p.count == 2, let n = p[0].stringValue, let v = p[1].stringValue else {
                return nil
            }
            return (n, v)
        }
    }

    private static func body(json: JSONValue) -> Body {
        Body(
            size: Int(json["size"]?.int64Value ?? 0), mimeType: json["mime_type"]?.stringValue,
            text: json["text"]?.stringValue, truncated: json["truncated"]?.boolValue ?? false,
            binary: json["binary"]?.boolValue ?? false)
    }

    /// Parses recording lines, skipping blank lines, other kinds of lines and lines that do not parse.
    public static func read<Lines: Sequence>(lines: Lines) -> [ExchangeRecord] where Lines.Element: StringProtocol {
        readTallied(lines: lines).records
    }
}
