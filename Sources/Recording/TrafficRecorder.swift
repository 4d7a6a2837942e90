import GatewayCore
import Synchronization

/// Which exchanges are recorded, and how.
public struct TrafficRecordingSettings: Sendable {
    public var enabled: Bool
    /// Empty: every route. Otherwise an exchange is recorded when its operation (`update-details`, as the
    /// configuration resolves routes to) equals an entry, or its path starts with an entry that begins with `/`.
    public var routes: [String]
    /// Empty: every organization. Otherwise only these `org_id`s (requests without an organization are skipped).
    public var organizations: [String]
    /// Fraction of matching exchanges recorded, 0…1.
    public var sampleRate: Double
    /// Bytes of each body kept (after redaction).
    public var bodyCap: Int
    /// Keep the bearer token's claims (never its signature) in `token_claims`.
    public var keepTokenClaims: Bool
    public var redactHeaders: [String]
    public var redactJSONPointers: [String]

    public init(
        enabled: Bool = false, routes: [String] = [], organizations: [String] = [], sampleRate: Double = 1,
        bodyCap: Int = 16 << 10, keepTokenClaims: Bool = true, redactHeaders: [String] = [],
        redactJSONPointers: [String] = []
    ) {
        self.enabled = enabled
        self.routes = routes
        self.organizations = organizations
        self.sampleRate = min(1, max(0, sampleRate))
        self.bodyCap = max(0, bodyCap)
        self.keepTokenClaims = keepTokenClaims
        self.redactHeaders = redactHeaders
        self.redactJSONPointers = redactJSONPointers
    }
}

/// Opt-in traffic recording: decides which exchanges to keep, and hands them to an ``EventRecorder`` as redacted
/// ``ExchangeRecord`` lines. Redaction and serialization run on the pipeline's writer thread (`record(deferred:)`),
/// before anything is written, so the event loop only pays for the decision and a copy.
public final class TrafficRecorder: Sendable {
    public let settings: TrafficRecordingSettings
    private let recorder: any EventRecorder
    private let ids: LogIDGenerator
    private let redactor: Redactor
    private let routes: Set<String>
    private let prefixes: [String]
    private let organizations: Set<String>

    public init(settings: TrafficRecordingSettings, recorder: any EventRecorder, ids: LogIDGenerator) {
        self.settings = settings
        self.recorder = recorder
        self.ids = ids
        self.redactor = Redactor(extraHeaders: settings.redactHeaders, jsonPointers: settings.redactJSONPointers)
        self.routes = Set(settings.routes.filter { !$0.hasPrefix("/") })
        self.prefixes = settings.routes.filter { $0.hasPrefix("/") }
        self.organizations = Set(settings.organizations)
    }

    /// Cheap and pure: call before capturing bodies. `sampleKey` (e.g. the request id) makes sampling
    /// deterministic; without it a random draw decides.
    public func shouldRecord(route: String?, path: Substring, organizationID: String?, sampleKey: String? = nil)
        -> Bool
    {
        guard settings.enabled, settings.sampleRate > 0 else { return false }
        if !routes.isEmpty || !prefixes.isEmpty {
            let byRoute = route.map { routes.contains($0) } ?? false
            let byPrefix = prefixes.contains { path.hasPrefix($0) }
            guard byRoute || byPrefix else { return false }
        }
        if !organizations.isEmpty {
            guard let organizationID, organizations.contains(organizationID) else { return false }
        }
        if settings.sampleRate >= 1 { return true }
        let draw: Double
        if let sampleKey {
            draw = Double(Self.mix(sampleKey) >> 11) / Double(UInt64(1) << 53)
        } else {
            draw = Double.random(in: 0..<1)
        }
        return draw < settings.sampleRate
    }

    /// FNV-1a followed by the MurmurHash3 finalizer: FNV alone spreads keys that differ in their last byte
    /// (`req-1`, `req-2`) poorly over the high bits that the draw uses.
    static func mix(_ key: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in key.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h = h &* 0xc4ce_b9fe_1a85_ec53
        h ^= h >> 33
        return h
    }

    /// Records one exchange (call only when ``shouldRecord(route:path:organizationID:sampleKey:)`` said yes).
    public func record(_ exchange: CapturedExchange) {
        let id = ids.next()
        let redactor = redactor
        let cap = settings.bodyCap
        let keepClaims = settings.keepTokenClaims
        recorder.record(deferred: {
            ExchangeRecord(captured: exchange, id: id, redactor: redactor, bodyCap: cap, keepTokenClaims: keepClaims)
                .json
        })
    }
}

/// Keeps recorded events in memory: for tests of code that records, and for the `demo` command.
public final class MemoryEventRecorder: EventRecorder, Sendable {
    private let lines = SimpleLockBox<[JSONValue]>([])
    public init() {}
    public func record(_ event: JSONValue) { lines.mutate { $0.append(event) } }
    public func record(deferred build: @escaping @Sendable () -> JSONValue?) {
        if let v = build() { record(v) }
    }
    public var events: [JSONValue] { lines.value }
}

/// A value behind a `Mutex`, for the few cold shared values of this module.
final class SimpleLockBox<T: Sendable>: Sendable {
    private let mutex: Mutex<T>
    init(_ value: T) { mutex = Mutex(value) }
    func mutate<R>(_ body: (inout T) -> R) -> R { mutex.withLock { body(&$0) } }
    var value: T { mutex.withLock { $0 } }
}
