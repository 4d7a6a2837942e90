// libFuzzer driver for the HTTP1 parsers; built and run by run.sh, not by SwiftPM.
//
// The first input byte picks a mode, the rest is the wire. Invariants checked (a violation traps, which libFuzzer
// reports as a crash with the input saved):
// - no crash, no sanitizer report, in any parser path;
// - the events do not depend on how the bytes are split: one piece, byte by byte, and pseudo-random pieces give
//   the same events once consecutive bodies are merged;
// - the events follow the grammar head, body*, trailers?, end, with error only last and bodies never empty, and a
//   Content-Length body delivers exactly that many bytes;
// - every request head the parser accepts is accepted by the serializer and parses back to the same head.

import GatewayCore
import HTTP1

private enum Merged<Event: Equatable>: Equatable {
    case event(Event)
    case body([UInt8])
}

private func merge<Event: Equatable>(_ events: [Event], body: (Event) -> ArraySlice<UInt8>?) -> [Merged<Event>] {
    var out: [Merged<Event>] = []
    for event in events {
        if let bytes = body(event) {
            precondition(!bytes.isEmpty, "empty body event")
            if case .body(let previous) = out.last {
                out[out.count - 1] = .body(previous + bytes)
            } else {
                out.append(.body(Array(bytes)))
            }
        } else {
            out.append(.event(event))
        }
    }
    return out
}

/// Cut points derived from the input itself, so a crash reproduces from the saved input alone.
private func cuts(for bytes: [UInt8], seed: UInt8) -> [Int] {
    guard bytes.count > 1 else { return [] }
    var state = UInt64(seed) &+ UInt64(bytes.count) &* 0x9E37_79B9_7F4A_7C15
    var out: [Int] = []
    for _ in 0..<(Int(seed % 8) + 1) {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        out.append(Int((state >> 33) % UInt64(bytes.count - 1)) + 1)
    }
    return out.sorted()
}

private func runRequests(_ bytes: [UInt8], cuts: [Int], limits: HTTP1Limits) -> [HTTP1RequestEvent] {
    var parser = HTTP1RequestParser(limits: limits)
    var events: [HTTP1RequestEvent] = []
    var start = 0
    for cut in cuts + [bytes.count] where cut >= start {
        bytes[start..<cut].withUnsafeBytes { parser.feed($0) }
        start = cut
        while let event = parser.next() { events.append(event) }
    }
    parser.feedEOF()
    while let event = parser.next() { events.append(event) }
    precondition(parser.next() == nil, "events after the end of input")
    return events
}

private func runResponses(_ bytes: [UInt8], cuts: [Int], methods: [String]) -> [HTTP1ResponseEvent] {
    var parser = HTTP1ResponseParser(limits: HTTP1Limits(maxRequestLineBytes: 256, maxHeaderBytes: 512))
    for method in methods { parser.requestSent(method: method) }
    var events: [HTTP1ResponseEvent] = []
    var start = 0
    for cut in cuts + [bytes.count] where cut >= start {
        parser.feed(bytes[start..<cut])
        start = cut
        while let event = parser.next() { events.append(event) }
    }
    parser.feedEOF()
    while let event = parser.next() { events.append(event) }
    return events
}

