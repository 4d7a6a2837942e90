import GatewayCore

/// Who made the final decision about a request: the gateway refused it itself, or the tenant answered.
public enum DecidedBy: String, Sendable, Equatable {
    case gateway
    case tenant
}

/// One log event in the shape of Auth0's tenant logs (the My Account API events' layout, the closest published
/// sibling of the My Organization API's events).
///
/// The JSON it builds (``json``):
/// ```
/// { "log_id", "date", "type", "description", "tenant_name", "environment_name", "hostname", "ip", "user_agent",
///   "is_mobile", "client_id",
///   "user_id", "organization_id", "organization_name", "audience", "scope", "auth0_client": {…},
///   "references": { "correlation_id", "trace_id" },
///   "details": { "operation", "request": { "method", "path" }, "response": { "status" },
///                "error": { "type", "title", "status", "detail" }, "decided_by": "gateway"|"tenant",
///                "duration_ms", "reason" } }
/// ```
/// Absent optionals are omitted, not written as null. `details.request.path` never carries the query.
/// `details.reason` is the gateway's own refusal reason (e.g. `rate_limit_organization`), an extension of ours.
/// Nothing here carries an Authorization header, a token or a secret: only values the caller extracted.
public struct LogEvent: Sendable, Equatable {
    /// The problem-details error of a failed call, as the client received it.
    public struct ErrorInfo: Sendable, Equatable {
        public var type: String
        public var title: String
        public var status: Int
        public var detail: String

        public init(type: String, title: String, status: Int, detail: String) {
            self.type = type
            self.title = title
            self.status = status
            self.detail = detail
        }

        public init(_ error: TenantError) {
            self.init(type: error.type, title: error.title, status: error.status, detail: error.detail)
        }

        /// The error an upstream answered with, read from its problem body (RFC 9457, as the tenant writes them);
        /// nil when the body is not a JSON object naming at least a type, title or detail. `status` stands in
        /// for a missing or malformed `status` member.
        ///
        /// The texts come from outside the gateway and may echo what the request carried (a header, a token): each
        /// goes through the recorder's free-text redaction and is cut at `maxTextBytes`, like any logged text.
        public init?(problemBody bytes: [UInt8], status: Int) {
            guard let body = try? JSONValue.parse(bytes), body.objectValue != nil else { return nil }
            let redactor = Redactor()
            func text(_ name: String) -> String? {
                // Decoded, not `String(_:)` of the cut bytes: a cut inside a multi-byte character makes that nil.
                body[name]?.stringValue.map {
                    redactor.redact(text: String(decoding: $0.utf8.prefix(Self.maxTextBytes), as: UTF8.self))
                }
            }
            let type = text("type")
            let title = text("title")
            let detail = text("detail")
            guard type != nil || title != nil || detail != nil else { return nil }
            let stated = body["status"]?.int64Value.flatMap { (100...599).contains($0) ? Int($0) : nil }
            self.init(type: type ?? "", title: title ?? "", status: stated ?? status, detail: detail ?? "")
        }

        /// The most of an upstream's problem text an event keeps.
        static let maxTextBytes = 1024
    }

    public var logID: String
    /// Milliseconds since the Unix epoch; written as ISO 8601 UTC with milliseconds.
    public var dateMillis: Int64
    /// The event code, e.g. `my_organization_api_idp_succeeded`; chosen by the caller (Policy's classification).
    public var type: String
    public var description: String
    public var tenantName: String?
    /// The tenant's environment tag (`development`, `staging`, `production`), when the configuration names it.
    public var environmentName: String?
    /// The host the client used (Host or :authority, port removed, lowercased).
    public var hostname: String?
    public var ip: String?
    public var userAgent: String?
    /// Whether the User-Agent names a phone or tablet (``RequestFacts/isMobile(userAgent:)``); false without one.
    public var isMobile: Bool?
    public var clientID: String?
    /// The client's name, when the gateway's configuration gives one (`clients[].name`).
    public var clientName: String?
    public var userID: String?
    public var organizationID: String?
    /// The token's `org_name`, when the tenant includes it.
    public var organizationName: String?
    public var audience: String?
    public var scope: String?
    /// The decoded `Auth0-Client` header (a JSON object), already redacted.
    public var auth0Client: JSONValue?
    public var correlationID: String?
    public var traceID: String?

