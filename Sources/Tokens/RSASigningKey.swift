import COpenSSL
import GatewayCore

#if canImport(Glibc)
    import Glibc
#endif

/// An RSA private key that mints RS256 tokens: development tokens (`myorg-gateway token`, the emulated tenant)
/// and tests. Never a real tenant's key.
///
/// The `kid` is the RFC 7638 thumbprint of the public key, so the same key always publishes the same `kid`.
public final class RSASigningKey: @unchecked Sendable {
    // Safety: `pkey` is set once in init and never mutated or exposed; each signature uses its own EVP_MD_CTX,
    // and OpenSSL 3 allows concurrent operations on one immutable EVP_PKEY. Freed only in deinit.

    let pkey: OpaquePointer
    /// The public half, ready to put in a ``JWKSKeySet``.
    public let publicKey: RSAPublicKey

    /// RFC 7638 thumbprint of the public key, used as `kid`.
    public var kid: String { publicKey.kid }
    public var bits: Int { publicKey.bits }

    /// Takes ownership of `pkey`, which must be an RSA private key.
    private init(owning pkey: OpaquePointer) throws(TokenKeyError) {
        guard EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA else {
            EVP_PKEY_free(pkey)
            throw TokenKeyError("not an RSA key")
        }
        guard let n = OpenSSL.bigEndianParameter(pkey, OSSL_PKEY_PARAM_RSA_N),
            let e = OpenSSL.bigEndianParameter(pkey, OSSL_PKEY_PARAM_RSA_E)
        else {
            EVP_PKEY_free(pkey)
            throw TokenKeyError("cannot read the RSA public numbers")
        }
        let thumbprint = Base64URL.encode(SHA256Digest(RSAPublicKey.thumbprintInput(modulus: n, exponent: e)).bytes)
        do {
            self.publicKey = try RSAPublicKey(kid: thumbprint, modulus: n, exponent: e)
        } catch {
            EVP_PKEY_free(pkey)
            throw error
        }
        self.pkey = pkey
    }

    deinit { EVP_PKEY_free(pkey) }

