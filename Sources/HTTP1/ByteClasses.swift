// Character classes of RFC 9110 §5.6 and RFC 3986, written as switches so the hot loops need no global tables
// (a `static let` table costs a lazy-initialisation check on every access).

enum Byte {
    static let tab: UInt8 = 0x09
    static let lf: UInt8 = 0x0A
    static let cr: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let quote: UInt8 = 0x22
    static let percent: UInt8 = 0x25
    static let comma: UInt8 = 0x2C
    static let slash: UInt8 = 0x2F
    static let colon: UInt8 = 0x3A
    static let semicolon: UInt8 = 0x3B
    static let equals: UInt8 = 0x3D
    static let question: UInt8 = 0x3F
    static let at: UInt8 = 0x40
    static let backslash: UInt8 = 0x5C
    static let openBracket: UInt8 = 0x5B
    static let closeBracket: UInt8 = 0x5D
    static let asterisk: UInt8 = 0x2A
}

/// `tchar` (RFC 9110 §5.6.2).
@inline(__always)
func isTokenByte(_ b: UInt8) -> Bool {
    switch b {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
    case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
    default: return false
    }
}

/// A byte allowed as itself in a request target's path or query.
///
/// Visible ASCII minus what RFC 3986 excludes and real servers refuse: `"` `<` `>` `\` `^` `` ` `` `{` `}`, and `#`
/// (a fragment is never sent). `|` is outside RFC 3986 too, but official Auth0 SDKs send user ids such as
/// `auth0|123` unencoded, so it is accepted. `%` is handled by the caller (it must start a pct-encoding).
@inline(__always)
func isTargetByte(_ b: UInt8) -> Bool {
    switch b {
    case 0x22, 0x23, 0x3C, 0x3E, 0x5C, 0x5E, 0x60, 0x7B, 0x7D: return false
    case 0x21...0x7E: return true
    default: return false
    }
}

/// reg-name characters of RFC 3986 §3.2.2 (unreserved and sub-delims; `%` handled by the caller).
@inline(__always)
func isRegNameByte(_ b: UInt8) -> Bool {
    switch b {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x2E, 0x5F, 0x7E: return true
    case 0x21, 0x24, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x3B, 0x3D: return true
    default: return false
    }
}

/// The value of a hex digit, or -1.
@inline(__always)
func hexValue(_ b: UInt8) -> Int {
    switch b {
    case 0x30...0x39: return Int(b &- 0x30)
    case 0x41...0x46: return Int(b &- 0x41 &+ 10)
    case 0x61...0x66: return Int(b &- 0x61 &+ 10)
    default: return -1
    }
}

@inline(__always)
func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

@inline(__always)
func asciiLower(_ b: UInt8) -> UInt8 { (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b }

@inline(__always)
func isOWS(_ b: UInt8) -> Bool { b == Byte.space || b == Byte.tab }

/// Whether `buf[start..<end]` equals `lower` ignoring ASCII case; `lower` must be lowercase ASCII.
@inline(__always)
func equalsIgnoringCase(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, _ lower: StaticString) -> Bool {
    let count = lower.utf8CodeUnitCount
    guard end - start == count else { return false }
    let l = lower.utf8Start
    var i = 0
    while i < count {
        if asciiLower(buf[start + i]) != l[i] { return false }
        i += 1
    }
    return true
}

/// Whether `s` equals `lower` ignoring ASCII case; `lower` must be lowercase ASCII.
func equalsIgnoringCase(_ s: Substring.UTF8View, _ lower: StaticString) -> Bool {
    guard s.count == lower.utf8CodeUnitCount else { return false }
    let l = lower.utf8Start
    var i = 0
    for b in s {
        if asciiLower(b) != l[i] { return false }
        i += 1
    }
    return true
}

/// A String from bytes already checked to be ASCII or valid UTF-8.
@inline(__always)
func makeString(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> String {
    String(decoding: UnsafeBufferPointer(rebasing: buf[start..<end]), as: UTF8.self)
}
