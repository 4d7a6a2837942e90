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
        /// Requests whose token named a key the set lacked, waiting for the fetch under way to end.
        var waiters: [@Sendable (Bool) -> Void] = []
        var refreshes = 0
        var failures = 0
        var lastError: String?

        /// A set that loaded: it serves from now on.
        mutating func store(_ set: JWKSKeySet, at nanos: Int64) {
            keys = set
            lastSuccess = nanos
            refreshes += 1
            lastError = nil
        }
    }

    private let state = Mutex(State())
    private let fetch: Fetch
    private let clock: any WallClock
    private let refreshNanos: Int64
    private let minRefetchNanos: Int64
    private let logger: Logger

    /// Where the keys come from, for the log lines (a URL without its query, or a file's path).
    let source: String

    init(
        fetch: @escaping Fetch, clock: any WallClock, refreshIntervalS: Int, minRefetchIntervalS: Int, logger: Logger,
        source: String = "the configured source"
    ) {
        self.source = source
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

    /// Serves `set` from now on, as a fetch that loaded it would: the keys of a JWKS file the builder has read
    /// and checked already, so the file is not read again.
    func install(_ set: JWKSKeySet, reason: String) {
        let now = clock.nowNanoseconds()
        state.withLock { s in
            s.lastAttempt = now
            s.store(set, at: now)
        }
        logLoaded(set, reason: reason)
    }

    private func logLoaded(_ set: JWKSKeySet, reason: String) {
        logger.info("JWKS loaded", metadata: ["reason": "\(reason)", "kids": "\(set.kids.joined(separator: ","))"])
    }

    /// Requests that may wait on one fetch at once; more are refused at once, as when no fetch may start.
    static let waiterLimit = 4096

    /// A token named a key id the set does not have: refetch (at most once per minimum interval) and call
    /// `waiter` when the fetch under way ends, true when it replaced the set, so the request is judged again
    /// against the keys the tenant publishes now: a key rotated in is served from its first token on. False
    /// when no fetch runs and none may start yet (the waiter is not kept): the request is refused at once.
    func refetchForUnknownKey(_ waiter: @escaping @Sendable (Bool) -> Void) -> Bool {
        let now = clock.nowNanoseconds()
        let (waits, starts) = state.withLock { s -> (Bool, Bool) in
            guard s.waiters.count < Self.waiterLimit else { return (false, false) }
            if s.inFlight {
                s.waiters.append(waiter)
                return (true, false)
            }
            guard now - s.lastAttempt >= minRefetchNanos else { return (false, false) }
            s.waiters.append(waiter)
            return (true, true)
        }
        // Should another fetch start in between, this one does not, and the waiter is called when that one ends.
        if starts { refetch(reason: "unknown kid") }
        return waits
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
            let (waiters, hadKeys) = state.withLock { s -> ([@Sendable (Bool) -> Void], Bool) in
                let hadKeys = s.keys != nil
                s.inFlight = false
                defer { s.waiters.removeAll() }
                switch outcome {
                case .success(let set):
                    s.store(set, at: finished)
                case .failure(let message):
                    s.failures += 1
                    s.lastError = message.description
                }
                return (s.waiters, hadKeys)
            }
            switch outcome {
            case .success(let set):
                logLoaded(set, reason: reason)
                completion?(true)
                for waiter in waiters { waiter(true) }
            case .failure(let message):
                logger.error(
                    hadKeys
                        ? "JWKS fetch failed; keeping the last good set"
                        : "JWKS fetch failed; no key set yet, so API requests get 503 until one is fetched",
                    metadata: ["reason": "\(reason)", "source": "\(source)", "error": "\(message)"])
                completion?(false)
                for waiter in waiters { waiter(false) }
            }
        }
    }
}
