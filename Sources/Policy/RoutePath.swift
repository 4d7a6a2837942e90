import GatewayCore

/// Splits a raw request path into percent-decoded segments, refusing the forms that let two parsers
/// disagree about which resource a path names.
///
/// The path is split on raw `/` *before* decoding, so `%2F` stays inside its segment. Refused: a target
/// that does not start with `/`; control bytes or a raw backslash; a `%` not followed by two hex digits;
/// a decoded NUL; a decoded segment that is not UTF-8; a decoded segment equal to `.` or `..`.
public enum RoutePath {
    public struct Segment: Sendable, Equatable {
        /// Exactly as received.
        public var raw: Substring
        /// Percent-decoded.
        public var decoded: String
    }

    public static func segments(_ path: Substring) -> Result<[Segment], RouteProblem> {
        let utf8 = path.utf8
        guard utf8.first == UInt8(ascii: "/") else { return .failure(.notAbsolute) }
        var segments: [Segment] = []
        segments.reserveCapacity(8)
        var start = utf8.index(after: utf8.startIndex)
        var i = start
        while true {
            let atEnd = i == utf8.endIndex
            if atEnd || utf8[i] == UInt8(ascii: "/") {
                let raw = path[start..<i]
                switch decode(raw) {
                case .success(let decoded):
                    if decoded == "." || decoded == ".." { return .failure(.dotSegment) }
                    segments.append(Segment(raw: raw, decoded: decoded))
                case .failure(let problem): return .failure(problem)
                }
                if atEnd { break }
                start = utf8.index(after: i)
            } else {
                let b = utf8[i]
                if b < 0x20 || b == 0x7F { return .failure(.controlCharacter) }
                if b == UInt8(ascii: "\\") { return .failure(.backslash) }
            }
            i = utf8.index(after: i)
        }
        return .success(segments)
    }

    /// Percent-decodes one segment.
    public static func decode(_ raw: Substring) -> Result<String, RouteProblem> {
        guard raw.utf8.contains(UInt8(ascii: "%")) else { return .success(String(raw)) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(raw.utf8.count)
        var it = raw.utf8.makeIterator()
        while let b = it.next() {
            if b == UInt8(ascii: "%") {
                guard let h = it.next(), let l = it.next(), let hi = hexDigitValue(h), let lo = hexDigitValue(l) else {
                    return .failure(.badPercentEncoding)
                }
                let value = hi << 4 | lo
                if value == 0 { return .failure(.nul) }
                bytes.append(value)
            } else {
                bytes.append(b)
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { return .failure(.notUTF8) }
        return .success(text)
    }
}

/// Why a path was refused with 400 before routing.
public enum RouteProblem: Error, Sendable, Equatable, CustomStringConvertible {
    case notAbsolute
    case controlCharacter
    case backslash
    case badPercentEncoding
    case nul
    case notUTF8
    case dotSegment
    case ambiguousPrefix
    case encodedSlash

    public var description: String {
        switch self {
        case .notAbsolute: return "The request target must be an absolute path starting with '/'."
        case .controlCharacter: return "The path contains a control character."
        case .backslash: return "The path contains a backslash; separate segments with '/'."
        case .badPercentEncoding:
            return "The path contains an invalid percent-encoding ('%' must precede two hex digits)."
        case .nul: return "The path contains an encoded NUL byte."
        case .notUTF8: return "A percent-decoded path segment is not valid UTF-8."
        case .dotSegment: return "The path contains a '.' or '..' segment (also when percent-encoded)."
        case .ambiguousPrefix:
            return
                "The path names the My Organization API in a non-canonical form; write the prefix exactly as /my-org/."
        case .encodedSlash:
            return "The path holds an encoded '/' (%2F), which no endpoint of the My Organization API takes."
        }
    }
}
