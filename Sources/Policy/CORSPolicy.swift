import GatewayCore

/// CORS settings other than the origins (`cors:` in the configuration).
public struct CORSConfiguration: Sendable, Hashable {
    /// Largest `max_age_s` the loader should accept (browsers cap lower anyway: Chromium at 7200).
    public static let maxAgeLimit = 86_400

    /// Request headers a preflight may ask for; anything else is refused. Bearer tokens travel in
    /// `Authorization`, so credentials mode is never needed. The embeddable components name the scopes they want
    /// in `auth0-scope`, or `scope` with nextjs-auth0 4.12+ (endpoints.md, "Embeddable UI components").
    public static let defaultAllowedRequestHeaders = [
        "authorization", "content-type", "accept", "accept-language", "content-language", "auth0-client",
        "auth0-scope", "scope", "dpop", "x-request-id", "traceparent", "tracestate",
    ]

    /// Response headers a page's script may read besides the safelisted ones.
    public static let defaultExposedHeaders = [
        "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit", "RateLimit-Policy",
        "Retry-After", "X-Auth0-Error-Kind", "X-Request-Id", "WWW-Authenticate",
    ]

    /// `Access-Control-Max-Age` of a successful preflight, clamped to 0...`maxAgeLimit`.
    public let maxAgeSeconds: Int
    /// Lowercase names.
    public let allowedRequestHeaders: Set<String>
    public let exposedHeaders: [String]
    /// `exposedHeaders` as one field value, joined once.
    let exposedHeadersValue: String
    let maxAgeValue: String

    public init(
        maxAgeSeconds: Int = 600,
        allowedRequestHeaders: [String] = CORSConfiguration.defaultAllowedRequestHeaders,
        exposedHeaders: [String] = CORSConfiguration.defaultExposedHeaders
    ) {
        self.maxAgeSeconds = min(max(0, maxAgeSeconds), CORSConfiguration.maxAgeLimit)
        self.allowedRequestHeaders = Set(allowedRequestHeaders.map(\.asciiLowercased))
        self.exposedHeaders = exposedHeaders
        self.exposedHeadersValue = exposedHeaders.joined(separator: ", ")
        self.maxAgeValue = String(self.maxAgeSeconds)
    }
}

/// Why a preflight was refused.
public enum CORSRefusal: Sendable, Hashable, CustomStringConvertible {
    /// `null`, malformed, or in no client's Allowed Origins.
    case originNotAllowed
    /// The route does not allow the method the preflight asks for.
    case methodNotAllowed(String)
    /// A requested header is outside the allowed set.
    case headerNotAllowed(String)

    public var description: String {
        switch self {
        case .originNotAllowed: return "The request's origin is not in any application's Allowed Origins (CORS)."
        case .methodNotAllowed(let method):
            return "Method \(method.prefix(20)) is not allowed on this endpoint (CORS preflight)."
        case .headerNotAllowed(let name):
            return "Request header '\(name.prefix(64))' is not allowed (CORS preflight)."
        }
    }
}

/// The answer to a request that may be a CORS preflight.
public enum CORSPreflightDecision: Sendable, Equatable {
    /// Not a preflight (no `OPTIONS`, or no `Origin` or `Access-Control-Request-Method`): continue as usual.
    case notPreflight
    /// 204 with the echoed origin, allowed methods and headers, max age and `Vary`.
    case allowed(Response)
    /// 403 in the tenant's error shape, with `Vary` but WITHOUT any `Access-Control-Allow-*` field, so the
    /// browser blocks the actual request. 403 rather than a bare 204 so the refusal is visible in the
    /// browser's network panel, in access logs and in log events.
    case refused(Response, CORSRefusal)

    /// The response to write, if the gateway answers the request itself.
    public var response: Response? {
        switch self {
        case .notPreflight: return nil
        case .allowed(let response), .refused(let response, _): return response
        }
    }
}

