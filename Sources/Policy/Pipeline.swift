import GatewayCore
import Synchronization

/// What the pipeline learned about a request, for its log event, the access log and metrics.
public struct PipelineNotes: Sendable, Equatable {
    public var operation: String?
    public var logResource: String?
    public var routeName: String?
    public var domain: String?
    public var organizationID: String?
    public var clientID: String?
    public var userID: String?
    /// The token's `scope` claim as given (the token's order; `TokenContext.scopeClaim`), for the log event.
    public var scope: String?
    public var audience: String?
    /// The refusal the gateway wrote itself, if any (for `details.error` of the event).
    public var error: TenantError?
    /// Why: forwarded, preflight, options_server, refused_route, refused_token, refused_scope, refused_access, refused_cors,
    /// refused_rate_limit_tenant, refused_rate_limit_org, fault_injected, …
    public var decision: String = "pending"
    public var rateDecision: RateDecision?
    /// Wait this long before sending the gateway's own answer (an injected fault with `delay_ms`).
    public var delayMilliseconds: Int = 0
    /// How the request presented its token; a refusal's challenge uses the same scheme (RFC 9449 §7.1).
    public var tokenScheme: PresentedToken.Scheme = .bearer
    /// The token's checked claims, when they passed: a caller may keep them until `expiresAt` and hand them
    /// back as `checkedClaims` for the same token and domain.
    public var tokenContext: TokenContext?

    public init() {}

    /// What a caller keeps to skip the claims check of the same token next time: set once `authorize`
    /// accepted the token's claims (with the audience and scope it derived from them).
    public var checkedClaims: CheckedClaims? {
        tokenContext.map { CheckedClaims(context: $0, audience: audience, scope: scope ?? "") }
    }
}

/// A token's checked claims and the log facts `authorize` derives from them (`audience`, `scope`), handed
/// back for the same token so a repeated token costs neither the claims check nor the derivations.
public struct CheckedClaims: Sendable, Equatable {
    public var context: TokenContext
    /// The token's `aud`, as `PipelineNotes.audience` gives it.
    public var audience: String?
    /// The token's `scope` claim as given, as `PipelineNotes.scope` gives it.
    public var scope: String
    /// The endpoints whose access check these claims passed, filled in by `authorize` as requests arrive.
    ///
    /// Shared by the copies of these claims (a caller's cache hands them to every request of the token); valid
    /// for the policy that filled it, which is the one its caller keeps the claims for.
    public let admittedEndpoints = AdmittedEndpoints()

    public init(context: TokenContext, audience: String?, scope: String) {
        self.context = context
        self.audience = audience
        self.scope = scope
    }

    /// Equal claims; what the memo has learnt so far does not take part.
    public static func == (lhs: CheckedClaims, rhs: CheckedClaims) -> Bool {
        lhs.context == rhs.context && lhs.audience == rhs.audience && lhs.scope == rhs.scope
    }
}

/// Endpoints, by table index, that a token's claims passed the access check for.
///
/// The access check (grant, scopes, step-up) depends only on the claims, the endpoint and the configuration, so a
/// token repeated for the same endpoint gets the same answer: remembering the passes saves a client lookup and a
/// set probe per scope on every request of a known token. Only passes are kept; a refusal is judged again, so its
/// error is always the one `AccessPolicy.authorize` gives. Indices from 64 on are not remembered.
public final class AdmittedEndpoints: Sendable {
    private let bits = Atomic<UInt64>(0)

    public init() {}

    public func contains(_ index: Int) -> Bool {
        index >= 0 && index < 64 && bits.load(ordering: .relaxed) & (1 << UInt64(index)) != 0
    }

    public func insert(_ index: Int) {
        guard index >= 0, index < 64 else { return }
        bits.bitwiseOr(1 << UInt64(index), ordering: .relaxed)
    }
}

/// The compiled, immutable request policy of one configuration snapshot: routing, CORS, claims, access, scopes,
/// step-up, rate limits and fault injection, as pure decisions (the only state is the rate limiter's cells).
///
/// A request passes in two steps because the signature check between them is crypto, done by the caller:
/// `begin` (route, domain, preflight, bearer extraction) and `authorize` (claims, access, scopes, limits).
/// A source of rate-limit decisions other than the in-process limiter (e.g. limits shared through Redis).
/// Same contract as `RateLimiter.admit`: a decision for every call, never unbounded waits, an admitted request
/// has spent one unit of both the tenant and the organization limit, a refused one nothing.
public protocol RateAdmission: Sendable {
    func admit(org: String, rateClass: RateLimitClass, nowNanoseconds: Int64) -> RateDecision
}

