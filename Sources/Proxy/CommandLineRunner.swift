import Dispatch
import EventLoop
import Foundation
import GatewayCore
import Glibc
import Logging
import Policy
import Recording
import TLS
import TenantEmulator
import Tokens

/// The work behind each subcommand. Everything here is `nonisolated`: closures created on the main actor would
/// trap when a loop queue runs them (INTEROP.md §1).
public enum CommandLineRunner {
    static func fail(_ message: String, status: Int32 = 1) -> Int32 {
        printError("myorg-gateway: \(message)")
        return status
    }

    /// A failure with a list of errors, as `serve` and `check` print it: one `myorg-gateway: ` line saying what
    /// failed, then each error on a line of its own, neither prefixed nor indented, so that every
    /// `file:line:col: key.path: message` starts its line, the form editors and CI logs turn into links.
    static func errorReport(_ headline: String, errors: [String]) -> [String] {
        let lines = errors.flatMap { $0.split(whereSeparator: \.isNewline).map(String.init) }
        let count = lines.count == 1 ? "1 error" : "\(lines.count) errors"
        return ["myorg-gateway: \(headline) (\(count))"] + lines
    }

    private static func fail(_ headline: String, errors: [String], status: Int32) -> Int32 {
        for line in errorReport(headline, errors: errors) { printError(line) }
        return status
    }

    // MARK: - serve

    public nonisolated static func serve(configPath: String, loops: Int?, loopThreads: LoopThreads = .auto) -> Int32 {
        let signals = SignalWaiter([SIGTERM, SIGINT, SIGHUP])
        let level =
            (try? GatewayBuilder.loadConfig(path: configPath)).map {
                Logger.Level(rawValue: $0.logging.level.rawValue) ?? .info
            } ?? .info
        GatewayLogging.bootstrap(level: level)
        let logger = Logger(label: "myorg-gateway")
        let service: GatewayService
        do {
            service = try GatewayService(configPath: configPath, logger: logger)
            try service.start(loops: loops, loopThreads: loopThreads)
        } catch {
            return fail("serve: \(configPath): not started", errors: ["\(error)"], status: 2)
        }
        while true {
            let signal = signals.next()
            if signal == SIGHUP {
                service.reload()
                continue
            }
            logger.info("draining", metadata: ["signal": "\(signal)"])
            service.shutdown()
            return 0
        }
    }

    // MARK: - check

    public nonisolated static func check(configPath: String) -> Int32 {
        let config: GatewayConfig
        do {
            config = try GatewayBuilder.loadConfig(path: configPath)
        } catch {
            return fail("check: \(configPath): invalid", errors: ["\(error)"], status: 2)
        }
        let result = GatewayBuilder.check(config)
        if result.problems.isEmpty {
            for warning in result.warnings { printError("warning: \(warning)\n") }
            printOut("\(configPath): OK\n")
            return 0
        }
        return fail("check: \(configPath): invalid", errors: result.problems, status: 2)
    }

    // MARK: - token

    public nonisolated static func token(
        org: String, scope: String, client: String, ttl: Int, domain: String, amr: String?, subject: String,
        keyPath: String, printJWKS: Bool = false
    ) -> Int32 {
        do {
            let key = try DevelopmentKeys.loadOrCreate(path: keyPath)
            if printJWKS {
                printOut(key.jwksJSON() + "\n")
                return 0
            }
            let mostLifetime = GatewayConfig.Tokens().maxLifetimeS
            if ttl > mostLifetime {
                // Still minted: a token the gateway must refuse is a test case too.
                printError(
                    "myorg-gateway: warning: --ttl \(ttl): the gateway, like the tenant, refuses a token whose "
                        + "lifetime (exp - iat) is over \(mostLifetime) s")
            }
            let token = try DevelopmentKeys.mint(
                key: key, org: org, scope: scope, client: client, ttl: ttl, domain: domain,
                amr: amr.map { $0.split(separator: ",").map(String.init) }, subject: subject,
                now: SystemClock().nowSeconds())
            printOut(token + "\n")
            return 0
        } catch {
            return fail("\(error)")
        }
    }

    // MARK: - emulate

