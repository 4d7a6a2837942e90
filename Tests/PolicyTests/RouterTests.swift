import GatewayCore
import Testing

@testable import Policy

/// Sample values for every parameter name of the table, chosen to exercise decoding.
private let samples: [String: String] = [
    "domain_id": "ord_0123456789abcdefghijkl", "idp_id": "con_0123456789abcdef", "domain": "login.example.com",
    "idp_scim_token_id": "tok_0123456789abcdef", "user_id": "auth0|123", "invitation_id": "uinv_0123456789abcdef",
]

private func concretePath(_ endpoint: Endpoint) -> (path: String, params: [String: String]) {
    var params: [String: String] = [:]
    let segments = endpoint.templateSegments.map { segment -> String in
        guard segment.hasPrefix("{") else { return String(segment) }
        let name = String(segment.dropFirst().dropLast())
        let value = samples[name] ?? "x_\(name)"
        params[name] = value
        return value
    }
    return (segments.joined(separator: "/"), params)
}

@Suite("Router")
struct RouterTests {
    let router = Router(table: .embedded)

    @Test(
        "every operation routes on both prefixes to its endpoint and scopes",
        arguments: EndpointTable.embedded.endpoints)
    func everyOperation(_ endpoint: Endpoint) {
        let (path, params) = concretePath(endpoint)
        for (prefix, versioned) in [("/my-org", false), ("/my-org/v1", true)] {
            let full = path.isEmpty ? prefix : "\(prefix)/\(path)"
            let result = router.route(method: endpoint.method, path: full)
            #expect(result == .endpoint(endpoint, params: params, versioned: versioned), "\(endpoint.method) \(full)")
            if case .endpoint(let found, _, _) = result {
                #expect(found.scopes == endpoint.scopes)
                #expect(found.operation == endpoint.operation)
            }
        }
    }

    @Test(
        "the root and the prefixes",
        arguments: [
            ("/my-org", false), ("/my-org/", false), ("/my-org/v1", true), ("/my-org/v1/", true),
        ])
    func root(path: String, versioned: Bool) throws {
        let root = try #require(EndpointTable.embedded.endpoint(operation: "delete-organization"))
        #expect(router.route(method: "DELETE", path: path) == .endpoint(root, params: [:], versioned: versioned))
        #expect(router.route(method: "GET", path: path) == .methodNotAllowed(allowed: ["DELETE"]))
    }

    @Test(
        "path parameters are percent-decoded after splitting",
        arguments: [
            ("/my-org/members/auth0|123", "get-member", "auth0|123"),
            ("/my-org/members/auth0%7C123", "get-member", "auth0|123"),
            ("/my-org/members/auth0%7c123", "get-member", "auth0|123"),
            ("/my-org/members/a%2Fb", "get-member", "a/b"),
            ("/my-org/members/a%2Fb/roles", "list-member-roles", "a/b"),
            ("/my-org/v1/members/google-oauth2%7C1%20x/roles", "list-member-roles", "google-oauth2|1 x"),
            ("/my-org/members/%2e%2e.", "get-member", "..."),
        ])
    func decoding(path: String, operation: String, userID: String) {
        guard case .endpoint(let endpoint, let params, _) = router.route(method: "GET", path: path) else {
            Issue.record("\(path) did not route")
            return
        }
        #expect(endpoint.operation == operation)
        #expect(params == ["user_id": userID])
    }

    @Test(
        "refused paths",
        arguments: [
            ("/my-org/members/..", RouteProblem.dotSegment),
            ("/my-org/members/.", .dotSegment),
            ("/my-org/members/%2e%2e", .dotSegment),
            ("/my-org/members/%2E%2E/roles", .dotSegment),
            ("/my-org/./details", .dotSegment),
            ("/my-org/%2e/details", .dotSegment),
            ("/a/../my-org/details", .dotSegment),
            ("/my-org/members/%00", .nul),
            ("/my-org/members/%zz", .badPercentEncoding),
            ("/my-org/members/%4", .badPercentEncoding),
            ("/my-org/members/%", .badPercentEncoding),
            ("/my-org/members/%ff", .notUTF8),
            ("/my-org/de\\tails", .backslash),
            ("/my-org/de\u{1}tails", .controlCharacter),
            ("details", .notAbsolute),
            ("", .notAbsolute),
            ("/My-Org/details", .ambiguousPrefix),
            ("/my%2Dorg/details", .ambiguousPrefix),
            ("/my%2dorg", .ambiguousPrefix),
            ("//my-org/details", .ambiguousPrefix),
            ("/my-org/V1/details", .ambiguousPrefix),
            ("/my-org/%761/details", .ambiguousPrefix),
        ])
    func refused(path: String, problem: RouteProblem) {
        #expect(router.route(method: "GET", path: path) == .badRequest(problem), "\(path)")
        #expect(router.route(method: "GET", path: path).refusal?.status == 400)
    }

