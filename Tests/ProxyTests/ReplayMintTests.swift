import GatewayCore
import Testing
import Tokens

@testable import Proxy

@Suite("Replay: fresh tokens from recorded claims")
struct ReplayMintTests {
    @Test("a minted token keeps the recorded claims and lifetime, re-dated to now, and verifies with the key")
    func mintKeepsClaims() throws {
        let key = try RSASigningKey.generate()
        let recorded: JSONValue = [
            "iss": "https://acme.example/", "sub": "auth0|1", "org_id": "org_1", "scope": "read:my_org:details",
            "iat": 1_000, "exp": 1_300, "nbf": 1_000,
        ]
        let token = try #require(ReplayCommand.mint(recorded, key: key))
        let verified = try TokenVerifier().verify(token, keys: key.keySet()).get()
        let claims = verified.claims
        #expect(claims["sub"] == "auth0|1")
        #expect(claims["org_id"] == "org_1")
        #expect(claims["nbf"] == nil)
        let iat = try #require(claims["iat"]?.int64Value)
        let exp = try #require(claims["exp"]?.int64Value)
        #expect(exp - iat == 300)
        #expect(iat > 1_700_000_000)
    }

    @Test("claims that are not an object mint nothing")
    func notAnObject() throws {
        #expect(ReplayCommand.mint("just a string", key: try RSASigningKey.generate()) == nil)
    }
}
