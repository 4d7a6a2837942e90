import CNghttp2
import GatewayCore
import HTTP2

/// A real nghttp2 client session, driven over memory, recording what the server sent on each stream.
final class TestClient {
    final class Stream {
        var status: Int?
        var headers: [(String, String)] = []
        var body: [UInt8] = []
        var closed = false
        var errorCode: UInt32 = 0
        var requestBody: [UInt8] = []
        var requestBodyOffset = 0
    }

    private(set) var session: OpaquePointer!
    var streams: [Int32: Stream] = [:]
    var goaway: (lastStreamID: Int32, errorCode: UInt32)?

    init(settings: [(Int32, UInt32)] = []) {
        var callbacks: OpaquePointer?
        precondition(nghttp2_session_callbacks_new(&callbacks) == 0)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            _, frame, name, nameCount, value, valueCount, _, userData in
            let client = TestClient.from(userData)
            guard let frame, let stream = client.streams[frame.pointee.hd.stream_id] else { return 0 }
            let n = String(decoding: UnsafeBufferPointer(start: name, count: nameCount), as: UTF8.self)
            let v = String(decoding: UnsafeBufferPointer(start: value, count: valueCount), as: UTF8.self)
            if n == ":status" { stream.status = Int(v) } else { stream.headers.append((n, v)) }
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, count, userData in
            TestClient.from(userData).streams[streamID]?.body += UnsafeBufferPointer(start: data, count: count)
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
            if let stream = TestClient.from(userData).streams[streamID] {
                stream.closed = true
                stream.errorCode = errorCode
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            guard let frame, frame.pointee.hd.type == UInt8(NGHTTP2_GOAWAY.rawValue) else { return 0 }
            TestClient.from(userData).goaway = (frame.pointee.goaway.last_stream_id, frame.pointee.goaway.error_code)
            return 0
        }
        var raw: OpaquePointer?
        // Safety: the client owns the session and deletes it in deinit; callbacks run only inside its calls.
        precondition(nghttp2_session_client_new(&raw, callbacks, Unmanaged.passUnretained(self).toOpaque()) == 0)
        session = raw
        var entries = settings.map { nghttp2_settings_entry(settings_id: $0.0, value: $0.1) }
        precondition(nghttp2_submit_settings(session, 0, &entries, entries.count) == 0)
    }

    deinit { nghttp2_session_del(session) }

    fileprivate static func from(_ userData: UnsafeMutableRawPointer?) -> TestClient {
        // Safety: see init.
        Unmanaged<TestClient>.fromOpaque(userData!).takeUnretainedValue()
    }

    /// Submits a request; `body` nil sends HEADERS with END_STREAM.
    @discardableResult
    func request(_ fields: [(String, String)], body: [UInt8]? = nil) -> Int32 {
        var bytes: [UInt8] = []
        var spans: [(Int, Int, Int, Int)] = []
        for (name, value) in fields {
            let nameStart = bytes.count
            bytes += name.utf8
            let valueStart = bytes.count
            bytes += value.utf8
            spans.append((nameStart, valueStart - nameStart, valueStart, bytes.count - valueStart))
        }
        bytes.append(0)
        let streamID = bytes.withUnsafeMutableBufferPointer { buffer -> Int32 in
            let base = buffer.baseAddress!
            let nvs = spans.map {
                nghttp2_nv(name: base + $0.0, value: base + $0.2, namelen: $0.1, valuelen: $0.3, flags: 0)
            }
            guard body != nil else { return nghttp2_submit_request(session, nil, nvs, nvs.count, nil, nil) }
            var provider = nghttp2_data_provider(
                source: nghttp2_data_source(ptr: nil),
                read_callback: { _, streamID, buffer, length, flags, _, userData in
                    guard let stream = TestClient.from(userData).streams[streamID] else { return -902 }
                    let n = min(length, stream.requestBody.count - stream.requestBodyOffset)
                    for i in 0..<n { buffer![i] = stream.requestBody[stream.requestBodyOffset + i] }
                    stream.requestBodyOffset += n
                    if stream.requestBodyOffset == stream.requestBody.count {
                        flags!.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
                    }
                    return n
                })
            return nghttp2_submit_request(session, nil, nvs, nvs.count, &provider, nil)
        }
        precondition(streamID > 0)
        let stream = Stream()
        stream.requestBody = body ?? []
        streams[streamID] = stream
        return streamID
    }

