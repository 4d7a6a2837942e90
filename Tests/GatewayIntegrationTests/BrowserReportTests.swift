import Foundation
import TestSupport
import Testing

/// `myorg-gateway report` as a person sees it: the HTML is loaded in headless Chromium, which must parse every
/// SVG chart, log nothing to the console, and paint a page that is not blank.
@Suite("Browser: the HTML report in headless Chromium", .serialized)
struct BrowserReportTests {
    /// One `<svg>` chart of the parsed DOM: its `aria-label` and its bars as (title label, value, width, height).
    struct Chart {
        var label: String
        var bars: [(label: String, value: Int, width: Double, height: Double)]
        var paths: Int
        var circles: Int

        var total: Int { bars.reduce(0) { $0 + $1.value } }
    }

    static func charts(in dom: String) -> [Chart] {
        var charts: [Chart] = []
        var rest = dom[...]
        while let open = rest.range(of: "<svg "),
            let close = rest.range(of: "</svg>", range: open.upperBound..<rest.endIndex)
        {
            let svg = String(rest[open.lowerBound..<close.upperBound])
            rest = rest[close.upperBound...]
            let label = firstMatch(#"aria-label="([^"]*)""#, in: svg).first ?? ""
            var bars: [(label: String, value: Int, width: Double, height: Double)] = []
            for groups in allMatches(#"<rect ([^>]*)><title>([^<]*): (\d+)</title></rect>"#, in: svg) {
                let width = firstMatch(#"width="([0-9.]+)""#, in: groups[0]).first.flatMap { Double($0) } ?? 0
                let height = firstMatch(#"height="([0-9.]+)""#, in: groups[0]).first.flatMap { Double($0) } ?? 0
                bars.append((groups[1], Int(groups[2]) ?? -1, width, height))
            }
            charts.append(
                Chart(
                    label: label, bars: bars, paths: svg.components(separatedBy: "<path ").count - 1,
                    circles: svg.components(separatedBy: "<circle ").count - 1))
        }
        return charts
    }

    static func allMatches(_ pattern: String, in text: String) -> [[String]] {
        guard let regex = try? NSRegularExpression(pattern: pattern) else { return [] }
        let ns = text as NSString
        return regex.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { match in
            (1..<match.numberOfRanges).map { ns.substring(with: match.range(at: $0)) }
        }
    }

    static func firstMatch(_ pattern: String, in text: String) -> [String] {
        allMatches(pattern, in: text).first ?? []
    }

    /// How often each element opens in `html` (`<rect ` and `<rect>` alike).
    static func elementCounts(_ html: String) -> [String: Int] {
        var counts: [String: Int] = [:]
        for name in ["svg", "rect", "path", "circle", "text", "title", "table"] {
            counts[name] = allMatches("<\(name)[ >]()", in: html).count
        }
        return counts
    }

    static func renderReport(_ input: URL, to output: URL) throws {
        let binary = try #require(TestProcess.gatewayBinary())
        let rendered = try TestProcess.run(binary, ["report", input.path, "--out", output.path])
        try #require(rendered.status == 0, "report failed: \(rendered.stderr)")
    }

    @Test("The report of real browser traffic: charts that match the events, no console output, a painted page")
    func reportOfBrowserTraffic() throws {
        if BrowserTools.skipNote("reportOfBrowserTraffic") { return }
        let env = try BrowserGatewayEnvironment()
        defer {
            env.stop()
            env.removeFiles()
        }
        // Traffic with successes, rate-limit refusals and a CORS refusal, each an event.
        let token = try env.token(client: "demo-admin-app")
        try env.preparePage(scenario: "burst", token: token)
        let burst = try env.runPage(host: "app.acme.test")
        #expect(burst.steps.count == 12, "\(burst)")
        try env.preparePage(scenario: "read", token: token)
        let blocked = try env.runPage(host: "readonly.acme.test")
        #expect(blocked.steps.first?.error == "TypeError", "\(blocked)")
        _ = env.events(atLeast: 13)
        // SIGTERM drains the gateway and flushes its sinks: nothing may arrive after what we count.
        env.stopGateway()
        let events = env.events(atLeast: 13)
        try #require(events.count == 13, "expected 13 events, found \(events.count)")

        func status(_ event: [String: Any]) -> Int {
            let details = event["details"] as? [String: Any]
            return (details?["response"] as? [String: Any])?["status"] as? Int
                ?? (details?["error"] as? [String: Any])?["status"] as? Int ?? 0
        }
        let tooMany = events.filter { status($0) == 429 }.count
        let succeeded = events.filter { (200..<300).contains(status($0)) }.count
        #expect(tooMany == burst.steps.filter { $0.status == 429 }.count)
        #expect(succeeded == burst.steps.filter { $0.status == 200 }.count)

        let report = env.directory.appendingPathComponent("report.html")
        try Self.renderReport(env.eventsFile, to: report)
        let html = try String(contentsOf: report, encoding: .utf8)
        let chromium = Chromium()

        // The parsed DOM keeps every chart element the renderer wrote: nothing was dropped or re-nested.
        let loaded = try chromium.dumpDOM(report.absoluteString, budgetMs: 2000)
        #expect(loaded.status == 0, "\(loaded.diagnostics)")
        #expect(loaded.console.isEmpty, "console output: \(loaded.console)")
        #expect(Self.elementCounts(loaded.stdout) == Self.elementCounts(html))
        let charts = Self.charts(in: loaded.stdout)
        #expect(
            charts.map(\.label) == [
                "requests over time", "429 by organization", "latency percentiles over time", "orgs", "clients",
                "refusals",
            ])
        let byLabel = Dictionary(charts.map { ($0.label, $0) }, uniquingKeysWith: { first, _ in first })
        for chart in charts where chart.label != "latency percentiles over time" {
            #expect(chart.bars.allSatisfy { $0.width > 0 && $0.height > 0 }, "empty bar in \(chart.label)")
        }
        #expect(byLabel["requests over time"]?.total == events.count)
        #expect(
            byLabel["requests over time"]?.bars.filter { $0.label == "2xx" }.reduce(0) { $0 + $1.value } == succeeded)
        #expect(byLabel["429 by organization"]?.total == tooMany)
        #expect(byLabel["orgs"]?.bars.map(\.label) == [BrowserGatewayEnvironment.organizationID])
        #expect(byLabel["orgs"]?.total == events.count)
        #expect(byLabel["clients"]?.bars.map(\.label) == ["demo-admin-app"])
        #expect(byLabel["refusals"]?.total == tooMany + 1)
        #expect(byLabel["refusals"]?.bars.contains { $0.label == "refused_cors" && $0.value == 1 } == true)
        let latency = try #require(byLabel["latency percentiles over time"])
        #expect(latency.paths >= 1 && latency.circles >= 1, "latency chart has no data points")

        // What a person sees: a page with colour in it, and a blank page for contrast (the measure can fail).
        let screenshot = env.directory.appendingPathComponent("report.png")
        let shot = try chromium.screenshot(report.absoluteString, to: screenshot)
        #expect(shot.status == 0, "\(shot.diagnostics)")
        #expect(shot.console.isEmpty, "console output: \(shot.console)")
        let stats = try ScreenshotStats(png: screenshot)
        #expect(stats.width == 1280 && stats.height == 2000)
        #expect(stats.colours >= 16, "the screenshot has \(stats.colours) colours")
        #expect(stats.paintedFraction > 0.01, "the screenshot is nearly blank: \(stats.paintedFraction)")

        let blankPage = env.directory.appendingPathComponent("blank.html")
        try Data("<!DOCTYPE html><html><body></body></html>".utf8).write(to: blankPage)
        let blankShot = env.directory.appendingPathComponent("blank.png")
        _ = try chromium.screenshot(blankPage.absoluteString, to: blankShot)
        let blank = try ScreenshotStats(png: blankShot)
        #expect(blank.colours == 1 && blank.paintedFraction == 0, "control: a blank page measured \(blank)")
    }

    @Test("Hostile strings in the events stay text: no element, no script, no console output")
    func hostileStringsAreEscaped() throws {
        if BrowserTools.skipNote("hostileStringsAreEscaped") { return }
        let directory = TestProcess.temporaryDirectory("browser-report")
        defer { try? FileManager.default.removeItem(at: directory) }
        let client = #"<img src=x onerror="console.error('xss-client')">"#
        let organization = #"</svg><script>console.error("xss-org")</script>"#
        let reason = #"refused_<b onmouseover=alert(1)>"#
        func event(_ second: Int, status: Int, decidedBy: String, reason: String?) -> String {
            var details: [String: Any] = ["decided_by": decidedBy, "duration_ms": 2.5 + Double(second)]
            details[status < 300 ? "response" : "error"] = ["status": status]
            if let reason { details["reason"] = reason }
            let object: [String: Any] = [
                "log_id": String(format: "%032x", second + 1),
                "date": String(format: "2026-01-02T03:04:%02d.000Z", second),
                "type": status < 300
                    ? "my_organization_api_org_details_succeeded" : "my_organization_api_org_details_failed",
                "client_id": client, "organization_id": organization, "details": details,
            ]
            let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            return data.map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        let lines = [
            event(0, status: 200, decidedBy: "tenant", reason: "forwarded"),
            event(1, status: 200, decidedBy: "tenant", reason: "forwarded"),
            event(2, status: 429, decidedBy: "gateway", reason: reason),
            event(3, status: 403, decidedBy: "gateway", reason: reason),
        ]
        let input = directory.appendingPathComponent("events.jsonl")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: input)
        let report = directory.appendingPathComponent("report.html")
        try Self.renderReport(input, to: report)

        let chromium = Chromium()
        // Control: the harness does see console output when a page makes some.
        let noisy = directory.appendingPathComponent("noisy.html")
        try Data("<!DOCTYPE html><script>console.error('control-message')</script>".utf8).write(to: noisy)
        let control = try chromium.dumpDOM(noisy.absoluteString, budgetMs: 1000)
        #expect(control.console.contains { $0.contains("control-message") }, "console capture is blind")

        let loaded = try chromium.dumpDOM(report.absoluteString, budgetMs: 2000)
        #expect(loaded.status == 0, "\(loaded.diagnostics)")
        #expect(loaded.console.isEmpty, "console output: \(loaded.console)")
        for element in ["<img", "<script", "<b "] {
            #expect(!loaded.stdout.contains(element), "\(element) became an element")
        }
        let charts = Self.charts(in: loaded.stdout)
        #expect(charts.count == 6, "\(charts.map(\.label))")
        #expect(charts.first { $0.label == "clients" }?.bars.first?.value == 4)
        #expect(charts.first { $0.label == "refusals" }?.total == 2)
        #expect(loaded.stdout.contains("&lt;img src=x"))
    }
}
