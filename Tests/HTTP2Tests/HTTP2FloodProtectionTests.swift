import GatewayCore
import Testing

@testable import HTTP2

/// Each flood must end the connection with GOAWAY(ENHANCE_YOUR_CALM) and exactly one terminal event, while the same
/// traffic paced under the limit must not.
@Suite("HTTP2ServerSession flood protection")
struct HTTP2FloodProtectionTests {
    /// Frames that spend one token of `flood`, built on a connection past its preface; `n` counts from 0.
    static func offending(_ flood: HTTP2Flood, _ build: FrameBuilder, _ n: Int) -> [UInt8] {
        let stream = Int32(2 * n + 1)
        switch flood {
        case .ping:
            return build.ping(UInt64(n))
        case .settings:
            return build.settings([(0x4, 65_535)])
        case .resetStream:
            return build.headers(stream: stream, FrameBuilder.request(method: "POST"), endStream: false)
                + build.rstStream(stream: stream)
        case .emptyData:
            // Stream 1 is opened by `prologue`.
            return build.data(stream: 1)
        case .continuation:
            // One block split over HEADERS + CONTINUATION: one CONTINUATION per request.
            let block = build.block(FrameBuilder.request())
            let cut = block.count / 2
            return build.frame(.headers, flags: FrameFlag.endStream, stream: stream, payload: Array(block[..<cut]))
                + build.continuation(stream: stream, payload: Array(block[cut...]), endHeaders: true)
        case .glitches:
            return build.headers(stream: stream, FrameBuilder.request([("connection", "close")]))
        case .outboundQueue:
            return []
        }
    }

    static func limits(_ flood: HTTP2Flood, burst: Int, perSecond: Int) -> HTTP2Limits {
        var limits = HTTP2Limits()
        let rate = HTTP2RateLimit(burst: burst, perSecond: perSecond)
        switch flood {
        case .ping: limits.pingRate = rate
        case .settings: limits.settingsRate = rate
        case .resetStream: limits.resetStreamRate = rate
        case .emptyData: limits.emptyDataRate = rate
        case .continuation: limits.continuationRate = rate
        case .glitches: limits.glitchRate = rate
        case .outboundQueue: break
        }
        // Plenty of streams, so the stream limit never interferes.
        limits.maxConcurrentStreams = 1000
        return limits
    }

    static func prologue(_ flood: HTTP2Flood, _ build: FrameBuilder) -> [UInt8] {
        // The client's own first SETTINGS spends a settings token; the burst below accounts for it.
        var bytes = build.start() + build.settings(ack: true)
        if flood == .emptyData {
            bytes += build.headers(stream: 1, FrameBuilder.request(method: "POST"), endStream: false)
        }
        return bytes
    }

    static let floods: [HTTP2Flood] = [.ping, .settings, .resetStream, .emptyData, .continuation, .glitches]

    @Test("a burst over the limit ends the connection with ENHANCE_YOUR_CALM", arguments: floods)
    func floodEndsConnection(flood: HTTP2Flood) {
        let burst = 10
        let peer = RawPeer(limits: Self.limits(flood, burst: burst, perSecond: 1))
        // SETTINGS: the client's initial frame already took one token.
        let allowed = flood == .settings ? burst - 1 : burst
        var bytes = Self.prologue(flood, peer.build)
        for n in 0..<allowed { bytes += Self.offending(flood, peer.build, n) }
        peer.send(bytes)
        #expect(peer.connectionErrors.isEmpty, "\(flood) tripped early")
        #expect(peer.frames(.goaway).isEmpty)

        peer.send(Self.offending(flood, peer.build, allowed))
        #expect(peer.connectionErrors == [.flood(flood)])
        #expect(peer.events.last == .connectionError(.flood(flood)))
        let goaway = peer.frames(.goaway)
        #expect(goaway.count == 1)
        #expect(goaway.first?.errorCode == HTTP2ErrorCode.enhanceYourCalm.rawValue)
        #expect(!peer.server.wantsRead)
        #expect(!peer.server.wantsWrite)

        // Terminal: later input is ignored and produces nothing.
        let before = peer.events.count
        peer.send(peer.build.headers(stream: 999, FrameBuilder.request()))
        #expect(peer.events.count == before)
    }

    @Test("the same frames paced under the refill rate are fine", arguments: floods)
    func pacedTrafficIsAllowed(flood: HTTP2Flood) {
        let peer = RawPeer(limits: Self.limits(flood, burst: 5, perSecond: 2))
        peer.send(Self.prologue(flood, peer.build))
        for n in 0..<40 {
            peer.send(Self.offending(flood, peer.build, n))
            peer.clock.advance(seconds: 0.5)
        }
        #expect(peer.connectionErrors.isEmpty, "\(flood)")
        #expect(peer.frames(.goaway).isEmpty, "\(flood)")
    }

