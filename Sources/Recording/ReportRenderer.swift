import GatewayCore

/// One request, as far as a report needs it; built from exchange records, log events or access lines.
public struct ReportSample: Sendable, Equatable {
    public enum RateLimitKind: String, Sendable {
        case tenant
        case organization
    }

    public var timeMillis: Int64
    public var status: Int
    public var durationMs: Double?
    public var organizationID: String?
    public var clientID: String?
    public var decidedBy: DecidedBy?
    /// `forwarded` or the refusal reason.
    public var outcome: String?
    public var rateLimitKind: RateLimitKind?

    public init(
        timeMillis: Int64, status: Int, durationMs: Double? = nil, organizationID: String? = nil,
        clientID: String? = nil, decidedBy: DecidedBy? = nil, outcome: String? = nil,
        rateLimitKind: RateLimitKind? = nil
    ) {
        self.timeMillis = timeMillis
        self.status = status
        self.durationMs = durationMs
        self.organizationID = organizationID
        self.clientID = clientID
        self.decidedBy = decidedBy
        self.outcome = outcome
        self.rateLimitKind = rateLimitKind
    }

    /// Which limit a 429 hit: the gateway's reason names it (`…tenant…`/`…global…` or `…org…`); for the tenant's
    /// own 429s, `X-Auth0-Error-Kind: global-rate-limit` marks the tenant-wide limit, anything else the
    /// organization's.
    static func kind(status: Int, outcome: String?, errorKindHeader: String?) -> RateLimitKind? {
        guard status == 429 else { return nil }
        if let o = outcome?.asciiLowercased {
            if o.contains("tenant") || o.contains("global") { return .tenant }
            if o.contains("org") { return .organization }
        }
        if errorKindHeader?.asciiLowercased == "global-rate-limit" { return .tenant }
        return .organization
    }
}

/// Renders one self-contained HTML report (inline CSS and inline SVG, no script, no network) of a recording or
/// a log: requests over time by status class, 429s by organization and kind, latency percentiles, top
/// organizations and clients, and the gateway's refusals by reason.
public enum ReportRenderer {
    /// Reads any mix of exchange records, log events and access lines. When several kinds are present only one is
    /// used (exchange records, else access lines, else events), so a request is not counted twice.
    public static func samples<Lines: Sequence>(fromLines lines: Lines) -> [ReportSample]
    where Lines.Element: StringProtocol {
        samplesTallied(fromLines: lines).samples
    }

    /// Like ``samples(fromLines:)``, and counts the lines that are none of the three kinds (line numbers are
    /// positions in `lines`). A line of a kind that was not chosen still counts as used: it is readable.
    public static func samplesTallied<Lines: Sequence>(fromLines lines: Lines) -> (
        samples: [ReportSample], tally: LineTally
    )
    where Lines.Element: StringProtocol {
        let (parsed, tally) = LineTally.read(lines) { parse($0) }
        var exchanges: [ReportSample] = []
        var access: [ReportSample] = []
        var events: [ReportSample] = []
        for line in parsed {
            switch line {
            case .exchange(let s): exchanges.append(s)
            case .access(let s): access.append(s)
            case .event(let s): events.append(s)
            }
        }
        if !exchanges.isEmpty { return (exchanges, tally) }
        if !access.isEmpty { return (access, tally) }
        return (events, tally)
    }

    private enum ParsedLine {
        case exchange(ReportSample)
        case access(ReportSample)
        case event(ReportSample)
    }

