import GatewayCore

/// What the router decided for one request.
public enum RouteResult: Sendable, Equatable {
    /// A known operation. `params` holds the percent-decoded path parameters by name; `versioned` is true
    /// for the `/my-org/v1` prefix.
    case endpoint(Endpoint, params: [String: String], versioned: Bool)
    /// The path names endpoints, but none with this method; `allowed` is in table order (the `Allow` header,
    /// and what a CORS preflight may offer).
    case methodNotAllowed(allowed: [String])
    /// Under `/my-org`, but no endpoint matches.
    case notFound
    /// Not under `/my-org`: forwarded only in custom-domain edge mode, else 404.
    case notMyOrg
    /// A path the gateway refuses to interpret (see `RouteProblem`).
    case badRequest(RouteProblem)
}

extension RouteResult {
    /// The tenant-style refusal for every result except `.endpoint` and `.notMyOrg` (nil for those).
    public var refusal: TenantError? {
        switch self {
        case .endpoint, .notMyOrg: return nil
        case .notFound: return .notFound("No endpoint of the My Organization API matches this path.")
        case .methodNotAllowed(let allowed):
            return .methodNotAllowed(
                "This endpoint of the My Organization API does not support this method.", allow: allowed)
        case .badRequest(let problem): return .badRequest(problem.description)
        }
    }
}

/// Maps a method and raw path to an endpoint of the table; compiled once per table, immutable, shared.
///
/// Recognised prefixes: `/my-org`, `/my-org/`, `/my-org/<path>`, `/my-org/v1`, `/my-org/v1/<path>`; the
/// root (`DELETE /my-org`) is the endpoint with the empty template. Matching is segment by segment on
/// percent-decoded segments (see `RoutePath`); literals beat parameters; an empty segment matches nothing.
/// Methods are case-sensitive (RFC 9110 §9.1).
public struct Router: Sendable {
    struct Node: Sendable {
        var literals: [String: Int] = [:]
        var param: Int?
        /// Endpoint indices ending here, in table order.
        var endpoints: [Int] = []
    }

    let nodes: [Node]
    /// Per endpoint: the segment positions holding parameters, and their names.
    let paramSlots: [[(position: Int, name: String)]]
    public let table: EndpointTable
    /// No template is deeper than this; longer paths are not found without walking them.
    let maxDepth: Int

    public init(table: EndpointTable) {
        var nodes = [Node()]
        var depth = 0
        for endpoint in table.endpoints {
            var current = 0
            let segments = endpoint.templateSegments
            depth = max(depth, segments.count)
            for segment in segments {
                if segment.hasPrefix("{") {
                    if let next = nodes[current].param {
                        current = next
                    } else {
                        nodes.append(Node())
                        nodes[current].param = nodes.count - 1
                        current = nodes.count - 1
                    }
                } else if let next = nodes[current].literals[String(segment)] {
                    current = next
                } else {
                    nodes.append(Node())
                    nodes[current].literals[String(segment)] = nodes.count - 1
                    current = nodes.count - 1
                }
            }
            nodes[current].endpoints.append(endpoint.index)
        }
        self.nodes = nodes
        self.paramSlots = table.endpoints.map { endpoint in
            endpoint.templateSegments.enumerated().compactMap { position, segment in
                segment.hasPrefix("{") ? (position, String(segment.dropFirst().dropLast())) : nil
            }
        }
        self.table = table
        self.maxDepth = depth
    }

    public func route(method: String, path: String) -> RouteResult { route(method: method, path: path[...]) }

    /// Routes `path` (the request target without its query).
    public func route(method: String, path: Substring) -> RouteResult {
        let segments: [RoutePath.Segment]
        switch RoutePath.segments(path) {
        case .success(let s): segments = s
        case .failure(let problem): return .badRequest(problem)
        }
        guard let first = segments.first, first.raw == "my-org" else {
            // A prefix that only decodes or case-folds to my-org could reach the tenant's API while skipping
            // every check here, so it is refused rather than forwarded.
            if let named = segments.first(where: { !$0.decoded.isEmpty }), named.decoded.asciiLowercased == "my-org" {
                return .badRequest(.ambiguousPrefix)
            }
            return .notMyOrg
        }
        var rest = segments[1...]
        var versioned = false
        if let v = rest.first {
            if v.raw == "v1" {
                versioned = true
                rest = rest.dropFirst()
            } else if v.decoded.asciiLowercased == "v1" {
                return .badRequest(.ambiguousPrefix)
            }
        }
        // `/my-org/` and `/my-org/v1/` name the root, like `/my-org` and `/my-org/v1`.
        if rest.count == 1, rest.first?.raw.isEmpty == true { rest = rest.dropFirst() }
        guard rest.count <= maxDepth else { return .notFound }

        var matches: [Int] = []
        collect(node: 0, rest, into: &matches)
        guard !matches.isEmpty else { return .notFound }
        var allowed: [String] = []
        var readForHead: Endpoint? = nil
        for nodeIndex in matches {
            for e in nodes[nodeIndex].endpoints {
                let endpoint = table.endpoints[e]
                if endpoint.method == method {
                    return .endpoint(endpoint, params: params(endpoint, rest), versioned: versioned)
                }
                if endpoint.method == "GET" && readForHead == nil { readForHead = endpoint }
                if !allowed.contains(endpoint.method) { allowed.append(endpoint.method) }
            }
        }
        // RFC 9110 §9.3.2 and §9.1: HEAD is GET without content, and general-purpose servers must support both, so
        // HEAD is the GET operation (its scopes, rate class and event) and is listed beside it in `Allow`.
        if let readForHead {
            if method == "HEAD" {
                return .endpoint(readForHead, params: params(readForHead, rest), versioned: versioned)
            }
            if let get = allowed.firstIndex(of: "GET") { allowed.insert("HEAD", at: get + 1) }
        }
        return .methodNotAllowed(allowed: allowed)
    }

    /// Every node with endpoints that `segments` leads to, literal branches first.
    private func collect(node: Int, _ segments: ArraySlice<RoutePath.Segment>, into matches: inout [Int]) {
        guard let segment = segments.first else {
            if !nodes[node].endpoints.isEmpty { matches.append(node) }
            return
        }
        if segment.decoded.isEmpty { return }
        let tail = segments.dropFirst()
        if let next = nodes[node].literals[segment.decoded] { collect(node: next, tail, into: &matches) }
        if let next = nodes[node].param { collect(node: next, tail, into: &matches) }
    }

    private func params(_ endpoint: Endpoint, _ segments: ArraySlice<RoutePath.Segment>) -> [String: String] {
        var out: [String: String] = [:]
        let base = segments.startIndex
        for slot in paramSlots[endpoint.index] { out[slot.name] = segments[base + slot.position].decoded }
        return out
    }
}
