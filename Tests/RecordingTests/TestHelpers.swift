import Foundation
import GatewayCore
import Logging
import Synchronization
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A fresh directory under the system temporary directory, removed by `remove()`.
struct TempDir {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "recording-tests-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Every regular file below the directory, recursively.
    func allFiles() -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: path)
        var out: [String] = []
        while let name = enumerator?.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path + "/" + name, isDirectory: &isDir), !isDir.boolValue {
                out.append(path + "/" + name)
            }
        }
        return out
    }

    func lines(_ file: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: file) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}

/// Collects log messages so tests can assert that something was logged.
final class LogCapture: Sendable {
    private let messages = Mutex<[(Logger.Level, String, String)]>([])

    var logger: Logger {
        Logger(label: "test") { _ in CaptureHandler(capture: self) }
    }

    func append(_ level: Logger.Level, _ message: String, _ metadata: String) {
        messages.withLock { $0.append((level, message, metadata)) }
    }

    func contains(level: Logger.Level, _ text: String) -> Bool {
        messages.withLock { $0.contains { $0.0 == level && $0.1.contains(text) } }
    }

    var all: [String] { messages.withLock { $0.map { "\($0.0) \($0.1) \($0.2)" } } }

    struct CaptureHandler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let meta = (event.metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
            capture.append(event.level, "\(event.message)", meta)
        }
    }
}

/// A tiny blocking HTTP/1.1 server on 127.0.0.1 for webhook tests: one request per connection, answers with the
/// status `respond` chooses, records every request (head and body).
final class LoopbackReceiver: @unchecked Sendable {
    // Safety: `requests` and `stopped` are guarded by `lock`; the fd is closed only after the thread exits.
    struct Request {
        var head: String
        var body: String
        func header(_ name: String) -> String? {
            for line in head.split(separator: "\r\n").dropFirst() {
                if let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == name.lowercased() {
                    return String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
                }
            }
            return nil
        }
    }

    let port: UInt16
    private let fd: Int32
    private let lock = NSLock()
    private var received: [Request] = []
    private var stopped = false
    private let exited = DispatchSemaphore(value: 0)
    private let respond: @Sendable (Int) -> Int

    /// Starts listening on a port of its own. `respond` maps the 0-based request number to a status code.
    convenience init(respond: @escaping @Sendable (Int) -> Int = { _ in 200 }) {
        self.init(reserved: ReservedPort(), respond: respond)
    }

    /// Starts listening on a port the test held until now (a receiver that was "down" at first).
    init(reserved: ReservedPort, respond: @escaping @Sendable (Int) -> Int = { _ in 200 }) {
        self.respond = respond
        let s = reserved.take()
        listen(s, 16)
        self.port = reserved.port
        self.fd = s
        let thread = Thread { [self] in self.serve() }
        thread.start()
    }

    var requests: [Request] { lock.withLock { received } }

    func stop() {
        lock.withLock { stopped = true }
        _ = exited.wait(timeout: .now() + 5)
        close(fd)
    }

    private func serve() {
        while !lock.withLock({ stopped }) {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0 else { continue }
            let c = accept(fd, nil, nil)
            guard c >= 0 else { continue }
            var tv = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            handle(c)
            close(c)
        }
        exited.signal()
    }

    private func handle(_ c: Int32) {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var headEnd: Int?
        var contentLength = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            data += buffer[0..<n]
            if headEnd == nil, let range = findHeadEnd(data) {
                headEnd = range
                let head = String(decoding: data[0..<range], as: UTF8.self)
                for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                    contentLength = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            if let h = headEnd, data.count >= h + 4 + contentLength { break }
        }
        let h = headEnd!
        let request = Request(
            head: String(decoding: data[0..<h], as: UTF8.self),
            body: String(decoding: data[(h + 4)..<(h + 4 + contentLength)], as: UTF8.self))
        let index = lock.withLock { () -> Int in
            received.append(request)
            return received.count - 1
        }
        let status = respond(index)
        let response = "HTTP/1.1 \(status) X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        _ = Array(response.utf8).withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    private func findHeadEnd(_ d: [UInt8]) -> Int? {
        guard d.count >= 4 else { return nil }
        for i in 0...(d.count - 4) where d[i] == 13 && d[i + 1] == 10 && d[i + 2] == 13 && d[i + 3] == 10 { return i }
        return nil
    }
}

/// Polls `condition` until it holds or `seconds` pass.
func eventually(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.01)
    }
    return condition()
}
