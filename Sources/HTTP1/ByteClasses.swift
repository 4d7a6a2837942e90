import GatewayCore

// Character classes of RFC 9110 §5.6 and RFC 3986 as 128-bit sets in constants, so the hot loops need no global
// table (a global `let` costs a lazy-initialisation check on access) and no branchy switch.

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

/// `tchar` (RFC 9110 §5.6.2): ALPHA, DIGIT and ``!#$%&'*+-.^_`|~``.
@inline(__always)
func isTokenByte(_ b: UInt8) -> Bool { URISyntax.inSet(b, 0x03FF_6CFA_0000_0000, 0x57FF_FFFF_C7FF_FFFE) }

/// The value of a hex digit, or -1.
@inline(__always)
func hexValue(_ b: UInt8) -> Int { hexDigitValue(b).map { Int($0) } ?? -1 }

@inline(__always)
func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

@inline(__always)
func asciiLower(_ b: UInt8) -> UInt8 { (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b }

@inline(__always)
func isOWS(_ b: UInt8) -> Bool { b == Byte.space || b == Byte.tab }

/// Whether `buf[start..<end]` equals `lower` ignoring ASCII case; `lower` must be lowercase ASCII.
@inline(__always)
func equalsIgnoringCase(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, _ lower: StaticString) -> Bool {
    asciiCaseInsensitiveEquals(UnsafeBufferPointer(rebasing: buf[start..<end]), lowercase: lower)
}

/// A String from bytes already checked to be ASCII or valid UTF-8.
@inline(__always)
func makeString(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> String {
    String(decoding: UnsafeBufferPointer(rebasing: buf[start..<end]), as: UTF8.self)
}

/// As `makeString`, but a common field name (`CommonStrings.fieldName`) costs no new string.
@inline(__always)
func makeFieldName(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> String {
    // `buf` holds the whole line, so it has an address.
    CommonStrings.fieldName(UnsafeRawPointer(buf.baseAddress! + start), end - start) ?? makeString(buf, start, end)
}

/// As `makeString`, but a common field value or reason phrase (`CommonStrings.value`) costs no new string.
@inline(__always)
/// `nonASCII`: the scan that validated the value saw a byte of 0x80 or above; such obs-text is carried so that it
/// is passed on byte for byte (`ObsText`).
func makeFieldValue(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, nonASCII: Bool = false) -> String {
    if nonASCII { return ObsText.string(UnsafeBufferPointer(rebasing: buf[start..<end])) }
    return CommonStrings.value(UnsafeRawPointer(buf.baseAddress! + start), end - start) ?? makeString(buf, start, end)
}

// Word-at-a-time scans. The classic "has a zero byte" test flags the lowest matching byte exactly (a borrow can
// only cause false flags above a true match), so `trailingZeroBitCount / 8` is the index on a little-endian load;
// where a flag may be spurious, the byte loop after it decides.

private let ones: UInt64 = 0x0101_0101_0101_0101
private let highs: UInt64 = 0x8080_8080_8080_8080

@inline(__always)
private func zeroBytes(_ x: UInt64) -> UInt64 { (x &- ones) & ~x & highs }

/// Whether each of the eight bytes is an ASCII letter, digit or `-`: the bytes nearly every field name is made of,
/// all of them `tchar`. Exact per byte (no borrow crosses bytes: every byte is below 0x80 when the sums are made).
@inline(__always)
func isAlphanumericOrHyphenWord(_ w: UInt64) -> Bool {
    if w & highs != 0 { return false }
    // For a byte x < 0x80, x + (0x80 - lo) has its high bit set iff x >= lo.
    let digit = (w &+ ones &* 0x50) & ~(w &+ ones &* 0x46) & highs  // 0x30...0x39
    let folded = w | (ones &* 0x20)  // a letter of either case onto a...z, and nothing else onto it
    let letter = (folded &+ ones &* 0x1F) & ~(folded &+ ones &* 0x05) & highs  // 0x61...0x7A
    let x = w ^ (ones &* 0x2D)
    let hyphen = ~(((x & ~highs) &+ ~highs) | x) & highs  // exactly the zero bytes of x
    return digit | letter | hyphen == highs
}

/// Whether `buf[start..<end]`, already known to be a token, is `lower` ignoring case; `lower` is lowercase letters
/// and `-` only. Every byte of `lower` has bit 0x20 set, and the only byte that `| 0x20` maps onto a letter or `-`
/// besides the letter's other case is CR, which no token holds: so word loads with that bit set compare exactly.
@inline(__always)
func tokenEqualsLower(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, _ lower: StaticString) -> Bool {
    let n = lower.utf8CodeUnitCount
    guard end - start == n else { return false }
    let a = UnsafeRawPointer(buf.baseAddress! + start)
    let b = UnsafeRawPointer(lower.utf8Start)
    if n >= 8 {
        var i = 0
        while i &+ 8 < n {
            if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) | (ones &* 0x20)
                != b.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            {
                return false
            }
            i &+= 8
        }
        return a.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self) | (ones &* 0x20)
            == b.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
    }
    return equalsIgnoringCase(buf, start, end, lower)
}

/// The index of the first LF in `buf[from..<to]`, or -1.
@inline(__always)
func firstLF(_ buf: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> Int {
    var i = from
    if let base = buf.baseAddress {
        while i &+ 8 <= to {
            let w = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
            let z = zeroBytes(w ^ (ones &* UInt64(Byte.lf)))
            if z != 0 { return i &+ z.trailingZeroBitCount / 8 }
            i &+= 8
        }
    }
    while i < to {
        if buf[i] == Byte.lf { return i }
        i &+= 1
    }
    return -1
}

/// Whether none of the eight bytes is a CTL, DEL or non-ASCII. A flag a borrow may raise falsely only sits above a
/// true one, so a word without flags has none of these bytes.
@inline(__always)
func isVisibleOrSpaceWord(_ w: UInt64) -> Bool {
    let below20 = (w &- ones &* 0x20) & ~w & highs
    return (w & highs) | below20 | zeroBytes(w ^ (ones &* 0x7F)) == 0
}

/// Whether each of the eight bytes is visible ASCII (0x21...0x7E), as `isVisibleOrSpaceWord` without the space.
@inline(__always)
func isVisibleWord(_ w: UInt64) -> Bool {
    let below21 = (w &- ones &* 0x21) & ~w & highs
    return (w & highs) | below21 | zeroBytes(w ^ (ones &* 0x7F)) == 0
}

/// Whether every byte of `buf` is visible ASCII, as `isLongVisibleOrSpace` without the space.
@inline(__always)
func isLongVisible(_ buf: UnsafeBufferPointer<UInt8>) -> Bool { everyWord(buf, isVisibleWord) }

/// Whether every byte of `buf` is visible ASCII or a space; false for fewer than eight bytes (the caller's byte
/// loop decides those).
@inline(__always)
func isLongVisibleOrSpace(_ buf: UnsafeBufferPointer<UInt8>) -> Bool { everyWord(buf, isVisibleOrSpaceWord) }

/// Whether `test` holds for every eight-byte word of `buf`, the last word overlapping the one before; false for
/// fewer than eight bytes.
@inline(__always)
private func everyWord(_ buf: UnsafeBufferPointer<UInt8>, _ test: (UInt64) -> Bool) -> Bool {
    guard buf.count >= 8, let base = buf.baseAddress else { return false }
    var i = 0
    while i &+ 8 < buf.count {
        if !test(UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)) { return false }
        i &+= 8
    }
    return test(UnsafeRawPointer(base + (buf.count &- 8)).loadUnaligned(as: UInt64.self))
}

/// The index of the first byte in `buf[from..<to]` that is a CTL, DEL or non-ASCII, or `to`.
@inline(__always)
func firstNonVisibleOrSpace(_ buf: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> Int {
    var i = from
    if let base = buf.baseAddress {
        while i &+ 8 <= to {
            let w = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
            if !isVisibleOrSpaceWord(w) { break }
            i &+= 8
        }
    }
    while i < to {
        let b = buf[i]
        if b < 0x20 || b >= 0x7F { return i }
        i &+= 1
    }
    return to
}
