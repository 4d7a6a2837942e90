import EventLoop
import GatewayCore
import Policy
import Recording
import Tokens

/// Everything the policy handler of one snapshot needs, shared by all loops (immutable, or Sendable state).
final class PolicyRuntime: Sendable {
    let policy: RequestPolicy
    let jwks: JWKSProvider
    let verifier: TokenVerifier
    /// Upstream origin per tenant domain.
    let origins: [String: UpstreamOrigin]
    /// Opt-in traffic recording; nil when off.
    let traffic: TrafficRecorder?

    init(
        policy: RequestPolicy, jwks: JWKSProvider, origins: [String: UpstreamOrigin],
        traffic: TrafficRecorder? = nil
    ) {
        self.traffic = traffic
        self.policy = policy
        self.jwks = jwks
        self.origins = origins
        self.verifier = TokenVerifier(
            configuration: TokenVerifier.Configuration(
                maxTokenBytes: policy.config.tokens.maxTokenBytes,
                allowedAlgorithms: Set(policy.config.tokens.algorithms)))
    }
}

/// Builds one `PolicyHandler` per listener per loop.
struct PolicyHandlerFactory: HandlerFactory {
    let runtime: PolicyRuntime

    func makeHandler(for listener: ListenerProfile, context: LoopContext) -> any RequestHandler {
        PolicyHandler(runtime: runtime, context: context)
    }
}

/// Runs the request policy for each exchange on its loop: the pure stages of `RequestPolicy`, the signature
/// check in between (through this loop's verified-token cache), then forwarding or a local answer.
final class PolicyHandler: RequestHandler {
    let runtime: PolicyRuntime
    let context: LoopContext
    /// Verified tokens whose claims were not accepted (accepted ones are kept in `checked` only), so that repeating
    /// one costs no RSA operation.
    private let cache = VerifiedTokenCache(capacity: 4096)
    /// Tokens whose signature and claims passed on this loop, with their checked claims, until `exp`: a repeated
    /// token then costs a table lookup instead of a digest and a claims check. Tied to the key that verified
    /// them: served while the current key set maps their `kid` to the same key material.
    private let checked = CheckedTokens(capacity: 4096)
    private var random = SystemRandomNumberGenerator()
    private lazy var forwarder = ForwardingHandler(context: context) { _ in
        preconditionFailure("the policy handler forwards with an explicit judgement")
    }

    /// The domain this handler last forwarded to, with its origin: a loop's requests mostly go to one domain, whose
    /// string is the same storage each time (the listener's or the configuration's), so comparing it is usually
    /// one word where the dictionary would hash it.
    private var lastOrigin: (domain: String, origin: UpstreamOrigin)?

    init(runtime: PolicyRuntime, context: LoopContext) {
        self.runtime = runtime
        self.context = context
    }

    private func origin(for domain: String) -> UpstreamOrigin? {
        if let last = lastOrigin, last.domain == domain { return last.origin }
        guard let origin = runtime.origins[domain] else { return nil }
        lastOrigin = (domain, origin)
        return origin
    }

    func needsWholeBody(_ head: RequestHead) -> Bool { runtime.policy.needsWholeBody(head) }

    func refusesOnHead(_ head: RequestHead, listenerDomain: String?) -> Bool {
        // `begin` is pure: run again by `handle`, it answers the same.
        if case .respond = runtime.policy.begin(head, listenerDomain: listenerDomain) { return true }
        return false
    }

    func describeRefusal(_ exchange: Exchange, error: TenantError) {
        var notes = runtime.policy.describe(exchange.head, listenerDomain: exchange.listenerDomain)
        notes.decision = exchange.decision
        notes.error = error
        record(notes, on: exchange)
    }

