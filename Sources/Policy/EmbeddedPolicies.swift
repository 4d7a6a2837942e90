/// Policy files compiled into the binary, so the gateway runs without its `policies/` directory.
///
/// Each constant is a byte-for-byte copy of the file it names; a test compares them on every run, so an edit
/// to one without the other fails CI. To refresh after editing `policies/endpoints.yaml`, paste the file
/// between the delimiters (indented by eight spaces) and keep the empty line before the closing delimiter.
public enum EmbeddedPolicies {
    /// `policies/endpoints.yaml`.
    public static let endpointsYAML = #"""
        # The My Organization API's operations, one entry each: the gateway routes, scopes and classifies requests
        # from this table, so a new endpoint is an edit here, not a code change.
        #
        #   operation     stable name used in logs, metrics, faults and recording filters
        #   method, path  the path template under /my-org/ (and /my-org/v1/); {name} is a parameter; "" is the root
        #   scopes        all are required
        #   class         read | write: the rate-limit class
        #   log_resource  org_details | config | idp | domain | none: the family of the API's log event codes
        #   ok_status     the status of a successful call
        #   stage         ea | beta
        #
        # Source: shared/reference/endpoints.md (41 operations of the public description, plus GET user-stores from
        # the official Python SDK 2.0.0). Log resources of sub-resources (domain identity providers, provisioning,
        # SCIM tokens, IdP domains, the root) are inferred from their parent family.
        version: 1
        endpoints:
          - operation: get-details
            method: GET
            path: "details"
            scopes: [read:my_org:details]
            class: read
            log_resource: org_details
            ok_status: 200
            stage: ea
          - operation: update-details
            method: PATCH
            path: "details"
            scopes: [update:my_org:details]
            class: write
            log_resource: org_details
            ok_status: 200
            stage: ea
          - operation: delete-organization
            method: DELETE
            path: ""
            scopes: [delete:my_org:organizations]
            class: write
            log_resource: org_details
            ok_status: 204
            stage: ea
          - operation: get-config
            method: GET
            path: "config"
            scopes: [read:my_org:configuration]
            class: read
            log_resource: config
            ok_status: 200
            stage: ea
          - operation: list-config-identity-providers
            method: GET
            path: "config/identity-providers"
            scopes: [read:my_org:configuration]
            class: read
            log_resource: config
            ok_status: 200
            stage: ea
          - operation: list-domains
            method: GET
            path: "domains"
            scopes: [read:my_org:domains]
            class: read
            log_resource: domain
            ok_status: 200
            stage: ea
          - operation: create-domain
            method: POST
            path: "domains"
            scopes: [create:my_org:domains]
            class: write
            log_resource: domain
            ok_status: 201
            stage: ea
          - operation: get-domain
            method: GET
            path: "domains/{domain_id}"
            scopes: [read:my_org:domains]
            class: read
            log_resource: domain
            ok_status: 200
            stage: ea
          - operation: delete-domain
            method: DELETE
            path: "domains/{domain_id}"
            scopes: [delete:my_org:domains]
            class: write
            log_resource: domain
            ok_status: 204
            stage: ea
          - operation: verify-domain
            method: POST
            path: "domains/{domain_id}/verify"
            scopes: [update:my_org:domains]
            class: write
            log_resource: domain
            ok_status: 202
            stage: ea
          - operation: list-domain-identity-providers
            method: GET
            path: "domains/{domain_id}/identity-providers"
            scopes: [read:my_org:domains, read:my_org:identity_providers]
            class: read
            log_resource: domain
            ok_status: 200
            stage: ea
          - operation: list-identity-providers
            method: GET
            path: "identity-providers"
            scopes: [read:my_org:identity_providers]
            class: read
            log_resource: idp
            ok_status: 200
            stage: ea
          - operation: create-identity-provider
            method: POST
            path: "identity-providers"
            scopes: [create:my_org:identity_providers]
            class: write
            log_resource: idp
            ok_status: 201
            stage: ea
          - operation: get-identity-provider
            method: GET
            path: "identity-providers/{idp_id}"
            scopes: [read:my_org:identity_providers]
            class: read
            log_resource: idp
            ok_status: 200
            stage: ea
          - operation: update-identity-provider
            method: PATCH
            path: "identity-providers/{idp_id}"
            scopes: [update:my_org:identity_providers]
            class: write
            log_resource: idp
            ok_status: 200
            stage: ea
          - operation: delete-identity-provider
            method: DELETE
            path: "identity-providers/{idp_id}"
            scopes: [delete:my_org:identity_providers]
            class: write
            log_resource: idp
            ok_status: 204
            stage: ea
          - operation: update-identity-provider-attributes
            method: PUT
            path: "identity-providers/{idp_id}/update-attributes"
            scopes: [update:my_org:identity_providers]
            class: write
            log_resource: idp
            ok_status: 200
            stage: ea
          - operation: detach-identity-provider
            method: POST
            path: "identity-providers/{idp_id}/detach"
            scopes: [update:my_org:identity_providers_detach]
            class: write
            log_resource: idp
            ok_status: 204
            stage: ea
          - operation: create-identity-provider-domain
            method: POST
            path: "identity-providers/{idp_id}/domains"
            scopes: [create:my_org:identity_providers_domains]
            class: write
            log_resource: idp
            ok_status: 201
            stage: ea
          - operation: delete-identity-provider-domain
            method: DELETE
            path: "identity-providers/{idp_id}/domains/{domain}"
            scopes: [delete:my_org:identity_providers_domains]
            class: write
            log_resource: idp
            ok_status: 204
            stage: ea
          - operation: get-provisioning
            method: GET
            path: "identity-providers/{idp_id}/provisioning"
            scopes: [read:my_org:identity_providers_provisioning]
            class: read
            log_resource: idp
            ok_status: 200
            stage: ea
          - operation: create-provisioning
            method: POST
            path: "identity-providers/{idp_id}/provisioning"
            scopes: [create:my_org:identity_providers_provisioning]
            class: write
            log_resource: idp
            ok_status: 201
            stage: ea
          - operation: delete-provisioning
            method: DELETE
            path: "identity-providers/{idp_id}/provisioning"
            scopes: [delete:my_org:identity_providers_provisioning]
            class: write
            log_resource: idp
            ok_status: 204
            stage: ea
          - operation: update-provisioning-attributes
            method: PUT
            path: "identity-providers/{idp_id}/provisioning/update-attributes"
            scopes: [update:my_org:identity_providers_provisioning]
            class: write
            log_resource: idp
            ok_status: 200
            stage: ea
          - operation: list-scim-tokens
            method: GET
            path: "identity-providers/{idp_id}/provisioning/scim-tokens"
            scopes: [read:my_org:identity_providers_scim_tokens]
            class: read
            log_resource: idp
            ok_status: 200
            stage: ea
          - operation: create-scim-token
            method: POST
            path: "identity-providers/{idp_id}/provisioning/scim-tokens"
            scopes: [create:my_org:identity_providers_scim_tokens]
            class: write
            log_resource: idp
            ok_status: 201
            stage: ea
          - operation: delete-scim-token
            method: DELETE
            path: "identity-providers/{idp_id}/provisioning/scim-tokens/{idp_scim_token_id}"
            scopes: [delete:my_org:identity_providers_scim_tokens]
            class: write
            log_resource: idp
            ok_status: 204
            stage: ea
          - operation: list-members
            method: GET
            path: "members"
            scopes: [read:my_org:members]
            class: read
            log_resource: none
            ok_status: 200
            stage: beta
          - operation: get-member
            method: GET
            path: "members/{user_id}"
            scopes: [read:my_org:members]
            class: read
            log_resource: none
            ok_status: 200
            stage: beta
          - operation: delete-memberships
            method: POST
            path: "delete-memberships"
            scopes: [delete:my_org:memberships]
            class: write
            log_resource: none
            ok_status: 204
            stage: beta
          - operation: list-member-invitations
            method: GET
            path: "member-invitations"
            scopes: [read:my_org:member_invitations]
            class: read
            log_resource: none
            ok_status: 200
            stage: beta
          - operation: create-member-invitations
            method: POST
            path: "member-invitations"
            scopes: [create:my_org:member_invitations]
            class: write
            log_resource: none
            ok_status: 201
            stage: beta
          - operation: delete-member-invitations
            method: POST
            path: "delete-member-invitations"
            scopes: [delete:my_org:member_invitations]
            class: write
            log_resource: none
            ok_status: 204
            stage: beta
          - operation: get-member-invitation
            method: GET
            path: "member-invitations/{invitation_id}"
            scopes: [read:my_org:member_invitations]
            class: read
            log_resource: none
            ok_status: 200
            stage: beta
          - operation: delete-member-invitation
            method: DELETE
            path: "member-invitations/{invitation_id}"
            scopes: [delete:my_org:member_invitations]
            class: write
            log_resource: none
            ok_status: 204
            stage: beta
          - operation: list-member-invitation-roles
            method: GET
            path: "member-invitations/{invitation_id}/roles"
            scopes: [read:my_org:member_roles]
            class: read
            log_resource: none
            ok_status: 200
            stage: beta
          - operation: list-member-roles
            method: GET
            path: "members/{user_id}/roles"
            scopes: [read:my_org:member_roles]
            class: read
            log_resource: none
            ok_status: 200
            stage: beta
          - operation: assign-member-roles
            method: POST
            path: "members/{user_id}/roles"
            scopes: [create:my_org:member_roles]
            class: write
            log_resource: none
            ok_status: 204
            stage: beta
          - operation: delete-member-roles
            method: DELETE
            path: "members/{user_id}/roles"
            scopes: [delete:my_org:member_roles]
            class: write
            log_resource: none
            ok_status: 204
            stage: beta
          - operation: unassign-member-roles
            method: POST
            path: "members/{user_id}/unassign-roles"
            scopes: [delete:my_org:member_roles]
            class: write
            log_resource: none
            ok_status: 204
            stage: beta
          - operation: list-roles
            method: GET
            path: "roles"
            scopes: [read:my_org:member_roles]
            class: read
            log_resource: none
            ok_status: 200
            stage: beta
          - operation: list-user-stores
            method: GET
            path: "user-stores"
            scopes: [read:my_org:user_stores]
            class: read
            log_resource: none
            ok_status: 200
            stage: ea

        """#
}
