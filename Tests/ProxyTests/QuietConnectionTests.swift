import Foundation
import Testing

@testable import Proxy
import TestSupport

/// A TLS connection that goes quiet gives its record buffers back at the loop's next sweeps
/// (`Transport.releaseBuffersIfQuiet`); the next request on it must find a working connection.
@Suite("Quiet TLS connections")
struct QuietConnectionTests {
    @Test("a keep-alive TLS connection carries requests after sweeps have released its buffers")
    func requestsAfterRelease() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        // One connection (the script checks it kept its socket), three requests after pauses of several sweeps;
        // the last one has a body of several records.
        let script = """
            import http.client, socket, ssl, sys, time
            ctx = ssl.create_default_context(cafile=sys.argv[2])
            conn = http.client.HTTPConnection("gateway.test", int(sys.argv[1]))
            conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))),
                                        server_hostname="gateway.test")
            first = conn.sock
            out = []
            for i, (method, path, body) in enumerate([("GET", "/quiet/1", None), ("GET", "/quiet/2", None),
                                                       ("PUT", "/quiet/3", b"q" * 70000)]):
                if i: time.sleep(0.8)
                conn.request(method, path, body=body)
                r = conn.getresponse()
                data = r.read()
                out.append(f"{r.status} {len(data)} {conn.sock is first}")
            print(";".join(out))
            """
        let out = try TestProcess.run(
            "/usr/bin/env", ["python3", "-c", script, String(f.tlsPort), f.caFile.path], timeout: 30)
        #expect(out.status == 0, "\(out.stderr)")
        let results = out.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";")
        #expect(results.count == 3, "\(out.stdout)")
        for result in results {
            #expect(result.hasPrefix("200 "), "\(out.stdout)")
            #expect(result.hasSuffix(" True"), "the connection was not kept: \(out.stdout)")
        }
        let paths = f.upstreamRequests().compactMap { $0.split(separator: " ").dropFirst().first }
        #expect(paths == ["/quiet/1", "/quiet/2", "/quiet/3"])
    }
}
