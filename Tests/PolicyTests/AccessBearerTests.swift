import GatewayCore
import Testing

@testable import Policy

@Suite("Bearer extraction")
struct AccessBearerTests {
    private func extract(_ values: [String], query: String? = nil, max: Int = 8192) throws(TenantError) -> String {
        try BearerToken.extract(
            headers: HTTPFields(values.map { ("Authorization", $0) }), query: query.map { $0[...] }, maxTokenBytes: max
        ).value
    }

    @Test(
        "accepted forms",
        arguments: [
            ("Bearer abc.def.ghi", "abc.def.ghi"),
            ("bearer abc.def.ghi", "abc.def.ghi"),
            ("BEARER a-b_c~d+e/f==", "a-b_c~d+e/f=="),
            // RFC 6750 §2.1: `"Bearer" 1*SP b64token`.
            ("Bearer  abc.def.ghi", "abc.def.ghi"),
            ("Bearer    abc", "abc"),
        ])
    func accepted(value: String, token: String) throws {
        #expect(try extract([value]) == token)
    }

    @Test(
        "refused forms",
        arguments: [
            // A malformed token is `invalid_token` (RFC 6750 §3.1), 401 like any token that does not decode.
            ("Bearer  ", 401), ("Bearer abc def", 401), ("Bearer ", 401), ("Bearer", 401), ("Bearer a=b", 401),
            ("Bearer =abc", 401), ("Bearer abc\"", 401), ("Basic YWxhZGRpbjpvcGVu", 401), ("DPoP abc", 401),
            ("BearerX abc", 401), ("", 401),
        ])
    func refused(value: String, status: Int) {
        #expect { try extract([value]) } throws: { ($0 as? TenantError)?.status == status }
    }

    @Test("token68 admits exactly ALPHA / DIGIT / - . _ ~ + / and trailing = (every byte value)")
    func token68Alphabet() {
        let allowed = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/".utf8))
        for byte in 0...255 {
            let b = UInt8(byte)
            #expect(BearerToken.isToken68(Array("ab".utf8) + [b] + Array("cd".utf8)) == allowed.contains(b), "\(b)")
            if b != UInt8(ascii: "=") {
                #expect(BearerToken.isToken68(Array("ab==".utf8) + [b]) == false, "\(b) after padding")
            }
        }
        #expect(BearerToken.isToken68(Array("ab==".utf8)))
        #expect(!BearerToken.isToken68(Array("=".utf8)))
        #expect(!BearerToken.isToken68([UInt8]()))
    }

    @Test(
        "no Authorization header, or a scheme with no token after it, is a Missing Token",
        arguments: [[], ["Bearer"], ["Bearer   "], ["bearer"], ["DPoP"]])
    func missing(values: [String]) {
        #expect {
            try extract(values)
        } throws: { error in
            let e = error as? TenantError
            return e?.status == 401 && e?.code == "A0E-401-0002" && e?.title == "Missing Token"
                && e?.headers["WWW-Authenticate"]?.contains("error=") == false
        }
    }

    @Test("two Authorization headers are refused")
    func two() {
        #expect { try extract(["Bearer a", "Bearer a"]) } throws: { ($0 as? TenantError)?.status == 400 }
    }

    @Test(
        "a token in the query string is never used",
        arguments: [
            "access_token=abc", "take=50&access_token=abc", "access%5Ftoken=abc", "ACCESS_TOKEN=x&access_token",
        ])
    func query(query: String) {
        #expect {
            try extract(["Bearer abc"], query: query)
        } throws: { error in
            let e = error as? TenantError
            return e?.status == 400 && e?.detail.contains("Authorization header") == true
        }
    }

    @Test("ordinary queries pass")
    func ordinaryQuery() throws {
        #expect(
            try extract(["Bearer abc"], query: "include_fields=true&take=50&sort=created_at%3A-1&x_access_token=1")
                == "abc")
    }

    @Test("an oversized token is refused as invalid_token without echoing it")
    func oversized() {
        let big = String(repeating: "a", count: 600)
        #expect {
            try extract(["Bearer " + big], max: 512)
        } throws: { error in
            let e = error as? TenantError
            return e?.status == 401 && e?.headers["WWW-Authenticate"]?.contains("invalid_token") == true
                && e?.detail.contains(big) == false
        }
    }
}

