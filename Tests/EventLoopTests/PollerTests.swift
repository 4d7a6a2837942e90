import Dispatch
import GatewayCore
import Glibc
import Synchronization
import Testing

@testable import EventLoop

/// A connected pair of non-blocking stream sockets.
private func socketPair() -> (Int32, Int32) {
    var fds: [Int32] = [0, 0]
    let rc = socketpair(
        AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
    precondition(rc == 0, "socketpair failed")
    return (fds[0], fds[1])
}

private func send(_ text: String, to fd: Int32) {
    let bytes = Array(text.utf8)
    let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    precondition(n == bytes.count)
}

/// Counts what the loop saw; read and written only on the loop, read by the test after a `sync` to it.
private final class Tally: @unchecked Sendable {
    var readable = 0
    var writable = 0
    var received: [UInt8] = []
    var sockets: [Socket] = []
    var spareFDs: [Int32] = []
}

private func onLoop(_ loop: EventLoop, _ work: @escaping () -> Void) {
    let box = LoopBound(work, loopUnchecked: loop)
    loop.queue.sync { box.value() }
}

private func settle(_ loop: EventLoop, milliseconds: Int = 50) {
    usleep(UInt32(milliseconds) * 1000)
    loop.queue.sync {}
}

/// Starts a socket on `fd` that reads one byte per readable event, counts it in `tally.readable`, then calls
/// `afterByte`. Call on the loop.
/// Waits until the loop has read `count` bytes into `tally`: a look every 5 ms, for at most 10 s. While a turn
/// lingers its queue is busy, so each look also waits for the turn to end.
private func waitForReads(_ count: Int, loop: EventLoop, tally: Tally) {
    var reads = 0
    for _ in 0..<2000 {
        settle(loop, milliseconds: 5)
        onLoop(loop) { reads = tally.readable }
        if reads >= count { return }
    }
}

private func startByteReader(fd: Int32, loop: EventLoop, tally: Tally, afterByte: @escaping () -> Void = {}) {
    let socket = Socket(fd: fd, loop: loop)
    socket.onReadable = {
        var byte: [UInt8] = [0]
        guard case .bytes = byte.withUnsafeMutableBytes({ socket.read(into: $0) }) else { return }
        tally.readable += 1
        afterByte()
    }
    socket.start()
    tally.sockets.append(socket)
}

@Suite("poller: one epoll set per loop under one Dispatch source")
struct PollerTests {
    @Test("readable bytes reach onReadable; a handler that leaves bytes unread is called again (level-triggered)")
    func levelTriggered() {
        let loop = EventLoop(index: 0, label: "poller-test")
        let (mine, peer) = socketPair()
        defer { Glibc.close(peer) }
        let tally = Tally()
        onLoop(loop) {
            let socket = Socket(fd: mine, loop: loop)
            var one: [UInt8] = [0]
            socket.onReadable = {
                tally.readable += 1
                // One byte per call: the rest must come back in later turns without new data arriving.
                if case .bytes = one.withUnsafeMutableBytes({ socket.read(into: $0) }) { tally.received += one }
            }
            socket.start()
            tally.sockets.append(socket)
        }
        send("abc", to: peer)
        settle(loop, milliseconds: 100)
        onLoop(loop) {
            #expect(tally.received == Array("abc".utf8))
            #expect(tally.readable >= 3)
            tally.sockets.forEach { $0.close() }
        }
    }

    @Test("a paused socket whose peer hung up is not reported again and again; resuming delivers the EOF")
    func pausedHangUpDoesNotSpin() {
        let loop = EventLoop(index: 0, label: "poller-test")
        let (mine, peer) = socketPair()
        let tally = Tally()
        onLoop(loop) {
            let socket = Socket(fd: mine, loop: loop)
            socket.onReadable = { tally.readable += 1 }
            socket.start()
            socket.setReadInterest(false)
            tally.sockets.append(socket)
        }
        Glibc.close(peer)
        settle(loop, milliseconds: 100)
        onLoop(loop) {
            #expect(tally.readable == 0)
            tally.sockets[0].onReadable = {
                tally.readable += 1
                var buffer = [UInt8](repeating: 0, count: 16)
                if buffer.withUnsafeMutableBytes({ tally.sockets[0].read(into: $0) }) == .eof {
                    tally.sockets[0].close()
                }
            }
            tally.sockets[0].setReadInterest(true)
        }
        settle(loop)
        onLoop(loop) {
            #expect(tally.readable == 1)
            #expect(tally.sockets[0].isClosed)
        }
    }

    @Test("write interest reports writability only while it is on")
    func writeInterest() {
        let loop = EventLoop(index: 0, label: "poller-test")
        let (mine, peer) = socketPair()
        defer { Glibc.close(peer) }
        let tally = Tally()
        onLoop(loop) {
            let socket = Socket(fd: mine, loop: loop)
            socket.onWritable = {
                tally.writable += 1
                socket.setWriteInterest(false)
            }
            socket.start()
            tally.sockets.append(socket)
        }
        settle(loop)
        onLoop(loop) {
            #expect(tally.writable == 0)
            tally.sockets[0].setWriteInterest(true)
        }
        settle(loop)
        onLoop(loop) {
            #expect(tally.writable == 1)
            tally.sockets[0].close()
        }
    }

    @Test("an event fetched for a socket closed earlier in the same turn never reaches the socket that reuses its slot")
    func staleEventsAreDropped() {
        let loop = EventLoop(index: 0, label: "poller-test")
        let (first, firstPeer) = socketPair()
        let (second, secondPeer) = socketPair()
        defer {
            Glibc.close(firstPeer)
            Glibc.close(secondPeer)
        }
        let tally = Tally()
        let replacementReads = Atomic<Int>(0)
        onLoop(loop) {
            let a = Socket(fd: first, loop: loop)
            let b = Socket(fd: second, loop: loop)
            // Whichever is delivered first closes the other and opens a socket in its place; the other's event,
            // already fetched in this turn, must be dropped, not delivered to the newcomer.
            func closeOther(_ other: Socket) {
                guard !other.isClosed, tally.spareFDs.isEmpty else { return }
                other.close()
                // The newcomer takes the closed socket's poller slot (the most recently freed one), so the stale
                // event carries the newcomer's slot index and only its generation tells them apart. (Its fd may
                // differ: other tests open fds concurrently.)
                let (fresh, freshPeer) = socketPair()
                tally.spareFDs = [freshPeer]
                let newcomer = Socket(fd: fresh, loop: loop)
                newcomer.onReadable = { replacementReads.add(1, ordering: .relaxed) }
                newcomer.start()
                tally.sockets.append(newcomer)
            }
            a.onReadable = { closeOther(b) }
            b.onReadable = { closeOther(a) }
            a.start()
            b.start()
            tally.sockets += [a, b]
        }
        // Both become readable before the loop wakes, so one epoll batch holds both events.
        onLoop(loop) {
            send("x", to: firstPeer)
            send("y", to: secondPeer)
        }
        settle(loop, milliseconds: 100)
        onLoop(loop) {
            #expect(replacementReads.load(ordering: .relaxed) == 0)
            for socket in tally.sockets where !socket.isClosed { socket.close() }
            tally.spareFDs.forEach { _ = Glibc.close($0) }
        }
    }

    @Test("work queued with runAfterTurn runs after every event of the turn, once")
    func afterTurnRunsOnce() {
        let loop = EventLoop(index: 0, label: "poller-test")
        let pairs = (0..<4).map { _ in socketPair() }
        defer { pairs.forEach { _ = Glibc.close($0.1) } }
        let tally = Tally()
        let order = Mutex<[String]>([])
        onLoop(loop) {
            for (index, pair) in pairs.enumerated() {
                let socket = Socket(fd: pair.0, loop: loop)
                socket.onReadable = {
                    var buffer = [UInt8](repeating: 0, count: 8)
                    _ = buffer.withUnsafeMutableBytes { socket.read(into: $0) }
                    order.withLock { $0.append("event \(index)") }
                    if tally.readable == 0 {
                        loop.runAfterTurn { order.withLock { $0.append("after") } }
                    }
                    tally.readable += 1
                }
                socket.start()
                tally.sockets.append(socket)
            }
            for pair in pairs { send("z", to: pair.1) }
        }
        settle(loop, milliseconds: 100)
        onLoop(loop) {
            let seen = order.withLock { $0 }
            #expect(seen.count == 5)
            #expect(seen.last == "after")
            tally.sockets.forEach { $0.close() }
        }
    }

    /// Sends one byte, and a second 100 ms after the loop read the first (on a loaded test machine the yields alone
    /// can keep a turn going for tens of milliseconds); returns how many bytes were read and the loop's turn count
    /// at each read. The test's own thread sends both bytes: a timer on Dispatch's shared pool can be held back
    /// past any fixed wait when parallel tests keep that pool busy, and it could then write to a closed socket.
    private func turnsAtTwoReads(lingerNanoseconds: Int) -> (reads: Int, turns: [Int]) {
        let loop = EventLoop(index: 0, label: "poller-test")
        let (mine, peer) = socketPair()
        defer { Glibc.close(peer) }
        let tally = Tally()
        let turnsAtReads = Mutex<[Int]>([])
        let firstRead = DispatchSemaphore(value: 0)
        onLoop(loop) {
            loop.poller.lingerNanoseconds = lingerNanoseconds
            startByteReader(fd: mine, loop: loop, tally: tally) {
                turnsAtReads.withLock { $0.append(loop.poller.turnCount) }
                if tally.readable == 1 { firstRead.signal() }
            }
        }
        send("1", to: peer)
        if firstRead.wait(timeout: .now() + .seconds(10)) == .success {
            usleep(100_000)
            send("2", to: peer)
            waitForReads(2, loop: loop, tally: tally)
        }
        var reads = 0
        onLoop(loop) {
            reads = tally.readable
            tally.sockets.forEach { $0.close() }
        }
        return (reads, turnsAtReads.withLock { $0 })
    }

    @Test("an event that arrives while a turn lingers on the set is served in that turn, without a Dispatch wake-up")
    func lingerCatchesTheNextEvent() {
        // Long enough that the second byte surely falls inside it.
        let (reads, turns) = turnsAtTwoReads(lingerNanoseconds: 1_000_000_000)
        #expect(reads == 2)
        #expect(turns.count == 2 && turns[0] == turns[1], "turn counts at the two reads: \(turns)")
    }

    @Test("without a linger the same second byte needs a turn of its own (the check above can fail)")
    func noLingerNeedsASecondTurn() {
        let (reads, turns) = turnsAtTwoReads(lingerNanoseconds: 0)
        #expect(reads == 2)
        #expect(turns.count == 2 && turns[0] < turns[1], "turn counts at the two reads: \(turns)")
    }

    @Test("work handed to a lingering loop from another thread runs in that turn, without a Dispatch wake-up")
    func handOffReachesALingeringTurn() {
        let loop = EventLoop(index: 0, label: "poller-test")
        let (mine, peer) = socketPair()
        defer { Glibc.close(peer) }
        let tally = Tally()
        let turns = Mutex<[Int]>([])
        let firstRead = DispatchSemaphore(value: 0)
        let handedOffRan = DispatchSemaphore(value: 0)
        onLoop(loop) {
            loop.poller.lingerNanoseconds = 1_000_000_000
            startByteReader(fd: mine, loop: loop, tally: tally) {
                turns.withLock { $0.append(loop.poller.turnCount) }
                firstRead.signal()
            }
        }
        send("1", to: peer)
        #expect(firstRead.wait(timeout: .now() + .seconds(10)) == .success)
        usleep(100_000)
        let ranInTurn = Mutex(false)
        loop.handOff {
            turns.withLock { $0.append(loop.poller.turnCount) }
            ranInTurn.withLock { $0 = loop.poller.inTurn }
            handedOffRan.signal()
        }
        #expect(handedOffRan.wait(timeout: .now() + .seconds(10)) == .success)
        onLoop(loop) { tally.sockets.forEach { $0.close() } }
        let seen = turns.withLock { $0 }
        #expect(seen.count == 2 && seen[0] == seen[1], "turn counts at the read and at the handed-off work: \(seen)")
        // Work queued with `queue.async` would have waited for the turn to end, and run outside it.
        #expect(ranInTurn.withLock { $0 }, "the handed-off work ran after the turn, not in it")
    }

    @Test("work handed off from several threads at once runs on the loop, each piece once, in each thread's order")
    func handOffFromManyThreads() {
        let loop = EventLoop(index: 0, label: "poller-test")
        let threads = 4
        let perThread = 500
        let ran = Mutex<[[Int]]>(Array(repeating: [], count: threads))
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for n in 0..<perThread {
                loop.handOff {
                    loop.assertInLoop()
                    let total = ran.withLock { lists in
                        lists[thread].append(n)
                        return lists.reduce(0) { $0 + $1.count }
                    }
                    if total == threads * perThread { done.signal() }
                }
                if n % 50 == 0 { usleep(200) }  // now and then the loop drains the inbox and parks between posts
            }
        }
        #expect(done.wait(timeout: .now() + .seconds(10)) == .success)
        loop.queue.sync {}
        let lists = ran.withLock { $0 }
        for thread in 0..<threads {
            #expect(lists[thread] == Array(0..<perThread), "thread \(thread) ran \(lists[thread].count) pieces")
        }
    }

    @Test("turns whose yields catch nothing halve the yield budget, down to one; a busy turn's yields stay bounded")
    func yieldBudgetShrinksWhenIdle() {
        let loop = EventLoop(index: 0, label: "poller-test")
        let (mine, peer) = socketPair()
        defer { Glibc.close(peer) }
        let tally = Tally()
        onLoop(loop) {
            startByteReader(fd: mine, loop: loop, tally: tally)
            // The halving is under test here, not the rest a loaded machine's long yields can start.
            loop.poller.neverRestYields()
        }
        var budgets: [Int] = []
        for sent in 1...7 {
            // One byte, then quiet: the turn serves it and every yield after it comes back empty.
            send("x", to: peer)
            waitForReads(sent, loop: loop, tally: tally)
            onLoop(loop) { budgets.append(loop.poller.yieldBudget) }
        }
        onLoop(loop) {
            #expect(tally.readable == 7)
            tally.sockets.forEach { $0.close() }
        }
        #expect(TurnYields.most == 32)
        #expect(budgets == [16, 8, 4, 2, 1, 1, 1])
    }
}

