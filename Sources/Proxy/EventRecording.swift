import GatewayCore
import Logging
import Policy
import Recording

/// Turns finished exchanges into log events (the API's event codes), access-log lines and request metrics.
///
/// Called on an event loop; never blocks: events are built on the log pipeline's writer thread (`deferred`).
final class ExchangeRecorder: Sendable {
    let events: LogPipeline?
    let accessLog: LogPipeline?
    let tenantName: String
    let metrics: GatewayMetrics
    let ids: LogIDGenerator
    /// Opt-in traffic recording and its own pipeline (a separate file from the events).
    let traffic: TrafficRecorder?
    let trafficPipeline: LogPipeline?

    init(
        events: LogPipeline?, accessLog: LogPipeline?, tenantName: String, metrics: GatewayMetrics,
        clock: any WallClock, traffic: TrafficRecorder? = nil, trafficPipeline: LogPipeline? = nil
    ) {
        self.traffic = traffic
        self.trafficPipeline = trafficPipeline
        self.events = events
        self.accessLog = accessLog
        self.tenantName = tenantName
        self.metrics = metrics
        self.ids = LogIDGenerator(clock: clock)
    }

    func record(_ summary: ExchangeSummary) {
        let decidedBy: DecidedBy = summary.upstreamStatus != nil ? .tenant : .gateway
        metrics.request(
            route: summary.routeName ?? (summary.target.hasPrefix("/my-org") ? "unknown" : "other"),
            status: summary.status, decision: summary.decision,
            seconds: Double(summary.durationNanos) / 1e9,
            upstreamSeconds: summary.upstreamNanos.map { Double($0) / 1e9 })
        if let kind = summary.rateLimitedBy, summary.status == 429 {
            metrics.rateLimitRefusal(kind: kind, tier: summary.tier ?? "unknown")
        }
        if let accessLog {
            accessLog.record(deferred: {
                let head = RequestHead(
                    method: summary.method, target: summary.target, version: summary.protocolVersion,
                    headers: summary.headers, authority: summary.authority)
                var line = AccessLogLine(
                    timeMillis: summary.startNanos / 1_000_000, request: head, status: summary.status,
                    bytes: summary.bytesOut, durationMs: Double(summary.durationNanos) / 1e6,
                    decision: summary.decision,
                    decidedBy: decidedBy, organizationID: summary.organizationID, clientID: summary.clientID,
                    ip: summary.peerAddress)
                line.requestID = line.requestID ?? summary.requestID
                return line.json
            })
        }
        if let traffic, let response = summary.responseHead {
            let head = RequestHead(
                method: summary.method, target: summary.target, version: summary.protocolVersion,
                headers: summary.headers, authority: summary.authority)
            let totalMs = Double(summary.durationNanos) / 1e6
            let waitMs =
                summary.responseHeadNanos > 0 ? Double(summary.responseHeadNanos - summary.startNanos) / 1e6 : 0
            traffic.record(
                CapturedExchange(
                    request: head, requestBody: summary.requestBody ?? [], response: response,
                    responseBody: summary.responseBody, responseBodySize: summary.responseSize,
                    startedMillis: summary.startNanos / 1_000_000,
                    timings: .init(sendMs: 0, waitMs: waitMs, receiveMs: max(0, totalMs - waitMs), totalMs: totalMs),
                    clientIP: summary.peerAddress, decidedBy: decidedBy, decision: summary.decision,
                    route: summary.routeName, eventType: nil, organizationID: summary.organizationID,
                    clientID: summary.clientID))
        }
        guard let events, summary.decision != "preflight",
            let type = EventClassifier.classify(
                resource: summary.logResource,
                outcome: EventOutcome(status: summary.status, decidedBy: decidedBy == .tenant ? .tenant : .gateway))
        else { return }
        let logID = ids.next()
        let tenantName = self.tenantName
        events.record(deferred: {
            var event = LogEvent(
                logID: logID, dateMillis: summary.startNanos / 1_000_000, type: type.code,
                description: type.description)
            let head = RequestHead(
                method: summary.method, target: summary.target, version: summary.protocolVersion,
                headers: summary.headers, authority: summary.authority)
            event.apply(request: head)
            event.tenantName = tenantName
            event.hostname = summary.hostname ?? event.hostname
            event.ip = summary.peerAddress
            event.clientID = summary.clientID
            event.userID = summary.userID
            event.organizationID = summary.organizationID
            event.audience = summary.audience
            event.scope = summary.scope
            event.operation = summary.operation
            event.status = summary.status
            event.correlationID = event.correlationID ?? summary.requestID
            if let error = summary.error { event.error = LogEvent.ErrorInfo(error) }
            event.decidedBy = decidedBy
            event.durationMs = Double(summary.durationNanos) / 1e6
            event.reason = summary.decision
            return event.json
        })
    }

