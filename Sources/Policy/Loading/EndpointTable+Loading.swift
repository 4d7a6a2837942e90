extension EndpointTable {
    static let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]

    /// Loads and validates an endpoint table written in YAML.
    ///
    /// Checks: known keys only; method one of GET POST PUT PATCH DELETE; a template of literal segments
    /// (`a-z 0-9 - . _ ~`) and `{param}` segments with unique names; at least one scope, each a valid scope
    /// token; unique operation names; no two endpoints with the same method and path shape.
    public static func load(yaml: String, file: String) -> Result<EndpointTable, ConfigErrors> {
        let root: YAMLNode
        switch YAMLDocument.parse(yaml, file: file) {
        case .success(let node): root = node
        case .failure(let errors): return .failure(errors)
        }
        let reader = YAMLReader(file: file)
        let endpoints = decode(root, reader: reader)
        if !reader.errors.isEmpty { return .failure(ConfigErrors(reader.errors)) }
        return .success(EndpointTable(endpoints: endpoints))
    }

    static func decode(_ root: YAMLNode, reader: YAMLReader) -> [Endpoint] {
        guard let map = reader.mapping(root, "", keys: ["version", "endpoints"]) else { return [] }
        if let v = reader.required(map, "version"), let version = reader.int(v, "version", in: 1...1000), version != 1 {
            reader.fail(v, "version", "unsupported endpoint table version \(version); this gateway reads version 1")
        }
        guard let listNode = reader.required(map, "endpoints"), let items = reader.list(listNode, "endpoints") else {
            return []
        }
        var endpoints: [Endpoint] = []
        var operations: [String: String] = [:]
        var shapes: [String: String] = [:]
        for item in items {
            let keys = ["operation", "method", "path", "scopes", "class", "log_resource", "ok_status", "stage"]
            guard let m = reader.mapping(item.node, item.path, keys: keys) else { continue }
            let operation = reader.string(m, "operation", required: true)
            if let operation, let node = m["operation"] {
                if !operation.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
                ) {
                    reader.fail(node, m.path("operation"), "operation names use a-z, 0-9 and '-'")
                } else if let previous = operations[operation] {
                    reader.fail(node, m.path("operation"), "operation '\(operation)' is already defined at \(previous)")
                } else {
                    operations[operation] = m.path("operation")
                }
            }
            var method: String?
            if let node = reader.required(m, "method"), let text = reader.string(node, m.path("method")) {
                if methods.contains(text) {
                    method = text
                } else {
                    reader.fail(node, m.path("method"), "'\(text)' is not one of \(methods.joined(separator: " | "))")
                }
            }
            var template: String?
            if let node = reader.required(m, "path"), let text = reader.string(node, m.path("path")) {
                if let problem = templateProblem(text) {
                    reader.fail(node, m.path("path"), problem)
                } else {
                    template = text
                }
            }
            var scopes: [String] = []
            if let node = reader.required(m, "scopes"), let list = reader.strings(node, m.path("scopes")) {
                for s in list {
                    if !ConfigSyntax.isScopeToken(s.value) {
                        reader.fail(s.node, s.path, "'\(YAMLReader.printable(s.value))' is not a scope token")
                    } else if scopes.contains(s.value) {
                        reader.fail(s.node, s.path, "scope '\(s.value)' is listed twice")
                    } else {
                        scopes.append(s.value)
                    }
                }
                if list.isEmpty { reader.fail(node, m.path("scopes"), "an endpoint requires at least one scope") }
            }
            let rateClass = reader.required(m, "class").flatMap {
                reader.enumeration($0, m.path("class"), Endpoint.RateClass.self)
            }
            let logResource = reader.required(m, "log_resource").flatMap {
                reader.enumeration($0, m.path("log_resource"), Endpoint.LogResource.self)
            }
            let okStatus = reader.required(m, "ok_status").flatMap {
                reader.int($0, m.path("ok_status"), in: 200...299)
            }
            let stage = reader.enumeration(m, "stage", default: Endpoint.Stage.ea)
            if let method, let template {
                let shape = method + " " + shapeKey(template)
                if let previous = shapes[shape] {
                    reader.fail(item.node, item.path, "\(method) \(template) matches the same paths as \(previous)")
                } else {
                    shapes[shape] = "\(method) \(template)"
                }
            }
            guard let operation, let method, let template, !scopes.isEmpty, let rateClass, let logResource,
                let okStatus
            else { continue }
            endpoints.append(
                Endpoint(
                    index: endpoints.count, operation: operation, method: method, template: template, scopes: scopes,
                    rateClass: rateClass, logResource: logResource, okStatus: okStatus, stage: stage))
        }
        return endpoints
    }

    /// Why `template` is not a path template, or nil.
    static func templateProblem(_ template: String) -> String? {
        if template.isEmpty { return nil }
        if template.hasPrefix("/") || template.hasSuffix("/") {
            return "write the path under /my-org/ without leading or trailing '/'"
        }
        var names = Set<String>()
        let segments = template.split(separator: "/", omittingEmptySubsequences: false)
        for (i, segment) in segments.enumerated() {
            if segment.isEmpty { return "empty path segment" }
            if segment.hasPrefix("{") {
                guard segment.hasSuffix("}"), segment.count > 2 else { return "a parameter is written {name}" }
                let name = segment.dropFirst().dropLast()
                guard let first = name.utf8.first, (0x61...0x7A).contains(first),
                    name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F })
                else { return "parameter names use a-z, 0-9 and '_' and start with a letter" }
                guard names.insert(String(name)).inserted else { return "parameter {\(name)} appears twice" }
            } else {
                let ok = segment.utf8.allSatisfy { b in
                    (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x2E || b == 0x5F
                        || b == 0x7E
                }
                guard ok, segment != ".", segment != ".." else {
                    return
                        "literal segment '\(YAMLReader.printable(String(segment)))' may use a-z, 0-9, '-', '.', '_', '~'"
                }
                if i == 0, segment == "v1" { return "a path may not start with 'v1': that is the version prefix" }
            }
        }
        return nil
    }

    /// The template with parameter names erased: two templates with the same key match the same paths.
    static func shapeKey(_ template: String) -> String {
        template.split(separator: "/", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("{") ? "{}" : String($0) }
            .joined(separator: "/")
    }
}
