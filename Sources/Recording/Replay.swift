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
        let records = read(lines: recordingLines).sorted { $0.startedMillis < $1.startedMillis }
        let first = records.first?.startedMillis
        return records.map { $0.replayRequest(authorization: authorization, firstStartedMillis: first) }
    }
}
