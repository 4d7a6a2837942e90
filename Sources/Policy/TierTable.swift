import Yams

/// The two rate-limit classes of the My Organization API: every endpoint is either a read or a write.
public enum RateLimitClass: String, Sendable, Hashable, CaseIterable {
    case read
    case write
}

/// A read and a write rate, in requests per second.
public struct TierRates: Sendable, Hashable {
    public var read: Int
    public var write: Int

    public init(read: Int, write: Int) {
        self.read = read
        self.write = write
    }

    public subscript(rateClass: RateLimitClass) -> Int {
        switch rateClass {
        case .read: return read
        case .write: return write
        }
    }
}

/// One service tier: the tenant-wide rates and the rates each Organization gets.
public struct TierLimits: Sendable, Hashable {
    public var name: String
    public var tenant: TierRates
    public var organization: TierRates

    public init(name: String, tenant: TierRates, organization: TierRates) {
        self.name = name
        self.tenant = tenant
        self.organization = organization
    }

    /// True when none of this tier's four rates exceeds `other`'s: simulating it can only refuse more.
    public func isAtMost(_ other: TierLimits) -> Bool {
        tenant.read <= other.tenant.read && tenant.write <= other.tenant.write
            && organization.read <= other.organization.read && organization.write <= other.organization.write
    }
}

/// Why a tier file was refused: the file, the 1-based line and column, the key path and the problem.
public struct TierTableError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    /// Dotted key path such as `tiers.free.tenant.read`; empty for document-level problems.
    public var key: String
    public var message: String

    public init(file: String, line: Int, column: Int, key: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.message = message
    }

    public var description: String {
        key.isEmpty ? "\(file):\(line):\(column): \(message)" : "\(file):\(line):\(column): \(key): \(message)"
    }
}

/// The tier table of `policies/tiers.yaml`: tiers in file order, lowest first.
///
/// Immutable once parsed. `parse` is strict: unknown keys, missing keys, duplicate keys, non-integer or
/// out-of-range rates are refused with the file, line and key.
public struct TierTable: Sendable, Equatable {
    /// Highest rate a tier file may declare; bounds the GCRA arithmetic far from overflow.
    public static let maxRate = 1_000_000

    public let tiers: [TierLimits]

    public init(tiers: [TierLimits]) { self.tiers = tiers }

    public subscript(name: String) -> TierLimits? { tiers.first { $0.name == name } }

    public var names: [String] { tiers.map(\.name) }

    /// The built-in table, parsed from `EmbeddedTiers.yaml` (a byte-for-byte copy of `policies/tiers.yaml`).
    public static let embedded: TierTable = {
        do {
            return try TierTable.parse(yaml: EmbeddedTiers.yaml, fileName: "<embedded tiers.yaml>")
        } catch {
            // The embedded text is tested to parse; reaching this is a build defect, not an input error.
            fatalError("embedded tiers.yaml does not parse: \(error)")
        }
    }()

    /// Parses a tier file. `fileName` only labels errors.
    public static func parse(yaml: String, fileName: String) throws(TierTableError) -> TierTable {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw TierTable.error(from: error, fileName: fileName)
        } catch {
            throw TierTableError(file: fileName, line: 1, column: 1, key: "", message: "not YAML: \(error)")
        }
        let reader = TierYAMLReader(fileName: fileName)
        guard let root else { throw reader.fail(at: nil, key: "", "the file is empty; expected a `tiers` mapping") }
        return TierTable(tiers: try reader.readDocument(root))
    }

    private static func error(from error: YamlError, fileName: String) -> TierTableError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return TierTableError(file: fileName, line: mark.line, column: mark.column, key: "", message: problem)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return TierTableError(
                file: fileName, line: context.mark.line, column: context.mark.column, key: "",
                message: "duplicate key(s) \(duplicates.sorted().joined(separator: ", "))")
        case .reader(let problem, _, _, _):
            return TierTableError(file: fileName, line: 1, column: 1, key: "", message: problem)
        default:
            return TierTableError(file: fileName, line: 1, column: 1, key: "", message: "\(error)")
        }
    }
}

/// Walks the composed YAML tree; each failure carries the node's mark.
private struct TierYAMLReader {
    let fileName: String

