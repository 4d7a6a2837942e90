#if canImport(Glibc)
    import Glibc
#endif
import GatewayCore
import CSystemShims
import Foundation
import Logging
import Policy

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// What a sink made of one batch.
enum DeliveryResult: Equatable {
    case delivered
    /// A transient failure (network, 5xx, 408, 429, disk): the same batch is tried again after a backoff.
    case retry(String)
    /// The receiver refused this batch for what it is (a 4xx): tried a few times, then dropped and counted.
    case rejected(String)
}

/// A destination for serialized events. Each instance is used by exactly one writer thread, so it needs no lock.
protocol EventSink: AnyObject {
    var name: String { get }
    var batchSize: Int { get }
    /// Seconds a partial batch may wait for more lines; 0 sends at once.
    var batchInterval: Double { get }
    var initialRetryDelay: Double { get }
    var maxRetryDelay: Double { get }
    var maxAttemptsWhenRejected: Int { get }
    /// Writes one batch of JSON texts (no newlines inside) in order.
    func deliver(_ lines: [String]) -> DeliveryResult
    /// Called at least once a second while the writer is idle (interval fsync).
    func tick(nowNanos: Int64)
    func close()
}

extension EventSink {
    var batchInterval: Double { 0 }
    var initialRetryDelay: Double { 0.2 }
    var maxRetryDelay: Double { 10 }
    var maxAttemptsWhenRejected: Int { 3 }
    func tick(nowNanos: Int64) {}
}

extension EventSink {
    /// The batch as one buffer of newline-terminated lines, for a single write.
    static func joinLines(_ lines: [String]) -> [UInt8] {
        var total = 0
        for line in lines { total += line.utf8.count + 1 }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(total)
        for var line in lines {
            line.withUTF8 { bytes.append(contentsOf: $0) }
            bytes.append(0x0A)
        }
        return bytes
    }
}

// MARK: - stdout

final class StdoutSink: EventSink {
    let name: String
    let fd: Int32
    let batchSize: Int

    init(_ settings: StdoutSinkSettings, name: String) {
        self.name = name
        self.fd = settings.fd
        self.batchSize = settings.batchSize
    }

    func deliver(_ lines: [String]) -> DeliveryResult {
        let bytes = Self.joinLines(lines)
        do throws(FileIO.Failure) {
            try FileIO.writeAll(fd, bytes, path: "stdout")
            return .delivered
        } catch {
            return .retry(error.description)
        }
    }

    func close() {}
}

// MARK: - file

/// Appends JSON lines to a file, rotates by size (`path` → `path.1` → … → `path.<keep>`) and applies the fsync
/// policy. A write error leaves the file cut back to its last complete line and asks for a retry.
///
/// Rotation deletes the oldest file once `keep` rotated files exist. Those events are gone from this sink, so
/// each deletion is logged at `warning` (file name and size only) and counted in `removedFiles`.
final class FileSink: EventSink {
    let name: String
    let settings: FileSinkSettings
    var batchSize: Int { settings.batchSize }
    private var fd: Int32 = -1
    private var size = 0
    private var dirty = false
    private var lastSync: Int64 = 0
    private let logger: Logger
    private let removedFiles: AtomicCounter

    init(
        _ settings: FileSinkSettings, name: String, logger: Logger = Logger(label: "myorg-gateway.recording"),
        removedFiles: AtomicCounter = AtomicCounter()
    ) throws(FileIO.Failure) {
        self.name = name
        self.settings = settings
        self.logger = logger
        self.removedFiles = removedFiles
        if let slash = settings.path.lastIndex(of: "/"), slash != settings.path.startIndex {
            try FileIO.makeDirectories(String(settings.path[..<slash]))
        }
        try reopen()
    }

    private func reopen() throws(FileIO.Failure) {
        if fd >= 0 { FileIO.close(fd) }
        fd = try FileIO.openAppend(settings.path)
        size = FileIO.fileSize(settings.path) ?? 0
    }

