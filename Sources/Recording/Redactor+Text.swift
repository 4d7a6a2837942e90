import GatewayCore

extension Redactor {
    /// A request path as logs and recordings keep it: a JWT pasted into it (a client that put its token in the URL,
    /// a probe) is replaced like one anywhere else. Paths are on every log line, so only one holding `eyJ` (how
    /// every JWS and JWE begins) is scanned.
    public static func redact(path: String) -> String {
        var utf8 = path.utf8.makeIterator()
        var lastThree: UInt32 = 0
        while let byte = utf8.next() {
            lastThree = (lastThree << 8 | UInt32(byte)) & 0xFF_FFFF
            if lastThree == 0x65_794A { return Redactor().redact(text: path) }
        }
        return path
    }

    /// Replaces secrets found in free text (see the type's documentation for the patterns).
    public func redact(text: String) -> String {
        var scanner = SecretScanner(bytes: Array(text.utf8))
        guard scanner.mightHoldSecrets() else { return text }
        return scanner.run()
    }
}

/// A single left-to-right pass over UTF-8 bytes; each rule either consumes a secret and writes the marker, or
/// copies one byte. Name lookups are bounded, so the pass is linear in the input.
struct SecretScanner {
    let b: [UInt8]
    var out: [UInt8] = []
    var i = 0
    let marker = Array(Redactor.marker.utf8)

    init(bytes: [UInt8]) {
        b = bytes
        out.reserveCapacity(bytes.count)
    }

    /// Cheap pre-check: text without `=`, `:`, `.`, a space, `-`, or the start of a tag (`<`, `\u003c`,
    /// `&lt;`) holds none of the patterns.
    func mightHoldSecrets() -> Bool {
        b.contains {
            $0 == 0x3D || $0 == 0x3A || $0 == 0x2E || $0 == 0x20 || $0 == 0x2D || $0 == 0x3C || $0 == 0x5C
                || $0 == 0x26
        }
    }

