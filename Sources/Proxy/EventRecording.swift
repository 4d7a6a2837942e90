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
    let environmentName: String?
    /// A client id's `clients[].name`, for the events' `client_name`: the configuration's own client index.
    let clientName: @Sendable (String) -> String?
    let metrics: GatewayMetrics
    let ids: LogIDGenerator
    /// Opt-in traffic recording and its own pipeline (a separate file from the events).
    let traffic: TrafficRecorder?
    let trafficPipeline: LogPipeline?

    init(
        events: LogPipeline?, accessLog: LogPipeline?, tenantName: String, environmentName: String? = nil,
        clientName: @escaping @Sendable (String) -> String? = { _ in nil },
        metrics: GatewayMetrics, clock: any WallClock, traffic: TrafficRecorder? = nil,
        trafficPipeline: LogPipeline? = nil
    ) {
        self.clientName = clientName
        self.traffic = traffic
        self.trafficPipeline = trafficPipeline
        self.events = events
        self.accessLog = accessLog
        self.tenantName = tenantName
        self.environmentName = environmentName
        self.metrics = metrics
        self.ids = LogIDGenerator(clock: clock)
    }

    /// One finished exchange, on its loop: metrics at once (in the loop's own tally, no lock, no allocation); for
    /// the event and access logs only a compact immutable copy is queued, rendered to JSON later on the pipelines'
    /// writers.
    func record(_ exchange: Exchange, endNanos: Int64, loopMetrics: LoopMetrics) {
        // The facts are read in place: a local copy retained and released each of their strings.
        let status = exchange.status
        let durationNanos = endNanos - exchange.startNanos
        loopMetrics.request(
            route: exchange.facts.routeName ?? Self.unroutedLabel(exchange.head.target), status: status,
            decision: exchange.decision, durationNanos: durationNanos,
            upstreamNanos: exchange.upstreamEndNanos > 0
                ? exchange.upstreamEndNanos - exchange.upstreamStartNanos : nil)
        if status == 429, let kind = exchange.facts.rateLimitedBy {
            metrics.rateLimitRefusal(kind: kind, tier: exchange.facts.tier ?? "unknown")
        }
        if let traffic, let capture = exchange.capture, let response = capture.head {
            recordTraffic(exchange, capture: capture, response: response, durationNanos: durationNanos, to: traffic)
        }
        var eventType: EventType? = nil
        if events != nil, exchange.decision != "preflight" {
            eventType = EventClassifier.classify(
                resource: exchange.facts.logResource,
                outcome: EventOutcome(status: status, decidedBy: exchange.decidedBy == .tenant ? .tenant : .gateway))
        }
        guard accessLog != nil || eventType != nil else { return }
        let entry = ExchangeLogEntry(
            exchange, endNanos: endNanos, tenantName: tenantName, environmentName: environmentName,
            clientName: clientName)
        accessLog?.record(AccessRecord(entry: entry))
        if let eventType { events?.record(EventRecord(entry: entry, type: eventType, ids: ids)) }
    }

    /// The route label of a request no endpoint matched: `unknown` under the API's prefix, `other` elsewhere.
    static func unroutedLabel(_ target: String) -> String {
        // Byte by byte over the contiguous UTF-8: `starts(with:)` between two UTF8Views ran unspecialized, about
        // 200 instructions on every pass-through request.
        let underAPI =
            target.utf8.withContiguousStorageIfAvailable { bytes in
                bytes.count >= 7 && bytesEqual(bytes.baseAddress!, 7, "/my-org")
            } ?? target.utf8.starts(with: "/my-org".utf8)
        return underAPI ? "unknown" : "other"
    }

    private func recordTraffic(
        _ exchange: Exchange, capture: ResponseCapture, response: ResponseHead, durationNanos: Int64,
        to traffic: TrafficRecorder
    ) {
        var request = exchange.head
        request.scheme = exchange.isTLS ? "https" : "http"
        let facts = exchange.facts
        let totalMs = Double(durationNanos) / 1e6
        let waitMs = capture.headNanos > 0 ? Double(capture.headNanos - exchange.startNanos) / 1e6 : 0
        traffic.record(
            CapturedExchange(
                request: request,
                requestBody: exchange.body, requestBodySize: exchange.bodyLength, response: response,
                responseBody: capture.body,
                responseBodySize: capture.size, startedMillis: exchange.startNanos / 1_000_000,
                timings: .init(sendMs: 0, waitMs: waitMs, receiveMs: max(0, totalMs - waitMs), totalMs: totalMs),
                clientIP: exchange.peerAddress, decidedBy: exchange.decidedBy,
                decision: exchange.decision, route: facts.routeName, eventType: nil,
                organizationID: facts.organizationID, clientID: facts.clientID))
    }

    func shutdown(timeoutMs: Int) {
        _ = events?.shutdown(timeout: .milliseconds(timeoutMs))
        _ = accessLog?.shutdown(timeout: .milliseconds(timeoutMs))
        _ = trafficPipeline?.shutdown(timeout: .milliseconds(timeoutMs))
    }

    /// Builds the pipelines from the configuration's `logging` and `recording` sections.
    static func make(
        config: GatewayConfig, metrics: GatewayMetrics, clock: any WallClock, logger: Logger,
        secret: (GatewayConfig.SecretSource) -> String?
    ) throws -> ExchangeRecorder {
        try remake(config: config, metrics: metrics, clock: clock, logger: logger, secret: secret, previous: nil)
            .recorder
    }

    /// What a reload does to the pipelines: the new recorder, and the old pipelines it no longer uses.
    struct Change {
        let recorder: ExchangeRecorder
        /// A pipeline whose settings changed, and its successor (made deferred): the old one must hand over (see
        /// ``LogPipeline/handOver(to:deadline:)``) before the new one opens the same files and spools.
        let handovers: [(old: LogPipeline, new: LogPipeline)]
        /// Pipelines switched off: they keep taking the events of exchanges begun before the reload for a while,
        /// then stop.
        let retired: [LogPipeline]
    }

    /// Builds the pipelines for `config`, keeping each of `previous`'s whose settings did not change (a reload
    /// that changes only the level or the recording's filters leaves every file and spool as it is).
    static func remake(
        config: GatewayConfig, metrics: GatewayMetrics, clock: any WallClock, logger: Logger,
        secret: (GatewayConfig.SecretSource) -> String?, previous: ExchangeRecorder?
    ) throws -> Change {
        let wanted = try pipelineSettings(config: config, secret: secret)
        var handovers: [(old: LogPipeline, new: LogPipeline)] = []
        var retired: [LogPipeline] = []
        var opened: [LogPipeline] = []
        func pipeline(_ settings: LogPipelineSettings?, previous: LogPipeline?) throws -> LogPipeline? {
            guard let settings else {
                if let previous { retired.append(previous) }
                return nil
            }
            guard let previous else {
                let fresh = try LogPipeline(settings: settings, logger: logger)
                opened.append(fresh)
                return fresh
            }
            if previous.settings == settings { return previous }
            try LogPipeline.validate(settings)
            let successor = LogPipeline(deferred: settings, logger: logger)
            handovers.append((previous, successor))
            return successor
        }
        do {
            let events = try pipeline(wanted.events, previous: previous?.events)
            let access = try pipeline(wanted.accessLog, previous: previous?.accessLog)
            let trafficPipeline = try pipeline(wanted.traffic, previous: previous?.trafficPipeline)
            let recording = config.recording
            let traffic = trafficPipeline.map { pipeline in
                TrafficRecorder(
                    settings: TrafficRecordingSettings(
                        enabled: true, routes: recording.operations, organizations: recording.organizations,
                        sampleRate: recording.sampleRate, bodyCap: recording.maxBodyBytes,
                        redactHeaders: recording.redactHeaders, redactJSONPointers: recording.redactJSONPointers),
                    recorder: pipeline, ids: LogIDGenerator(clock: clock))
            }
            let recorder = ExchangeRecorder(
                events: events, accessLog: access, tenantName: config.tenant.name,
                environmentName: config.tenant.environmentName,
                clientName: { config.client(id: $0)?.name },
                metrics: metrics, clock: clock, traffic: traffic, trafficPipeline: trafficPipeline)
            return Change(recorder: recorder, handovers: handovers, retired: retired)
        } catch {
            // A refused reload leaves nothing running: the previous pipelines keep serving as they were.
            for pipeline in opened { _ = pipeline.shutdown(timeout: .seconds(1)) }
            throw error
        }
    }

    /// The settings of the event, access-log and recording pipelines (nil: that pipeline is off).
    private static func pipelineSettings(
        config: GatewayConfig, secret: (GatewayConfig.SecretSource) -> String?
    ) throws -> (events: LogPipelineSettings?, accessLog: LogPipelineSettings?, traffic: LogPipelineSettings?) {
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
                sinks.append(
                    .file(
                        FileSinkSettings(
                            path: file.path.path, maxBytes: file.maxBytes, keep: file.maxFiles, fsync: fsync,
                            name: file.name)))
            case .webhook(let hook):
                let format: WebhookFormat
                switch hook.format {
                case .jsonLines: format = .jsonLines
                case .jsonArray: format = .jsonArray
                case .jsonObject: format = .jsonObject
                }
                var headers = HTTPFields()
                for header in hook.headers {
                    switch header.value {
                    case .literal(let value): headers.add(header.name, value)
                    case .secret(let source):
                        // A missing header could get every batch refused and dropped; better not to start.
                        guard let value = secret(source) else {
                            throw BuildError("webhook header \(header.name): its environment variable or file is unset")
                        }
                        headers.add(header.name, value)
                    }
                }
                sinks.append(
                    .webhook(
                        WebhookSinkSettings(
                            url: hook.url.text, authorization: hook.authorization.flatMap(secret),
                            headers: headers,
                            format: format, batchSize: hook.batchSize,
                            batchInterval: Double(hook.intervalMs) / 1000, name: hook.name)))
            }
        }
        let spool = SpoolSettings(
            directory: config.logging.spool.directory.path, maxBytes: config.logging.spool.maxBytes)
        let events = sinks.isEmpty ? nil : LogPipelineSettings(sinks: sinks, spool: spool)
        let access =
            config.logging.accessLog
            ? LogPipelineSettings(sinks: [.stdout(StdoutSinkSettings(name: "access-log"))]) : nil
        let recording = config.recording
        let traffic =
            recording.enabled
            ? LogPipelineSettings(sinks: [.file(FileSinkSettings(path: recording.path.path, name: "recording"))]) : nil
        return (events, access, traffic)
    }
}