public final class RequestPolicy: Sendable {
    public let config: GatewayConfig
    public let router: Router
    public let claims: ClaimsChecker
    public let access: AccessPolicy
    public let cors: CORSPolicy
    public let limiter: RateLimiter
    /// The configuration's `faults` rules (testing mode; empty unless configured).
    public let faults: FaultInjector
    /// When set, decisions come from here instead of `limiter` (which still serves sweeps and reloads).
    public let sharedAdmission: (any RateAdmission)?
    /// The routes of the exact paths of parameterless endpoints, judged at build time by `routeGeneral`.
    let literalRoutes: LiteralRoutes
    /// `RateLimit-Policy` values for `limiter`'s figures.
    let policyTexts: RateLimitPolicyTexts

    public init(
        config: GatewayConfig, tiers: TierTable, limiter: RateLimiter? = nil,
        sharedAdmission: (any RateAdmission)? = nil
    ) throws(PolicyBuildError) {
        self.sharedAdmission = sharedAdmission
        self.config = config
        do {
            self.faults = FaultInjector(
                rules: try config.faults.map { fault throws(FaultRuleError) in
                    let target: FaultRule.Target
                    switch (fault.operation, fault.organization) {
                    case (let route?, let org?): target = .routeInOrganization(route: route, organization: org)
                    case (let route?, nil): target = .route(route)
                    case (nil, let org?): target = .organization(org)
                    case (nil, nil): target = .every
                    }
                    return try FaultRule(
                        target: target, share: fault.share, status: fault.status, delayMilliseconds: fault.delayMs)
                })
        } catch {
            throw PolicyBuildError("faults: \(error)")
        }
        self.router = Router(table: config.endpoints)
        self.claims = ClaimsChecker(config: config)
        self.access = AccessPolicy(config: config)
        var origins: [String: [String]] = [:]
        for client in config.clients where client.crossOriginAuthentication {
            origins[client.clientID] = client.allowedOrigins
        }
        do {
            self.cors = try CORSPolicy.compile(
                clientOrigins: origins,
                configuration: CORSConfiguration(maxAgeSeconds: config.cors.maxAgeS))
        } catch {
            throw PolicyBuildError(error.description)
        }
        if let limiter {
            self.limiter = limiter
        } else {
            do {
                let limits = try RateLimiterConfiguration.resolve(
                    tiers: tiers, tenantTier: config.tenant.tier.rawValue,
                    simulateTier: config.rateLimits.simulateTier?.rawValue, burstSeconds: config.rateLimits.burstS)
                self.limiter = RateLimiter(configuration: limits)
            } catch {
                throw PolicyBuildError(error.description)
            }
        }
        let router = self.router
        self.literalRoutes = LiteralRoutes(table: config.endpoints) { method, path in
            RequestPolicy.routeGeneral(router: router, method: method, path: path)
        }
        self.policyTexts = RateLimitPolicyTexts(limiter: self.limiter)
    }

    // MARK: - Step 1

    public enum Begin: Sendable {
        /// The gateway answers now (route refusals, preflights, misdirected requests).
        case respond(Response, PipelineNotes)
        /// A My Organization API endpoint: verify `token`'s signature, then call `authorize`.
        case needsToken(token: String, route: RouteMatch, notes: PipelineNotes)
        /// Not a My Organization API path, on a custom domain served in edge mode: forward as is.
        case forwardUnchecked(domain: String, notes: PipelineNotes)
    }

    /// What the router found, carried from `begin` to `authorize`.
    public struct RouteMatch: Sendable {
        public var endpoint: Endpoint?
        public var domain: String
        public var origin: String?
    }

    /// The domain the request arrived on: the listener's, or the request's Host when it names a tenant domain.
    ///
    /// On a listener bound to a domain, a Host naming the tenant's other domain is misdirected: an HTTP/2 client
    /// reuses one connection for both names when one certificate covers them and they resolve alike (RFC 9113
    /// §9.1.1), and judging such a request as one to this listener's domain would refuse a client that used one
    /// domain throughout, with a detail saying it did not. It gets nil (a 421, RFC 9110 §15.5.20, after which the
    /// client retries on a connection of its own). Any other Host (`localhost`, an address) leaves the listener's
    /// domain in force.
    public func arrivalDomain(listenerDomain: String?, authority: String?) -> String? {
        guard let listenerDomain else { return authority.flatMap(tenantDomain(named:)) }
        // The usual request names the listener's own domain: settled by the byte test, no String made.
        guard let authority, !RequestPolicy.authority(authority, names: listenerDomain),
            let other = tenantDomain(named: authority), other != listenerDomain
        else { return listenerDomain }
        return nil
    }

