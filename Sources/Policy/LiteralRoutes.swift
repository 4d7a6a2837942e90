/// The routing answers for the exact paths of the endpoints without path parameters (`/my-org/details`,
/// `/my-org/v1/details`, and for the root `/my-org`, `/my-org/`, `/my-org/v1`, `/my-org/v1/`), for each
/// method the table uses.
///
/// Every answer is worked out when the policy is built, by the same function the request path uses for
/// everything else (`judge`), so a hit returns exactly what that function would: routing is a pure function
/// of method and path. A request on such a path costs a length-indexed byte comparison instead of splitting,
/// decoding and walking its path. Other paths and methods return nil.
struct LiteralRoutes: Sendable {
    /// The methods the table uses, and per path (in `index` order) the answer for each method (same positions):
    /// apart, so that a search compares methods without copying the answers it passes over.
    private let methods: [String]
    private let routes: [[RouteResult]]
    private let index: ByteStringIndex

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
        self.methods = methods
        self.routes = paths.map { path in methods.map { judge($0, path[...]) } }
        self.index = ByteStringIndex(paths.map { Array($0.utf8) })
    }

    /// The precomputed answer for `method` on `path`, or nil when there is none.
    func route(method: String, path: Substring) -> RouteResult? {
        guard let position = index.find(path) else { return nil }
        guard let column = methods.firstIndex(of: method) else { return nil }
        return routes[position][column]
    }
}
