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
        guard let data = FileManager.default.contents(atPath: recording) else {
            printError("myorg-gateway replay: cannot read \(recording)")
            return 2
        }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
        let authorization = token.map { "Bearer \($0)" }
        let plan = ExchangeRecord.replayPlan(recordingLines: lines, authorization: authorization)
        guard !plan.isEmpty else {
            printError("myorg-gateway replay: \(recording) holds no exchanges")
            return 2
        }
        // With --key, each request gets a fresh token with the claims the recording kept (never its signature),
        // re-dated to now: recorded tokens expired long ago, and a replay must not depend on them.
        var signingKey: RSASigningKey? = nil
        var recordedClaims: [String: JSONValue] = [:]
        if token == nil, let keyPath {
            do {
                signingKey = try DevelopmentKeys.loadOrCreate(path: keyPath)
            } catch {
                printError("myorg-gateway replay: \(error)")
                return 2
            }
            for line in lines {
                guard let record = try? JSONValue.parse(line), let id = record["id"]?.stringValue,
                    let claims = record["token_claims"], case .object = claims
                else { continue }
                recordedClaims[id] = claims
            }
        }
        var matched = 0
        var statuses: [Int: Int] = [:]
        var recordedStatuses: [Int: Int] = [:]
        let start = Date()
        for (index, request) in plan.enumerated() {
            if speed > 0 {
                let due = Double(request.offsetMillis) / 1000 / speed
                let wait = due - Date().timeIntervalSince(start)
                if wait > 0 { usleep(useconds_t(min(wait, 60) * 1_000_000)) }
            }
            var args = ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", request.method, "--max-time", "30"]
            if insecure { args.append("-k") }
            for field in request.headers { args += ["-H", "\(field.name): \(field.value)"] }
            if let signingKey, let claims = recordedClaims[request.id],
                let fresh = ReplayCommand.mint(claims, key: signingKey)
            {
                args += ["-H", "Authorization: Bearer \(fresh)"]
            }
            if !request.body.isEmpty { args += ["--data-binary", "@-"] }
            args.append(target.trimmingSuffix("/") + request.target)
            let status = curl(args, body: request.body)
            statuses[status, default: 0] += 1
            if let recorded = request.recordedStatus {
                recordedStatuses[recorded, default: 0] += 1
                if ReplayComparison(request: request, replayedStatus: status).matches { matched += 1 }
            }
            printOut("\r[\(index + 1)/\(plan.count)] \(request.method) \(request.target) → \(status)        ")
        }
        printOut("\n\nstatus   replayed  recorded\n")
        for status in Set(statuses.keys).union(recordedStatuses.keys).sorted() {
            printOut("\(status)      \(statuses[status, default: 0])        \(recordedStatuses[status, default: 0])\n")
        }
        printOut("\n\(matched) of \(plan.count) requests got the recorded status.\n")
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

    private static func curl(_ args: [String], body: [UInt8]) -> Int {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = args
        let out = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardInput = input
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return 0 }
        input.fileHandleForWriting.write(Data(body))
        try? input.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Int(String(decoding: data, as: UTF8.self)) ?? 0
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}
