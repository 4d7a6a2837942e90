/// One problem in a policy file, pinned to the file, line, column and key path where it was found.
///
/// `description` reads `file:line:col: path: message`, the shape editors and CI logs turn into links.
/// Messages never quote a secret: the loader refuses inline secrets instead of echoing them.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    /// The key path inside the document, e.g. `clients[1].allowed_origins[0]`; empty for the whole file.
    public var path: String
    public var message: String

    public init(file: String, line: Int, column: Int, path: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        self.message = message
    }

    public var description: String {
        let location = "\(file):\(line):\(column):"
        return path.isEmpty ? "\(location) \(message)" : "\(location) \(path): \(message)"
    }

    func with(file: String) -> ConfigError {
        var copy = self
        copy.file = file
        return copy
    }
}

/// Every problem found in one load, in document order; a load never stops at the first one.
public struct ConfigErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [ConfigError]

    public init(_ errors: [ConfigError]) { self.errors = errors }

    /// One error per line.
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// Where a value was written, so a later step (the file-existence `check`) can report against it.
public struct ConfigLocation: Sendable, Equatable {
    public var file: String
    public var line: Int
    public var column: Int
    public var path: String

    public init(file: String, line: Int, column: Int, path: String) {
        self.file = file
        self.line = line
        self.column = column
        self.path = path
    }

    public func error(_ message: String) -> ConfigError {
        ConfigError(file: file, line: line, column: column, path: path, message: message)
    }
}
