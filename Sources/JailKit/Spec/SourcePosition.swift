/// A 1-based line and column in a source text. Columns count Unicode scalars, which is
/// what toml++ (under TOMLKit) reports for syntax errors, so both kinds of positions agree.
public struct SourcePosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    /// Where diagnostics about a whole file go (a missing required key has no better place).
    public static let start = SourcePosition(line: 1, column: 1)

    public static func < (lhs: SourcePosition, rhs: SourcePosition) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    public var description: String { "\(line):\(column)" }
}