    func deliver(_ lines: [String]) -> DeliveryResult {
        let bytes = Self.joinLines(lines)
        do throws(FileIO.Failure) {
            if fd < 0 { try reopen() }
            if size > 0 && size + bytes.count > settings.maxBytes { try rotate() }
            do throws(FileIO.Failure) {
                try FileIO.writeAll(fd, bytes, path: settings.path)
            } catch {
                FileIO.truncate(settings.path, to: size)
                throw error
            }
            size += bytes.count
            dirty = true
            switch settings.fsync {
            case .always: syncNow(cshim_monotonic_nanoseconds())
            case .interval: tick(nowNanos: cshim_monotonic_nanoseconds())
            case .never: break
            }
            return .delivered
        } catch {
            return .retry(error.description)
        }
    }

    private func rotate() throws(FileIO.Failure) {
        if settings.fsync != .never && dirty { FileIO.sync(fd) }
        FileIO.close(fd)
        fd = -1
        let path = settings.path
        if settings.keep == 0 {
            removeOldest(path)
        } else {
            removeOldest("\(path).\(settings.keep)")
            var k = settings.keep - 1
            while k >= 1 {
                if FileIO.exists("\(path).\(k)") { try FileIO.rename("\(path).\(k)", "\(path).\(k + 1)") }
                k -= 1
            }
            try FileIO.rename(path, "\(path).1")
        }
        dirty = false
        try reopen()
    }

    private func removeOldest(_ file: String) {
        guard let bytes = FileIO.fileSize(file) else { return }
        FileIO.remove(file)
        removedFiles.add()
        logger.warning(
            "log file rotation removed the oldest file; raise max_files to keep more",
            metadata: [
                "sink": "\(name)", "file": "\(file)", "bytes": "\(bytes)", "max_files": "\(settings.keep)",
                "removed_total": "\(removedFiles.load)",
            ])
    }

    func tick(nowNanos: Int64) {
        if case .interval(let seconds) = settings.fsync, dirty, nowNanos - lastSync >= Int64(seconds * 1e9) {
            syncNow(nowNanos)
        }
    }

    private func syncNow(_ now: Int64) {
        if fd >= 0 { FileIO.sync(fd) }
        dirty = false
        lastSync = now
    }

    func close() {
        if fd >= 0 {
            if settings.fsync != .never && dirty { FileIO.sync(fd) }
            FileIO.close(fd)
            fd = -1
        }
    }
}

// MARK: - webhook

/// POSTs batches with FoundationNetworking's URLSession (http and https), blocking the sink's own writer thread.
final class WebhookSink: EventSink {
    let name: String
    let settings: WebhookSinkSettings
    private let url: URL
    private let session: URLSession
    var batchSize: Int { settings.batchSize }
    var batchInterval: Double { settings.batchInterval }
    var initialRetryDelay: Double { settings.initialRetryDelay }
    var maxRetryDelay: Double { settings.maxRetryDelay }
    var maxAttemptsWhenRejected: Int { settings.maxAttemptsWhenRejected }

    struct InvalidSettings: Error, CustomStringConvertible {
        var description: String
    }

    /// Refuses a URL that is not absolute http(s) and headers the configuration check would refuse: a value read
    /// from the environment or a file at start-up has not been seen by `check`. Messages name the header, never
    /// its value.
    init(_ settings: WebhookSinkSettings, name: String) throws(InvalidSettings) {
        guard let url = URL(string: settings.url), let scheme = url.scheme?.lowercased(),
            scheme == "http" || scheme == "https", url.host != nil
        else { throw InvalidSettings(description: "webhook url must be an absolute http or https URL") }
        for field in settings.headers {
            if let problem = ConfigSyntax.webhookHeaderNameProblem(field.name) {
                throw InvalidSettings(description: "header \(field.name.prefix(80)): \(problem)")
            }
            guard ConfigSyntax.isFieldValue(field.value) else {
                throw InvalidSettings(
                    description: "the value of header \(field.name) contains a control character (CR, LF, NUL …)")
            }
        }
        if let authorization = settings.authorization, !ConfigSyntax.isFieldValue(authorization) {
            throw InvalidSettings(description: "the authorization value contains a control character (CR, LF, NUL …)")
        }
        self.name = name
        self.settings = settings
        self.url = url
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = settings.timeout
        configuration.timeoutIntervalForResource = settings.timeout
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        configuration.urlCache = nil
        configuration.httpMaximumConnectionsPerHost = 1
        self.session = URLSession(configuration: configuration, delegate: NoRedirects(), delegateQueue: nil)
    }

