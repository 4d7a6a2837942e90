import GatewayCore

/// Formats the API's schemas give their strings, checked by hand (no regex engine in a pure module).
enum StringFormat: Sendable, Equatable {
    case domainName
    case url
    case email
    case hexColor
    case organizationName
    case connectionName
    case identifier(prefix: String, length: Int)
    case userID

    static let roleID = StringFormat.identifier(prefix: "rol_", length: 16)
    static let idpID = StringFormat.identifier(prefix: "con_", length: 16)
    static let domainID = StringFormat.identifier(prefix: "ord_", length: 22)
    static let invitationID = StringFormat.identifier(prefix: "uinv_", length: 16)
    static let scimTokenID = StringFormat.identifier(prefix: "tok_", length: 16)

    var describe: String {
        switch self {
        case .domainName: return "a domain name such as example.com"
        case .url: return "an http(s) URL"
        case .email: return "an email address"
        case .hexColor: return "a hex color such as #0059d6"
        case .organizationName:
            return "lowercase letters, digits, '-' and '_', starting and ending with a letter or digit"
        case .connectionName: return "letters and digits separated by single hyphens"
        case .identifier(let prefix, let length): return "'\(prefix)' followed by \(length) letters or digits"
        case .userID: return "a user id such as auth0|123"
        }
    }

    func matches(_ s: String) -> Bool {
        let u = Array(s.utf8)
        switch self {
        case .domainName: return Self.isDomainName(u)
        case .url:
            let rest: ArraySlice<UInt8>
            if s.hasPrefix("https://") {
                rest = u.dropFirst(8)
            } else if s.hasPrefix("http://") {
                rest = u.dropFirst(7)
            } else {
                return false
            }
            let host = rest.prefix { $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }
            return !host.isEmpty && !u.contains { $0 <= 0x20 || $0 == 0x7F }
        case .email:
            guard u.count <= 254, let at = u.firstIndex(of: UInt8(ascii: "@")), at > 0,
                u.lastIndex(of: UInt8(ascii: "@")) == at
            else { return false }
            return !u.contains { $0 <= 0x20 } && Self.isDomainName(Array(u[(at + 1)...]))
        case .hexColor:
            guard u.first == UInt8(ascii: "#"), u.count == 4 || u.count == 7 else { return false }
            return u.dropFirst().allSatisfy { hexDigitValue($0) != nil }
        case .organizationName:
            guard (1...50).contains(u.count), let f = u.first, let l = u.last else { return false }
            let ok: (UInt8) -> Bool = { Self.isLowerAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
            return Self.isLowerAlnum(f) && Self.isLowerAlnum(l) && u.allSatisfy(ok)
        case .connectionName:
            guard (1...128).contains(u.count), let f = u.first, let l = u.last, Self.isAlnum(f), Self.isAlnum(l)
            else { return false }
            var previousHyphen = false
            for b in u {
                if b == UInt8(ascii: "-") {
                    if previousHyphen { return false }
                    previousHyphen = true
                } else if Self.isAlnum(b) {
                    previousHyphen = false
                } else {
                    return false
                }
            }
            return true
        case .identifier(let prefix, let length):
            guard s.hasPrefix(prefix), u.count == prefix.utf8.count + length else { return false }
            return u.dropFirst(prefix.utf8.count).allSatisfy(Self.isAlnum)
        case .userID:
            return (1...1024).contains(u.count) && !u.contains { $0 < 0x20 || $0 == 0x7F }
        }
    }

    static func isAlnum(_ b: UInt8) -> Bool {
        (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b)
    }

    static func isLowerAlnum(_ b: UInt8) -> Bool { (0x30...0x39).contains(b) || (0x61...0x7A).contains(b) }

    /// At least two labels of 1–63 letters, digits or inner hyphens, an alphabetic top-level label, 253 bytes at most.
    static func isDomainName(_ u: [UInt8]) -> Bool {
        guard (3...253).contains(u.count) else { return false }
        let labels = u.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return false }
        for label in labels {
            guard (1...63).contains(label.count), let f = label.first, let l = label.last, isAlnum(f), isAlnum(l),
                label.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "-") })
            else { return false }
        }
        let tld = labels.last!
        return tld.count >= 2 && tld.allSatisfy { (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
    }
}

