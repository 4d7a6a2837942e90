import GatewayCore

/// A mapping whose keys were checked against the keys its schema knows.
struct YAMLMap {
    var node: YAMLNode
    var path: String
    var entries: [String: (key: YAMLNode, value: YAMLNode)]
    /// Keys in document order, for maps keyed by data (upstream domains).
    var order: [String]

    subscript(key: String) -> YAMLNode? { entries[key]?.value }

    func has(_ key: String) -> Bool { entries[key] != nil }

    func path(_ key: String) -> String { YAMLReader.join(path, key) }
}

/// Reads typed values out of a `YAMLNode` tree and collects every problem instead of stopping at the first.
///
/// Each reader returns nil when the value is absent or wrong; a wrong value has already been recorded as a
/// `ConfigError`. Callers then carry on with what they have, so one bad key never hides the next.
final class YAMLReader {
    let file: String
    private(set) var errors: [ConfigError] = []

    init(file: String) { self.file = file }

    // MARK: Errors and locations

    func fail(_ node: YAMLNode, _ path: String, _ message: String) {
        errors.append(ConfigError(file: file, line: node.line, column: node.column, path: path, message: message))
    }

    func append(_ error: ConfigError) { errors.append(error) }

    func location(_ node: YAMLNode, _ path: String) -> ConfigLocation {
        ConfigLocation(file: file, line: node.line, column: node.column, path: path)
    }

    static func join(_ path: String, _ key: String) -> String {
        let plain =
            !key.isEmpty
            && key.utf8.allSatisfy { b in
                (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F
                    || b == 0x2D
            }
        if !plain {
            var quoted = ""
            JSONValue.writeString(key, to: &quoted)
            return "\(path)[\(quoted)]"
        }
        return path.isEmpty ? key : "\(path).\(key)"
    }

    static func index(_ path: String, _ i: Int) -> String { "\(path)[\(i)]" }

    // MARK: Structure

    /// The node as a mapping whose keys are all in `keys` (nil: any key, for maps keyed by data).
    func mapping(_ node: YAMLNode, _ path: String, keys: [String]?) -> YAMLMap? {
        guard case .mapping(let pairs) = node.kind else {
            fail(node, path, "expected a mapping, found \(found(node, path))")
            return nil
        }
        var map = YAMLMap(node: node, path: path, entries: [:], order: [])
        var seen: [String: YAMLNode] = [:]
        for (key, value) in pairs {
            guard case .scalar(let name, _) = key.kind, !key.isNull else {
                fail(key, path, "keys must be plain strings, found \(key.kindName)")
                continue
            }
            // Yams refuses most repeats, but not `1` beside `"1"` (two tags, one name here).
            if let first = seen.updateValue(key, forKey: name) {
                fail(
                    key, YAMLReader.join(path, name),
                    "duplicate key '\(YAMLReader.printable(name))' in one mapping "
                        + "(first at line \(first.line), column \(first.column))")
                seen[name] = first
                continue
            }
            if let keys, !keys.contains(name) {
                var message = "unknown key '\(YAMLReader.printable(name))'"
                if let near = YAMLReader.nearest(name, in: keys) {
                    message += " (did you mean '\(near)'?)"
                } else {
                    message += "; expected one of: \(keys.joined(separator: ", "))"
                }
                fail(key, YAMLReader.join(path, name), message)
                continue
            }
            map.entries[name] = (key, value)
            map.order.append(name)
        }
        return map
    }

    /// The items of a list, each with its path.
    func list(_ node: YAMLNode, _ path: String) -> [(node: YAMLNode, path: String)]? {
        guard case .sequence(let items) = node.kind else {
            fail(node, path, "expected a list, found \(found(node, path))")
            return nil
        }
        return items.enumerated().map { (node: $0.element, path: YAMLReader.index(path, $0.offset)) }
    }

    func required(_ map: YAMLMap, _ key: String) -> YAMLNode? {
        if let node = map[key] { return node }
        fail(map.node, map.path(key), "required key '\(key)' is missing")
        return nil
    }

    // MARK: Scalars

    func string(_ node: YAMLNode, _ path: String) -> String? {
        guard case .scalar(let text, _) = node.kind, !node.isNull else {
            fail(node, path, "expected a string, found \(found(node, path))")
            return nil
        }
        return text
    }

    func nonEmptyString(_ node: YAMLNode, _ path: String) -> String? {
        guard let text = string(node, path) else { return nil }
        if text.isEmpty || text.utf8.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) {
            fail(node, path, "must not be empty")
            return nil
        }
        return text
    }

