import Foundation
import GatewayCore

/// A request rebuilt from a recorded exchange, ready for the `replay` command to send to a target.
///
/// Recorded credentials are gone (redacted), so the caller supplies the `Authorization` value to use. Headers
/// whose value was redacted are left out, as are hop-by-hop and framing headers (the sender adds its own `Host`
/// and `Content-Length`). A body that was truncated, binary or redacted is sent as recorded, and flagged.
public struct ReplayRequest: Sendable, Equatable {
    public var id: String
    public var method: String
    /// Path and query as recorded (query values with secret names read `[REDACTED]`).
    public var target: String
    public var headers: HTTPFields
    public var body: [UInt8]
    /// True when the body is not the original: cut by the cap, binary (not kept) or redacted.
    public var bodyIncomplete: Bool
    /// The status the client saw when the exchange was recorded (nil: no response).
    public var recordedStatus: Int?
    public var recordedOutcome: String
    /// Milliseconds after the first replayed exchange, to replay with the original pacing.
    public var offsetMillis: Int64
}

/// How one replayed exchange compared with the recording.
public struct ReplayComparison: Sendable, Equatable {
    public var id: String
    public var method: String
    public var target: String
    public var recordedStatus: Int?
    public var replayedStatus: Int?
    public var matches: Bool { recordedStatus == replayedStatus }

    public init(request: ReplayRequest, replayedStatus: Int?) {
        id = request.id
        method = request.method
        target = request.target
        recordedStatus = request.recordedStatus
        self.replayedStatus = replayedStatus
    }
}

extension ExchangeRecord {
    private static let dropped: Set<String> = [
        "host", "content-length", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
        "upgrade", "trailer",
    ]

    /// This record as a request to send again; `authorization` (e.g. a fresh `Bearer` token) replaces the
    /// redacted one.
    public func replayRequest(authorization: String?, firstStartedMillis: Int64? = nil) -> ReplayRequest {
        var headers = HTTPFields()
        for (name, value) in requestHeaders
        where value != Redactor.marker && !Self.dropped.contains(name.asciiLowercased) {
            headers.add(name, value)
        }
        if let authorization { headers.set("Authorization", authorization) }
        let text = requestBody?.text ?? ""
        let incomplete =
            (requestBody?.truncated ?? false) || (requestBody?.binary ?? false) || text.contains(Redactor.marker)
        return ReplayRequest(
            id: id, method: method, target: target, headers: headers, body: Array(text.utf8),
            bodyIncomplete: incomplete, recordedStatus: status, recordedOutcome: outcome,
            offsetMillis: startedMillis - (firstStartedMillis ?? startedMillis))
    }

    /// Every exchange record of a recording as replay requests, in recorded order.
    public static func replayPlan<Lines: Sequence>(recordingLines: Lines, authorization: String?) -> [ReplayRequest]
    where Lines.Element: StringProtocol {
        replayPlan(records: read(lines: recordingLines), authorization: authorization)
    }

    /// `records` as replay requests, in recorded order.
    public static func replayPlan(records: [ExchangeRecord], authorization: String?) -> [ReplayRequest] {
        let records = records.sorted { $0.startedMillis < $1.startedMillis }
        let first = records.first?.startedMillis
        return records.map { $0.replayRequest(authorization: authorization, firstStartedMillis: first) }
    }
}

/// The `--target` of a replay: an absolute `http` or `https` URL with a host, optionally a port and a base path.
///
/// Validated before anything is sent, because curl would otherwise take `notaurl` for a host name and every
/// request would fail the same way. Credentials in the URL are refused: curl would send them as Basic
/// authentication next to the replay's own `Authorization`.
public struct ReplayTarget: Sendable, Equatable {
    /// `http` or `https`, lowercased.
    public var scheme: String
    /// Host (IPv6 literals keep their brackets) and port as given.
    public var authority: String
    /// The path every recorded target is appended to, without a trailing `/` (often empty).
    public var basePath: String

    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    public init(parsing text: String) throws(Invalid) {
        func invalid(_ why: String) -> Invalid {
            Invalid(description: "'\(text)' is not a usable target: \(why) (e.g. https://127.0.0.1:8443)")
        }
        guard !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value >= 0x7F }) else {
            throw invalid("it contains spaces, control or non-ASCII characters")
        }
        guard let separator = text.range(of: "://") else { throw invalid("expected an absolute http or https URL") }
        let scheme = String(text[..<separator.lowerBound]).asciiLowercased
        guard scheme == "http" || scheme == "https" else {
            throw invalid("the scheme must be http or https, not '\(text[..<separator.lowerBound])'")
        }
        let rest = text[separator.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        let path = rest[authorityEnd...]
        guard !path.contains("?"), !path.contains("#") else {
            throw invalid("a base URL takes no query or fragment; the recorded targets carry their own")
        }
        guard !authority.contains("@") else { throw invalid("credentials in the URL are not supported") }
        var host = authority
        var port: Substring? = nil
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw invalid("unclosed IPv6 literal") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw invalid("unexpected text after the IPv6 literal") }
                port = after.dropFirst()
            }
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw invalid("'\(host)' is not an IPv6 address")
            }
        } else {
            if let colon = authority.lastIndex(of: ":") {
                host = authority[..<colon]
                port = authority[authority.index(after: colon)...]
            }
            guard !host.isEmpty else { throw invalid("it has no host") }
            guard host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_" }) else {
                throw invalid("'\(host)' is not a host name or address")
            }
        }
        if let port {
            guard !port.isEmpty, port.count <= 5, port.allSatisfy(\.isNumber),
                let number = Int(port), (1...65535).contains(number)
            else { throw invalid("'\(port)' is not a port number (1-65535)") }
        }
        self.scheme = scheme
        self.authority = String(authority)
        var base = String(path)
        while base.hasSuffix("/") { base.removeLast() }
        basePath = base
    }

    /// The URL to send `target` (path and query as recorded) to.
    public func url(for target: String) -> String { "\(scheme)://\(authority)\(basePath)\(target)" }
}