@Suite("token68 scan, 16 bytes at a time")
struct Token68ScanTests {
    /// The grammar byte by byte, as the scan replaced it.
    static func reference(_ bytes: [UInt8]) -> Bool {
        var sawPadding = false
        var count = 0
        for b in bytes {
            if b == UInt8(ascii: "=") {
                guard count > 0 else { return false }
                sawPadding = true
                continue
            }
            if sawPadding || BearerToken.token68Table[Int(b)] == 0 { return false }
            count += 1
        }
        return count > 0
    }

    @Test("every byte value at every position of lengths around the 16-byte chunks agrees with the byte rule")
    func everyByteEverywhere() {
        for length in [1, 15, 16, 17, 31, 32, 33, 47] {
            let base = Array(repeating: UInt8(ascii: "a"), count: length)
            for position in 0..<length {
                for byte in 0...255 {
                    var bytes = base
                    bytes[position] = UInt8(byte)
                    #expect(
                        BearerToken.isToken68(bytes) == Self.reference(bytes),
                        "length \(length) at \(position): \(byte)")
                }
            }
        }
    }

    @Test("padding runs of every length, alone, trailing, and with something after them")
    func padding() {
        for body in [0, 1, 15, 16, 17, 40] {
            for pad in 0...20 {
                let token =
                    Array(repeating: UInt8(ascii: "Z"), count: body) + Array(repeating: UInt8(ascii: "="), count: pad)
                #expect(BearerToken.isToken68(token) == Self.reference(token))
                #expect(
                    BearerToken.isToken68(token + [UInt8(ascii: "z")]) == Self.reference(token + [UInt8(ascii: "z")]))
                #expect(BearerToken.isToken68(token + [0x80]) == Self.reference(token + [0x80]))
            }
        }
    }

    @Test("a real token's bytes pass, and a non-contiguous collection takes the same path")
    func realToken() {
        let token = Array(PipelineFixture.rawToken.utf8)
        #expect(BearerToken.isToken68(token))
        #expect(BearerToken.isToken68(token.reversed()) == Self.reference(token.reversed()))
        #expect(BearerToken.isToken68(PipelineFixture.rawToken.utf8))
    }

    @Test("the first Authorization value is used only when it is the only one, in any letter case")
    func authorizationCount() throws {
        var headers = HTTPFields()
        headers.add("Accept", "application/json")
        headers.add("AUTHORIZATION", "Bearer abc")
        #expect(try BearerToken.extract(headers: headers, query: nil, maxTokenBytes: 100).value == "abc")
        headers.add("authorization", "Bearer def")
        #expect {
            try BearerToken.extract(headers: headers, query: nil, maxTokenBytes: 100)
        } throws: { ($0 as? TenantError)?.status == 400 }
    }

    @Test("DPoP scheme (RFC 9449 §7.1): any letter case, with exactly one DPoP proof field beside it")
    func dpopScheme() throws {
        for scheme in ["DPoP", "dpop", "DPOP"] {
            let presented = try BearerToken.extract(
                headers: HTTPFields([("Authorization", "\(scheme) abc.def.ghi"), ("DPoP", "proof")]), query: nil,
                maxTokenBytes: 100)
            #expect(presented == PresentedToken("abc.def.ghi", scheme: .dpop))
        }
        let bearer = try BearerToken.extract(
            headers: HTTPFields([("Authorization", "Bearer abc")]), query: nil, maxTokenBytes: 100)
        #expect(bearer.scheme == .bearer)
        for proofs in [0, 2] {
            let headers = HTTPFields(
                [("Authorization", "DPoP abc")] + Array(repeating: ("dpop", "proof"), count: proofs))
            #expect {
                try BearerToken.extract(headers: headers, query: nil, maxTokenBytes: 100)
            } throws: { error in
                guard let error = error as? TenantError else { return false }
                return error.status == 401
                    && error.headers["WWW-Authenticate"]?.hasPrefix("DPoP error=\"invalid_dpop_proof\"") == true
            }
        }
    }

    @Test("a token in the query string is refused with an RFC 6750 invalid_request challenge")
    func queryTokenChallenge() {
        #expect {
            try BearerToken.extract(
                headers: HTTPFields([("Authorization", "Bearer abc")]), query: "access_token=abc", maxTokenBytes: 100)
        } throws: { error in
            guard let error = error as? TenantError else { return false }
            return error.status == 400
                && error.headers["WWW-Authenticate"]?.hasPrefix("Bearer error=\"invalid_request\"") == true
        }
    }
}
