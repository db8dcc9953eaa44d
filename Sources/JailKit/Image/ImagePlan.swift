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

    public init() {}

    /// Adds an entry unless the path is already planned; the first reason wins.
    public mutating func add(_ path: String, _ kind: Kind, reason: String) {
        guard index[path] == nil else { return }
        index[path] = entries.count
        entries.append(Entry(path: path, kind: kind, reason: reason))
    }

    public func contains(_ path: String) -> Bool { index[path] != nil }

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
        }.joined(separator: "\n") + "\n"
    }
}