    /// One line as a sample of its kind; nil when it is none of the kinds or lacks what a sample needs.
    private static func parse<Line: StringProtocol>(_ line: Line) -> ParsedLine? {
        guard let v = try? JSONValue.parse(Array(line.utf8), maxDepth: 64) else { return nil }
        switch v["kind"]?.stringValue {
        case "exchange":
            return (try? ExchangeRecord(json: v)).map { .exchange(sample($0)) }
        case "access":
            guard let t = v["time"]?.stringValue.flatMap(Timestamp.parseISO8601),
                let status = v["status"]?.int64Value
            else { return nil }
            let outcome = v["decision"]?.stringValue
            return .access(
                ReportSample(
                    timeMillis: t, status: Int(status), durationMs: v["duration_ms"]?.doubleValue,
                    organizationID: v["organization_id"]?.stringValue, clientID: v["client_id"]?.stringValue,
                    decidedBy: v["decided_by"]?.stringValue.flatMap(DecidedBy.init(rawValue:)), outcome: outcome,
                    rateLimitKind: ReportSample.kind(status: Int(status), outcome: outcome, errorKindHeader: nil)))
        default:
            guard v["log_id"] != nil, let t = v["date"]?.stringValue.flatMap(Timestamp.parseISO8601) else {
                return nil
            }
            let d = v["details"]
            let status = d?["response"]?["status"]?.int64Value ?? d?["error"]?["status"]?.int64Value ?? 0
            let outcome = d?["reason"]?.stringValue
            return .event(
                ReportSample(
                    timeMillis: t, status: Int(status), durationMs: d?["duration_ms"]?.doubleValue,
                    organizationID: v["organization_id"]?.stringValue, clientID: v["client_id"]?.stringValue,
                    decidedBy: d?["decided_by"]?.stringValue.flatMap(DecidedBy.init(rawValue:)), outcome: outcome,
                    rateLimitKind: ReportSample.kind(status: Int(status), outcome: outcome, errorKindHeader: nil)))
        }
    }

    static func sample(_ r: ExchangeRecord) -> ReportSample {
        let status = r.status ?? 0
        let header = r.responseHeaders.first { $0.0.asciiCaseInsensitiveEquals(literal: "X-Auth0-Error-Kind") }?.1
        return ReportSample(
            timeMillis: r.startedMillis, status: status, durationMs: r.timeMs, organizationID: r.organizationID,
            clientID: r.clientID, decidedBy: r.decidedBy, outcome: r.outcome,
            rateLimitKind: ReportSample.kind(
                status: status, outcome: r.decidedBy == .gateway ? r.outcome : nil, errorKindHeader: header))
    }

    public static func render<Lines: Sequence>(lines: Lines, title: String = "myorg-gateway traffic report") -> String
    where Lines.Element: StringProtocol {
        render(samples: samples(fromLines: lines), title: title)
    }

    public static func render(records: [ExchangeRecord], title: String = "myorg-gateway traffic report") -> String {
        render(samples: records.map(sample), title: title)
    }

