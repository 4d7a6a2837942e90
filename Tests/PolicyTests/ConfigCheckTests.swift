import GatewayCore
import Testing

@testable import Policy

@Suite("Config check and redaction")
struct ConfigCheckTests {
    let example: GatewayConfig

    init() throws {
        example = try GatewayConfig.load(
            yaml: ConfigFixtures.exampleWithTLSAndEdge(), file: "tenant.example.yaml", baseDirectory: "/srv/gw")
    }

    @Test("the example as shipped names no file and no variable that must exist: it passes check as it is")
    func shippedExamplePasses() throws {
        let shipped = try GatewayConfig.load(
            yaml: ConfigFixtures.policyFile("tenant.example.yaml"), file: "tenant.example.yaml",
            baseDirectory: "/srv/gw")
        #expect(shipped.check(fileExists: { _ in false }, environment: { _ in nil }).isEmpty)
    }

    @Test("check reports each missing file at the line that names it")
    func missingFiles() {
        let errors = example.check(fileExists: { $0 == "/srv/gw/certs/login.pem" })
        #expect(errors.count == 1)
        let error = errors.first
        #expect(error?.path == "listeners[0].tls.certificates[0].key")
        #expect(error?.line == 21)
        #expect(error?.message == "private key '/srv/gw/certs/login.key' does not exist or cannot be read")
        #expect(example.check(fileExists: { _ in true }).isEmpty)
    }

    @Test("check reports unset environment variables a secret names")
    func environment() {
        let unset = example.check(fileExists: { _ in true }, environment: { _ in nil })
        #expect(
            unset.map(\.description) == [
                "tenant.example.yaml:36:27: upstream[\"login.acme.com\"].cname_api_key.env: environment variable CNAME_API_KEY is not set (or empty)"
            ])
        #expect(example.check(fileExists: { _ in true }, environment: { $0 == "CNAME_API_KEY" ? "x" : nil }).isEmpty)
    }

    @Test("the redacted view names secret sources, never query strings")
    func redacted() throws {
        let yaml = ConfigFixtures.minimal(
            [],
            append: """
                logging:
                  sinks:
                    - webhook: { url: "https://logs.example.com/in?api_key=k3y-value", authorization: { file: auth.txt } }
                rate_limits: { store: redis, url: "redis://127.0.0.1:6379/0", password: { env: REDIS_PASSWORD } }

                """)
        let config = try ConfigFixtures.load(yaml)
        let text = config.redactedDescription()
        #expect(!text.contains("k3y-value"))
        #expect(text.contains("\"authorization\":{\"file\":\"/etc/gw/auth.txt\"}"))
        #expect(text.contains("\"password\":{\"env\":\"REDIS_PASSWORD\"}"))
        #expect(text.contains("\"cname_api_key\":{\"env\":\"CNAME_API_KEY\"}"))
        // The dump is valid JSON with the top-level sections.
        let parsed = try JSONValue.parse(text)
        #expect(parsed["tenant"]?["tier"] == "free")
        #expect(parsed["endpoints"] == 42)
        let webhook = parsed["logging"]?["sinks"]?.arrayValue?.first?["webhook"]
        #expect(webhook?["url"] == "https://logs.example.com/in?<redacted>")
    }
}
