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
}
