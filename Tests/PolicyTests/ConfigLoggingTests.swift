import Foundation
import GatewayCore
import Testing

@testable import Policy

/// `logging.sinks[].file.max_files`, `logging.sinks[].webhook.headers`, `logging.spool`, and how `check` words
/// duplicate keys and type mismatches.
@Suite("Config: logging keys and messages")
struct ConfigLoggingTests {
    static func logging(_ text: String) -> String { ConfigFixtures.minimal(append: "logging:\n" + text) }

    static func webhook(_ extra: String) -> String {
        logging("  sinks:\n    - webhook:\n        url: https://logs.example.com/in\n" + extra)
    }

    // MARK: file.max_files

    @Test("max_files defaults to 5 and is read when given", arguments: [(nil, 5), (1, 1), (12, 12)] as [(Int?, Int)])
    func maxFiles(_ written: Int?, _ expected: Int) throws {
        let extra = written.map { ", max_files: \($0)" } ?? ""
        let config = try ConfigFixtures.load(Self.logging("  sinks:\n    - file: { path: ev.jsonl\(extra) }\n"))
        guard case .file(let file) = config.logging.sinks.first else {
            Issue.record("expected a file sink")
            return
        }
        #expect(file.maxFiles == expected)
        #expect(config.redactedJSON().serialized().contains("\"max_files\":\(expected)"))
    }

    @Test("max_files below 1 or not a number is refused", arguments: ["0", "-2", "many"])
    func maxFilesRefused(_ written: String) {
        let errors = ConfigFixtures.errors(
            Self.logging("  sinks:\n    - file: { path: ev.jsonl, max_files: \(written) }\n"))
        #expect(errors.contains { $0.path == "logging.sinks[0].file.max_files" && $0.line == 14 })
    }

    // MARK: name

    @Test("a sink's name is read for file and webhook sinks, and names its spool; none is a default")
    func sinkNames() throws {
        let config = try ConfigFixtures.load(
            Self.logging(
                "  sinks:\n    - file: { path: ev.jsonl, name: events-file }\n"
                    + "    - webhook: { url: https://logs.example.com/in, name: siem_1.eu }\n"
                    + "    - webhook: { url: https://logs.example.com/other }\n"))
        guard case .file(let file) = config.logging.sinks[0], case .webhook(let named) = config.logging.sinks[1],
            case .webhook(let unnamed) = config.logging.sinks[2]
        else {
            Issue.record("expected a file and two webhook sinks: \(config.logging.sinks)")
            return
        }
        #expect(file.name == "events-file")
        #expect(named.name == "siem_1.eu")
        #expect(unnamed.name == nil)
    }

    @Test(
        "a sink name that could not name a directory, or that another sink has, is refused at its line",
        arguments: ["\"../up\"", "\".hidden\"", "\"a/b\"", "\"\"", String(repeating: "n", count: 65), "dup"])
    func sinkNameRefused(_ written: String) {
        let second = written == "dup" ? "\n    - file: { path: other.jsonl, name: dup }" : ""
        let errors = ConfigFixtures.errors(
            Self.logging("  sinks:\n    - file: { path: ev.jsonl, name: \(written) }\(second)\n"))
        let refused = written == "dup" ? "logging.sinks[1].file.name" : "logging.sinks[0].file.name"
        #expect(errors.contains { $0.path == refused }, "\(errors)")
    }

    // MARK: webhook.headers

    @Test("headers: literals and secret sources, in order")
    func webhookHeaders() throws {
        let config = try ConfigFixtures.load(
            Self.webhook(
                "        headers:\n          X-Tenant: tenant-literal-7\n          X-Version: 2\n"
                    + "          X-Api-Key: { env: HOOK_KEY }\n          X-Signature: { file: sig.txt }\n"))
        guard case .webhook(let hook) = config.logging.sinks.first else {
            Issue.record("expected a webhook sink")
            return
        }
        #expect(hook.headers.map(\.name) == ["X-Tenant", "X-Version", "X-Api-Key", "X-Signature"])
        #expect(hook.headers[0].value == .literal("tenant-literal-7"))
        #expect(hook.headers[1].value == .literal("2"))
        guard case .secret(.environment("HOOK_KEY", _)) = hook.headers[2].value,
            case .secret(.file(let file)) = hook.headers[3].value
        else {
            Issue.record("expected env and file sources: \(hook.headers)")
            return
        }
        #expect(file.path == "/etc/gw/sig.txt")
        // `check` knows about them; `/config` shows no literal value.
        #expect(config.referencedEnvironment.map(\.name).contains("HOOK_KEY"))
        #expect(config.referencedFiles.map(\.file.path).contains("/etc/gw/sig.txt"))
        let shown = config.redactedJSON().serialized()
        #expect(shown.contains("X-Tenant") && !shown.contains("tenant-literal-7"))
        #expect(shown.contains("HOOK_KEY"))
    }

