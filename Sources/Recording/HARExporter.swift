import GatewayCore

/// Turns traffic-recording lines (``ExchangeRecord``) into a HAR 1.2 document.
///
/// Every entry carries the required HAR fields: `startedDateTime`, `time`, `request` (method, url, httpVersion,
/// cookies, headers, queryString, headersSize, bodySize, postData when there is a body), `response` (status,
/// statusText, httpVersion, cookies, headers, content{size, mimeType, text}, redirectURL, headersSize, bodySize),
/// `cache` and `timings` (send, wait, receive; blocked, dns, connect, ssl as -1: not measured). Cookies stay
/// empty because `Cookie` and `Set-Cookie` are redacted. Gateway-specific facts go in `_`-prefixed fields, as HAR
/// allows. Exchanges without a response get status 0, as browsers export failed requests.
public enum HARExporter {
    public static func export<Lines: Sequence>(recordingLines: Lines, creatorVersion: String = "1.0") -> JSONValue
    where Lines.Element: StringProtocol {
        export(records: ExchangeRecord.read(lines: recordingLines), creatorVersion: creatorVersion)
    }

    /// The HAR as JSON text.
    public static func exportString<Lines: Sequence>(recordingLines: Lines, creatorVersion: String = "1.0") -> String
    where Lines.Element: StringProtocol {
        export(recordingLines: recordingLines, creatorVersion: creatorVersion).serialized()
    }

    public static func export(records: [ExchangeRecord], creatorVersion: String = "1.0") -> JSONValue {
        let entries = records.sorted { $0.startedMillis < $1.startedMillis }.map(entry)
        return [
            "log": .object([
                ("version", "1.2"),
                ("creator", .object([("name", "myorg-gateway"), ("version", .string(creatorVersion))])),
                ("pages", []),
                ("entries", .array(entries)),
            ])
        ]
    }

    static func entry(_ r: ExchangeRecord) -> JSONValue {
        let version = harVersion(r.httpVersion)
        let url = r.scheme + "://" + (r.host ?? "localhost") + r.target
        var request: [(String, JSONValue)] = [
            ("method", .string(r.method)),
            ("url", .string(url)),
            ("httpVersion", .string(version)),
            ("cookies", []),
            ("headers", headers(r.requestHeaders)),
            (
                "queryString",
                .array(queryString(r.target).map { .object([("name", .string($0)), ("value", .string($1))]) })
            ),
            ("headersSize", -1),
            ("bodySize", .number(Double(r.requestBody?.size ?? 0))),
        ]
        if let body = r.requestBody {
            request.append(
                (
                    "postData",
                    // HAR 1.2: `text` and `params` are mutually exclusive; the API takes JSON, kept as text.
                    .object([("mimeType", .string(body.mimeType ?? "")), ("text", .string(body.text ?? ""))])
                ))
        }
        var content: [(String, JSONValue)] = [
            ("size", .number(Double(r.responseBody?.size ?? 0))),
            ("mimeType", .string(r.responseBody?.mimeType ?? header("Content-Type", in: r.responseHeaders) ?? "")),
        ]
        if let text = r.responseBody?.text { content.append(("text", .string(text))) }
        let response: JSONValue = .object([
            ("status", .number(Double(r.status ?? 0))),
            ("statusText", .string(r.reason ?? "")),
            ("httpVersion", .string(r.status == nil ? "" : version)),
            ("cookies", []),
            ("headers", headers(r.responseHeaders)),
            ("content", .object(content)),
            ("redirectURL", .string(header("Location", in: r.responseHeaders) ?? "")),
            ("headersSize", -1),
            ("bodySize", .number(Double(r.status == nil ? -1 : (r.responseBody?.size ?? 0)))),
        ])
        var e: [(String, JSONValue)] = [
            ("startedDateTime", .string(Timestamp.iso8601(millis: r.startedMillis))),
            ("time", .number(max(0, r.timeMs))),
            ("request", .object(request)),
            ("response", response),
            ("cache", [:]),
            (
                "timings",
                .object([
                    ("blocked", -1), ("dns", -1), ("connect", -1), ("ssl", -1), ("send", .number(max(0, r.sendMs))),
                    ("wait", .number(max(0, r.waitMs))), ("receive", .number(max(0, r.receiveMs))),
                ])
            ),
            ("_id", .string(r.id)),
            ("_decidedBy", .string(r.decidedBy.rawValue)),
            ("_outcome", .string(r.outcome)),
        ]
        if let org = r.organizationID { e.append(("_organizationId", .string(org))) }
        if let client = r.clientID { e.append(("_clientId", .string(client))) }
        if let route = r.route { e.append(("_route", .string(route))) }
        return .object(e)
    }

    private static func harVersion(_ v: String) -> String { v == "HTTP/2" ? "HTTP/2.0" : v }

    private static func headers(_ pairs: [(String, String)]) -> JSONValue {
        .array(pairs.map { .object([("name", .string($0.0)), ("value", .string(ObsText.latin1Text($0.1)))]) })
    }

    private static func header(_ name: String, in pairs: [(String, String)]) -> String? {
        pairs.first { $0.0.asciiCaseInsensitiveEquals(name) }?.1
    }

    /// Name/value pairs of the target's query, percent-decoded (`+` as space), as HAR wants them.
    static func queryString(_ target: String) -> [(String, String)] {
        guard let q = target.firstIndex(of: "?") else { return [] }
        return target[target.index(after: q)...].split(separator: "&").map { pair in
            if let eq = pair.firstIndex(of: "=") {
                return (percentDecode(pair[..<eq]), percentDecode(pair[pair.index(after: eq)...]))
            }
            return (percentDecode(pair), "")
        }
    }

    static func percentDecode(_ s: Substring) -> String {
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "%"), i + 2 < b.count,
                let v = UInt8(String(decoding: b[(i + 1)...(i + 2)], as: UTF8.self), radix: 16)
            {
                out.append(v)
                i += 3
            } else {
                out.append(b[i] == UInt8(ascii: "+") ? 0x20 : b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
