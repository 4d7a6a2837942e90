import COpenSSL

/// Why a TLS connection failed.
///
/// `reason` is OpenSSL's own reason, made readable (for example
/// "certificate verify failed: hostname mismatch" or "tlsv1 alert no application protocol").
/// It never holds key material, certificate contents or application data, so it may be logged.
public struct TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The peer's certificate chain, validity or name did not verify (client side).
        case certificateVerificationFailed
        /// The handshake failed for another reason: no common version, cipher or ALPN protocol,
        /// a malformed message, or an alert from the peer.
        case handshakeFailed
        /// After the handshake: a bad record, an alert from the peer, or the stream ending without close_notify.
        case protocolError
        /// The caller broke the engine's call order, or gave a value OpenSSL refuses (such as an invalid host name).
        case misuse
        /// A server's peer sent a plain-text HTTP request where the ClientHello belongs (an `http://` URL for an
        /// HTTPS port). OpenSSL recognises it and sends no alert: the caller may answer in plain text.
        case plaintextHTTP
    }

    public let kind: Kind
    public let reason: String

    public init(kind: Kind, reason: String) {
        self.kind = kind
        self.reason = reason
    }

    public var description: String { reason }
}

/// A certificate, key, trust store or option that could not be loaded or does not make sense.
///
/// `message` names the file (or says "inline PEM") and gives OpenSSL's reason. It never contains key material.
public struct TLSConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// Reading OpenSSL's per-thread error queue.
///
/// The queue belongs to the thread, not to a connection: a stale entry left behind would be reported by the next
/// connection served on that thread. Every failure path therefore drains it before returning.
enum OpenSSLErrorQueue {
    /// Empties this thread's error queue and returns its distinct reasons, oldest first, joined by ": ".
    static func drainReasons() -> String? {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            let reason = reasonString(code)
            if !reasons.contains(reason) { reasons.append(reason) }
        }
        ERR_clear_error()
        return reasons.isEmpty ? nil : reasons.joined(separator: ": ")
    }

    private static func reasonString(_ code: UInt) -> String {
        if let text = ERR_reason_error_string(code) {
            return String(cString: text)
        }
        // System errors (such as a missing file) have no static reason string; the long form carries strerror's
        // text after the last separator.
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        let full = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return full.split(separator: ":").last.map(String.init) ?? full
    }
}
