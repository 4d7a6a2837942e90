/// The value of an ASCII hex digit (`0-9`, `A-F`, `a-f`), or nil: for percent-decoding and chunk sizes.
@inlinable
public func hexDigitValue(_ b: UInt8) -> UInt8? {
    switch b {
    case 0x30...0x39: return b &- 0x30
    case 0x41...0x46: return b &- 0x41 &+ 10
    case 0x61...0x66: return b &- 0x61 &+ 10
    default: return nil
    }
}
