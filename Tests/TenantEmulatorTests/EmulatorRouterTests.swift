import GatewayCore
import Testing

@testable import TenantEmulator

/// A concrete path for a template, with well-formed ids that exist nowhere.
func concretePath(_ template: String, prefix: String = "/my-org") -> String {
    let values = [
        "{domain_id}": "ord_" + String(repeating: "Z", count: 22), "{idp_id}": "con_ZZZZZZZZZZZZZZZZ",
        "{user_id}": "auth0|nobody", "{domain}": "nowhere.example", "{invitation_id}": "uinv_ZZZZZZZZZZZZZZZZ",
        "{idp_scim_token_id}": "tok_ZZZZZZZZZZZZZZZZ",
    ]
    var path = template
    for (k, v) in values { path = path.replacing(k, with: v) }
    return template.isEmpty ? prefix : "\(prefix)/\(path)"
}

@Suite("Emulator routing")
struct EmulatorRouterTests {
    @Test("the table has the 41 operations of endpoints.md, each once")
    func tableIsComplete() {
        #expect(EmulatorEndpoint.all.count == 41)
        #expect(Set(EmulatorEndpoint.all.map(\.operation)).count == EmulatorOperation.allCases.count)
        #expect(Set(EmulatorEndpoint.all.map { "\($0.method) \($0.pathTemplate)" }).count == 41)
        for e in EmulatorEndpoint.all { #expect(!e.scopes.isEmpty) }
    }

    @Test("both prefixes route every endpoint", arguments: EmulatorEndpoint.all)
    func bothPrefixes(endpoint: EmulatorEndpoint) {
        for prefix in ["/my-org", "/my-org/v1"] {
            let route = EmulatorRouter.route(
                method: endpoint.method, path: concretePath(endpoint.pathTemplate, prefix: prefix)[...])
            guard case .endpoint(let matched, _) = route else {
                Issue.record("\(endpoint.method) \(prefix) \(endpoint.pathTemplate) did not route: \(route)")
                continue
            }
            #expect(matched.operation == endpoint.operation)
        }
    }

    @Test("the Organization is deleted at the root, with or without slash or v1")
    func rootDelete() {
        for path in ["/my-org", "/my-org/", "/my-org/v1", "/my-org/v1/"] {
            guard case .endpoint(let e, _) = EmulatorRouter.route(method: "DELETE", path: path[...]) else {
                Issue.record("\(path) did not route")
                continue
            }
            #expect(e.operation == .deleteOrganization)
        }
    }

    @Test("user ids arrive with their '|' whether raw or percent-encoded")
    func pipeInUserID() {
        for path in ["/my-org/members/auth0|123/roles", "/my-org/members/auth0%7C123/roles"] {
            guard case .endpoint(_, let params) = EmulatorRouter.route(method: "GET", path: path[...]) else {
                Issue.record("\(path) did not route")
                continue
            }
            #expect(params["user_id"] == "auth0|123")
        }
    }

    @Test("unknown paths are 404, known paths with another method 405, bad escapes 400")
    func misses() {
        #expect(EmulatorRouter.route(method: "GET", path: "/my-org/nothing"[...]) == .notFound)
        #expect(EmulatorRouter.route(method: "GET", path: "/api/v2/users"[...]) == .notFound)
        #expect(EmulatorRouter.route(method: "GET", path: "/my-org//details"[...]) == .notFound)
        #expect(
            EmulatorRouter.route(method: "PUT", path: "/my-org/details"[...])
                == .methodNotAllowed(allow: ["GET", "HEAD", "PATCH"]))
        // HEAD is the GET endpoint, without content (RFC 9110 §9.3.2).
        guard case .endpoint(let endpoint, _) = EmulatorRouter.route(method: "HEAD", path: "/my-org/details"[...])
        else {
            Issue.record("HEAD /my-org/details did not route")
            return
        }
        #expect(endpoint.method == "GET")
        guard case .badPath = EmulatorRouter.route(method: "GET", path: "/my-org/members/a%ZZ"[...]) else {
            Issue.record("a bad escape routed")
            return
        }
        let h = Harness()
        h.call("PUT", "/my-org/details").expectError(405, "A0E-405-0001")
        #expect(h.call("PUT", "/my-org/details").headers["Allow"] == "GET, HEAD, PATCH")
        h.call("GET", "/my-org/nothing").expectError(404, "A0E-404-0002")
        h.call("GET", "/my-org/members/a%ZZ").expectError(400, "A0E-400-0001")
    }
}