    @Test(
        "paths under /my-org that match nothing are not found",
        arguments: [
            "/my-org//details", "/my-org/details/", "/my-org/members//roles", "/my-org/members/", "/my-org/unknown",
            "/my-org/v1/v1/details", "/my-org/domains%2Fx", "/my-org/v2/details", "/my-org/Details",
            "/my-org/identity-providers/a/provisioning/scim-tokens/b/c", "/my-org//",
        ])
    func notFound(path: String) {
        #expect(router.route(method: "GET", path: path) == .notFound, "\(path)")
        #expect(router.route(method: "GET", path: path).refusal?.status == 404)
    }

    @Test(
        "paths outside /my-org are not the router's",
        arguments: ["/", "/authorize", "/.well-known/jwks.json", "/my-orgx/details", "/oauth/token", "/my-org-x"])
    func notMyOrg(path: String) {
        #expect(router.route(method: "GET", path: path) == .notMyOrg)
        #expect(router.route(method: "GET", path: path).refusal == nil)
    }

    @Test(
        "a known path with another method lists the allowed ones",
        arguments: [
            // HEAD is listed after GET: it is GET's operation (RFC 9110 §9.3.2).
            ("/my-org/details", "POST", ["GET", "HEAD", "PATCH"]),
            ("/my-org/details", "get", ["GET", "HEAD", "PATCH"]),
            ("/my-org/details", "head", ["GET", "HEAD", "PATCH"]),
            ("/my-org/identity-providers/con_1", "POST", ["GET", "HEAD", "PATCH", "DELETE"]),
            ("/my-org/members/auth0|1/roles", "PUT", ["GET", "HEAD", "POST", "DELETE"]),
            ("/my-org/v1/domains", "OPTIONS", ["GET", "HEAD", "POST"]),
            ("/my-org/identity-providers/con_1/detach", "GET", ["POST"]),
        ])
    func methodNotAllowed(path: String, method: String, allowed: [String]) throws {
        let result = router.route(method: method, path: path)
        #expect(result == .methodNotAllowed(allowed: allowed))
        let refusal = try #require(result.refusal)
        #expect(refusal.status == 405)
        #expect(refusal.headers["Allow"] == allowed.joined(separator: ", "))
    }

    @Test("literals win over parameters, and each path keeps its own parameter names")
    func precedence() {
        let table = EndpointTable(endpoints: [
            Endpoint(
                index: 0, operation: "by-id", method: "GET", template: "things/{id}", scopes: ["s"], rateClass: .read,
                logResource: .none, okStatus: 200, stage: .ea),
            Endpoint(
                index: 0, operation: "special", method: "GET", template: "things/special", scopes: ["s"],
                rateClass: .read, logResource: .none, okStatus: 200, stage: .ea),
            Endpoint(
                index: 0, operation: "delete-by-key", method: "DELETE", template: "things/{key}", scopes: ["s"],
                rateClass: .write, logResource: .none, okStatus: 204, stage: .ea),
        ])
        let router = Router(table: table)
        #expect(
            router.route(method: "GET", path: "/my-org/things/special")
                == .endpoint(table.endpoints[1], params: [:], versioned: false))
        #expect(
            router.route(method: "GET", path: "/my-org/things/other")
                == .endpoint(table.endpoints[0], params: ["id": "other"], versioned: false))
        // The literal node has GET only; DELETE falls through to the parameter.
        #expect(
            router.route(method: "DELETE", path: "/my-org/things/special")
                == .endpoint(table.endpoints[2], params: ["key": "special"], versioned: false))
        #expect(
            router.route(method: "PUT", path: "/my-org/things/special")
                == .methodNotAllowed(allowed: ["GET", "HEAD", "DELETE"]))
        // HEAD takes the GET of the literal, as GET does.
        #expect(
            router.route(method: "HEAD", path: "/my-org/things/special")
                == .endpoint(table.endpoints[1], params: [:], versioned: false))
    }

    @Test("routing is fast (benchmark-style; prints ns per route)")
    func speed() {
        let requests = EndpointTable.embedded.endpoints.map { e -> (String, String) in
            let path = concretePath(e).path
            return (e.method, path.isEmpty ? "/my-org" : "/my-org/" + path)
        }
        let rounds = 500
        var matched = 0
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for _ in 0..<rounds {
                for (method, path) in requests {
                    if case .endpoint = router.route(method: method, path: path) { matched += 1 }
                }
            }
        }
        let total = rounds * requests.count
        #expect(matched == total)
        let ns = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        print("Router: \(Int(ns / Double(total))) ns/route over \(total) routes")
        // A generous bound that only a pathological regression (e.g. linear scans per segment) would break.
        // Timing is reported, not asserted: the machine is shared and a threshold would only measure its load.
    }
}
