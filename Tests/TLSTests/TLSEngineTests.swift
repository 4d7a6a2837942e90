import COpenSSL
@testable import TLS
import TestSupport
import Testing

@Suite("TLSEngine")
struct TLSEngineTests {
    struct ALPNCase: CustomTestStringConvertible, Sendable {
        let server: [String]
        let client: [String]
        let expected: String?
        var testDescription: String { "server \(server), client \(client) -> \(expected ?? "none")" }
    }

    @Test(
        "TLS 1.3 handshake in memory agrees on the server's preferred ALPN protocol",
        arguments: [
            ALPNCase(server: ["h2", "http/1.1"], client: ["h2", "http/1.1"], expected: "h2"),
            ALPNCase(server: ["h2", "http/1.1"], client: ["http/1.1", "h2"], expected: "h2"),
            ALPNCase(server: ["h2", "http/1.1"], client: ["http/1.1"], expected: "http/1.1"),
            ALPNCase(server: ["http/1.1"], client: ["h2", "http/1.1"], expected: "http/1.1"),
            ALPNCase(server: ["h2", "http/1.1"], client: [], expected: nil),
            ALPNCase(server: [], client: ["h2"], expected: nil),
        ])
    func alpnSelection(_ example: ALPNCase) throws {
        let pair = try TLSPair(
            client: TLSTestFixtures.client(alpn: example.client), serverName: "localhost",
            server: TLSTestFixtures.server(alpn: example.server))
        let result = pair.handshake()
        #expect(result.client == .complete)
        #expect(result.server == .complete)
        #expect(pair.client.protocolVersion == "TLSv1.3")
        #expect(pair.server.protocolVersion == "TLSv1.3")
        #expect(pair.client.negotiatedALPN == example.expected)
        #expect(pair.server.negotiatedALPN == example.expected)
        #expect(pair.server.serverName == "localhost")
        #expect(pair.client.isEstablished && pair.server.isEstablished)
    }

    @Test("no common ALPN protocol fails both sides with no_application_protocol")
    func alpnWithoutOverlap() throws {
        let pair = try TLSPair(
            client: TLSTestFixtures.client(alpn: ["h2"]), serverName: "localhost",
            server: TLSTestFixtures.server(alpn: ["http/1.1"]))
        let result = pair.handshake()
        guard case .failed(let serverError) = result.server, case .failed(let clientError) = result.client else {
            Issue.record("expected both sides to fail, got \(result)")
            return
        }
        #expect(serverError.kind == .handshakeFailed)
        #expect(serverError.reason.contains("no application protocol"))
        #expect(clientError.reason.contains("no application protocol"))
        #expect(ERR_peek_error() == 0, "a failure must leave this thread's error queue empty")
    }

    @Test("TLS 1.2 can be forced and negotiates an ECDHE AEAD suite")
    func tls12() throws {
        let pair = try TLSPair(
            client: TLSTestFixtures.client(alpn: ["h2", "http/1.1"], maximum: .tls12), serverName: "localhost",
            server: TLSTestFixtures.server())
        let result = pair.handshake()
        #expect(result.client == .complete)
        #expect(result.server == .complete)
        #expect(pair.server.protocolVersion == "TLSv1.2")
        #expect(pair.server.negotiatedALPN == "h2")
        let suite = try #require(pair.server.cipherSuite)
        #expect(suite.hasPrefix("ECDHE-"))
        #expect(suite.contains("GCM") || suite.contains("CHACHA20"))
    }

    @Test("a server limited to TLS 1.3 refuses a TLS 1.2-only client")
    func versionFloor() throws {
        let pair = try TLSPair(
            client: TLSTestFixtures.client(maximum: .tls12), serverName: "localhost",
            server: TLSTestFixtures.server(minimum: .tls13))
        let result = pair.handshake()
        guard case .failed(let error) = result.server else {
            Issue.record("expected the server to fail, got \(result.server)")
            return
        }
        #expect(error.reason.contains("protocol"))
        #expect(result.client != .complete)
    }

    @Test("application data flows both ways after the handshake", arguments: [TLSProtocolVersion.tls12, .tls13])
    func applicationData(version: TLSProtocolVersion) throws {
        let pair = try TLSPair(
            client: TLSTestFixtures.client(maximum: version), serverName: "localhost", server: TLSTestFixtures.server())
        #expect(pair.handshake() == (.complete, .complete))
        let request = Array("GET /my-org/details HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        let toServer = pair.send(request, from: pair.client)
        #expect(toServer.failure == nil)
        #expect(toServer.received == request)
        let response = Array("HTTP/1.1 204 No Content\r\n\r\n".utf8)
        let toClient = pair.send(response, from: pair.server)
        #expect(toClient.failure == nil)
        #expect(toClient.received == response)
    }

    @Test("a 1 MiB payload goes through partial writes with bounded network buffering", arguments: [true, false])
    func largePayload(fromClient: Bool) throws {
        let highWater = 32 * 1024
        let pair = try TLSPair(
            client: TLSTestFixtures.client(), serverName: "localhost", server: TLSTestFixtures.server(),
            outboundHighWaterMark: highWater)
        #expect(pair.handshake() == (.complete, .complete))
        // A pattern that repeats only every 2^32 bytes, so a dropped or duplicated record cannot go unnoticed.
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) }
        let sender = fromClient ? pair.client : pair.server