    /// The tenant domain `authority` (a host with an optional port, any case) names, as configured (lowercase),
    /// or nil. Byte tests against each configured domain: a sidecar's clients name `localhost` or an address,
    /// and cutting the port off and lower-casing it into new Strings cost ~1.7k instructions per request.
    /// (Authorities reach here validated, `host [":" *DIGIT]`, so the byte test and that cut agree.)
    private func tenantDomain(named authority: String) -> String? {
        let tenant = config.tenant
        if RequestPolicy.authority(authority, names: tenant.canonicalDomain) { return tenant.canonicalDomain }
        return tenant.customDomains.first { RequestPolicy.authority(authority, names: $0) }
    }

    /// Whether `authority` is `domain` (ASCII case aside), alone or followed by `:` and a port (`*DIGIT`, RFC 9110
    /// §4.2.1): settled in place (cutting the port off into a new String costs ~2k instructions). Anything else
    /// after the name (`:8443:1`, a letter) does not name the domain.
    public static func authority(_ authority: String, names domain: String) -> Bool {
        func names(_ host: UnsafeBufferPointer<UInt8>, _ domain: UnsafeBufferPointer<UInt8>) -> Bool {
            guard host.count >= domain.count,
                asciiCaseInsensitiveBytesEqual(UnsafeBufferPointer(rebasing: host[..<domain.count]), domain)
            else { return false }
            guard host.count > domain.count else { return true }
            return host[domain.count] == UInt8(ascii: ":")
                && host[(domain.count + 1)...].allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        }
        let inPlace =
            authority.utf8.withContiguousStorageIfAvailable { host in
                domain.utf8.withContiguousStorageIfAvailable { names(host, $0) }
            } ?? nil
        return inPlace
            ?? Array(authority.utf8).withUnsafeBufferPointer { host in
                Array(domain.utf8).withUnsafeBufferPointer { names(host, $0) }
            }
    }

    public static func hostWithoutPort(_ authority: String) -> String {
        // Byte scans: "[", "]" and ":" are ASCII, so their UTF-8 positions are valid string indices, and a
        // Character scan (grapheme breaking, about 5k instructions per authority) buys nothing here.
        let utf8 = authority.utf8
        if utf8.first == UInt8(ascii: "[") {
            let close = utf8.firstIndex(of: UInt8(ascii: "]")) ?? utf8.endIndex
            return String(authority[..<close]) + "]"
        }
        if let colon = utf8.lastIndex(of: UInt8(ascii: ":")) { return String(authority[..<colon]) }
        return authority
    }

    /// Routes a request the general way: the router, behind the check for percent-encoded disguises. (`route`
    /// settles plainly non-API paths before it gets here; the router gives them the same `.notMyOrg`.)
    static func routeGeneral(router: Router, method: String, path: Substring) -> RouteResult {
        if let problem = RequestPolicy.disguisedPathProblem(path) { return .badRequest(problem) }
        return router.route(method: method, path: path)
    }

    /// `knownTokens`: the caller's tokens that passed the syntax check before (see `KnownTokenTexts`).
    public func begin(
        _ request: RequestHead, listenerDomain: String?, knownTokens: (any KnownTokenTexts)? = nil
    ) -> Begin {
        begin(request, listenerDomain: listenerDomain, knownTokens: knownTokens, notes: PipelineNotes())
    }

