import EventLoop
import Foundation
import Testing

@testable import Proxy

@Suite("serve --loop-threads")
struct LoopPoolTests {
    @Test("auto: the per-CPU pool with no more loops than CPUs, the overcommitting pool beyond")
    func autoFollowsTheCPUCount() {
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        #expect(LoopPool.auto.threads(loops: 1) == .perCPU)
        #expect(LoopPool.auto.threads(loops: cpus) == .perCPU)
        #expect(LoopPool.auto.threads(loops: cpus + 1) == .overcommit)
    }

    @Test("an explicit choice holds whatever the loop count")
    func explicitChoicesHold() {
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        for loops in [1, cpus, cpus + 1, 1024] {
            #expect(LoopPool.perCPU.threads(loops: loops) == .perCPU)
            #expect(LoopPool.overcommit.threads(loops: loops) == .overcommit)
        }
    }

    @Test("the command line spells them auto, per-cpu and overcommit")
    func spellings() {
        #expect(LoopPool.allCases.map(\.rawValue) == ["auto", "per-cpu", "overcommit"])
        #expect(LoopPool(rawValue: "perCPU") == nil)
    }
}