    func fail(at node: Node?, key: String, _ message: String) -> TierTableError {
        let mark = node?.mark
        return TierTableError(
            file: fileName, line: mark?.line ?? 1, column: mark?.column ?? 1, key: key, message: message)
    }

    func readDocument(_ root: Node) throws(TierTableError) -> [TierLimits] {
        let top = try mapping(root, key: "", expecting: ["tiers"], required: ["tiers"])
        let tiersNode = top["tiers"]!.value
        guard let tierMap = tiersNode.mapping else {
            throw fail(at: tiersNode, key: "tiers", "expected a mapping of tier name to limits")
        }
        guard !tierMap.isEmpty else { throw fail(at: tiersNode, key: "tiers", "declares no tier") }
        var result: [TierLimits] = []
        for (nameNode, body) in tierMap {
            let name = try scalarKey(nameNode, parent: "tiers")
            guard !result.contains(where: { $0.name == name }) else {
                throw fail(at: nameNode, key: "tiers.\(name)", "duplicate tier")
            }
            guard isTierName(name) else {
                throw fail(at: nameNode, key: "tiers.\(name)", "a tier name is lowercase letters, digits and '_'")
            }
            let path = "tiers.\(name)"
            let fields = try mapping(
                body, key: path, expecting: ["tenant", "organization"], required: ["tenant", "organization"],
                owner: nameNode)
            let tenant = try rates(fields["tenant"]!, key: "\(path).tenant")
            let organization = try rates(fields["organization"]!, key: "\(path).organization")
            result.append(TierLimits(name: name, tenant: tenant, organization: organization))
        }
        return result
    }

    func rates(_ member: (keyNode: Node, value: Node), key: String) throws(TierTableError) -> TierRates {
        let fields = try mapping(
            member.value, key: key, expecting: ["read", "write"], required: ["read", "write"], owner: member.keyNode)
        return TierRates(
            read: try rate(fields["read"]!.value, key: "\(key).read"),
            write: try rate(fields["write"]!.value, key: "\(key).write"))
    }

    func rate(_ node: Node, key: String) throws(TierTableError) -> Int {
        guard let scalar = node.scalar, scalar.style == .plain else {
            throw fail(at: node, key: key, "expected a whole number of requests per second")
        }
        let text = scalar.string
        guard !text.isEmpty, text.utf8.count <= 9, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = Int(text)
        else {
            throw fail(at: node, key: key, "expected a whole number of requests per second, found '\(text.prefix(40))'")
        }
        guard value >= 1, value <= TierTable.maxRate else {
            throw fail(at: node, key: key, "must be between 1 and \(TierTable.maxRate)")
        }
        return value
    }

    /// The mapping's members by key, refusing keys outside `expecting` and reporting missing `required` ones
    /// at `owner` (the key naming this mapping), else at the mapping itself.
    func mapping(_ node: Node, key: String, expecting: Set<String>, required: [String], owner: Node? = nil)
        throws(TierTableError) -> [String: (keyNode: Node, value: Node)]
    {
        guard let map = node.mapping else {
            throw fail(at: node, key: key, "expected a mapping with keys \(required.joined(separator: ", "))")
        }
        var members: [String: (keyNode: Node, value: Node)] = [:]
        for (keyNode, value) in map {
            let name = try scalarKey(keyNode, parent: key)
            let path = key.isEmpty ? name : "\(key).\(name)"
            guard expecting.contains(name) else {
                let allowed = expecting.sorted().joined(separator: ", ")
                throw fail(at: keyNode, key: path, "unknown key (expected \(allowed))")
            }
            guard members[name] == nil else { throw fail(at: keyNode, key: path, "duplicate key") }
            members[name] = (keyNode, value)
        }
        for name in required where members[name] == nil {
            throw fail(at: owner ?? node, key: key.isEmpty ? name : "\(key).\(name)", "missing")
        }
        return members
    }

    func scalarKey(_ node: Node, parent: String) throws(TierTableError) -> String {
        guard let scalar = node.scalar else { throw fail(at: node, key: parent, "a key must be a plain string") }
        return scalar.string
    }

    func isTierName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
    }
}
