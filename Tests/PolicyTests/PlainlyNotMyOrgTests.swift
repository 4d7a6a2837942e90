import Testing

@testable import Policy

@Suite("Edge-mode paths that skip the router")
struct PlainlyNotMyOrgTests {
    /// The rule, written plainly: a path starting with `/`, without `%`, `\`, controls, DEL or dot segments, whose
    /// first segment is not empty and is not `my-org` in any letter case.
    static func reference(_ path: String) -> Bool {
        let bytes = Array(path.utf8)
        guard bytes.first == UInt8(ascii: "/") else { return false }
        for (i, b) in bytes.enumerated() {
            if b == UInt8(ascii: "%") || b == UInt8(ascii: "\\") || b < 0x21 || b == 0x7F { return false }
            if i > 0 && bytes[i - 1] == UInt8(ascii: "/") && b == UInt8(ascii: ".") { return false }
        }
        let segment = bytes.dropFirst().prefix { $0 != UInt8(ascii: "/") }
        guard !segment.isEmpty else { return false }
        return String(decoding: segment, as: UTF8.self).lowercased() != "my-org"
    }

    @Test(
        "the byte scan agrees with the rule",
        arguments: [
            "/bench", "/", "//", "/my-org", "/my-org/details", "/MY-ORG/x", "/My-Org", "/my-orgs", "/my-or",
            "/my-org2/x", "/x/my-org", "/%6dy-org/details", "/a%2Fb", "/a\\b", "/./x", "/x/../my-org", "/.well-known/x",
            "/a b", "/a\u{7f}", "bench", "", "/caf\u{e9}", "/api/v2/users?x=/my-org", "/x.y/z", "/a/.b",
        ])
    func agrees(path: String) {
        #expect(RequestPolicy.plainlyNotMyOrg(path[...]) == Self.reference(path), "\(path)")
        let embedded = "xx" + path + "yy"
        let slice = embedded.dropFirst(2).dropLast(2)
        #expect(RequestPolicy.plainlyNotMyOrg(slice) == Self.reference(path), "substring of \(path)")
    }

    @Test(
        "the router gives every plainly non-API path the .notMyOrg the shortcut gives it",
        arguments: [
            "/bench", "/my-orgs", "/my-or", "/my-org2/x", "/x/my-org", "/caf\u{e9}", "/x.y/z",
        ])
    func routerAgrees(path: String) throws {
        #expect(RequestPolicy.plainlyNotMyOrg(path[...]))
        let policy = try PipelineFixture.policy()
        for method in ["GET", "POST", "OPTIONS"] {
            #expect(RequestPolicy.routeGeneral(router: policy.router, method: method, path: path[...]) == .notMyOrg)
        }
    }
}