    /// `begin` on notes held as a parameter: the notes move into the answer (`consume`), where a copy and two
    /// destructions of every field were paid before (the compiler refuses `consume` on this local `var`).
    private func begin(
        _ request: RequestHead, listenerDomain: String?, knownTokens: (any KnownTokenTexts)?,
        notes: consuming PipelineNotes
    ) -> Begin {
        let origin = request.headers[literal: "Origin"]
        guard let domain = arrivalDomain(listenerDomain: listenerDomain, authority: request.authority) else {
            // Still an API request for the logs: its operation decides whether an event is written.
            noteEndpoint(of: request, in: &notes)
            notes.decision = "refused_domain"
            let error: TenantError
            if let listenerDomain {
                error = .misdirected(
                    "This listener serves \(listenerDomain) only; the request's host names the tenant's other domain. "
                        + "Send it to the listener of that domain, or serve both from one listener without a domain.")
            } else {
                error = .misdirected(
                    "This gateway serves \(config.tenant.domains.joined(separator: ", ")); the request's host is not one of them."
                )
            }
            notes.error = error
            return .respond(error.response, consume notes)
        }
        notes.domain = domain
        // TRACE echoes the request as received, and on the custom domain's edge path that request carries the
        // `cname-api-key` the gateway adds: it is never forwarded (no endpoint takes it either).
        if request.method == "TRACE" {
            return refuse(
                .methodNotAllowed("TRACE is not supported.", allow: resourceMethods(request, withOptions: false)),
                decision: "refused_route", notes: consume notes, origin: nil, clientID: nil)
        }
        // RFC 9112 §3.2.4: `OPTIONS *` asks about the server, not a resource. It names no endpoint and carries no
        // token, so the gateway answers it (RFC 9110 §9.3.7: Content-Length 0 when there is no content).
        if request.method == "OPTIONS" && request.target == "*" {
            return answerOptions(allow: RequestPolicy.serverMethods, notes: consume notes)
        }
        // RFC 9110 §7.6.2: an intermediary MUST check and update Max-Forwards on an OPTIONS before forwarding it,
        // and a value it cannot read is no count to check (a list, two field lines, not digits).
        let maxForwards = request.method == "OPTIONS" ? MaxForwards(request.headers) : .absent
        if maxForwards == .invalid {
            notes.decision = "refused_request"
            let error = TenantError.badRequest(
                "The Max-Forwards field must be a single decimal number (RFC 9110 §7.6.2).")
            notes.error = error
            return .respond(error.response, consume notes)
        }
        // `request.path` and `request.query`, from one search for the `?`.
        let target = request.target
        let question = request.queryMark
        let path = question.map { target[..<$0] } ?? target[...]
        let route = self.route(method: request.method, path: path)
        // Preflights carry no token: judged against every client's origins, answered here, never forwarded.
        if request.method == "OPTIONS", let requested = request.headers[literal: "Access-Control-Request-Method"],
            case .methodNotAllowed(let allowed) = route
        {
            // Counted under the route it asks about (the request that follows is), not as an unknown one.
            if case .endpoint(let endpoint, _, _) = self.route(method: requested, path: path) {
                notes.routeName = endpoint.routeName
            }
            // `allowed` is the route's `Allow` list, with HEAD wherever GET is (the router serves HEAD as the GET
            // operation). HEAD is CORS-safelisted, but a HEAD carrying `Authorization` is still preflighted with
            // `Access-Control-Request-Method: HEAD` (Fetch, CORS-preflight fetch): refusing that preflight fails
            // the browser's request, so HEAD is allowed and listed here as it is in `Allow`.
            let decision = cors.preflight(request, allowedMethods: allowed)
            if let response = decision.response {
                if case .refused(_, let why) = decision {
                    notes.decision = "refused_cors"
                    notes.error = .forbidden("CORS preflight refused: \(why)")
                } else {
                    notes.decision = "preflight"
                }
                return .respond(response, consume notes)
            }
        }
        // Max-Forwards 0 makes the gateway the final recipient (RFC 9110 §7.6.2): it answers, whether or not the
        // OPTIONS is a CORS preflight (one the gateway judges itself was answered above).
        if maxForwards == .hops(0) {
            return answerOptions(
                allow: resourceMethods(request, withOptions: true).joined(separator: ", "), notes: consume notes)
        }
        switch route {
        case .endpoint(let endpoint, _, _):
            notes.operation = endpoint.operation
            notes.logResource = endpoint.logResource == .none ? nil : endpoint.logResource.rawValue
            notes.routeName = endpoint.routeName
            return needingToken(
                request, queryMark: question, route: RouteMatch(endpoint: endpoint, domain: domain, origin: origin),
                knownTokens: knownTokens,
                notes: consume notes)
        case .notMyOrg:
            if config.tenant.customDomains.contains(domain) {
                notes.decision = "forwarded_edge"
                return .forwardUnchecked(domain: domain, notes: consume notes)
            }
            return refuse(
                .notFound("This gateway serves only the My Organization API (/my-org/) on \(domain)."),
                decision: "refused_route", notes: consume notes, origin: origin, clientID: nil)
        case .notFound, .methodNotAllowed:
            if config.forwardUnknownEndpoints {
                // A preflight carries no token: the tenant answers it for an endpoint the table does not know.
                if request.method == "OPTIONS" && request.headers[literal: "Access-Control-Request-Method"] != nil {
                    notes.decision = "forwarded_unknown"
                    return .forwardUnchecked(domain: domain, notes: consume notes)
                }
                // Anything else is an API call all the same: its token, client and origin are checked and its
                // organization's limits spent as for a known endpoint, only no scope can be asked for.
                return needingToken(
                    request, queryMark: question, route: RouteMatch(endpoint: nil, domain: domain, origin: origin),
                    knownTokens: knownTokens,
                    notes: consume notes)
            }
            // RFC 9110 §9.1: a method the server does not implement anywhere is 501; 405 (with `Allow`) is for a
            // method it implements but not on this resource.
            if !RequestPolicy.serverMethodList.contains(request.method) {
                return refuse(
                    .gateway(
                        status: 501,
                        detail: "The My Organization API does not implement this method; it serves "
                            + "\(RequestPolicy.serverMethods)."),
                    decision: "refused_route", notes: consume notes, origin: origin, clientID: nil)
            }
            return refuse(
                route.refusal!, decision: "refused_route", notes: consume notes, origin: origin, clientID: nil)
        case .badRequest:
            return refuse(
                route.refusal!, decision: "refused_route", notes: consume notes, origin: origin, clientID: nil)
        }
    }

