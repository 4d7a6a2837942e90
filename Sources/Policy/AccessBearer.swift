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
        // One pass for the first value and whether a second exists (no array of values on every request).
        var first: String? = nil
        for field in headers where field.name.asciiCaseInsensitiveEquals("Authorization") {
            guard first == nil else { throw invalidRequest("Send exactly one Authorization header.") }
            first = field.value
        }
        guard let value = first else { throw .missingToken() }
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
        return Array(bytes).withUnsafeBufferPointer { isToken68Bytes($0) }
    }

    /// The padding is peeled off the end first; everything before it must then be token characters (a `=`
    /// is not one, so padding in the middle fails), which lets the scan AND the table's answers together, eight
    /// bytes per step, with no per-byte branch.
    static func isToken68Bytes(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var end = bytes.count
        while end > 0 && bytes[end - 1] == UInt8(ascii: "=") { end -= 1 }
        guard end > 0 else { return false }
        return token68Table.withUnsafeBufferPointer { table in
            var ok: UInt8 = 1
            var i = 0
            while i + 8 <= end {
                ok &=
                    table[Int(bytes[i])] & table[Int(bytes[i + 1])] & table[Int(bytes[i + 2])]
                    & table[Int(bytes[i + 3])] & table[Int(bytes[i + 4])] & table[Int(bytes[i + 5])]
                    & table[Int(bytes[i + 6])] & table[Int(bytes[i + 7])]
                i += 8
            }
            while i < end {
                ok &= table[Int(bytes[i])]
                i += 1
            }
            return ok != 0
        }
    }

    /// token68's characters other than `=`, as 1 (allowed) or 0: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/".
    static let token68Table: [UInt8] = (0..<256).map { b in
        switch UInt8(b) {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"), UInt8(ascii: "+"), UInt8(ascii: "/"):
            return 1
        default: return 0
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
