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
    /// leaves nothing in the store. `reuse`: sources unchanged since the image's current
    /// version (same fingerprint) are linked to their stored objects, not read again;
    /// false reads and hashes every file (`build --force`).
    /// `recordEvent`: a "build" event is saved with the record, in the same transaction.
    public func build(_ spec: ImageSpec, users: [String], groups: [String], builder: ImageBuilder,
                      reuse: Bool = true, recordEvent: Bool = false) throws -> BuildReport {
        let t0 = monotonic()
        let plan = try builder.plan(spec, users: users, groups: groups)
        let existed = try state.image(spec.name)
        // Until the record is saved nothing but this lock keeps gc off the new tree and
        // its objects; planning above needs no lock, and `up` launches without it.
        let lock = try StoreLock(store: root.store, .shared)
        defer { lock.release() }
        var writer = ImageWriter()
        // The image's current version tells what its sources were when it was built; an
        // unreadable manifest only means every file is read again.
        if reuse, let existed, let text = try? FS.readText(root.store + "/" + existed.hash + ".manifest") {
            writer.known = ImageWriter.knownSources(manifest: text)
        }
        let result = try writer.write(plan, store: root.store)
        let record = ImageRecord(name: spec.name, hash: result.hash, builtAt: wallClock(), files: result.files,
                                 bytes: result.bytes, specFile: spec.file)
        if recordEvent {
            try state.save(record, event: EventRecord(id: nil, time: record.builtAt, jail: "image:\(spec.name)", kind: "build",
                                                      detail: "\(record.hash) \(record.files) files"))
        } else {
            try state.save(record)
        }
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

    /// Throws when a stored image cannot be read (a missing manifest or file): a count
    /// of 0 would hide a damaged store.
    public func usage() throws -> [Usage] {
        // Shared: gc cannot remove a version between reading the records and its files.
        let lock = try StoreLock(store: root.store, .shared)
        defer { lock.release() }
        let records = try state.images()
        let running = try state.jails().filter { $0.state == .running }
        return try records.map { r in
            var unique: Int64 = 0
            let manifestPath = root.store + "/" + r.hash + ".manifest"
            let manifest: String
            do { manifest = try FS.readText(manifestPath) } catch {
                throw JailError(.image, "image \(r.name): cannot read \(manifestPath): \(error)")
            }
            for line in manifest.split(separator: "\n") where line.hasPrefix("f\t") {
                let f = line.split(separator: "\t", omittingEmptySubsequences: false)
                guard f.count > 1 else { continue }
                let file = root.store + "/" + r.hash + String(f[1])
                var st = stat()
                if lstat(file, &st) != 0 {
                    let failure = SystemError("stat \(file)")
                    throw JailError(.image, "image \(r.name): \(failure)")
                }
                // Two links: the object and this image; more: shared with another image.
                if st.st_nlink <= 2 { unique += Int64(st.st_size) }
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

    /// Removes stored image versions that are neither an image's current build, the
    /// image of a jail's current run, nor pinned by a starting jail (`ImagePin`), then the
    /// objects no image links any more.
    /// `dryRun`: only says what would go.
    public func gc(dryRun: Bool = false) throws -> GCReport {
        // Exclusive: waits for running builds to save their records, and keeps new ones
        // from reusing a tree or an object while it goes.
        let lock = try StoreLock(store: root.store, .exclusive)
        defer { lock.release() }
        var keep = Set(try state.images().map(\.hash)).union(try state.jails().filter { $0.state == .running }.map(\.imageHash))
        // Versions a starting jail resolved but has not recorded yet; a pin whose process
        // is gone (a killed `up`) keeps nothing and goes.
        for pin in try state.imagePins() {
            if pin.isHeld {
                keep.insert(pin.hash)
            } else if !dryRun {
                try state.delete(pin)
            }
        }
        var report = GCReport(images: [], objects: 0, bytes: 0)
        for entry in try FS.list(root.store) where entry.count == 64 && entry.allSatisfy(\.isHexDigit) && !keep.contains(entry) {
            report.images.append(entry)
            if !dryRun {
                try FS.removeTree(root.store + "/" + entry)
                try FS.removeTree(root.store + "/" + entry + ".manifest")
            }
        }
        let objects = root.store + "/" + ObjectStore.directory
        // No objects directory: nothing was ever built with a file in it.
        let names = FS.exists(objects) ? try FS.list(objects) : []
        for name in names {
            var st = stat()
            try check("stat \(objects)/\(name)", lstat(objects + "/" + name, &st))
            // Counted before the images above go in a dry run, so it reports only what
            // is unlinked already; a real run sees the links those removals dropped.
            // A `.tmp-*` object is a crashed build's: a running one holds the lock.
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
