import GatewayCore

/// Takes the access token out of a request, by RFC 6750 §2.1 and nothing else.
///
/// Rules: exactly one `Authorization` field (two → 400); scheme `Bearer` in any case, one space, then a
/// token68 (RFC 9110 §11.2); none → 401 Missing Token (A0E-401-0002); another scheme → 401; a malformed
/// value → 400 `invalid_request`; longer than `maxTokenBytes` → 401 `invalid_token`. A token in the query
/// (`access_token=`) is never used: its presence refuses the request (400), because query strings end up
/// in logs and browser history.
public enum BearerToken {
    public static func extract(headers: HTTPFields, query: Substring?, maxTokenBytes: Int) throws(TenantError) -> String
    {
        if let query, queryNamesAccessToken(query) {
            throw .badRequest(
                "Access tokens are not accepted in the query string; send the token in the Authorization header "
                    + "as 'Authorization: Bearer <token>'.")
        }
        let values = headers.values("Authorization")
        guard let value = values.first else { throw .missingToken() }
        guard values.count == 1 else { throw invalidRequest("Send exactly one Authorization header.") }
        let bytes = value.utf8
        let space = bytes.firstIndex(of: 0x20) ?? bytes.endIndex
        guard String(decoding: bytes[..<space], as: UTF8.self).asciiCaseInsensitiveEquals("bearer") else {
            throw wrongScheme()
        }
        guard space != bytes.endIndex, bytes.index(after: space) != bytes.endIndex else {
            throw invalidRequest("The Authorization header has no token.")
        }
        let token = bytes[bytes.index(after: space)...]
        guard isToken68(token) else {
            throw invalidRequest("The bearer token is malformed (RFC 6750 token syntax, one space after Bearer).")
        }
        guard token.count <= maxTokenBytes else {
            throw ClaimsChecker.invalid("The access token is larger than \(maxTokenBytes) bytes.")
        }
        return String(decoding: token, as: UTF8.self)
    }

    static func wrongScheme() -> TenantError {
        .missingToken("An access token is required: send it as 'Authorization: Bearer <token>'.")
    }

    static func invalidRequest(_ detail: String) -> TenantError {
        var error = TenantError.badRequest(detail)
        error.headers.set(
            "WWW-Authenticate",
            "Bearer error=\"invalid_request\", error_description=\"\(ClaimsChecker.errorDescription(detail))\"")
        return error
    }

    /// token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    static func isToken68(_ bytes: some Collection<UInt8>) -> Bool {
        // Tokens are long (~1 KB) and this runs on every request: scan contiguous bytes when they are available
        // (a Substring's UTF-8 view is), not through the generic collection protocol.
        if let result = bytes.withContiguousStorageIfAvailable({ isToken68Bytes($0) }) { return result }
        return isToken68Bytes(Array(bytes))
    }

    static func isToken68Bytes<C: RandomAccessCollection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        // One table load per byte instead of a chain of range tests: the token is ~1 KB on every request.
        token68Table.withUnsafeBufferPointer { table in
            var sawPadding = false
            var count = 0
            for b in bytes {
                if b == UInt8(ascii: "=") {
                    guard count > 0 else { return false }
                    sawPadding = true
                    continue
                }
                if sawPadding || !table[Int(b)] { return false }
                count += 1
            }
            return count > 0
        }
    }

    /// token68's characters other than `=`: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/".
    static let token68Table: [Bool] = (0..<256).map { b in
        switch UInt8(b) {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"), UInt8(ascii: "+"), UInt8(ascii: "/"):
            return true
        default: return false
        }
    }

    /// True when a query parameter's decoded name is `access_token` (any case of the percent-escapes).
    static func queryNamesAccessToken(_ query: Substring) -> Bool {
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let name = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let plus = String(name).replacingPlus()
            if case .success(let decoded) = RoutePath.decode(plus[...]), decoded == "access_token" { return true }
            if plus == "access_token" { return true }
        }
        return false
    }
}

extension String {
    fileprivate func replacingPlus() -> String { String(self.map { $0 == "+" ? " " : $0 }) }
}