/// What the log lines of one finished exchange need, copied off the loop-confined ``Exchange`` (strings are
/// shared, not copied). Immutable, so the writer threads read it without locks.
final class ExchangeLogEntry: Sendable {
    let head: RequestHead
    let status: Int
    let decision: String
    let decidedBy: DecidedBy
    let bytesOut: Int
    let requestID: String
    let peerAddress: String
    let startNanos: Int64
    let endNanos: Int64
    /// What the policy learned (operation, organization, client, user, scope, audience, error).
    let facts: ExchangeFacts
    /// The policy's hostname, else the SNI name, else the authority (nil: taken from the request head).
    let hostname: String?
    let tenantName: String
    let environmentName: String?
    let clientName: String?
    /// The tenant's error answer, read into the event's `error` when the event is written (off the loop).
    let tenantErrorBody: [UInt8]?

    init(
        _ exchange: Exchange, endNanos: Int64, tenantName: String, environmentName: String? = nil,
        clientName: (String) -> String? = { _ in nil }
    ) {
        head = exchange.head
        status = exchange.status
        decision = exchange.decision
        decidedBy = exchange.decidedBy
        bytesOut = exchange.bytesOut
        requestID = exchange.requestID
        peerAddress = exchange.peerAddress
        startNanos = exchange.startNanos
        self.endNanos = endNanos
        // Recorded once, at the exchange's end: nothing reads its facts after this.
        facts = exchange.takeFacts()
        hostname = facts.hostname ?? exchange.serverName ?? exchange.head.authority
        self.tenantName = tenantName
        self.environmentName = environmentName
        self.clientName = facts.clientID.flatMap(clientName)
        tenantErrorBody = exchange.upstreamStatus != nil ? exchange.tenantErrorBody : nil
    }

