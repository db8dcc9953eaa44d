#if canImport(Glibc)
import Glibc
#endif
import Crypto
import CJailLaunch

/// Writes an ImagePlan into a fresh directory of the store, through directory fds that
/// it created itself (O_EXCL, O_NOFOLLOW), so nothing planted in a source or target path
/// redirects a write. Records every entry in a manifest and names the image by the hash
/// of its content.
struct ImageWriter {
    struct Result {
        var hash: String
        var path: String
        var files: Int
        var bytes: Int64
        var manifest: String
    }

    /// Largest single file and whole image accepted, against a spec that names
    /// something huge by mistake.
    var maxFileBytes: Int64 = 1 << 30
    var maxTotalBytes: Int64 = 4 << 30
    /// What earlier builds copied (their manifests' file lines), by source path: a source
    /// whose device, inode, size, mtime and mode are still the recorded ones is linked to
    /// its stored object without being read again (the trust the staleness check gives a
    /// fingerprint). A rebuild after one package upgrade reads only what changed.
    var known: [String: KnownSource] = [:]

    struct KnownSource {
        var origin: String
        var size: Int64
        var mode: UInt32
        var digest: String
    }

    /// The file lines of a manifest as `known` entries.
    static func knownSources(manifest: String) -> [String: KnownSource] {
        var out: [String: KnownSource] = [:]
        for line in manifest.split(separator: "\n") where line.hasPrefix("f\t") {
            // f path mode size sha256 source dev:ino:mtime
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard f.count >= 7, let mode = UInt32(f[2], radix: 8), let size = Int64(f[3]) else { continue }
            out[String(f[5])] = KnownSource(origin: String(f[6]), size: size, mode: mode, digest: String(f[4]))
        }
        return out
    }

