import GatewayCore
import Yams

/// A YAML node with its position, detached from Yams so the decoders below never see a Yams type.
///
/// Only the composed tree is kept: anchors and aliases are already resolved by the composer, and tags are
/// reduced to "plain or not" because the loaders read every scalar by its text (a quoted `"8080"` is a
/// string, a plain `8080` may be a number).
struct YAMLNode: Sendable {
    enum Kind: Sendable {
        case scalar(String, plain: Bool)
        case mapping([(key: YAMLNode, value: YAMLNode)])
        case sequence([YAMLNode])
    }

    var kind: Kind
    var line: Int
    var column: Int

    /// A plain scalar that YAML 1.2's core schema reads as null (`~`, `null`, nothing at all).
    var isNull: Bool {
        guard case .scalar(let text, let plain) = kind, plain else { return false }
        return text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
    }

    /// What the node is, for "expected …, found …" messages: the kind, and for a scalar a short value
    /// (`the string 'soon'`, `the number 1.5`, `the boolean true`); ``kindName(showingValue:)`` with false
    /// omits the value (where it could be a secret).
    var kindName: String { kindName(showingValue: true) }

    func kindName(showingValue: Bool) -> String {
        switch kind {
        case .scalar(let text, let plain):
            if isNull { return "null" }
            if plain {
                switch text {
                case "true", "True", "TRUE", "false", "False", "FALSE":
                    return showingValue ? "the boolean \(text)" : "a boolean"
                default:
                    if Double(text.filter { $0 != "_" }) != nil {
                        return showingValue ? "the number \(YAMLReader.printable(text, limit: 40))" : "a number"
                    }
                }
            }
            return showingValue ? "the string '\(YAMLReader.printable(text, limit: 40))'" : "a string"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }
}

/// Parses YAML text into one `YAMLNode` tree, or a `ConfigError` naming where the text stopped being YAML.
enum YAMLDocument {
    /// Nodes deeper than this are refused: the policy files are shallow, and a bound keeps a hostile file
    /// from exhausting the stack during conversion.
    static let maxDepth = 64
    /// Nodes a file may expand to. Aliases are resolved into copies, so a few hundred bytes of aliases of aliases
    /// ("billion laughs") would otherwise expand to billions of nodes and take the process's memory, on a reload
    /// too; a policy file has a few thousand.
    static let maxNodes = 500_000

    static func parse(_ text: String, file: String) -> Result<YAMLNode, ConfigErrors> {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch YamlError.duplicatedKeysInMapping(let keys, let context) {
            if let key = keys.first,
                let duplicates = YAMLDuplicateKeys.locate(
                    text, key: key, line: context.mark.line, column: context.mark.column)
            {
                return .failure(
                    ConfigErrors(
                        duplicates.map {
                            ConfigError(
                                file: file, line: $0.line, column: $0.column, path: $0.path,
                                message: "duplicate key '\(YAMLReader.printable($0.key))' in one mapping "
                                    + "(first at line \($0.firstLine), column \($0.firstColumn))")
                        }.sorted { ($0.line, $0.column) < ($1.line, $1.column) }))
            }
            return .failure(
                ConfigErrors([describe(.duplicatedKeysInMapping(duplicates: keys, context: context), file: file)]))
        } catch let error as YamlError {
            return .failure(ConfigErrors([describe(error, file: file)]))
        } catch {
            return .failure(
                ConfigErrors([ConfigError(file: file, line: 1, column: 1, path: "", message: "not valid YAML")]))
        }
        guard let root else {
            return .failure(
                ConfigErrors([ConfigError(file: file, line: 1, column: 1, path: "", message: "the file is empty")]))
        }
        var budget = maxNodes
        return convert(root, depth: 0, budget: &budget).mapError { ConfigErrors([$0.with(file: file)]) }
    }

    private static func convert(_ node: Node, depth: Int, budget: inout Int) -> Result<YAMLNode, ConfigError> {
        let mark = node.mark
        let line = mark?.line ?? 1
        let column = mark?.column ?? 1
        guard depth < maxDepth else {
            return .failure(ConfigError(file: "", line: line, column: column, path: "", message: "nesting too deep"))
        }
        budget -= 1
        guard budget >= 0 else {
            return .failure(
                ConfigError(
                    file: "", line: line, column: column, path: "",
                    message: "the file expands to more than \(maxNodes) YAML nodes (aliases of aliases?)"))
        }
        switch node {
        case .scalar(let scalar):
            return .success(
                YAMLNode(kind: .scalar(scalar.string, plain: scalar.style == .plain), line: line, column: column))
        case .mapping(let mapping):
            var pairs: [(key: YAMLNode, value: YAMLNode)] = []
            pairs.reserveCapacity(mapping.count)
            for (key, value) in mapping {
                switch (
                    convert(key, depth: depth + 1, budget: &budget), convert(value, depth: depth + 1, budget: &budget)
                ) {
                case (.success(let k), .success(let v)): pairs.append((k, v))
                case (.failure(let e), _), (_, .failure(let e)): return .failure(e)
                }
            }
            return .success(YAMLNode(kind: .mapping(pairs), line: line, column: column))
        case .sequence(let sequence):
            var items: [YAMLNode] = []
            items.reserveCapacity(sequence.count)
            for item in sequence {
                switch convert(item, depth: depth + 1, budget: &budget) {
                case .success(let n): items.append(n)
                case .failure(let e): return .failure(e)
                }
            }
            return .success(YAMLNode(kind: .sequence(items), line: line, column: column))
        case .alias:
            // The composer resolves aliases before handing out the tree; one left over is not ours to guess.
            return .failure(
                ConfigError(file: "", line: line, column: column, path: "", message: "unresolved YAML alias"))
        }
    }

    private static func describe(_ error: YamlError, file: String) -> ConfigError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            var message = "invalid YAML: \(problem)"
            if let context { message += " (\(context.text))" }
            return ConfigError(file: file, line: mark.line, column: mark.column, path: "", message: message)
        case .duplicatedKeysInMapping(let duplicates, let context):
            let names = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return ConfigError(
                file: file, line: context.mark.line, column: context.mark.column, path: "",
                message: "duplicate key \(names) in one mapping")
        case .reader(let problem, _, _, _):
            return ConfigError(file: file, line: 1, column: 1, path: "", message: "unreadable YAML text: \(problem)")
        default:
            return ConfigError(file: file, line: 1, column: 1, path: "", message: "not valid YAML")
        }
    }
}
