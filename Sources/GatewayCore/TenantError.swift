/// An error in the tenant's own problem-details shape, so a client needs one error path.
///
/// Every error the gateway writes carries `type`, `status`, `title` and `detail` (the official SDKs fail to
/// parse an error body without `detail`). The detail never contains a token, a secret or key material.
public struct TenantError: Error, Sendable, Equatable {
    public struct ValidationError: Sendable, Equatable {
        public var detail: String
        public var field: String?
        public var pointer: String?
        public var source: String?
        public init(detail: String, field: String? = nil, pointer: String? = nil, source: String? = "body") {
            self.detail = detail
            self.field = field
            self.pointer = pointer
            self.source = source
        }
    }

    public var status: Int
    /// The A0E code, e.g. `A0E-401-0002`.
    public var code: String
    public var title: String
    public var detail: String
    public var validationErrors: [ValidationError]
    /// Extra response headers (WWW-Authenticate, Retry-After, rate-limit headers).
    public var headers: HTTPFields

    public init(
        status: Int,
        code: String,
        title: String,
        detail: String,
        validationErrors: [ValidationError] = [],
        headers: HTTPFields = HTTPFields()
    ) {
        self.status = status
        self.code = code
        self.title = title
        self.detail = TenantError.bounded(detail)
        self.validationErrors = validationErrors
        self.headers = headers
    }

    /// Most characters of a `detail`: details quote client-supplied values (an Origin, an org_id), which the
    /// header limits bound only loosely, and every refusal is also logged.
    public static let maxDetailCharacters = 512

    static func bounded(_ detail: String) -> String {
        guard detail.utf8.count > maxDetailCharacters else { return detail }
        return String(detail.prefix(maxDetailCharacters - 1)) + "…"
    }

    public var type: String { "https://auth0.com/api-errors#\(code)" }

