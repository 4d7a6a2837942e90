// Optimized figures for the Tokens module on one core: `swift run -c release TokensBenchmark [seconds]`.
// Prints operations per second of one thread's CPU time; asserts nothing (the numbers depend on the machine and its load).
import GatewayCore
import Glibc
import TestSupport
import Tokens

enum Main {
    /// CPU time of this thread: on a shared machine, wall time mostly measures the other processes.
    nonisolated static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    nonisolated static func measure(_ label: String, minimumSeconds: Double, _ body: () -> Bool) {
        var iterations = 0
        var failures = 0
        let start = threadCPUSeconds()
        var elapsed = 0.0
        // Batches of 100 so that the clock is read rarely.
        repeat {
            for _ in 0..<100 where !body() { failures += 1 }
            iterations += 100
            elapsed = threadCPUSeconds() - start
        } while elapsed < minimumSeconds
        let perSecond = Int(Double(iterations) / elapsed)
        let nanos = Int(elapsed * 1e9 / Double(iterations))
        let failed = failures > 0 ? ", \(failures) FAILED" : ""
        print("\(label): \(perSecond)/s of CPU, \(nanos) ns each, \(iterations) iterations\(failed)")
    }
}

nonisolated func run() {
    let seconds = CommandLine.arguments.dropFirst().first.flatMap(Double.init) ?? 2
    // An optional second argument runs only the measurements whose label contains it (for profiling).
    let only = CommandLine.arguments.dropFirst(2).first
    func measure(_ label: String, minimumSeconds: Double, _ body: () -> Bool) {
        if let only, !label.contains(only) { return }
        Main.measure(label, minimumSeconds: minimumSeconds, body)
    }
    let token = TestKeys.token()
    let keys = TestKeys.keySet
    let verifier = TokenVerifier()
    print("token: \(token.utf8.count) bytes, key: \(TestKeys.primary.bits) bits")

    measure("RS256 verify, whole path", minimumSeconds: seconds) {
        if case .success = verifier.verify(token, keys: keys) { return true }
        return false
    }

    let key = keys[TestKeys.primary.kid]!
    let dot = token.utf8.lastIndex(of: UInt8(ascii: "."))!
    let input = Array(token.utf8[..<dot])
    let signature = Base64URL.decode(token[token.index(after: dot)...])!
    measure("RS256 signature check alone", minimumSeconds: seconds) {
        key.isValidRS256Signature(signature, of: input)
    }

    let unknownKid = try! TestKeys.primary.sign(
        header: ["alg": "RS256", "typ": "at+jwt", "kid": "not-in-the-set"], claims: TestKeys.claims())
    measure("refused before RSA (unknown kid: split, base64url, header JSON)", minimumSeconds: seconds) {
        if case .failure = verifier.verify(unknownKid, keys: keys) { return true }
        return false
    }

    let forged = String(token.dropLast(4)) + "AAAA"
    measure("forged signature refused", minimumSeconds: seconds) {
        if case .failure = verifier.verify(forged, keys: keys) { return true }
        return false
    }
    let none = "eyJhbGciOiJub25lIn0." + token.split(separator: ".")[1] + "."
    measure("malformed token refused (alg none, stripped)", minimumSeconds: seconds) {
        if case .failure = verifier.verify(none, keys: keys) { return true }
        return false
    }

    let cache = VerifiedTokenCache()
    let now: Int64 = 1_800_000_001 * 1_000_000_000
    _ = cache.verify(token, keys: keys, verifier: verifier, nowNanoseconds: now)
    measure("cache hit", minimumSeconds: seconds) {
        if case .success = cache.verify(token, keys: keys, verifier: verifier, nowNanoseconds: now) { return true }
        return false
    }

    let modulus = TestKeys.primary.publicKey.modulus
    measure("JWK import", minimumSeconds: seconds) {
        (try? RSAPublicKey(kid: "k", modulus: modulus, exponent: [1, 0, 1])) != nil
    }
    let claims = TestKeys.claims()
    let header = TestKeys.primary.header()
    measure("RS256 sign", minimumSeconds: seconds) {
        (try? TestKeys.primary.sign(header: header, claims: claims)) != nil
    }
}

run()
