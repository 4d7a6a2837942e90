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
    private let cache = VerifiedTokenCache(capacity: 4096)
    /// Tokens whose signature and claims passed on this loop, with their checked claims, until `exp`: a repeated
    /// token then costs a dictionary lookup instead of a digest and a claims check. Tied to the key set that
    /// verified them, so a rotation empties it in effect.
    private var checked: [String: CheckedToken] = [:]

    private struct CheckedToken {
        let verified: VerifiedToken
        let context: TokenContext
        /// Held, not just identified: a freed set's address could be reused by its successor.
        let keys: JWKSKeySet
    }
    private var random = SystemRandomNumberGenerator()
    private lazy var forwarder = ForwardingHandler(context: context) { _ in
        preconditionFailure("the policy handler forwards with an explicit judgement")
    }

    init(runtime: PolicyRuntime, context: LoopContext) {
        self.runtime = runtime
        self.context = context
    }

    /// Only the identity-provider strategy check reads a body (`RequestPolicy.authorize`); every other body may
    /// stream.
    func needsWholeBody(_ head: RequestHead) -> Bool {
        guard head.method == "POST" else { return false }
        if case .endpoint(let endpoint, _, _) = runtime.policy.router.route(method: head.method, path: head.path) {
            return endpoint.template == "identity-providers"
        }
        return false
    }

    func handle(_ exchange: Exchange) {
        let policy = runtime.policy
        let head = exchange.head
        switch policy.begin(head, listenerDomain: exchange.listenerDomain) {
        case .respond(let response, let notes):
            record(notes, on: exchange)
            exchange.writer?.send(response, isHEAD: head.method == "HEAD")
        case .forwardUnchecked(let domain, let notes):
            record(notes, on: exchange)
            forward(exchange, domain: domain, headers: HTTPFields(), delayMs: 0)
        case .needsToken(let token, let route, let notes):
            let verdict: Result<VerifiedToken, TokenRejection>
            let now = context.clock.nowNanoseconds()
            var checkedClaims: TokenContext? = nil
            if let keys = runtime.jwks.keys, let hit = checked[token], hit.keys === keys,
                now / 1_000_000_000 < hit.context.expiresAt
            {
                verdict = .success(hit.verified)
                checkedClaims = hit.context
                context.metrics.tokenCache(hit: true)
            } else if let keys = runtime.jwks.keys {
                let hitsBefore = cache.hits
                verdict = cache.verify(
                    token, keys: keys, verifier: runtime.verifier, nowNanoseconds: context.clock.nowNanoseconds())
                context.metrics.tokenCache(hit: cache.hits != hitsBefore)
                if case .failure(let rejection) = verdict, rejection.kind == .unknownKey {
                    runtime.jwks.unknownKeyID()
                }
            } else {
                verdict = .failure(TokenRejection(.noKeys, "no JWKS loaded"))
            }
            let outcome = policy.authorize(
                head, body: exchange.body, route: route, token: verdict, notes: notes, nowNanoseconds: now,
                random: &random, checkedClaims: checkedClaims)
            if checkedClaims == nil, case .success(let verified) = verdict, let keys = runtime.jwks.keys {
                let notes: PipelineNotes
                switch outcome {
                case .respond(_, let n), .forward(_, _, let n): notes = n
                }
                if let tokenContext = notes.tokenContext {
                    if checked.count >= 4096 { checked.removeAll(keepingCapacity: true) }
                    checked[token] = CheckedToken(
                        verified: verified, context: tokenContext, keys: keys)
                }
            }
            switch outcome {
            case .respond(let response, let notes):
                record(notes, on: exchange)
                if notes.delayMilliseconds > 0 {
                    let isHEAD = head.method == "HEAD"
                    context.loop.schedule(afterMilliseconds: notes.delayMilliseconds) { [weak exchange] in
                        guard let exchange, !exchange.finished else { return }
                        exchange.writer?.send(response, isHEAD: isHEAD)
                    }
                    return
                }
                exchange.writer?.send(response, isHEAD: head.method == "HEAD")
            case .forward(let headers, let delayMs, let notes):
                record(notes, on: exchange)
                forward(exchange, domain: route.domain, headers: headers, delayMs: delayMs)
            }
        }
    }

    private func forward(_ exchange: Exchange, domain: String, headers: HTTPFields, delayMs: Int) {
        guard let origin = runtime.origins[domain] else {
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

    private func record(_ notes: PipelineNotes, on exchange: Exchange) {
        if let traffic = runtime.traffic,
            traffic.shouldRecord(
                route: notes.routeName, path: exchange.head.path, organizationID: notes.organizationID,
                sampleKey: exchange.requestID)
        {
            exchange.capture = ResponseCapture(cap: traffic.settings.bodyCap)
        }
        exchange.decision = notes.decision
        exchange.facts.operation = notes.operation
        exchange.facts.logResource = notes.logResource
        exchange.facts.organizationID = notes.organizationID
        exchange.facts.clientID = notes.clientID
        exchange.facts.userID = notes.userID
        exchange.facts.scope = notes.scope
        exchange.facts.audience = notes.audience
        exchange.facts.hostname = notes.domain
        exchange.facts.error = notes.error
        exchange.facts.routeName = notes.routeName
        if let decision = notes.rateDecision {
            exchange.facts.rateLimitedBy = decision.limitedBy?.rawValue
            exchange.facts.tier = decision.tierName
        }
    }

    func cancel(_ exchange: Exchange) { forwarder.cancel(exchange) }
}
