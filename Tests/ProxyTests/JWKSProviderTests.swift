import GatewayCore
import Logging
import Synchronization
import TestSupport
import Testing
import Tokens

@testable import Proxy

/// The key set's refetch for a token that names an unknown key: the request waits for the fetch and is judged
/// again, at most one fetch per minimum interval, every waiter answered once.
@Suite("JWKS provider")
struct JWKSProviderTests {
    /// A fetch the test completes by hand.
    final class ManualFetch: Sendable {
        let pending = Mutex<[@Sendable (Result<[UInt8], JWKSProvider.FetchError>) -> Void]>([])
        var count: Int { pending.withLock { $0.count } }

        func complete(_ result: Result<[UInt8], JWKSProvider.FetchError>) {
            let taken = pending.withLock { p in
                defer { p.removeAll() }
                return p
            }
            for completion in taken { completion(result) }
        }
    }

    private func provider(_ fetch: ManualFetch, clock: ManualClock) -> JWKSProvider {
        JWKSProvider(
            fetch: { completion in fetch.pending.withLock { $0.append(completion) } }, clock: clock,
            refreshIntervalS: 600, minRefetchIntervalS: 30, logger: Logger(label: "test"))
    }

    @Test("waiters are answered when the fetch ends; within the minimum interval no fetch starts and none waits")
    func unknownKeyWaitsForTheFetch() {
        let fetch = ManualFetch()
        let clock = ManualClock()
        let jwks = provider(fetch, clock: clock)
        let answers = Mutex<[Bool]>([])
        #expect(jwks.refetchForUnknownKey { ok in answers.withLock { $0.append(ok) } })
        #expect(jwks.refetchForUnknownKey { ok in answers.withLock { $0.append(ok) } })
        #expect(fetch.count == 1, "one fetch for both")
        #expect(answers.withLock { $0 }.isEmpty)
        fetch.complete(.success(Array(TestKeys.secondary.jwksJSON().utf8)))
        #expect(answers.withLock { $0 } == [true, true])
        #expect(jwks.keys?.kids == [TestKeys.secondary.publicKey.kid])
        // The interval since that fetch has not passed: refused at once, nothing kept.
        clock.advance(seconds: 29)
        #expect(!jwks.refetchForUnknownKey { _ in Issue.record("a refused waiter was called") })
        #expect(fetch.count == 0)
        clock.advance(seconds: 2)
        #expect(jwks.refetchForUnknownKey { ok in answers.withLock { $0.append(ok) } })
        fetch.complete(.failure(JWKSProvider.FetchError("down")))
        #expect(answers.withLock { $0 } == [true, true, false])
        #expect(jwks.keys?.kids == [TestKeys.secondary.publicKey.kid], "a failed fetch keeps the last good set")
    }

    /// Log lines, kept for the test to read.
    final class LineCapture: LogHandler, @unchecked Sendable {
        let lines = Mutex<[String]>([])
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(
            level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String,
            function: String, line: UInt
        ) {
            let fields = (metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            lines.withLock { $0.append("\(message) \(fields.joined(separator: " "))") }
        }
    }

    @Test("a failed fetch names its source, and says whether a last good set is kept or there is none yet")
    func failureLogNamesTheSource() {
        let capture = LineCapture()
        let fetch = ManualFetch()
        let jwks = JWKSProvider(
            fetch: { completion in fetch.pending.withLock { $0.append(completion) } }, clock: ManualClock(),
            refreshIntervalS: 600, minRefetchIntervalS: 0, logger: Logger(label: "test") { _ in capture },
            source: "https://acme.test:443/.well-known/jwks.json")
        jwks.refetch(reason: "start")
        fetch.complete(.failure(JWKSProvider.FetchError("connection refused")))
        jwks.refetch(reason: "refresh")
        fetch.complete(.success(Array(TestKeys.secondary.jwksJSON().utf8)))
        jwks.refetch(reason: "refresh")
        fetch.complete(.failure(JWKSProvider.FetchError("connection refused")))
        let failures = capture.lines.withLock { $0 }.filter { $0.contains("JWKS fetch failed") }
        #expect(failures.count == 2, "\(capture.lines.withLock { $0 })")
        #expect(failures.first?.contains("no key set yet") == true)
        #expect(failures.last?.contains("keeping the last good set") == true)
        #expect(failures.allSatisfy { $0.contains("source=https://acme.test:443/.well-known/jwks.json") })
    }
}
