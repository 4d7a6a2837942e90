/// The My Organization API's own log event codes (overview, "Log events"), with their names and descriptions.
public enum EventType: String, Sendable, Hashable, CaseIterable {
    case configFailed = "my_organization_api_config_failed"
    case orgDetailsSucceeded = "my_organization_api_org_details_succeeded"
    case orgDetailsFailed = "my_organization_api_org_details_failed"
    case idpSucceeded = "my_organization_api_idp_succeeded"
    case idpFailed = "my_organization_api_idp_failed"
    case domainSucceeded = "my_organization_api_domain_succeeded"
    case domainFailed = "my_organization_api_domain_failed"

    /// The event code, e.g. `my_organization_api_idp_failed`.
    public var code: String { rawValue }

    /// The event's name as the reference's table gives it.
    public var name: String {
        switch self {
        case .configFailed: return "My Organization API Config Failed"
        case .orgDetailsSucceeded: return "My Organization API Org Details Succeeded"
        case .orgDetailsFailed: return "My Organization API Org Details Failed"
        case .idpSucceeded: return "My Organization API Identity Provider Succeeded"
        case .idpFailed: return "My Organization API Identity Provider Failed"
        case .domainSucceeded: return "My Organization API Domain Succeeded"
        case .domainFailed: return "My Organization API Domain Failed"
        }
    }

    /// The event's description as the reference's table gives it (the log's `description`).
    public var description: String {
        switch self {
        case .configFailed:
            return "Failed API call to the config resource of the My Organization API service"
        case .orgDetailsSucceeded:
            return "Successful API call to the Organization details resource of the My Organization API service"
        case .orgDetailsFailed:
            return "Failed API call to the Organization details resource of the My Organization API service"
        case .idpSucceeded:
            return "Successful API call to the identity provider resource of the My Organization API service"
        case .idpFailed:
            return "Failed API call to the identity provider resource of the My Organization API service"
        case .domainSucceeded:
            return "Successful API call to the domain resource of the My Organization API service"
        case .domainFailed:
            return "Failed API call to the domain resource of the My Organization API service"
        }
    }

    public var succeeded: Bool {
        switch self {
        case .orgDetailsSucceeded, .idpSucceeded, .domainSucceeded: return true
        case .configFailed, .orgDetailsFailed, .idpFailed, .domainFailed: return false
        }
    }
}

/// Who produced a request's final status.
public enum EventDecider: String, Sendable, Hashable {
    /// The gateway answered itself (401/403 token or scope refusals, 429, 502/504, preflight refusals, ...).
    case gateway
    /// The tenant answered and the gateway passed the status on.
    case tenant
}

/// A request's outcome as event classification needs it.
public struct EventOutcome: Sendable, Hashable {
    public var status: Int
    public var decidedBy: EventDecider

    public init(status: Int, decidedBy: EventDecider) {
        self.status = status
        self.decidedBy = decidedBy
    }

    /// Succeeded means the tenant answered 2xx; everything else, gateway refusals included, failed.
    public var succeeded: Bool { decidedBy == .tenant && (200..<300).contains(status) }
}

/// Maps an endpoint's log resource and a request's outcome to the API's event code (or to no event).
///
/// Pure and total. Rules: no resource (members, invitations, roles) gives no event; `config` has only a
/// failure code, so a successful config call gives no event; the other resources give `_succeeded` when the
/// tenant answered 2xx and `_failed` for every other outcome. A CORS preflight is not an API call: don't
/// classify it (the gateway answers it before any token is seen).
public enum EventClassifier {
    public static func classify(resource: EventLogResource?, outcome: EventOutcome) -> EventType? {
        guard let resource else { return nil }
        let ok = outcome.succeeded
        switch resource {
        case .config: return ok ? nil : .configFailed
        case .orgDetails: return ok ? .orgDetailsSucceeded : .orgDetailsFailed
        case .idp: return ok ? .idpSucceeded : .idpFailed
        case .domain: return ok ? .domainSucceeded : .domainFailed
        }
    }

    /// The same, for a resource named as in the endpoint table (`org_details`, `config`, `idp`, `domain`).
    /// Nil, empty or an unknown name gives no event; the endpoint table's loader should refuse unknown names
    /// with `EventLogResource(rawValue:)`.
    public static func classify(resource: String?, outcome: EventOutcome) -> EventType? {
        guard let resource, let known = EventLogResource(rawValue: resource) else { return nil }
        return classify(resource: known, outcome: outcome)
    }
}
