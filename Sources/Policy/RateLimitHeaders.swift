import GatewayCore

/// Response header fields for a rate-limit decision.
///
/// Two families, both describing the same decision:
/// - the tenant's own (endpoints.md, "Rate-limit headers"): `X-RateLimit-Limit` (bucket size),
///   `X-RateLimit-Remaining`, `X-RateLimit-Reset` (EPOCH SECONDS of the next refill, never milliseconds: the
///   official SDKs sleep until that second), all for the tightest limit;
/// - the IETF fields of draft-ietf-httpapi-ratelimit-headers-10 (structured-field lists, the form introduced
///   in -08 and unchanged since): `RateLimit-Policy: "org-read";q=8;w=1, "tenant-read";q=40;w=1` (quota `q`
///   per window `w` seconds) and `RateLimit: "org-read";r=3;t=1, "tenant-read";r=39;t=1` (remaining `r`,
///   seconds `t` until the next refill), tightest policy first. No partition key (`pk`) is sent.
///
/// On a refusal also `Retry-After` (whole seconds, at least 1) and, when the tenant-wide limit refused,
/// `X-Auth0-Error-Kind: global-rate-limit`.
public enum RateLimitHeaders {
    public static let limit = "X-RateLimit-Limit"
    public static let remaining = "X-RateLimit-Remaining"
    public static let reset = "X-RateLimit-Reset"
    public static let policy = "RateLimit-Policy"
    public static let rateLimit = "RateLimit"
    public static let retryAfter = "Retry-After"
    public static let errorKind = "X-Auth0-Error-Kind"
    public static let globalRateLimit = "global-rate-limit"

    /// Every name this type may write, for stripping an upstream's copies and for CORS exposure.
    public static let allNames = [limit, remaining, reset, policy, rateLimit, retryAfter, errorKind]

    /// Whether `name` is one of `allNames`, in any case.
    public static func isRateLimitField(_ name: String) -> Bool {
        allNames.contains { name.asciiCaseInsensitiveEquals($0) }
    }
}

extension RateDecision {
    /// The header fields for this decision, in a stable order.
    public var headerFields: HTTPFields {
        var fields = HTTPFields()
        appendFields(to: &fields)
        return fields
    }

    /// Sets this decision's fields on `fields`, replacing any copy already there (an upstream's own
    /// `X-RateLimit-*` describe the tenant's limiter, not the one that admitted this request). Removes a stale
    /// `Retry-After` or `X-Auth0-Error-Kind` when the request was admitted.
    public func apply(to fields: inout HTTPFields) {
        fields.removeAll { RateLimitHeaders.isRateLimitField($0.name) }
        appendFields(to: &fields)
    }

    /// The (name, value) pairs, tightest limit first in the IETF lists.
    public var fieldPairs: [(String, String)] { headerFields.map { ($0.name, $0.value) } }

    /// Appends this decision's fields to `fields` (the one place they are written), taking the `RateLimit-Policy`
    /// value from `policyTexts` when it holds one for these figures.
    func appendFields(to fields: inout HTTPFields, policyTexts: RateLimitPolicyTexts? = nil) {
        let tight = tightest
        let other = tight.scope == .tenant ? organization : tenant
        let known = policyTexts?.entry(tight: tight, other: other)
        fields.add(RateLimitHeaders.limit, known?.limitText ?? String(tight.limit))
        fields.add(RateLimitHeaders.remaining, RateLimitFieldWriter.decimal(Int64(tight.remaining)))
        fields.add(RateLimitHeaders.reset, RateLimitFieldWriter.decimal(tight.resetEpochSeconds))
        fields.add(RateLimitHeaders.policy, known?.text ?? RateLimitPolicyTexts.write(tight: tight, other: other))
        fields.add(
            RateLimitHeaders.rateLimit,
            RateLimitFieldWriter.list(
                (tight.staticPolicyName, "r", Int64(tight.remaining), "t", secondsUntilRefill(tight)),
                (other.staticPolicyName, "r", Int64(other.remaining), "t", secondsUntilRefill(other))))
        if let retry = retryAfterSeconds { fields.add(RateLimitHeaders.retryAfter, String(retry)) }
        if !admitted, limitedBy == .tenant {
            fields.add(RateLimitHeaders.errorKind, RateLimitHeaders.globalRateLimit)
        }
    }