    var durationMs: Double { Double(endNanos - startNanos) / 1e6 }

    /// Writes the log event (the API's event code), as `LogEvent.json` describes it, with `logID` as its `log_id`.
    /// Built and written in one place: returning the event would copy all its strings once more.
    func writeEvent(logID: LogID, type: EventType, to out: inout JSONByteWriter) {
        var event = LogEvent(
            logID: "", dateMillis: startNanos / 1_000_000, type: type.code, description: type.description)
        event.apply(request: head, hostname: hostname)
        event.tenantName = tenantName
        event.environmentName = environmentName
        event.ip = peerAddress
        event.clientID = facts.clientID
        event.clientName = clientName
        event.userID = facts.userID
        event.organizationID = facts.organizationID
        event.organizationName = facts.organizationName
        event.audience = facts.audience
        event.scope = facts.scope
        event.operation = facts.operation
        event.status = status
        event.correlationID = event.correlationID ?? requestID
        if let error = facts.error {
            event.error = LogEvent.ErrorInfo(error)
        } else if let body = tenantErrorBody {
            event.error = LogEvent.ErrorInfo(problemBody: body, status: status)
        }
        event.decidedBy = decidedBy
        event.durationMs = durationMs
        event.reason = decision
        event.write(to: &out, logID: logID)
    }

    var accessLine: AccessLogLine {
        var line = AccessLogLine(
            timeMillis: startNanos / 1_000_000, request: head, status: status, bytes: bytesOut,
            durationMs: durationMs, decision: decision, decidedBy: decidedBy, organizationID: facts.organizationID,
            clientID: facts.clientID, ip: peerAddress)
        line.requestID = line.requestID ?? requestID
        return line
    }
}

/// The log event of an exchange; its `log_id` is drawn on the writer (in queue order) for the exchange's start, the
/// instant its `date` shows, so that `log_id` order is `date` order.
struct EventRecord: LogRecord {
    let entry: ExchangeLogEntry
    let type: EventType
    let ids: LogIDGenerator

    func write(to out: inout JSONByteWriter) -> Bool {
        entry.writeEvent(logID: ids.nextID(atMillis: entry.startNanos / 1_000_000), type: type, to: &out)
        return true
    }
}

/// The access-log line of an exchange.
struct AccessRecord: LogRecord {
    let entry: ExchangeLogEntry

    func write(to out: inout JSONByteWriter) -> Bool {
        entry.accessLine.write(to: &out)
        return true
    }
}
