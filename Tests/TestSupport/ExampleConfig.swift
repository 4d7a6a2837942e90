/// `policies/tenant.example.yaml` as shipped passes `check` with nothing set up; its commented "uncomment" lines
/// show a TLS listener and a custom domain in edge mode. Tests of certificates and secrets use the example with
/// those lines active.
public enum ExampleConfig {
    public static let shippedCustomOrigin = "    url: https://login.acme.com\n"

    /// The example with its TLS listener (`certs/login.pem`, `certs/login.key`) and its edge-mode custom domain
    /// (`cname_api_key: { env: CNAME_API_KEY }`) uncommented; nil when the example no longer has those lines.
    public static func withTLSAndEdge(_ text: String) -> String? {
        let replacements = [
            (
                "    # tls:\n    #   certificates: [{ cert: certs/login.pem, key: certs/login.key }]\n"
                    + "    #   alpn: [h2, http/1.1]\n",
                "    tls:\n      certificates: [{ cert: certs/login.pem, key: certs/login.key }]\n"
                    + "      alpn: [h2, http/1.1]\n"
            ),
            (shippedCustomOrigin, ""),
            (
                "    # url: https://acme-cd-xyz.edge.tenants.us.auth0.com\n    # cname_api_key: { env: CNAME_API_KEY }\n"
                    + "    # client_ip_header: x-forwarded-for\n",
                "    url: https://acme-cd-xyz.edge.tenants.us.auth0.com\n    cname_api_key: { env: CNAME_API_KEY }\n"
                    + "    client_ip_header: x-forwarded-for\n"
            ),
        ]
        var out = text
        for (from, to) in replacements {
            guard let range = out.range(of: from) else { return nil }
            out.replaceSubrange(range, with: to)
        }
        return out
    }
}