/// The compiled CORS policy: every client's Allowed Origins, precompiled for O(1) lookups.
///
/// Immutable and `Sendable`: built once per policy snapshot and shared by every loop.
/// - Preflights are judged against the UNION of all clients' origins: a preflight carries no token, so the
///   client is unknown.
/// - Actual responses get `Access-Control-Allow-Origin` only when the origin is allowed for the token's
///   client (`clientID`); before a client is known (for example a 401 the gateway writes for a missing
///   token), pass `clientID: nil` to judge against the union, so the page can read the error.
/// - The tenant's own `Access-Control-*` fields are always REPLACED by the gateway's (`apply`).
/// - Never `Access-Control-Allow-Credentials`: the API takes bearer tokens, not cookies. Never `*`.
public struct CORSPolicy: Sendable {
    public let configuration: CORSConfiguration
    private let union: CORSOriginSet
    private let perClient: [String: CORSOriginSet]
    /// The answers for the origins browsers actually send for the exact entries (lowercase, default port
    /// left out), worked out once with the parsing path: a request from such an origin costs one hash
    /// lookup instead of a parse and a key allocation.
    private let knownOrigins: [CORSKnownOrigin]
    private let knownOriginIndex: ByteStringIndex

    public static let preflightVary = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"

    /// `clientOrigins`: client id to its parsed Allowed Origins.
    public init(clientOrigins: [String: [OriginPattern]], configuration: CORSConfiguration = CORSConfiguration()) {
        self.configuration = configuration
        var union = CORSOriginSet()
        var perClient: [String: CORSOriginSet] = [:]
        for (client, patterns) in clientOrigins {
            var set = CORSOriginSet()
            for pattern in patterns {
                set.insert(pattern)
                union.insert(pattern)
            }
            perClient[client] = set
        }
        self.union = union
        self.perClient = perClient
        var texts: [String] = []
        var seen: Set<String> = []
        for origin in union.exact.sorted().compactMap(CORSKnownOrigin.browserForm(ofKey:))
        where seen.insert(origin).inserted {
            texts.append(origin)
        }
        // Each origin is asked only of the clients that could allow it: those listing it, and those with a
        // wildcard under its parent (asking every client for every origin made a thousand clients with an origin
        // each take 11 s to load, on every reload too). The question asked is the same.
        var exactClients: [String: [String]] = [:]
        var wildcardClients: [String: [String]] = [:]
        for (client, set) in perClient {
            for key in set.exact { exactClients[key, default: []].append(client) }
            for parentKey in set.wildcards.keys { wildcardClients[parentKey, default: []].append(client) }
        }
        self.knownOrigins = texts.map { origin in
            let request = CORSRequestOrigin(origin)
            let exact = request.flatMap { exactClients[$0.key] } ?? []
            let wild = request?.wildcardSplit.flatMap { wildcardClients[$0.parentKey] } ?? []
            let candidates = Set(exact + wild)
            return CORSKnownOrigin(
                union: Self.isAllowed(origin: origin, clientID: nil, union: union, perClient: perClient),
                clients: candidates.sorted().filter {
                    Self.isAllowed(origin: origin, clientID: $0, union: union, perClient: perClient)
                })
        }
        self.knownOriginIndex = ByteStringIndex(texts.map { Array($0.utf8) })
    }

    /// Parses every client's origin strings; the first invalid one is reported with its client and index.
    public static func compile(
        clientOrigins: [String: [String]], configuration: CORSConfiguration = CORSConfiguration()
    ) throws(CORSPolicyError) -> CORSPolicy {
        var parsed: [String: [OriginPattern]] = [:]
        for client in clientOrigins.keys.sorted() {
            var patterns: [OriginPattern] = []
            for (index, text) in clientOrigins[client]!.enumerated() {
                do {
                    patterns.append(try OriginPattern.parse(text))
                } catch {
                    throw CORSPolicyError(clientID: client, index: index, error: error)
                }
            }
            parsed[client] = patterns
        }
        return CORSPolicy(clientOrigins: parsed, configuration: configuration)
    }

    /// Whether `origin` (an `Origin` header value) is allowed for `clientID`, or for any client when nil.
    public func isAllowed(origin: String, clientID: String?) -> Bool {
        if let position = knownOriginIndex.find(origin) {
            let known = knownOrigins[position]
            guard let clientID else { return known.union }
            return known.allows(clientID)
        }
        return Self.isAllowed(origin: origin, clientID: clientID, union: union, perClient: perClient)
    }

    /// The general decision (parse, normalise, look up): every answer, and the source of `knownOrigins`.
    func isAllowedParsing(origin: String, clientID: String?) -> Bool {
        Self.isAllowed(origin: origin, clientID: clientID, union: union, perClient: perClient)
    }

