/// One problem found in a spec file, with the place it was found.
///
/// `description` is the compiler-style line that tools and editors understand:
/// `FILE:LINE:COLUMN: error: FIELD: what is wrong; what is valid`. The `FIELD: ` part is
/// left out when there is no field (a TOML syntax error) and `; VALID` when there is
/// nothing useful to suggest, so the line never holds an empty slot.
public struct SpecDiagnostic: Sendable, Equatable, Hashable, CustomStringConvertible, Error {
    public enum Severity: String, Sendable, Equatable, Hashable {
        case error
        case warning
    }

    public var file: String
    public var line: Int
    public var column: Int
    /// Dotted key path of the offending key or value, e.g. `volumes[1].target`.
    public var field: String
    public var message: String
    public var valid: String
    public var severity: Severity

    public init(
        file: String, line: Int, column: Int, field: String, message: String, valid: String,
        severity: Severity = .error
    ) {
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
        self.valid = valid
        self.severity = severity
    }

    public var position: SourcePosition { SourcePosition(line: line, column: column) }

    public var isError: Bool { severity == .error }

    public var description: String {
        var text = "\(file):\(line):\(column): \(severity.rawValue): "
        if !field.isEmpty { text += "\(field): " }
        text += message
        if !valid.isEmpty { text += "; \(valid)" }
        return text
    }

    /// Order used for reports: by file, then by position, so output reads top to bottom.
    static func reportOrder(_ lhs: SpecDiagnostic, _ rhs: SpecDiagnostic) -> Bool {
        (lhs.file, lhs.line, lhs.column, lhs.field) < (rhs.file, rhs.line, rhs.column, rhs.field)
    }
}
