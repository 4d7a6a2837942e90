import Foundation
import GatewayCore
import EventLoop
import Recording
import Tokens

/// `myorg-gateway replay`: sends a recording's requests to a target with the original pacing (or a speed
/// factor), shows progress, and compares status codes with the recording. Requests go out through curl, so
/// HTTP/2, TLS and `--insecure` behave exactly as a developer's own curl would.
enum ReplayCommand {
    static func run(
        recording: String, target: String, speed: Double, token: String?, keyPath: String?, insecure: Bool
    ) -> Int32 {
        // The command line validates too (exit 64); this guards other callers.
        let base: ReplayTarget
        do {
            base = try ReplayTarget(parsing: target)
        } catch {
            return CommandLineRunner.fail("replay: --target: \(error)", status: 64)
        }
        // Nothing usable is said below, as "holds no exchanges" (status 2), for a file and for a recording of
        // refusals alike.
        let records: [ExchangeRecord]
        do {
            records = try CommandLineRunner.readInput(
                "replay", recording, notA: "a traffic recording", nothingUsableFails: false
            ) { ExchangeRecord.readTallied(lines: $0) }
        } catch {
            return error.status
        }
        let authorization = token.map { "Bearer \($0)" }
        let plan = ExchangeRecord.replayPlan(records: records, authorization: authorization)
        guard !plan.isEmpty else {
            return CommandLineRunner.fail("replay: \(recording) holds no exchanges", status: 2)
        }
        // With --key, each request gets a fresh token with the claims the recording kept (never its signature),
        // re-dated to now: recorded tokens expired long ago, and a replay must not depend on them.
        var signingKey: RSASigningKey? = nil
        var recordedClaims: [String: JSONValue] = [:]
        if token == nil, let keyPath {
            // Replay signs with the key the target trusts: a new key (a mistyped path) would only earn 401s.
            guard FileManager.default.fileExists(atPath: keyPath) else {
                return CommandLineRunner.fail(
                    "replay: no signing key at \(keyPath) (--key names the key whose JWKS the target trusts)", status: 2
                )
            }
            do {
                signingKey = try RSASigningKey.load(path: keyPath)
            } catch {
                return CommandLineRunner.fail("replay: \(error)", status: 2)
            }
            for record in records {
                if let claims = record.tokenClaims, case .object = claims { recordedClaims[record.id] = claims }
            }
        }
        // On a terminal each progress line overwrites the previous one; in a pipe or a log file each is a line.
        let terminal = isatty(1) == 1
        var previousWidth = 0
        var summary = ReplaySummary()
        let start = Date()
        for (index, request) in plan.enumerated() {
            if speed > 0 {
                let due = Double(request.offsetMillis) / 1000 / speed
                let wait = due - Date().timeIntervalSince(start)
                if wait > 0 { usleep(useconds_t(min(wait, 60) * 1_000_000)) }
            }
            // -v only so that a refused connection can be told from an unreachable one (curl's own message
            // says "Couldn't connect" for both); its output is parsed for that and dropped, never printed, as it
            // holds the request's headers. --globoff: the URL is the recorded target, sent as it is; curl would
            // otherwise read `[…]` and `{…}` as a glob pattern and refuse `?code=[REDACTED]` (the recorder's own
            // redaction) or `fields=a[0]` as a malformed URL.
            var args = [
                "-sS", "-v", "--globoff", "-o", "/dev/null", "-w", "%{http_code}", "-X", request.method,
                "--connect-timeout", "10", "--max-time", "30",
            ]
            if insecure { args.append("-k") }
            for field in request.headers { args += ["-H", "\(field.name): \(field.value)"] }
            if let signingKey, let claims = recordedClaims[request.id],
                let fresh = ReplayCommand.mint(claims, key: signingKey)
            {
                args += ["-H", "Authorization: Bearer \(fresh)"]
            }
            if !request.body.isEmpty { args += ["--data-binary", "@-"] }
            args.append(base.url(for: request.target))
            let result = curl(args, body: request.body)
            summary.add(request, result)
            let progress =
                "[\(index + 1)/\(plan.count)] \(request.method) \(request.target) → \(result.shortDescription)"
            if terminal {
                let clear = String(repeating: " ", count: max(0, previousWidth - progress.count))
                printOut("\r" + progress + clear)
                previousWidth = progress.count
            } else {
                printOut(progress + "\n")
            }
        }
        printOut((terminal ? "\n\n" : "\n") + summary.rendered())
        if summary.nothingAnswered {
            let reasons = summary.failures.map(\.reason).joined(separator: ", ")
            return CommandLineRunner.fail("replay: no request got an HTTP answer from \(target): \(reasons)")
        }
        return 0
    }