/// What a target did with one replayed request.
public enum ReplayResult: Sendable, Equatable {
    /// An HTTP response head arrived with this status.
    case answered(status: Int)
    /// No HTTP answer; `reason` says why in a few words (`connection refused`, `timeout`, `TLS: …`).
    case failed(reason: String)

    /// What the progress line shows after the arrow.
    public var shortDescription: String {
        switch self {
        case .answered(let status): "\(status)"
        case .failed(let reason): reason
        }
    }
}

/// The replay's tally: status codes replayed against recorded, and why requests got no answer.
public struct ReplaySummary: Sendable {
    public private(set) var total = 0
    public private(set) var answered = 0
    /// Requests whose recording has a status and whose replay got the same one.
    public private(set) var matched = 0
    private var replayed: [Int: Int] = [:]
    private var recorded: [Int: Int] = [:]
    /// Recordings without a response (the client or upstream went away).
    private var recordedNoResponse = 0
    /// Replays without an HTTP answer.
    private var replayedNoAnswer: Int { total - answered }
    /// Failure reasons in order of first appearance, so the summary reads like the run did.
    public private(set) var failures: [(reason: String, count: Int)] = []

    public init() {}

    public mutating func add(_ request: ReplayRequest, _ result: ReplayResult) {
        total += 1
        switch result {
        case .answered(let status):
            answered += 1
            replayed[status, default: 0] += 1
            if ReplayComparison(request: request, replayedStatus: status).matches { matched += 1 }
        case .failed(let reason):
            if let index = failures.firstIndex(where: { $0.reason == reason }) {
                failures[index].count += 1
            } else {
                failures.append((reason, 1))
            }
        }
        if let status = request.recordedStatus {
            recorded[status, default: 0] += 1
        } else {
            recordedNoResponse += 1
        }
    }

    /// True when requests were sent and not one got an HTTP answer: the target is wrong or down.
    public var nothingAnswered: Bool { total > 0 && answered == 0 }

    /// The table and the closing lines, columns aligned whatever the counts' widths.
    public func rendered() -> String {
        var rows: [(String, Int, Int)] = Set(replayed.keys).union(recorded.keys).sorted().map {
            ("\($0)", replayed[$0, default: 0], recorded[$0, default: 0])
        }
        if replayedNoAnswer > 0 || recordedNoResponse > 0 {
            rows.append(("no answer", replayedNoAnswer, recordedNoResponse))
        }
        let header = ("status", "replayed", "recorded")
        let first = rows.map(\.0.count).reduce(header.0.count, max)
        let second = rows.map { String($0.1).count }.reduce(header.1.count, max)
        let third = rows.map { String($0.2).count }.reduce(header.2.count, max)
        func line(_ a: String, _ b: String, _ c: String) -> String {
            pad(a, first, left: true) + "  " + pad(b, second, left: false) + "  " + pad(c, third, left: false)
        }
        var out = line(header.0, header.1, header.2) + "\n"
        for row in rows { out += line(row.0, String(row.1), String(row.2)) + "\n" }
        out += "\n\(matched) of \(total) requests got the recorded status.\n"
        if !failures.isEmpty {
            out += "\(replayedNoAnswer) of \(total) requests got no HTTP answer:\n"
            let width = failures.map { String($0.count).count }.reduce(0, max)
            for (reason, count) in failures { out += "  " + pad(String(count), width, left: false) + "  \(reason)\n" }
        }
        return out
    }

    private func pad(_ s: String, _ width: Int, left: Bool) -> String {
        let fill = String(repeating: " ", count: max(0, width - s.count))
        return left ? s + fill : fill + s
    }
}
