import Dispatch
import EventLoop
import GatewayCore
import HTTP1
import Synchronization
import TLS

/// Builds the per-loop request handler for a listener from the current snapshot. Sendable: shared by all loops.
protocol HandlerFactory: Sendable {
    func makeHandler(for listener: ListenerProfile, context: LoopContext) -> any RequestHandler
}

/// An immutable view of everything a request needs: swapped atomically on reload, so connections in flight
/// keep the snapshot they started with.
final class GatewaySnapshot: Sendable {
    let listeners: [ListenerProfile]
    let handlers: any HandlerFactory
    let generation: Int

    init(listeners: [ListenerProfile], handlers: any HandlerFactory, generation: Int) {
        self.listeners = listeners
        self.handlers = handlers
        self.generation = generation
    }
}

/// State shared by all loops of one gateway process.
final class GatewayState: Sendable {
    let budget: ConnectionBudget
    let instanceID: String
    let metrics: GatewayMetrics
    /// Exchanges and upstream relays alive now (counted in debug builds only), for the tests that check that none
    /// outlives its request.
    let liveExchanges = LiveObjectCount()
    let liveRelays = LiveObjectCount()
    private let current: Mutex<GatewaySnapshot>

    init(snapshot: GatewaySnapshot, maxConnections: Int, metrics: GatewayMetrics, instanceID: String) {
        self.current = Mutex(snapshot)
        self.budget = ConnectionBudget(limit: maxConnections)
        self.metrics = metrics
        self.instanceID = instanceID
    }

    var snapshot: GatewaySnapshot { current.withLock { $0 } }

    func swap(_ snapshot: GatewaySnapshot) { current.withLock { $0 = snapshot } }
}

/// The running server: listeners on every loop, the loops' contexts, graceful shutdown and reload.
///
/// Life cycle: `init` → `start()` (binds every listener on every loop with SO_REUSEPORT) → `reload(_:)` any
/// number of times → `shutdown(graceMilliseconds:)`. Listener addresses are fixed at start; a reload swaps
/// certificates, policies and upstreams for new requests.
public final class Gateway: Sendable {
    let group: EventLoopGroup
    let state: GatewayState
    let contexts: Mutex<[LoopBound<LoopContext>?]>
    private let listeners = Mutex<[ListenerHandle]>([])
    private let loopLoads: [LoopLoad]
    private let clock: any WallClock
    /// Called once per loop, on it, with the loop's metrics: returns what that loop calls for each finished
    /// request (with the time it finished), which must not block or keep the exchange. Per loop, so the returned
    /// closure may keep loop-local state.
    let finishedRequest: (@Sendable (LoopMetrics) -> (Exchange, Int64) -> Void)?

    struct ListenerHandle: @unchecked Sendable {
        // Safety: a Listener is only touched on its own loop; the handle only carries it there.
        let listener: Listener
        let loop: EventLoop
    }

    init(
        snapshot: GatewaySnapshot, loops: Int, maxConnections: Int, clock: any WallClock,
        loopThreads: LoopThreads = .auto, metrics: GatewayMetrics = GatewayMetrics(),
        finishedRequest: (@Sendable (LoopMetrics) -> (Exchange, Int64) -> Void)? = nil
    ) {
        self.group = EventLoopGroup(count: loops, threads: loopThreads)
        self.clock = clock
        let startNanos = clock.nowNanoseconds()
        self.state = GatewayState(
            snapshot: snapshot, maxConnections: maxConnections, metrics: metrics,
            instanceID: String(UInt64(startNanos / 1_000_000), radix: 36))
        self.contexts = Mutex(Array(repeating: nil, count: loops))
        self.loopLoads = group.loops.map { _ in LoopLoad() }
        self.finishedRequest = finishedRequest
    }