    /// The gateway's own answer to an OPTIONS it is the final recipient of.
    private func answerOptions(allow: String, notes: consuming PipelineNotes) -> Begin {
        notes.decision = "options_server"
        var headers = HTTPFields()
        headers.add("Allow", allow)
        headers.add("Content-Length", "0")
        return .respond(Response(status: 200, headers: headers), consume notes)
    }

    /// The token the request presents (header, or a refused query parameter), for `authorize` to judge on `route`.
    /// Inlined: on every API request, and the notes would be copied into a call and back.
    @inline(__always)
    private func needingToken(
        _ request: RequestHead, queryMark: String.Index?, route: RouteMatch, knownTokens: (any KnownTokenTexts)?,
        notes: consuming PipelineNotes
    ) -> Begin {
        // `queryMark`: the caller's search for the `?`, not a second one.
        let query = queryMark.map { request.target[request.target.utf8.index(after: $0)...] }
        do {
            let presented = try BearerToken.extract(
                headers: request.headers, query: query, maxTokenBytes: config.tokens.maxTokenBytes, known: knownTokens)
            notes.tokenScheme = presented.scheme
            return .needsToken(token: presented.value, route: route, notes: consume notes)
        } catch {
            return refuse(error, decision: "refused_token", notes: consume notes, origin: route.origin, clientID: nil)
        }
    }

    /// The methods the target resource supports, for `Allow` (RFC 9110 §10.2.1): an endpoint's, with OPTIONS when
    /// the gateway answers it there; every method for a path outside the API (edge traffic, forwarded as it is).
    private func resourceMethods(_ request: RequestHead, withOptions: Bool) -> [String] {
        guard case .methodNotAllowed(let allowed) = route(method: request.method, path: request.path) else {
            return RequestPolicy.serverMethodList
        }
        return withOptions && !allowed.contains("OPTIONS") ? allowed + ["OPTIONS"] : allowed
    }

    /// The one way a request is routed: the exact-path table first, then the general router behind its checks.
    private func route(method: String, path: Substring) -> RouteResult {
        // Edge-mode traffic is mostly plain non-API paths, which no literal route (all under `/my-org/`) can match
        // and which hide no disguise (`routeGeneral` would answer the same): one scan settles them.
        if RequestPolicy.plainlyNotMyOrg(path) { return .notMyOrg }
        return literalRoutes.route(method: method, path: path)
            ?? RequestPolicy.routeGeneral(router: router, method: method, path: path)
    }

    /// Whether `authorize` will read this request's body (so it must arrive whole, within the body limit, before
    /// the policy runs); every other body may stream to the tenant.
    public func needsWholeBody(_ request: RequestHead) -> Bool {
        guard request.method == "POST" else { return false }
        if case .endpoint(let endpoint, _, _) = route(method: request.method, path: request.path) {
            return endpoint.bodyIsChecked
        }
        return false
    }

    /// True when the first segment is plainly not the API's prefix: no percent-encoding, not empty, and not
    /// `my-org` in any letter case. Such paths skip the router (edge-mode traffic is mostly these); everything
    /// else, including every disguise the router refuses, still goes through it.
    static func plainlyNotMyOrg(_ path: Substring) -> Bool {
        if let answer = path.utf8.withContiguousStorageIfAvailable(plainlyNotMyOrg(bytes:)) { return answer }
        return Array(path.utf8).withUnsafeBufferPointer(plainlyNotMyOrg(bytes:))
    }

    private static let myOrgSegment = Array("my-org".utf8)

    /// `plainlyNotMyOrg` over the path's bytes: on every edge-mode request, so no copies and no string indices.
    static func plainlyNotMyOrg(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.first == UInt8(ascii: "/") else { return false }
        // The first segment first: an API path (every request of the full policy) is settled by it, before the
        // scan below reads all of its bytes.
        var end = 1
        while end < bytes.count && bytes[end] != UInt8(ascii: "/") { end += 1 }
        guard end > 1 else { return false }
        if asciiCaseInsensitiveBytesEqual(UnsafeBufferPointer(rebasing: bytes[1..<end]), myOrgSegment) { return false }
        // Anything the router would refuse or decode (percent-escapes, backslashes, control bytes, dot
        // segments anywhere) takes the slow path.
        var previous: UInt8 = 0
        for byte in bytes {
            if byte == UInt8(ascii: "%") || byte == UInt8(ascii: "\\") || byte < 0x21 || byte == 0x7F { return false }
            if previous == UInt8(ascii: "/") && byte == UInt8(ascii: ".") { return false }
            previous = byte
        }
        return true
    }

