#if canImport(Glibc)
import Glibc
#endif

/// Built images under the state root: content-addressed trees in `store/<hash>`, each
/// with `store/<hash>.manifest`, and the name → hash mapping in the state database.
public struct ImageStore {
    public let root: StateRoot
    public let state: StateStore

    public init(root: StateRoot, state: StateStore) {
        self.root = root
        self.state = state
    }

    public struct BuildReport: Sendable {
        public var record: ImageRecord
        public var path: String
        public var seconds: Double
        public var reused: Bool
    }

    /// Builds the image of `spec` for jails running as `users`; a build that fails
    /// leaves nothing in the store.
    public func build(_ spec: ImageSpec, users: [String], groups: [String], builder: ImageBuilder) throws -> BuildReport {
        let t0 = monotonic()
        let plan = try builder.plan(spec, users: users, groups: groups)
        let existed = try state.image(spec.name)
        let result = try ImageWriter().write(plan, store: root.store)
        let record = ImageRecord(name: spec.name, hash: result.hash, builtAt: wallClock(), files: result.files,
                                 bytes: result.bytes, specFile: spec.file)
        try state.save(record)
        return BuildReport(record: record, path: result.path, seconds: monotonic() - t0,
                           reused: existed?.hash == result.hash)
    }

    /// The stored tree of an image, if it was built and is still there.
    public func path(of name: String) throws -> (ImageRecord, String)? {
        guard let rec = try state.image(name) else { return nil }
        let p = root.store + "/" + rec.hash
        return FS.isDirectory(p) ? (rec, p) : nil
    }
}