    /// Creates each loop's context on its own queue and binds every listener; returns the bound addresses
    /// (ports resolved when the configuration asked for port 0).
    func start() throws(SystemError) -> [NetAddress] {
        Socket.ignoreSIGPIPE()
        for loop in group.loops {
            loop.queue.sync {
                let context = LoopContext(
                    loop: loop, clock: clock, metrics: state.metrics, gateway: state, loopLoad: loopLoads[loop.index])
                if let finishedRequest {
                    let clock = context.clock
                    let finish = finishedRequest(context.requestMetrics)
                    context.onRequestFinished = { exchange in finish(exchange, clock.nowNanoseconds()) }
                }
                contexts.withLock { $0[loop.index] = LoopBound(context, loop: loop) }
            }
        }
        var bound: [NetAddress] = []
        for profile in state.snapshot.listeners where profile.address.port != 0 {
            // SO_REUSEPORT would let a second gateway (a stale one, a typo in a unit file) share this address
            // silently; a plain bind first fails with EADDRINUSE when anyone else listens there.
            try TCP.probeExclusive(profile.address)
        }
        for (index, profile) in state.snapshot.listeners.enumerated() {
            var address = profile.address
            let admissions = group.loops.map { loop in
                loop.queue.sync {
                    Admission(listenerIndex: index, state: state, context: contexts.withLock { $0[loop.index] }!.value)
                }
            }
            for loop in group.loops {
                let fd = try TCP.listen(on: address)
                if address.port == 0 {
                    address = NetAddress(host: address.host, port: TCP.localPort(of: fd))!
                }
                let handle = ListenerHandle(listener: Listener(fd: fd, address: address, loop: loop), loop: loop)
                listeners.withLock { $0.append(handle) }
                loop.queue.sync { self.attach(handle.listener, admissions: admissions) }
            }
            bound.append(address)
        }
        return bound
    }

    /// The kernel spreads connections over the loops' SO_REUSEPORT listeners by a hash of their addresses, so a
    /// handful of long-lived connections (a sidecar's clients, a load test's 16) often lands 11 to 5: one loop's
    /// core saturates while the other idles. A loop that accepts while another serves fewer connections hands the
    /// new one over (`EventLoop.handOff`, once per connection), as HAProxy and nghttpx spread theirs over threads.
    /// The hand-off goes through the other loop's own readiness set, so a loop that is busy or lingering takes the
    /// connection in its current turn; a Dispatch hop (`queue.async`) waited for that turn to end and, on a parked
    /// loop, woke Dispatch's manager thread too. With a TLS handshake per connection (`ab.py --counts --modes
    /// close`, three rounds) that and the listener in the set took the context switches per connection from 3.8 to
    /// 1.4 (HAProxy: 1.6) and the CPU per connection from 430 to 393 µs (HAProxy: 431).
    private func attach(_ listener: Listener, admissions: [Admission]) {
        let own = listener.loop.index
        listener.onAccept = { fd, peer in
            var target = own
            var least = admissions[own].load.current
            for other in admissions.indices where other != own {
                let load = admissions[other].load.current
                if load < least {
                    least = load
                    target = other
                }
            }
            let admission = admissions[target]
            admission.load.add()
            if target == own {
                admission.admit(fd: fd, peer: peer)
            } else {
                admission.loop.handOff { admission.admit(fd: fd, peer: peer) }
            }
        }
        listener.start()
    }
    /// Admits connections of one listener on one loop. Everything but `load` and `loop` is touched only on that
    /// loop, in `admit`.
    final class Admission: @unchecked Sendable {
        let load: LoopLoad
        let loop: EventLoop
        private let listenerIndex: Int
        private let state: GatewayState
        private let context: LoopContext
        /// Handlers are built per snapshot generation and per listener, lazily, on the loop.
        private var cachedHandler: (generation: Int, handler: any RequestHandler)?

        init(listenerIndex: Int, state: GatewayState, context: LoopContext) {
            self.listenerIndex = listenerIndex
            self.state = state
            self.context = context
            self.load = context.loopLoad
            self.loop = context.loop
        }

