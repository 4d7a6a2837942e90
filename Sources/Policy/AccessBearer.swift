import GatewayCore

/// An access token as the request presented it.
public struct PresentedToken: Sendable, Equatable {
    public enum Scheme: Sendable, Equatable {
        case bearer
        /// RFC 9449 §7.1: a DPoP-bound token, with its proof in the request's one `DPoP` field.
        case dpop
    }

    public var value: String
    public var scheme: Scheme

    public init(_ value: String, scheme: Scheme = .bearer) {
        self.value = value
        self.scheme = scheme
    }
}

/// Token texts a caller has seen `BearerToken.extract` accept before, found by their exact bytes.
///
/// A repeated token (a client sends the same one for minutes) then costs a byte comparison instead of the token68
/// scan and a fresh ~1 KB string: the syntax check is a pure function of the bytes, so bytes equal to ones that
/// passed it pass it again. An implementation must answer only with a string whose UTF-8 is exactly `bytes` and
/// that an earlier `extract` returned as a token value.
public protocol KnownTokenTexts {
    func knownToken(_ bytes: UnsafeBufferPointer<UInt8>) -> String?
}

/// Takes the access token out of a request, by RFC 6750 §2.1 (and RFC 9449 §7.1 for DPoP) and nothing else.
///
/// Rules: exactly one `Authorization` field (two → 400); scheme `Bearer` or `DPoP` in any case, one or more
/// spaces (`1*SP`), then a token68 (RFC 9110 §11.2); no header, or a scheme with no token → 401 Missing Token
/// (A0E-401-0002); another scheme → 401; a value that is not a token68, or longer than `maxTokenBytes` → 401
/// `invalid_token`. The DPoP scheme needs exactly one `DPoP` field beside it (RFC 9449 §4.3), else 401
/// `invalid_dpop_proof`; the proof itself is forwarded for the tenant to verify. A token in the query
/// (`access_token=`) is never used: its presence refuses the request (400), because query strings end up in logs
/// and browser history.
public enum BearerToken {
    public static func extract(
        headers: HTTPFields, query: Substring?, maxTokenBytes: Int, known: (any KnownTokenTexts)? = nil
    ) throws(TenantError) -> PresentedToken {
        if let query, queryNamesAccessToken(query) {
            throw invalidRequest(
                "Access tokens are not accepted in the query string; send the token in the Authorization header "
                    + "as 'Authorization: Bearer <token>'.")
        }
        // One pass for the first value and whether a second exists (no array of values on every request).
        var first: String? = nil
        for field in headers where field.name.asciiCaseInsensitiveEquals(literal: "Authorization") {
            guard first == nil else { throw invalidRequest("Send exactly one Authorization header.") }
            first = field.value
        }
        guard var value = first else { throw .missingToken() }
        // The value's own bytes (a native string's storage, no copy): every step below is a byte scan.
        let parsed = value.withUTF8 { bytes in
            Result { () throws(TenantError) in try parse(bytes, maxTokenBytes: maxTokenBytes, known: known) }
        }
        let (token, scheme) = try parsed.get()
        if scheme == .dpop {
            var proofs = 0
            for field in headers where field.name.asciiCaseInsensitiveEquals(literal: "DPoP") { proofs += 1 }
            guard proofs == 1 else {
                throw invalidProof(
                    proofs == 0
                        ? "A DPoP-bound token needs a DPoP proof: send one DPoP header with the request."
                        : "Send exactly one DPoP header.")
            }
        }
        return PresentedToken(token, scheme: scheme)
    }

    /// The scheme and token of one `Authorization` value, with the refusals in the order the rules list them.
    private static func parse(
        _ bytes: UnsafeBufferPointer<UInt8>, maxTokenBytes: Int, known: (any KnownTokenTexts)?
    ) throws(TenantError) -> (String, PresentedToken.Scheme) {
        let space = bytes.firstIndex(of: 0x20) ?? bytes.endIndex
        // A byte comparison gives what comparing the decoded scheme name would: a byte that is not ASCII (or not
        // UTF-8) matches no letter of either name.
        let schemeName = UnsafeBufferPointer(rebasing: bytes[..<space])
        let scheme: PresentedToken.Scheme
        if asciiCaseInsensitiveBytesEqual(schemeName, bearerName) {
            scheme = .bearer
        } else if asciiCaseInsensitiveBytesEqual(schemeName, dpopName) {
            scheme = .dpop
        } else {
            throw wrongScheme()
        }
        var tokenStart = space
        while tokenStart != bytes.endIndex && bytes[tokenStart] == 0x20 { tokenStart += 1 }
        guard tokenStart != bytes.endIndex else {
            // The scheme alone carries no credential: the request lacks the token, as one without the header does
            // (RFC 6750 §3.1: no error code then), and the tenant answers both with 401 Missing Token.
            throw .missingToken(
                "The Authorization header names the scheme but carries no token: send 'Authorization: Bearer <token>'.")
        }
        let token = UnsafeBufferPointer(rebasing: bytes[tokenStart...])
        // Bytes equal to a token that passed the syntax check pass it again (see `KnownTokenTexts`).
        let text = known?.knownToken(token)
        // RFC 6750 §3.1 names a malformed token among `invalid_token`'s cases: 401, as for a token that does not
        // decode, so every bad token text is answered alike whichever of its bytes is wrong.
        guard text != nil || isToken68Bytes(token) else {
            throw ClaimsChecker.invalid(
                "The access token is malformed: a token is base64url text in three parts separated by dots.")
        }
        guard token.count <= maxTokenBytes else {
            throw ClaimsChecker.invalid("The access token is larger than \(maxTokenBytes) bytes.")
        }
        return (text ?? String(decoding: token, as: UTF8.self), scheme)
    }

    private static let bearerName = Array("bearer".utf8)
    private static let dpopName = Array("dpop".utf8)

    /// RFC 9449 §7.1's refusal of a missing or unusable proof.
    public static func invalidProof(_ detail: String) -> TenantError {
        .unauthorized(detail, wwwAuthenticate: ClaimsChecker.challenge("invalid_dpop_proof", detail, scheme: "DPoP"))
    }

    static func wrongScheme() -> TenantError {
        .missingToken("An access token is required: send it as 'Authorization: Bearer <token>'.")
    }

    static func invalidRequest(_ detail: String) -> TenantError {
        var error = TenantError.badRequest(detail)
        error.headers.set("WWW-Authenticate", ClaimsChecker.challenge("invalid_request", detail))
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
