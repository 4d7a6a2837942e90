import HTTP1
import EventLoop
import Foundation
import GatewayCore
import Policy
import TenantEmulator
import Tokens

/// The emulated tenant served on the project's own event loop and HTTP code, checking tokens as the tenant
/// would: signature by its own key, issuer and audience of one of its domains, lifetime, org_id, and a user behind
/// the token (a client-credentials one is refused, by the gateway's own rule and answer).
final class EmulatorServer: Sendable {
    let gateway: Gateway
    let address: NetAddress
    let tenant: EmulatedTenant

    private init(gateway: Gateway, address: NetAddress, tenant: EmulatedTenant) {
        self.gateway = gateway
        self.address = address
        self.tenant = tenant
    }

    static func start(
        address: NetAddress, canonicalDomain: String, customDomains: [String], key: RSASigningKey,
        clock: any WallClock = SystemClock()
    ) throws -> EmulatorServer {
        let keys = key.keySet()
        let verifier = TokenVerifier()
        let checker = ClaimsChecker(
            canonicalDomain: canonicalDomain, customDomains: customDomains, settings: GatewayConfig.Tokens())
        let domains = [canonicalDomain] + customDomains
        let tenant = EmulatedTenant(
            domain: canonicalDomain, canonicalDomain: canonicalDomain, customDomains: customDomains, seed: true,
            clock: clock,
            jwksJSON: key.jwksJSON(),
            verifyToken: { token in
                switch verifier.verify(token, keys: keys) {
                case .failure(let rejection):
                    return .failure(ClaimsChecker.invalid(RequestPolicy.describe(rejection)))
                case .success(let verified):
                    // The tenant judges a token against the domain it names; a token for neither domain fails.
                    let iss = verified.claims["iss"]?.stringValue ?? ""
                    let domain = domains.first { iss == "https://\($0)/" } ?? canonicalDomain
                    do {
                        let context = try checker.check(
                            claims: verified.claims, header: verified.header, domain: domain,
                            nowNanoseconds: clock.nowNanoseconds())
                        return .success(
                            TokenInfo(
                                orgID: context.orgID, scopes: context.scopes, clientID: context.clientID,
                                subject: context.subject, isClientCredentials: context.isClientCredentials,
                                dpopThumbprint: context.dpopThumbprint))
                    } catch let error as TenantError {
                        return .failure(error)
                    } catch {
                        return .failure(ClaimsChecker.invalid("\(error)"))
                    }
                }
            })
        let profile = ListenerProfile(
            address: address, domain: nil, tls: nil, http1Limits: .init(), headerReadTimeoutMs: 10_000,
            idleTimeoutMs: 60_000, allowH2: true)
        let gateway = Gateway(
            snapshot: GatewaySnapshot(
                listeners: [profile],
                handlers: LocalHandlerFactory(respond: { head, body, _ in
                    tenant.handle(EmulatorRequest(head: head, body: body))
                }), generation: 1),
            loops: 1, maxConnections: 1024, clock: clock,
            // Its clients are the gateway's upstream connections and probes, not the gateway's own clients.
            metrics: .unexposed())
        let bound = try gateway.start()
        return EmulatorServer(gateway: gateway, address: bound[0], tenant: tenant)
    }

    func stop() { gateway.shutdown(graceMilliseconds: 500) }
}