    @Test(
        "headers the client owns, or with bad names or values, are refused without echoing the value",
        arguments: [
            ("Host: h.example", "HTTP client"), ("Content-Length: \"12\"", "HTTP client"),
            ("Transfer-Encoding: chunked", "HTTP client"), ("Connection: close", "HTTP client"),
            ("keep-alive: x", "HTTP client"), ("TE: trailers", "HTTP client"), ("Upgrade: h2c", "HTTP client"),
            ("content-type: text/plain", "format"), ("Authorization: x", "authorization key"),
            ("\"Bad Name\": v", "not a header name"), ("\"X-Ok\": \"v1\\r\\nX-Injected: v2\"", "control characters"),
            ("X-Nul: \"a\\0b\"", "control characters"), ("X-Empty:", "expected a string"),
            ("X-List: [a, b]", "expected a string"),
        ])
    func webhookHeaderRefused(_ line: String, _ message: String) {
        let errors = ConfigFixtures.errors(Self.webhook("        headers:\n          \(line)\n"))
        let match = errors.first {
            $0.path.hasPrefix("logging.sinks[0].webhook.headers") && $0.message.contains(message)
        }
        #expect(match != nil, "\(errors.map(\.description))")
        #expect(match?.line == 17)
        #expect(!errors.map(\.description).joined().contains("v2"))
        #expect(!errors.map(\.description).joined().contains("h2c"))
    }