    func handle(_ exchange: Exchange) {
        let policy = runtime.policy
        let head = exchange.head
        switch policy.begin(head, listenerDomain: exchange.listenerDomain, knownTokens: checked) {
        case .respond(let response, let notes):
            record(consume notes, on: exchange)
            exchange.writer?.send(response, isHEAD: head.method == "HEAD")
        case .forwardUnchecked(let domain, let notes):
            record(consume notes, on: exchange)
            forward(exchange, domain: domain, headers: HTTPFields(), delayMs: 0)
        case .needsToken(let token, let route, let notes):
            let now = context.clock.nowNanoseconds()
            let outcome: RequestPolicy.Outcome
            if let keys = runtime.jwks.keys,
                let hit = checked.lookup(token, keys: keys, nowSeconds: now / 1_000_000_000)
            {
                context.requestMetrics.tokenCache(hit: true)
                // The entry's claims are lent to `authorize`, not copied into a local first.
                outcome = policy.authorize(
                    head, body: exchange.body, route: route, token: .success(hit.verified), notes: consume notes,
                    nowNanoseconds: now, random: &random, checkedClaims: hit.claims)
            } else {
                // One key set for the verification and for whatever is stored from it: a refetch in between must not
                // tie an entry to a set it was not checked under.
                let keys = runtime.jwks.keys
                // Taken apart once: the token for `authorize`, the rest for storing it (no copy of either per use).
                let verdict: Result<VerifiedToken, TokenRejection>
                var verification: VerifiedTokenCache.Verification? = nil
                if let keys {
                    let hitsBefore = cache.hits
                    let result = cache.verifyWithoutStoring(
                        token, keys: keys, verifier: runtime.verifier, nowNanoseconds: context.clock.nowNanoseconds())
                    context.requestMetrics.tokenCache(hit: cache.hits != hitsBefore)
                    switch consume result {
                    case .success(let verified):
                        verdict = .success(verified.token)
                        verification = consume verified
                    case .failure(let rejection):
                        if rejection.kind == .unknownKey && !exchange.awaitedKeyRefetch {
                            // Judged again once the tenant's keys were fetched anew (the decision so far is pure).
                            exchange.awaitedKeyRefetch = true
                            let loop = context.loop
                            let pending = LoopBound((handler: self, exchange: exchange), loop: loop)
                            let waits = runtime.jwks.refetchForUnknownKey { _ in
                                loop.execute {
                                    let (handler, exchange) = pending.value
                                    if !exchange.finished && exchange.writer != nil { handler.handle(exchange) }
                                }
                            }
                            if waits { return }
                        }
                        verdict = .failure(rejection)
                    }
                } else {
                    verdict = .failure(TokenRejection(.noKeys, "no JWKS loaded"))
                }
                outcome = policy.authorize(
                    head, body: exchange.body, route: route, token: verdict, notes: consume notes, nowNanoseconds: now,
                    random: &random, checkedClaims: nil)
                // A fresh token is stored once: with its checked claims here when they passed, else (refused by the
                // claims check, or by a domain it was not issued for) in the verified-token cache, so that repeating
                // it costs no RSA operation either way.
                if let verification, let keys {
                    if let claims = outcome.checkedClaims {
                        checked.insert(
                            token,
                            CheckedTokens.Entry(
                                verified: verification.token, checked: claims, keys: keys, key: verification.key,
                                kid: verification.kid),
                            nowSeconds: now / 1_000_000_000)
                    } else {
                        cache.store(verification, nowNanoseconds: context.clock.nowNanoseconds())
                    }
                }
            }
            // `consume`: the notes move out of the outcome into the exchange's facts instead of being copied.
            switch consume outcome {
            case .respond(let response, let notes):
                let delay = notes.delayMilliseconds
                record(consume notes, on: exchange)
                if delay > 0 {
                    let isHEAD = head.method == "HEAD"
                    context.loop.schedule(afterMilliseconds: delay) { [weak exchange] in
                        guard let exchange, !exchange.finished else { return }
                        exchange.writer?.send(response, isHEAD: isHEAD)
                    }
                    return
                }
                exchange.writer?.send(response, isHEAD: head.method == "HEAD")
            case .forward(let headers, let delayMs, let notes):
                record(consume notes, on: exchange)
                forward(exchange, domain: route.domain, headers: headers, delayMs: delayMs)
            }
        }
    }

    private func forward(_ exchange: Exchange, domain: String, headers: HTTPFields, delayMs: Int) {
        guard let origin = origin(for: domain) else {
            exchange.decision = "no_upstream"
            let error = TenantError.gateway(status: 502, detail: "No upstream is configured for \(domain).")
            exchange.facts.error = error
            exchange.writer?.send(error.response)
            return
        }
        if delayMs > 0 {
            context.loop.schedule(afterMilliseconds: delayMs) { [weak self, weak exchange] in
                guard let self, let exchange, !exchange.finished else { return }
                self.forwarder.forward(exchange, origin: origin, responseHeaders: headers)
            }
            return
        }
        forwarder.forward(exchange, origin: origin, responseHeaders: headers)
    }