/// Checks the request event grammar and re-serializes every head.
private func checkRequestGrammar(_ events: [HTTP1RequestEvent], limits: HTTP1Limits) {
    var inMessage = false
    var afterTrailers = false
    var expected: Int?
    var received = 0
    for (index, event) in events.enumerated() {
        switch event {
        case .head(let head, let info):
            precondition(!inMessage, "head inside a message")
            inMessage = true
            afterTrailers = false
            received = 0
            if case .contentLength(let n) = info.framing {
                precondition(n <= limits.maxBodyBytes, "Content-Length above the limit accepted")
                expected = n
            } else {
                expected = info.framing == .none ? 0 : nil
            }
            checkRoundTrip(head, limits: limits)
        case .body(let bytes):
            precondition(inMessage && !afterTrailers, "body outside a message")
            received += bytes.count
            precondition(received <= limits.maxBodyBytes, "body above the limit delivered")
        case .trailers:
            precondition(inMessage && !afterTrailers && expected == nil, "trailers outside a chunked message")
            afterTrailers = true
        case .end:
            precondition(inMessage, "end outside a message")
            if let expected { precondition(received == expected, "Content-Length body of the wrong size") }
            inMessage = false
        case .error(let error):
            precondition(index == events.count - 1, "events after an error")
            precondition([400, 413, 414, 417, 431, 501, 505].contains(error.status), "unexpected status")
        }
    }
}

private func checkRoundTrip(_ head: RequestHead, limits: HTTP1Limits) {
    var plain = head
    plain.scheme = nil
    // Absolute-form authority came from the target; the serialized origin-form head carries only Host.
    plain.authority = head.headers["host"]
    let wire: [UInt8]
    do {
        wire = try HTTP1Serializer.requestHead(plain)
    } catch {
        preconditionFailure("the serializer refused a head the parser accepted: \(error)")
    }
    var parser = HTTP1RequestParser(limits: HTTP1Limits(maxRequestLineBytes: 1 << 20, maxHeaderBytes: 1 << 20))
    parser.feed(wire)
    guard case .head(let again, _) = parser.next() else { preconditionFailure("a serialized head did not parse") }
    precondition(again == plain, "a serialized head parsed differently")
}

private func checkResponseGrammar(_ events: [HTTP1ResponseEvent]) {
    var inMessage = false
    for (index, event) in events.enumerated() {
        switch event {
        case .informational(let head):
            precondition(!inMessage && head.status >= 100 && head.status < 200, "misplaced informational")
        case .head:
            precondition(!inMessage, "head inside a message")
            inMessage = true
        case .body, .trailers:
            precondition(inMessage, "body outside a message")
        case .end:
            precondition(inMessage, "end outside a message")
            inMessage = false
        case .error(let error):
            precondition(index == events.count - 1 && error.status == 502, "misplaced error")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP1(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let mode = data[0]
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let split = cuts(for: bytes, seed: mode)
    let everyByte = bytes.isEmpty ? [] : Array(1..<bytes.count)

    if mode & 1 == 0 {
        let limits =
            mode & 2 == 0
            ? HTTP1Limits()
            : HTTP1Limits(
                maxRequestLineBytes: 64, maxHeaderBytes: 128, maxHeaderCount: 4, maxBodyBytes: 32,
                maxChunkSizeDigits: 3, maxChunkLineBytes: 32)
        let body: (HTTP1RequestEvent) -> ArraySlice<UInt8>? = {
            if case .body(let b) = $0 { return b } else { return nil }
        }
        let whole = runRequests(bytes, cuts: [], limits: limits)
        checkRequestGrammar(whole, limits: limits)
        let reference = merge(whole, body: body)
        precondition(merge(runRequests(bytes, cuts: everyByte, limits: limits), body: body) == reference, "byte split")
        precondition(merge(runRequests(bytes, cuts: split, limits: limits), body: body) == reference, "random split")
    } else {
        let methods = (0..<3).map { mode & (4 << $0) != 0 ? "HEAD" : "GET" }
        let body: (HTTP1ResponseEvent) -> ArraySlice<UInt8>? = {
            if case .body(let b) = $0 { return b } else { return nil }
        }
        let whole = runResponses(bytes, cuts: [], methods: methods)
        checkResponseGrammar(whole)
        let reference = merge(whole, body: body)
        let byByte = merge(runResponses(bytes, cuts: everyByte, methods: methods), body: body)
        precondition(byByte == reference, "byte split")
        precondition(merge(runResponses(bytes, cuts: split, methods: methods), body: body) == reference, "random split")
    }
    return 0
}