    private static func isAllowed(
        origin: String, clientID: String?, union: CORSOriginSet, perClient: [String: CORSOriginSet]
    ) -> Bool {
        guard let parsed = CORSRequestOrigin(origin) else { return false }
        if let clientID {
            return perClient[clientID]?.contains(parsed) ?? false
        }
        return union.contains(parsed)
    }

    /// Answers a preflight. `allowedMethods`: the methods the route allows (from the endpoint table).
    public func preflight(_ request: RequestHead, allowedMethods: [String]) -> CORSPreflightDecision {
        guard request.method == "OPTIONS", let origin = request.headers[literal: "Origin"],
            let method = request.headers[literal: "Access-Control-Request-Method"]
        else { return .notPreflight }
        var vary = HTTPFields()
        vary.add("Vary", CORSPolicy.preflightVary)
        guard request.headers.values("Origin").count == 1, isAllowed(origin: origin, clientID: nil) else {
            return refuse(.originNotAllowed, vary)
        }
        let requestedMethod = CORSPolicy.trimOWS(method.utf8)
        guard allowedMethods.contains(requestedMethod) else { return refuse(.methodNotAllowed(requestedMethod), vary) }
        var requested: [String] = []
        for value in request.headers.values("Access-Control-Request-Headers") {
            for item in CORSPolicy.commaList(value) {
                let name = item.asciiLowercased
                guard configuration.allowedRequestHeaders.contains(name) else {
                    return refuse(.headerNotAllowed(name), vary)
                }
                if !requested.contains(name) { requested.append(name) }
            }
        }
        var headers = HTTPFields()
        headers.add("Access-Control-Allow-Origin", origin)
        headers.add("Access-Control-Allow-Methods", allowedMethods.joined(separator: ", "))
        if !requested.isEmpty {
            headers.add("Access-Control-Allow-Headers", requested.joined(separator: ", "))
        }
        headers.add("Access-Control-Max-Age", configuration.maxAgeValue)
        headers.add("Vary", CORSPolicy.preflightVary)
        return .allowed(Response(status: 204, headers: headers))
    }

    private func refuse(_ refusal: CORSRefusal, _ headers: HTTPFields) -> CORSPreflightDecision {
        var response = TenantError.forbidden(refusal.description).response
        for field in headers { response.head.headers.add(field.name, field.value) }
        return .refused(response, refusal)
    }

    /// The CORS fields for an actual (non-preflight) response: `Vary: Origin` always; when `origin` is
    /// allowed, also `Access-Control-Allow-Origin` (the origin exactly as sent) and
    /// `Access-Control-Expose-Headers`.
    public func responseHeaders(origin: String?, clientID: String?) -> HTTPFields {
        var fields = HTTPFields()
        apply(to: &fields, origin: origin, clientID: clientID)
        return fields
    }

    /// Rewrites a response's fields (typically the upstream's): removes every `Access-Control-*` field, adds
    /// the gateway's, and merges `Origin` into `Vary` (kept once; a `Vary: *` is left alone).
    public func apply(to fields: inout HTTPFields, origin: String?, clientID: String?) {
        fields.removeAll { field in
            field.name.utf8.count > 15
                && field.name.utf8.prefix(15).elementsEqual("access-control-".utf8) {
                    ($0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0) == $1
                }
        }
        let allowed = origin.map { isAllowed(origin: $0, clientID: clientID) } ?? false
        appendActualResponseFields(to: &fields, origin: origin, allowed: allowed)
        CORSPolicy.mergeVaryOrigin(&fields)
    }

    /// What `apply` adds to fields that hold no `Access-Control-*` and no `Vary` field, with the origin's
    /// verdict (`isAllowed`) already known: the caller judged it once for its own check.
    func appendToFreshFields(_ fields: inout HTTPFields, origin: String?, allowed: Bool) {
        appendActualResponseFields(to: &fields, origin: origin, allowed: allowed)
        fields.add("Vary", "Origin")
    }

    private func appendActualResponseFields(to fields: inout HTTPFields, origin: String?, allowed: Bool) {
        guard let origin, allowed else { return }
        fields.add("Access-Control-Allow-Origin", origin)
        if !configuration.exposedHeaders.isEmpty {
            fields.add("Access-Control-Expose-Headers", configuration.exposedHeadersValue)
        }
    }

