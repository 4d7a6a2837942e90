import Yams

/// Finds where each duplicated key of a YAML text occurs again, and its key path.
///
/// Yams refuses a mapping with a repeated key but names only the key and its *first* occurrence, with no path.
/// The user needs the repeated line. So: find the next occurrence of that key in the same mapping (the text rules
/// below), rename it in a copy of the text, compose again, and repeat for the next duplicate; once the copy
/// composes, each renamed key's path is read from the tree. Every step is checked, and any doubt gives nil, so
/// the caller falls back to Yams' own report rather than to a wrong line.
enum YAMLDuplicateKeys {
    struct Duplicate: Equatable {
        var key: String
        /// 1-based, in Unicode scalars as Yams counts them.
        var line: Int
        var column: Int
        var firstLine: Int
        var firstColumn: Int
        var path: String
    }

    /// Renamed keys read `<prefix><n>`; a text that already holds the prefix is not touched.
    private static let placeholderPrefix = "myorg-gateway-duplicate-key-"
    private static let maxDuplicates = 32

    /// Every duplicate key in `text`, in the order Yams reports them; nil when one cannot be located with
    /// certainty. `key` and `line`/`column` are what Yams reported first (the first occurrence).
    static func locate(_ text: String, key: String, line: Int, column: Int) -> [Duplicate]? {
        guard !text.contains(placeholderPrefix) else { return nil }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
        var found: [Duplicate] = []
        var current = (key: key, line: line, column: column)
        while found.count < maxDuplicates {
            let scanner = Scanner(lines: lines)
            guard let at = scanner.nextOccurrence(of: current.key, line: current.line, column: current.column) else {
                return nil
            }
            let placeholder = Array("\"\(placeholderPrefix)\(found.count)\"".unicodeScalars)
            lines[at.line - 1].replaceSubrange((at.column - 1)..<(at.column - 1 + at.length), with: placeholder)
            found.append(
                Duplicate(
                    key: current.key, line: at.line, column: at.column, firstLine: current.line,
                    firstColumn: current.column, path: ""))
            let renamed = lines.map { String(String.UnicodeScalarView($0)) }.joined(separator: "\n")
            do {
                guard let root = try Yams.compose(yaml: renamed) else { return nil }
                var paths: [Int: String] = [:]
                collectPaths(root, path: "", keys: found.map(\.key), into: &paths)
                for i in found.indices {
                    guard let path = paths[i] else { return nil }
                    found[i].path = YAMLReader.join(path, found[i].key)
                }
                return found
            } catch YamlError.duplicatedKeysInMapping(let duplicates, let context) {
                guard let next = duplicates.first else { return nil }
                current = (next, context.mark.line, context.mark.column)
            } catch {
                return nil
            }
        }
        return nil
    }

    /// The path of the mapping holding each renamed key, by its number; only where that mapping also holds the
    /// key it was renamed from, which proves the text rules picked a sibling.
    private static func collectPaths(_ node: Node, path: String, keys: [String], into paths: inout [Int: String]) {
        switch node {
        case .mapping(let mapping):
            let names = mapping.map { $0.key.string ?? "" }
            for name in names where name.hasPrefix(placeholderPrefix) {
                if let n = Int(name.dropFirst(placeholderPrefix.count)), n < keys.count, names.contains(keys[n]) {
                    paths[n] = path
                }
            }
            for (key, value) in mapping {
                collectPaths(value, path: YAMLReader.join(path, key.string ?? ""), keys: keys, into: &paths)
            }
        case .sequence(let sequence):
            for (i, item) in sequence.enumerated() {
                collectPaths(item, path: YAMLReader.index(path, i), keys: keys, into: &paths)
            }
        default:
            break
        }
    }

    /// The text rules: block mappings (siblings share the first key's column) and flow mappings (siblings follow
    /// a comma at the same depth). Quoted scalars and comments are skipped; block scalars are not parsed, which
    /// is safe because their lines are indented deeper than any sibling key.
    struct Scanner {
        let lines: [[Unicode.Scalar]]

        /// The next key equal to `key` in the mapping whose key starts at `line`:`column` (1-based).
        func nextOccurrence(of key: String, line: Int, column: Int) -> (line: Int, column: Int, length: Int)? {
            guard line >= 1, line <= lines.count, column >= 1, column <= lines[line - 1].count,
                let first = keyToken(line: line - 1, at: column - 1), first.text == key
            else { return nil }
            if inFlow(line: line - 1, column: column - 1) {
                return nextInFlow(of: key, line: line - 1, from: column - 1 + first.length)
            }
            return nextInBlock(of: key, line: line - 1, column: column - 1)
        }

        private func nextInBlock(of key: String, line: Int, column: Int) -> (line: Int, column: Int, length: Int)? {
            var l = line + 1
            while l < lines.count {
                let text = lines[l]
                guard let indent = text.firstIndex(where: { $0 != " " }), text[indent] != "#", text[indent] != "\r"
                else {
                    l += 1
                    continue
                }
                if indent < column { return nil }
                if indent == 0
                    && (text.starts(with: Array("---".unicodeScalars))
                        || text.starts(with: Array("...".unicodeScalars)))
                {
                    return nil
                }
                if indent == column, let token = keyToken(line: l, at: indent), token.text == key {
                    return (l + 1, indent + 1, token.length)
                }
                l += 1
            }
            return nil
        }