@Suite("turn yields: the budget adapts to what yielding brought")
struct TurnYieldsTests {
    @Test("caught events double the budget up to the most; yields that catch nothing halve it down to one")
    func adapts() {
        var yields = TurnYields()
        #expect(yields.budget == TurnYields.most)
        var seen: [Int] = []
        for _ in 0..<6 {
            yields.afterTurn(caught: false, exhausted: true)
            seen.append(yields.budget)
        }
        #expect(seen == [16, 8, 4, 2, 1, 1])
        // A turn that ended on events (its budget not spent) and caught none after yielding changes nothing.
        yields.afterTurn(caught: false, exhausted: false)
        #expect(yields.budget == 1)
        seen = []
        for _ in 0..<7 {
            yields.afterTurn(caught: true, exhausted: true)
            seen.append(yields.budget)
        }
        #expect(seen == [2, 4, 8, 16, 32, 32, 32])
    }

    @Test("longYieldsToRest long yields within a window start a rest of restTurns turns, then one yield is tried")
    func longYieldsRest() {
        var yields = TurnYields()
        let long = TurnYields.longYieldNanoseconds
        for _ in 0..<(TurnYields.longYieldsToRest - 1) {
            let started = yields.yielded(nanoseconds: long, caught: false)
            #expect(!started)
        }
        let started = yields.yielded(nanoseconds: long, caught: false)
        #expect(started)
        #expect(yields.budget == 0)
        for _ in 0..<(TurnYields.restTurns - 1) {
            yields.afterTurn(caught: false, exhausted: true)
            #expect(yields.budget == 0)
        }
        yields.afterTurn(caught: false, exhausted: true)
        #expect(yields.budget == 1)
        yields.afterTurn(caught: true, exhausted: true)
        #expect(yields.budget == 2)
    }