    /// A path whose percent-decoded form says something its raw form hides: an encoded `/` that makes a
    /// `/my-org` prefix (so the request would pass as a non-API path) or that carries a `.`/`..` segment (so a
    /// parser that decodes before it splits sees another endpoint). Two parsers must never disagree.
    static func disguisedPathProblem(_ path: Substring) -> RouteProblem? {
        // Byte scans: with Foundation in the module, `contains("%")` would resolve to NSString's search; and
        // through the contiguous bytes, not the substring's view, which steps index by index.
        let hasEscape =
            path.utf8.withContiguousStorageIfAvailable { $0.contains(UInt8(ascii: "%")) }
            ?? path.utf8.contains(UInt8(ascii: "%"))
        guard hasEscape else { return nil }
        guard case .success(let decoded) = RoutePath.decode(path) else { return nil }
        let lowered = decoded.asciiLowercased
        var trimmed = lowered[...]
        while trimmed.hasPrefix("//") { trimmed = trimmed.dropFirst() }
        let rawLowered = String(path).asciiLowercased
        if (trimmed == "/my-org" || trimmed.hasPrefix("/my-org/")) && !rawLowered.hasPrefix("/my-org") {
            return .ambiguousPrefix
        }
        let segments = lowered.split(separator: "/", omittingEmptySubsequences: false)
        if segments.contains(where: { $0 == "." || $0 == ".." }) {
            return .dotSegment
        }
        if (trimmed.hasPrefix("/my-org/") || trimmed == "/my-org") && rawLowered.hasPrefix("/my-org"),
            rawLowered.utf8.split(separator: UInt8(ascii: "%")).dropFirst().contains(where: {
                $0.starts(with: "2f".utf8)
            })
        {
            // An encoded slash inside an API path parameter: no endpoint takes one, and forwarding it invites
            // an upstream that decodes before it routes.
            return .encodedSlash
        }
        return nil
    }

    // MARK: - Step 2

    public enum Outcome: Sendable {
        case respond(Response, PipelineNotes)
        /// Forward; set `responseHeaders` on the upstream's answer (CORS, rate limits), replacing its own.
        case forward(responseHeaders: HTTPFields, delayMilliseconds: Int, notes: PipelineNotes)

        /// `notes.checkedClaims` of either case, read where the notes lie: a caller binding the notes to read it
        /// copied every field of them (each string, the error) first.
        public var checkedClaims: CheckedClaims? {
            switch self {
            case .respond(_, let notes): return notes.checkedClaims
            case .forward(_, _, let notes): return notes.checkedClaims
            }
        }
    }

    /// `access.admits`, answered from `admitted` when it remembers a pass for this endpoint, remembered there when
    /// it passes.
    private func passesAccess(_ context: TokenContext, _ endpoint: Endpoint, _ admitted: AdmittedEndpoints?) -> Bool {
        if admitted?.contains(endpoint.index) == true { return true }
        guard access.admits(context, endpoint: endpoint) else { return false }
        admitted?.insert(endpoint.index)
        return true
    }