        private func nextInFlow(of key: String, line: Int, from start: Int) -> (line: Int, column: Int, length: Int)? {
            var depth = 0
            var l = line
            var c = start
            var expectKey = false
            while l < lines.count {
                let text = lines[l]
                while c < text.count {
                    let ch = text[c]
                    if ch == " " || ch == "\t" || ch == "\r" {
                        c += 1
                        continue
                    }
                    if ch == "#" && (c == 0 || text[c - 1] == " " || text[c - 1] == "\t") { break }
                    if expectKey && depth == 0 {
                        expectKey = false
                        if let token = keyToken(line: l, at: c), token.text == key {
                            return (l + 1, c + 1, token.length)
                        }
                    }
                    if (ch == "\"" || ch == "'") && startsScalar(text, c) {
                        guard let end = quotedEnd(text, c) else { return nil }
                        c = end
                        continue
                    }
                    switch ch {
                    case "{", "[": depth += 1
                    case "}", "]":
                        if depth == 0 { return nil }
                        depth -= 1
                    case ",": if depth == 0 { expectKey = true }
                    default: break
                    }
                    c += 1
                }
                l += 1
                c = 0
            }
            return nil
        }

        /// Whether the position is inside a flow collection: counts brackets from the start of the text.
        private func inFlow(line: Int, column: Int) -> Bool {
            var depth = 0
            for l in 0...line {
                let text = lines[l]
                var c = 0
                let end = l == line ? column : text.count
                while c < end {
                    let ch = text[c]
                    if ch == "#" && (c == 0 || text[c - 1] == " " || text[c - 1] == "\t") { break }
                    if (ch == "\"" || ch == "'") && startsScalar(text, c) {
                        c = quotedEnd(text, c) ?? text.count
                        continue
                    }
                    switch ch {
                    case "{", "[": depth += 1
                    case "}", "]": depth = max(0, depth - 1)
                    default: break
                    }
                    c += 1
                }
            }
            return depth > 0
        }

        /// A quote opens a quoted scalar only where a scalar can start (so the `'` of `don't` does not).
        private func startsScalar(_ text: [Unicode.Scalar], _ c: Int) -> Bool {
            var p = c - 1
            while p >= 0 && (text[p] == " " || text[p] == "\t") { p -= 1 }
            return p < 0 || ["{", "[", ",", ":", "-", "?"].contains(text[p])
        }

        /// The index after the closing quote of the quoted scalar starting at `c`, on the same line.
        private func quotedEnd(_ text: [Unicode.Scalar], _ c: Int) -> Int? {
            let quote = text[c]
            var p = c + 1
            while p < text.count {
                if quote == "\"" && text[p] == "\\" {
                    p += 2
                    continue
                }
                if text[p] == quote {
                    if quote == "'" && p + 1 < text.count && text[p + 1] == "'" {
                        p += 2
                        continue
                    }
                    return p + 1
                }
                p += 1
            }
            return nil
        }

        /// The key written at `line`:`c` (0-based) if a `:` follows it: its value and its length as written.
        func keyToken(line: Int, at c: Int) -> (text: String, length: Int)? {
            let text = lines[line]
            guard c < text.count else { return nil }
            var value = String.UnicodeScalarView()
            var end: Int
            if text[c] == "\"" || text[c] == "'" {
                guard let close = quotedEnd(text, c) else { return nil }
                end = close
                var p = c + 1
                while p < close - 1 {
                    // Simple escapes only; a key that needs more is compared as written and simply not found.
                    if text[c] == "\"" && text[p] == "\\" && p + 1 < close - 1 {
                        value.append(text[p + 1])
                        p += 2
                        continue
                    }
                    if text[c] == "'" && text[p] == "'" { p += 1 }
                    value.append(text[p])
                    p += 1
                }
            } else {
                end = c
                while end < text.count {
                    let ch = text[end]
                    if ch == ":" && (end + 1 == text.count || [" ", "\t", "\r", ",", "}", "]"].contains(text[end + 1]))
                    {
                        break
                    }
                    if [",", "{", "}", "[", "]"].contains(ch) { return nil }
                    if ch == "#" && end > c && (text[end - 1] == " " || text[end - 1] == "\t") { return nil }
                    end += 1
                }
                var last = end
                while last > c && (text[last - 1] == " " || text[last - 1] == "\t") { last -= 1 }
                guard last > c else { return nil }
                value.append(contentsOf: text[c..<last])
                end = last
            }
            var p = end
            while p < text.count && (text[p] == " " || text[p] == "\t") { p += 1 }
            guard p < text.count, text[p] == ":" else { return nil }
            return (String(value), end - c)
        }
    }
}
