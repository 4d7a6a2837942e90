import GatewayCore
import CNghttp2

/// HTTP/2 frame types and flags used by the hand-built frames (RFC 9113 §6).
enum FrameType: UInt8 {
    case data = 0x0
    case headers = 0x1
    case priority = 0x2
    case rstStream = 0x3
    case settings = 0x4
    case pushPromise = 0x5
    case ping = 0x6
    case goaway = 0x7
    case windowUpdate = 0x8
    case continuation = 0x9
}

enum FrameFlag {
    static let endStream: UInt8 = 0x1
    static let ack: UInt8 = 0x1
    static let endHeaders: UInt8 = 0x4
    static let padded: UInt8 = 0x8
}

/// Builds client frames by hand, with HPACK from nghttp2's deflater so header blocks are valid.
final class FrameBuilder {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private var deflater: OpaquePointer?

    init() {
        precondition(nghttp2_hd_deflate_new(&deflater, 4096) == 0)
    }

    deinit { nghttp2_hd_deflate_del(deflater) }

    func frame(_ type: FrameType, flags: UInt8 = 0, stream: Int32 = 0, payload: [UInt8] = []) -> [UInt8] {
        let length = payload.count
        var out: [UInt8] = [
            UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 8),
            UInt8(truncatingIfNeeded: length), type.rawValue, flags,
        ]
        out += be32(UInt32(bitPattern: stream) & 0x7fff_ffff)
        return out + payload
    }

    /// The client preface followed by an empty SETTINGS frame.
    func start() -> [UInt8] { Self.preface + settings() }

    func settings(_ entries: [(UInt16, UInt32)] = [], ack: Bool = false) -> [UInt8] {
        var payload: [UInt8] = []
        for (id, value) in entries { payload += be16(id) + be32(value) }
        return frame(.settings, flags: ack ? FrameFlag.ack : 0, payload: payload)
    }

    /// An HPACK block for `fields`, in order.
    func block(_ fields: [(String, String)]) -> [UInt8] {
        block(bytes: fields.map { (Array($0.0.utf8), Array($0.1.utf8)) })
    }

    /// A HEADERS frame whose field bytes are given as they are (for values that are not UTF-8).
    func headers(stream: Int32, bytes fields: [([UInt8], [UInt8])]) -> [UInt8] {
        frame(
            .headers, flags: FrameFlag.endStream | FrameFlag.endHeaders, stream: stream, payload: block(bytes: fields))
    }

    func block(bytes fields: [([UInt8], [UInt8])]) -> [UInt8] {
        var bytes: [UInt8] = []
        var spans: [(Int, Int, Int, Int)] = []
        for (name, value) in fields {
            let nameStart = bytes.count
            bytes += name
            let valueStart = bytes.count
            bytes += value
            spans.append((nameStart, valueStart - nameStart, valueStart, bytes.count - valueStart))
        }
        bytes.append(0)  // never empty, so the base address exists
        return bytes.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            let nvs = spans.map {
                nghttp2_nv(name: base + $0.0, value: base + $0.2, namelen: $0.1, valuelen: $0.3, flags: 0)
            }
            let bound = nghttp2_hd_deflate_bound(deflater, nvs, nvs.count)
            var out = [UInt8](repeating: 0, count: bound)
            let n = out.withUnsafeMutableBufferPointer {
                nghttp2_hd_deflate_hd(deflater, $0.baseAddress, bound, nvs, nvs.count)
            }
            precondition(n >= 0)
            return Array(out[0..<n])
        }
    }

    func headers(
        stream: Int32, _ fields: [(String, String)], endStream: Bool = true, endHeaders: Bool = true
    ) -> [UInt8] {
        var flags: UInt8 = 0
        if endStream { flags |= FrameFlag.endStream }
        if endHeaders { flags |= FrameFlag.endHeaders }
        return frame(.headers, flags: flags, stream: stream, payload: block(fields))
    }

    func continuation(stream: Int32, payload: [UInt8] = [], endHeaders: Bool = false) -> [UInt8] {
        frame(.continuation, flags: endHeaders ? FrameFlag.endHeaders : 0, stream: stream, payload: payload)
    }

    func data(stream: Int32, _ payload: [UInt8] = [], endStream: Bool = false) -> [UInt8] {
        frame(.data, flags: endStream ? FrameFlag.endStream : 0, stream: stream, payload: payload)
    }

    func rstStream(stream: Int32, errorCode: UInt32 = 0x8) -> [UInt8] {
        frame(.rstStream, stream: stream, payload: be32(errorCode))
    }

    func ping(_ opaque: UInt64 = 0, ack: Bool = false) -> [UInt8] {
        var payload: [UInt8] = []
        for shift in stride(from: 56, through: 0, by: -8) {
            payload.append(UInt8(truncatingIfNeeded: opaque >> UInt64(shift)))
        }
        return frame(.ping, flags: ack ? FrameFlag.ack : 0, payload: payload)
    }

    func goaway(lastStream: Int32, errorCode: UInt32 = 0) -> [UInt8] {
        frame(.goaway, payload: be32(UInt32(lastStream)) + be32(errorCode))
    }

    func windowUpdate(stream: Int32, increment: UInt32) -> [UInt8] {
        frame(.windowUpdate, stream: stream, payload: be32(increment))
    }

    /// The usual request pseudo-headers plus `extra`.
    static func request(
        method: String = "GET", path: String = "/my-org/details", authority: String = "acme.us.auth0.com",
        _ extra: [(String, String)] = []
    ) -> [(String, String)] {
        [(":method", method), (":scheme", "https"), (":authority", authority), (":path", path)] + extra
    }
}