    func write(_ plan: ImagePlan, store: String) throws -> Result {
        Self.spreadTrees(store)
        let tmp = store + "/.build-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try check("mkdir \(tmp)", mkdir(tmp, 0o755))
        var dirs = DirectoryFDs(rootPath: tmp)
        let objects = try ObjectStore(store: store)
        defer { objects.close() }
        do {
            try dirs.openRoot()
            var manifest: [String] = []
            var contentLines: [String] = []
            var files = 0
            var bytes: Int64 = 0
            for entry in plan.sorted {
                guard entry.path.hasPrefix("/"), entry.path != "/" else {
                    if entry.path == "/" { continue }
                    throw JailError(.image, "image entry \(entry.path): not an absolute path")
                }
                let (parent, name) = split(entry.path)
                let pfd = try dirs.directory(parent)
                switch entry.kind {
                case .directory:
                    _ = try dirs.directory(entry.path)
                    manifest.append("d\t\(entry.path)")
                    contentLines.append("d\t\(entry.path)")
                case .symlink(let target):
                    try check("symlink \(entry.path) in image", symlinkat(target, pfd, name))
                    manifest.append("l\t\(entry.path)\t\(target)")
                    contentLines.append("l\t\(entry.path)\t\(target)")
                case .file(let source):
                    let (size, digest, mode, origin) = try copy(source, into: pfd, name: name, path: entry.path, objects: objects)
                    files += 1
                    bytes += size
                    if bytes > maxTotalBytes { throw JailError(.image, "image exceeds \(maxTotalBytes) bytes at \(entry.path)") }
                    let m = String(mode, radix: 8)
                    manifest.append("f\t\(entry.path)\t\(m)\t\(size)\t\(digest)\t\(source)\t\(origin)")
                    contentLines.append("f\t\(entry.path)\t\(m)\t\(digest)")
                case .generated(let text):
                    let data = Array(text.utf8)
                    let fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o444)
                    if fd < 0 { throw SystemError("create \(entry.path) in image") }
                    let ok = data.withUnsafeBytes { FS.writeAll(fd, $0.baseAddress, $0.count) }
                    close(fd)
                    if !ok { throw SystemError("write \(entry.path) in image") }
                    let digest = hexDigest(SHA256.hash(data: data))
                    files += 1
                    bytes += Int64(data.count)
                    manifest.append("g\t\(entry.path)\t444\t\(data.count)\t\(digest)")
                    contentLines.append("g\t\(entry.path)\t444\t\(digest)")
                }
            }
            // Directories get their final mode once nothing more is written into them.
            try dirs.sealAll()
            // Not part of the content hash: they say where the content came from.
            for input in plan.inputs {
                let fp = SourceFingerprint(path: input)
                let digest = fp.flatMap { try? $0.digest(of: input) } ?? "-"
                manifest.append("i\t\(input)\t\(fp.map { String($0.size) } ?? "-")\t\(digest)\t\(fp?.origin ?? "-")")
            }
            for (key, value) in plan.parameters.sorted(by: { $0.key < $1.key }) { manifest.append("p\t\(key)\t\(value)") }
            let hash = hexDigest(SHA256.hash(data: Array(contentLines.joined(separator: "\n").utf8)))
            let final = store + "/" + hash
            let manifestText = manifest.joined(separator: "\n") + "\n"
            if FS.exists(final) {
                // The same content is already stored: keep the stored copy, but record
                // where it came from now, so the next staleness check compares against
                // today's sources (a touched file would otherwise be hashed every time).
                try FS.removeTree(tmp)
                try FS.writeAtomically(final + ".manifest", manifestText)
            } else {
                try FS.writeAtomically(final + ".manifest", manifestText)
                try check("rename \(tmp)", rename(tmp, final))
            }
            return Result(hash: hash, path: final, files: files, bytes: bytes, manifest: manifestText)
        } catch {
            dirs.closeAll()
            do { try FS.removeTree(tmp) } catch let cleanup {
                throw JailError(.image, "\(error) (and removing \(tmp) failed: \(cleanup))")
            }
            throw error
        }
    }

    /// Each build's tree (and the objects directory) is an independent hierarchy: with
    /// the store marked as their top (ext4's FS_TOPDIR_FL), the allocator places each in
    /// a block group of its own choosing rather than next to the store. Where the store's
    /// group is full of inodes freed in the last half minute (a gc, a removed image), an
    /// ext4 without journal skips each of those for every new inode; here that made a
    /// cold build of rsync+bash half again as slow. Only a placement hint: a file system
    /// without it (ENOTTY, EOPNOTSUPP) or a failure changes nothing but speed.
    static func spreadTrees(_ store: String) {
        let fd = open(store, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = jl_set_topdir(fd)
        close(fd)
    }

    private func split(_ path: String) -> (String, String) {
        guard let slash = path.lastIndex(of: "/") else { return ("/", path) }
        let parent = String(path[..<slash])
        return (parent.isEmpty ? "/" : parent, String(path[path.index(after: slash)...]))
    }

    /// Copies a regular file into the store's objects, hashing it on the way, and links
    /// the object into the tree: identical files of all images are one inode. Returns
    /// (size, sha256, mode, origin "dev:ino:mtime" for staleness checks).
    private func copy(_ source: String, into dirfd: Int32, name: String, path: String,
                      objects: ObjectStore) throws -> (Int64, String, UInt32, String) {
        let src = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if src < 0 { throw SystemError("open \(source)") }
        defer { close(src) }
        var st = stat()
        try check("stat \(source)", fstat(src, &st))
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw JailError(.image, "\(source): not a regular file") }
        if Int64(st.st_size) > maxFileBytes { throw JailError(.image, "\(source): larger than \(maxFileBytes) bytes") }
        // Read and execute bits only: no write, no setuid/setgid/sticky; file
        // capabilities (an xattr) are not copied at all.
        let mode = UInt32(st.st_mode) & 0o555
        let origin = SourceFingerprint(st).origin
        if let k = known[source], k.origin == origin, k.size == Int64(st.st_size), k.mode == mode,
           try objects.linkKnown(digest: k.digest, mode: mode, into: dirfd, name: name, path: path)
        {
            return (k.size, k.digest, mode, origin)
        }
        let tmpName = ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let dst = openat(objects.fd, tmpName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(mode | 0o200))
        if dst < 0 { throw SystemError("create an object for \(path)") }
        defer {
            close(dst)
            // Gone either way: linked under its content name, or abandoned on an error.
            unlinkat(objects.fd, tmpName, 0)
        }
        var hasher = SHA256()
        var size: Int64 = 0
        let bufSize = 1 << 18
        let buf = UnsafeMutableRawPointer.allocate(byteCount: bufSize, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n = read(src, buf, bufSize)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read \(source)")
            }
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(start: buf, count: n))
            if !FS.writeAll(dst, buf, n) { throw SystemError("write \(path) in image") }
            size += Int64(n)
        }
        try check("chmod \(path) in image", fchmod(dst, mode_t(mode)))
        let digest = hexDigest(hasher.finalize())
        try objects.link(tmpName, digest: digest, mode: mode, into: dirfd, name: name, path: path)
        return (size, digest, mode, origin)
    }
}