    @Test("a header named twice, in any case, is refused")
    func webhookHeaderTwice() {
        let errors = ConfigFixtures.errors(Self.webhook("        headers: { X-Tenant: a, x-tenant: b }\n"))
        #expect(
            errors.contains { $0.path == "logging.sinks[0].webhook.headers.x-tenant" && $0.message.contains("twice") })
    }

    // MARK: webhook.format and webhook.authorization

    /// README's description of the webhook sink, from its `webhook` entry to the `spool` key after it.
    static func readmeWebhookText() throws -> String {
        let root = URL(fileURLWithPath: ConfigFixtures.policiesDirectory).deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try #require(readme.range(of: "`webhook` compatible with Auth0 Log"))
        let end = try #require(readme.range(of: "`spool:", range: start.upperBound..<readme.endIndex))
        return String(readme[start.lowerBound..<end.lowerBound])
    }

    @Test(
        "every webhook format loads as written in README; other spellings are refused with the list",
        arguments: GatewayConfig.Logging.WebhookFormat.allCases)
    func webhookFormats(_ format: GatewayConfig.Logging.WebhookFormat) throws {
        let config = try ConfigFixtures.load(Self.webhook("        format: \(format.rawValue)\n"))
        guard case .webhook(let hook) = config.logging.sinks.first else {
            Issue.record("expected a webhook sink")
            return
        }
        #expect(hook.format == format)
        let readme = try Self.readmeWebhookText()
        #expect(readme.contains("`\(format.rawValue)`"), "README does not name format \(format.rawValue):\n\(readme)")
        for other in ["JSONLINES", "array", "object"] {
            let errors = ConfigFixtures.errors(Self.webhook("        format: \(other)\n"))
            #expect(
                errors.contains {
                    $0.path == "logging.sinks[0].webhook.format" && $0.message.contains(format.rawValue)
                }, "\(errors.map(\.description))")
        }
    }

    @Test("authorization comes from { env } or { file }, as README says; a literal is refused and not echoed")
    func webhookAuthorization() throws {
        let env = try ConfigFixtures.load(Self.webhook("        authorization: { env: HOOK_AUTH }\n"))
        let file = try ConfigFixtures.load(Self.webhook("        authorization: { file: hook-auth.txt }\n"))
        guard case .webhook(let fromEnv) = env.logging.sinks.first,
            case .webhook(let fromFile) = file.logging.sinks.first
        else {
            Issue.record("expected webhook sinks")
            return
        }
        guard case .environment("HOOK_AUTH", _) = fromEnv.authorization, case .file(let path) = fromFile.authorization
        else {
            Issue.record("expected env and file sources: \(String(describing: fromEnv.authorization))")
            return
        }
        #expect(path.path == "/etc/gw/hook-auth.txt")
        let errors = ConfigFixtures.errors(Self.webhook("        authorization: \"Bearer inline-hook-secret-9\"\n"))
        let refusal = errors.first { $0.path == "logging.sinks[0].webhook.authorization" }
        #expect(refusal?.message.contains("must not be written inline") == true, "\(errors.map(\.description))")
        #expect(refusal?.line == 16)
        #expect(!errors.map(\.description).joined().contains("inline-hook-secret-9"))
        let readme = try Self.readmeWebhookText()
        // What README says of `authorization` itself: up to the next key it describes (`format`).
        let authorization = try #require(readme.range(of: "`authorization`"), "README: \(readme)")
        let next = readme.range(of: "`format`", range: authorization.upperBound..<readme.endIndex)
        let said = readme[authorization.lowerBound..<(next?.lowerBound ?? readme.endIndex)]
        for words in ["{ env: NAME }", "{ file: path }", "literal", "refused"] {
            #expect(said.contains(words), "README's `authorization` text lacks '\(words)': \(said)")
        }
    }

    // MARK: spool

    @Test("spool defaults to 256 MiB beside the configuration file")
    func spoolDefaults() throws {
        let config = try ConfigFixtures.load(ConfigFixtures.minimal())
        #expect(config.logging.spool.maxBytes == 256 << 20)
        #expect(config.logging.spool.directory.path == "/etc/gw/.myorg-gateway-spool")
    }

    @Test(
        "spool max_bytes and directory are read",
        arguments: [
            ("{ max_bytes: 8388608, directory: /var/spool/gw }", 8 << 20, "/var/spool/gw"),
            ("{ max_bytes: 1_073_741_824 }", 1 << 30, "/etc/gw/.myorg-gateway-spool"),
            ("{ directory: spool }", 256 << 20, "/etc/gw/spool"),
        ])
    func spoolSettings(_ written: String, _ bytes: Int, _ directory: String) throws {
        let config = try ConfigFixtures.load(Self.logging("  spool: \(written)\n"))
        #expect(config.logging.spool.maxBytes == bytes)
        #expect(config.logging.spool.directory.path == directory)
    }

    @Test(
        "spool values out of range or of the wrong kind are refused",
        arguments: [
            ("{ max_bytes: 1024 }", "logging.spool.max_bytes"), ("{ max_bytes: big }", "logging.spool.max_bytes"),
            ("{ directory: \"\" }", "logging.spool.directory"), ("{ size: 1 }", "logging.spool.size"),
            ("[]", "logging.spool"),
        ])
    func spoolRefused(_ written: String, _ path: String) {
        let errors = ConfigFixtures.errors(Self.logging("  spool: \(written)\n"))
        #expect(errors.contains { $0.path == path && $0.line == 13 }, "\(errors.map(\.description))")
    }

    // MARK: duplicate keys

    struct Duplicate: Sendable, CustomTestStringConvertible {
        let name: String
        let yaml: String
        /// Each expected error: line, column, path.
        let expected: [(line: Int, column: Int, path: String)]
        var testDescription: String { name }
    }

    static let duplicates: [Duplicate] = [
        Duplicate(
            name: "top-level mapping (the audit's dup.yaml)", yaml: "tenant:\n  name: a\ntenant:\n  name: b\n",
            expected: [(3, 1, "tenant")]),
        Duplicate(
            name: "nested block mapping (the audit's dup2.yaml)",
            yaml: ConfigFixtures.minimal([("  tier: free\n", "  tier: free\n  tier: free\n")]),
            expected: [(6, 3, "tenant.tier")]),
        Duplicate(
            name: "quoted second key",
            yaml: ConfigFixtures.minimal([("  tier: free\n", "  tier: free\n  \"tier\": x\n")]),
            expected: [(6, 3, "tenant.tier")]),
        Duplicate(
            name: "flow mapping", yaml: ConfigFixtures.minimal(append: "cors: { max_age_s: 10, max_age_s: 20 }\n"),
            expected: [(12, 24, "cors.max_age_s")]),
        Duplicate(
            name: "mapping inside a list item",
            yaml: ConfigFixtures.minimal(append: "clients:\n  - client_id: a\n    client_id: b\n"),
            expected: [(14, 5, "clients[0].client_id")]),
        Duplicate(
            name: "flow mapping keyed by data",
            yaml: ConfigFixtures.minimal([("login.acme.com: { url", "acme.us.auth0.com: { url")]),
            expected: [(11, 3, "upstream[\"acme.us.auth0.com\"]")]),
        Duplicate(
            name: "three times",
            yaml: ConfigFixtures.minimal([("  tier: free\n", "  tier: free\n  # again\n  tier: free\n  tier: x\n")]),
            expected: [(7, 3, "tenant.tier"), (8, 3, "tenant.tier")]),
        Duplicate(
            name: "two keys in two mappings",
            yaml: ConfigFixtures.minimal(
                [("  tier: free\n", "  tier: free\n  name: b\n")],
                append: "limits:\n  max_connections: 1\n  max_connections: 2\n"),
            expected: [(6, 3, "tenant.name"), (15, 3, "limits.max_connections")]),
        Duplicate(
            name: "the same key in different mappings is no duplicate but the later real one is",
            yaml: "a:\n  x: 1\nb:\n  x: 2\n  y: 3\n  x: 4\n", expected: [(6, 3, "b.x")]),
    ]

    @Test("a duplicate key is reported where it repeats, with its path", arguments: duplicates)
    func duplicateKeys(_ duplicate: Duplicate) {
        let errors = ConfigFixtures.errors(duplicate.yaml)
        #expect(
            errors.map { "\($0.line):\($0.column) \($0.path)" }
                == duplicate.expected.map { "\($0.line):\($0.column) \($0.path)" },
            "\(errors.map(\.description))")
        #expect(errors.allSatisfy { $0.message.hasPrefix("duplicate key") && $0.message.contains("first at line") })
    }

    // MARK: type mismatches

    @Test(
        "a value of the wrong type is named with its kind and a short value",
        arguments: [
            ("limits: { shutdown_grace_ms: \"soon\" }", "limits.shutdown_grace_ms", "found the string 'soon'"),
            ("limits: { shutdown_grace_ms: soon }", "limits.shutdown_grace_ms", "found the string 'soon'"),
            ("limits: { shutdown_grace_ms: [1] }", "limits.shutdown_grace_ms", "found a list"),
            ("limits: { shutdown_grace_ms: 1.5 }", "limits.shutdown_grace_ms", "found the number 1.5"),
            ("limits: { shutdown_grace_ms: true }", "limits.shutdown_grace_ms", "found the boolean true"),
            ("limits: { shutdown_grace_ms: ~ }", "limits.shutdown_grace_ms", "found null"),
            ("forward_unknown_endpoints: \"yes\"", "forward_unknown_endpoints", "found the string 'yes'"),
            ("recording: { sample_rate: half }", "recording.sample_rate", "found the string 'half'"),
            ("cors: 5", "cors", "expected a mapping, found the number 5"),
            ("admin: { address: { a: 1 } }", "admin.address", "expected a string, found a mapping"),
        ])
    func typeMismatch(_ line: String, _ path: String, _ message: String) {
        let errors = ConfigFixtures.errors(ConfigFixtures.minimal(append: line + "\n"))
        #expect(errors.contains { $0.path == path && $0.message.hasSuffix(message) }, "\(errors.map(\.description))")
    }

    @Test("long values are cut and control characters replaced")
    func longValuesAreCut() {
        let long = String(repeating: "z", count: 200)
        let errors = ConfigFixtures.errors(
            ConfigFixtures.minimal(append: "limits: { shutdown_grace_ms: \"\(long)\\n\" }\n"))
        let message = errors.first { $0.path == "limits.shutdown_grace_ms" }?.message ?? ""
        #expect(message.contains("found the string 'zzz") && message.contains("…"))
        #expect(message.count < 120)
    }

    @Test("a value under a secret-looking key is not echoed")
    func secretValuesAreNotEchoed() {
        let errors = ConfigFixtures.errors(Self.webhook("        headers: \"X-Api-Key: k3y-in-clear\"\n"))
        let match = errors.first { $0.path == "logging.sinks[0].webhook.headers" }
        #expect(match?.message == "expected a mapping, found a string")
        #expect(!errors.map(\.description).joined().contains("k3y-in-clear"))
    }
}