    /// A new key with public exponent 65537. `bits` must be 2048...8192: the verifier refuses smaller keys.
    public static func generate(bits: Int = 2048) throws(TokenKeyError) -> RSASigningKey {
        guard (RSAPublicKey.minimumBits...RSAPublicKey.maximumBits).contains(bits) else {
            throw TokenKeyError("RSA key size must be \(RSAPublicKey.minimumBits)...\(RSAPublicKey.maximumBits) bits")
        }
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, "RSA", nil) else {
            throw TokenKeyError("RSA is not available: \(OpenSSL.takeError())")
        }
        defer { EVP_PKEY_CTX_free(ctx) }
        var pkey: OpaquePointer? = nil
        guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, Int32(bits)) == 1,
            EVP_PKEY_generate(ctx, &pkey) == 1, let pkey
        else { throw TokenKeyError("RSA key generation failed: \(OpenSSL.takeError())") }
        return try RSASigningKey(owning: pkey)
    }

    /// Reads an unencrypted PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    /// Encrypted keys are refused rather than prompting for a passphrase on the terminal.
    public convenience init(pem: String) throws(TokenKeyError) {
        let bytes = Array(pem.utf8)
        // A writable memory BIO that copies the text: a BIO_new_mem_buf over `bytes` would point into an array
        // whose buffer Swift only guarantees for the duration of the call that passes it.
        guard let bio = BIO_new(BIO_s_mem()) else { throw TokenKeyError("cannot allocate a BIO") }
        defer { BIO_free(bio) }
        let written = bytes.withUnsafeBytes { BIO_write(bio, $0.baseAddress, Int32($0.count)) }
        guard written == Int32(bytes.count) else { throw TokenKeyError("cannot buffer the PEM text") }
        // A non-capturing callback that supplies no passphrase: OpenSSL's default would read the terminal.
        let noPassphrase:
            @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32, UnsafeMutableRawPointer?) ->
                Int32 = { _, _, _, _ in 0 }
        guard let pkey = PEM_read_bio_PrivateKey(bio, nil, noPassphrase, nil) else {
            throw TokenKeyError("not an unencrypted PEM private key (\(OpenSSL.takeError()))")
        }
        try self.init(owning: pkey)
    }

    /// Reads a PEM private key file (at most 64 KiB).
    public static func load(path: String) throws(TokenKeyError) -> RSASigningKey {
        try RSASigningKey(pem: try KeyFile.read(path: path, limit: 64 * 1024))
    }

    /// The private key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    public func pkcs8PEM() throws(TokenKeyError) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { throw TokenKeyError("cannot allocate a BIO") }
        defer { BIO_free(bio) }
        guard PEM_write_bio_PrivateKey(bio, pkey, nil, nil, 0, nil, nil) == 1 else {
            throw TokenKeyError("cannot write the private key: \(OpenSSL.takeError())")
        }
        return OpenSSL.drain(bio)
    }

    /// Writes ``pkcs8PEM()`` to `path` with mode 0600 (also when the file existed with a wider mode).
    public func save(path: String) throws(TokenKeyError) {
        try KeyFile.writePrivate(path: path, contents: try pkcs8PEM())
    }

    /// The public JWK: `kty`, `kid`, `use: sig`, `alg: RS256`, `n`, `e`.
    public var publicJWK: JSONValue { publicKey.jwk }

    /// `{"keys":[<publicJWK>]}` as compact JSON.
    public func jwksJSON() -> String { JSONValue.object([("keys", [publicJWK])]).serialized() }

    /// A key set holding only this key's public half.
    public func keySet() -> JWKSKeySet { JWKSKeySet(keys: [publicKey]) }

    /// `{"alg":"RS256","typ":<typ>,"kid":<kid>}`, the header this key's tokens normally carry.
    public func header(typ: String = "at+jwt") -> JSONValue {
        ["alg": "RS256", "typ": .string(typ), "kid": .string(kid)]
    }

    /// A compact JWS: base64url(header JSON) . base64url(claims JSON) . base64url(RS256 signature).
    ///
    /// Both values are serialized as given (member order kept, even duplicate members), so tests can build
    /// tokens that a verifier must refuse; ``header(typ:)`` gives the ordinary header.
    public func sign(header: JSONValue, claims: JSONValue) throws(TokenKeyError) -> String {
        try sign(headerJSON: header.serializedBytes(), claimsJSON: claims.serializedBytes())
    }

    /// Like ``sign(header:claims:)`` over raw JSON bytes (or any bytes).
    public func sign(headerJSON: [UInt8], claimsJSON: [UInt8]) throws(TokenKeyError) -> String {
        let signingInput = Base64URL.encode(headerJSON) + "." + Base64URL.encode(claimsJSON)
        return signingInput + "." + Base64URL.encode(try signature(over: Array(signingInput.utf8)))
    }

    /// The raw RS256 signature of `message`.
    public func signature(over message: [UInt8]) throws(TokenKeyError) -> [UInt8] {
        guard let ctx = EVP_MD_CTX_new() else { throw TokenKeyError("cannot allocate a digest context") }
        defer { EVP_MD_CTX_free(ctx) }
        var length = 0
        guard EVP_DigestSignInit(ctx, nil, EVP_sha256(), nil, pkey) == 1,
            EVP_DigestSign(ctx, nil, &length, message, message.count) == 1
        else { throw TokenKeyError("cannot start signing: \(OpenSSL.takeError())") }
        var out = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(ctx, &out, &length, message, message.count) == 1 else {
            throw TokenKeyError("signing failed: \(OpenSSL.takeError())")
        }
        return Array(out.prefix(length))
    }
}

/// The two file operations key handling needs; kept here so the rest of the module stays free of I/O.
enum KeyFile {
    static func read(path: String, limit: Int) throws(TokenKeyError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TokenKeyError("cannot open key file '\(path)': errno \(errno)") }
        defer { close(fd) }
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TokenKeyError("cannot read key file '\(path)': errno \(errno)")
            }
            if n == 0 { break }
            data.append(contentsOf: chunk[..<n])
            guard data.count <= limit else { throw TokenKeyError("key file '\(path)' is larger than \(limit) bytes") }
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func writePrivate(path: String, contents: String) throws(TokenKeyError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw TokenKeyError("cannot create key file '\(path)': errno \(errno)") }
        defer { close(fd) }
        // O_CREAT's mode does not apply to an existing file: narrow it before a byte of key is written.
        guard fchmod(fd, 0o600) == 0 else { throw TokenKeyError("cannot chmod key file '\(path)': errno \(errno)") }
        let bytes = Array(contents.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TokenKeyError("cannot write key file '\(path)': errno \(errno)")
            }
            written += n
        }
        guard fsync(fd) == 0 else { throw TokenKeyError("cannot sync key file '\(path)': errno \(errno)") }
    }
}