        // Without draining, the engine stops accepting once the high-water mark is reached.
        var offered = payload[...]
        var acceptedWithoutDrain = 0
        while case .accepted(let count) = offered.withUnsafeBytes({ sender.writePlaintext($0) }), count > 0 {
            acceptedWithoutDrain += count
            offered = offered.dropFirst(count)
        }
        #expect(acceptedWithoutDrain > 0)
        #expect(acceptedWithoutDrain < payload.count)
        #expect(sender.pendingNetworkBytes >= highWater)
        #expect(sender.pendingNetworkBytes < highWater + 2 * 17 * 1024)

        // What was accepted before is delivered first, then the rest, in order.
        let rest = pair.send(Array(offered), from: sender, expectedCount: payload.count)
        #expect(rest.failure == nil)
        #expect(rest.partialWrites > 0)
        #expect(rest.maxPendingNetworkBytes < highWater + 2 * 17 * 1024)
        #expect(rest.received.count == payload.count)
        let intact = rest.received == payload
        #expect(intact, "the received payload differs from the one sent")
    }

    /// A handshaken pair without a high-water mark, as the gateway's transports run the engine: it takes every
    /// byte offered.
    private static func establishedUnboundedPair() throws -> TLSPair {
        let pair = try TLSPair(
            client: TLSTestFixtures.client(), serverName: "localhost", server: TLSTestFixtures.server(),
            outboundHighWaterMark: .max)
        #expect(pair.handshake() == (.complete, .complete))
        return pair
    }

    /// Bytes that repeat only every 2^32, so a dropped, duplicated or reordered piece cannot go unnoticed.
    private static func pattern(count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 11) }
    }

    @Test("ciphertext taken a few bytes at a time from the network buffer, as a blocked socket takes it, arrives whole")
    func sendNetworkInPieces() throws {
        let pair = try Self.establishedUnboundedPair()
        let payload = Self.pattern(count: 300_000)
        #expect(pair.server.writePlaintext(payload) == .accepted(payload.count))
        let pending = pair.server.pendingNetworkBytes
        #expect(pending > payload.count)

        // A socket that takes nothing leaves every byte in place.
        pair.server.sendNetwork { _ in 0 }
        #expect(pair.server.pendingNetworkBytes == pending)

        var received: [UInt8] = []
        var sizes = [1, 7, 1000, 4096, 16_389, 65_536]
        while pair.server.pendingNetworkBytes > 0 {
            let size = sizes.removeFirst()
            sizes.append(size)
            pair.server.sendNetwork { bytes in
                let n = min(size, bytes.count)
                pair.client.feedNetwork(UnsafeRawBufferPointer(rebasing: bytes[..<n]))
                return n
            }
            var plaintext: [UInt8] = []
            #expect(pair.client.readPlaintext(into: &plaintext) == .needsNetworkBytes)
            received += plaintext
        }
        #expect(received.count == payload.count)
        let intact = received == payload
        #expect(intact, "the received payload differs from the one sent")
    }

    @Test("ciphertext lent in pieces of any size reads as fed; the unread part of a record is kept after the loan")
    func lentInput() throws {
        let pair = try Self.establishedUnboundedPair()
        let payload = Self.pattern(count: 200_000)
        #expect(pair.server.writePlaintext(payload) == .accepted(payload.count))
        var ciphertext: [UInt8] = []
        pair.server.drainNetwork(into: &ciphertext)
        var received: [UInt8] = []
        var offset = 0
        let sizes = [1, 5, 4_000, 17_000, 9, 65_536, 333]
        var round = 0
        while offset < ciphertext.count {
            let size = min(sizes[round % sizes.count], ciphertext.count - offset)
            round += 1
            let piece = Array(ciphertext[offset..<offset + size])
            offset += size
            let result = piece.withUnsafeBytes { bytes in
                pair.client.withNetworkInput(bytes) { pair.client.readPlaintext(into: &received) }
            }
            #expect(result == .needsNetworkBytes)
            // Bytes fed during a loan come after the lent ones.
            if round == 3 && offset < ciphertext.count {
                let next = Array(ciphertext[offset..<min(offset + 100, ciphertext.count)])
                offset += next.count
                let extra = next.withUnsafeBytes { nextBytes in
                    Array(ciphertext[offset..<min(offset + 50, ciphertext.count)]).withUnsafeBytes { later in
                        pair.client.withNetworkInput(nextBytes) {
                            pair.client.feedNetwork(later)
                            return later.count
                        }
                    }
                }
                offset += extra
            }
        }
        #expect(pair.client.readPlaintext(into: &received) == .needsNetworkBytes)
        #expect(received.count == payload.count)
        let intact = received == payload
        #expect(intact, "the received payload differs from the one sent")

        // Whole records lent are read in place: nothing is stored.
        pair.client.releaseIdleBuffers()
        #expect(pair.client.networkBufferCapacity.input == 0)
        #expect(pair.server.writePlaintext([UInt8](repeating: 9, count: 3_000)) == .accepted(3_000))
        var records: [UInt8] = []
        pair.server.drainNetwork(into: &records)
        var last: [UInt8] = []
        _ = records.withUnsafeBytes { bytes in
            pair.client.withNetworkInput(bytes) { pair.client.readPlaintext(into: &last) }
        }
        #expect(last.count == 3_000)
        #expect(pair.client.networkBufferCapacity.input == 0)
    }

    @Test("a network buffer that grew past 1 MiB is freed once drained; a smaller one is kept for the next burst")
    func hugeBurstIsNotKept() throws {
        let pair = try Self.establishedUnboundedPair()
        #expect(pair.server.writePlaintext([UInt8](repeating: 1, count: 100_000)) == .accepted(100_000))
        var sink: [UInt8] = []
        pair.server.drainNetwork(into: &sink)
        #expect(pair.server.pendingNetworkBytes == 0)
        #expect(pair.server.networkBufferCapacity.output > 100_000)

        #expect(pair.server.writePlaintext([UInt8](repeating: 2, count: 1_500_000)) == .accepted(1_500_000))
        #expect(pair.server.networkBufferCapacity.output > 1 << 20)
        pair.server.drainNetwork(into: &sink)
        #expect(pair.server.networkBufferCapacity.output == 0)
        // And the connection goes on.
        pair.client.feedNetwork(sink)
        var received: [UInt8] = []
        #expect(pair.client.readPlaintext(into: &received) == .needsNetworkBytes)
        #expect(received.count == 1_600_000)
    }

    @Test("releaseIdleBuffers returns the network buffers' memory and the connection keeps working")
    func releaseIdleBuffers() throws {
        let pair = try TLSPair(
            client: TLSTestFixtures.client(), serverName: "localhost", server: TLSTestFixtures.server())
        #expect(pair.handshake() == (.complete, .complete))
        let payload = Array(repeating: UInt8(7), count: 200_000)
        #expect(pair.send(payload, from: pair.server).received.count == payload.count)
        #expect(pair.server.networkBufferCapacity.output > 64 * 1024)
        #expect(pair.client.networkBufferCapacity.input > 16 * 1024)

        pair.server.releaseIdleBuffers()
        pair.client.releaseIdleBuffers()
        #expect(pair.server.networkBufferCapacity.output == 0)
        #expect(pair.client.networkBufferCapacity.input == 0)

        // Pending bytes are never dropped: a buffer that is not empty is kept.
        #expect(pair.client.writePlaintext([1, 2, 3]) == .accepted(3))
        pair.client.releaseIdleBuffers()
        #expect(pair.client.pendingNetworkBytes > 0)
        #expect(pair.send([4, 5], from: pair.client).received == [1, 2, 3, 4, 5])
        #expect(pair.send([6], from: pair.server).received == [6])
    }

    @Test("OpenSSL's record buffers go when released between records, stay while they hold part of a record")
    func releaseRecordBuffers() throws {
        let pair = try Self.establishedUnboundedPair()
        #expect(pair.send([1, 2, 3], from: pair.client).received == [1, 2, 3])
        #expect(pair.client.releaseIdleBuffers())
        #expect(pair.server.releaseIdleBuffers())

        // Half of one record reaches the client: OpenSSL has read it into its record buffer and must keep it.
        let payload = Self.pattern(count: 10_000)
        #expect(pair.server.writePlaintext(payload) == .accepted(payload.count))
        var ciphertext: [UInt8] = []
        pair.server.drainNetwork(into: &ciphertext)
        let half = ciphertext.count / 2
        pair.client.feedNetwork(Array(ciphertext[..<half]))
        var received: [UInt8] = []
        #expect(pair.client.readPlaintext(into: &received) == .needsNetworkBytes)
        #expect(received.isEmpty)
        #expect(!pair.client.releaseIdleBuffers())

        pair.client.feedNetwork(Array(ciphertext[half...]))
        #expect(pair.client.readPlaintext(into: &received) == .needsNetworkBytes)
        let intact = received == payload
        #expect(intact, "the record read across the release differs from the one sent")
        // Buffers released on both sides come back for the next exchange, both ways.
        #expect(pair.client.releaseIdleBuffers())
        #expect(pair.send([9], from: pair.server).received == [9])
        #expect(pair.send([8, 7], from: pair.client).received == [8, 7])

        // A record decrypted but read only in part (a reader paused by backpressure) is kept too.
        #expect(pair.server.writePlaintext(payload) == .accepted(payload.count))
        pair.transfer()
        var partial: [UInt8] = []
        #expect(pair.client.readPlaintext(into: &partial, maxBytes: 1000) == .limitReached)
        #expect(!pair.client.releaseIdleBuffers())
        #expect(pair.client.readPlaintext(into: &partial) == .needsNetworkBytes)
        let whole = partial == payload
        #expect(whole, "the record read across the refused release differs from the one sent")
    }

    @Test("readPlaintext stops at maxBytes and resumes without new network bytes")
    func readLimit() throws {
        let pair = try TLSPair(
            client: TLSTestFixtures.client(), serverName: "localhost", server: TLSTestFixtures.server())
        #expect(pair.handshake() == (.complete, .complete))
        let message = Array(repeating: UInt8(ascii: "x"), count: 40_000)
        #expect(pair.client.writePlaintext(message) == .accepted(message.count))
        pair.transfer()
        var received: [UInt8] = []
        #expect(pair.server.readPlaintext(into: &received, maxBytes: 1000) == .limitReached)
        #expect(received.count == 1000)
        #expect(pair.server.readPlaintext(into: &received) == .needsNetworkBytes)
        #expect(received.count == message.count)
        #expect(received.allSatisfy { $0 == UInt8(ascii: "x") })
    }

    @Test("close_notify: the peer reads .closed after the data sent before it, and answers")
    func closeNotify() throws {
        let pair = try TLSPair(
            client: TLSTestFixtures.client(), serverName: "localhost", server: TLSTestFixtures.server())
        #expect(pair.handshake() == (.complete, .complete))
        let last = Array("bye".utf8)
        #expect(pair.client.writePlaintext(last) == .accepted(last.count))
        #expect(pair.client.shutdown() == .incomplete)
        pair.transfer()
        var received: [UInt8] = []
        #expect(pair.server.readPlaintext(into: &received) == .closed)
        #expect(received == last)
        #expect(pair.server.shutdown() == .complete)
        pair.transfer()
        #expect(pair.client.shutdown() == .complete)
    }

    @Test("a TCP EOF without close_notify is reported as truncation")
    func truncation() throws {
        let pair = try TLSPair(
            client: TLSTestFixtures.client(), serverName: "localhost", server: TLSTestFixtures.server())
        #expect(pair.handshake() == (.complete, .complete))
        var received: [UInt8] = []
        #expect(pair.server.readPlaintext(into: &received) == .needsNetworkBytes)
        pair.server.noteNetworkEOF()
        guard case .failed(let error) = pair.server.readPlaintext(into: &received) else {
            Issue.record("expected a truncation failure")
            return
        }
        #expect(error.kind == .protocolError)
        #expect(error.reason.contains("unexpected eof"))
        #expect(ERR_peek_error() == 0)
    }

    @Test(
        "garbage instead of a ClientHello fails the handshake and clears the error queue; plain HTTP is named",
        arguments: [
            ("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", TLSError.Kind.plaintextHTTP),
            ("\u{16}\u{3}\u{1}\u{0}\u{5}hello", .handshakeFailed), ("\u{1}\u{2}\u{3}\u{4}\u{5}\u{6}", .handshakeFailed),
        ])
    func garbage(input: String, kind: TLSError.Kind) throws {
        let server = TLSEngine(server: try TLSTestFixtures.server())
        server.feedNetwork(Array(input.utf8))
        guard case .failed(let error) = server.handshake() else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.kind == kind, "\(error)")
        #expect(ERR_peek_error() == 0)
        #expect(server.handshake() == .failed(error), "a failed engine stays failed")
        #expect(server.writePlaintext([1, 2, 3]) == .failed(error))
    }

    @Test("writes before the handshake completes are not accepted")
    func writeBeforeHandshake() throws {
        let pair = try TLSPair(
            client: TLSTestFixtures.client(), serverName: "localhost", server: TLSTestFixtures.server())
        #expect(pair.client.writePlaintext([1, 2, 3]) == .accepted(0))
        // That call started the handshake: a ClientHello is waiting.
        #expect(pair.client.pendingNetworkBytes > 0)
        #expect(pair.handshake() == (.complete, .complete))
        let delivery = pair.send([1, 2, 3], from: pair.client)
        #expect(delivery.received == [1, 2, 3])
    }
}