    private func secondsUntilRefill(_ state: RateLimitState) -> Int64 {
        RateLimitState.ceilSeconds(max(0, state.nextRefillNanoseconds - nowNanoseconds))
    }

    /// The 429 the gateway answers with when refused (`A0E-429-0003`, the tenant's shape), carrying the
    /// headers above. Meaningful only when `admitted` is false.
    public var rateLimitedError: TenantError { rateLimitedError(headers: headerFields) }

    /// The same 429 carrying `headers`, for a caller that has just written this decision's fields (and others).
    public func rateLimitedError(headers: HTTPFields) -> TenantError {
        let detail: String
        switch limitedBy {
        case .tenant:
            detail =
                "The tenant-wide \(rateClass.rawValue) rate limit (\(tenant.ratePerSecond) requests per second) "
                + "was exceeded. Retry after \(retryAfterSeconds ?? 1) second(s)."
        case .organization, nil:
            detail =
                "The Organization's \(rateClass.rawValue) rate limit (\(organization.ratePerSecond) requests per "
                + "second) was exceeded. Retry after \(retryAfterSeconds ?? 1) second(s)."
        }
        return TenantError.rateLimited(detail, headers: headers)
    }
}

/// The `RateLimit-Policy` values a limiter's decisions can carry, written once: the value depends only on
/// the two limits' scope, class, quota and window, and those are fixed per limiter (a decision from elsewhere,
/// e.g. shared admission with other figures, finds no entry and is written as usual).
struct RateLimitPolicyTexts: Sendable {
    struct Entry: Sendable {
        let tight: Figures
        let other: Figures
        /// The `RateLimit-Policy` value.
        let text: String
        /// The `X-RateLimit-Limit` value (the tight limit's bucket size).
        let limitText: String
    }

    struct Figures: Sendable, Equatable {
        let scope: RateLimitScope
        let rateClass: RateLimitClass
        let quota: Int
        let windowSeconds: Int
        let limit: Int

        init(_ state: RateLimitState) {
            scope = state.scope
            rateClass = state.rateClass
            quota = state.quota
            windowSeconds = state.windowSeconds
            limit = state.limit
        }
    }

    let entries: [Entry]

    init(limiter: RateLimiter) {
        var entries: [Entry] = []
        let window = limiter.windowSeconds
        for (rateClass, tenant, organization) in [
            (RateLimitClass.read, limiter.tenantRead, limiter.organizationRead),
            (RateLimitClass.write, limiter.tenantWrite, limiter.organizationWrite),
        ] {
            func state(_ scope: RateLimitScope, _ p: GCRAParameters) -> RateLimitState {
                RateLimitState(
                    scope: scope, rateClass: rateClass, limit: p.burst, ratePerSecond: p.ratePerSecond,
                    windowSeconds: window, remaining: 0, nextRefillNanoseconds: 0, waitNanoseconds: 0)
            }
            let t = state(.tenant, tenant)
            let o = state(.organization, organization)
            for (tight, other) in [(t, o), (o, t)] {
                entries.append(
                    Entry(
                        tight: Figures(tight), other: Figures(other), text: Self.write(tight: tight, other: other),
                        limitText: String(tight.limit)))
            }
        }
        self.entries = entries
    }

    /// The entry whose figures are exactly these two limits', if any.
    func entry(tight: RateLimitState, other: RateLimitState) -> Entry? {
        let t = Figures(tight)
        let o = Figures(other)
        // `init` writes the entries in (class, tight scope) order: the candidate is found without a search, and
        // still only returned when every figure matches.
        let guess = (tight.rateClass == .read ? 0 : 2) + (tight.scope == .tenant ? 0 : 1)
        if guess < entries.count, entries[guess].tight == t, entries[guess].other == o { return entries[guess] }
        for entry in entries where entry.tight == t && entry.other == o { return entry }
        return nil
    }

