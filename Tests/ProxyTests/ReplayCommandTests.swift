import Recording
import Testing

@testable import Proxy

@Suite("Replay: why curl got no answer")
struct CurlOutcomeTests {
    @Test(
        "each transport failure is named, never shown as status 0",
        arguments: [
            (
                7,
                """
                *   Trying 127.0.0.1:27995...
                * connect to 127.0.0.1 port 27995 failed: Connection refused
                * Failed to connect to 127.0.0.1 port 27995 after 0 ms: Couldn't connect to server
                curl: (7) Failed to connect to 127.0.0.1 port 27995 after 0 ms: Couldn't connect to server
                """,
                "connection refused"
            ),
            (
                7,
                "* connect to 10.0.0.1 port 80 from 10.0.0.2 port 5 failed: No route to host\ncurl: (7) Failed",
                "no route to host"
            ),
            (7, "curl: (7) Failed to connect to h port 1: Couldn't connect to server", "cannot connect"),
            (6, "curl: (6) Could not resolve host: nowhere.invalid", "cannot resolve host"),
            (28, "curl: (28) Connection timed out after 10001 milliseconds", "timeout while connecting"),
            (28, "curl: (28) SSL connection timeout", "timeout while connecting"),
            (
                28, "curl: (28) Operation timed out after 30001 milliseconds with 0 bytes received",
                "timeout waiting for the answer"
            ),
            (
                60,
                "* SSL certificate problem: self-signed certificate\ncurl: (60) SSL certificate problem: self-signed certificate\nMore details here",
                "TLS: certificate verify failed (self-signed certificate)"
            ),
            (
                35, "curl: (35) OpenSSL/3.0.22: error:0A00010B:SSL routines::wrong version number",
                "TLS: handshake failed (wrong version number)"
            ),
            (52, "curl: (52) Empty reply from server", "empty reply"),
            (56, "curl: (56) Recv failure: Connection reset by peer", "connection reset"),
            (99, "curl: (99) something new", "curl error 99 (something new)"),
            (-1, "", "curl was killed"),
        ])
    func reasons(exitCode: Int32, log: String, reason: String) {
        #expect(CurlOutcome.result(httpCode: "000", exitCode: exitCode, verboseLog: log) == .failed(reason: reason))
    }

    @Test("a response head is an answer, even when the body then failed")
    func answered() {
        #expect(CurlOutcome.result(httpCode: "409", exitCode: 0, verboseLog: "") == .answered(status: 409))
        #expect(CurlOutcome.result(httpCode: "200\n", exitCode: 18, verboseLog: "") == .answered(status: 200))
        #expect(CurlOutcome.result(httpCode: "", exitCode: 0, verboseLog: "") == .failed(reason: "no HTTP answer"))
    }
}

@Suite("serve and check: how a list of errors is printed")
struct ErrorReportTests {
    @Test("one prefixed headline, then every error line as it is, neither prefixed nor indented")
    func errorReport() {
        let errors = [
            "/etc/gw.yaml:3:9: tenant.tier: 'platinum' is not a tier\n/etc/gw.yaml:4:1: frob: unknown key 'frob'",
            "/etc/gw.yaml: listeners[0].tls: no certificate",
        ]
        #expect(
            CommandLineRunner.errorReport("check: /etc/gw.yaml: invalid", errors: errors) == [
                "myorg-gateway: check: /etc/gw.yaml: invalid (3 errors)",
                "/etc/gw.yaml:3:9: tenant.tier: 'platinum' is not a tier",
                "/etc/gw.yaml:4:1: frob: unknown key 'frob'",
                "/etc/gw.yaml: listeners[0].tls: no certificate",
            ])
        #expect(
            CommandLineRunner.errorReport("serve: gw.yaml: not started", errors: ["cannot bind 127.0.0.1:1"]) == [
                "myorg-gateway: serve: gw.yaml: not started (1 error)", "cannot bind 127.0.0.1:1",
            ])
    }
}
