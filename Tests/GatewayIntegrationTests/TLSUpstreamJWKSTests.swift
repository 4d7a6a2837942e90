import Foundation
import TLS
import TestSupport
import Testing

extension GatewayIntegration {
    /// `serve` in front of an HTTPS upstream that also publishes the JWKS: the gateway fetches the keys through
    /// the upstream's TLS context (its `ca_file`), is not ready until it has them, forwards with rewritten
    /// headers, and follows a key rotation on the first token that names the new key.
    @Suite("serve against a TLS upstream that serves the JWKS")
    struct TLSUpstreamJWKSTests {
        @Test("readiness waits for the JWKS; a valid token passes; a key rotation is picked up; the old key is refused")
        func readinessForwardingAndRotation() throws {
            guard let binary = gatewayBinaryOrSkip("TLS upstream + JWKS") else { return }
            let start = Date()
            let ws = Workspace(binary: binary, name: "tls-jwks")
            defer { ws.remove() }
            let canonical = "acme.test"
            let upstreamCert = try ws.certificate("upstream", dnsNames: ["localhost"])
            let gatewayCert = try ws.certificate("gateway", dnsNames: [canonical, "login.acme.test"])
            try ws.write("jwks.json", try ws.signingKey("old-key"))
            let (upstreamPort, listenerPort, adminPort) =
                (TestProcess.freePort(), TestProcess.freePort(), TestProcess.freePort())
            let base = "https://127.0.0.1:\(upstreamPort)"
            let config = GatewayConfigText(
                jwks: "{ url: \"\(base)/.well-known/jwks.json\", min_refetch_interval_s: 1 }",
                listeners: [.init(port: listenerPort, domain: canonical, tls: (gatewayCert.cert, gatewayCert.key))],
                upstreams: [(canonical, "{ url: \"\(base)\", ca_file: \(upstreamCert.ca), idle_timeout_ms: 500 }")],
                clients: [.init(id: "web-app", scopes: ["read:my_org:details"])], adminPort: adminPort)
            try ws.write("gateway.yaml", config.yaml)

            // The gateway first, with nothing on the upstream's port: not ready, and tokens cannot be checked.
            let gateway = try GatewayServer(
                binary: binary, config: ws.path("gateway.yaml"), adminPort: adminPort, ports: [listenerPort])
            defer { _ = gateway.stop() }
            let notReady = try gateway.admin("/readyz")
            #expect(notReady.status == 503, "\(notReady.body)")
            #expect(notReady.body.contains("JWKS"), "\(notReady.body)")
            #expect(try gateway.admin("/healthz").status == 200)

            let curlBase = [
                "--cacert", gatewayCert.ca, "--resolve", "\(canonical):\(listenerPort):127.0.0.1",
                "https://\(canonical):\(listenerPort)/my-org/details",
            ]
            let oldToken = try ws.token(
                key: "old-key", domain: canonical, client: "web-app", scope: "read:my_org:details")
            let early = try curlStatus(["-i", "-H", "Authorization: Bearer \(oldToken)"] + curlBase)
            #expect(early.status == 503, "\(early.body)")
            #expect(early.body.lowercased().contains("retry-after: 1"), "\(early.body)")

            // Now the upstream: the gateway's retry loads the keys over TLS and it becomes ready.
            let upstream = try UpstreamServer(
                workspace: ws, port: upstreamPort, tls: (upstreamCert.cert, upstreamCert.key),
                jwksFile: ws.path("jwks.json"))
            defer { upstream.stop() }
            let readyStart = Date()
            #expect(try gateway.waitReady(timeout: 8), "the gateway never became ready: \(gateway.process.log)")
            print("TLS upstream + JWKS: ready \(elapsedMs(since: readyStart)) ms after the upstream started")
            let jwksFetches = upstream.requests().filter { $0.hasPrefix("GET /.well-known/jwks.json HTTP/1.1\r\n") }
            #expect(!jwksFetches.isEmpty, "the JWKS was not fetched from the upstream")

            // A valid token is forwarded, with the forwarding headers rewritten.
            let ok = try curlStatus(
                [
                    "--http1.1", "-H", "Authorization: Bearer \(oldToken)", "-H", "X-Forwarded-For: 6.6.6.6",
                    "-H", "Connection: keep-alive, X-Hop", "-H", "X-Hop: drop-me", "-H", "Forwarded: for=7.7.7.7",
                ] + curlBase)
            #expect(ok.status == 200, "\(ok.body)")
            #expect(ok.body.contains("\"path\": \"/my-org/details\""), "\(ok.body)")
            let forwarded = try #require(upstream.requests().last { $0.hasPrefix("GET /my-org/details ") })
            #expect(forwarded.hasPrefix("GET /my-org/details HTTP/1.1\r\n"))
            #expect(forwarded.contains("\r\nHost: 127.0.0.1:\(upstreamPort)\r\n"), "\(forwarded)")
            #expect(forwarded.contains("\r\nX-Forwarded-For: 127.0.0.1\r\n"), "\(forwarded)")
            #expect(forwarded.contains("\r\nX-Forwarded-Proto: https\r\n"), "\(forwarded)")
            #expect(forwarded.contains("\r\nX-Forwarded-Host: \(canonical):\(listenerPort)\r\n"), "\(forwarded)")
            #expect(forwarded.contains("\r\nX-Request-Id: "), "\(forwarded)")
            #expect(forwarded.contains("\r\nAuthorization: Bearer \(oldToken)\r\n"), "the tenant checks it again")
            #expect(!forwarded.contains("6.6.6.6"), "a client's X-Forwarded-For must be replaced")
            #expect(!forwarded.contains("7.7.7.7"), "a client's Forwarded must not pass")
            #expect(!forwarded.contains("X-Hop"), "fields named by Connection are hop-by-hop")
            #expect(!forwarded.lowercased().contains("cname-api-key"), "only custom-domain edge mode sends it")

            // Rotation: the published set now holds only a new key.
            try ws.write("jwks.json", try ws.signingKey("new-key"))
            let newToken = try ws.token(
                key: "new-key", domain: canonical, client: "web-app", scope: "read:my_org:details")
            // Past min_refetch_interval_s since the last fetch, the first token naming the new key makes the gateway
            // fetch the set and judge that very request against it: a rotation costs the client no refusal.
            Thread.sleep(forTimeInterval: 1.2)
            let rotationStart = Date()
            let rotated = try curlStatus(["-H", "Authorization: Bearer \(newToken)"] + curlBase)
            #expect(rotated.status == 200, "the first token of the new key was refused: \(rotated)")
            print("TLS upstream + JWKS: new key accepted on its first token, \(elapsedMs(since: rotationStart)) ms")

            // Unknown-kid tokens may trigger a refetch at most once per min_refetch_interval_s (1 s here).
            let fetchesBefore = upstream.requests().filter { $0.hasPrefix("GET /.well-known/jwks.json ") }.count
            let burstStart = Date()
            for _ in 0..<10 {
                _ = try curlStatus(["-H", "Authorization: Bearer \(oldToken)"] + curlBase)
            }
            let burstMs = elapsedMs(since: burstStart)
            let fetchesAfter = upstream.requests().filter { $0.hasPrefix("GET /.well-known/jwks.json ") }.count
            #expect(
                fetchesAfter - fetchesBefore <= burstMs / 1000 + 1,
                "\(fetchesAfter - fetchesBefore) JWKS fetches for 10 unknown-kid tokens in \(burstMs) ms")