    /// The value as `RateDecision.fieldPairs` writes it.
    static func write(tight: RateLimitState, other: RateLimitState) -> String {
        RateLimitFieldWriter.list(
            (tight.staticPolicyName, "q", Int64(tight.quota), "w", Int64(tight.windowSeconds)),
            (other.staticPolicyName, "q", Int64(other.quota), "w", Int64(other.windowSeconds)))
    }
}

/// Writes the two-member structured-field lists of `RateLimit-Policy` and `RateLimit` in one allocation
/// (they are built for every response, so string interpolation's intermediate buffers showed up in profiles).
enum RateLimitFieldWriter {
    typealias Member = (
        name: StaticString, key1: Unicode.Scalar, value1: Int64, key2: Unicode.Scalar, value2: Int64
    )

    /// `String(value)`, without the generic integer formatting: a non-negative value of up to 15 digits is
    /// written straight into a small string.
    static func decimal(_ value: Int64) -> String {
        // Remaining counts are small: their texts are made once (small strings, no heap storage to share).
        if value >= 0, value < Int64(smallDecimals.count) { return smallDecimals[Int(value)] }
        guard value >= 0, value < 1_000_000_000_000_000 else { return String(value) }
        var digits = 1
        var bound: Int64 = 10
        while value >= bound {
            digits += 1
            bound &*= 10
        }
        return String(unsafeUninitializedCapacity: digits) { out in
            var v = value
            var i = digits
            repeat {
                i -= 1
                out[i] = UInt8(truncatingIfNeeded: v % 10) + 0x30
                v /= 10
            } while i > 0
            return digits
        }
    }

    /// `String(value)` for 0..<1024.
    private static let smallDecimals: [String] = (0..<1024).map { String($0) }

    /// `"a";k1=v1;k2=v2, "b";k1=v1;k2=v2`. Names are short ASCII tokens, values non-negative.
    static func list(_ first: Member, _ second: Member) -> String {
        let capacity = first.name.utf8CodeUnitCount + second.name.utf8CodeUnitCount + 4 * 20 + 24
        // Written on the stack, then copied once into a string of the exact length: writing straight into a
        // string's spare capacity made the standard library validate and copy the large buffer again.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { out in
            var writer = Writer(out: out)
            writer.member(first)
            writer.put(UInt8(ascii: ","))
            writer.put(UInt8(ascii: " "))
            writer.member(second)
            return String(decoding: UnsafeBufferPointer(rebasing: out[..<writer.count]), as: UTF8.self)
        }
    }

    /// A cursor over the string's uninitialised storage; a struct with mutating methods, because nested
    /// functions capturing the cursor cost a dynamic exclusivity check per byte.
    private struct Writer {
        let out: UnsafeMutableBufferPointer<UInt8>
        var count = 0

        mutating func put(_ byte: UInt8) {
            out[count] = byte
            count += 1
        }

        /// Digits written from the last one back (divisions by the constant 10, no running divisor).
        mutating func number(_ value: Int64) {
            var v = UInt64(max(0, value))
            var digits = 1
            var rest = v / 10
            while rest > 0 {
                digits += 1
                rest /= 10
            }
            var i = count + digits
            repeat {
                i -= 1
                out[i] = UInt8(truncatingIfNeeded: v % 10) + 0x30
                v /= 10
            } while v > 0
            count += digits
        }

        mutating func bytes(_ text: StaticString) {
            let n = text.utf8CodeUnitCount
            UnsafeMutableRawPointer(out.baseAddress! + count).copyMemory(from: text.utf8Start, byteCount: n)
            count += n
        }

        mutating func member(_ m: Member) {
            put(UInt8(ascii: "\""))
            bytes(m.name)
            put(UInt8(ascii: "\""))
            put(UInt8(ascii: ";"))
            put(UInt8(truncatingIfNeeded: m.key1.value))
            put(UInt8(ascii: "="))
            number(m.value1)
            put(UInt8(ascii: ";"))
            put(UInt8(truncatingIfNeeded: m.key2.value))
            put(UInt8(ascii: "="))
            number(m.value2)
        }
    }
}
