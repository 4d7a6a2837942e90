import GatewayCore
import Testing

@testable import TenantEmulator

/// A response as the tests read it.
struct Answer {
    var status: Int
    var headers: HTTPFields
    var body: [UInt8]

    var json: JSONValue { (try? JSONValue.parse(body)) ?? .null }
    var text: String { String(decoding: body, as: UTF8.self) }
    /// The A0E code of an error body (`type` ends with `#A0E-...`).
    var code: String? { json["type"]?.stringValue?.split(separator: "#").last.map(String.init) }
    var detail: String { json["detail"]?.stringValue ?? "" }
}

/// Builds an emulated tenant with a fake verifier: a token is `org;client;scope,scope,...` and anything else is
/// refused with the 401 the verifier returns.
struct Harness {
    static let allScopes = Set(EmulatorEndpoint.all.flatMap(\.scopes))
    static let seed = EmulatedTenant.seedOrganizationID
    static let jwks = #"{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"}]}"#

    let tenant: EmulatedTenant
    let clock: ManualClock

    init(
        seed: Bool = true,
        clients: [String: EmulatorClientConfiguration] = [:],
        defaultClient: EmulatorClientConfiguration = EmulatorClientConfiguration(),
        verificationDelay: Int64 = 0,
        onDemand: Bool = true
    ) {
        let clock = ManualClock(seconds: 1_800_000_000)
        self.clock = clock
        self.tenant = EmulatedTenant(
            domain: "login.acme.test", canonicalDomain: "acme.eu.auth0.com", seed: seed, clock: clock,
            jwksJSON: Self.jwks, clients: clients, defaultClientConfiguration: defaultClient,
            domainVerificationDelaySeconds: verificationDelay, createsOrganizationsOnDemand: onDemand,
            verifyToken: Self.verify)
    }

    @Sendable static func verify(_ token: String) -> Result<TokenInfo, TenantError> {
        // An optional fourth part is the token's `cnf.jkt` (a DPoP-bound token).
        let parts = token.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3 || parts.count == 4, !parts[0].isEmpty else {
            return .failure(
                .unauthorized("The access token is invalid.", wwwAuthenticate: "Bearer error=\"invalid_token\""))
        }
        let scopes = Set(parts[2].split(separator: ",").map(String.init))
        return .success(
            TokenInfo(
                orgID: parts[0], scopes: scopes, clientID: parts[1].isEmpty ? nil : parts[1], subject: "auth0|me",
                dpopThumbprint: parts.count == 4 ? parts[3] : nil))
    }

    static func token(org: String = seed, client: String = "", scopes: Set<String> = allScopes) -> String {
        "\(org);\(client);\(scopes.sorted().joined(separator: ","))"
    }

    /// Sends `method path` with a bearer token (unless `authorization` is given) and the body text.
    @discardableResult
    func call(
        _ method: String, _ path: String, _ body: String? = nil, org: String = seed, client: String = "",
        scopes: Set<String> = allScopes, authorization: String?? = nil, host: String? = nil,
        extra: HTTPFields = HTTPFields()
    ) -> Answer {
        var headers = extra
        switch authorization {
        case .none: headers.add("Authorization", "Bearer " + Self.token(org: org, client: client, scopes: scopes))
        case .some(.some(let value)): headers.add("Authorization", value)
        case .some(.none): break
        }
        if body != nil { headers.add("Content-Type", "application/json") }
        let head = RequestHead(method: method, target: path, headers: headers, authority: host)
        let response = tenant.handle(EmulatorRequest(head: head, body: Array((body ?? "").utf8)))
        return Answer(status: response.head.status, headers: response.head.headers, body: response.body)
    }

    /// The id of the seeded or created item named `name` in the list at `path` under `key`.
    func id(in path: String, _ key: String, where field: String = "name", is name: String, idField: String = "id")
        -> String
    {
        let items = call("GET", path).json[key]?.arrayValue ?? []
        return items.first { $0[field]?.stringValue == name }?[idField]?.stringValue ?? "missing"
    }

    func idp(_ name: String) -> String { id(in: "/my-org/identity-providers", "identity_providers", is: name) }
    func domain(_ name: String) -> String {
        id(in: "/my-org/domains", "organization_domains", where: "domain", is: name)
    }
    func role(_ name: String) -> String { id(in: "/my-org/roles", "roles", is: name) }
    func member(_ email: String) -> String {
        id(in: "/my-org/members", "members", where: "email", is: email, idField: "user_id")
    }
}

extension Answer {
    /// Every error body carries the four fields the SDKs need, and JSON content.
    func expectError(_ status: Int, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(self.status == status, "body: \(text)", sourceLocation: sourceLocation)
        #expect(self.code == code, "body: \(text)", sourceLocation: sourceLocation)
        #expect(json["title"]?.stringValue?.isEmpty == false, sourceLocation: sourceLocation)
        #expect(json["status"]?.int64Value == Int64(status), sourceLocation: sourceLocation)
        #expect(json["detail"]?.stringValue?.isEmpty == false, sourceLocation: sourceLocation)
        #expect(headers["Content-Type"] == "application/json", sourceLocation: sourceLocation)
    }

    /// The `pointer`s of a 400 validation error.
    var pointers: [String] {
        (json["validation_errors"]?.arrayValue ?? []).compactMap { $0["pointer"]?.stringValue }
    }

    func expectValidation(pointer: String, sourceLocation: SourceLocation = #_sourceLocation) {
        expectError(400, "A0E-400-0003", sourceLocation: sourceLocation)
        #expect(pointers.contains(pointer), "pointers: \(pointers)", sourceLocation: sourceLocation)
    }
}