    /// Redirects are not followed: a 3xx is the receiver's answer (a refusal), and the Authorization value is
    /// never carried to another URL.
    private final class NoRedirects: NSObject, URLSessionTaskDelegate, Sendable {
        func urlSession(
            _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
            newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
        ) {
            completionHandler(nil)
        }
    }

    /// A network error for the log: the URL (which may carry a key in its query or user info) is cut out and the
    /// rest goes through the redactor.
    func describe(_ error: any Error) -> String {
        var text = (error as NSError).localizedDescription
        for form in [settings.url, url.absoluteString] where !form.isEmpty {
            text = text.replacingOccurrences(of: form, with: "<webhook url>")
        }
        return Redactor().redact(text: text)
    }

    /// The POST body for `lines` in the configured format.
    static func body(_ lines: [String], format: WebhookFormat) -> String {
        switch format {
        case .jsonLines: return lines.joined(separator: "\n") + "\n"
        case .jsonArray: return "[" + lines.joined(separator: ",") + "]"
        case .jsonObject: return lines.first ?? "{}"
        }
    }

    func deliver(_ lines: [String]) -> DeliveryResult {
        // json_object carries one event per POST; its batch size is 1, the loop only guards a larger batch.
        if settings.format == .jsonObject && lines.count > 1 {
            for line in lines {
                let result = post(Self.body([line], format: .jsonObject))
                if result != .delivered { return result }
            }
            return .delivered
        }
        return post(Self.body(lines, format: settings.format))
    }

    private final class Outcome: @unchecked Sendable {
        // Safety: written once by the URLSession callback before `done` is signalled, read after the wait.
        var status: Int?
        var error: (any Error)?
        let done = DispatchSemaphore(value: 0)
    }

    private func post(_ body: String) -> DeliveryResult {
        var request = URLRequest(
            url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: settings.timeout)
        request.httpMethod = "POST"
        request.setValue(
            settings.format == .jsonLines ? "application/x-ndjson" : "application/json",
            forHTTPHeaderField: "Content-Type")
        for field in settings.headers { request.setValue(field.value, forHTTPHeaderField: field.name) }
        if let authorization = settings.authorization {
            request.setValue(authorization, forHTTPHeaderField: "Authorization")
        }
        request.httpBody = Data(body.utf8)
        let outcome = Outcome()
        let task = session.dataTask(with: request) { _, response, error in
            if let http = response as? HTTPURLResponse {
                // Redirects are refused by the delegate, so a 3xx arrives here as the final status.
                outcome.status = http.statusCode
            } else {
                outcome.error = error
            }
            outcome.done.signal()
        }
        task.resume()
        if outcome.done.wait(timeout: .now() + settings.timeout + 2) == .timedOut {
            task.cancel()
            _ = outcome.done.wait(timeout: .now() + 2)
            return .retry("timed out")
        }
        guard let status = outcome.status else { return .retry(outcome.error.map(describe) ?? "no response") }
        switch status {
        case 200..<300: return .delivered
        // The receiver says this very payload can never be taken: after a few tries the batch is dropped and
        // counted, or it would hold back every event behind it for good.
        case 400, 413, 415, 422: return .rejected("HTTP \(status)")
        // Everything else may pass later and is retried with backoff while the events wait in the spool: a
        // refused credential (401, 403: rotated on one side first), a receiver not deployed yet (404), 408, 429,
        // 5xx, a redirect (not followed). A record accepted is a record kept, short of a full spool.
        default: return .retry("HTTP \(status)")
        }
    }

    func close() { session.invalidateAndCancel() }
}
