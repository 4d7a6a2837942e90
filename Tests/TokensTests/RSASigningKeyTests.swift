import COpenSSL
import GatewayCore
import Glibc
import TestSupport
import Testing

@testable import Tokens

@Suite("RSA signing keys")
struct RSASigningKeyTests {
    /// A fresh private directory for key files, removed by the caller.
    static func temporaryDirectory() throws -> String {
        var template = Array("/tmp/tokens-test-XXXXXX".utf8CString)
        guard let path = mkdtemp(&template) else { throw TokenKeyError("mkdtemp failed") }
        return String(cString: path)
    }

    static func mode(of path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o777
    }

    @Test("a generated key signs tokens its own JWKS verifies")
    func signAndVerify() throws {
        let key = TestKeys.primary
        #expect(key.bits == 2048)
        let token = try key.sign(header: key.header(typ: "JWT"), claims: ["sub": "x", "exp": 1])
        let keys = try JWKSKeySet.parse(key.jwksJSON())
        let verified = try TokenVerifier().verify(token, keys: keys).get()
        #expect(verified.header == ["alg": "RS256", "typ": "JWT", "kid": .string(key.kid)])
        #expect(verified.claims == ["sub": "x", "exp": 1])
    }

    @Test("sign serializes header and claims exactly as given")
    func signIsVerbatim() throws {
        let header: JSONValue = .object([("kid", "k"), ("alg", "RS256"), ("alg", "x")])
        let token = try TestKeys.primary.sign(header: header, claims: .array([1, 2]))
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        #expect(parts.count == 3)
        #expect(Base64URL.decode(parts[0]) == header.serializedBytes())
        #expect(Base64URL.decode(parts[1]) == Array("[1,2]".utf8))
        #expect(Base64URL.decode(parts[2])?.count == 256)
    }

    @Test("the public JWK has exactly kty, kid, use, alg, n and e, and kid is the RFC 7638 thumbprint")
    func publicJWK() throws {
        let key = TestKeys.primary
        let jwk = key.publicJWK
        #expect(jwk.objectValue?.map(\.0).sorted() == ["alg", "e", "kid", "kty", "n", "use"])
        #expect(jwk["kty"] == "RSA")
        #expect(jwk["use"] == "sig")
        #expect(jwk["alg"] == "RS256")
        #expect(jwk["e"] == "AQAB")
        #expect(Base64URL.decode(jwk["n"]?.stringValue ?? "")?.count == 256)
        #expect(jwk["kid"]?.stringValue == key.kid)
        #expect(key.kid == key.publicKey.thumbprint)
        #expect(key.kid.utf8.count == 43)
        #expect(key.kid != TestKeys.secondary.kid)
        let jwks = try JSONValue.parse(key.jwksJSON())
        #expect(jwks == .object([("keys", [jwk])]))
    }

    @Test("a PKCS#1 PEM (BEGIN RSA PRIVATE KEY) loads too")
    func pkcs1() throws {
        let bio = try #require(BIO_new(BIO_s_mem()))
        defer { BIO_free(bio) }
        // PEM_write_bio_PrivateKey_traditional writes the algorithm-specific (PKCS#1) form for RSA.
        #expect(PEM_write_bio_PrivateKey_traditional(bio, TestKeys.primary.pkey, nil, nil, 0, nil, nil) == 1)
        let pem = OpenSSL.drain(bio)
        #expect(pem.hasPrefix("-----BEGIN RSA PRIVATE KEY-----"))
        #expect(try RSASigningKey(pem: pem).kid == TestKeys.primary.kid)
        #expect(ERR_peek_error() == 0)
    }

    @Test("generating a key leaves no OpenSSL error behind")
    func generateIsClean() throws {
        let key = try RSASigningKey.generate()
        #expect(ERR_peek_error() == 0)
        #expect(key.kid != TestKeys.primary.kid)
        #expect((try? TokenVerifier().verify(TestKeys.token(key: key), keys: key.keySet()).get()) != nil)
    }

    @Test("PKCS#8 PEM round-trips to the same key")
    func pemRoundTrip() throws {
        let pem = try TestKeys.primary.pkcs8PEM()
        #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        let loaded = try RSASigningKey(pem: pem)
        #expect(ERR_peek_error() == 0)
        #expect(loaded.kid == TestKeys.primary.kid)
        let token = try loaded.sign(header: loaded.header(), claims: TestKeys.claims())
        #expect((try? TokenVerifier().verify(token, keys: TestKeys.keySet).get()) != nil)
    }

    @Test("save writes mode 0600, also over a wider existing file, and load reads it back")
    func saveAndLoad() throws {
        let dir = try Self.temporaryDirectory()
        defer {
            unlink(dir + "/key.pem")
            rmdir(dir)
        }
        let path = dir + "/key.pem"
        let fd = open(path, O_WRONLY | O_CREAT, 0o644)
        #expect(fd >= 0)
        close(fd)
        chmod(path, 0o644)
        #expect(Self.mode(of: path) == 0o644)
        try TestKeys.primary.save(path: path)
        #expect(Self.mode(of: path) == 0o600)
        let loaded = try RSASigningKey.load(path: path)
        #expect(loaded.kid == TestKeys.primary.kid)
    }

    @Test("loading a missing file names the path and errno")
    func missingFile() {
        #expect {
            _ = try RSASigningKey.load(path: "/nonexistent/key.pem")
        } throws: { error in
            (error as? TokenKeyError)?.detail.hasPrefix("cannot open key file '/nonexistent/key.pem'") == true
        }
    }

    @Test("an encrypted PEM is refused without asking for a passphrase")
    func encryptedPEM() throws {
        let bio = try #require(BIO_new(BIO_s_mem()))
        defer { BIO_free(bio) }
        var passphrase = Array("secret".utf8)
        let written = PEM_write_bio_PKCS8PrivateKey(
            bio, TestKeys.primary.pkey, EVP_aes_256_cbc(), &passphrase, Int32(passphrase.count), nil, nil)
        #expect(written == 1)
        let pem = OpenSSL.drain(bio)
        #expect(pem.hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        #expect(throws: TokenKeyError.self) { _ = try RSASigningKey(pem: pem) }
        #expect(ERR_peek_error() == 0)
    }

    @Test("a non-RSA private key is refused")
    func nonRSAKey() throws {
        let ctx = try #require(EVP_PKEY_CTX_new_from_name(nil, "ED25519", nil))
        defer { EVP_PKEY_CTX_free(ctx) }
        var pkey: OpaquePointer? = nil
        #expect(EVP_PKEY_keygen_init(ctx) == 1)
        #expect(EVP_PKEY_generate(ctx, &pkey) == 1)
        let ed = try #require(pkey)
        defer { EVP_PKEY_free(ed) }
        let bio = try #require(BIO_new(BIO_s_mem()))
        defer { BIO_free(bio) }
        #expect(PEM_write_bio_PrivateKey(bio, ed, nil, nil, 0, nil, nil) == 1)
        #expect {
            _ = try RSASigningKey(pem: OpenSSL.drain(bio))
        } throws: { error in
            (error as? TokenKeyError)?.detail == "not an RSA key"
        }
    }

    @Test("garbage PEM and key sizes outside 2048...8192 are refused", arguments: [1024, 2047, 8200])
    func refusals(bits: Int) {
        #expect(throws: TokenKeyError.self) { _ = try RSASigningKey.generate(bits: bits) }
        #expect(throws: TokenKeyError.self) { _ = try RSASigningKey(pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n") }
        #expect(ERR_peek_error() == 0)
    }
}