    /// Judges a request whose token signature was checked (or refused) by the caller.
    ///
    /// `checkedClaims`: what `notes.checkedClaims` gave for this very token earlier; used (skipping the
    /// claims check) only for the same domain and before the token's `exp`.
    public func authorize(
        _ request: RequestHead, body: [UInt8], route: RouteMatch, token: Result<VerifiedToken, TokenRejection>,
        notes: consuming PipelineNotes, nowNanoseconds: Int64, random: inout some RandomNumberGenerator,
        checkedClaims: CheckedClaims? = nil
    ) -> Outcome {
        let origin = route.origin
        let verified: VerifiedToken
        switch token {
        case .success(let t): verified = t
        case .failure(let rejection) where rejection.kind == .noKeys:
            // No keys yet is the gateway's state, not the token's fault: 503 with when to try again, never
            // `invalid_token`, which would tell the client to drop a token that may be good (RFC 6750 §3.1).
            var error = TenantError.gateway(status: 503, detail: RequestPolicy.describe(rejection))
            error.headers.set("Retry-After", "1")
            return outcome(refuse(error, decision: "not_ready", notes: consume notes, origin: origin, clientID: nil))
        case .failure(let rejection):
            return outcome(
                refuse(
                    ClaimsChecker.invalid(RequestPolicy.describe(rejection)), decision: "refused_token",
                    notes: consume notes, origin: origin, clientID: nil))
        }
        let context: TokenContext
        var admitted: AdmittedEndpoints? = nil
        if let checkedClaims, checkedClaims.context.domain == route.domain,
            nowNanoseconds / 1_000_000_000 < checkedClaims.context.expiresAt
        {
            // Claims that passed once stay valid until `exp` (nbf and iat only move further into the past).
            context = checkedClaims.context
            admitted = checkedClaims.admittedEndpoints
            notes.audience = checkedClaims.audience
            notes.scope = checkedClaims.scope
        } else {
            notes.audience = RequestPolicy.audienceText(verified.claims)
            do {
                context = try claims.check(
                    claims: verified.claims, header: verified.header, domain: route.domain,
                    nowNanoseconds: nowNanoseconds)
            } catch {
                notes.userID = verified.claims["sub"]?.stringValue
                notes.organizationID = verified.claims["org_id"]?.stringValue
                return outcome(
                    refuse(error, decision: "refused_token", notes: consume notes, origin: origin, clientID: nil))
            }
            // The claim's own text, in the token's order (the event reports the token's scope as given): the
            // string the claims check kept, shared, never rebuilt.
            notes.scope = context.scopeClaim
        }
        notes.tokenContext = context
        notes.organizationID = context.orgID
        notes.clientID = context.clientID
        notes.userID = context.subject
        if let refusal = RequestPolicy.bindingRefusal(scheme: notes.tokenScheme, context: context) {
            return outcome(
                refuse(refusal, decision: "refused_token", notes: consume notes, origin: origin, clientID: nil))
        }
        // Nil for an endpoint the table does not know, forwarded because the configuration says so.
        let endpoint = route.endpoint
        // A real request is judged against the origins of the token's client.
        if let origin, !cors.isAllowed(origin: origin, clientID: context.clientID) {
            return outcome(
                refuse(
                    .forbidden("The origin \(origin) is not an allowed origin of client \(context.clientID)."),
                    // The origin is named so the answer says `Vary: Origin` (another origin gets another answer);
                    // judged not allowed, it gets no Access-Control-Allow-Origin.
                    decision: "refused_cors", notes: consume notes, origin: origin, clientID: context.clientID))
        }
        // Past the check above, a request with an origin has an allowed one.
        let originAllowed = origin != nil
        let readsBody = endpoint?.bodyIsChecked ?? false
        var grant: AccessGrant? = nil
        // `admits` answers `authorize`'s pass or fail without building the grant; the grant (for the body
        // check) and every refusal's exact error still come from `authorize`.
        do {
            if let endpoint {
                if readsBody || !passesAccess(context, endpoint, admitted) {
                    grant = try access.authorize(context, endpoint: endpoint)
                }
            } else {
                // No scopes to ask for: the flow's policy and the client's grant and configuration still hold.
                _ = try access.grant(for: context)
            }
        } catch {
            let decision = error.status == 403 && error.code == "A0E-403-0002" ? "refused_scope" : "refused_access"
            return outcome(
                refuse(error, decision: decision, notes: consume notes, origin: origin, clientID: context.clientID))
        }
        if readsBody, let grant {
            // The strategy check must read the body as the tenant would: a body it cannot read (not JSON, or
            // duplicate members that parsers resolve differently) is refused rather than forwarded unchecked.
            let refusal: TenantError?
            if let json = try? JSONValue.parse(body), case .object = json {
                do {
                    try access.checkIdentityProviderStrategy(body: json, grant: grant)
                    refusal = nil
                } catch {
                    refusal = error
                }
            } else {
                refusal = .badRequest("The request body must be one JSON object without duplicate members.")
            }
            if let refusal {
                return outcome(
                    refuse(
                        refusal, decision: "refused_validation", notes: consume notes, origin: origin,
                        clientID: context.clientID))
            }
        }
        // An unknown endpoint counts by its method: reads are what is safe (RFC 9110 §9.2.1), the rest writes.
        let reads = endpoint.map { $0.rateClass == .read } ?? (request.method == "GET" || request.method == "HEAD")
        let rateClass: RateLimitClass = reads ? .read : .write
        let decision =
            sharedAdmission?.admit(org: context.orgID, rateClass: rateClass, nowNanoseconds: nowNanoseconds)
            ?? limiter.admit(org: context.orgID, class: rateClass, now: nowNanoseconds)
        notes.rateDecision = decision
        // What `decision.headerFields` with `cors.apply` gives, built in one list: the rate-limit names hold no
        // `Access-Control-*` and no `Vary`, so there is nothing to remove or merge.
        var headers = HTTPFields()
        headers.reserveCapacity(10)
        decision.appendFields(to: &headers, policyTexts: policyTexts)
        cors.appendToFreshFields(&headers, origin: origin, allowed: originAllowed)
        guard decision.admitted else {
            let error = decision.rateLimitedError(headers: headers)
            notes.error = error
            notes.decision =
                decision.limitedBy == RateLimitScope.tenant ? "refused_rate_limit_tenant" : "refused_rate_limit_org"
            return .respond(error.response, consume notes)
        }
        if faults.isEnabled, let endpoint,
            let fault = faults.decide(
                route: endpoint.routeName, operation: endpoint.operation, org: context.orgID, random: &random)
        {
            // `.delay`: wait, then forward as usual.
            guard var error = fault.error else {
                notes.decision = "forwarded"
                return .forward(
                    responseHeaders: headers, delayMilliseconds: fault.delayMilliseconds, notes: consume notes)
            }
            // `.respond`: the tenant's shape for the status (a 429 is A0E-429-0003 with `Retry-After: 1`, as the
            // limiter's own 429), with the rate-limit and CORS fields of this admitted request.
            for field in headers where !error.headers.contains(field.name) {
                error.headers.add(field.name, field.value)
            }
            notes.decision = "fault_injected"
            notes.error = error
            notes.delayMilliseconds = fault.delayMilliseconds
            return .respond(error.response, consume notes)
        }
        notes.decision = endpoint == nil ? "forwarded_unknown" : "forwarded"
        // `consume`: the notes move into the outcome instead of being copied and then destroyed here.
        return .forward(responseHeaders: headers, delayMilliseconds: 0, notes: consume notes)
    }