/// A JSON schema, reduced to what the API's request bodies use.
indirect enum Schema: Sendable {
    case string(min: Int = 1, max: Int = 255, format: StringFormat? = nil, oneOf: [String]? = nil)
    case boolean
    case integer(min: Int64, max: Int64)
    case array(Schema, min: Int = 0, max: Int = 100)
    /// `additional: false` refuses members the schema does not name (the description's
    /// `additionalProperties: false`).
    case object([(String, Schema)], required: [String] = [], additional: Bool = false)
    case nullable(Schema)
    /// Any JSON object (the `update-attributes` bodies).
    case anyObject
}

/// Collects every violation of a schema, each with a JSON pointer, as the tenant's `validation_errors`.
struct SchemaValidator {
    var errors: [TenantError.ValidationError] = []

    mutating func check(_ value: JSONValue, _ schema: Schema, pointer: String = "", field: String? = nil) {
        func fail(_ detail: String) {
            errors.append(TenantError.ValidationError(detail: detail, field: field, pointer: pointer, source: "body"))
        }
        let name = field.map { "'\($0)'" } ?? "The request body"
        switch schema {
        case .nullable(let inner):
            if value != .null { check(value, inner, pointer: pointer, field: field) }
        case .string(let min, let max, let format, let oneOf):
            guard case .string(let s) = value else { return fail("\(name) must be a string.") }
            let count = s.unicodeScalars.count
            if let oneOf {
                if !oneOf.contains(s) { fail("\(name) must be one of: \(oneOf.joined(separator: ", ")).") }
            } else if count < min {
                fail("\(name) must be at least \(min) character(s) long.")
            } else if count > max {
                fail("\(name) must be at most \(max) characters long.")
            } else if let format, !format.matches(s) {
                fail("\(name) must be \(format.describe).")
            }
        case .boolean:
            if value.boolValue == nil { fail("\(name) must be a boolean.") }
        case .integer(let min, let max):
            guard let n = value.int64Value else { return fail("\(name) must be an integer.") }
            if n < min || n > max { fail("\(name) must be between \(min) and \(max).") }
        case .array(let item, let min, let max):
            guard case .array(let items) = value else { return fail("\(name) must be an array.") }
            if items.count < min { fail("\(name) must have at least \(min) item(s).") }
            if items.count > max { fail("\(name) must have at most \(max) items.") }
            for (i, element) in items.prefix(max).enumerated() {
                check(element, item, pointer: "\(pointer)/\(i)", field: field)
            }
        case .object(let properties, let required, let additional):
            guard case .object(let members) = value else { return fail("\(name) must be a JSON object.") }
            for key in required where !members.contains(where: { $0.0 == key }) {
                errors.append(
                    TenantError.ValidationError(
                        detail: "'\(key)' is required.", field: key, pointer: "\(pointer)/\(key)", source: "body"))
            }
            for (key, member) in members {
                let childPointer = "\(pointer)/\(Self.escapePointer(key))"
                if let schema = properties.first(where: { $0.0 == key })?.1 {
                    check(member, schema, pointer: childPointer, field: key)
                } else if !additional {
                    errors.append(
                        TenantError.ValidationError(
                            detail: "'\(key.prefix(64))' is not an allowed property.", field: String(key.prefix(64)),
                            pointer: childPointer, source: "body"))
                }
            }
        case .anyObject:
            if value.objectValue == nil { fail("\(name) must be a JSON object.") }
        }
    }

    static func escapePointer(_ key: String) -> String {
        String(key.prefix(64)).replacing("~", with: "~0").replacing("/", with: "~1")
    }

    /// Parses `body` (empty means `{}`) and checks it against `schema`; 400 A0E-400-0001 for text that is not JSON,
    /// 400 A0E-400-0003 with every violation otherwise.
    static func parse(_ body: [UInt8], _ schema: Schema) throws(TenantError) -> JSONValue {
        let value: JSONValue
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            value = .object([])
        } else {
            do {
                value = try JSONValue.parse(body)
            } catch {
                throw TenantError.badRequest("The request body is not valid JSON (\(error.description)).")
            }
        }
        var validator = SchemaValidator()
        validator.check(value, schema)
        if !validator.errors.isEmpty {
            throw TenantError.validation("The request is invalid.", errors: validator.errors)
        }
        return value
    }
}

/// The query parameters of a request, percent-decoded (`+` as space), repeated keys kept.
struct QueryParameters {
    var pairs: [(String, String)] = []

