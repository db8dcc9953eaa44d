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

    /// What one stored image costs: its bytes, the bytes no other stored image shares
    /// (files whose object has no other link), and the jails whose current run uses it.
    public struct Usage: Sendable, Codable, Equatable {
        public var name: String
        public var hash: String
        public var files: Int
        public var bytes: Int64
        public var uniqueBytes: Int64
        public var jails: [String]
    }

    public func usage() throws -> [Usage] {
        let records = try state.images()
        let running = try state.jails().filter { $0.state == .running }
        return records.map { r in
            var unique: Int64 = 0
            let manifest = (try? FS.readText(root.store + "/" + r.hash + ".manifest")) ?? ""
            for line in manifest.split(separator: "\n") where line.hasPrefix("f\t") {
                let f = line.split(separator: "\t", omittingEmptySubsequences: false)
                guard f.count > 1 else { continue }
                var st = stat()
                // Two links: the object and this image; more: shared with another image.
                if lstat(root.store + "/" + r.hash + String(f[1]), &st) == 0, st.st_nlink <= 2 { unique += Int64(st.st_size) }
            }
            return Usage(name: r.name, hash: r.hash, files: r.files, bytes: r.bytes, uniqueBytes: unique,
                         jails: running.filter { $0.imageHash == r.hash }.map(\.name).sorted())
        }
    }

    public struct GCReport: Sendable, Equatable {
        public var images: [String]
        public var objects: Int
        public var bytes: Int64
    }

    /// Removes stored image versions that are neither an image's current build nor the
    /// image of a jail's current run, then the objects no image links any more.
    /// `dryRun`: only says what would go.
    public func gc(dryRun: Bool = false) throws -> GCReport {
        let keep = Set(try state.images().map(\.hash)).union(try state.jails().filter { $0.state == .running }.map(\.imageHash))
        var report = GCReport(images: [], objects: 0, bytes: 0)
        for entry in try FS.list(root.store) where entry.count == 64 && entry.allSatisfy(\.isHexDigit) && !keep.contains(entry) {
            report.images.append(entry)
            if !dryRun {
                try FS.removeTree(root.store + "/" + entry)
                try FS.removeTree(root.store + "/" + entry + ".manifest")
            }
        }
        let objects = root.store + "/" + ObjectStore.directory
        for name in (try? FS.list(objects)) ?? [] {
            var st = stat()
            guard lstat(objects + "/" + name, &st) == 0 else { continue }
            // Counted before the images above go in a dry run, so it reports only what
            // is unlinked already; a real run sees the links those removals dropped.
            if st.st_nlink <= 1 || name.hasPrefix(".tmp-") {
                report.objects += 1
                report.bytes += Int64(st.st_size)
                if !dryRun { try check("unlink \(name)", unlink(objects + "/" + name)) }
            }
        }
        report.images.sort()
        return report
    }

    /// The stored tree of an image, if it was built and is still there.
    public func path(of name: String) throws -> (ImageRecord, String)? {
        guard let rec = try state.image(name) else { return nil }
        let p = root.store + "/" + rec.hash
        return FS.isDirectory(p) ? (rec, p) : nil
    }
}