    public static func render(samples: [ReportSample], title: String = "myorg-gateway traffic report") -> String {
        let sorted = samples.sorted { $0.timeMillis < $1.timeMillis }
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(title))</title>
            <style>
            body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2328;background:#fff}
            h1{font-size:22px}h2{font-size:17px;margin-top:32px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
            table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d0d7de;padding:4px 10px;text-align:right}
            th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}
            .legend span{display:inline-block;margin-right:14px;font-size:13px}
            .legend i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
            .empty{color:#57606a;font-style:italic}svg text{font-size:11px;fill:#1f2328}
            </style></head><body>
            <h1>\(escape(title))</h1>

            """
        guard let first = sorted.first, let last = sorted.last else {
            return html + "<p class=\"empty\">No requests in this data.</p></body></html>\n"
        }
        let refused = sorted.filter { $0.decidedBy == .gateway && $0.status >= 400 }.count
        html += "<table><tr><th>requests</th><th>from</th><th>to</th><th>refused by the gateway</th><th>429</th></tr>"
        html += "<tr><td>\(sorted.count)</td><td>\(Timestamp.iso8601(millis: first.timeMillis))</td>"
        html += "<td>\(Timestamp.iso8601(millis: last.timeMillis))</td><td>\(refused)</td>"
        html += "<td>\(sorted.filter { $0.status == 429 }.count)</td></tr></table>\n"

        html += "<h2>Requests over time by status class</h2>\n" + requestsOverTime(sorted)
        html += "<h2>429 responses by organization and kind</h2>\n" + rateLimited(sorted)
        html += "<h2>Latency percentiles</h2>\n" + latency(sorted)
        html += "<h2>Top organizations</h2>\n"
        html += barChart(top(sorted.map { $0.organizationID ?? "(none)" }, 10), color: "#0969da", id: "orgs")
        html += "<h2>Top clients</h2>\n"
        html += barChart(top(sorted.map { $0.clientID ?? "(none)" }, 10), color: "#8250df", id: "clients")
        html += "<h2>Gateway refusals by reason</h2>\n"
        let reasons = top(
            sorted.filter { $0.decidedBy == .gateway && $0.status >= 400 }.map { $0.outcome ?? "HTTP \($0.status)" }, 20
        )
        html +=
            reasons.isEmpty
            ? "<p class=\"empty\">The gateway refused no request.</p>\n"
            : barChart(reasons, color: "#cf222e", id: "refusals")
        html += "</body></html>\n"
        return html
    }

    // MARK: Charts

    static let statusClasses: [(String, String, Range<Int>?)] = [
        ("2xx", "#2da44e", 200..<300),
        ("3xx", "#0969da", 300..<400),
        ("4xx", "#d4a72c", 400..<500),
        ("5xx", "#cf222e", 500..<600),
        ("other", "#8c959f", nil),
    ]

    static func statusClass(_ status: Int) -> Int {
        statusClasses.firstIndex { $0.2?.contains(status) ?? false } ?? statusClasses.count - 1
    }

    /// Stacked bars, one per time bucket (at most 60), one colour per status class.
    static func requestsOverTime(_ s: [ReportSample]) -> String {
        let (buckets, start, width) = bucketize(s, maxBuckets: 60)
        let counts = buckets.map { bucket in
            var c = Array(repeating: 0, count: statusClasses.count)
            for x in bucket { c[statusClass(x.status)] += 1 }
            return c
        }
        let maxTotal = max(1, counts.map { $0.reduce(0, +) }.max() ?? 1)
        let w = 760.0
        let h = 220.0
        let left = 44.0
        let plotW = w - left - 10
        let plotH = h - 40
        let barW = plotW / Double(buckets.count)
        var svg = svgOpen(width: w, height: h, label: "requests over time")
        svg += axis(left: left, top: 10, width: plotW, height: plotH, maxValue: Double(maxTotal), unit: "")
        for (i, c) in counts.enumerated() {
            var y = 10 + plotH
            for (k, n) in c.enumerated() where n > 0 {
                let bh = plotH * Double(n) / Double(maxTotal)
                y -= bh
                svg += rect(
                    x: left + Double(i) * barW + 0.5, y: y, w: max(1, barW - 1), h: bh, fill: statusClasses[k].1,
                    title: "\(statusClasses[k].0): \(n)")
            }
        }
        svg += text(x: left, y: h - 12, Timestamp.iso8601(millis: start), anchor: "start")
        svg += text(
            x: w - 10, y: h - 12, Timestamp.iso8601(millis: start + width * Int64(buckets.count)), anchor: "end")
        svg += "</svg>\n"
        let legend = statusClasses.map { "<span><i style=\"background:\($0.1)\"></i>\($0.0)</span>" }.joined()
        return svg + "<div class=\"legend\">\(legend)<span>bucket: \(formatDuration(width))</span></div>\n"
    }

    static func rateLimited(_ s: [ReportSample]) -> String {
        let limited = s.filter { $0.status == 429 }
        guard !limited.isEmpty else { return "<p class=\"empty\">No 429 responses in this data.</p>\n" }
        var byOrg: [String: (tenant: Int, org: Int)] = [:]
        for x in limited {
            let key = x.organizationID ?? "(none)"
            var v = byOrg[key, default: (0, 0)]
            if x.rateLimitKind == .tenant { v.tenant += 1 } else { v.org += 1 }
            byOrg[key] = v
        }
        let rows = byOrg.sorted { ($0.value.tenant + $0.value.org, $1.key) > ($1.value.tenant + $1.value.org, $0.key) }
            .prefix(15)
        let maxV = max(1, rows.map { $0.value.tenant + $0.value.org }.max() ?? 1)
        let labelW = 190.0
        let w = 760.0
        let rowH = 22.0
        var svg = svgOpen(width: w, height: Double(rows.count) * rowH + 10, label: "429 by organization")
        for (i, row) in rows.enumerated() {
            let y = 5 + Double(i) * rowH
            svg += text(x: labelW - 6, y: y + 15, truncate(row.key), anchor: "end")
            let scale = (w - labelW - 60) / Double(maxV)
            let tw = Double(row.value.tenant) * scale
            let ow = Double(row.value.org) * scale
            if row.value.tenant > 0 {
                svg += rect(
                    x: labelW, y: y + 2, w: tw, h: rowH - 6, fill: "#cf222e", title: "tenant limit: \(row.value.tenant)"
                )
            }
            if row.value.org > 0 {
                svg += rect(
                    x: labelW + tw, y: y + 2, w: ow, h: rowH - 6, fill: "#d4a72c",
                    title: "organization limit: \(row.value.org)")
            }
            svg += text(x: labelW + tw + ow + 6, y: y + 15, "\(row.value.tenant + row.value.org)", anchor: "start")
        }
        svg += "</svg>\n"
        return svg
            + "<div class=\"legend\"><span><i style=\"background:#cf222e\"></i>tenant-wide limit</span>"
            + "<span><i style=\"background:#d4a72c\"></i>organization limit</span></div>\n"
    }

    static func latency(_ s: [ReportSample]) -> String {
        let all = s.compactMap(\.durationMs).sorted()
        guard !all.isEmpty else { return "<p class=\"empty\">No durations in this data.</p>\n" }
        var out = "<table><tr><th>percentile</th><th>ms</th></tr>"
        for (name, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
            out += "<tr><td>\(name)</td><td>\(format(percentile(all, p)))</td></tr>"
        }
        out += "<tr><td>max</td><td>\(format(all.last!))</td></tr></table>\n"

        let (buckets, start, width) = bucketize(s.filter { $0.durationMs != nil }, maxBuckets: 40)
        let series: [(String, String, Double)] = [
            ("p50", "#2da44e", 0.5), ("p90", "#d4a72c", 0.9), ("p99", "#cf222e", 0.99),
        ]
        let values = buckets.map { b -> [Double]? in
            let d = b.compactMap(\.durationMs).sorted()
            return d.isEmpty ? nil : series.map { percentile(d, $0.2) }
        }
        let maxV = max(0.001, values.compactMap { $0?.max() }.max() ?? 1)
        let w = 760.0
        let h = 220.0
        let left = 54.0
        let plotW = w - left - 10
        let plotH = h - 40
        var svg = svgOpen(width: w, height: h, label: "latency percentiles over time")
        svg += axis(left: left, top: 10, width: plotW, height: plotH, maxValue: maxV, unit: " ms")
        let step = plotW / Double(max(1, buckets.count))
        for (k, serie) in series.enumerated() {
            var points: [(Double, Double)] = []
            for (i, v) in values.enumerated() {
                guard let v else { continue }
                points.append((left + step * (Double(i) + 0.5), 10 + plotH - plotH * v[k] / maxV))
            }
            guard let firstPoint = points.first else { continue }
            // A single bucket still gets a visible line: a short horizontal stroke through its point.
            if points.count == 1 {
                points = [(firstPoint.0 - step / 2 + 1, firstPoint.1), (firstPoint.0 + step / 2 - 1, firstPoint.1)]
            }
            var d = "M\(format(points[0].0)) \(format(points[0].1))"
            for p in points.dropFirst() { d += " L\(format(p.0)) \(format(p.1))" }
            svg +=
                "<path d=\"\(d)\" fill=\"none\" stroke=\"\(serie.1)\" stroke-width=\"2\"><title>\(serie.0)</title></path>\n"
            for p in points {
                svg += "<circle cx=\"\(format(p.0))\" cy=\"\(format(p.1))\" r=\"2.5\" fill=\"\(serie.1)\"/>\n"
            }
        }
        svg += text(x: left, y: h - 12, Timestamp.iso8601(millis: start), anchor: "start")
        svg += text(
            x: w - 10, y: h - 12, Timestamp.iso8601(millis: start + width * Int64(buckets.count)), anchor: "end")
        svg += "</svg>\n"
        let legend = series.map { "<span><i style=\"background:\($0.1)\"></i>\($0.0)</span>" }.joined()
        return out + svg + "<div class=\"legend\">\(legend)</div>\n"
    }

    static func barChart(_ rows: [(String, Int)], color: String, id: String) -> String {
        guard !rows.isEmpty else { return "<p class=\"empty\">No data.</p>\n" }
        let maxV = max(1, rows.map(\.1).max() ?? 1)
        let labelW = 230.0
        let w = 760.0
        let rowH = 22.0
        var svg = svgOpen(width: w, height: Double(rows.count) * rowH + 10, label: id)
        for (i, row) in rows.enumerated() {
            let y = 5 + Double(i) * rowH
            let bw = max(1, (w - labelW - 60) * Double(row.1) / Double(maxV))
            svg += text(x: labelW - 6, y: y + 15, truncate(row.0), anchor: "end")
            svg += rect(x: labelW, y: y + 2, w: bw, h: rowH - 6, fill: color, title: "\(row.0): \(row.1)")
            svg += text(x: labelW + bw + 6, y: y + 15, "\(row.1)", anchor: "start")
        }
        return svg + "</svg>\n"
    }

    // MARK: Helpers

    static func top(_ keys: [String], _ n: Int) -> [(String, Int)] {
        var counts: [String: Int] = [:]
        for k in keys { counts[k, default: 0] += 1 }
        return Array(counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(n)).map { ($0.key, $0.value) }
    }

    /// Splits samples (sorted by time) into equal time buckets; returns buckets, start and bucket width (ms).
    static func bucketize(_ s: [ReportSample], maxBuckets: Int) -> ([[ReportSample]], Int64, Int64) {
        guard let first = s.first?.timeMillis, let last = s.last?.timeMillis else { return ([[]], 0, 1000) }
        let span = max(1, last - first + 1)
        let steps: [Int64] = [
            1000, 5000, 10_000, 30_000, 60_000, 300_000, 600_000, 1_800_000, 3_600_000, 21_600_000, 86_400_000,
        ]
        let width = steps.first { span / $0 < Int64(maxBuckets) } ?? (span / Int64(maxBuckets) + 1)
        let start = first - first % width
        let count = Int((last - start) / width) + 1
        var buckets = Array(repeating: [ReportSample](), count: count)
        for x in s { buckets[Int((x.timeMillis - start) / width)].append(x) }
        return (buckets, start, width)
    }

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((p * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(sorted.count - 1, max(0, rank))]
    }

    static func svgOpen(width: Double, height: Double, label: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(format(width))\" height=\"\(format(height))\" "
            + "viewBox=\"0 0 \(format(width)) \(format(height))\" role=\"img\" aria-label=\"\(escape(label))\">\n"
    }

    static func axis(left: Double, top: Double, width: Double, height: Double, maxValue: Double, unit: String) -> String
    {
        var s = "<path d=\"M\(format(left)) \(format(top)) V\(format(top + height)) H\(format(left + width))\" "
        s += "stroke=\"#8c959f\" fill=\"none\"/>\n"
        s += text(x: left - 4, y: top + 8, format(maxValue) + unit, anchor: "end")
        s += text(x: left - 4, y: top + height, "0", anchor: "end")
        return s
    }

    static func rect(x: Double, y: Double, w: Double, h: Double, fill: String, title: String) -> String {
        "<rect x=\"\(format(x))\" y=\"\(format(y))\" width=\"\(format(w))\" height=\"\(format(h))\" fill=\"\(fill)\">"
            + "<title>\(escape(title))</title></rect>\n"
    }

    static func text(x: Double, y: Double, _ s: String, anchor: String) -> String {
        "<text x=\"\(format(x))\" y=\"\(format(y))\" text-anchor=\"\(anchor)\">\(escape(s))</text>\n"
    }

    static func truncate(_ s: String) -> String { s.count > 32 ? String(s.prefix(31)) + "…" : s }

    static func format(_ v: Double) -> String {
        let r = (v * 10).rounded() / 10
        return r == r.rounded() ? String(Int64(r)) : String(r)
    }

    static func formatDuration(_ ms: Int64) -> String {
        ms >= 3_600_000 ? "\(ms / 3_600_000) h" : ms >= 60_000 ? "\(ms / 60_000) min" : "\(ms / 1000) s"
    }

    /// HTML-escapes text and attribute values (organization and client ids come from tokens: not trusted).
    public static func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
