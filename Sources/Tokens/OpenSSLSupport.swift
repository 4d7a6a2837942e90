import COpenSSL

/// Why a key could not be imported, generated, loaded or used. `detail` names the problem, never key bytes.
public struct TokenKeyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var detail: String

    public init(_ detail: String) { self.detail = detail }

    public var description: String { detail }
}

/// A SHA-256 digest as four words, so that it hashes and compares without an allocation.
struct SHA256Digest: Hashable, Sendable {
    var w0: UInt64
    var w1: UInt64
    var w2: UInt64
    var w3: UInt64

    init(_ bytes: UnsafeRawBufferPointer) {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let ok = withUnsafeMutableBytes(of: &words) { out in
            out.withMemoryRebound(to: UInt8.self) { digest in
                var length: UInt32 = 0
                // The fetched digest: the legacy one-shot `SHA256()` resolves the algorithm by name every call.
                return EVP_Digest(
                    bytes.baseAddress, bytes.count, digest.baseAddress, &length, FetchedDigest.sha256.md, nil)
                    == 1 && length == 32
            }
        }
        // Only allocation failure makes SHA-256 fail: fall back to the one-shot, which needs no context.
        if !ok {
            OpenSSL.clearErrors()
            withUnsafeMutableBytes(of: &words) { out in
                out.withMemoryRebound(to: UInt8.self) { digest in
                    _ = SHA256(bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, digest.baseAddress)
                }
            }
        }
        (w0, w1, w2, w3) = words
    }

    init(words: (UInt64, UInt64, UInt64, UInt64)) {
        (w0, w1, w2, w3) = words
    }

    /// One word: a SHA-256 output is uniformly distributed, so any 64 of its bits spread keys over buckets as
    /// well as all 256 do, and finding many inputs whose digests share those bits is as hard as a 64-bit
    /// preimage search. Equality still compares all four words.
    func hash(into hasher: inout Hasher) { hasher.combine(w0) }

    init(_ bytes: [UInt8]) {
        self = bytes.withUnsafeBytes { SHA256Digest($0) }
    }

    var bytes: [UInt8] {
        var words = (w0, w1, w2, w3)
        return withUnsafeBytes(of: &words) { Array($0) }
    }
}

/// An algorithm fetched from the default provider once per process.
///
/// OpenSSL 3 resolves a legacy `EVP_sha256()` or a one-shot `SHA256()` by name on every use, which takes the
/// provider store's read lock each time; a fetched `EVP_MD` skips that.
final class FetchedDigest: @unchecked Sendable {
    // Safety: a fetched EVP_MD is an immutable, reference-counted method table that OpenSSL documents as safe to
    // share between threads; it is never freed (process lifetime).
    let md: OpaquePointer

    init(_ name: String) {
        guard let md = EVP_MD_fetch(nil, name, nil) else {
            fatalError("OpenSSL has no \(name) digest: \(OpenSSL.takeError())")
        }
        self.md = md
    }

    static let sha256 = FetchedDigest("SHA2-256")
}

/// SHA-256 with one reusable context: for the per-loop cache, which hashes every token it sees.
/// Not Sendable: one per owner, used on one thread at a time.
final class SHA256Context {
    private let ctx: OpaquePointer

    init() {
        guard let ctx = EVP_MD_CTX_new() else { fatalError("cannot allocate EVP_MD_CTX") }
        self.ctx = ctx
    }

    deinit { EVP_MD_CTX_free(ctx) }

    func digest(_ bytes: UnsafeRawBufferPointer) -> SHA256Digest {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let ok = withUnsafeMutableBytes(of: &words) { out -> Bool in
            var length: UInt32 = 0
            return EVP_DigestInit_ex2(ctx, FetchedDigest.sha256.md, nil) == 1
                && EVP_DigestUpdate(ctx, bytes.baseAddress, bytes.count) == 1
                && EVP_DigestFinal_ex(ctx, out.baseAddress?.assumingMemoryBound(to: UInt8.self), &length) == 1
                && length == 32
        }
        // Only allocation failure can make SHA-256 fail; the one-shot path reports that the same way.
        guard ok else {
            OpenSSL.clearErrors()
            return SHA256Digest(bytes)
        }
        return SHA256Digest(words: words)
    }
}

enum OpenSSL {
    /// The first queued error as OpenSSL's text (library and reason codes, no data), then an empty queue.
    ///
    /// The queue is per thread and a loop thread serves many connections: a failure left queued would be
    /// reported later against an unrelated operation, so every failure path ends here or in `clearErrors`.
    static func takeError() -> String {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return "no OpenSSL error queued" }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func clearErrors() { ERR_clear_error() }

    /// The unsigned big-endian bytes of a BIGNUM parameter of `pkey` ("n", "e"), without leading zeros.
    static func bigEndianParameter(_ pkey: OpaquePointer, _ name: String) -> [UInt8]? {
        var bn: OpaquePointer? = nil
        guard EVP_PKEY_get_bn_param(pkey, name, &bn) == 1, let bn else {
            clearErrors()
            return nil
        }
        defer { BN_free(bn) }
        let count = (Int(BN_num_bits(bn)) + 7) / 8
        var out = [UInt8](repeating: 0, count: count)
        guard BN_bn2bin(bn, &out) == count else {
            clearErrors()
            return nil
        }
        return out
    }

    /// Everything written to a memory BIO, as text.
    static func drain(_ bio: OpaquePointer) -> String {
        let pending = Int(cshim_BIO_pending(bio))
        var out = [UInt8](repeating: 0, count: pending)
        let read = out.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, Int32($0.count)) }
        return String(decoding: out.prefix(max(0, Int(read))), as: UTF8.self)
    }
}

/// A literal as `const char *` for OpenSSL's parameter builders, which keep the name pointers rather than copies:
/// static storage, never a bridged Swift String (that lives only for the call).
func staticCString(_ s: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}
