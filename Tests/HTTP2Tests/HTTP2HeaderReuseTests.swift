import GatewayCore
import Testing

@testable import HTTP2

/// The session reuses the previous header block's fields by position when their bytes repeat. Whatever the
/// sequence of blocks on one connection, each request must come out exactly as it would on a fresh connection.
@Suite("HTTP2ServerSession reuse of repeated header fields")
struct HTTP2HeaderReuseTests {
    typealias Block = [([UInt8], [UInt8])]

    /// What the owner sees of one request, or how the session answered it itself.
    enum Outcome: Equatable {
        case request(RequestHead, endStream: Bool)
        case refused(status: String?, reset: UInt32?)
    }

    static func block(
        method: String = "GET", path: String = "/my-org/details", authority: String = "acme.us.auth0.com",
        _ extra: [(String, String)] = []
    ) -> Block {
        FrameBuilder.request(method: method, path: path, authority: authority, extra).map {
            (Array($0.0.utf8), Array($0.1.utf8))
        }
    }

    static func outcome(_ peer: RawPeer, stream: Int32) -> Outcome {
        if let request = peer.requests.first(where: { $0.0 == stream }) {
            return .request(request.1, endStream: request.2)
        }
        return .refused(
            status: peer.frames(.headers, stream: stream).first?.field(":status"),
            reset: peer.frames(.rstStream, stream: stream).first?.errorCode)
    }

    /// Sends every block on one connection, and each block alone on a fresh one; the outcomes must agree.
    static func check(_ blocks: [Block]) -> [Outcome] {
        let shared = RawPeer()
        shared.send(shared.build.start())
        var outcomes: [Outcome] = []
        for (n, block) in blocks.enumerated() {
            let stream = Int32(2 * n + 1)
            shared.send(shared.build.headers(stream: stream, bytes: block))
            let reused = outcome(shared, stream: stream)
            let fresh = RawPeer()
            fresh.send(fresh.build.start() + fresh.build.headers(stream: 1, bytes: block))
            #expect(reused == outcome(fresh, stream: 1), "block \(n)")
            outcomes.append(reused)
        }
        return outcomes
    }

    static let token = "Bearer " + String(repeating: "eyJhbGciOiJSUzI1NiJ9.", count: 30)
    static let caf: [UInt8] = Array("caf".utf8)

    static let sequences: [(String, [Block])] = [
        (
            "the same block three times",
            Array(repeating: block([("user-agent", "sdk/1.0 (linux)"), ("x-a", "1")]), count: 3)
        ),
        (
            "a value changes at the same length, in its first, middle and last byte",
            [
                block([("x-id", "abcdefghijklmnopqrstuvwxyz")]), block([("x-id", "Abcdefghijklmnopqrstuvwxyz")]),
                block([("x-id", "abcdefghijklMnopqrstuvwxyz")]), block([("x-id", "abcdefghijklmnopqrstuvwxyZ")]),
                block([("x-id", "abcdefghijklmnopqrstuvwxyz")]),
            ]
        ),
        (
            "a name changes while its value stays",
            [block([("x-a", "same value, long enough")]), block([("x-b", "same value, long enough")])]
        ),
        (
            "pseudo-headers change: method, path, authority",
            [
                block(), block(method: "HEAD"), block(path: "/my-org/members?page=2"),
                block(authority: "login.example.com"), block(),
            ]
        ),
        (
            "a field inserted at the front shifts every position",
            [
                block([("accept", "*/*"), ("origin", "https://app.example")]),
                block([("x-first", "1"), ("accept", "*/*"), ("origin", "https://app.example")]),
                block([("accept", "*/*"), ("origin", "https://app.example")]),
            ]
        ),
        (
            "a long token repeats, then differs in one byte",
            [
                block([("authorization", token)]), block([("authorization", token)]),
                block([("authorization", String(token.dropLast()) + "X")]),
            ]
        ),
        (
            "split cookies repeat and are joined every time",
            [
                block([("cookie", "a=1"), ("cookie", "b=2")]), block([("cookie", "a=1"), ("cookie", "b=2")]),
                block([("cookie", "a=1"), ("cookie", "b=3")]),
            ]
        ),
        (
            "a value that is not UTF-8 at the place of a remembered one is still refused",
            [
                block([("x-latin", "cafe")]),
                block() + [(Array("x-latin".utf8), caf + [0xE9])],
                block([("x-latin", "cafe")]),
                block([("x-latin", "café")]),
                block() + [(Array("x-latin".utf8), caf + [0xC3, 0x28])],
                block([("x-latin", "café")]),
            ]
        ),
        (
            "host agreeing, then disagreeing with :authority, then an invalid host",
            [
                block([("host", "acme.us.auth0.com")]), block([("host", "other.example")]),
                block([("host", "acme.us.auth0.com")]), block([("host", "bad host")]),
            ]
        ),
        (
            "paths and authorities the checks passed before, then ones they refuse",
            [
                block(path: "/my-org/details"), block(path: "/my-org/details{"), block(path: "/my-org/details"),
                block(method: "OPTIONS", path: "*"), block(method: "GET", path: "*"),
                block(method: "OPTIONS", path: "*"),
                block(authority: "acme.us.auth0.com"), block(authority: "acme.us.auth0.com:99999"),
                block(authority: "acme.us.auth0.com"), block([("host", "acme.us.auth0.com")]),
                block(path: "/" + String(repeating: "p", count: 9000)),
                block(path: "/" + String(repeating: "p", count: 9000)),
            ]
        ),
        (
            "more fields than the remembered slots, twice",
            Array(repeating: block((0..<40).map { ("x-f\($0)", "value number \($0) of forty") }), count: 2)
        ),
        (
            "empty values and a content-length",
            [
                block([("x-empty", ""), ("content-length", "0")]),
                block([("x-empty", ""), ("content-length", "0")]),
                block([("x-empty", "now set"), ("content-length", "0")]),
            ]
        ),
    ]

    @Test("each request is what a fresh connection would see", arguments: sequences)
    func matchesFreshConnection(name: String, blocks: [Block]) {
        let outcomes = Self.check(blocks)
        #expect(outcomes.count == blocks.count, "\(name)")
    }

    @Test("repeated fields reach the owner with their values, and changed ones with the new values")
    func valuesAfterReuse() {
        let outcomes = Self.check([
            Self.block([("origin", "https://app.example"), ("user-agent", "sdk/1.0 (linux; x86_64)")]),
            Self.block([("origin", "https://app.example"), ("user-agent", "sdk/1.0 (linux; x86_64)")]),
            Self.block([("origin", "https://app.exampla"), ("user-agent", "sdk/1.0 (linux; x86_64)")]),
        ])
        let origins = outcomes.map { outcome -> String? in
            guard case .request(let head, _) = outcome else { return nil }
            return head.headers["origin"]
        }
        #expect(origins == ["https://app.example", "https://app.example", "https://app.exampla"])
    }
}