    /// MadeYouReset (2025): frames that are each legal to parse but make the server reset the stream. (A zero
    /// WINDOW_UPDATE or DATA after END_STREAM is a connection error in nghttp2 1.52, so not one of them.)
    static let madeYouReset: [(String, @Sendable (FrameBuilder, Int32) -> [UInt8])] = [
        (
            "body shorter than content-length",
            { build, id in
                build.headers(
                    stream: id, FrameBuilder.request(method: "POST", [("content-length", "5")]), endStream: false)
                    + build.data(stream: id, [1], endStream: true)
            }
        ),
        (
            "body longer than content-length",
            { build, id in
                build.headers(
                    stream: id, FrameBuilder.request(method: "POST", [("content-length", "1")]), endStream: false)
                    + build.data(stream: id, [1, 2], endStream: true)
            }
        ),
        (
            "WINDOW_UPDATE overflowing the stream window",
            { build, id in
                build.headers(stream: id, FrameBuilder.request())
                    + build.windowUpdate(stream: id, increment: 0x7fff_ffff)
            }
        ),
    ]

    @Test("streams the server has to reset count as glitches", arguments: madeYouReset)
    func madeYouResetIsAGlitch(name: String, offend: @Sendable (FrameBuilder, Int32) -> [UInt8]) {
        let peer = RawPeer(limits: Self.limits(.glitches, burst: 10, perSecond: 1))
        peer.send(peer.build.start() + peer.build.settings(ack: true))
        for n in 0...10 {
            let id = Int32(2 * n + 1)
            peer.send(offend(peer.build, id))
            if n < 10 {
                #expect(peer.connectionErrors.isEmpty, "\(name) tripped after \(n + 1)")
                #expect(peer.frames(.rstStream, stream: id).count == 1, "\(name)")
            }
        }
        #expect(peer.connectionErrors == [.flood(.glitches)], "\(name)")
        #expect(peer.frames(.goaway).first?.errorCode == HTTP2ErrorCode.enhanceYourCalm.rawValue, "\(name)")
        // The owner heard about each stream it was working on.
        #expect(peer.events.filter { if case .reset = $0 { return true } else { return false } }.count == 10, "\(name)")
    }

    @Test("the owner's own resets are not glitches")
    func ownerResetsAreNotGlitches() {
        let peer = RawPeer(limits: Self.limits(.glitches, burst: 2, perSecond: 1))
        peer.send(peer.build.start() + peer.build.settings(ack: true))
        for n in 0..<10 {
            let id = Int32(2 * n + 1)
            peer.send(peer.build.headers(stream: id, FrameBuilder.request()))
            #expect(peer.server.resetStream(streamID: id, errorCode: .internalError))
            peer.flush()
        }
        #expect(peer.frames(.rstStream).count == 10)
        #expect(peer.connectionErrors.isEmpty)
    }

    @Test("a CONTINUATION flood inside one header block is stopped by nghttp2's per-block cap")
    func continuationFloodInOneBlock() {
        let peer = RawPeer()
        var bytes = peer.build.start()
        bytes += peer.build.frame(.headers, flags: FrameFlag.endStream, stream: 1, payload: [])
        for _ in 0..<50 { bytes += peer.build.continuation(stream: 1) }
        peer.send(bytes)
        #expect(peer.connectionErrors == [.flood(.continuation)])
        #expect(peer.frames(.goaway).first?.errorCode == HTTP2ErrorCode.enhanceYourCalm.rawValue)
        #expect(peer.requests.isEmpty)
    }

    @Test("empty DATA frames that end the stream are not counted")
    func emptyEndStreamDataIsNotAFlood() {
        let peer = RawPeer(limits: Self.limits(.emptyData, burst: 2, perSecond: 1))
        var bytes = peer.build.start()
        for n in 0..<20 {
            let id = Int32(2 * n + 1)
            bytes += peer.build.headers(stream: id, FrameBuilder.request(method: "POST"), endStream: false)
            bytes += peer.build.data(stream: id, endStream: true)
        }
        peer.send(bytes)
        #expect(peer.connectionErrors.isEmpty)
        #expect(peer.events.filter { if case .endStream = $0 { return true } else { return false } }.count == 20)
    }

    @Test("too many entries in one SETTINGS frame end the connection")
    func tooManySettingsEntries() {
        var limits = HTTP2Limits()
        limits.maxSettingsEntries = 4
        let peer = RawPeer(limits: limits)
        let entries: [(UInt16, UInt32)] = (0..<6).map { _ in (0x4, 65_535) }
        peer.send(FrameBuilder.preface + peer.build.settings(entries))
        #expect(peer.frames(.goaway).count == 1)
        #expect(peer.connectionErrors.count == 1)
    }

    @Test("PING acknowledgements never pile up past the outbound cap")
    func pingAcksBounded() {
        var limits = HTTP2Limits()
        limits.pingRate = HTTP2RateLimit(burst: 10_000, perSecond: 10_000)
        limits.maxOutboundAck = 50
        let peer = RawPeer(limits: limits)
        var bytes = peer.build.start()
        for n in 0..<200 { bytes += peer.build.ping(UInt64(n)) }
        // The server is not drained between PINGs: a peer that never reads.
        peer.server.feed(bytes)
        peer.flush()
        #expect(peer.connectionErrors == [.flood(.outboundQueue)])
        #expect(peer.frames(.ping).count <= 50)
        #expect(peer.frames(.goaway).first?.errorCode == HTTP2ErrorCode.enhanceYourCalm.rawValue)
    }
}
