import GatewayCore
import Testing

@testable import Recording

@Suite("Reading JSON lines: what was skipped")
struct LineTallyTests {
    let exchange =
        #"{"kind":"exchange","v":1,"id":"a","started":"2026-01-01T00:00:00.000Z","request":{"method":"GET","target":"/my-org/details"}}"#
    let event = #"{"log_id":"01a2","date":"2026-01-01T00:00:01.000Z","details":{"response":{"status":200}}}"#

    @Test("line numbers count blank lines; blank lines are neither used nor skipped")
    func numbering() {
        let text = "\n\(exchange)\nnot json\n\n  \n{\"kind\":\"exchange\"}\n\(exchange)\n"
        #expect(text.fileLines.count == 7)
        let (records, tally) = ExchangeRecord.readTallied(lines: text.fileLines)
        #expect(records.count == 2)
        #expect(tally.used == 2)
        #expect(tally.skipped == 2)
        #expect(tally.firstSkipped == 3)
        #expect(!tally.nothingUsable)
        #expect(
            tally.skippedWarning(notA: "a recording") == "2 lines (the first is line 3) were skipped: not a recording")
    }

    @Test("one skipped line, and an input without any usable line")
    func messages() {
        let (_, one) = ExchangeRecord.readTallied(lines: "\(exchange)\n\(event)".fileLines)
        #expect(one.skippedWarning(notA: "a recording") == "1 line (line 2) was skipped: not a recording")
        let (records, none) = ExchangeRecord.readTallied(lines: "garbage\n".fileLines)
        #expect(records.isEmpty)
        #expect(none.nothingUsable)
        #expect(
            none.nothingUsableReason(notA: "a recording") == "no line is a recording (1 skipped, the first is line 1)")
        let (_, empty) = ExchangeRecord.readTallied(lines: "\n\n".fileLines)
        #expect(empty.nothingUsable)
        #expect(empty.skippedWarning(notA: "a recording") == nil)
        #expect(empty.nothingUsableReason(notA: "a recording") == "the file is empty")
        let (_, clean) = ExchangeRecord.readTallied(lines: [exchange])
        #expect(clean.skippedWarning(notA: "a recording") == nil)
    }

    @Test("a report uses recordings, events and access lines, and skips everything else")
    func report() {
        let access = #"{"kind":"access","time":"2026-01-01T00:00:02.000Z","status":429}"#
        let (samples, tally) = ReportRenderer.samplesTallied(
            fromLines: [event, "garbage", access, #"{"kind":"access"}"#, ""])
        #expect(samples.count == 1)
        #expect(samples.first?.status == 429)
        #expect(tally.used == 2)
        #expect(tally.skipped == 2)
        #expect(tally.firstSkipped == 2)
        let (nothing, bad) = ReportRenderer.samplesTallied(fromLines: ["garbage", "{}"])
        #expect(nothing.isEmpty)
        #expect(bad.nothingUsable)
        #expect(ReportRenderer.samplesTallied(fromLines: [event]).tally.used == 1)
        #expect(ReportRenderer.samplesTallied(fromLines: [exchange, event]).samples.count == 1)
    }
}