    /// Takes the notes: they move into the exchange's facts whole.
    private func record(_ notes: consuming PipelineNotes, on exchange: Exchange) {
        if let traffic = runtime.traffic,
            traffic.shouldRecord(
                route: notes.operation, path: exchange.head.path, organizationID: notes.organizationID,
                sampleKey: exchange.requestID)
        {
            exchange.capture = ResponseCapture(cap: traffic.settings.bodyCap)
        }
        exchange.decision = notes.decision
        // Auth0's `hostname` is the tenant domain the request was for: the arrival domain (the listener's, which a
        // sidecar's clients reach as localhost), or the Host itself when no tenant domain could be determined.
        // A pattern test: `== nil` copied (retained) the domain to compare it.
        if case .none = notes.domain {
            notes.domain = exchange.head.authority.map { RequestPolicy.hostWithoutPort($0).asciiLowercased }
        }
        // The notes move in whole: no string of them is copied, and the empty facts they replace cost one test.
        exchange.facts = ExchangeFacts(notes: notes)
    }

    func cancel(_ exchange: Exchange) { forwarder.cancel(exchange) }
}

/// A loop's tokens whose signature and claims passed, with what the check found, until `exp`.
///
/// Not Sendable: owned by one `PolicyHandler` and used on its loop only.
///
/// - Key: the token text. It hashes only its last 8 bytes, which lie inside the RS256 signature, and compares them
///   before the full text: hashing the whole ~1 KB token was a visible share of every request. The shortcut cannot
///   be abused to fill one bucket: only tokens whose signature verified are stored, and an attacker cannot choose
///   the signature bytes of a token the tenant signed; a forged lookup costs one full comparison.
/// - Recent: a small direct-mapped front of the table, indexed by the token's last eight bytes, answers a repeated
///   token with one full comparison (a pointer comparison when `begin` handed back the stored text) and no
///   hashing. It holds only entries of the table (or ones the table has just replaced: still verified and
///   checked, and judged by the same key-set and expiry rules), and `knownToken` answers from it only on equal
///   bytes.
/// - Bound: `capacity` entries; when full, a CLOCK sweep replaces the first entry that is expired or was not hit
///   since the hand last passed it, so a flood of one-off tokens does not wipe out the tokens clients reuse.
final class CheckedTokens: KnownTokenTexts {
    /// A class: a hit then hands out one reference instead of copying every field of the claims.
    final class Entry {
        let verified: VerifiedToken
        /// Never nil: kept as the optional `authorize` takes, so a hit lends it instead of wrapping a copy.
        let claims: CheckedClaims?
        /// The key set the entry was last confirmed under: held, not just identified, since a freed set's address
        /// could be reused by its successor. A hit under this very set needs no key lookup.
        var keys: JWKSKeySet
        /// The key that verified the signature and the `kid` the token named: under another set (a JWKS refetch)
        /// the entry stays served only while that set maps `kid` to the same key material.
        let key: RSAPublicKey
        let kid: String
        let expiresAt: Int64

        init(verified: VerifiedToken, checked: CheckedClaims, keys: JWKSKeySet, key: RSAPublicKey, kid: String) {
            self.verified = verified
            self.claims = checked
            self.keys = keys
            self.key = key
            self.kid = kid
            self.expiresAt = checked.context.expiresAt
        }

        var checked: CheckedClaims { claims! }

        /// Whether `keys` still maps the token's `kid` to the key that verified it; remembers the set when it does.
        @inline(__always)
        func isCurrent(under keys: JWKSKeySet) -> Bool { self.keys === keys || isCurrent(underNew: keys) }

        private func isCurrent(underNew keys: JWKSKeySet) -> Bool {
            guard keys.maps(kid, to: key) else { return false }
            self.keys = keys
            return true
        }
    }

    /// The token text with its tail (`Self.tail`) beside it. The tail is the hash and the first thing compared:
    /// every token of a tenant has the same length and shares its first few hundred bytes (header, issuer,
    /// audience), so comparing texts first would read that shared prefix, long out of cache, for each bucket a
    /// probe passes (a fresh token's miss, insert and eviction each pass some).
    private struct Key: Hashable {
        let text: String
        let tail: UInt64

        init(_ text: String) {
            self.text = text
            var text = text
            tail = text.withUTF8 { CheckedTokens.tail(of: $0) }
        }

        static func == (lhs: Key, rhs: Key) -> Bool { lhs.tail == rhs.tail && lhs.text == rhs.text }

