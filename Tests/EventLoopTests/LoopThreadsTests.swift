import Dispatch
import Glibc
import Synchronization
import Testing

@testable import EventLoop

/// The name Dispatch gave the thread running `loop`'s queue: it names its pools' threads after their root queue,
/// and the overcommitting pool's end in "overcommit".
private func threadName(running loop: EventLoop) -> String {
    // `async`, not `sync`: Dispatch runs a `sync` block on the calling thread.
    let name = Mutex("")
    let done = DispatchSemaphore(value: 0)
    loop.queue.async {
        // /proc/thread-self/comm: pthread_getname_np is hidden from Swift's Glibc module.
        let fd = open("/proc/thread-self/comm", O_RDONLY)
        precondition(fd >= 0, "cannot open /proc/thread-self/comm")
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 64)
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        precondition(count > 0, "cannot read /proc/thread-self/comm")
        name.withLock { $0 = String(decoding: bytes.prefix(count), as: UTF8.self) }
        done.signal()
    }
    done.wait()
    return name.withLock { $0 }
}

@Suite("Loop thread pools")
struct LoopThreadsTests {
    @Test("a per-CPU loop runs on the QoS pool's threads, not the overcommitting pool's")
    func perCPULoopAvoidsTheOvercommittingPool() {
        let loop = EventLoop(index: 0, label: "threads-test", threads: .perCPU)
        let name = threadName(running: loop)
        #expect(!name.contains("overcommit"), "thread \(name)")
        #expect(name.contains("qos"), "thread \(name)")
    }

    @Test("an overcommit loop runs on the overcommitting pool (the check above can fail)")
    func overcommitLoopUsesTheOvercommittingPool() {
        let loop = EventLoop(index: 0, label: "threads-test", threads: .overcommit)
        #expect(threadName(running: loop).contains("overcommit"))
    }

    @Test("a group takes the pool it is given for every loop")
    func groupPassesThePoolOn() {
        let group = EventLoopGroup(count: 2, label: "threads-test", threads: .perCPU)
        for loop in group.loops { #expect(!threadName(running: loop).contains("overcommit")) }
    }
}

@Suite("serve --loop-threads")
struct LoopThreadsChoiceTests {
    @Test("auto: the per-CPU pool with no more loops than CPUs, the overcommitting pool beyond")
    func autoFollowsTheCPUCount() {
        let cpus = LoopThreads.onlineCPUs
        #expect(LoopThreads.auto.resolved(loops: 1) == .perCPU)
        #expect(LoopThreads.auto.resolved(loops: cpus) == .perCPU)
        #expect(LoopThreads.auto.resolved(loops: cpus + 1) == .overcommit)
    }

    @Test("an explicit choice holds whatever the loop count")
    func explicitChoicesHold() {
        let cpus = LoopThreads.onlineCPUs
        for loops in [1, cpus, cpus + 1, 1024] {
            #expect(LoopThreads.perCPU.resolved(loops: loops) == .perCPU)
            #expect(LoopThreads.overcommit.resolved(loops: loops) == .overcommit)
        }
    }

    @Test("the command line spells them auto, per-cpu and overcommit")
    func spellings() {
        #expect(LoopThreads.allCases.map(\.rawValue) == ["auto", "per-cpu", "overcommit"])
        #expect(LoopThreads(rawValue: "perCPU") == nil)
    }
}
