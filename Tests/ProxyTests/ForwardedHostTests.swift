import Foundation
import GatewayCore
import Testing

@testable import Proxy

@Suite("X-Forwarded-Host")
struct ForwardedHostTests {
    @Test(
        "a listener bound to a domain never forwards a Host naming another; an unbound one forwards the client's",
        arguments: [
            (nil, "acme.test:8443", "acme.test:8443"),
            (nil, nil, nil),
            ("login.acme.test", "login.acme.test:8443", "login.acme.test:8443"),
            ("login.acme.test", "LOGIN.Acme.test", "LOGIN.Acme.test"),
            ("login.acme.test", "evil.example", "login.acme.test"),
            ("login.acme.test", "localhost:8081", "login.acme.test"),
            ("login.acme.test", "login.acme.test.evil.example", "login.acme.test"),
            ("login.acme.test", nil, "login.acme.test"),
        ] as [(String?, String?, String?)])
    func forwardedHost(listenerDomain: String?, authority: String?, expected: String?) {
        #expect(ForwardRewrite.forwardedHost(authority: authority, listenerDomain: listenerDomain) == expected)
    }
}

@Suite("X-Request-Id toward the upstream")
struct ForwardedRequestIDTests {
    static let origin = UpstreamOrigin(
        host: "127.0.0.1", port: 9, useTLS: false, tlsContext: nil, maxConnections: 1, connectTimeoutMs: 1000,
        responseTimeoutMs: 1000, idleTimeoutMs: 1000, secretHeaders: [], clientIPHeader: "X-Forwarded-For")

    @Test(
        "the upstream gets the id the events record: the client's first usable value, else the gateway's own",
        arguments: [
            ([], ["gw-1"]),
            (["abc-123"], ["abc-123"]),
            (["first", "second"], ["first"]),
            (["has space"], ["gw-1"]),
            ([String(repeating: "x", count: 129)], ["gw-1"]),
            ([""], ["gw-1"]),
        ] as [([String], [String])])
    func requestIDs(sent: [String], forwarded: [String]) throws {
        let head = RequestHead(
            method: "GET", target: "/x", headers: HTTPFields(sent.map { ("X-Request-Id", $0) }), authority: "a.test")
        let bytes = try ForwardRewrite.upstreamRequest(
            head, bodyLength: 0, origin: Self.origin, clientIP: "127.0.0.1", isTLS: true, requestID: "gw-1",
            forwardedHost: "a.test")
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\r\n")
        let ids = lines.filter { $0.lowercased().hasPrefix("x-request-id:") }.map {
            String($0.dropFirst("x-request-id:".count)).trimmingCharacters(in: .whitespaces)
        }
        #expect(ids == forwarded)
    }
}
