import GatewayCore
import Logging
import Synchronization
import Tokens

/// The tenant's signing keys: the last good set, refreshed on an interval and — when a token names an unknown
/// `kid` — refetched at most once per `minRefetchNanos`. A failed refetch keeps the last good set serving.
///
/// Sendable: the set is immutable and swapped under a mutex; fetching is done by a `fetch` closure supplied by
/// the owner (file read, or an HTTPS GET through the gateway's own upstream client).
final class JWKSProvider: Sendable {
    typealias Fetch = @Sendable (@escaping @Sendable (Result<[UInt8], FetchError>) -> Void) -> Void

    struct FetchError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    private struct State {
        var keys: JWKSKeySet?
        var lastAttempt: Int64 = .min / 2
        var lastSuccess: Int64 = .min / 2
        var inFlight = false
        var refreshes = 0
        var failures = 0
        var lastError: String?
    }

    private let state = Mutex(State())
    private let fetch: Fetch
    private let clock: any WallClock
    private let refreshNanos: Int64
    private let minRefetchNanos: Int64
    private let logger: Logger

    init(
        fetch: @escaping Fetch, clock: any WallClock, refreshIntervalS: Int, minRefetchIntervalS: Int, logger: Logger
    ) {
        self.fetch = fetch
        self.clock = clock
        self.refreshNanos = Int64(refreshIntervalS) * 1_000_000_000
        self.minRefetchNanos = Int64(minRefetchIntervalS) * 1_000_000_000
        self.logger = logger
    }

    /// The current set, or nil before the first successful fetch (the gateway is not ready then).
    var keys: JWKSKeySet? { state.withLock { $0.keys } }

    var counters: (refreshes: Int, failures: Int, lastError: String?) {
        state.withLock { ($0.refreshes, $0.failures, $0.lastError) }
    }

    /// Called periodically: refetches when the refresh interval has passed (or no set is loaded yet, retrying
    /// at the minimum interval).
    func tick() {
        let now = clock.nowNanoseconds()
        let due = state.withLock { s -> Bool in
            let interval = s.keys == nil ? min(minRefetchNanos, 2_000_000_000) : refreshNanos
            return !s.inFlight && now - s.lastAttempt >= interval
        }
        if due { refetch(reason: "refresh") }
    }

    /// A token named a key id the set does not have: refetch, but at most once per minimum interval.
    func unknownKeyID() {
        let now = clock.nowNanoseconds()
        let allowed = state.withLock { !$0.inFlight && now - $0.lastAttempt >= minRefetchNanos }
        if allowed { refetch(reason: "unknown kid") }
    }

    /// Starts a fetch unless one is running; `completion` (optional) runs after the set was replaced or kept.
    func refetch(reason: String, completion: (@Sendable (Bool) -> Void)? = nil) {
        let now = clock.nowNanoseconds()
        let start = state.withLock { s -> Bool in
            guard !s.inFlight else { return false }
            s.inFlight = true
            s.lastAttempt = now
            return true
        }
        guard start else {
            completion?(false)
            return
        }
        fetch { [self] (result: Result<[UInt8], FetchError>) in
            let outcome: Result<JWKSKeySet, FetchError>
            switch result {
            case .success(let bytes):
                do {
                    let set = try JWKSKeySet.parse(bytes)
                    outcome =
                        set.isEmpty ? .failure(FetchError("the JWKS has no usable RSA signing key")) : .success(set)
                } catch {
                    outcome = .failure(FetchError("the JWKS is invalid: \(error)"))
                }
            case .failure(let message):
                outcome = .failure(message)
            }
            let finished = clock.nowNanoseconds()
            state.withLock { s in
                s.inFlight = false
                switch outcome {
                case .success(let set):
                    s.keys = set
                    s.lastSuccess = finished
                    s.refreshes += 1
                    s.lastError = nil
                case .failure(let message):
                    s.failures += 1
                    s.lastError = message.description
                }
            }
            switch outcome {
            case .success(let set):
                logger.info(
                    "JWKS loaded", metadata: ["reason": "\(reason)", "kids": "\(set.kids.joined(separator: ","))"])
                completion?(true)
            case .failure(let message):
                logger.error(
                    "JWKS fetch failed; keeping the last good set",
                    metadata: ["reason": "\(reason)", "error": "\(message)"])
                completion?(false)
            }
        }
    }
}