    func int(_ node: YAMLNode, _ path: String, in range: ClosedRange<Int>) -> Int? {
        guard case .scalar(let text, let plain) = node.kind, plain, !node.isNull else {
            fail(node, path, "expected an integer, found \(found(node, path))")
            return nil
        }
        var digits = Substring(text)
        digits.removeAll { $0 == "_" }
        guard let value = Int(digits) else {
            fail(node, path, "expected an integer, found \(found(node, path))")
            return nil
        }
        guard range.contains(value) else {
            fail(node, path, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    func double(_ node: YAMLNode, _ path: String, in range: ClosedRange<Double>) -> Double? {
        guard case .scalar(let text, let plain) = node.kind, plain, !node.isNull, let value = Double(text),
            value.isFinite
        else {
            fail(node, path, "expected a number, found \(found(node, path))")
            return nil
        }
        guard range.contains(value) else {
            fail(node, path, "\(text) is out of range \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    func bool(_ node: YAMLNode, _ path: String) -> Bool? {
        // YAML 1.2 core schema only: `yes`/`on` are strings there, and guessing would hide typos.
        if case .scalar(let text, let plain) = node.kind, plain {
            switch text {
            case "true", "True", "TRUE": return true
            case "false", "False", "FALSE": return false
            default: break
            }
        }
        fail(node, path, "expected true or false, found \(found(node, path))")
        return nil
    }

    func enumeration<E: RawRepresentable & CaseIterable>(_ node: YAMLNode, _ path: String, _: E.Type) -> E?
    where E.RawValue == String {
        guard let text = string(node, path) else { return nil }
        if let value = E(rawValue: text) { return value }
        // Auth0's documents write some of these names with hyphens (`deny-all` for machine-to-machine flows) where
        // the Management API and this file use underscores: both spellings name the same value.
        if let value = E(rawValue: String(text.map { $0 == "-" ? "_" : $0 })) { return value }
        let names = E.allCases.map(\.rawValue)
        var message = "'\(YAMLReader.printable(text))' is not one of \(names.joined(separator: " | "))"
        if let near = YAMLReader.nearest(text, in: names) { message += " (did you mean '\(near)'?)" }
        fail(node, path, message)
        return nil
    }

    /// A list of strings; items that are not strings are reported and skipped.
    func strings(_ node: YAMLNode, _ path: String) -> [(value: String, node: YAMLNode, path: String)]? {
        guard let items = list(node, path) else { return nil }
        var out: [(value: String, node: YAMLNode, path: String)] = []
        for item in items {
            if let text = nonEmptyString(item.node, item.path) { out.append((text, item.node, item.path)) }
        }
        return out
    }

    // MARK: Keyed conveniences

    func string(_ map: YAMLMap, _ key: String, required: Bool = false) -> String? {
        guard let node = required ? self.required(map, key) : map[key] else { return nil }
        return nonEmptyString(node, map.path(key))
    }

    func int(_ map: YAMLMap, _ key: String, in range: ClosedRange<Int>, default value: Int) -> Int {
        guard let node = map[key] else { return value }
        return int(node, map.path(key), in: range) ?? value
    }

    func double(_ map: YAMLMap, _ key: String, in range: ClosedRange<Double>, default value: Double) -> Double {
        guard let node = map[key] else { return value }
        return double(node, map.path(key), in: range) ?? value
    }

    func bool(_ map: YAMLMap, _ key: String, default value: Bool) -> Bool {
        guard let node = map[key] else { return value }
        return bool(node, map.path(key)) ?? value
    }

    func enumeration<E: RawRepresentable & CaseIterable>(_ map: YAMLMap, _ key: String, default value: E) -> E
    where E.RawValue == String {
        guard let node = map[key] else { return value }
        return enumeration(node, map.path(key), E.self) ?? value
    }

    // MARK: Helpers

    /// The node's kind and short value for a type mismatch, without the value where the key names a secret.
    func found(_ node: YAMLNode, _ path: String) -> String {
        node.kindName(showingValue: !YAMLReader.mayHoldSecret(path))
    }

    /// Whether the last key of `path` names something secret (`password`, `cname_api_key`, `authorization` …):
    /// a value written there by mistake must not be echoed into a CI log.
    static func mayHoldSecret(_ path: String) -> Bool {
        let last = path.split(whereSeparator: { $0 == "." || $0 == "[" }).last.map { $0.lowercased() } ?? ""
        return ["secret", "password", "passwd", "token", "key", "authorization", "credential", "cookie", "headers"]
            .contains { last.contains($0) }
    }

    /// Text safe to quote in a message: control characters replaced, length bounded.
    static func printable(_ text: String, limit: Int = 80) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(limit) {
            out.unicodeScalars.append(scalar.value < 0x20 || scalar.value == 0x7F ? "?" : scalar)
        }
        if text.unicodeScalars.count > limit { out += "…" }
        return out
    }

    /// The closest candidate within edit distance 2, for "did you mean" hints.
    static func nearest(_ word: String, in candidates: [String]) -> String? {
        var best: (String, Int)?
        for candidate in candidates {
            let d = editDistance(Array(word.utf8), Array(candidate.utf8))
            if d <= 2, d < (best?.1 ?? Int.max) { best = (candidate, d) }
        }
        return best?.0
    }

    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
