/// One thing an image must contain for a path to open the same way inside it.
public enum FSEntry: Hashable, Sendable {
    case file(String)
    /// `target` exactly as stored in the link (readlink), relative or absolute.
    case symlink(String, target: String)

    public var path: String {
        switch self {
        case .file(let p): return p
        case .symlink(let p, _): return p
        }
    }
}

public struct ClosureResult: Sendable {
    /// A DT_NEEDED name the loader would not find, like ldd's "=> not found".
    public struct Missing: Hashable, Sendable {
        public var needer: String
        public var soname: String

        public init(needer: String, soname: String) {
            self.needer = needer
            self.soname = soname
        }
    }

    /// Deduplicated in first-seen order; a symlink always precedes what it leads to.
    public var entries: [FSEntry] = []
    /// Path (as entered in `entries`, or as resolved) -> first reason it was included.
    public var reasons: [String: String] = [:]
    public var missing: [Missing] = []
    /// Per input path: requested name -> path where the loader finds it, as ldd prints it
    /// (not realpath'ed). The interpreter appears under its own path, as in ldd.
    public var resolved: [String: [String: String]] = [:]
    /// Per input path: what its own load would miss (`missing` merges all inputs).
    public var missingByInput: [String: [Missing]] = [:]

    public init() {}
}
