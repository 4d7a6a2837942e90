import Foundation
import Synchronization

/// Helpers for tests that run real programs: the built gateway, curl, h2load, a loopback upstream.
public enum TestProcess {
    /// The repository root, found from this file's location.
    public static let repositoryRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    /// The path of one of the integration tests' fixture files (the Python clients, the upstream).
    public static func fixture(_ name: String) -> String {
        repositoryRoot.appendingPathComponent("Tests/GatewayIntegrationTests/Fixtures/\(name)").path
    }

    /// The built gateway binary (`swift build` puts it under .build/debug or .build/release).
    public static func gatewayBinary() -> String? {
        if let path = ProcessInfo.processInfo.environment["MYORG_GATEWAY_BINARY"] { return path }
        for config in ["debug", "release"] {
            let path = repositoryRoot.appendingPathComponent(".build/\(config)/myorg-gateway").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    public static func which(_ tool: String) -> String? {
        for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin", "/bin", "/sbin"] {
            let path = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs a program to completion (killed after `timeout` seconds) and returns its output.
    public static func run(_ path: String, _ arguments: [String], timeout: Double = 30, stdin: String? = nil)
        throws -> Output
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        if let stdin {
            let input = Pipe()
            process.standardInput = input
            try process.run()
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try input.fileHandleForWriting.close()
        } else {
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }
        let collector = OutputCollector(out: out, err: err)
        let deadline = Date().addingTimeInterval(timeout)
        var exitCode: Int32? = nil
        while exitCode == nil && Date() < deadline {
            var status: Int32 = 0
            let rc = waitpid(process.processIdentifier, &status, WNOHANG)
            if rc == process.processIdentifier {
                exitCode = TestProcess.exitCode(fromWaitStatus: status)
            } else if rc == -1 && errno == ECHILD {
                // Foundation reaped it; its own record is then complete.
                while process.isRunning { usleep(1000) }
                exitCode = process.terminationStatus
            } else {
                usleep(2000)
            }
        }
        if exitCode == nil {
            kill(process.processIdentifier, SIGKILL)
            var status: Int32 = 0
            waitpid(process.processIdentifier, &status, 0)
            exitCode = 137
        }
        let (stdout, stderr) = collector.finish()
        return Output(status: exitCode ?? -1, stdout: stdout, stderr: stderr)
    }

    /// The exit code of a waitpid status, or 128 + the signal that ended the process (WIFEXITED, WEXITSTATUS and
    /// WTERMSIG are macros Swift cannot import).
    static func exitCode(fromWaitStatus status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// A free TCP port on 127.0.0.1 (bound and released; good enough for tests on one machine).
    public static func freePort() -> UInt16 { ReservedPort().port }

    /// Waits until something accepts TCP connections on 127.0.0.1:`port`.
    public static func waitForPort(_ port: UInt16, timeout: Double = 20) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? RawConnection(port: port, timeout: 1)) != nil { return true }
            usleep(50_000)
        }
        return false
    }

    /// A fresh temporary directory.
    public static func temporaryDirectory(_ name: String = "myorg-gateway-test") -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// Reads a child's stdout and stderr on background threads so a chatty child never blocks on a full pipe.
final class OutputCollector: @unchecked Sendable {
    // Safety: the buffers are written by the reader threads and read only after both finished (group wait).
    private var stdout = Data()
    private var stderr = Data()
    private let group = DispatchGroup()

    init(out: Pipe, err: Pipe) {
        group.enter()
        DispatchQueue.global().async {
            self.stdout = out.fileHandleForReading.readDataToEndOfFile()
            self.group.leave()
        }
        group.enter()
        DispatchQueue.global().async {
            self.stderr = err.fileHandleForReading.readDataToEndOfFile()
            self.group.leave()
        }
    }

