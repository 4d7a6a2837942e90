/// The routing answers for the exact paths of the endpoints without path parameters (`/my-org/details`,
/// `/my-org/v1/details`, and for the root `/my-org`, `/my-org/`, `/my-org/v1`, `/my-org/v1/`), for each
/// method the table uses.
///
/// Every answer is worked out when the policy is built, by the same function the request path uses for
/// everything else (`judge`), so a hit returns exactly what that function would: routing is a pure function
/// of method and path. A request on such a path costs a length-indexed byte comparison instead of splitting,
/// decoding and walking its path. Other paths and methods return nil.
struct LiteralRoutes: Sendable {
    struct Entry: Sendable {
        let path: [UInt8]
        let routes: [(method: String, route: RouteResult)]
    }

    /// Entries by path length in bytes.
    private let byLength: [[Entry]]

    init(table: EndpointTable, judge: (String, Substring) -> RouteResult) {
        var paths: [String] = []
        for endpoint in table.endpoints where !endpoint.templateSegments.contains(where: { $0.hasPrefix("{") }) {
            let candidates =
                endpoint.template.isEmpty
                ? ["/my-org", "/my-org/", "/my-org/v1", "/my-org/v1/"]
                : ["/my-org/\(endpoint.template)", "/my-org/v1/\(endpoint.template)"]
            for path in candidates where !paths.contains(path) { paths.append(path) }
        }
        var methods: [String] = []
        for endpoint in table.endpoints where !methods.contains(endpoint.method) { methods.append(endpoint.method) }
        var byLength: [[Entry]] = []
        for path in paths {
            let bytes = Array(path.utf8)
            let routes = methods.map { (method: $0, route: judge($0, path[...])) }
            while byLength.count <= bytes.count { byLength.append([]) }
            byLength[bytes.count].append(Entry(path: bytes, routes: routes))
        }
        self.byLength = byLength
    }

    /// The precomputed answer for `method` on `path`, or nil when there is none.
    func route(method: String, path: Substring) -> RouteResult? {
        let utf8 = path.utf8
        let count = utf8.count
        guard count < byLength.count else { return nil }
        for entry in byLength[count] where LiteralRoutes.bytesEqual(utf8, entry.path) {
            for candidate in entry.routes where candidate.method == method { return candidate.route }
            return nil
        }
        return nil
    }

    private static func bytesEqual(_ utf8: Substring.UTF8View, _ bytes: [UInt8]) -> Bool {
        if let equal = utf8.withContiguousStorageIfAvailable({ $0.elementsEqual(bytes) }) { return equal }
        return utf8.elementsEqual(bytes)
    }
}
