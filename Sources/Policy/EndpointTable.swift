/// One operation of the My Organization API, as the endpoint table describes it.
///
/// `template` is the path under `/my-org/` with `{name}` segments for parameters (`""` for the root,
/// which `DELETE /my-org` uses). All `scopes` are required.
///
/// A class with value equality: every request's route match and notes hold the endpoint, and handing a class on is
/// one retain where copying the struct retained each of its strings and its scope array.
public final class Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// The rate-limit class the tier table counts the call against.
    public enum RateClass: String, Sendable, Hashable, CaseIterable {
        case read, write
    }

    /// The family of the API's log event codes the call belongs to.
    public enum LogResource: String, Sendable, Hashable, CaseIterable {
        case orgDetails = "org_details"
        case config
        case idp
        case domain
        case none
    }

    public enum Stage: String, Sendable, Hashable, CaseIterable {
        case ea, beta
    }

    /// Position in the table: a dense key for per-endpoint arrays (metrics, counters).
    public let index: Int
    /// Stable name, e.g. `get-details`.
    public let operation: String
    public let method: String
    public let template: String
    public let scopes: [String]
    public let rateClass: RateClass
    public let logResource: LogResource
    public let okStatus: Int
    public let stage: Stage

    public init(
        index: Int, operation: String, method: String, template: String, scopes: [String], rateClass: RateClass,
        logResource: LogResource, okStatus: Int, stage: Stage
    ) {
        self.index = index
        self.operation = operation
        self.method = method
        self.template = template
        self.scopes = scopes
        self.rateClass = rateClass
        self.logResource = logResource
        self.okStatus = okStatus
        self.stage = stage
        self.routeName = "\(method) \(template)"
    }

    /// `METHOD template`, e.g. `GET details` or `DELETE ` for the root; the form faults and recordings name.
    /// Stored: every request's notes carry it.
    public let routeName: String

    public var description: String { "\(operation) (\(method) /my-org/\(template))" }

    public static func == (lhs: Endpoint, rhs: Endpoint) -> Bool {
        lhs === rhs
            || (lhs.index == rhs.index && lhs.operation == rhs.operation && lhs.method == rhs.method
                && lhs.template == rhs.template && lhs.scopes == rhs.scopes && lhs.rateClass == rhs.rateClass
                && lhs.logResource == rhs.logResource && lhs.okStatus == rhs.okStatus && lhs.stage == rhs.stage)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(index)
        hasher.combine(operation)
        hasher.combine(method)
        hasher.combine(template)
        hasher.combine(scopes)
        hasher.combine(rateClass)
        hasher.combine(logResource)
        hasher.combine(okStatus)
        hasher.combine(stage)
    }

    /// Whether the policy reads this call's body before deciding: the identity-provider strategy check of
    /// `POST identity-providers`. Every other body is left to the tenant (and may stream).
    public var bodyIsChecked: Bool { method == "POST" && template == "identity-providers" }

    /// The template's segments; empty for the root.
    public var templateSegments: [Substring] {
        template.isEmpty ? [] : template.split(separator: "/", omittingEmptySubsequences: false)
    }
}

/// The endpoint table: every operation the gateway routes, loaded from `policies/endpoints.yaml` or the
/// embedded copy of it. Immutable once loaded.
public struct EndpointTable: Sendable, Equatable {
    public let endpoints: [Endpoint]
    /// Every scope some endpoint requires; client grants and step-up rules may only name these.
    public let knownScopes: Set<String>
    private let byOperation: [String: Int]

    /// Builds a table; each endpoint's `index` is reset to its position.
    public init(endpoints: [Endpoint]) {
        let endpoints = endpoints.enumerated().map { i, e in
            Endpoint(
                index: i, operation: e.operation, method: e.method, template: e.template, scopes: e.scopes,
                rateClass: e.rateClass, logResource: e.logResource, okStatus: e.okStatus, stage: e.stage)
        }
        self.endpoints = endpoints
        self.knownScopes = Set(endpoints.flatMap(\.scopes))
        var byOperation: [String: Int] = [:]
        for (i, e) in endpoints.enumerated() { byOperation[e.operation] = i }
        self.byOperation = byOperation
    }

    public func endpoint(operation: String) -> Endpoint? {
        byOperation[operation].map { endpoints[$0] }
    }

    public func endpoint(method: String, template: String) -> Endpoint? {
        endpoints.first { $0.method == method && $0.template == template }
    }

    /// Finds an endpoint by its operation name, or by `METHOD template` (the template may start with
    /// `/my-org/`, `/my-org/v1/` or `/`), as faults and recording filters name routes.
    public func endpoint(named name: String) -> Endpoint? {
        if let e = endpoint(operation: name) { return e }
        let parts = name.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard let method = parts.first, !method.isEmpty else { return nil }
        var template = parts.count > 1 ? parts[1] : ""
        for prefix in ["/my-org/v1", "/my-org"] where template.hasPrefix(prefix) {
            let rest = template.dropFirst(prefix.count)
            if rest.isEmpty || rest.hasPrefix("/") {
                template = rest
                break
            }
        }
        while template.hasPrefix("/") { template = template.dropFirst() }
        while template.hasSuffix("/") { template = template.dropLast() }
        return endpoint(method: String(method), template: String(template))
    }

    /// The table compiled from `EmbeddedPolicies.endpointsYAML`.
    ///
    /// The embedded text is checked by a test on every build, so a failure here is a programming error.
    public static let embedded: EndpointTable = {
        switch EndpointTable.load(yaml: EmbeddedPolicies.endpointsYAML, file: "endpoints.yaml (embedded)") {
        case .success(let table): return table
        case .failure(let errors): fatalError("embedded endpoint table is invalid:\n\(errors)")
        }
    }()
}
