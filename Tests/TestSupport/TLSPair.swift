import TLS

/// A client and a server `TLSEngine` joined in memory: ciphertext moves between them with no socket, so tests
/// drive full handshakes and data transfers deterministically.
public final class TLSPair {
    public let client: TLSEngine
    public let server: TLSEngine
    private var scratch: [UInt8] = []

    public init(client: TLSEngine, server: TLSEngine) {
        self.client = client
        self.server = server
    }

    /// Builds both engines from their contexts.
    public convenience init(
        client: TLSClientContext, serverName: String, server: TLSServerContext,
        outboundHighWaterMark: Int = TLSEngine.defaultOutboundHighWaterMark
    ) throws {
        self.init(
            client: try TLSEngine(
                client: client, serverName: serverName, outboundHighWaterMark: outboundHighWaterMark),
            server: TLSEngine(server: server, outboundHighWaterMark: outboundHighWaterMark))
    }

    /// Moves every pending ciphertext byte to the other side, once each way; returns how many moved.
    @discardableResult
    public func transfer() -> Int {
        var moved = 0
        for (from, to) in [(client, server), (server, client)] {
            scratch.removeAll(keepingCapacity: true)
            from.drainNetwork(into: &scratch)
            moved += scratch.count
            to.feedNetwork(scratch)
        }
        return moved
    }

    /// Drives both handshakes until each has completed or failed, or nothing moves any more.
    public func handshake(maxRounds: Int = 32) -> (client: TLSStepResult, server: TLSStepResult) {
        var clientResult = TLSStepResult.incomplete
        var serverResult = TLSStepResult.incomplete
        for _ in 0..<maxRounds {
            if clientResult == .incomplete { clientResult = client.handshake() }
            var moved = transfer()
            if serverResult == .incomplete { serverResult = server.handshake() }
            moved += transfer()
            if clientResult != .incomplete && serverResult != .incomplete { break }
            if moved == 0 && (clientResult != .incomplete || serverResult != .incomplete) {
                // One side finished (or failed) and the other is waiting for bytes that will never come.
                break
            }
        }
        return (clientResult, serverResult)
    }

    /// What a one-way transfer did.
    public struct Delivery {
        public var received: [UInt8] = []
        /// Calls to `writePlaintext` that accepted fewer bytes than offered.
        public var partialWrites = 0
        public var writeCalls = 0
        /// The most ciphertext the sender held at once, right after a write.
        public var maxPendingNetworkBytes = 0
        public var failure: TLSError?
    }

    /// Sends `bytes` from `sender` (one of the pair) to the other engine, draining the network after every write
    /// and reading on the far side, until `expectedCount` bytes (default: `bytes.count`; more when earlier
    /// writes are still in flight) have arrived or something failed.
    public func send(
        _ bytes: [UInt8], from sender: TLSEngine, expectedCount: Int? = nil, maxRounds: Int = 100_000
    ) -> Delivery {
        let expectedCount = expectedCount ?? bytes.count
        let receiver = sender === client ? server : client
        var delivery = Delivery()
        var offset = 0
        for _ in 0..<maxRounds {
            if offset < bytes.count {
                let result = bytes[offset...].withUnsafeBytes { sender.writePlaintext($0) }
                delivery.writeCalls += 1
                switch result {
                case .accepted(let count):
                    delivery.maxPendingNetworkBytes = max(
                        delivery.maxPendingNetworkBytes, sender.pendingNetworkBytes)
                    if count < bytes.count - offset { delivery.partialWrites += 1 }
                    offset += count
                case .failed(let error):
                    delivery.failure = error
                    return delivery
                }
            }
            transfer()
            if case .failed(let error) = receiver.readPlaintext(into: &delivery.received) {
                delivery.failure = error
                return delivery
            }
            delivery.maxPendingNetworkBytes = max(delivery.maxPendingNetworkBytes, sender.pendingNetworkBytes)
            if offset == bytes.count && delivery.received.count >= expectedCount { break }
        }
        return delivery
    }
}