    /// The non-empty members of a comma-separated field value, without optional whitespace (RFC 9110 §5.6.1).
    static func commaList(_ value: String) -> [String] {
        value.utf8.split(separator: UInt8(ascii: ",")).compactMap { item in
            let trimmed = trimOWS(item)
            return trimmed.isEmpty ? nil : trimmed
        }
    }

    static func trimOWS<S: BidirectionalCollection>(_ bytes: S) -> String where S.Element == UInt8 {
        var slice = bytes[...]
        while let c = slice.first, c == 0x20 || c == 0x09 { slice = slice.dropFirst() }
        while let c = slice.last, c == 0x20 || c == 0x09 { slice = slice.dropLast() }
        return String(decoding: slice, as: UTF8.self)
    }

    static func mergeVaryOrigin(_ fields: inout HTTPFields) { mergeVary(&fields, adding: "Origin") }

    /// Adds the field names of `list` (a `Vary` value) to the `Vary` of `fields`, keeping the names already
    /// there: a response that varies on the upstream's fields and on the gateway's varies on both (RFC 9110
    /// §12.5.5). Nothing is added to `*`, which already covers every field.
    public static func mergeVary(_ fields: inout HTTPFields, adding list: String) {
        let existing = fields.values("Vary")
        if existing.isEmpty {
            fields.add("Vary", list)
            return
        }
        var tokens: [String] = []
        for value in existing { tokens.append(contentsOf: commaList(value)) }
        guard !tokens.contains("*") else { return }
        var changed = false
        for token in commaList(list) where !tokens.contains(where: { $0.asciiCaseInsensitiveEquals(token) }) {
            tokens.append(token)
            changed = true
        }
        if changed { fields.set("Vary", tokens.joined(separator: ", ")) }
    }
}

/// Why a client's Allowed Origins were refused.
public struct CORSPolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var clientID: String
    /// Index in the client's `allowed_origins` list.
    public var index: Int
    public var error: OriginPatternError

    public var description: String { "client \(clientID): allowed_origins[\(index)]: \(error)" }
}

/// Precompiled origins: exact keys in a set; wildcards grouped by the key of what follows the `*` label.
struct CORSOriginSet: Sendable {
    var exact: Set<String> = []
    var wildcards: [String: [(prefix: String, suffix: String)]] = [:]

    mutating func insert(_ pattern: OriginPattern) {
        switch pattern.kind {
        case .exact(let key): exact.insert(key)
        case .wildcard(let prefix, let suffix, let parentKey):
            if !(wildcards[parentKey]?.contains { $0.prefix == prefix && $0.suffix == suffix } ?? false) {
                wildcards[parentKey, default: []].append((prefix, suffix))
            }
        }
    }

    func contains(_ origin: CORSRequestOrigin) -> Bool {
        if exact.contains(origin.key) { return true }
        guard !wildcards.isEmpty, let split = origin.wildcardSplit, let candidates = wildcards[split.parentKey] else {
            return false
        }
        return candidates.contains { CORSOriginParser.label(split.label, matchesPrefix: $0.prefix, suffix: $0.suffix) }
    }
}

/// A precomputed CORS answer for one origin text (see `CORSPolicy.knownOrigins`).
struct CORSKnownOrigin: Sendable {
    /// Allowed for some client (the preflight question).
    let union: Bool
    /// The clients that allow it: a short list is scanned (an origin is rarely shared by many clients), a long
    /// one hashed.
    private let clients: [String]
    private let clientSet: Set<String>?

    init(union: Bool, clients: [String]) {
        self.union = union
        self.clients = clients
        self.clientSet = clients.count > 8 ? Set(clients) : nil
    }

    func allows(_ clientID: String) -> Bool {
        if let clientSet { return clientSet.contains(clientID) }
        return clients.contains(clientID)
    }

    /// `scheme://host` (or `scheme://host:port` for a port other than the scheme's default) for a
    /// normalised exact key `scheme://host:port`.
    static func browserForm(ofKey key: String) -> String? {
        guard let colon = key.utf8.lastIndex(of: UInt8(ascii: ":")) else { return nil }
        let port = key[key.utf8.index(after: colon)...]
        let head = key[..<colon]
        if (head.hasPrefix("https://") && port == "443") || (head.hasPrefix("http://") && port == "80") {
            return String(head)
        }
        return key
    }
}
