/// The log resource of an endpoint: which family of the API's event codes its outcomes belong to.
///
/// Raw values are the names used in the endpoint table (`policies/endpoints.yaml`). Members, invitations and
/// roles have no resource (no event codes exist for them): the endpoint table leaves it out.
public enum EventLogResource: String, Sendable, Hashable, CaseIterable {
    case orgDetails = "org_details"
    case config
    case idp
    case domain
}