    func shutdown(timeoutMs: Int) {
        _ = events?.shutdown(timeout: .milliseconds(timeoutMs))
        _ = accessLog?.shutdown(timeout: .milliseconds(timeoutMs))
        _ = trafficPipeline?.shutdown(timeout: .milliseconds(timeoutMs))
    }

    /// Builds the pipelines from the configuration's `logging` section.
    static func make(
        config: GatewayConfig, metrics: GatewayMetrics, clock: any WallClock, logger: Logger,
        secret: (GatewayConfig.SecretSource) -> String?
    ) throws -> ExchangeRecorder {
        var sinks: [SinkSettings] = []
        for sink in config.logging.sinks {
            switch sink {
            case .stdout:
                sinks.append(.stdout(StdoutSinkSettings()))
            case .file(let file):
                let fsync: FsyncPolicy
                switch file.fsync {
                case .always: fsync = .always
                case .interval: fsync = .interval(seconds: 1)
                case .never: fsync = .never
                }
                sinks.append(.file(FileSinkSettings(path: file.path.path, maxBytes: file.maxBytes, fsync: fsync)))
            case .webhook(let hook):
                let format: WebhookFormat
                switch hook.format {
                case .jsonLines: format = .jsonLines
                case .jsonArray: format = .jsonArray
                case .jsonObject: format = .jsonObject
                }
                sinks.append(
                    .webhook(
                        WebhookSinkSettings(
                            url: hook.url.text, authorization: hook.authorization.flatMap(secret),
                            headers: HTTPFields(),
                            format: format, batchSize: hook.batchSize,
                            batchInterval: Double(hook.intervalMs) / 1000)))
            }
        }
        let spoolDirectory = config.baseDirectory + "/.myorg-gateway-spool"
        let events =
            sinks.isEmpty
            ? nil
            : try LogPipeline(
                settings: LogPipelineSettings(sinks: sinks, spool: SpoolSettings(directory: spoolDirectory)),
                logger: logger)
        let access =
            config.logging.accessLog
            ? try LogPipeline(
                settings: LogPipelineSettings(sinks: [.stdout(StdoutSinkSettings(name: "access-log"))]), logger: logger)
            : nil
        var traffic: TrafficRecorder? = nil
        var trafficPipeline: LogPipeline? = nil
        let recording = config.recording
        if recording.enabled {
            let pipeline = try LogPipeline(
                settings: LogPipelineSettings(
                    sinks: [.file(FileSinkSettings(path: recording.path.path, name: "recording"))]),
                logger: logger)
            trafficPipeline = pipeline
            traffic = TrafficRecorder(
                settings: TrafficRecordingSettings(
                    enabled: true, routes: recording.operations, organizations: recording.organizations,
                    sampleRate: recording.sampleRate, bodyCap: recording.maxBodyBytes,
                    redactHeaders: recording.redactHeaders, redactJSONPointers: recording.redactJSONPointers),
                recorder: pipeline, ids: LogIDGenerator(clock: clock))
        }
        return ExchangeRecorder(
            events: events, accessLog: access, tenantName: config.tenant.name, metrics: metrics, clock: clock,
            traffic: traffic, trafficPipeline: trafficPipeline)
    }
}