    @Test("short yields, and long ones too rare to fill a window, never start a rest")
    func rareLongYieldsDoNotRest() {
        var yields = TurnYields()
        for i in 0..<(TurnYields.window * 20) {
            // One long yield in every window-sized stretch, the rest short.
            let started = yields.yielded(
                nanoseconds: i % TurnYields.window == 7 ? TurnYields.longYieldNanoseconds : 5_000, caught: false)
            #expect(!started)
        }
        #expect(yields.budget == TurnYields.most)
    }

    @Test("long yields that brought events (a client's or upstream's long burst) never start a rest")
    func longYieldsThatCatchDoNotRest() {
        var yields = TurnYields()
        for _ in 0..<(TurnYields.window * 4) {
            let started = yields.yielded(nanoseconds: TurnYields.longYieldNanoseconds * 3, caught: true)
            #expect(!started)
        }
        #expect(yields.budget == TurnYields.most)
    }
}

@Suite("loop clock: the wall clock read once per batch of events")
struct LoopClockTests {
    @Test(
        "every read within one batch gives the batch's first reading; the next batch, and work outside batches, read anew"
    )
    func oneReadingPerBatch() {
        let loop = EventLoop(index: 0, label: "clock-test")
        let source = ManualClock(nanoseconds: 1_000)
        let clock = LoopClock(source: source, loop: loop)
        let (mine, peer) = socketPair()
        defer { Glibc.close(peer) }
        let tally = Tally()
        let readings = Mutex<[[Int64]]>([])
        onLoop(loop) {
            // One byte per event, so each byte is a batch of its own.
            startByteReader(fd: mine, loop: loop, tally: tally) {
                let first = clock.nowNanoseconds()
                source.advance(nanoseconds: 5)
                readings.withLock { $0.append([first, clock.nowNanoseconds()]) }
            }
        }
        send("1", to: peer)
        waitForReads(1, loop: loop, tally: tally)
        var outside: [Int64] = []
        onLoop(loop) {
            outside.append(clock.nowNanoseconds())
            source.advance(nanoseconds: 7)
            outside.append(clock.nowNanoseconds())
        }
        send("2", to: peer)
        waitForReads(2, loop: loop, tally: tally)
        onLoop(loop) { tally.sockets.forEach { $0.close() } }
        #expect(readings.withLock { $0 } == [[1_000, 1_000], [1_012, 1_012]])
        #expect(outside == [1_005, 1_012])
    }
}