    private func outcome(_ begin: consuming Begin) -> Outcome {
        if case .respond(let response, let notes) = consume begin { return .respond(response, notes) }
        preconditionFailure("refuse always responds")
    }

    /// A refusal in the tenant's shape, with CORS headers when the origin may read it (so browser code sees why).
    private func refuse(
        _ error: TenantError, decision: String, notes: consuming PipelineNotes, origin: String?, clientID: String?
    ) -> Begin {
        var error = error
        if notes.tokenScheme == .dpop, let challenge = error.headers[literal: "WWW-Authenticate"],
            challenge.hasPrefix("Bearer ")
        {
            error.headers.set("WWW-Authenticate", "DPoP " + challenge.dropFirst("Bearer ".count))
        }
        notes.decision = decision
        notes.error = error
        var response = error.response
        // `Vary: Origin` on every refusal, with or without an `Origin`: the same request with an allowed origin
        // gets `Access-Control-Allow-Origin` (Fetch, "CORS protocol and HTTP caches").
        cors.apply(to: &response.head.headers, origin: origin, clientID: clientID)
        return .respond(response, consume notes)
    }

    /// What the logs need of a request refused before the policy judged it (a body over the limit): its domain,
    /// operation and log resource. No token is read and no limit is spent.
    public func describe(_ request: RequestHead, listenerDomain: String?) -> PipelineNotes {
        var notes = PipelineNotes()
        notes.domain = arrivalDomain(listenerDomain: listenerDomain, authority: request.authority)
        noteEndpoint(of: request, in: &notes)
        return notes
    }

    private func noteEndpoint(of request: RequestHead, in notes: inout PipelineNotes) {
        let path = request.path
        guard case .endpoint(let endpoint, _, _) = route(method: request.method, path: path) else { return }
        notes.operation = endpoint.operation
        notes.logResource = endpoint.logResource == .none ? nil : endpoint.logResource.rawValue
        notes.routeName = endpoint.routeName
    }

    /// Every method some endpoint of the API takes, for `OPTIONS *`.
    static let serverMethodList = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    static let serverMethods = serverMethodList.joined(separator: ", ")

    /// RFC 9449 §7.1-7.2: the DPoP scheme carries only DPoP-bound tokens, and a DPoP-bound token is refused when
    /// presented as a plain bearer token (whoever holds it without the key must not be able to use it).
    static func bindingRefusal(scheme: PresentedToken.Scheme, context: TokenContext) -> TenantError? {
        switch (scheme, context.dpopThumbprint) {
        case (.bearer, .some):
            return ClaimsChecker.invalid(
                "The access token is DPoP-bound (cnf.jkt): send it as 'Authorization: DPoP <token>' with a DPoP proof.")
        case (.dpop, .none):
            // `refuse` answers in the scheme the request used (DPoP here).
            return ClaimsChecker.invalid(
                "The DPoP scheme was used with an access token that is not DPoP-bound (no cnf.jkt).")
        default:
            return nil
        }
    }

    /// The client-facing detail of a signature-stage refusal.
    public static func describe(_ rejection: TokenRejection) -> String {
        switch rejection.kind {
        case .unknownKey: return "The token is signed with an unknown key (\(rejection.detail))."
        case .signature: return "The token's signature is invalid."
        case .noKeys: return "The gateway has not loaded the tenant's signing keys yet; retry shortly."
        default: return "The token is invalid: \(rejection.detail)."
        }
    }

    static func audienceText(_ claims: JSONValue) -> String? {
        switch claims["aud"] {
        case .string(let s)?: return s
        case .array(let items)?:
            // One audience (the usual case) is its own text: no array of strings to join.
            if items.count == 1 { return items[0].stringValue ?? "" }
            return items.compactMap(\.stringValue).joined(separator: " ")
        default: return nil
        }
    }
}

public struct PolicyBuildError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