    public var operation: String?
    public var method: String?
    public var path: String?
    public var status: Int?
    public var error: ErrorInfo?
    public var decidedBy: DecidedBy?
    public var durationMs: Double?
    public var reason: String?

    public init(logID: String, dateMillis: Int64, type: String, description: String) {
        self.logID = logID
        self.dateMillis = dateMillis
        self.type = type
        self.description = description
    }

    /// Fills hostname, user agent, `auth0_client`, references, method and path from the request head.
    /// The Authorization header is never read here.
    public mutating func apply(request: RequestHead, redactor: Redactor = Redactor()) {
        apply(request: request, hostname: nil, redactor: redactor)
    }

    /// The same, with the hostname already known (then the request's own is not worked out).
    public mutating func apply(request: RequestHead, hostname known: String?, redactor: Redactor) {
        apply(request: request, hostname: known) { redactor }
    }

    /// The same with the default ``Redactor``, made only when an `Auth0-Client` header needs it.
    public mutating func apply(request: RequestHead, hostname known: String?) {
        apply(request: request, hostname: known) { Redactor() }
    }

    private mutating func apply(request: RequestHead, hostname known: String?, redactor: () -> Redactor) {
        method = request.method
        path = Redactor.redact(path: String(request.path))
        hostname = known ?? RequestFacts.hostname(request)
        // One pass over the fields for the four this reads; each takes its name's first value, as the subscript does.
        var agent: String?
        var client: String?
        var requestID: String?
        var traceparent: String?
        for field in request.headers {
            let name = field.name
            switch name.utf8.count {
            case 10:
                if agent == nil, name.asciiCaseInsensitiveEquals(literal: "User-Agent") { agent = field.value }
            case 11:
                if traceparent == nil, name.asciiCaseInsensitiveEquals(literal: "traceparent") {
                    traceparent = field.value
                }
            case 12:
                if client == nil, name.asciiCaseInsensitiveEquals(literal: "Auth0-Client") {
                    client = field.value
                } else if requestID == nil, name.asciiCaseInsensitiveEquals(literal: "X-Request-Id") {
                    requestID = field.value
                }
            default: break
            }
        }
        userAgent = agent.map { RequestFacts.clean($0, max: 512) }
        isMobile = userAgent.map(RequestFacts.isMobile(userAgent:)) ?? false
        auth0Client = client.flatMap(RequestFacts.decodeAuth0Client).map { redactor().redact(json: $0) }
        correlationID = RequestFacts.correlationID(requestID: requestID)
        traceID = traceparent.flatMap(RequestFacts.traceID)
    }

    /// Fills client, user, organization, audience and scope from a verified token's claims.
    ///
    /// Both token dialects: Auth0's (`azp`) and RFC 9068's (`client_id`). `user_id` is left out for
    /// client-credentials tokens (`gty` of `client-credentials` or a `sub` ending in `@clients`).
    public mutating func apply(claims: JSONValue) {
        clientID = claims["azp"]?.stringValue ?? claims["client_id"]?.stringValue
        if let sub = claims["sub"]?.stringValue {
            let machine = claims["gty"]?.stringValue == "client-credentials" || sub.hasSuffix("@clients")
            if !machine { userID = sub }
        }
        organizationID = claims["org_id"]?.stringValue
        organizationName = claims["org_name"]?.stringValue
        scope = claims["scope"]?.stringValue
        switch claims["aud"] {
        case .string(let s)?: audience = s
        case .array(let items)?:
            let strings = items.compactMap(\.stringValue)
            audience = strings.first { $0.hasSuffix("/my-org/") } ?? strings.first
        default: break
        }
    }