        /// Runs on `loop`, with `load` already counting this connection: a refusal gives the count back, an
        /// admitted connection gives it back when it closes (`LoopContext.unregister`).
        func admit(fd: Int32, peer: String) {
            loop.assertInLoop()
            let snapshot = state.snapshot
            guard listenerIndex < snapshot.listeners.count else {
                load.remove()
                Gateway.refuse(fd: fd, plain: true, context: context)
                return
            }
            let profile = snapshot.listeners[listenerIndex]
            guard !context.isDraining, state.budget.acquire() else {
                load.remove()
                state.metrics.connectionRefused(draining: context.isDraining)
                Gateway.refuse(fd: fd, plain: profile.tls == nil, context: context)
                return
            }
            let handler: any RequestHandler
            if let cachedHandler, cachedHandler.generation == snapshot.generation {
                handler = cachedHandler.handler
            } else {
                handler = snapshot.handlers.makeHandler(for: profile, context: context)
                cachedHandler = (snapshot.generation, handler)
            }
            let connection = ClientConnection(
                fd: fd, peerAddress: peer, profile: profile, handler: handler, context: context)
            connection.start()
        }
    }

    /// Over the connection limit: a plain-text client gets a clear 503, a TLS client a fatal `internal_error` alert
    /// (a record in the clear, as alerts before the handshake are, RFC 8446 §6): a handshake and an encrypted 503
    /// would spend the CPU an overloaded gateway is short of, and a bare close reads as a network fault.
    static func refuse(fd: Int32, plain: Bool, context: LoopContext) {
        // What the client already sent is read first, and the close lingers (`RefusalLinger`): closing a socket with
        // unread bytes resets the connection (RFC 1122 §4.2.2.13), and the client would lose the answer.
        withUnsafeTemporaryAllocation(byteCount: 16 * 1024, alignment: 1) { scratch in
            var rounds = 0
            while rounds < 4, GatewaySyscalls.receive(fd, scratch) == scratch.count { rounds += 1 }
        }
        if !plain {
            let alert: [UInt8] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50]
            _ = alert.withUnsafeBytes { GatewaySyscalls.send(fd, $0) }
        } else {
            var error = TenantError.gateway(
                status: 503, detail: "The gateway is at its connection limit or shutting down; retry later.")
            error.headers.set("Retry-After", "1")
            // Date: RFC 9110 §6.6.1 (a server with a clock sends it), as on every other answer of the gateway.
            let answer = error.closingHTTP1Answer(date: context.httpDate)
            _ = answer.withUnsafeBytes { raw in GatewaySyscalls.send(fd, raw) }
        }
        context.refusalLinger.close(fd)
    }

    func reload(_ snapshot: GatewaySnapshot) { state.swap(snapshot) }

    /// Stops accepting, lets in-flight requests finish until the grace period ends, then closes the rest.
    /// Blocks the calling thread (never a loop).
    func shutdown(graceMilliseconds: Int) {
        for handle in listeners.withLock({ $0 }) {
            handle.loop.queue.sync { handle.listener.close() }
        }
        for loop in group.loops {
            loop.queue.sync { contexts.withLock { $0[loop.index] }?.value.drain() }
        }
        let deadline = DispatchTime.now() + .milliseconds(graceMilliseconds)
        while DispatchTime.now() < deadline {
            var open = 0
            for loop in group.loops {
                loop.queue.sync { open += contexts.withLock { $0[loop.index] }?.value.connectionCount ?? 0 }
            }
            if open == 0 { break }
            usleepMillis(20)
        }
        for loop in group.loops {
            loop.queue.sync { contexts.withLock { $0[loop.index] }?.value.forceCloseAll() }
        }
    }

    var activeConnections: Int { state.metrics.activeConnections }
    /// Client connections each loop serves (or has been handed and will admit next).
    var connectionsPerLoop: [Int] { loopLoads.map(\.current) }
    /// Exchanges and relays not yet freed; always 0 in release builds, which do not count them.
    var liveExchangeCount: Int { state.liveExchanges.current }
    var liveRelayCount: Int { state.liveRelays.current }
}

extension Gateway {
    /// Runs `body` on loop `index` with its context (for work the gateway does on its own behalf).
    func onLoop(_ index: Int, _ body: @escaping (LoopContext) -> Void) {
        let loop = group.loops[index % group.loops.count]
        let box = LoopBound(body, loopUnchecked: loop)
        loop.execute { [self] in
            guard let context = self.contexts.withLock({ $0[loop.index] })?.value else { return }
            box.value(context)
        }
    }
}