            // The old key was removed from the set: its tokens are refused now, on every loop (new connections
            // spread over both), even though each loop's verified-token cache once accepted this very token.
            for _ in 0..<4 {
                let refused = try curlStatus(["-i", "-H", "Authorization: Bearer \(oldToken)"] + curlBase)
                #expect(refused.status == 401, "a token of the removed key still passes: \(refused.status)")
                #expect(refused.body.contains("invalid_token"), "\(refused.body)")
                #expect(!refused.body.contains(oldToken), "an error must never echo the token")
            }

            #expect(gateway.stop() == 0, "\(gateway.process.log)")
            print("TLS upstream + JWKS test took \(elapsedMs(since: start)) ms")
        }

        @Test(
            "the upstream's certificate is verified: an untrusted CA or a wrong name gives 502, nothing reaches it",
            arguments: [("untrusted CA", false), ("name mismatch", true)])
        func upstreamCertificateVerified(_ name: String, _ trustedButWrongName: Bool) throws {
            guard let binary = gatewayBinaryOrSkip("upstream certificate verification") else { return }
            let ws = Workspace(binary: binary, name: "tls-verify")
            defer { ws.remove() }
            let canonical = "acme.test"
            try ws.write("jwks.json", try ws.signingKey("key"))
            let served: (cert: String, key: String, ca: String)
            let trusted: String
            if trustedButWrongName {
                // Issued by the CA the gateway trusts, but for another name and no IP address.
                let ca = try DevelopmentCertificateAuthority(commonName: "integration CA wrong-name")
                let bundle = try ca.issue(dnsNames: ["somewhere-else.example"], ipAddresses: [])
                served = (ws.path("wrong.pem"), ws.path("wrong.key"), ws.path("wrong-ca.pem"))
                try bundle.write(certificatePath: served.cert, privateKeyPath: served.key, caCertificatePath: served.ca)
                trusted = served.ca
            } else {
                served = try ws.certificate("upstream", dnsNames: ["localhost"])
                trusted = try ws.certificate("unrelated", dnsNames: ["localhost"]).ca
            }
            let upstream = try UpstreamServer(workspace: ws, tls: (served.cert, served.key))
            defer { upstream.stop() }
            let (port, adminPort) = (TestProcess.freePort(), TestProcess.freePort())
            let config = GatewayConfigText(
                jwks: "{ file: jwks.json }", listeners: [.init(port: port, domain: canonical)],
                upstreams: [(canonical, "{ url: \"https://127.0.0.1:\(upstream.port)\", ca_file: \(trusted) }")],
                clients: [.init(id: "web-app", scopes: ["read:my_org:details"])], adminPort: adminPort)
            try ws.write("gateway.yaml", config.yaml)
            let gateway = try GatewayServer(
                binary: binary, config: ws.path("gateway.yaml"), adminPort: adminPort, ports: [port])
            defer { _ = gateway.stop() }
            #expect(try gateway.waitReady())
            let token = try ws.token(key: "key", domain: canonical, client: "web-app", scope: "read:my_org:details")
            let answer = try curlStatus([
                "-H", "Authorization: Bearer \(token)", "http://127.0.0.1:\(port)/my-org/details",
            ])
            #expect(answer.status == 502, "\(name): \(answer.status) \(answer.body)")
            #expect(!answer.body.contains(token))
            #expect(
                !upstream.requests().contains { $0.hasPrefix("GET /my-org/details ") },
                "\(name): a request reached an upstream whose certificate should have been refused")
        }

        @Test("without tenant.jwks the keys come from the canonical domain's upstream, not from its DNS name")
        func defaultJWKSThroughTheCanonicalUpstream() throws {
            guard let binary = gatewayBinaryOrSkip("default JWKS URL") else { return }
            let ws = Workspace(binary: binary, name: "default-jwks")
            defer { ws.remove() }
            try ws.write("jwks.json", try ws.signingKey("key"))
            let upstream = try UpstreamServer(workspace: ws, jwksFile: ws.path("jwks.json"))
            defer { upstream.stop() }
            let (listenerPort, adminPort) = (TestProcess.freePort(), TestProcess.freePort())
            // acme.invalid resolves nowhere (RFC 2606): only the configured upstream can serve its keys.
            var config = GatewayConfigText(
                jwks: "", listeners: [.init(port: listenerPort, domain: "acme.invalid")],
                upstreams: [("acme.invalid", "{ url: \"http://127.0.0.1:\(upstream.port)\" }")],
                clients: [.init(id: "web-app", scopes: ["read:my_org:details"])], adminPort: adminPort)
            config.canonical = "acme.invalid"
            config.custom = "login.acme.invalid"
            try ws.write("gateway.yaml", config.yaml)
            let gateway = try GatewayServer(
                binary: binary, config: ws.path("gateway.yaml"), adminPort: adminPort, ports: [listenerPort])
            defer { _ = gateway.stop() }
            let ready = try gateway.waitReady(timeout: 8)
            #expect(ready, "not ready: \((try? gateway.admin("/readyz").body) ?? "")")
            #expect(upstream.requests().contains { $0.hasPrefix("GET /.well-known/jwks.json HTTP/1.1\r\n") })
            let token = try ws.token(
                key: "key", domain: "acme.invalid", client: "web-app", scope: "read:my_org:details")
            let answer = try curlStatus([
                "-H", "Authorization: Bearer \(token)", "http://127.0.0.1:\(listenerPort)/my-org/details",
            ])
            #expect(answer.status == 200, "\(answer.body)")
        }
    }
}
