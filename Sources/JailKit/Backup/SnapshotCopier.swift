#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch

/// Copies a host's current/ into a new snapshot, as root on the host, without ever
/// resolving a path in a tree the jail can write: the source, the previous snapshot and
/// the new one are walked in step through directory descriptors (`openat` with
/// `O_NOFOLLOW`), so no planted or swapped symlink leads anywhere. A regular file equal to
/// the previous snapshot's (size, mtime, mode, owner, xattrs) is a hard link to it;
/// otherwise it is copied. Hard links inside current/ stay hard links. Symlinks are copied
/// as symlinks (with the gate's --fake-super they are plain files anyway); devices, FIFOs
/// and sockets are skipped (the gate refuses them). Owners, modes, times and the xattrs
/// that carry --fake-super's metadata are kept.
struct SnapshotCopier {
    var files = 0
    var linked = 0
    var copiedBytes: Int64 = 0
    var skipped = 0
    /// Source inode → path of its copy below the new snapshot (for hard links).
    private var copies: [[UInt64]: String] = [:]
    private let destRoot: Int32

    private init(destRoot: Int32) { self.destRoot = destRoot }

    /// Copies the directory `source` into the empty directory `dest`, linking against
    /// `previous` where possible. The descriptors stay the caller's.
    static func copy(source: Int32, dest: Int32, previous: Int32?) throws -> SnapshotCopier {
        var c = SnapshotCopier(destRoot: dest)
        try c.copyDir(source, dest, previous, rel: "")
        var st = stat()
        try check("stat current/", fstat(source, &st))
        try c.copyMetadata(from: source, st, to: dest, path: ".")
        return c
    }

    private mutating func copyDir(_ src: Int32, _ dst: Int32, _ prev: Int32?, rel: String) throws {
        try AreaFS.forEachEntry(src, path: rel) { name in
            let path = rel.isEmpty ? name : rel + "/" + name
            var st = stat()
            guard fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                let s = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard s >= 0 else { return }  // swapped for something else meanwhile: skip
                defer { close(s) }
                try check("mkdir \(path)", mkdirat(dst, name, 0o700))
                let d = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard d >= 0 else { throw SystemError("open snapshot \(path)") }
                defer { close(d) }
                let p = prev.map { openat($0, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }.flatMap { $0 >= 0 ? $0 : nil }
                defer { if let p { close(p) } }
                try copyDir(s, d, p, rel: path)
                try copyMetadata(from: s, st, to: d, path: path)
            case S_IFREG:
                try copyFile(src, dst, prev, name: name, st, path: path)
            case S_IFLNK:
                var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlinkat(src, name, &buf, buf.count - 1)
                guard n >= 0 else { return }
                buf[n] = 0
                try check("symlink \(path)", symlinkat(buf, dst, name))
                try check("chown \(path)", fchownat(dst, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW))
                var times = [st.st_atim, st.st_mtim]
                utimensat(dst, name, &times, AT_SYMLINK_NOFOLLOW)
            default:
                skipped += 1
            }
        }
    }

    private mutating func copyFile(_ src: Int32, _ dst: Int32, _ prev: Int32?, name: String, _ st: stat, path: String) throws {
        files += 1
        let key = [UInt64(st.st_dev), UInt64(st.st_ino)]
        if st.st_nlink > 1, let first = copies[key] {
            // Another name of a file already copied: the same inode in the snapshot. The
            // path lies in the new snapshot, made here, where every parent is a directory.
            try check("link \(path)", linkat(destRoot, first, dst, name, 0))
            return
        }
        let s = openat(src, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard s >= 0 else { return }
        defer { close(s) }
        var now = stat()
        // The name may have been swapped since the fstatat: copy what was opened, if it is
        // still that regular file.
        guard fstat(s, &now) == 0, (now.st_mode & S_IFMT) == S_IFREG, now.st_ino == st.st_ino else { return }
        if let prev, Self.sameAsPrevious(s, now, prev, name) {
            try check("link \(path)", linkat(prev, name, dst, name, 0))
            linked += 1
        } else {
            let d = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard d >= 0 else { throw SystemError("create snapshot \(path)") }
            defer { close(d) }
            var buf = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = buf.withUnsafeMutableBytes { read(s, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n < 0 { throw SystemError("read current/\(path)") }
                if n == 0 { break }
                guard buf.withUnsafeBytes({ FS.writeAll(d, $0.baseAddress, n) }) else { throw SystemError("write snapshot \(path)") }
                copiedBytes += Int64(n)
            }
            try copyMetadata(from: s, now, to: d, path: path)
        }
        if now.st_nlink > 1 { copies[key] = path }
    }

    /// Unchanged since the previous snapshot: same size, mtime, mode, owner and xattrs.
    static func sameAsPrevious(_ s: Int32, _ st: stat, _ prev: Int32, _ name: String) -> Bool {
        var p = stat()
        guard fstatat(prev, name, &p, AT_SYMLINK_NOFOLLOW) == 0, (p.st_mode & S_IFMT) == S_IFREG,
            p.st_size == st.st_size, p.st_mtim.tv_sec == st.st_mtim.tv_sec, p.st_mtim.tv_nsec == st.st_mtim.tv_nsec,
            p.st_mode == st.st_mode, p.st_uid == st.st_uid, p.st_gid == st.st_gid
        else { return false }
        let pf = openat(prev, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard pf >= 0 else { return false }
        defer { close(pf) }
        return xattrs(s) == xattrs(pf)
    }

    /// The user.* xattrs of a file (where --fake-super keeps owners and modes).
    static func xattrs(_ fd: Int32) -> [String: [UInt8]] {
        var names = [CChar](repeating: 0, count: 4096)
        let n = jl_flistxattr(fd, &names, names.count)
        guard n > 0 else { return [:] }
        var out: [String: [UInt8]] = [:]
        for raw in names[0..<n].split(separator: 0) {
            let name = String(decoding: raw.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard name.hasPrefix("user.") else { continue }
            var value = [UInt8](repeating: 0, count: 4096)
            let len = jl_fgetxattr(fd, name, &value, value.count)
            if len >= 0 { out[name] = Array(value[0..<len]) }
        }
        return out
    }

    /// Owner, mode, times and user xattrs of `st`/`from` onto `to`.
    private func copyMetadata(from: Int32, _ st: stat, to: Int32, path: String) throws {
        for (name, value) in Self.xattrs(from) {
            _ = value.withUnsafeBytes { jl_fsetxattr(to, name, $0.baseAddress, $0.count) }
        }
        try check("chown snapshot \(path)", fchown(to, st.st_uid, st.st_gid))
        // No setuid or setgid bit in a snapshot (--fake-super keeps the real mode aside).
        try check("chmod snapshot \(path)", fchmod(to, st.st_mode & 0o1777))
        var times = [st.st_atim, st.st_mtim]
        try check("utimes snapshot \(path)", futimens(to, &times))
    }
}