    func finish() -> (String, String) {
        _ = group.wait(timeout: .now() + 10)
        return (String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}

/// A long-running child process (the gateway, an upstream) that a test starts and stops by its PID.
public final class BackgroundProcess: @unchecked Sendable {
    // Safety: used from one test at a time; `process` is only touched by start/stop.
    public let process = Process()
    public let logURL: URL

    public init(_ path: String, _ arguments: [String], environment: [String: String]? = nil, logName: String = "proc")
        throws
    {
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        logURL = TestProcess.temporaryDirectory("log").appendingPathComponent("\(logName).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logURL)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }

    public var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Sends `signal` and waits up to `timeout` seconds for the exit; kills it if it does not go.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: Double = 15) -> Int32 {
        guard !stopped else { return exitStatus ?? -1 }
        stopped = true
        kill(process.processIdentifier, signal)
        if !waitForExit(timeout: timeout) {
            kill(process.processIdentifier, SIGKILL)
            _ = waitForExit(timeout: 5)
        }
        return exitStatus ?? -1
    }

    /// The exit code (or 128 + signal) once `waitForExit` saw the child go; -1 when Foundation reaped it first.
    public private(set) var exitStatus: Int32?

    /// Waits for the child to exit (Foundation reaps it on its own thread; this waits on that).
    public func waitForExit(timeout: Double) -> Bool {
        // Foundation's waitUntilExit needs a run loop on this thread; polling waitpid does not. ECHILD means
        // Foundation reaped the child first: it has exited either way.
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var status: Int32 = 0
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == pid {
                exitStatus = TestProcess.exitCode(fromWaitStatus: status)
                return true
            }
            if rc == -1 && errno == ECHILD {
                if exitStatus == nil { exitStatus = -1 }
                return true
            }
            usleep(5_000)
        }
        return false
    }

    private var stopped = false

    /// Open file descriptors of the child (from /proc), for leak checks.
    public func openFileDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// The child's resident memory in KiB (VmRSS from /proc), or -1.
    public func residentKiB() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return -1 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
    }

    deinit { stop(signal: SIGKILL, timeout: 2) }
}

extension TestProcess {
    /// Open sockets of a process (this one by default), from /proc: the leak check's measure, which ignores the
    /// pipes and files the test harness itself opens.
    public static func openSocketCount(pid: Int32? = nil) -> Int {
        let dir = pid.map { "/proc/\($0)/fd" } ?? "/proc/self/fd"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return -1 }
        return entries.filter {
            ((try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\($0)")) ?? "").hasPrefix("socket:")
        }.count
    }
}

/// A loopback port held for a receiver that is "down" at first: bound but not listening, so a connection to it is
/// refused, and no other socket can bind it (it has no SO_REUSEADDR) until its holder takes the socket over or
/// `release` closes it. A port that was merely free a moment ago can be taken by a parallel test's server, which
/// then answers the requests a test expects to fail.
public final class ReservedPort: @unchecked Sendable {
    // Safety (@unchecked): `fd` changes once, in `take` or `release`, on the test's own thread.
    public let port: UInt16
    private var fd: Int32

    public init() {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        func bindPort(_ port: UInt16) -> Bool {
            addr.sin_port = port.bigEndian
            return withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            } == 0
        }
        // Below the kernel's ephemeral range (32768 and up here): a port it hands out (a server bound to port 0, as
        // the in-process gateways are, or a connection's source port) is then never one a test named. A test
        // gateway's listener joins any SO_REUSEPORT socket on its port, so a parallel test's server that was given
        // the same port by the kernel would silently take half of its connections.
        var bound = false
        for _ in 0..<Self.testPorts.count where !bound {
            bound = bindPort(Self.nextTestPort())
        }
        precondition(bound || bindPort(0), "bind failed")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) }
        }
        self.fd = s
        self.port = UInt16(bigEndian: addr.sin_port)
    }

    deinit { release() }

    private static let testPorts: Range<UInt16> = 20_000..<32_000
    /// Starts at a random place, so that test processes running side by side mostly try different ports.
    private static let cursor = Atomic<Int>(Int.random(in: 0..<testPorts.count))

    private static func nextTestPort() -> UInt16 {
        let step = cursor.add(1, ordering: .relaxed).newValue
        return testPorts.lowerBound + UInt16(step % testPorts.count)
    }

    /// Closes the socket (a test whose receiver never comes up calls this at its end, which also keeps the port
    /// held until then).
    public func release() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    /// The bound socket, now the caller's (to listen on).
    public func take() -> Int32 {
        precondition(fd >= 0, "the port was taken or released already")
        defer { fd = -1 }
        return fd
    }
}
