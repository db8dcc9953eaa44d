/// What goes into an image, as data: every entry with the reason it is there. Printed by
/// `jailctl build --explain`, applied by ImageWriter.
public struct ImagePlan: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A copy of a host file.
        case file(source: String)
        case symlink(target: String)
        case directory
        /// A file jailctl writes itself (passwd, group).
        case generated(String)
    }

    public struct Entry: Sendable, Equatable {
        /// Absolute path inside the image.
        public var path: String
        public var kind: Kind
        public var reason: String
    }

    public private(set) var entries: [Entry] = []
    private var index: [String: Int] = [:]
    /// Host files and directories that planning read without copying them (config that
    /// decided what goes in, dpkg lists, the spec): staleness watches them too.
    public private(set) var inputs: [String] = []
    private var inputSet: Set<String> = []
    /// Values other than files that decided the plan (the users its jails run as);
    /// recorded in the manifest so a change makes the image stale.
    public var parameters: [String: String] = [:]
    /// Things a rule looked at and left out on purpose, for `--explain`.
    public private(set) var notes: [String] = []

    public init() {}

    /// Adds an entry unless the path is already planned; the first reason wins.
    public mutating func add(_ path: String, _ kind: Kind, reason: String) {
        guard index[path] == nil else { return }
        index[path] = entries.count
        entries.append(Entry(path: path, kind: kind, reason: reason))
    }

    public func contains(_ path: String) -> Bool { index[path] != nil }

    public func entry(_ path: String) -> Entry? { index[path].map { entries[$0] } }

    public mutating func noteInput(_ path: String) {
        if inputSet.insert(path).inserted { inputs.append(path) }
    }

    public mutating func note(_ text: String) { notes.append(text) }

    /// Entries sorted by path, so parents come before children and the manifest is stable.
    public var sorted: [Entry] { entries.sorted { $0.path < $1.path } }

    public func explain() -> String {
        sorted.map { e in
            let what: String
            switch e.kind {
            case .file(let s): what = s == e.path ? "file" : "file from \(s)"
            case .symlink(let t): what = "symlink -> \(t)"
            case .directory: what = "directory"
            case .generated: what = "generated"
            }
            return "\(e.path)\t\(what)\t\(e.reason)"
        }.joined(separator: "\n") + "\n" + notes.map { "# \($0)\n" }.joined()
    }
}
