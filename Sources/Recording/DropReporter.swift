import CSystemShims
import Logging
import Synchronization

/// Makes every dropped event loud: the first drop of a kind is logged at once at `error`, later ones are summed
/// and logged at most once a second (by ``flushPending()``, called from the writer thread), so a flood of drops
/// cannot flood the log too. Never called on an event loop.
final class DropReporter: Sendable {
    private struct Pending {
        var count = 0
        var lastLogged: Int64?
    }

    private let logger: Logger
    private let state = Mutex([String: Pending]())
    private let total = AtomicCounter()

    init(logger: Logger) { self.logger = logger }

    func dropped(_ count: Int, reason: String, sink: String?) {
        guard count > 0 else { return }
        total.add(count)
        let key = (sink ?? "-") + "\u{0}" + reason
        let now = cshim_monotonic_nanoseconds()
        let toLog: Int? = state.withLock { map in
            var p = map[key, default: Pending()]
            p.count += count
            if p.lastLogged.map({ now - $0 >= 1_000_000_000 }) ?? true {
                let n = p.count
                p.count = 0
                p.lastLogged = now
                map[key] = p
                return n
            }
            map[key] = p
            return nil
        }
        if let toLog { log(toLog, reason: reason, sink: sink) }
    }

    func flushPending(force: Bool = false) {
        let now = cshim_monotonic_nanoseconds()
        let due: [(String, Int)] = state.withLock { map in
            var out: [(String, Int)] = []
            for (key, p) in map where p.count > 0 && (force || p.lastLogged.map({ now - $0 >= 1_000_000_000 }) ?? true)
            {
                out.append((key, p.count))
                map[key] = Pending(count: 0, lastLogged: now)
            }
            return out
        }
        for (key, count) in due {
            let parts = key.split(separator: "\u{0}", maxSplits: 1, omittingEmptySubsequences: false)
            log(count, reason: String(parts[1]), sink: parts[0] == "-" ? nil : String(parts[0]))
        }
    }

    private func log(_ count: Int, reason: String, sink: String?) {
        var metadata: Logger.Metadata = [
            "dropped": "\(count)", "reason": "\(reason)", "dropped_total": "\(total.load)",
        ]
        if let sink { metadata["sink"] = "\(sink)" }
        logger.error("log events dropped", metadata: metadata)
    }
}