/// `store/.objects`: one file per distinct (content, mode), named "SHA256-MODE", hard
/// linked into every image that holds it. Objects are read-only to everyone, so a link
/// in one image cannot change another; `jailctl gc` removes objects no image links.
struct ObjectStore {
    static let directory = ".objects"
    let fd: Int32

    init(store: String) throws {
        let path = store + "/" + Self.directory
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw SystemError("mkdir \(path)") }
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { throw SystemError("open \(path)") }
    }

    func close() { _ = Glibc.close(fd) }

    /// Makes `tmpName` the object of its content (unless one is there already: then
    /// that one is used) and links the object as `name` in `dirfd`. An object at the
    /// file system's link limit (EMLINK; ext4: 65,000, reached by the empty file) is
    /// not shared: the entry keeps `tmpName`'s inode as a private copy instead.
    /// Returns false when it did so.
    /// Links the stored object of (digest, mode) as `name` in `dirfd`. False when there is
    /// none (gc removed it) or it is at the link limit: the caller copies the file then.
    func linkKnown(digest: String, mode: UInt32, into dirfd: Int32, name: String, path: String) throws -> Bool {
        let object = "\(digest)-\(String(mode, radix: 8))"
        if linkat(fd, object, dirfd, name, 0) == 0 { return true }
        guard errno == ENOENT || errno == EMLINK else { throw SystemError("link \(path) in image") }
        return false
    }

    @discardableResult
    func link(_ tmpName: String, digest: String, mode: UInt32, into dirfd: Int32, name: String, path: String) throws -> Bool {
        let object = "\(digest)-\(String(mode, radix: 8))"
        if linkat(fd, tmpName, fd, object, 0) != 0 && errno != EEXIST {
            throw SystemError("store the object of \(path)")
        }
        if linkat(fd, object, dirfd, name, 0) == 0 { return true }
        guard errno == EMLINK else { throw SystemError("link \(path) in image") }
        try check("link a private copy of \(path) in image", linkat(fd, tmpName, dirfd, name, 0))
        return false
    }
}

func hexDigest<D: Sequence>(_ d: D) -> String where D.Element == UInt8 {
    d.map { hex2($0) }.joined()
}

/// Directory fds of the tree being written, each opened with O_NOFOLLOW from its
/// parent's fd, starting at a directory this process just created.
private struct DirectoryFDs {
    let rootPath: String
    var fds: [String: Int32] = [:]

    init(rootPath: String) { self.rootPath = rootPath }

    mutating func openRoot() throws {
        let fd = open(rootPath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { throw SystemError("open \(rootPath)") }
        fds["/"] = fd
    }

    /// The fd of an image directory, creating missing ones (0755) on the way.
    mutating func directory(_ path: String) throws -> Int32 {
        if let fd = fds[path] { return fd }
        guard let slash = path.lastIndex(of: "/") else { throw JailError(.image, "bad image path \(path)") }
        let parentPath = slash == path.startIndex ? "/" : String(path[..<slash])
        let name = String(path[path.index(after: slash)...])
        let parent = try directory(parentPath)
        if mkdirat(parent, name, 0o755) < 0 && errno != EEXIST { throw SystemError("mkdir \(path) in image") }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { throw SystemError("open \(path) in image (a symlink where a directory is needed?)") }
        fds[path] = fd
        return fd
    }

    mutating func sealAll() throws {
        // 0755, root-owned: read-only comes from the read-only mount of the image, and a
        // jail with readonly_root = false writes into its own upper layer, where root
        // without CAP_DAC_OVERRIDE still needs the owner's write bit.
        for (path, fd) in fds {
            if fchmod(fd, 0o755) < 0 { throw SystemError("chmod \(path) in image") }
        }
        closeAll()
    }

    mutating func closeAll() {
        for fd in fds.values { close(fd) }
        fds.removeAll()
    }
}
