import ArgumentParser
import EventLoop
import Proxy
import Recording

/// The command line. Each `run()` only hands its options to a `nonisolated` function of the Proxy module:
/// closures written here would inherit the main actor and trap on a loop queue (INTEROP.md §1).
@main
struct MyOrgGateway: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "myorg-gateway",
        abstract: "A sidecar gateway in front of an Auth0 tenant's My Organization API.",
        subcommands: [
            Serve.self, Check.self, Demo.self, Emulate.self, Token.self, Export.self, Replay.self, Report.self,
        ]
    )
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway. SIGHUP reloads the configuration; SIGTERM drains and exits.")

    @Option(name: .long, help: "The configuration file (YAML).")
    var config: String

    @Option(name: .long, help: "Event loops (default: one per core).")
    var loops: Int?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Dispatch's thread pool for the loops.",
            discussion:
                "per-cpu gives the most throughput when the gateway has the cores to itself; overcommit gives "
                + "lower latency beside CPU-bound neighbours; auto is per-cpu with no more loops than cores."))
    var loopThreads: LoopThreads = .auto

    // A ValidationError is a usage error (exit 64, with the usage text): a loop count the event loops cannot take
    // is the command line's mistake, not a trap inside them.
    func validate() throws {
        if let loops, !(1...1024).contains(loops) {
            throw ValidationError("--loops: expected 1 to 1024, not \(loops)")
        }
    }

    func run() throws {
        let status = CommandLineRunner.serve(configPath: config, loops: loops, loopThreads: loopThreads)
        if status != 0 { throw ExitCode(status) }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a configuration file and everything it names; errors name file, line and key.")

    @Argument(help: "The configuration file (YAML).")
    var file: String

    func run() throws {
        let status = CommandLineRunner.check(configPath: file)
        if status != 0 { throw ExitCode(status) }
    }
}

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start an emulated tenant and the gateway in front of it on loopback, and print what to try.")

    @Option(name: .long, help: "Directory for the generated certificate, keys and configuration.")
    var workdir: String?

    @Option(name: .long, help: "Port of the gateway's HTTPS listener (0: any free port).")
    var port: Int = 8443

    @Flag(name: .long, help: "Exit after printing the instructions and running the self-check (for tests).")
    var selfCheck = false

    func run() throws {
        let status = CommandLineRunner.demo(workdir: workdir, port: port, selfCheck: selfCheck)
        if status != 0 { throw ExitCode(status) }
    }
}

struct Emulate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the emulated My Organization API tenant alone.")

    @Option(name: .long, help: "Listen address.")
    var listen: String = "127.0.0.1:8081"

    @Option(name: .long, help: "The tenant domain the emulator plays.")
    var domain: String = "acme.emulated.local"

    @Option(name: .long, help: "PKCS#8 PEM signing key (created if missing).")
    var key: String = "demo-signing-key.pem"

    func run() throws {
        let status = CommandLineRunner.emulate(listen: listen, domain: domain, keyPath: key)
        if status != 0 { throw ExitCode(status) }
    }
}

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a development token signed by a local key (never valid for a real tenant).")

    @Option(name: .long, help: "The organization id (org_id).")
    var org: String = "org_Emu1AcmeSeed0001"

    @Option(name: .long, help: "Space-separated scopes.")
    var scope: String = "read:my_org:details"

    @Flag(name: .long, help: "Print the key's public JWKS instead of a token (for a gateway's jwks file).")
    var printJwks = false

    @Option(name: .long, help: "Client id (azp).")
    var client: String = "demo-admin-app"

    @Option(name: .long, help: "Lifetime in seconds.")
    var ttl: Int = 600

    @Option(name: .long, help: "The tenant domain (iss and aud are built from it).")
    var domain: String = "acme.emulated.local"

    @Option(name: .long, help: "Authentication methods (amr), comma-separated, e.g. mfa.")
    var amr: String?

    @Option(name: .long, help: "Subject (user id).")
    var sub: String = "auth0|demo-admin"

    @Option(name: .long, help: "PKCS#8 PEM signing key (created if missing).")
    var key: String = "demo-signing-key.pem"

    func run() throws {
        let status = CommandLineRunner.token(
            org: org, scope: scope, client: client, ttl: ttl, domain: domain, amr: amr, subject: sub, keyPath: key,
            printJWKS: printJwks)
        if status != 0 { throw ExitCode(status) }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Export a traffic recording, e.g. as HAR 1.2.")

    @Argument(help: "The recording (JSON lines).")
    var recording: String

    @Flag(name: .long, help: "Write HAR 1.2.")
    var har = false

    @Option(name: .long, help: "Output file (default: standard output).")
    var out: String?

    func run() throws {
        let status = CommandLineRunner.export(recording: recording, har: har, out: out)
        if status != 0 { throw ExitCode(status) }
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Replay a traffic recording against a target.")

    @Argument(help: "The recording (JSON lines).")
    var recording: String

    @Option(name: .long, help: "Base URL of the target: http or https, e.g. https://127.0.0.1:8443.")
    var target: String

    @Option(name: .long, help: "Pacing factor: 1 keeps the original pacing, 2 is twice as fast, 0 sends at once.")
    var speed: Double = 1

    @Option(name: .long, help: "A token to send with every request.")
    var token: String?

    @Option(name: .long, help: "A PKCS#8 PEM key to mint fresh tokens (with the recorded claims).")
    var key: String?

    @Flag(name: .long, help: "Accept the target's certificate without verification (loopback testing).")
    var insecure = false

    // A ValidationError is a usage error (exit 64, with the usage text), as for a missing argument.
    func validate() throws {
        do {
            _ = try ReplayTarget(parsing: target)
        } catch {
            throw ValidationError("--target: \(error)")
        }
        guard speed >= 0, speed.isFinite else { throw ValidationError("--speed: expected 0 or more, not \(speed)") }
    }

    func run() throws {
        let status = CommandLineRunner.replay(
            recording: recording, target: target, speed: speed, token: token, keyPath: key, insecure: insecure)
        if status != 0 { throw ExitCode(status) }
    }
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a self-contained HTML report of a recording or an event log.")

    @Argument(help: "A recording or event log (JSON lines).")
    var input: String

    @Option(name: .long, help: "The HTML file to write.")
    var out: String = "report.html"

    func run() throws {
        let status = CommandLineRunner.report(input: input, out: out)
        if status != 0 { throw ExitCode(status) }
    }
}

extension LoopThreads: ExpressibleByArgument {}