    mutating func run() -> String {
        while i < b.count {
            if tryPEM() || tryJWT() || tryKeyMaterialElement() || tryScheme() || tryQuotedName() || tryBareName() {
                continue
            }
            out.append(b[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isB64URL(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x5F
    }

    static func isNameChar(_ c: UInt8) -> Bool { isB64URL(c) || c == 0x2E || c == 0x5B || c == 0x5D }

    static func isCredentialChar(_ c: UInt8) -> Bool {
        isB64URL(c) || c == 0x2E || c == 0x7E || c == 0x2B || c == 0x2F || c == 0x3D
    }

    /// Whether `word` (lowercase when `caseInsensitive`) is at `j`. A literal: an array of its bytes per call was
    /// an allocation at every position the scanner tried.
    func matches(_ word: StaticString, at j: Int, caseInsensitive: Bool = false) -> Bool {
        let w = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard j + w.count <= b.count else { return false }
        for k in 0..<w.count {
            var c = b[j + k]
            if caseInsensitive, c >= 0x41 && c <= 0x5A { c |= 0x20 }
            if c != w[k] { return false }
        }
        return true
    }

    func find(_ word: StaticString, from j: Int) -> Int? {
        let w = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard !w.isEmpty, b.count >= w.count else { return nil }
        var k = j
        while k + w.count <= b.count {
            if b[k] == w[0] && matches(word, at: k) { return k }
            k += 1
        }
        return nil
    }

    /// `-----BEGIN …-----` up to the end of the matching `-----END …-----` (or the end of the text).
    mutating func tryPEM() -> Bool {
        guard b[i] == 0x2D, matches("-----BEGIN", at: i) else { return false }
        var end = b.count
        if let e = find("-----END", from: i + 10) {
            end = find("-----", from: e + 8).map { $0 + 5 } ?? b.count
        }
        out += marker
        i = end
        return true
    }

    /// `eyJ<b64url>.<b64url>[.<b64url>…]`: a JWS or JWE compact serialization (its header is a JSON object).
    mutating func tryJWT() -> Bool {
        guard b[i] == UInt8(ascii: "e"), matches("eyJ", at: i), i == 0 || !Self.isB64URL(b[i - 1]) else { return false }
        var j = i
        while j < b.count && Self.isB64URL(b[j]) { j += 1 }
        guard j - i >= 8, j < b.count, b[j] == 0x2E else { return false }
        var parts = 1
        while j < b.count && b[j] == 0x2E {
            var k = j + 1
            while k < b.count && Self.isB64URL(b[k]) { k += 1 }
            if k == j + 1 && parts >= 2 { break }
            parts += 1
            j = k
        }
        guard parts >= 2 else { return false }
        out += marker
        i = j
        return true
    }

    /// `Bearer <credential>`, `Basic <credential>`, `DPoP <credential>` at a word boundary, when what follows the
    /// scheme reads as a credential (``looksLikeCredential(_:_:)``) rather than prose or a challenge's auth-param.
    mutating func tryScheme() -> Bool {
        guard i == 0 || !Self.isNameChar(b[i - 1]) else { return false }
        for scheme: StaticString in ["bearer", "basic", "dpop"] where matches(scheme, at: i, caseInsensitive: true) {
            var j = i + scheme.utf8CodeUnitCount
            guard j < b.count, b[j] == 0x20 else { continue }
            while j < b.count && b[j] == 0x20 { j += 1 }
            var k = j
            while k < b.count && Self.isCredentialChar(b[k]) { k += 1 }
            // A full stop after the run ends the sentence; it is not part of a token68.
            var end = k
            while end > j && b[end - 1] == 0x2E { end -= 1 }
            guard looksLikeCredential(j, end) else { continue }
            out += b[i..<j]
            out += marker
            i = end
            return true
        }
        return false
    }

    /// Whether `b[j..<end]`, the run after an authentication scheme, is a credential.
    ///
    /// Recorded bodies and headers quote the schemes in prose ("The DPoP scheme was used …") and in challenges
    /// (`Bearer error="invalid_token"`); redacting the next word there hides the message without protecting
    /// anything. A token68 (RFC 9110 §11.2) has `=` only as trailing padding, so `name=value` or `name="…"` is an
    /// auth-param. A short run of letters shaped like a word (`scheme`, `Token`, `token-based`) is prose.
    /// Anything else of 4 bytes or more, and every run of 20 or more, is treated as a credential: random
    /// tokens of that length almost never look like one plain word.
    func looksLikeCredential(_ j: Int, _ end: Int) -> Bool {
        let length = end - j
        guard length >= 4 else { return false }
        if let eq = b[j..<end].firstIndex(of: 0x3D) {
            if b[eq..<end].contains(where: { $0 != 0x3D }) { return false }
            if end < b.count && b[end] == 0x22 { return false }
        }
        if length >= 20 { return true }
        var partStart = true
        for c in b[j..<end] {
            switch c {
            case 0x61...0x7A:
                partStart = false
            case 0x41...0x5A where partStart:
                partStart = false
            case 0x2D where !partStart:
                partStart = true
            default:
                return true
            }
        }
        return partStart
    }

    // MARK: Key material in XML

    /// Local names (lowercased) of XML elements whose content is key material: XML-DSig `KeyInfo` children as
    /// found in SAML and WS-Federation metadata (`<ds:X509Certificate>MIIC…</ds:X509Certificate>`).
    static let keyMaterialElements: Set<String> = [
        "x509data", "x509certificate", "x509crl", "x509ski", "keyvalue", "rsakeyvalue", "dsakeyvalue", "eckeyvalue",
        "derencodedkeyvalue", "privatekey",
    ]

    /// `<[prefix:]X509Certificate …>content</[prefix:]X509Certificate>` and the other ``keyMaterialElements``:
    /// the tags are kept, the content becomes the marker; with no closing tag (a truncated body) everything to
    /// the end of the text goes.
    ///
    /// XML reaches the redactor inside JSON strings, so `<` may also be written `\u003c`, `&lt;` or a numeric
    /// reference, `>` likewise, and the `/` of a closing tag `\/`.
    mutating func tryKeyMaterialElement() -> Bool {
        guard b[i] == 0x3C || b[i] == 0x5C || b[i] == 0x26, let open = angleLength(at: i, close: false) else {
            return false
        }
        var j = i + open
        let nameStart = j
        while j < b.count && j - nameStart <= 128 && Self.isXMLNameChar(b[j]) { j += 1 }
        guard j > nameStart, let local = localName(nameStart, j), Self.keyMaterialElements.contains(local) else {
            return false
        }
        // The rest of the start tag: attributes up to `>`; a self-closing tag has no content.
        var k = j
        var closeLength: Int?
        while k < b.count && k - j <= 2048 {
            if let n = angleLength(at: k, close: true) {
                closeLength = n
                break
            }
            k += 1
        }
        guard let closeLength, k == j || !Self.isXMLNameChar(b[j]) else { return false }
        if k > j && b[k - 1] == 0x2F { return false }
        let contentStart = k + closeLength
        out += b[i..<contentStart]
        out += marker
        i = closingTag(local, from: contentStart) ?? b.count
        return true
    }

    /// The position of the first `</[prefix:]name>` (in any of the escaped forms) at or after `from`.
    private func closingTag(_ local: String, from: Int) -> Int? {
        var p = from
        while p < b.count {
            if b[p] == 0x3C || b[p] == 0x5C || b[p] == 0x26, let open = angleLength(at: p, close: false) {
                var q = p + open
                if q < b.count && b[q] == 0x5C { q += 1 }
                if q < b.count && b[q] == 0x2F {
                    let nameStart = q + 1
                    var e = nameStart
                    while e < b.count && e - nameStart <= 128 && Self.isXMLNameChar(b[e]) { e += 1 }
                    if localName(nameStart, e) == local {
                        while e < b.count && (b[e] == 0x20 || b[e] == 0x09 || b[e] == 0x0A || b[e] == 0x0D) { e += 1 }
                        if angleLength(at: e, close: true) != nil { return p }
                    }
                }
            }
            p += 1
        }
        return nil
    }

    /// The lowercased part of `b[from..<to]` after its last `:` (the namespace prefix); nil when empty.
    private func localName(_ from: Int, _ to: Int) -> String? {
        var start = from
        for p in from..<to where b[p] == 0x3A { start = p + 1 }
        guard start < to else { return nil }
        return String(decoding: b[start..<to], as: UTF8.self).asciiLowercased
    }

    static func isXMLNameChar(_ c: UInt8) -> Bool { isB64URL(c) || c == 0x2E || c == 0x3A }

    /// The length of `<` (or `>` when `close`) written plainly, as a JSON `\u` escape, or as an XML reference.
    private func angleLength(at p: Int, close: Bool) -> Int? {
        guard p < b.count else { return nil }
        if b[p] == (close ? 0x3E : 0x3C) { return 1 }
        // Most `\` and `&` in text start something else (`\"`, `&amp;`): one byte decides before any compare.
        guard p + 3 < b.count, b[p] == 0x5C || b[p] == 0x26 else { return nil }
        for form in close ? Self.closeForms : Self.openForms where b[p + 1] == form[1] {
            guard p + form.count <= b.count else { continue }
            var k = 0
            while k < form.count {
                var c = b[p + k]
                if c >= 0x41 && c <= 0x5A { c |= 0x20 }
                if c != form[k] { break }
                k += 1
            }
            if k == form.count { return form.count }
        }
        return nil
    }

    private static let openForms: [[UInt8]] = ["\\u003c", "&lt;", "&#60;", "&#x3c;"].map { Array($0.utf8) }
    private static let closeForms: [[UInt8]] = ["\\u003e", "&gt;", "&#62;", "&#x3e;"].map { Array($0.utf8) }

    /// `"secret_name"` followed by `:`: the member's value is replaced (a string to its closing quote or the end
    /// of the text, anything else up to the next delimiter or its matching bracket).
    mutating func tryQuotedName() -> Bool {
        guard b[i] == 0x22 else { return false }
        var j = i + 1
        while j < b.count && j - i <= 128 && b[j] != 0x22 && b[j] != 0x5C { j += 1 }
        guard j < b.count, b[j] == 0x22, j > i + 1 else { return false }
        let name = String(decoding: b[(i + 1)..<j], as: UTF8.self)
        var k = j + 1
        while k < b.count && (b[k] == 0x20 || b[k] == 0x09) { k += 1 }
        guard k < b.count, b[k] == 0x3A, Redactor.isSecretName(name) else { return false }
        k += 1
        while k < b.count && (b[k] == 0x20 || b[k] == 0x09 || b[k] == 0x0A || b[k] == 0x0D) { k += 1 }
        out += b[i..<k]
        if k < b.count, b[k] == UInt8(ascii: "n") && matches("null", at: k) {
            i = k
            return true
        }
        out.append(0x22)
        out += marker
        out.append(0x22)
        i = skipValue(from: k)
        return true
    }

    /// `secret_name=value` (forms, queries) or `secret_name: value` (headers, YAML-ish text) at a word boundary.
    mutating func tryBareName() -> Bool {
        guard Self.isNameChar(b[i]), i == 0 || !Self.isNameChar(b[i - 1]) else { return false }
        var j = i
        while j < b.count && j - i <= 128 && Self.isNameChar(b[j]) { j += 1 }
        guard j < b.count, b[j] == 0x3D || b[j] == 0x3A else {
            copyWord(to: j)
            return true
        }
        let colon = b[j] == 0x3A
        // `https://` and other scheme separators are not names followed by values.
        if colon, j + 1 < b.count, b[j + 1] == 0x2F {
            copyWord(to: j)
            return true
        }
        let name = String(decoding: b[i..<j], as: UTF8.self)
        guard Redactor.isSecretName(name) else {
            copyWord(to: j)
            return true
        }
        var k = j + 1
        while k < b.count && (b[k] == 0x20 || b[k] == 0x09) { k += 1 }
        out += b[i..<k]
        out += marker
        if k < b.count && (b[k] == 0x22 || b[k] == 0x27) {
            i = skipQuoted(from: k)
        } else {
            var e = k
            while e < b.count && !isValueEnd(b[e], colon: colon) { e += 1 }
            i = e
        }
        return true
    }

    /// Copies a word that is not a secret name as a whole, so a name's tail is not rescanned as a new word.
    private mutating func copyWord(to j: Int) {
        // The word may itself start a JWT or a scheme; those rules ran before at `i`, so only copy.
        out += b[i..<j]
        i = j
    }

    private func isValueEnd(_ c: UInt8, colon: Bool) -> Bool {
        switch c {
        case 0x0A, 0x0D, 0x22, 0x27, 0x2C, 0x3B, 0x7D, 0x3C: return true
        case 0x26, 0x20, 0x09, 0x29, 0x5D: return !colon
        default: return false
        }
    }

    private func skipQuoted(from k: Int) -> Int {
        let quote = b[k]
        var e = k + 1
        while e < b.count {
            if b[e] == 0x5C {
                e += 2
                continue
            }
            if b[e] == quote { return e + 1 }
            e += 1
        }
        return b.count
    }

    /// The end of a JSON value starting at `k`: a string, a bracketed structure (strings inside respected), or a
    /// scalar up to a delimiter. Unterminated values run to the end of the text.
    private func skipValue(from k: Int) -> Int {
        guard k < b.count else { return k }
        switch b[k] {
        case 0x22: return skipQuoted(from: k)
        case 0x7B, 0x5B:
            var depth = 0
            var e = k
            while e < b.count {
                switch b[e] {
                case 0x22:
                    e = skipQuoted(from: e)
                    continue
                case 0x7B, 0x5B: depth += 1
                case 0x7D, 0x5D:
                    depth -= 1
                    if depth == 0 { return e + 1 }
                default: break
                }
                e += 1
            }
            return b.count
        default:
            var e = k
            while e < b.count && b[e] != 0x2C && b[e] != 0x7D && b[e] != 0x5D && b[e] != 0x0A { e += 1 }
            return e
        }
    }
}
