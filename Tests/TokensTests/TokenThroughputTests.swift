import GatewayCore
import Glibc
import TestSupport
import Testing

@testable import Tokens

/// Prints what verification costs on one core; asserts only that the work succeeded (the machine is shared,
/// so a threshold would make the suite flaky). Numbers from a debug build include unoptimized Swift around
/// the RSA operation; `swift run -c release TokensBenchmark` gives the optimized figures. Times are this
/// thread's CPU time, since wall time on a shared machine mostly measures the other processes.
@Suite("Token throughput (prints numbers)", .serialized)
struct TokenThroughputTests {
    static func measure(_ label: String, iterations: Int, _ body: () -> Bool) -> Double {
        var ok = true
        let start = threadCPUSeconds()
        for _ in 0..<iterations where !body() { ok = false }
        let seconds = threadCPUSeconds() - start
        #expect(ok, "\(label) failed")
        let perSecond = Double(iterations) / seconds
        let micros = seconds * 1e6 / Double(iterations)
        print("[tokens, debug] \(label): \(Int(perSecond))/s of CPU, \(Int(micros * 1000)) ns each, \(iterations) runs")
        return perSecond
    }

    static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    @Test("RS256 verification, cache hits and JWK import per second on one core")
    func throughput() throws {
        let token = TestKeys.token()
        let keys = TestKeys.keySet
        let verifier = TokenVerifier()
        _ = Self.measure("RS256 verify, whole path (split, base64url, JSON, signature)", iterations: 3000) {
            if case .success = verifier.verify(token, keys: keys) { return true }
            return false
        }

        let key = try #require(keys[TestKeys.primary.kid])
        let dot = try #require(token.utf8.lastIndex(of: UInt8(ascii: ".")))
        let input = Array(token.utf8[..<dot])
        let signature = try #require(Base64URL.decode(token[token.index(after: dot)...]))
        _ = Self.measure("RS256 signature check alone (EVP_DigestVerify)", iterations: 3000) {
            signature.withUnsafeBytes { sig in input.withUnsafeBytes { key.verifyRS256(signature: sig, message: $0) } }
        }

        let cache = VerifiedTokenCache()
        let now: Int64 = 1_800_000_001 * 1_000_000_000
        _ = cache.verify(token, keys: keys, verifier: verifier, nowNanoseconds: now)
        _ = Self.measure("cache hit (SHA-256 of the token + lookup)", iterations: 50_000) {
            if case .success = cache.verify(token, keys: keys, verifier: verifier, nowNanoseconds: now) { return true }
            return false
        }
        #expect(cache.hits == 50_000)

        let modulus = TestKeys.primary.publicKey.modulus
        _ = Self.measure("JWK import (OSSL_PARAM_BLD + EVP_PKEY_fromdata)", iterations: 1000) {
            (try? RSAPublicKey(kid: "k", modulus: modulus, exponent: [1, 0, 1])) != nil
        }
    }
}