    init(_ query: Substring?) throws(TenantError) {
        guard let query, !query.isEmpty else { return }
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = EmulatorRouter.percentDecode(kv[0], plusIsSpace: true),
                let value = EmulatorRouter.percentDecode(kv.count > 1 ? kv[1] : "", plusIsSpace: true)
            else { throw TenantError.badRequest("The query string is not validly percent-encoded.") }
            pairs.append((key, value))
        }
    }

    subscript(name: String) -> String? { pairs.last { $0.0 == name }?.1 }

    static func queryError(_ field: String, _ detail: String) -> TenantError {
        TenantError.validation(
            "The request is invalid.",
            errors: [TenantError.ValidationError(detail: detail, field: field, pointer: nil, source: "query")])
    }

    func boolean(_ name: String) throws(TenantError) -> Bool? {
        guard let raw = self[name] else { return nil }
        switch raw {
        case "true": return true
        case "false": return false
        default: throw Self.queryError(name, "'\(name)' must be true or false.")
        }
    }
}

/// The list parameters the API and its SDKs use: `from`, `take`, `fields`, `include_fields`, `include_totals`, `sort`.
struct ListQuery {
    var take = 50
    var from: String?
    var fields: [String]?
    var includeFields = true
    /// `created_at:-1` (the SDKs' default) lists newest first.
    var newestFirst = true

    init(_ query: QueryParameters, defaultNewestFirst: Bool) throws(TenantError) {
        newestFirst = defaultNewestFirst
        if let raw = query["take"] {
            guard let n = Int(raw), (1...100).contains(n) else {
                throw QueryParameters.queryError("take", "'take' must be an integer between 1 and 100.")
            }
            take = n
        }
        if let raw = query["from"] {
            guard (1...1000).contains(raw.utf8.count) else {
                throw QueryParameters.queryError("from", "'from' must be 1 to 1000 characters long.")
            }
            from = raw
        }
        if let raw = query["fields"], !raw.isEmpty {
            fields = raw.split(separator: ",").map { String($0) }
        }
        includeFields = try query.boolean("include_fields") ?? true
        _ = try query.boolean("include_totals")
        if let raw = query["sort"] {
            let parts = raw.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty,
                parts[0].utf8.allSatisfy({ StringFormat.isLowerAlnum($0) || $0 == UInt8(ascii: "_") }),
                parts[1] == "1" || parts[1] == "-1"
            else {
                throw QueryParameters.queryError("sort", "'sort' must be field:1 or field:-1, e.g. created_at:-1.")
            }
            newestFirst = parts[1] == "-1"
        }
    }

    /// Drops or keeps top-level members of `object` as `fields` and `include_fields` ask.
    func project(_ object: JSONValue) -> JSONValue {
        guard let fields, case .object(let members) = object else { return object }
        return .object(members.filter { fields.contains($0.0) == includeFields })
    }
}

/// A page of a cursor-paginated list.
struct Page<Item> {
    var items: [Item]
    var next: String?
}

enum Cursor {
    /// Cursors are opaque to clients; here they carry the creation sequence number of the last item served, so a
    /// deletion between two pages neither repeats nor skips an item.
    static func encode(_ seq: Int) -> String { "c" + String(seq, radix: 36) }

    static func decode(_ cursor: String) -> Int? {
        guard cursor.first == "c", cursor.count <= 14 else { return nil }
        return Int(cursor.dropFirst(), radix: 36)
    }

    /// The page of `items` (sorted oldest first) that `query` asks for.
    static func page<Item>(_ items: [Item], seq: (Item) -> Int, query: ListQuery) throws(TenantError) -> Page<Item> {
        let ordered: [Item] = query.newestFirst ? Array(items.reversed()) : items
        var start = ordered.startIndex
        if let from = query.from {
            guard let after = decode(from) else {
                throw QueryParameters.queryError("from", "'from' is not a cursor this API returned.")
            }
            start = ordered.firstIndex { query.newestFirst ? seq($0) < after : seq($0) > after } ?? ordered.endIndex
        }
        let slice = Array(ordered[start...].prefix(query.take))
        let hasMore = ordered.endIndex - start > slice.count
        return Page(items: slice, next: hasMore ? slice.last.map { encode(seq($0)) } : nil)
    }
}
