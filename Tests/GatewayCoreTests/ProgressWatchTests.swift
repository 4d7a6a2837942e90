import GatewayCore
import Testing

@Suite("progress watch")
struct ProgressWatchTests {
    @Test("a count that stands still for the whole limit is stalled; one that moves starts the wait again")
    func stallsOnlyWithoutProgress() {
        var watch = ProgressWatch()
        let looks: [(count: Int, now: Int64)] = [(5, 100), (5, 1099), (6, 1099), (6, 2000), (6, 2099)]
        let verdicts = looks.map { watch.stalled(count: $0.count, now: $0.now, limit: 1000) }
        #expect(verdicts == [false, false, false, false, true])
    }

    @Test("after a reset (nothing owed) the wait starts from the next look")
    func resetForgets() {
        var watch = ProgressWatch()
        var verdicts = [watch.stalled(count: 1, now: 10, limit: 100)]
        watch.reset()
        verdicts.append(watch.stalled(count: 1, now: 500, limit: 100))
        verdicts.append(watch.stalled(count: 1, now: 600, limit: 100))
        #expect(verdicts == [false, false, true])
    }
}
