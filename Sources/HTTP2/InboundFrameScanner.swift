/// Follows the frame boundaries of a client's byte stream (RFC 9113 §3.4 preface, then §4.1 frames) and stops at
/// each DATA or HEADERS frame on a stream that may no longer be open, so that the session can look at that stream
/// with everything before the frame processed.
///
/// Why: once a stream is closed nghttp2 forgets it (the gateway keeps no closed streams) and drops later DATA and
/// HEADERS on it unread, where RFC 9113 §5.1 requires a STREAM_CLOSED error when the client itself closed the
/// stream (by RST_STREAM, or by END_STREAM on a stream whose response was complete). Only the header of each
/// frame is read; payloads are skipped, but for a PRIORITY frame's stream dependency.
///
/// It also stops after a PRIORITY frame whose stream depends on itself: nghttp2 skips PRIORITY payloads unread
/// once SETTINGS_NO_RFC7540_PRIORITIES is sent, yet RFC 9113 §5.3.1 (as RFC 7540 before it) makes that a
/// PROTOCOL_ERROR, and a peer sending it is broken or probing.
struct InboundFrameScanner {
    /// A frame header worth a look: DATA or HEADERS on an odd (client) stream id at or below the highest the
    /// client has used, read in full; or a PRIORITY frame making its stream depend on itself, read up to the
    /// dependency.
    struct Stop {
        /// Where the frame header begins in the bytes scanned; negative when part of it came in earlier bytes.
        var headerStart: Int
        var type: UInt8
        var streamID: Int32
    }

    private var prefaceLeft = 24
    private var header: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0)
    private var headerFilled = 0
    private var payloadLeft = 0
    /// The stream of the PRIORITY frame whose dependency is being read (0 when none is), and its bytes so far:
    /// the dependency is the first four of the five payload bytes, so it is whole when one byte is left.
    private var priorityStream: Int32 = 0
    private var dependency: UInt32 = 0
    /// The highest client stream id a HEADERS frame carried, among the frames scanned.
    private(set) var highestStreamID: Int32 = 0

    static let frameData: UInt8 = 0x0
    static let frameHeaders: UInt8 = 0x1
    static let framePriority: UInt8 = 0x2

    /// Scans `bytes` from `from` and returns the first stop, with the scanner positioned right after that frame's
    /// header (its payload still to skip), or nil when `bytes` ends first.
    mutating func next(in bytes: UnsafeRawBufferPointer, from: Int) -> (stop: Stop, resume: Int)? {
        var i = from
        let count = bytes.count
        while i < count {
            if prefaceLeft > 0 {
                let n = min(prefaceLeft, count - i)
                prefaceLeft -= n
                i += n
                continue
            }
            if priorityStream != 0 {
                dependency = dependency << 8 | UInt32(bytes[i])
                payloadLeft -= 1
                i += 1
                guard payloadLeft == 1 else { continue }
                let streamID = priorityStream
                priorityStream = 0
                if Int32(bitPattern: dependency & 0x7fff_ffff) == streamID {
                    return (Stop(headerStart: i - 13, type: Self.framePriority, streamID: streamID), i)
                }
                continue
            }
            if payloadLeft > 0 {
                let n = min(payloadLeft, count - i)
                payloadLeft -= n
                i += n
                continue
            }
            withUnsafeMutableBytes(of: &header) { $0[headerFilled] = bytes[i] }
            headerFilled += 1
            i += 1
            guard headerFilled == 9 else { continue }
            headerFilled = 0
            let (l0, l1, l2, type, _, s0, s1, s2, s3) = header
            payloadLeft = Int(l0) << 16 | Int(l1) << 8 | Int(l2)
            let streamID =
                Int32(bitPattern: (UInt32(s0) << 24 | UInt32(s1) << 16 | UInt32(s2) << 8 | UInt32(s3)))
                & 0x7fff_ffff
            if type == Self.framePriority && payloadLeft == 5 && streamID != 0 {
                // A PRIORITY frame of another length, or on stream 0, is nghttp2's to refuse.
                priorityStream = streamID
                dependency = 0
                continue
            }
            guard type == Self.frameData || type == Self.frameHeaders, streamID & 1 == 1 else { continue }
            if type == Self.frameHeaders && streamID > highestStreamID {
                highestStreamID = streamID
                continue
            }
            guard streamID <= highestStreamID else { continue }
            return (Stop(headerStart: i - 9, type: type, streamID: streamID), i)
        }
        return nil
    }
}

/// The client streams closed lately by the client's own doing (RST_STREAM, or END_STREAM after the response was
/// complete), newest last; a fixed number, so a long connection costs no more than a short one. A stream the
/// server reset is never here: the client may still have had frames for it in flight (RFC 9113 §5.1), and they
/// are ignored.
struct RecentlyClosedStreams {
    private var ids: [Int32] = []
    private var next = 0
    static let capacity = 128

    mutating func insert(_ id: Int32) {
        if ids.count < Self.capacity {
            ids.append(id)
        } else {
            ids[next] = id
            next = (next + 1) % Self.capacity
        }
    }

    func contains(_ id: Int32) -> Bool { ids.contains(id) }
}
