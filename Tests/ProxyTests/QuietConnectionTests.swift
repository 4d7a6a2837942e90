import Foundation
import Testing

@testable import Proxy
import TestSupport

/// One HTTP/1.1 keep-alive connection from Python's http.client that pauses between requests longer than a few of
/// the loop's sweeps (250 ms each), so whatever the sweeper does to a quiet connection happens between them.
enum PausedKeepAliveClient {
    struct Answer {
        var status: Int
        /// Whether the request went out on the socket the first one used.
        var sameSocket: Bool
        var body: String
    }

    /// `requests` are (method, path, body size); `tls` is the CA file and the name to verify, for HTTPS.
    static func run(
        port: UInt16, tls: (caFile: URL, serverName: String)? = nil,
        requests: [(method: String, path: String, bodyBytes: Int)], pauseSeconds: Double = 0.8
    ) throws -> [Answer] {
        let script = """
            import http.client, json, socket, ssl, sys, time
            port, ca, name, pause = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
            conn = http.client.HTTPConnection(name or "127.0.0.1", port)
            conn.sock = socket.create_connection(("127.0.0.1", port))
            if ca:
                conn.sock = ssl.create_default_context(cafile=ca).wrap_socket(conn.sock, server_hostname=name)
            first = conn.sock
            out = []
            for i, (method, path, size) in enumerate(json.loads(sys.argv[5])):
                if i: time.sleep(pause)
                conn.request(method, path, body=b"q" * size if size else None)
                r = conn.getresponse()
                out.append({"status": r.status, "same": conn.sock is first, "body": r.read().decode()})
            print(json.dumps(out))
            """
        let list = try JSONSerialization.data(withJSONObject: requests.map { [$0.method, $0.path, $0.bodyBytes] })
        let out = try TestProcess.run(
            "/usr/bin/env",
            [
                "python3", "-c", script, String(port), tls?.caFile.path ?? "", tls?.serverName ?? "",
                String(pauseSeconds), String(decoding: list, as: UTF8.self),
            ], timeout: 30)
        guard out.status == 0,
            let answers = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]]
        else {
            throw FixtureError("the keep-alive client failed: \(out.stdout) \(out.stderr)")
        }
        return answers.map {
            Answer(
                status: $0["status"] as? Int ?? 0, sameSocket: $0["same"] as? Bool ?? false,
                body: $0["body"] as? String ?? "")
        }
    }
}

/// A TLS connection that goes quiet gives its record buffers back at the loop's next sweeps
/// (`Transport.releaseBuffersIfQuiet`); the next request on it must find a working connection.
@Suite("Quiet TLS connections")
struct QuietConnectionTests {
    @Test("a keep-alive TLS connection carries requests after sweeps have released its buffers")
    func requestsAfterRelease() throws {
        let f = try PassThroughFixture()
        defer { f.stop() }
        // The last request has a body of several records.
        let answers = try PausedKeepAliveClient.run(
            port: f.tlsPort, tls: (f.caFile, "gateway.test"),
            requests: [("GET", "/quiet/1", 0), ("GET", "/quiet/2", 0), ("PUT", "/quiet/3", 70000)])
        #expect(answers.count == 3)
        for answer in answers {
            #expect(answer.status == 200)
            #expect(answer.sameSocket, "the connection was not kept")
        }
        let paths = f.upstreamRequests().compactMap { $0.split(separator: " ").dropFirst().first }
        #expect(paths == ["/quiet/1", "/quiet/2", "/quiet/3"])
    }
}