func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
func be32(_ v: UInt32) -> [UInt8] {
    [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
}

/// One frame parsed from the server's output.
struct ParsedFrame: Equatable {
    var type: UInt8
    var flags: UInt8
    var stream: Int32
    var payload: [UInt8]
    /// Decoded header fields for HEADERS frames.
    var fields: [(String, String)] = []

    static func == (a: ParsedFrame, b: ParsedFrame) -> Bool {
        a.type == b.type && a.flags == b.flags && a.stream == b.stream && a.payload == b.payload
    }

    var isType: (FrameType) -> Bool { { $0.rawValue == type } }

    /// The error code of RST_STREAM and GOAWAY frames.
    var errorCode: UInt32? {
        if type == FrameType.rstStream.rawValue, payload.count == 4 { return u32(payload, 0) }
        if type == FrameType.goaway.rawValue, payload.count >= 8 { return u32(payload, 4) }
        return nil
    }

    var lastStreamID: Int32? {
        type == FrameType.goaway.rawValue && payload.count >= 8 ? Int32(bitPattern: u32(payload, 0) & 0x7fff_ffff) : nil
    }

    func field(_ name: String) -> String? { fields.first { $0.0 == name }?.1 }
}

private func u32(_ b: [UInt8], _ i: Int) -> UInt32 {
    UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
}

/// Splits the server's byte stream into frames and decodes its header blocks with an HPACK inflater.
final class FrameReader {
    private var inflater: OpaquePointer?
    private var pending: [UInt8] = []
    private(set) var frames: [ParsedFrame] = []

    init() { precondition(nghttp2_hd_inflate_new(&inflater) == 0) }
    deinit { nghttp2_hd_inflate_del(inflater) }

    func read(_ bytes: [UInt8]) {
        pending += bytes
        while pending.count >= 9 {
            let length = Int(pending[0]) << 16 | Int(pending[1]) << 8 | Int(pending[2])
            guard pending.count >= 9 + length else { break }
            var frame = ParsedFrame(
                type: pending[3], flags: pending[4], stream: Int32(bitPattern: u32(pending, 5) & 0x7fff_ffff),
                payload: Array(pending[9..<(9 + length)]))
            pending.removeFirst(9 + length)
            if frame.type == FrameType.headers.rawValue { frame.fields = inflate(frame.payload) }
            frames.append(frame)
        }
    }

    private func inflate(_ block: [UInt8]) -> [(String, String)] {
        var fields: [(String, String)] = []
        block.withUnsafeBufferPointer { buffer in
            var offset = 0
            while true {
                var nv = nghttp2_nv()
                var flags: Int32 = 0
                let n = nghttp2_hd_inflate_hd2(
                    inflater, &nv, &flags, buffer.baseAddress! + offset, buffer.count - offset, 1)
                precondition(n >= 0, "HPACK error in server output")
                offset += n
                if flags & Int32(NGHTTP2_HD_INFLATE_EMIT.rawValue) != 0 {
                    fields.append(
                        (
                            String(decoding: UnsafeBufferPointer(start: nv.name, count: nv.namelen), as: UTF8.self),
                            // Lossless for obs-text, so a test can compare the bytes sent.
                            ObsText.string(UnsafeBufferPointer(start: nv.value, count: nv.valuelen))
                        ))
                }
                if flags & Int32(NGHTTP2_HD_INFLATE_FINAL.rawValue) != 0 {
                    nghttp2_hd_inflate_end_headers(inflater)
                    break
                }
                if n == 0 && flags & Int32(NGHTTP2_HD_INFLATE_EMIT.rawValue) == 0 { break }
            }
        }
        return fields
    }

    func frames(_ type: FrameType) -> [ParsedFrame] { frames.filter { $0.type == type.rawValue } }
}