    func reset(stream: Int32, errorCode: UInt32 = NGHTTP2_CANCEL.rawValue) {
        precondition(nghttp2_submit_rst_stream(session, 0, stream, errorCode) == 0)
    }

    func goAway() {
        precondition(nghttp2_submit_goaway(session, 0, 0, 0, nil, 0) == 0)
    }

    /// Everything the client wants to send now.
    func output() -> [UInt8] {
        var out: [UInt8] = []
        while true {
            var data: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &data)
            precondition(n >= 0)
            if n == 0 { break }
            out += UnsafeBufferPointer(start: data, count: n)
        }
        return out
    }

    func input(_ bytes: [UInt8]) {
        let n = bytes.withUnsafeBufferPointer { nghttp2_session_mem_recv(session, $0.baseAddress, $0.count) }
        precondition(n == bytes.count, "client rejected server output: \(n)")
    }
}

/// A server session and a real client wired together in memory; `onEvent` plays the application.
final class SessionPair {
    let server: HTTP2ServerSession
    let client: TestClient
    var events: [HTTP2Event] = []
    var onEvent: (HTTP2Event, HTTP2ServerSession) -> Void = { _, _ in }
    /// The high-water mark given to every `pendingOutput` call.
    var maxOutput: Int
    /// The most bytes any single `pendingOutput` call appended.
    private(set) var largestOutputChunk = 0
    private(set) var outputCalls = 0

    init(limits: HTTP2Limits = HTTP2Limits(), clientSettings: [(Int32, UInt32)] = [], maxOutput: Int = 1 << 20) {
        server = HTTP2ServerSession(limits: limits, clock: ManualClock())
        client = TestClient(settings: clientSettings)
        self.maxOutput = maxOutput
    }

    /// Moves bytes both ways until neither side has anything to say (or `rounds` runs out).
    func pump(rounds: Int = 10_000) {
        for _ in 0..<rounds {
            let fromClient = client.output()
            if !fromClient.isEmpty { server.feed(fromClient) }
            drainEvents()
            var fromServer: [UInt8] = []
            let n = server.pendingOutput(into: &fromServer, maxBytes: maxOutput)
            outputCalls += 1
            largestOutputChunk = max(largestOutputChunk, n)
            drainEvents()
            if !fromServer.isEmpty { client.input(fromServer) }
            if fromClient.isEmpty && fromServer.isEmpty { return }
        }
    }

    func drainEvents() {
        while let event = server.nextEvent() {
            events.append(event)
            onEvent(event, server)
        }
    }

    func requests() -> [(Int32, RequestHead, Bool)] {
        events.compactMap {
            if case .request(let id, let head, let end) = $0 { return (id, head, end) }
            return nil
        }
    }

    func body(of streamID: Int32) -> [UInt8] {
        events.flatMap { event -> [UInt8] in
            if case .data(streamID, let bytes) = event { return bytes }
            return []
        }
    }
}

/// A server session fed hand-built frames; its output is parsed frame by frame.
final class RawPeer {
    let server: HTTP2ServerSession
    let clock: ManualClock
    let build = FrameBuilder()
    let reader = FrameReader()
    var events: [HTTP2Event] = []

    init(limits: HTTP2Limits = HTTP2Limits()) {
        clock = ManualClock()
        server = HTTP2ServerSession(limits: limits, clock: clock)
    }

    /// Feeds `bytes`, collects events, and reads everything the server writes.
    func send(_ bytes: [UInt8]) {
        server.feed(bytes)
        flush()
    }

    func flush() {
        drain()
        while true {
            var out: [UInt8] = []
            server.pendingOutput(into: &out, maxBytes: 1 << 20)
            drain()
            if out.isEmpty { break }
            reader.read(out)
        }
    }

    private func drain() {
        while let event = server.nextEvent() { events.append(event) }
    }

    func frames(_ type: FrameType, stream: Int32? = nil) -> [ParsedFrame] {
        reader.frames(type).filter { stream == nil || $0.stream == stream }
    }

    var requests: [(Int32, RequestHead, Bool)] {
        events.compactMap {
            if case .request(let id, let head, let end) = $0 { return (id, head, end) }
            return nil
        }
    }

    var connectionErrors: [HTTP2ConnectionError] {
        events.compactMap {
            if case .connectionError(let reason) = $0 { return reason }
            return nil
        }
    }
}