    public nonisolated static func emulate(listen: String, domain: String, keyPath: String) -> Int32 {
        GatewayLogging.bootstrap(level: .info)
        let signals = SignalWaiter([SIGTERM, SIGINT])
        guard let address = NetAddress(listen) else { return fail("--listen: '\(listen)' is not host:port", status: 2) }
        do {
            let key = try DevelopmentKeys.loadOrCreate(path: keyPath)
            let server = try EmulatorServer.start(
                address: address, canonicalDomain: domain, customDomains: [], key: key)
            printOut("emulated tenant \(domain) on http://\(server.address)\n")
            _ = signals.next()
            server.stop()
            return 0
        } catch {
            return fail("\(error)")
        }
    }

    // MARK: - demo

    public nonisolated static func demo(workdir: String?, port: Int, selfCheck: Bool) -> Int32 {
        Demo.run(workdir: workdir, port: port, selfCheck: selfCheck)
    }

    // MARK: - recordings

    /// A command's exit status, thrown by `readInput` once it printed why.
    struct ExitStatus: Error {
        let status: Int32
    }

    /// The usable lines of a JSON-lines input, read by `read`. Skipped lines are reported as a warning; an
    /// unreadable file (status 2) or, when `nothingUsableFails`, a file with nothing usable (status 1) is
    /// reported and thrown.
    static func readInput<Item>(
        _ command: String, _ path: String, notA what: String, nothingUsableFails: Bool = true,
        _ read: ([Substring]) -> ([Item], LineTally)
    ) throws(ExitStatus) -> [Item] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ExitStatus(status: fail("\(command): cannot read \(path)", status: 2))
        }
        let (items, tally) = read(String(decoding: data, as: UTF8.self).fileLines)
        if nothingUsableFails && tally.nothingUsable {
            throw ExitStatus(
                status: fail("\(command): \(path): \(tally.nothingUsableReason(notA: what)); nothing written"))
        }
        if let warning = tally.skippedWarning(notA: what) {
            printError("myorg-gateway: \(command): warning: \(path): \(warning)")
        }
        return items
    }

    public nonisolated static func export(recording: String, har: Bool, out: String?) -> Int32 {
        guard har else { return fail("choose an export format: --har", status: 2) }
        let records: [ExchangeRecord]
        do {
            records = try readInput("export", recording, notA: "a traffic recording") {
                ExchangeRecord.readTallied(lines: $0)
            }
        } catch {
            return error.status
        }
        let text = HARExporter.export(records: records).serialized()
        if let out {
            guard FileManager.default.createFile(atPath: out, contents: Data(text.utf8)) else {
                return fail("cannot write \(out)")
            }
        } else {
            printOut(text + "\n")
        }
        return 0
    }

    public nonisolated static func replay(
        recording: String, target: String, speed: Double, token: String?, keyPath: String?, insecure: Bool
    ) -> Int32 {
        ReplayCommand.run(
            recording: recording, target: target, speed: speed, token: token, keyPath: keyPath, insecure: insecure)
    }

    public nonisolated static func report(input: String, out: String) -> Int32 {
        let samples: [ReportSample]
        do {
            samples = try readInput("report", input, notA: "a recording, an event or an access log line") {
                ReportRenderer.samplesTallied(fromLines: $0)
            }
        } catch {
            return error.status
        }
        let html = ReportRenderer.render(samples: samples, title: "myorg-gateway report: \(input)")
        guard FileManager.default.createFile(atPath: out, contents: Data(html.utf8)) else {
            return fail("cannot write \(out)")
        }
        printOut("wrote \(out)\n")
        return 0
    }
}

/// Waits for signals on a dedicated queue. Blocks their default action (and unblocks them first: a parent may
/// have started us with them masked, as Foundation's Process does), so they arrive as events instead.
final class SignalWaiter: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let received = Mutex<[Int32]>([])
    // Safety: the sources are created once and only kept alive here.
    nonisolated(unsafe) private var sources: [any DispatchSourceSignal] = []

    init(_ signals: [Int32]) {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        Socket.ignoreSIGPIPE()
        let queue = DispatchQueue(label: "myorg-gateway.signals")
        for s in signals {
            signal(s, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: s, queue: queue)
            source.setEventHandler { [self] in
                self.received.withLock { $0.append(s) }
                self.semaphore.signal()
            }
            source.activate()
            sources.append(source)
        }
    }

    /// Blocks until a signal arrives and returns it.
    func next() -> Int32 {
        semaphore.wait()
        return received.withLock { $0.removeFirst() }
    }
}

import Synchronization