    public var json: JSONValue {
        var m: [(String, JSONValue)] = [
            ("log_id", .string(logID)),
            ("date", .string(Timestamp.iso8601(millis: dateMillis))),
            ("type", .string(type)),
            ("description", .string(description)),
        ]
        func add(_ name: String, _ value: String?) { if let value { m.append((name, .string(value))) } }
        add("tenant_name", tenantName)
        add("environment_name", environmentName)
        add("hostname", hostname)
        add("ip", ip)
        add("user_agent", userAgent)
        if let isMobile { m.append(("is_mobile", .bool(isMobile))) }
        add("client_id", clientID)
        add("client_name", clientName)
        add("user_id", userID)
        add("organization_id", organizationID)
        add("organization_name", organizationName)
        add("audience", audience)
        add("scope", scope)
        if let auth0Client { m.append(("auth0_client", auth0Client)) }
        var refs: [(String, JSONValue)] = []
        if let correlationID { refs.append(("correlation_id", .string(correlationID))) }
        if let traceID { refs.append(("trace_id", .string(traceID))) }
        if !refs.isEmpty { m.append(("references", .object(refs))) }

        var d: [(String, JSONValue)] = []
        if let operation { d.append(("operation", .string(operation))) }
        var req: [(String, JSONValue)] = []
        if let method { req.append(("method", .string(method))) }
        if let path { req.append(("path", .string(path))) }
        if !req.isEmpty { d.append(("request", .object(req))) }
        if let status { d.append(("response", .object([("status", .number(Double(status)))]))) }
        if let error {
            d.append(
                (
                    "error",
                    .object([
                        ("type", .string(error.type)), ("title", .string(error.title)),
                        ("status", .number(Double(error.status))), ("detail", .string(error.detail)),
                    ])
                ))
        }
        if let decidedBy { d.append(("decided_by", .string(decidedBy.rawValue))) }
        if let durationMs { d.append(("duration_ms", .number(RequestFacts.round3(durationMs)))) }
        if let reason { d.append(("reason", .string(reason))) }
        m.append(("details", .object(d)))
        return .object(m)
    }
}

extension LogEvent {
    /// Writes the same text as `json.serialized()`, straight into `out`.
    public func write(to out: inout JSONByteWriter) { write(to: &out, logID: nil) }

    /// The same, with the `log_id` given as its parts instead of ``logID`` (which is then not read): the id needs
    /// no `String` of its own.
    public func write(to out: inout JSONByteWriter, logID id: LogID?) {
        out.beginObject()
        if let id {
            out.key("log_id")
            out.logID(id)
        } else {
            out.member("log_id", logID)
        }
        out.key("date")
        out.timestamp(millis: dateMillis)
        out.member("type", type)
        out.member("description", description)
        out.member("tenant_name", tenantName)
        out.member("environment_name", environmentName)
        out.member("hostname", hostname)
        out.member("ip", ip)
        out.member("user_agent", userAgent)
        if let isMobile {
            out.key("is_mobile")
            out.bool(isMobile)
        }
        out.member("client_id", clientID)
        out.member("client_name", clientName)
        out.member("user_id", userID)
        out.member("organization_id", organizationID)
        out.member("organization_name", organizationName)
        out.member("audience", audience)
        out.member("scope", scope)
        if let auth0Client {
            out.key("auth0_client")
            out.value(auth0Client)
        }
        if correlationID != nil || traceID != nil {
            out.key("references")
            out.beginObject()
            out.member("correlation_id", correlationID)
            out.member("trace_id", traceID)
            out.endObject()
        }
        out.key("details")
        out.beginObject()
        out.member("operation", operation)
        if method != nil || path != nil {
            out.key("request")
            out.beginObject()
            out.member("method", method)
            out.member("path", path)
            out.endObject()
        }
        if let status {
            out.key("response")
            out.beginObject()
            out.key("status")
            out.number(status)
            out.endObject()
        }
        if let error {
            out.key("error")
            out.beginObject()
            out.member("type", error.type)
            out.member("title", error.title)
            out.key("status")
            out.number(error.status)
            out.member("detail", error.detail)
            out.endObject()
        }
        out.member("decided_by", decidedBy?.rawValue)
        if let durationMs {
            out.key("duration_ms")
            out.number(RequestFacts.round3(durationMs))
        }
        out.member("reason", reason)
        out.endObject()
        out.endObject()
    }
}