    public var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("type", .string(type)),
            ("status", .number(Double(status))),
            ("title", .string(title)),
            ("detail", .string(detail)),
        ]
        if !validationErrors.isEmpty {
            members.append(
                (
                    "validation_errors",
                    .array(
                        validationErrors.map { v in
                            var m: [(String, JSONValue)] = [("detail", .string(v.detail))]
                            if let f = v.field { m.append(("field", .string(f))) }
                            if let p = v.pointer { m.append(("pointer", .string(p))) }
                            if let s = v.source { m.append(("source", .string(s))) }
                            return .object(m)
                        }
                    )
                )
            )
        }
        return .object(members)
    }

    /// The complete response: JSON body, `Content-Type`, `Cache-Control: no-store` and the extra headers.
    ///
    /// The type is `application/json` exactly, as the reference declares it: JSON is UTF-8 by definition and the
    /// media type defines no `charset` parameter (RFC 8259 §11).
    public var response: Response {
        var headers = self.headers
        headers.set("Content-Type", "application/json")
        headers.set("Cache-Control", "no-store")
        return Response(status: status, headers: headers, body: body)
    }

    /// The bytes of `json`, written straight from the fields rather than through a tree of values.
    public var body: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(96 + code.utf8.count + title.utf8.count + detail.utf8.count)
        out.append(contentsOf: #"{"type":"#.utf8)
        JSONValue.writeString(type, to: &out)
        out.append(contentsOf: #","status":"#.utf8)
        JSONValue.writeInteger(Int64(status), to: &out)
        out.append(contentsOf: #","title":"#.utf8)
        JSONValue.writeString(title, to: &out)
        out.append(contentsOf: #","detail":"#.utf8)
        JSONValue.writeString(detail, to: &out)
        if !validationErrors.isEmpty {
            out.append(contentsOf: #","validation_errors":["#.utf8)
            for (i, v) in validationErrors.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: #"{"detail":"#.utf8)
                JSONValue.writeString(v.detail, to: &out)
                for (name, value) in [("field", v.field), ("pointer", v.pointer), ("source", v.source)] {
                    guard let value else { continue }
                    out.append(contentsOf: #",""#.utf8)
                    out.append(contentsOf: name.utf8)
                    out.append(contentsOf: #"":"#.utf8)
                    JSONValue.writeString(value, to: &out)
                }
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }
}

// MARK: - The errors of the reference (endpoints.md, "Error bodies")

extension TenantError {
    public static func badRequest(_ detail: String) -> TenantError {
        TenantError(status: 400, code: "A0E-400-0001", title: "Bad Request", detail: detail)
    }

    public static func validation(_ detail: String, errors: [ValidationError] = []) -> TenantError {
        TenantError(
            status: 400, code: "A0E-400-0003", title: "Validation Error", detail: detail, validationErrors: errors)
    }

    public static func unauthorized(_ detail: String, code: String = "A0E-401-0001", wwwAuthenticate: String)
        -> TenantError
    {
        TenantError(
            status: 401, code: code, title: "Unauthorized", detail: detail,
            headers: HTTPFields([("WWW-Authenticate", wwwAuthenticate)]))
    }

    /// 421: the request reached a connection or listener that does not serve its host (RFC 9110 §15.5.20).
    public static func misdirected(_ detail: String) -> TenantError {
        TenantError(status: 421, code: "A0E-421-0001", title: "Misdirected Request", detail: detail)
    }

    public static func missingToken(
        _ detail: String = "An access token is required: send it as 'Authorization: Bearer <token>'."
    )
        -> TenantError
    {
        TenantError(
            status: 401, code: "A0E-401-0002", title: "Missing Token", detail: detail,
            headers: HTTPFields([("WWW-Authenticate", "Bearer realm=\"my-org\"")]))
    }

    /// `detail` names what is missing; the challenge's `scope` names every scope the endpoint requires (RFC 6750
    /// §3: "the required scope of the access token for accessing the requested resource"), which is what the
    /// client must ask for, when `required` is given.
    public static func insufficientScope(missing: [String], required: [String]? = nil) -> TenantError {
        let list = missing.joined(separator: " ")
        let scope = (required ?? missing).joined(separator: " ")
        return TenantError(
            status: 403, code: "A0E-403-0002", title: "Insufficient Scope",
            detail: "The access token lacks the scope(s) this endpoint requires: \(list).",
            headers: HTTPFields([
                ("WWW-Authenticate", "Bearer error=\"insufficient_scope\", scope=\"\(scope)\"")
            ]))
    }

    public static func forbidden(_ detail: String) -> TenantError {
        TenantError(status: 403, code: "A0E-403-0001", title: "Forbidden", detail: detail)
    }

    public static func notFound(_ detail: String) -> TenantError {
        TenantError(status: 404, code: "A0E-404-0002", title: "Resource Not Found", detail: detail)
    }

    public static func methodNotAllowed(_ detail: String, allow: [String]) -> TenantError {
        TenantError(
            status: 405, code: "A0E-405-0001", title: "Method Not Allowed", detail: detail,
            headers: HTTPFields([("Allow", allow.joined(separator: ", "))]))
    }

    public static func configurationIssue(_ detail: String) -> TenantError {
        TenantError(status: 409, code: "A0E-409-0001", title: "Configuration issue", detail: detail)
    }

    public static func duplicate(_ detail: String) -> TenantError {
        TenantError(status: 409, code: "A0E-409-0003", title: "Duplicate Resource", detail: detail)
    }

    public static func rateLimited(_ detail: String, headers: HTTPFields) -> TenantError {
        TenantError(
            status: 429, code: "A0E-429-0003", title: "Endpoint Rate Limit Exceeded", detail: detail, headers: headers)
    }

    public static func gateway(status: Int, detail: String) -> TenantError {
        TenantError(status: status, code: "A0E-\(status)-0001", title: HTTPStatus.reason(status), detail: detail)
    }
}
