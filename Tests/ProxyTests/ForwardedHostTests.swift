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
