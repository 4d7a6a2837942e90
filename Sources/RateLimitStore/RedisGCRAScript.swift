import Policy

/// The server-side half of the shared limiter: one Lua script that decides a request against the tenant cell
/// and the Organization cell atomically, on the Redis server's clock.
///
/// `KEYS[1]` is the tenant cell, `KEYS[2]` the Organization cell; `ARGV` holds the tenant interval and
/// tolerance, then the Organization's, in microseconds. The reply is `{code, now, tenantTAT, orgTAT}` with
/// code 0 admitted, 1 refused by the tenant, 2 refused by the Organization, and the TATs as they are after
/// the decision (microseconds since the epoch, 0 for an idle cell).
///
/// Why microseconds: Lua numbers are doubles, exact only up to 2^53, and epoch nanoseconds (~2^61) are not;
/// epoch microseconds (~2^51) are. The interval is rounded UP to a whole microsecond, so the shared limiter
/// never admits more than the local one (at 1,000 requests per second it admits at most 0.1% fewer).
///
/// Same order and guarantee as `RateLimiter`: the tenant cell is tested first, then the Organization's (so when
/// both are spent the tenant-wide limit is the one reported), and a refusal by either writes nothing, so it never spends the other's quota. Redis runs a script alone, so no
/// other replica can interleave between the tests and the writes. Each written cell expires (`PX`) when its
/// TAT passes, the moment it becomes a full bucket again and so carries no information: memory holds only
/// non-idle cells. A script that writes after reading `TIME` needs effects replication: the default since
/// Redis 5, switched on by `redis.replicate_commands()` on 3.2–4 (a no-op kept for compatibility on 7).
enum RedisGCRAScript {
    static let source = """
        if redis.replicate_commands then redis.replicate_commands() end
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local ti = tonumber(ARGV[1])
        local tt = tonumber(ARGV[2])
        local oi = tonumber(ARGV[3])
        local ot = tonumber(ARGV[4])
        local ttat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
        local otat = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
        local tbase = math.max(ttat, now)
        if tbase - now > tt then return {1, now, ttat, otat} end
        local obase = math.max(otat, now)
        if obase - now > ot then return {2, now, ttat, otat} end
        local tnext = tbase + ti
        local onext = obase + oi
        redis.call('SET', KEYS[1], string.format('%d', tnext), 'PX', math.floor((tnext - now) / 1000) + 1)
        redis.call('SET', KEYS[2], string.format('%d', onext), 'PX', math.floor((onext - now) / 1000) + 1)
        return {0, now, tnext, onext}
        """

    /// What the script decided, in microseconds.
    struct Outcome: Sendable, Equatable {
        enum Result: Int64, Sendable {
            case admitted = 0
            case refusedByTenant = 1
            case refusedByOrganization = 2
        }
        var result: Result
        var nowMicroseconds: Int64
        var tenantTAT: Int64
        var organizationTAT: Int64

        init(result: Result, nowMicroseconds: Int64, tenantTAT: Int64, organizationTAT: Int64) {
            self.result = result
            self.nowMicroseconds = nowMicroseconds
            self.tenantTAT = tenantTAT
            self.organizationTAT = organizationTAT
        }

        init(reply: RedisReply) throws(RedisError) {
            guard case .array(let items) = reply, items.count == 4 else {
                throw .unexpectedReply("the rate-limit script returned \(RedisGCRAScript.shape(reply))")
            }
            var values: [Int64] = []
            for item in items {
                guard case .integer(let value) = item else {
                    throw .unexpectedReply("the rate-limit script returned a non-integer element")
                }
                values.append(value)
            }
            guard let result = Result(rawValue: values[0]), values[1] > 0 else {
                throw .unexpectedReply("the rate-limit script returned code \(values[0]) at time \(values[1])")
            }
            self.init(result: result, nowMicroseconds: values[1], tenantTAT: values[2], organizationTAT: values[3])
        }
    }

    static func shape(_ reply: RedisReply) -> String {
        switch reply {
        case .array(let items): return "an array of \(items.count)"
        case .error(let message): return "an error (\(message))"
        case .integer: return "an integer"
        case .null: return "nil"
        case .status, .string: return "a string"
        }
    }
}

/// `GCRAParameters` in whole microseconds: the figures the script enforces, and the same remaining / refill /
/// wait formulas, so a Redis decision carries headers computed exactly like a local one.
struct MicrosecondGCRA: Sendable, Hashable {
    let ratePerSecond: Int
    let burst: Int
    let intervalMicroseconds: Int64
    let toleranceMicroseconds: Int64

    init(_ parameters: GCRAParameters) {
        ratePerSecond = parameters.ratePerSecond
        burst = parameters.burst
        intervalMicroseconds = max(1, (parameters.intervalNanoseconds + 999) / 1000)
        toleranceMicroseconds = Int64(parameters.burst - 1) * intervalMicroseconds
    }

    func remaining(tat: Int64, now: Int64) -> Int {
        let slack = now + toleranceMicroseconds - tat
        if slack < 0 { return 0 }
        return min(burst, Int(slack / intervalMicroseconds) + 1)
    }

    func nextRefill(tat: Int64, now: Int64) -> Int64 {
        let have = remaining(tat: tat, now: now)
        if have >= burst { return now }
        return tat - toleranceMicroseconds + Int64(have) * intervalMicroseconds
    }

    func wait(tat: Int64, now: Int64) -> Int64 { max(0, tat - toleranceMicroseconds - now) }

    /// The script's arguments for this cell: interval and tolerance.
    var arguments: [String] { [String(intervalMicroseconds), String(toleranceMicroseconds)] }

    /// The state of this cell as of `now`, in the local limiter's vocabulary (nanoseconds).
    func state(
        _ scope: RateLimitScope, _ rateClass: RateLimitClass, windowSeconds: Int, tat: Int64, now: Int64
    ) -> RateLimitState {
        RateLimitState(
            scope: scope, rateClass: rateClass, limit: burst, ratePerSecond: ratePerSecond,
            windowSeconds: windowSeconds, remaining: remaining(tat: tat, now: now),
            nextRefillNanoseconds: nextRefill(tat: tat, now: now) * 1000,
            waitNanoseconds: wait(tat: tat, now: now) * 1000)
    }
}