        func hash(into hasher: inout Hasher) { hasher.combine(tail) }
    }

    /// One slot of the front: the stored text (the very string `knownToken` hands out), its entry, and the table
    /// slot it was stored in (to mark reads there), or -1 until a hit needs it: most fresh tokens are never
    /// seen again, so `insert` does not pay a second table lookup for it.
    private struct Recent {
        let key: Key
        let entry: Entry
        var slot: Int
    }

    private var table: ClockTable<Key, Entry>
    private var recent: [Recent?]
    /// Room for a client pool's dozens of tokens used in turn (about 48 KiB per loop): with 64 slots, 64 such tokens
    /// kept only about 40 of themselves in the front (a collision evicts), and each miss cost a token-syntax scan, a
    /// String and a table lookup (callgrind `rotate1`: 78.1k → 75.7k instructions per request).
    private static let recentSlots = 1024

    init(capacity: Int) {
        precondition(capacity > 0, "CheckedTokens needs a positive capacity")
        table = ClockTable(capacity: capacity)
        recent = Array(repeating: nil, count: Self.recentSlots)
    }

    var capacity: Int { table.capacity }
    var count: Int { table.count }

    /// The last eight bytes of a token (inside the RS256 signature, so chosen by the signer, not the client) with
    /// its length mixed in; a shorter token's bytes whole.
    private static func tail(of bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var tail: UInt64 = UInt64(truncatingIfNeeded: bytes.count)
        if bytes.count >= 8 {
            tail ^= UnsafeRawPointer(bytes.baseAddress! + (bytes.count - 8)).loadUnaligned(as: UInt64.self)
        } else {
            for byte in bytes { tail = tail << 8 | UInt64(byte) }
        }
        return tail
    }

    /// The front slot of a token's tail, mixed, so tokens of one client that differ only in their signatures
    /// spread over the slots.
    private static func recentIndex(_ tail: UInt64) -> Int {
        // The product's top 10 bits: an index into the 1,024 slots.
        Int(truncatingIfNeeded: (tail &* 0x9E37_79B9_7F4A_7C15) >> 54) & (recentSlots - 1)
    }

    /// The stored text whose bytes are exactly `bytes`, if the front holds one (`KnownTokenTexts`).
    func knownToken(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        let tail = Self.tail(of: bytes)
        guard let candidate = recent[Self.recentIndex(tail)], candidate.key.tail == tail else { return nil }
        var text = candidate.key.text
        let same = text.withUTF8 { stored in
            stored.count == bytes.count
                && (bytes.isEmpty || bytesEqual(stored.baseAddress!, bytes.baseAddress!, bytes.count))
        }
        return same ? candidate.key.text : nil
    }

    /// The entry for `token` if it was checked under this very key set and has not expired.
    func lookup(_ token: String, keys: JWKSKeySet, nowSeconds: Int64) -> Entry? {
        let key = Key(token)
        let front = Self.recentIndex(key.tail)
        if var candidate = recent[front], candidate.key == key {
            let entry = candidate.entry
            if candidate.slot < 0 {
                candidate.slot = table.slot(of: key) ?? Int.max
                recent[front] = candidate
            }
            // `Int.max`: the table no longer holds the text; the front still answers for it by its own rules.
            let inTable = candidate.slot != Int.max && table.value(at: candidate.slot) === entry
            guard nowSeconds < entry.expiresAt, entry.isCurrent(under: keys) else {
                recent[front] = nil
                if inTable { table.remove(at: candidate.slot) }
                return nil
            }
            if inTable { table.markRead(candidate.slot) }
            return entry
        }
        guard let slot = table.slot(of: key), let entry = table.value(at: slot) else { return nil }
        guard nowSeconds < entry.expiresAt, entry.isCurrent(under: keys) else {
            // Dead for good: time only moves forward, and a set that no longer maps the key ends the entry (a
            // later set that maps it again costs one verification).
            table.remove(at: slot)
            return nil
        }
        table.markRead(slot)
        recent[front] = Recent(key: key, entry: entry, slot: slot)
        return entry
    }

    func insert(_ token: String, _ entry: Entry, nowSeconds: Int64) {
        let key = Key(token)
        table.insert(key, entry, expiresAt: entry.expiresAt, now: nowSeconds)
        recent[Self.recentIndex(key.tail)] = Recent(key: key, entry: entry, slot: -1)
    }
}
