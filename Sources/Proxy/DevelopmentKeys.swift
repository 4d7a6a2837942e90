import Foundation
import GatewayCore
import Tokens

/// Development signing keys and tokens: never valid for a real tenant (the key is local and its JWKS is only
/// what the emulator or a local gateway configuration publishes).
enum DevelopmentKeys {
    static func loadOrCreate(path: String) throws -> RSASigningKey {
        if FileManager.default.fileExists(atPath: path) { return try RSASigningKey.load(path: path) }
        let key = try RSASigningKey.generate()
        try key.save(path: path)
        return key
    }

    /// An access token in Auth0's dialect for the My Organization API of `domain`.
    static func mint(
        key: RSASigningKey, org: String, scope: String, client: String, ttl: Int, domain: String, amr: [String]?,
        subject: String, now: Int64
    ) throws -> String {
        var claims: [(String, JSONValue)] = [
            ("iss", .string("https://\(domain)/")),
            ("sub", .string(subject)),
            ("aud", .array([.string("https://\(domain)/my-org/")])),
            ("iat", .number(Double(now))),
            ("exp", .number(Double(now + Int64(ttl)))),
            ("scope", .string(scope)),
            ("org_id", .string(org)),
            ("azp", .string(client)),
            ("jti", .string(Base64URL.encode((0..<12).map { _ in UInt8.random(in: 0...255) }))),
        ]
        if let amr { claims.append(("amr", .array(amr.map { .string($0) }))) }
        return try key.sign(header: key.header(typ: "JWT"), claims: .object(claims))
    }
}