    /// The recorded claims with `iat` now and `exp` keeping the recorded lifetime (600 s when unknown).
    static func mint(_ claims: JSONValue, key: RSASigningKey) -> String? {
        guard case .object(var members) = claims else { return nil }
        let now = Double(SystemClock().nowSeconds())
        let lifetime = max(1, min(600, (claims["exp"]?.doubleValue ?? 0) - (claims["iat"]?.doubleValue ?? 0)))
        members.removeAll { $0.0 == "iat" || $0.0 == "exp" || $0.0 == "nbf" }
        members.append(("iat", .number(now)))
        members.append(("exp", .number(now + (lifetime > 1 ? lifetime : 600))))
        return try? key.sign(header: key.header(typ: "JWT"), claims: .object(members))
    }

    /// Runs curl and returns what the target did. Stderr is read to its end before stdout: stdout carries only
    /// the `-w` status (a few bytes, never filling the pipe), so curl cannot block on it while we wait.
    private static func curl(_ args: [String], body: [UInt8]) -> ReplayResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = args
        let out = Pipe()
        let err = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        do {
            try process.run()
        } catch {
            return .failed(reason: "cannot run /usr/bin/curl: \(error)")
        }
        input.fileHandleForWriting.write(Data(body))
        try? input.fileHandleForWriting.close()
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let status = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return CurlOutcome.result(
            httpCode: status, exitCode: process.terminationReason == .exit ? process.terminationStatus : -1,
            verboseLog: log)
    }
}

/// Reads curl's verdict on one request: its `%{http_code}`, its exit code and its `-v` log. Pure, so each curl
/// failure's wording is tested without a network.
enum CurlOutcome {
    static func result(httpCode: String, exitCode: Int32, verboseLog: String) -> ReplayResult {
        // A response head counts as an answer even when the body then failed (exit 18, 28 or 56 after it).
        if let status = Int(httpCode.trimmingCharacters(in: .whitespacesAndNewlines)), status > 0 {
            return .answered(status: status)
        }
        return .failed(reason: reason(exitCode: exitCode, verboseLog: verboseLog))
    }

    /// Why no HTTP answer came, in a few words. Codes from curl's man page, EXIT CODES.
    static func reason(exitCode: Int32, verboseLog: String) -> String {
        let lines = verboseLog.split(whereSeparator: \.isNewline)
        // curl's own summary line: "curl: (60) SSL certificate problem: self-signed certificate".
        let message = lines.last { $0.hasPrefix("curl: (") }.flatMap { line in
            line.firstIndex(of: ")").map { line[line.index(after: $0)...].trimmingCharacters(in: .whitespaces) }
        }
        func detail(_ text: String?) -> String { text.map { $0.isEmpty ? "" : " (\($0))" } ?? "" }
        switch exitCode {
        case -1: return "curl was killed"
        case 0: return "no HTTP answer"
        case 1: return "unsupported protocol"
        case 3: return "malformed URL"
        case 6: return "cannot resolve host"
        case 7:
            // "* connect to 127.0.0.1 port 9 failed: Connection refused": the errno text, one per address tried.
            let errno = lines.last { $0.hasPrefix("* connect to ") && $0.contains(" failed: ") }.flatMap { line in
                line.range(of: " failed: ").map { String(line[$0.upperBound...]) }
            }
            return errno.map { $0.lowercased() } ?? "cannot connect"
        case 28:
            // "Connection timed out after …" and "SSL connection timeout" come from --connect-timeout (TCP and
            // TLS handshake); "Operation timed out after …" from --max-time, once connected.
            let text = message?.lowercased() ?? ""
            return text.contains("connection timed out") || text.contains("ssl connection timeout")
                ? "timeout while connecting" : "timeout waiting for the answer"
        case 35: return "TLS: handshake failed\(detail(message.map(opensslReason)))"
        case 51: return "TLS: certificate name mismatch"
        case 60: return "TLS: certificate verify failed\(detail(message.map(certificateProblem)))"
        case 52: return "empty reply"
        case 55: return "send failed"
        case 56: return message?.lowercased().contains("reset") == true ? "connection reset" : "receive failed"
        case 8: return "invalid HTTP response"
        case 16, 92: return "HTTP/2 error\(detail(message))"
        default: return "curl error \(exitCode)\(detail(message))"
        }
    }

    /// "SSL certificate problem: self-signed certificate" → "self-signed certificate".
    private static func certificateProblem(_ message: String) -> String {
        message.range(of: "problem: ").map { String(message[$0.upperBound...]) } ?? message
    }

    /// "OpenSSL/3.0.2: error:0A00010B:SSL routines::wrong version number" → "wrong version number".
    private static func opensslReason(_ message: String) -> String {
        message.range(of: "::", options: .backwards).map { String(message[$0.upperBound...]) } ?? message
    }
}