/// Small, pure extractions from a request head shared by log events, access lines and exchange records.
public enum RequestFacts {
    /// Whether a User-Agent names a phone or tablet: the tokens browsers put there for one (`Mobi`, which Mozilla
    /// recommends for detecting mobile browsers, and the platforms that omit it: `Android`, `iPhone`, `iPad`,
    /// `iPod`), matched without regard to case. Auth0's events derive `is_mobile` from the User-Agent the same way;
    /// its exact rules are not published.
    public static func isMobile(userAgent: String) -> Bool {
        userAgent.asciiCaseInsensitiveContains(lowercase: "mobi")
            || userAgent.asciiCaseInsensitiveContains(lowercase: "android")
            || userAgent.asciiCaseInsensitiveContains(lowercase: "iphone")
            || userAgent.asciiCaseInsensitiveContains(lowercase: "ipad")
            || userAgent.asciiCaseInsensitiveContains(lowercase: "ipod")
    }

    /// The host the client used: authority (or Host), port removed, lowercased; nil when absent.
    public static func hostname(_ request: RequestHead) -> String? {
        guard let raw = request.authority ?? request.headers[literal: "Host"], !raw.isEmpty else { return nil }
        if let plain = plainHostname(raw) { return plain }
        var host = Substring(raw)
        if host.hasPrefix("[") {
            if let end = host.firstIndex(of: "]") { host = host[...end] }
        } else if let colon = host.lastIndex(of: ":") {
            host = host[..<colon]
        }
        return clean(String(host).asciiLowercased, max: 255)
    }

    /// The common case of ``hostname(_:)`` without copies: no brackets, no uppercase, no control bytes, short.
    /// Nil means "take the general path", not "no hostname".
    static func plainHostname(_ raw: String) -> String? {
        var raw = raw
        let end: Int? = raw.withUTF8 { bytes in
            guard bytes.count < 255, bytes[0] != UInt8(ascii: "[") else { return nil }
            var colon = -1
            for (i, b) in bytes.enumerated() {
                if b < 0x20 || b == 0x7F || (b >= 0x41 && b <= 0x5A) { return nil }
                if b == UInt8(ascii: ":") { colon = i }
            }
            return colon < 0 ? bytes.count : colon
        }
        guard let end else { return nil }
        if end == raw.utf8.count { return raw }
        return String(raw.utf8.prefix(end))
    }

    /// `X-Request-Id`, if it is a sane identifier (printable ASCII, at most 128 characters).
    public static func correlationID(_ headers: HTTPFields) -> String? {
        correlationID(requestID: headers[literal: "X-Request-Id"])
    }

    /// The same check of an `X-Request-Id` value already looked up.
    public static func correlationID(requestID: String?) -> String? {
        guard let v = requestID, !v.isEmpty, v.utf8.count <= 128,
            v.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { return nil }
        return v
    }

    /// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`); nil when malformed or all zeros.
    public static func traceID(_ traceparent: String) -> String? {
        let parts = traceparent.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].utf8.count == 2, parts[0] != "ff", parts[1].utf8.count == 32,
            parts[2].utf8.count == 16, parts[3].utf8.count == 2
        else { return nil }
        let hex = parts[1].utf8
        guard hex.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }),
            !hex.allSatisfy({ $0 == 0x30 })
        else { return nil }
        return String(parts[1])
    }

    /// The `Auth0-Client` header: base64 (standard, padded; the URL-safe alphabet is tolerated) of a JSON object.
    /// Anything else gives nil, so undecodable values are omitted rather than logged raw.
    public static func decodeAuth0Client(_ header: String) -> JSONValue? {
        guard header.utf8.count <= 4096, let bytes = Base64.decode(header.trimmingASCIISpaces()),
            let value = try? JSONValue.parse(bytes, maxDepth: 8), case .object = value
        else { return nil }
        return value
    }

    /// Control characters dropped and length capped, so a header cannot forge log lines.
    public static func clean(_ s: String, max: Int) -> String {
        // Almost every value is already clean and short: return it as is (same result, no copy).
        let plain =
            s.utf8.withContiguousStorageIfAvailable { bytes in
                guard bytes.count < max else { return false }
                for b in bytes where b < 0x20 || b == 0x7F { return false }
                return true
            } ?? (s.utf8.count < max && s.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }))
        if plain { return s }
        var out = ""
        for scalar in s.unicodeScalars where scalar.value >= 0x20 && scalar.value != 0x7F {
            out.unicodeScalars.append(scalar)
            if out.utf8.count >= max { break }
        }
        return out
    }

    static func round3(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
}

extension String {
    func trimmingASCIISpaces() -> Substring {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
