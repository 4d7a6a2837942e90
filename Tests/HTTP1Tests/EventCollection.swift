import GatewayCore
import HTTP1

/// Events with consecutive `.body` merged, so that runs fed in different splits compare equal.
enum Collected<Event: Equatable>: Equatable {
    case event(Event)
    case body([UInt8])
}

func merge<Event: Equatable>(_ events: [Event], body: (Event) -> ArraySlice<UInt8>?) -> [Collected<Event>] {
    var out: [Collected<Event>] = []
    for event in events {
        if let bytes = body(event) {
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

/// Feeds `bytes` cut at `cuts` (sorted offsets), draining events after each piece, then signals EOF if asked.
func parseRequests(
    _ bytes: [UInt8], cuts: [Int] = [], limits: HTTP1Limits = HTTP1Limits(), eof: Bool = false
) -> [Collected<HTTP1RequestEvent>] {
    var parser = HTTP1RequestParser(limits: limits)
    var events: [HTTP1RequestEvent] = []
    var start = 0
    for cut in cuts + [bytes.count] where cut >= start {
        bytes[start..<cut].withUnsafeBytes { parser.feed($0) }
        start = cut
        while let event = parser.next() { events.append(event) }
    }
    if eof {
        parser.feedEOF()
        while let event = parser.next() { events.append(event) }
    }
    return merge(events) { if case .body(let b) = $0 { return b } else { return nil } }
}

func parseRequests(_ text: String, cuts: [Int] = [], limits: HTTP1Limits = HTTP1Limits(), eof: Bool = false)
    -> [Collected<HTTP1RequestEvent>]
{
    parseRequests(Array(text.utf8), cuts: cuts, limits: limits, eof: eof)
}

/// Feeds a response stream for requests with `methods`, as `parseRequests` does.
func parseResponses(
    _ bytes: [UInt8], methods: [String], cuts: [Int] = [], eof: Bool = false,
    limits: HTTP1Limits = HTTP1Limits()
) -> [Collected<HTTP1ResponseEvent>] {
    var parser = HTTP1ResponseParser(limits: limits)
    for method in methods { parser.requestSent(method: method) }
    var events: [HTTP1ResponseEvent] = []
    var start = 0
    for cut in cuts + [bytes.count] where cut >= start {
        parser.feed(bytes[start..<cut])
        start = cut
        while let event = parser.next() { events.append(event) }
    }
    if eof {
        parser.feedEOF()
        while let event = parser.next() { events.append(event) }
    }
    return merge(events) { if case .body(let b) = $0 { return b } else { return nil } }
}

func parseResponses(_ text: String, methods: [String], cuts: [Int] = [], eof: Bool = false)
    -> [Collected<HTTP1ResponseEvent>]
{
    parseResponses(Array(text.utf8), methods: methods, cuts: cuts, eof: eof)
}

/// The status of the error event, if the run ended in one.
func errorStatus(_ events: [Collected<HTTP1RequestEvent>]) -> Int? {
    if case .event(.error(let error)) = events.last { return error.status }
    return nil
}

/// A deterministic generator, so a failing random split can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomCuts(count: Int, pieces: Int, using rng: inout SplitMix64) -> [Int] {
    guard count > 1 else { return [] }
    return (0..<pieces).map { _ in Int.random(in: 1..<count, using: &rng) }.sorted()
}
